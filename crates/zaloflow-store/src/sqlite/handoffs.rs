//! Handoffs on SQLite: applied inside the event's transaction, claimed/resolved/escalated in
//! their own (`BEGIN IMMEDIATE`: one writer, so read-then-write is consistent).

use super::*;

crate::handoff::handoff_fns!(sqlite, Sqlite, '_, SqliteStore, SqlitePool);
crate::handoff::handoffs_impl!(SqliteStore, sqlite, {});

//! Handoffs on PostgreSQL: applied inside the event's transaction, claimed/resolved/escalated
//! in their own. Rows are locked (`FOR UPDATE`) before read-then-write, and opening relies on
//! the one-unresolved-handoff-per-contact index when two instances race.

use super::*;

crate::handoff::handoff_fns!(postgres, Postgres, 'static, PgStore, PgPool);
crate::handoff::handoffs_impl!(PgStore, postgres, {});

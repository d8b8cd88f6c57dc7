//! Handoffs on SQLite: applied inside the event's transaction, claimed/resolved/escalated in
//! their own (`BEGIN IMMEDIATE`: one writer, so read-then-write is consistent).

use std::collections::HashMap;

use sqlx::{Sqlite, Transaction};

use super::{insert_jobs, SqliteStore};
use crate::handoff::HandoffTiming;
use crate::handoff::{
    Breach, Handoff, HandoffMessageRow, HandoffOutcomes, HandoffUpdate, HANDOFF_COLUMNS,
};
use crate::{NewJob, Result};
use zaloflow_core::handoff::{self, HandoffChange, HandoffMessage, NewHandoff};

crate::handoff::handoff_fns!(sqlite, Sqlite, '_, SqliteStore, SqlitePool);

impl SqliteStore {
    pub(super) async fn h_list(&self, statuses: &[&str], limit: i64) -> Result<Vec<Handoff>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {HANDOFF_COLUMNS} FROM handoffs
             WHERE ?2 = '[]' OR status IN (SELECT value FROM json_each(?2))
             ORDER BY CASE WHEN status = 'resolved' THEN 1 ELSE 0 END,
                      CASE WHEN status = 'resolved' THEN -resolved_at ELSE deadline_at END, id DESC
             LIMIT ?1"
        ))
        .bind(limit)
        .bind(serde_json::to_string(statuses).expect("strings serialise"))
        .fetch_all(&self.reader)
        .await?)
    }
}

crate::handoff::handoffs_impl!(SqliteStore, sqlite, {});

//! Handoffs on PostgreSQL: applied inside the event's transaction, claimed/resolved/escalated
//! in their own. Rows are locked (`FOR UPDATE`) before read-then-write, and opening relies on
//! the one-unresolved-handoff-per-contact index when two instances race.

use std::collections::HashMap;

use sqlx::{Postgres, Transaction};

use super::{insert_jobs, PgStore};
use crate::handoff::HandoffTiming;
use crate::handoff::{
    Breach, Handoff, HandoffMessageRow, HandoffOutcomes, HandoffUpdate, HANDOFF_COLUMNS,
};
use crate::{NewJob, Result};
use zaloflow_core::handoff::{self, HandoffChange, HandoffMessage, NewHandoff};

crate::handoff::handoff_fns!(postgres, Postgres, 'static, PgStore, PgPool);

impl PgStore {
    pub(super) async fn h_list(&self, statuses: &[&str], limit: i64) -> Result<Vec<Handoff>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {HANDOFF_COLUMNS} FROM handoffs
             WHERE cardinality($2::text[]) = 0 OR status = ANY($2)
             ORDER BY CASE WHEN status = 'resolved' THEN 1 ELSE 0 END,
                      CASE WHEN status = 'resolved' THEN -resolved_at ELSE deadline_at END, id DESC
             LIMIT $1"
        ))
        .bind(limit)
        .bind(
            statuses
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<String>>(),
        )
        .fetch_all(&self.pool)
        .await?)
    }
}

crate::handoff::handoffs_impl!(PgStore, postgres, {});

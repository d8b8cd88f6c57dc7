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

/// The new handoff's id, or the contact's unresolved one when it exists already.
async fn open(
    tx: &mut Transaction<'static, Postgres>,
    h: &NewHandoff,
    now: i64,
) -> Result<std::result::Result<i64, Live>> {
    let text = h.message.as_ref().and_then(|m| m.text.clone());
    let (messages, last) = match &h.message {
        Some(m) => (1, Some(m.at)),
        None => (0, None),
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO handoffs (user_id, contact_name, status, priority, team, advisor, rule_id,
            note, opened_at, deadline_at, first_text, messages, last_message_at, source, updated_at)
         VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (user_id) WHERE status <> 'resolved' DO NOTHING
         RETURNING id",
    )
    .bind(&h.user_id)
    .bind(&h.contact_name)
    .bind(h.priority)
    .bind(&h.team)
    .bind(&h.advisor)
    .bind(&h.rule_id)
    .bind(&h.note)
    .bind(h.opened_at)
    .bind(h.deadline_at)
    .bind(text)
    .bind(messages)
    .bind(last)
    .bind(&h.source)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        let (id, responded): (i64, Option<i64>) = sqlx::query_as(
            "SELECT id, responded_at FROM handoffs
             WHERE user_id = $1 AND status <> 'resolved' FOR UPDATE",
        )
        .bind(&h.user_id)
        .fetch_one(&mut **tx)
        .await?;
        return Ok(Err(Live {
            id,
            responded: responded.is_some(),
        }));
    };
    if let Some(m) = &h.message {
        insert_message(tx, id, m).await?;
    }
    let jobs: Vec<NewJob> = h.notices.iter().map(|n| n.job(id)).collect();
    let refs: Vec<&NewJob> = jobs.iter().collect();
    insert_jobs(tx, &refs, now).await?;
    Ok(Ok(id))
}

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

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

/// The new handoff's id (`Err` never: SQLite's one writer cannot race another instance's
/// opening, which PostgreSQL's `open` has to take).
async fn open(
    tx: &mut Transaction<'_, Sqlite>,
    h: &NewHandoff,
    now: i64,
) -> Result<std::result::Result<i64, Live>> {
    let text = h.message.as_ref().and_then(|m| m.text.clone());
    let (messages, last) = match &h.message {
        Some(m) => (1, Some(m.at)),
        None => (0, None),
    };
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO handoffs (user_id, contact_name, status, priority, team, advisor, rule_id,
            note, opened_at, deadline_at, first_text, messages, last_message_at, source, updated_at)
         VALUES (?1, ?2, 'open', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
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
    .fetch_one(&mut **tx)
    .await?;
    if let Some(m) = &h.message {
        insert_message(tx, id, m).await?;
    }
    let jobs: Vec<NewJob> = h.notices.iter().map(|n| n.job(id)).collect();
    let refs: Vec<&NewJob> = jobs.iter().collect();
    insert_jobs(tx, &refs, now).await?;
    Ok(Ok(id))
}

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

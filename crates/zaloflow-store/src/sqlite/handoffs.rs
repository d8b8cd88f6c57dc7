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

/// An unresolved handoff as the apply step tracks it.
struct Live {
    id: i64,
    responded: bool,
}

/// Applies handoff changes in order, inside `tx`.
pub(super) async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    changes: Vec<&HandoffChange>,
    now: i64,
) -> Result<HandoffOutcomes> {
    let mut out = HandoffOutcomes::default();
    if changes.is_empty() {
        return Ok(out);
    }
    let mut users: Vec<&str> = changes.iter().map(|c| c.user_id()).collect();
    users.sort_unstable();
    users.dedup();
    let mut live: HashMap<String, Live> = HashMap::new();
    for chunk in users.chunks(500) {
        let rows: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT id, user_id, responded_at FROM handoffs
             WHERE status <> 'resolved' AND user_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(chunk).expect("strings serialise"))
        .fetch_all(&mut **tx)
        .await?;
        for (id, user, responded) in rows {
            live.insert(
                user,
                Live {
                    id,
                    responded: responded.is_some(),
                },
            );
        }
    }
    for ch in changes {
        match ch {
            HandoffChange::Open(h) => match live.get(&h.user_id) {
                Some(l) => {
                    attach(tx, l.id, h.message.as_ref(), h.priority, now).await?;
                    out.attached += 1;
                }
                None => {
                    let id = open(tx, h, now).await?;
                    live.insert(
                        h.user_id.clone(),
                        Live {
                            id,
                            responded: false,
                        },
                    );
                    out.opened += 1;
                }
            },
            HandoffChange::Message { user_id, message } => {
                if let Some(l) = live.get(user_id) {
                    attach(tx, l.id, Some(message), 0, now).await?;
                    out.attached += 1;
                }
            }
            HandoffChange::AgentReply {
                user_id,
                admin_id,
                message,
            } => {
                let Some(l) = live.get_mut(user_id) else {
                    continue;
                };
                if own_send(tx, user_id, message).await? {
                    out.own_echoes += 1;
                    continue;
                }
                sqlx::query(
                    "INSERT INTO handoff_messages (handoff_id, direction, msg_id, text, admin_id, at)
                     VALUES (?1, 'out', ?2, ?3, ?4, ?5)",
                )
                .bind(l.id)
                .bind(&message.msg_id)
                .bind(&message.text)
                .bind(admin_id)
                .bind(message.at)
                .execute(&mut **tx)
                .await?;
                if !l.responded {
                    let h: Option<Handoff> = sqlx::query_as(&format!(
                        "UPDATE handoffs SET responded_by = ?1, responded_at = ?2,
                            response_via = '{}', updated_at = ?3
                         WHERE id = ?4 AND responded_at IS NULL
                         RETURNING {HANDOFF_COLUMNS}",
                        handoff::VIA_OA
                    ))
                    .bind(admin_id)
                    .bind(message.at)
                    .bind(now)
                    .bind(l.id)
                    .fetch_optional(&mut **tx)
                    .await?;
                    l.responded = true;
                    out.first_responses.extend(h);
                }
            }
        }
    }
    Ok(out)
}

async fn open(tx: &mut Transaction<'_, Sqlite>, h: &NewHandoff, now: i64) -> Result<i64> {
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
    Ok(id)
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

    /// Claim (`resolve` false) or resolve, in one transaction.
    pub(super) async fn h_take(
        &self,
        id: i64,
        agent: &str,
        now: i64,
        resolve: bool,
    ) -> Result<HandoffUpdate> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let select = format!("SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE id = ?1");
        let Some(before): Option<Handoff> = sqlx::query_as(&select)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(HandoffUpdate::NotFound);
        };
        let unchanged =
            before.status == handoff::RESOLVED || (!resolve && before.status == handoff::CLAIMED);
        if unchanged {
            return Ok(HandoffUpdate::Unchanged(before));
        }
        let (status, via) = if resolve {
            (handoff::RESOLVED, handoff::VIA_RESOLVE)
        } else {
            (handoff::CLAIMED, handoff::VIA_CLAIM)
        };
        let h: Handoff = sqlx::query_as(&format!(
            "UPDATE handoffs SET status = ?1,
                claimed_by = COALESCE(claimed_by, ?2), claimed_at = COALESCE(claimed_at, ?3),
                responded_by = COALESCE(responded_by, ?2), responded_at = COALESCE(responded_at, ?3),
                response_via = COALESCE(response_via, ?4),
                resolved_by = CASE WHEN ?1 = 'resolved' THEN ?2 ELSE resolved_by END,
                resolved_at = CASE WHEN ?1 = 'resolved' THEN ?3 ELSE resolved_at END,
                updated_at = ?3
             WHERE id = ?5
             RETURNING {HANDOFF_COLUMNS}"
        ))
        .bind(status)
        .bind(agent)
        .bind(now)
        .bind(via)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(HandoffUpdate::Updated {
            first_response: before.responded_at.is_none(),
            handoff: h,
        })
    }
}

crate::handoff::handoffs_impl!(SqliteStore, sqlite, {});

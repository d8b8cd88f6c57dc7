//! Handoff rows as the store returns them.

/// A stored handoff to people, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Handoff {
    #[schema(example = 1)]
    pub id: i64,
    /// The contact (Zalo user id).
    pub user_id: String,
    /// The contact's name when it opened.
    pub contact_name: Option<String>,
    /// `open`, `claimed` or `resolved`.
    #[schema(example = "open")]
    pub status: String,
    /// 0 normal, 1 high, 2 urgent.
    pub priority: i32,
    pub team: Option<String>,
    /// The contact's dedicated advisor, told first.
    pub advisor: Option<String>,
    /// The rule that opened it.
    pub rule_id: Option<String>,
    pub note: Option<String>,
    pub opened_at: i64,
    /// When a person must have answered.
    pub deadline_at: i64,
    /// What the customer wrote first.
    pub first_text: Option<String>,
    /// Customer messages on it.
    pub messages: i32,
    pub last_message_at: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<i64>,
    /// The first human response: an agent's name (claim/resolve) or the OA admin id.
    pub responded_by: Option<String>,
    pub responded_at: Option<i64>,
    /// `oa`, `claim` or `resolve`.
    pub response_via: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    /// 0: not escalated; 1: the deadline breach was escalated; 2: second level.
    pub escalation_level: i32,
    /// What opened it (`inbox:42`, `tick:…`).
    pub source: String,
    pub updated_at: i64,
}

pub const HANDOFF_COLUMNS: &str = "id, user_id, contact_name, status, priority, team, advisor, rule_id, note, opened_at, deadline_at, first_text, messages, last_message_at, claimed_by, claimed_at, responded_by, responded_at, response_via, resolved_by, resolved_at, escalation_level, source, updated_at";

impl Handoff {
    /// Whether the deadline was met (None while it is still running).
    pub fn met(&self, now: i64) -> Option<bool> {
        match self.responded_at {
            Some(t) => Some(t <= self.deadline_at),
            None if now > self.deadline_at => Some(false),
            None => None,
        }
    }
}

/// A message on a handoff: `in` from the customer, `out` an agent's reply in the OA.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct HandoffMessageRow {
    pub handoff_id: i64,
    pub direction: String,
    pub msg_id: Option<String>,
    pub text: Option<String>,
    pub admin_id: Option<String>,
    pub at: i64,
}

/// A missed deadline (level 1) or its second escalation (level 2).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Breach {
    pub handoff_id: i64,
    pub level: i32,
    /// When this level became due (the deadline, or the deadline plus the second delay).
    pub due_at: i64,
    pub recorded_at: i64,
    pub channel: Option<String>,
}

/// The outcome of a claim or resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffUpdate {
    /// Done; `first_response` when this was the first human response (the deadline's end).
    Updated {
        handoff: Handoff,
        first_response: bool,
    },
    /// Nothing to do (already resolved, or claimed by someone else): the handoff as it is.
    Unchanged(Handoff),
    NotFound,
}

/// What applying handoff changes did, for metrics recorded after the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandoffOutcomes {
    pub opened: u64,
    pub attached: u64,
    pub first_responses: Vec<Handoff>,
    /// OA echoes recognised as our own sends.
    pub own_echoes: u64,
}

impl HandoffOutcomes {
    pub fn record(&self) {
        if self.opened > 0 {
            metrics::counter!("zaloflow_handoffs_opened_total").increment(self.opened);
        }
        for h in &self.first_responses {
            record_first_response(h);
        }
    }
}

/// Metrics of a first human response: the time it took and whether the deadline held. A
/// response after an escalation was already counted as missed when it was escalated.
pub fn record_first_response(h: &Handoff) {
    let Some(at) = h.responded_at else { return };
    let secs = (at - h.opened_at).max(0) as f64 / 1000.0;
    metrics::histogram!("zaloflow_handoff_first_response_seconds").record(secs);
    if at <= h.deadline_at {
        metrics::counter!("zaloflow_handoff_deadlines_total", "outcome" => "met").increment(1);
    } else if h.escalation_level == 0 {
        metrics::counter!("zaloflow_handoff_deadlines_total", "outcome" => "missed").increment(1);
    }
}

/// What a report needs of one handoff.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HandoffTiming {
    pub status: String,
    pub opened_at: i64,
    pub deadline_at: i64,
    pub responded_at: Option<i64>,
}

/// Handoffs to people (VIP care): listing, claiming, resolving, breaches.
#[async_trait::async_trait]
pub trait Handoffs: Send + Sync {
    /// Handoffs in these statuses (all when empty): unresolved ones by deadline, resolved ones
    /// newest first.
    async fn list_handoffs(&self, statuses: &[&str], limit: i64) -> crate::Result<Vec<Handoff>>;
    async fn get_handoff(&self, id: i64) -> crate::Result<Option<Handoff>>;
    /// The customer messages and agents' replies of a handoff, in order.
    async fn handoff_messages(&self, id: i64) -> crate::Result<Vec<HandoffMessageRow>>;
    async fn handoff_breaches(&self, id: i64) -> crate::Result<Vec<Breach>>;
    /// `agent` takes the handoff; the first claim is also its first human response.
    /// Unchanged when it is resolved or claimed by someone else.
    async fn claim_handoff(&self, id: i64, agent: &str, now: i64) -> crate::Result<HandoffUpdate>;
    /// `agent` closes the handoff (a first human response too if there was none).
    async fn resolve_handoff(&self, id: i64, agent: &str, now: i64)
        -> crate::Result<HandoffUpdate>;
    /// Unresolved handoffs without a human response whose deadline is at or before `now` and
    /// whose escalation level is below `below_level`: the least escalated, most overdue first.
    async fn handoffs_past_deadline(
        &self,
        now: i64,
        below_level: i32,
        limit: i64,
    ) -> crate::Result<Vec<Handoff>>;
    /// Raises the handoff to `breach.level`, records the breach and enqueues `job`, in one
    /// transaction — only if the handoff is still unanswered, unresolved and below that level.
    /// False when there was nothing to do (already escalated, answered or resolved).
    async fn record_breach(
        &self,
        breach: &Breach,
        job: &crate::NewJob,
        now: i64,
    ) -> crate::Result<bool>;
    /// Timings of the handoffs opened since `since` (reports), and of every unresolved one.
    async fn handoff_timings(&self, since: i64) -> crate::Result<Vec<HandoffTiming>>;
}

/// The payloads of a user's Zalo jobs in flight (`hint`: SQLite's `INDEXED BY outbox_lane`).
/// Read for an echo of the OA's message during a handoff; through `outbox_lane` (the unsent
/// jobs, by user) rather than `outbox_user`, every job the user ever had, which SQLite's
/// planner chose unhinted (test `in_flight_sends_are_read_from_the_unsent_jobs`). The index's
/// own condition is written out: SQLite uses a partial index only where the query says so.
pub(crate) fn in_flight_payloads(hint: &str) -> String {
    format!(
        "SELECT payload FROM outbox {hint}
          WHERE user_id = $1 AND status IN ('pending', 'sending') AND channel = 'zalo'
            AND status = 'sending'"
    )
}

/// Implements [`Handoffs`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! handoffs_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Handoffs for $store {
            $($own)*

            async fn list_handoffs(
                &self,
                statuses: &[&str],
                limit: i64,
            ) -> Result<Vec<crate::handoff::Handoff>> {
                self.h_list(statuses, limit).await
            }

            async fn get_handoff(&self, id: i64) -> Result<Option<crate::handoff::Handoff>> {
                self.h_get(id).await
            }

            async fn handoff_messages(&self, id: i64) -> Result<Vec<crate::handoff::HandoffMessageRow>> {
                self.h_messages(id).await
            }

            async fn handoff_breaches(&self, id: i64) -> Result<Vec<crate::handoff::Breach>> {
                self.h_breaches(id).await
            }

            async fn claim_handoff(
                &self,
                id: i64,
                agent: &str,
                now: i64,
            ) -> Result<crate::handoff::HandoffUpdate> {
                self.h_take(id, agent, now, false).await
            }

            async fn resolve_handoff(
                &self,
                id: i64,
                agent: &str,
                now: i64,
            ) -> Result<crate::handoff::HandoffUpdate> {
                self.h_take(id, agent, now, true).await
            }

            async fn handoffs_past_deadline(
                &self,
                now: i64,
                below_level: i32,
                limit: i64,
            ) -> Result<Vec<crate::handoff::Handoff>> {
                self.h_past_deadline(now, below_level, limit).await
            }

            async fn record_breach(
                &self,
                breach: &crate::handoff::Breach,
                job: &NewJob,
                now: i64,
            ) -> Result<bool> {
                self.h_record_breach(breach, job, now).await
            }

            async fn handoff_timings(&self, since: i64) -> Result<Vec<crate::handoff::HandoffTiming>> {
                self.h_timings(since).await
            }
        }

        impl $store {
            /// Handoffs in these statuses (all when none are given), unresolved ones first.
            pub(super) async fn h_list(&self, statuses: &[&str], limit: i64) -> Result<Vec<Handoff>> {
                Ok(sqlx::query_as(sql!(
                    $db,
                    format!(
                        "SELECT {HANDOFF_COLUMNS} FROM handoffs
                         WHERE {}
                         ORDER BY CASE WHEN status = 'resolved' THEN 1 ELSE 0 END,
                                  CASE WHEN status = 'resolved' THEN -resolved_at ELSE deadline_at END, id DESC
                         LIMIT $1",
                        pick!(
                            $db,
                            sqlite: "$2 = '[]' OR status IN (SELECT value FROM json_each($2))",
                            postgres: "cardinality($2::text[]) = 0 OR status = ANY($2)",
                        )
                    )
                ))
                .bind(limit)
                .bind(pick!(
                    $db,
                    sqlite: list!($db, statuses),
                    postgres: statuses.iter().map(|s| s.to_string()).collect::<Vec<String>>(),
                ))
                .fetch_all(reader!($db, self))
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
                    begin_write!($db, self, tx);
                    let select = format!("SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE id = $1 FOR UPDATE");
                    let Some(before): Option<Handoff> = sqlx::query_as(sql!($db, select))
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
                    let h: Handoff = sqlx::query_as(sql!($db, format!(
                        "UPDATE handoffs SET status = $1::text,
                            claimed_by = COALESCE(claimed_by, $2::text),
                            claimed_at = COALESCE(claimed_at, $3::bigint),
                            responded_by = COALESCE(responded_by, $2::text),
                            responded_at = COALESCE(responded_at, $3::bigint),
                            response_via = COALESCE(response_via, $4::text),
                            resolved_by = CASE WHEN $1::text = 'resolved' THEN $2::text ELSE resolved_by END,
                            resolved_at = CASE WHEN $1::text = 'resolved' THEN $3::bigint ELSE resolved_at END,
                            updated_at = $3::bigint
                         WHERE id = $5
                         RETURNING {HANDOFF_COLUMNS}"
                    )))
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

            pub(super) async fn h_users_with_tag(&self, tag: &str) -> Result<Vec<String>> {
                Ok(
                    sqlx::query_scalar(sql!($db, "SELECT user_id FROM contact_tags WHERE tag = $1"))
                        .bind(tag)
                        .fetch_all(reader!($db, self))
                        .await?,
                )
            }

            pub(super) async fn h_get(&self, id: i64) -> Result<Option<Handoff>> {
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {HANDOFF_COLUMNS} FROM handoffs WHERE id = $1"
                )))
                .bind(id)
                .fetch_optional(reader!($db, self))
                .await?)
            }

            pub(super) async fn h_messages(&self, id: i64) -> Result<Vec<HandoffMessageRow>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT handoff_id, direction, msg_id, text, admin_id, at FROM handoff_messages
                     WHERE handoff_id = $1 ORDER BY id"),
                )
                .bind(id)
                .fetch_all(reader!($db, self))
                .await?)
            }

            pub(super) async fn h_breaches(&self, id: i64) -> Result<Vec<Breach>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT handoff_id, level, due_at, recorded_at, channel FROM handoff_breaches
                     WHERE handoff_id = $1 ORDER BY level"),
                )
                .bind(id)
                .fetch_all(reader!($db, self))
                .await?)
            }

            pub(super) async fn h_past_deadline(
                &self,
                now: i64,
                below_level: i32,
                limit: i64,
            ) -> Result<Vec<Handoff>> {
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {HANDOFF_COLUMNS} FROM handoffs
                     WHERE status <> 'resolved' AND responded_at IS NULL AND deadline_at <= $1
                       AND escalation_level < $2
                     ORDER BY escalation_level, deadline_at, id LIMIT $3"
                )))
                .bind(now)
                .bind(below_level)
                .bind(limit)
                .fetch_all(reader!($db, self))
                .await?)
            }

            pub(super) async fn h_record_breach(&self, b: &Breach, job: &NewJob, now: i64) -> Result<bool> {
                begin_write!($db, self, tx);
                let raised = sqlx::query(
                    sql!($db, "UPDATE handoffs SET escalation_level = $1, updated_at = $2
                     WHERE id = $3 AND escalation_level < $1 AND responded_at IS NULL
                       AND status <> 'resolved'"),
                )
                .bind(b.level)
                .bind(now)
                .bind(b.handoff_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if raised == 0 {
                    return Ok(false);
                }
                sqlx::query(
                    sql!($db, "INSERT INTO handoff_breaches (handoff_id, level, due_at, recorded_at, channel)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"),
                )
                .bind(b.handoff_id)
                .bind(b.level)
                .bind(b.due_at)
                .bind(b.recorded_at)
                .bind(&b.channel)
                .execute(&mut *tx)
                .await?;
                insert_jobs(&mut tx, &[job], now).await?;
                tx.commit().await?;
                Ok(true)
            }

            pub(super) async fn h_timings(&self, since: i64) -> Result<Vec<HandoffTiming>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT status, opened_at, deadline_at, responded_at FROM handoffs
                     WHERE opened_at >= $1 OR status <> 'resolved'"),
                )
                .bind(since)
                .fetch_all(reader!($db, self))
                .await?)
            }
        }
    };
}
pub(crate) use handoffs_impl;

/// How effects attach messages to a handoff and tell an agent's reply from zaloflow's own send.
/// Written once for both backends, invoked in each backend's module: `$db` `sqlite` or `postgres`
/// (the hooks of [`crate::dialect`]), `$Db` its sqlx database, `$lt` its transactions' lifetime,
/// `$Store` and `$Pool` its store and pool types.
macro_rules! handoff_fns {
    ($db:ident, $Db:ty, $lt:lifetime, $Store:ty, $Pool:ty) => {
        use std::collections::HashMap;

        use $crate::handoff::{
            Breach, Handoff, HandoffMessageRow, HandoffOutcomes, HandoffTiming, HandoffUpdate,
            HANDOFF_COLUMNS,
        };
        use zaloflow_core::handoff::{self, HandoffChange, HandoffMessage, NewHandoff};

        /// The new handoff's id, or the contact's unresolved one when it exists already.
        async fn open(
            tx: &mut Transaction<$lt, $Db>,
            h: &NewHandoff,
            now: i64,
        ) -> Result<std::result::Result<i64, Live>> {
            let text = h.message.as_ref().and_then(|m| m.text.clone());
            let (messages, last) = match &h.message {
                Some(m) => (1, Some(m.at)),
                None => (0, None),
            };
            // Two PostgreSQL instances may race to open one: the one-unresolved-handoff-per-contact
            // index lets the second take the first's. SQLite's one writer cannot race.
            let id: Option<i64> = sqlx::query_scalar(sql!(
                $db,
                pick!(
                    $db,
                    sqlite: "INSERT INTO handoffs (user_id, contact_name, status, priority, team, advisor, rule_id,
                        note, opened_at, deadline_at, first_text, messages, last_message_at, source, updated_at)
                     VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     RETURNING id",
                    postgres: "INSERT INTO handoffs (user_id, contact_name, status, priority, team, advisor, rule_id,
                        note, opened_at, deadline_at, first_text, messages, last_message_at, source, updated_at)
                     VALUES ($1, $2, 'open', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT (user_id) WHERE status <> 'resolved' DO NOTHING
                     RETURNING id",
                )
            ))
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
                let (id, responded): (i64, Option<i64>) = sqlx::query_as(sql!(
                    $db,
                    "SELECT id, responded_at FROM handoffs
                     WHERE user_id = $1 AND status <> 'resolved' FOR UPDATE"
                ))
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

        /// An unresolved handoff as the apply step tracks it.
        struct Live {
            id: i64,
            responded: bool,
        }

        /// Applies handoff changes in order, inside `tx`.
        pub(super) async fn apply(
            tx: &mut Transaction<$lt, $Db>,
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
                let chunk: Vec<String> = chunk.iter().map(|u| u.to_string()).collect();
                let rows: Vec<(i64, String, Option<i64>)> = sqlx::query_as(sql!(
                    $db,
                    "SELECT id, user_id, responded_at FROM handoffs
                     WHERE status <> 'resolved' AND user_id = ANY($1) FOR UPDATE"
                ))
                .bind(list!($db, chunk))
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
                        None => match open(tx, h, now).await? {
                            Ok(id) => {
                                live.insert(
                                    h.user_id.clone(),
                                    Live {
                                        id,
                                        responded: false,
                                    },
                                );
                                out.opened += 1;
                            }
                            // Another instance opened one meanwhile: attach to it.
                            Err(l) => {
                                attach(tx, l.id, h.message.as_ref(), h.priority, now).await?;
                                live.insert(h.user_id.clone(), l);
                                out.attached += 1;
                            }
                        },
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
                        sqlx::query(sql!($db, "INSERT INTO handoff_messages (handoff_id, direction, msg_id, text, admin_id, at)
                             VALUES ($1, 'out', $2, $3, $4, $5)"),
                        )
                        .bind(l.id)
                        .bind(&message.msg_id)
                        .bind(&message.text)
                        .bind(admin_id)
                        .bind(message.at)
                        .execute(&mut **tx)
                        .await?;
                        if !l.responded {
                            let h: Option<Handoff> = sqlx::query_as(sql!($db, format!(
                                "UPDATE handoffs SET responded_by = $1, responded_at = $2,
                                    response_via = '{}', updated_at = $3
                                 WHERE id = $4 AND responded_at IS NULL
                                 RETURNING {HANDOFF_COLUMNS}",
                                handoff::VIA_OA
                            )))
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

        async fn attach(
            tx: &mut Transaction<$lt, $Db>,
            id: i64,
            m: Option<&HandoffMessage>,
            priority: i32,
            now: i64,
        ) -> Result<()> {
            if let Some(m) = m {
                insert_message(tx, id, m).await?;
            }
            sqlx::query(
                sql!($db, "UPDATE handoffs SET messages = messages + $1,
                    last_message_at = GREATEST(COALESCE(last_message_at, 0), $2),
                    first_text = COALESCE(first_text, $3),
                    priority = GREATEST(priority, $4), updated_at = $5
                 WHERE id = $6"),
            )
            .bind(i64::from(m.is_some()))
            .bind(m.map(|m| m.at).unwrap_or(0))
            .bind(m.and_then(|m| m.text.clone()))
            .bind(priority)
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn insert_message(
            tx: &mut Transaction<$lt, $Db>,
            id: i64,
            m: &HandoffMessage,
        ) -> Result<()> {
            sqlx::query(
                sql!($db, "INSERT INTO handoff_messages (handoff_id, direction, msg_id, text, at)
                 VALUES ($1, 'in', $2, $3, $4)"),
            )
            .bind(id)
            .bind(&m.msg_id)
            .bind(&m.text)
            .bind(m.at)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Whether this echo is one of our sends: a job's recorded Zalo message id, or the text of
        /// a Zalo job to this user still in flight (its outcome not recorded yet).
        async fn own_send(
            tx: &mut Transaction<$lt, $Db>,
            user_id: &str,
            m: &HandoffMessage,
        ) -> Result<bool> {
            let known = match &m.msg_id {
                Some(id) => {
                    sqlx::query_scalar::<_, i64>(
                        sql!($db, "SELECT COUNT(*) FROM outbox WHERE provider_id = $1 AND channel = 'zalo'"),
                    )
                    .bind(id)
                    .fetch_one(&mut **tx)
                    .await?
                        > 0
                }
                None => false,
            };
            if known {
                return Ok(true);
            }
            let sql = $crate::handoff::in_flight_payloads(
                pick!($db, sqlite: "INDEXED BY outbox_lane", postgres: ""),
            );
            let payloads: Vec<(String,)> = sqlx::query_as(sql!($db, sql))
            .bind(user_id)
            .fetch_all(&mut **tx)
            .await?;
            Ok(handoff::is_own_send(
                false,
                &handoff::in_flight_texts(payloads.into_iter().map(|(p,)| p)),
                m.text.as_deref(),
            ))
        }
    };
}
pub(crate) use handoff_fns;

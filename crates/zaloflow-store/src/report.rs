//! What reports are made of, as the store counts it: outcome signals applied in the event's
//! transaction, jobs and outcomes per rule and variant.

use std::collections::BTreeMap;

use zaloflow_core::outcome::{is_registration_mark, OutcomeSignal};

/// The outbox jobs that are messages to a customer (what reports count and replies are
/// credited to): not staff notifications (chat, task), not the Zalo tag calls that mirror a
/// rule's tag changes. SQL, the same on both backends.
pub const CUSTOMER_MESSAGE_SQL: &str =
    "channel IN ('zalo', 'sms', 'email', 'zns') AND user_id <> '' \
     AND payload NOT LIKE '{\"channel\":\"zalo_tag\"%'";

/// Rule firings (and campaign steps run) per (rule, hour): what `rule_fire_hours` adds up.
pub fn fire_hours<'a>(
    effects: impl Iterator<Item = &'a crate::Effects>,
) -> Vec<(String, i64, i64)> {
    let mut m: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for e in effects {
        // A campaign's registration marks (its repeat cooldown) are not rule firings.
        let fires = e
            .fires
            .iter()
            .filter(|f| !is_registration_mark(&f.rule_id))
            .map(|f| (f.rule_id.as_str(), f.fired_at));
        let steps = e.outcomes.iter().filter_map(|o| match o {
            OutcomeSignal::Fired { rule_id, at } => Some((rule_id.as_str(), *at)),
            _ => None,
        });
        for (rule, at) in fires.chain(steps) {
            *m.entry((rule, at.div_euclid(3_600_000))).or_default() += 1;
        }
    }
    m.into_iter()
        .map(|((r, h), n)| (r.to_string(), h, n))
        .collect()
}

/// The conditions on an `outbox` row for it to be credited when user `w.user_id` wrote at
/// `w.at`: a rule's message sent to them (or to their phone or email) at most `window` ms
/// before. Both stores build their statement around it.
pub fn credited_send_sql(window: &str) -> String {
    format!(
        "status = 'sent' AND rule_id IS NOT NULL AND {CUSTOMER_MESSAGE_SQL}
         AND user_id IN (w.user_id,
             (SELECT phone FROM contacts WHERE user_id = w.user_id),
             (SELECT email FROM contacts WHERE user_id = w.user_id))
         AND sent_at <= w.at AND sent_at > w.at - {window}"
    )
}

/// An outcome to credit to the job a key names: (kind, key, at).
pub type Credit = (&'static str, String, i64);

/// A batch's outcome signals as rows, in order, so the store credits each kind of signal with
/// one statement per batch rather than one per event.
#[derive(Debug, Default)]
pub struct SignalRows<'a> {
    /// For each id a receipt names: (kind, provider message id, at).
    pub receipts: Vec<Credit>,
    /// (kind, outbox job id, at).
    pub jobs: Vec<Credit>,
    /// (user id, at) for each time a user wrote.
    pub wrote: Vec<(&'a str, i64)>,
}

impl<'a> SignalRows<'a> {
    /// Receipts and email jobs, each with the `outbox` column its key names.
    pub fn credits(&self) -> [(&'static str, &[Credit]); 2] {
        [("provider_id", &self.receipts), ("id", &self.jobs)]
    }

    pub fn of(effects: impl Iterator<Item = &'a crate::Effects>) -> Self {
        let mut rows = SignalRows::default();
        for signal in effects.flat_map(|e| &e.outcomes) {
            match signal {
                OutcomeSignal::Receipt {
                    kind,
                    provider_ids,
                    at,
                } => rows.receipts.extend(
                    provider_ids
                        .iter()
                        .map(|id| (kind.as_str(), id.clone(), *at)),
                ),
                OutcomeSignal::Job { kind, job_id, at } => {
                    rows.jobs.push((kind.as_str(), job_id.to_string(), *at))
                }
                OutcomeSignal::Wrote { user_id, at } => rows.wrote.push((user_id.as_str(), *at)),
                OutcomeSignal::Fired { .. } => {} // counted by fire_hours
            }
        }
        rows
    }
}

/// Jobs of one rule and variant in one status (dead ones also by reason).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobCount {
    pub rule_id: String,
    pub variant: Option<String>,
    pub status: String,
    /// Dead letters: the provider's error code, if any.
    pub last_code: Option<i64>,
    /// Dead letters: the start of the error message.
    pub reason: Option<String>,
    pub n: i64,
}

/// Jobs of one rule and variant with an outcome of one kind.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutcomeCount {
    pub rule_id: String,
    pub variant: Option<String>,
    pub kind: String,
    pub n: i64,
}

/// A handoff a rule opened.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HandoffRow {
    pub rule_id: String,
    pub status: String,
    pub opened_at: i64,
    pub deadline_at: i64,
    pub responded_at: Option<i64>,
}

/// Everything a report is made of, as counted by the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub jobs: Vec<JobCount>,
    pub outcomes: Vec<OutcomeCount>,
    /// (rule id, firings).
    pub fires: Vec<(String, i64)>,
    pub handoffs: Vec<HandoffRow>,
}

/// What the rules did since a time (`Campaigns::report_counts`). Written once for both backends,
/// invoked in each backend's module: `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), `$Db` its sqlx database, `$lt` its transactions' lifetime, `$Store` and
/// `$Pool` its store and pool types.
macro_rules! counts_fn {
    ($db:ident, $Db:ty, $lt:lifetime, $Store:ty, $Pool:ty) => {
        /// `Campaigns::report_counts`.
        pub(super) async fn counts(pool: &$Pool, since: i64, rule: Option<&str>) -> Result<Counts> {
            let pattern = rule.map(|r| format!("{}/%", crate::like_escape(r)));
            let jobs: Vec<JobCount> = sqlx::query_as(sql!(
                $db,
                format!(
                    "SELECT rule_id, variant, status,
                        CASE WHEN status = 'dead' THEN last_code END AS last_code,
                        CASE WHEN status = 'dead' THEN substr(last_error, 1, 60) END AS reason,
                        count(*) AS n
                 FROM outbox
                 WHERE rule_id IS NOT NULL AND created_at >= $1 AND {CUSTOMER_MESSAGE_SQL}
                   AND ($2::text IS NULL OR rule_id = $2 OR rule_id LIKE $3 ESCAPE '\\')
                 GROUP BY 1, 2, 3, 4, 5
                 ORDER BY 1, 2, 3"
                )
            ))
            .bind(since)
            .bind(rule)
            .bind(&pattern)
            .fetch_all(pool)
            .await?;
            let outcomes: Vec<OutcomeCount> = sqlx::query_as(sql!(
                $db,
                format!(
                    "SELECT o.rule_id, o.variant, s.kind, count(*) AS n
                 FROM send_outcomes s JOIN outbox o ON o.id = s.job_id
                 WHERE o.rule_id IS NOT NULL AND o.created_at >= $1
                   AND {CUSTOMER_MESSAGE_SQL}
                   AND ($2::text IS NULL OR o.rule_id = $2 OR o.rule_id LIKE $3 ESCAPE '\\')
                 GROUP BY 1, 2, 3
                 ORDER BY 1, 2, 3"
                )
            ))
            .bind(since)
            .bind(rule)
            .bind(&pattern)
            .fetch_all(pool)
            .await?;
            let fires: Vec<(String, i64)> = sqlx::query_as(sql!(
                $db,
                "SELECT rule_id, sum(fires)::bigint FROM rule_fire_hours
                 WHERE hour >= $1 / 3600000
                   AND ($2::text IS NULL OR rule_id = $2 OR rule_id LIKE $3 ESCAPE '\\')
                 GROUP BY 1 ORDER BY 1"
            ))
            .bind(since)
            .bind(rule)
            .bind(&pattern)
            .fetch_all(pool)
            .await?;
            let handoffs: Vec<HandoffRow> = sqlx::query_as(sql!(
                $db,
                "SELECT rule_id, status, opened_at, deadline_at, responded_at FROM handoffs
                 WHERE rule_id IS NOT NULL AND opened_at >= $1
                   AND ($2::text IS NULL OR rule_id = $2 OR rule_id LIKE $3 ESCAPE '\\')
                 ORDER BY opened_at"
            ))
            .bind(since)
            .bind(rule)
            .bind(&pattern)
            .fetch_all(pool)
            .await?;
            Ok(Counts {
                jobs,
                outcomes,
                fires,
                handoffs,
            })
        }
    };
}
pub(crate) use counts_fn;

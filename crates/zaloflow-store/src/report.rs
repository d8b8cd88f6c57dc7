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

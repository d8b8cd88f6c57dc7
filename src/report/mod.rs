//! Effectiveness (issue 10): what each rule, campaign step and A/B variant achieved.
//!
//! Outcomes are kept in the database and tied to the outbox job (the send) that caused them:
//! - **fired**: the rule fired (counted per hour in `rule_fire_hours`);
//! - **sent / failed**: the job's own status; dead letters are counted by reason;
//! - **delivered / seen**: Zalo's `user_received_message` / `user_seen_message` receipts carry
//!   the `message_id` Zalo answered the send with (kept as the job's `provider_id`); a person
//!   opening a tracked email counts as seen;
//! - **clicked**: a tracked link of the job was followed;
//! - **replied**: the user wrote within 24 h of the send — credited to the latest send to them
//!   (last touch), so a reply counts for one rule and variant, never for every recent send;
//! - **came back**: the user wrote within 7 days (also last touch) — what a re-activation stage
//!   message is for;
//! - **handoffs**: deadline met or missed, and the time to the first human reply, from the
//!   handoffs a rule opened.
//!
//! Signals are worked out from the event in [`signals`] and applied by the store in the event's
//! own transaction, so a receipt or reply is counted exactly once however often Zalo retries it.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::zalo::event::{Event, EventKind};
pub use zaloflow_core::outcome::*;
pub use zaloflow_store::report::*;

pub mod ab;
pub mod render;
pub mod spend;

/// The outcome signals of an event processed at `at` (its own time).
pub fn signals(event: &Event, at: i64) -> Vec<OutcomeSignal> {
    let receipt = |kind, ids: &Vec<String>, extra: Option<&String>| {
        let mut provider_ids: Vec<String> = ids.iter().filter(|i| !i.is_empty()).cloned().collect();
        provider_ids.extend(extra.filter(|t| !t.is_empty()).cloned());
        (!provider_ids.is_empty()).then_some(OutcomeSignal::Receipt {
            kind,
            provider_ids,
            at,
        })
    };
    let one = match &event.kind {
        EventKind::Received {
            msg_ids,
            tracking_id,
            ..
        } => receipt(OutcomeKind::Delivered, msg_ids, tracking_id.as_ref()),
        EventKind::Seen { msg_ids, .. } => {
            // Seen implies delivered (the delivery receipt may be lost or come later).
            let mut out = Vec::new();
            out.extend(receipt(OutcomeKind::Delivered, msg_ids, None));
            out.extend(receipt(OutcomeKind::Seen, msg_ids, None));
            return out;
        }
        EventKind::UserMessage { user_id, .. } if !user_id.is_empty() => {
            Some(OutcomeSignal::Wrote {
                user_id: user_id.clone(),
                at,
            })
        }
        EventKind::EmailOpened {
            job_id,
            prefetch: false,
            ..
        } => Some(OutcomeSignal::Job {
            kind: OutcomeKind::Seen,
            job_id: *job_id,
            at,
        }),
        EventKind::EmailClicked { job_id, .. } => {
            return vec![
                OutcomeSignal::Job {
                    kind: OutcomeKind::Seen,
                    job_id: *job_id,
                    at,
                },
                OutcomeSignal::Job {
                    kind: OutcomeKind::Clicked,
                    job_id: *job_id,
                    at,
                },
            ];
        }
        _ => None,
    };
    one.into_iter().collect()
}

// --- what the store counts ---

// --- the report ---

/// Counts of one rule, step or variant. Rates are taken over `sent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Outcomes {
    /// Jobs enqueued.
    pub jobs: i64,
    /// Not sent yet (waiting, retrying, in flight).
    pub pending: i64,
    pub sent: i64,
    /// Dead letters.
    pub failed: i64,
    /// Dead letters by reason (`-230 …`, `timeout`…).
    pub failed_by_reason: BTreeMap<String, i64>,
    pub delivered: i64,
    pub seen: i64,
    /// The user wrote within 24 h (this was the latest send to them).
    pub replied: i64,
    /// The user wrote again within 7 days (this was the latest send to them).
    pub came_back: i64,
    pub clicked: i64,
}

impl Outcomes {
    fn add(&mut self, o: &Outcomes) {
        self.jobs += o.jobs;
        self.pending += o.pending;
        self.sent += o.sent;
        self.failed += o.failed;
        for (k, v) in &o.failed_by_reason {
            *self.failed_by_reason.entry(k.clone()).or_default() += v;
        }
        self.delivered += o.delivered;
        self.seen += o.seen;
        self.replied += o.replied;
        self.came_back += o.came_back;
        self.clicked += o.clicked;
    }

    /// The count of an outcome kind.
    pub fn get(&self, kind: OutcomeKind) -> i64 {
        match kind {
            OutcomeKind::Delivered => self.delivered,
            OutcomeKind::Seen => self.seen,
            OutcomeKind::Replied => self.replied,
            OutcomeKind::CameBack => self.came_back,
            OutcomeKind::Clicked => self.clicked,
        }
    }

    fn get_mut(&mut self, kind: OutcomeKind) -> &mut i64 {
        match kind {
            OutcomeKind::Delivered => &mut self.delivered,
            OutcomeKind::Seen => &mut self.seen,
            OutcomeKind::Replied => &mut self.replied,
            OutcomeKind::CameBack => &mut self.came_back,
            OutcomeKind::Clicked => &mut self.clicked,
        }
    }

    /// `kind` over sent, when anything was sent.
    pub fn rate(&self, kind: OutcomeKind) -> Option<f64> {
        (self.sent > 0).then(|| self.get(kind) as f64 / self.sent as f64)
    }
}

/// One A/B variant of a rule or step.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VariantReport {
    #[schema(example = "b")]
    pub variant: String,
    pub outcomes: Outcomes,
}

/// A variant compared with the first one (the control) on one outcome: a two-proportion
/// z-test over sends.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// `seen`, `replied`, `came_back` or `clicked`.
    #[schema(example = "replied")]
    pub outcome: String,
    #[schema(example = "a")]
    pub control: String,
    #[schema(example = "b")]
    pub variant: String,
    pub control_rate: f64,
    pub variant_rate: f64,
    pub z: Option<f64>,
    /// Two-sided.
    pub p_value: Option<f64>,
    /// `significant` (p < 0.05), `not_significant`, or `too_few` (under
    /// [`ab::MIN_SENDS`] sends in a variant: keep both running).
    #[schema(example = "not_significant")]
    pub verdict: String,
}

/// A rule, or one step of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StepReport {
    /// The id jobs carry: `rule`, or `campaign/step`.
    #[schema(example = "chao_buoi_sang")]
    pub rule_id: String,
    /// The step, for a campaign step.
    pub step: Option<String>,
    /// Times it fired.
    pub fired: i64,
    /// All its sends.
    pub total: Outcomes,
    /// Its A/B variants side by side (empty without variants).
    pub variants: Vec<VariantReport>,
    pub comparisons: Vec<Comparison>,
}

/// Handoffs a rule opened: deadlines and the first human reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct HandoffReport {
    pub opened: u64,
    pub deadlines_met: u64,
    pub deadlines_missed: u64,
    /// Unanswered, deadline still ahead.
    pub deadlines_running: u64,
    pub first_reply_p50_seconds: Option<f64>,
    pub first_reply_p90_seconds: Option<f64>,
}

/// A rule (or a campaign and its steps).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleReport {
    #[schema(example = "chao_buoi_sang")]
    pub rule: String,
    /// One entry for a rule; one per step for a campaign.
    pub steps: Vec<StepReport>,
    pub handoffs: Option<HandoffReport>,
}

/// The effectiveness report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    /// Jobs created, firings and handoffs opened from this instant on (ms).
    pub since: i64,
    /// Only this rule (and its steps), if asked.
    pub rule: Option<String>,
    /// When the report was made (ms).
    pub generated_at: i64,
    pub rules: Vec<RuleReport>,
    /// What the period's sends cost, per rule, channel, class and day.
    pub spend: spend::SpendReport,
}

fn reason(last_code: Option<i64>, error: Option<&str>) -> String {
    let error = error.map(str::trim).filter(|e| !e.is_empty());
    match (last_code, error) {
        (Some(c), Some(e)) => format!("{c} {}", clip(e, 48)),
        (Some(c), None) => c.to_string(),
        (None, Some(e)) => clip(e, 48),
        (None, None) => "unknown".into(),
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n - 1).collect();
        out.push('…');
        out
    }
}

/// Builds the report from the store's counts.
pub fn build(counts: &Counts, since: i64, rule: Option<&str>, now: i64) -> Report {
    // rule_id -> variant ('' = none) -> outcomes
    let mut by: BTreeMap<String, BTreeMap<String, Outcomes>> = BTreeMap::new();
    for j in &counts.jobs {
        let o = by
            .entry(j.rule_id.clone())
            .or_default()
            .entry(j.variant.clone().unwrap_or_default())
            .or_default();
        o.jobs += j.n;
        match j.status.as_str() {
            "sent" => o.sent += j.n,
            "dead" => {
                o.failed += j.n;
                *o.failed_by_reason
                    .entry(reason(j.last_code, j.reason.as_deref()))
                    .or_default() += j.n;
            }
            _ => o.pending += j.n,
        }
    }
    for c in &counts.outcomes {
        let Some(kind) = OutcomeKind::ALL.into_iter().find(|k| k.as_str() == c.kind) else {
            continue;
        };
        let o = by
            .entry(c.rule_id.clone())
            .or_default()
            .entry(c.variant.clone().unwrap_or_default())
            .or_default();
        *o.get_mut(kind) += c.n;
    }
    let fires: BTreeMap<&str, i64> = counts.fires.iter().map(|(r, n)| (r.as_str(), *n)).collect();
    let mut ids: Vec<String> = by.keys().cloned().collect();
    ids.extend(fires.keys().map(|r| r.to_string()));
    ids.extend(counts.handoffs.iter().map(|h| h.rule_id.clone()));
    ids.sort();
    ids.dedup();

    let mut rules: BTreeMap<String, RuleReport> = BTreeMap::new();
    for id in ids {
        let (top, step) = match id.split_once('/') {
            Some((c, s)) => (c.to_string(), Some(s.to_string())),
            None => (id.clone(), None),
        };
        let variants_map = by.remove(&id).unwrap_or_default();
        let mut total = Outcomes::default();
        for o in variants_map.values() {
            total.add(o);
        }
        let variants: Vec<VariantReport> = variants_map
            .into_iter()
            .filter(|(v, _)| !v.is_empty())
            .map(|(variant, outcomes)| VariantReport { variant, outcomes })
            .collect();
        let comparisons = ab::compare(&variants);
        rules
            .entry(top.clone())
            .or_insert_with(|| RuleReport {
                rule: top.clone(),
                steps: Vec::new(),
                handoffs: None,
            })
            .steps
            .push(StepReport {
                fired: fires.get(id.as_str()).copied().unwrap_or(0),
                rule_id: id,
                step,
                total,
                variants,
                comparisons,
            });
    }
    let mut by_rule: BTreeMap<&str, Vec<crate::handoff::timing::HandoffTiming>> = BTreeMap::new();
    for h in &counts.handoffs {
        let top = h.rule_id.split('/').next().unwrap_or_default();
        by_rule
            .entry(top)
            .or_default()
            .push(crate::handoff::timing::HandoffTiming {
                status: h.status.clone(),
                opened_at: h.opened_at,
                deadline_at: h.deadline_at,
                responded_at: h.responded_at,
            });
    }
    for (top, rows) in by_rule {
        let s = crate::handoff::timing::summarize(&rows, now);
        if let Some(r) = rules.get_mut(top) {
            r.handoffs = Some(HandoffReport {
                opened: s.total,
                deadlines_met: s.deadlines_met,
                deadlines_missed: s.deadlines_missed,
                deadlines_running: s.deadlines_running,
                first_reply_p50_seconds: s.first_response_p50_seconds,
                first_reply_p90_seconds: s.first_response_p90_seconds,
            });
        }
    }
    Report {
        since,
        rule: rule.map(str::to_string),
        generated_at: now,
        rules: rules.into_values().collect(),
        spend: spend::SpendReport::default(),
    }
}

/// Reads the counts and builds the report.
pub async fn make(
    store: &crate::store::DynStore,
    since: i64,
    rule: Option<&str>,
    now: i64,
    tz: chrono_tz::Tz,
) -> crate::store::Result<Report> {
    let counts = store.report_counts(since, rule).await?;
    let mut report = build(&counts, since, rule, now);
    report.spend = spend::build(&store.spend_rows(since).await?, rule, tz);
    spend::add_not_sent(&mut report.spend, &store.not_sent_rows(since).await?, rule);
    Ok(report)
}

/// `--since`: a date (`2027-03-01`, midnight in the OA's time zone) or an RFC 3339 instant.
pub fn parse_since(s: &str, tz: chrono_tz::Tz) -> anyhow::Result<i64> {
    use chrono::TimeZone;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        anyhow::anyhow!("--since {s:?} is not a date (2027-03-01) or an RFC 3339 time")
    })?;
    let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
    tz.from_local_datetime(&midnight)
        .earliest()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| anyhow::anyhow!("--since {s:?}: no such local time"))
}

/// `zaloflow report`: the table, for a terminal.
pub async fn command(
    store: &crate::store::DynStore,
    tz: chrono_tz::Tz,
    lang: crate::i18n::Lang,
    since: Option<&str>,
    rule: Option<&str>,
) -> anyhow::Result<String> {
    let since = since.map(|s| parse_since(s, tz)).transpose()?.unwrap_or(0);
    let report = make(store, since, rule, crate::clock::system_now(), tz).await?;
    Ok(render::text(&report, tz, lang))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(rule: &str, variant: Option<&str>, status: &str, n: i64) -> JobCount {
        JobCount {
            rule_id: rule.into(),
            variant: variant.map(Into::into),
            status: status.into(),
            last_code: (status == "dead").then_some(-230),
            reason: (status == "dead").then(|| "user has not interacted".into()),
            n,
        }
    }

    #[test]
    fn counts_fold_into_rules_steps_and_variants() {
        let counts = Counts {
            jobs: vec![
                job("greet", Some("a"), "sent", 10),
                job("greet", Some("b"), "sent", 8),
                job("greet", Some("b"), "dead", 2),
                job("camp/day_1", None, "sent", 3),
                job("camp/day_2", None, "pending", 1),
            ],
            outcomes: vec![
                OutcomeCount {
                    rule_id: "greet".into(),
                    variant: Some("b".into()),
                    kind: "replied".into(),
                    n: 4,
                },
                OutcomeCount {
                    rule_id: "camp/day_1".into(),
                    variant: None,
                    kind: "clicked".into(),
                    n: 1,
                },
            ],
            fires: vec![("greet".into(), 20), ("camp/day_1".into(), 3)],
            handoffs: vec![],
        };
        let r = build(&counts, 0, None, 1);
        assert_eq!(r.rules.len(), 2);
        let camp = &r.rules[0];
        assert_eq!(camp.rule, "camp");
        assert_eq!(camp.steps.len(), 2);
        assert_eq!(camp.steps[0].step.as_deref(), Some("day_1"));
        assert_eq!(camp.steps[0].total.clicked, 1);
        assert_eq!(camp.steps[1].total.pending, 1);
        let greet = &r.rules[1].steps[0];
        assert_eq!(greet.fired, 20);
        assert_eq!(greet.total.jobs, 20);
        assert_eq!(greet.total.sent, 18);
        assert_eq!(greet.total.failed, 2);
        assert_eq!(
            greet
                .total
                .failed_by_reason
                .get("-230 user has not interacted"),
            Some(&2)
        );
        assert_eq!(greet.variants.len(), 2);
        assert_eq!(greet.variants[1].outcomes.replied, 4);
        assert!(greet.comparisons.iter().any(|c| c.outcome == "replied"));
    }

    #[test]
    fn firings_and_campaign_steps_count_per_hour() {
        let h = 3_600_000;
        let fx = crate::store::Effects {
            fires: vec![
                crate::store::RuleFire {
                    user_id: "u1".into(),
                    rule_id: "greet".into(),
                    period_key: "p".into(),
                    fired_at: 5 * h + 1,
                },
                crate::store::RuleFire {
                    user_id: "u2".into(),
                    rule_id: "greet".into(),
                    period_key: "p".into(),
                    fired_at: 5 * h + 2,
                },
            ],
            outcomes: vec![
                OutcomeSignal::Fired {
                    rule_id: "camp/day_1".into(),
                    at: 6 * h,
                },
                OutcomeSignal::Wrote {
                    user_id: "u1".into(),
                    at: 6 * h,
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            fire_hours(std::iter::once(&fx)),
            vec![("camp/day_1".into(), 6, 1), ("greet".into(), 5, 2)]
        );
    }

    #[test]
    fn since_takes_dates_in_the_oa_time_zone() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        // 2027-03-01 00:00 +07:00 = 2027-02-28 17:00 UTC.
        assert_eq!(
            parse_since("2027-03-01", tz).unwrap(),
            parse_since("2027-02-28T17:00:00Z", tz).unwrap()
        );
        assert!(parse_since("March", tz).is_err());
    }
}

//! What a tick did, for people (`zaloflow tick` prints it) and for the log.

use std::collections::BTreeMap;
use std::fmt;

use rust_i18n::t;

use crate::i18n::{tr, Lang};
use crate::outbox::Summary;
use crate::report::spend::reason_words;

/// One schedule occurrence.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScheduleReport {
    pub rule: String,
    pub occurrence: i64,
    pub status: ScheduleStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleStatus {
    /// Sent to the contacts its conditions chose.
    Ran { contacts: usize, fired: usize },
    /// Missed by more than the grace period (the service was down): not sent late.
    Stale,
}

/// One rule of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuleReport {
    /// Contacts the scan looked at for it.
    pub candidates: usize,
    /// Contacts it fired for.
    pub fired: usize,
}

/// One campaign.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CampaignReport {
    pub entered: usize,
    /// Step id -> members it ran for.
    pub steps: BTreeMap<String, usize>,
    /// Steps skipped because their `if:` did not hold.
    pub skipped: usize,
    /// Steps moved to their next allowed day or clock time.
    pub rescheduled: usize,
    pub left: usize,
    /// Members who received their last step.
    pub done: usize,
    /// What an edit of the campaign's steps did to its members (one line per changed step).
    pub edits: Vec<String>,
}

/// What one tick decided and delivered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TickReport {
    /// The tick's instant (ms).
    pub at: i64,
    #[serde(skip)]
    pub tz: chrono_tz::Tz,
    /// The language of the summary (`ZALOFLOW_LANG`).
    #[serde(skip)]
    pub lang: Lang,
    /// False when another instance held the tick lease (nothing was decided here).
    pub ran: bool,
    pub campaigns: BTreeMap<String, CampaignReport>,
    pub field_changes: BTreeMap<String, RuleReport>,
    pub schedules: Vec<ScheduleReport>,
    pub reactivation: BTreeMap<String, RuleReport>,
    pub special_days: BTreeMap<String, RuleReport>,
    pub not_opened: BTreeMap<String, RuleReport>,
    /// Outbound jobs enqueued by this tick.
    pub jobs: usize,
    /// Sends recorded as skipped by this tick.
    pub skipped: usize,
    /// The same by reason (`not_configured`, `window_closed`, `not_following`, …).
    pub skipped_by: BTreeMap<String, usize>,
    /// What the delivery pass sent (`tick --at`).
    pub delivered: Option<Summary>,
    /// Handoff deadlines escalated by this tick.
    pub escalated: usize,
}

impl TickReport {
    pub fn new(at: i64, tz: chrono_tz::Tz, lang: Lang) -> TickReport {
        TickReport {
            at,
            tz,
            lang,
            ran: false,
            campaigns: BTreeMap::new(),
            field_changes: BTreeMap::new(),
            schedules: Vec::new(),
            reactivation: BTreeMap::new(),
            special_days: BTreeMap::new(),
            not_opened: BTreeMap::new(),
            escalated: 0,
            jobs: 0,
            skipped: 0,
            skipped_by: BTreeMap::new(),
            delivered: None,
        }
    }

    pub fn campaign(&mut self, id: &str) -> &mut CampaignReport {
        self.campaigns.entry(id.to_string()).or_default()
    }
    pub fn field_changes(&mut self, rule: &str) -> &mut RuleReport {
        self.field_changes.entry(rule.to_string()).or_default()
    }
    pub fn reactivation(&mut self, rule: &str) -> &mut RuleReport {
        self.reactivation.entry(rule.to_string()).or_default()
    }
    pub fn special_day(&mut self, rule: &str) -> &mut RuleReport {
        self.special_days.entry(rule.to_string()).or_default()
    }
    pub fn not_opened(&mut self, rule: &str) -> &mut RuleReport {
        self.not_opened.entry(rule.to_string()).or_default()
    }

    /// Nothing decided and nothing delivered.
    pub fn is_quiet(&self) -> bool {
        self.jobs == 0
            && self.skipped == 0
            && self
                .campaigns
                .values()
                .all(|c| *c == CampaignReport::default())
            && self.schedules.is_empty()
            && self.escalated == 0
            && self.fired() == 0
            && self
                .delivered
                .as_ref()
                .is_none_or(|d| *d == Summary::default())
    }

    /// Rule firings of the scans.
    pub fn fired(&self) -> usize {
        [
            &self.field_changes,
            &self.reactivation,
            &self.special_days,
            &self.not_opened,
        ]
        .iter()
        .flat_map(|m| m.values())
        .map(|r| r.fired)
        .sum()
    }

    /// Campaign steps run.
    pub fn steps_run(&self) -> usize {
        self.campaigns.values().flat_map(|c| c.steps.values()).sum()
    }

    /// A one-line summary for the log.
    pub fn one_line(&self) -> String {
        format!(
            "{} campaign steps, {} schedule runs, {} rule firings, {} jobs",
            self.steps_run(),
            self.schedules.len(),
            self.fired(),
            self.jobs
        )
    }

    fn local(&self, ms: i64) -> String {
        crate::clock::to_utc(ms)
            .with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }
}

impl fmt::Display for TickReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.lang.code();
        let at = self.local(self.at);
        writeln!(
            f,
            "{}",
            t!("tick.header", locale = l, at = at, tz = self.tz)
        )?;
        if !self.ran {
            writeln!(f, "  {}", tr(self.lang, "tick.other_instance"))?;
        }
        for (id, c) in &self.campaigns {
            let mut parts = Vec::new();
            if c.entered > 0 {
                parts.push(t!("tick.campaign.entered", locale = l, n = c.entered));
            }
            for (step, n) in &c.steps {
                parts.push(t!("tick.campaign.step", locale = l, step = step, n = n));
            }
            if c.skipped > 0 {
                parts.push(t!("tick.campaign.skipped", locale = l, n = c.skipped));
            }
            if c.rescheduled > 0 {
                parts.push(t!(
                    "tick.campaign.rescheduled",
                    locale = l,
                    n = c.rescheduled
                ));
            }
            if c.left > 0 {
                parts.push(t!("tick.campaign.left", locale = l, n = c.left));
            }
            if c.done > 0 {
                parts.push(t!("tick.campaign.done", locale = l, n = c.done));
            }
            if !parts.is_empty() {
                let parts = parts.join(", ");
                writeln!(
                    f,
                    "  {}",
                    t!("tick.campaign", locale = l, id = id, parts = parts)
                )?;
            }
            for e in &c.edits {
                writeln!(
                    f,
                    "  {}",
                    t!("tick.campaign.edited", locale = l, id = id, what = e)
                )?;
            }
        }
        for (rule, r) in &self.field_changes {
            let line = t!("tick.field_changed", locale = l, rule = rule, n = r.fired);
            writeln!(f, "  {line}")?;
        }
        for s in &self.schedules {
            let at = self.local(s.occurrence);
            let line = match &s.status {
                ScheduleStatus::Ran { contacts, fired } => t!(
                    "tick.schedule.ran",
                    locale = l,
                    rule = s.rule,
                    at = at,
                    fired = fired,
                    contacts = contacts
                ),
                ScheduleStatus::Stale => {
                    t!("tick.schedule.stale", locale = l, rule = s.rule, at = at)
                }
            };
            writeln!(f, "  {line}")?;
        }
        for (key, scans) in [
            ("tick.reactivation", &self.reactivation),
            ("tick.special_day", &self.special_days),
        ] {
            for (rule, r) in scans {
                let line = t!(
                    key,
                    locale = l,
                    rule = rule,
                    candidates = r.candidates,
                    fired = r.fired
                );
                writeln!(f, "  {line}")?;
            }
        }
        for (rule, r) in &self.not_opened {
            writeln!(
                f,
                "  {}",
                t!("tick.not_opened", locale = l, rule = rule, n = r.fired)
            )?;
        }
        if self.escalated > 0 {
            writeln!(
                f,
                "  {}",
                t!("tick.escalated", locale = l, n = self.escalated)
            )?;
        }
        if self.ran
            && self.jobs == 0
            && self.skipped == 0
            && self.steps_run() == 0
            && self.fired() == 0
        {
            writeln!(f, "  {}", tr(self.lang, "tick.nothing_due"))?;
        } else if self.jobs > 0 {
            writeln!(f, "  {}", t!("tick.jobs", locale = l, n = self.jobs))?;
        }
        if self.skipped > 0 {
            let key = if self.skipped == 1 {
                "tick.skipped.one"
            } else {
                "tick.skipped.many"
            };
            let why: Vec<String> = self
                .skipped_by
                .iter()
                .map(|(reason, n)| format!("{n} {}", reason_words(self.lang, reason)))
                .collect();
            let why = why.join(", ");
            writeln!(f, "  {}", t!(key, locale = l, n = self.skipped, why = why))?;
        }
        if let Some(d) = &self.delivered {
            let line = t!(
                "tick.delivered",
                locale = l,
                sent = d.sent,
                skipped = d.skipped,
                held = d.held,
                retried = d.retried,
                dead = d.dead
            );
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Jobs and skipped sends (by reason) that a batch of decisions carries.
#[derive(Debug, Default, Clone)]
pub struct JobCounts {
    pub jobs: usize,
    pub skipped: BTreeMap<String, usize>,
}

impl TickReport {
    /// Counts what `applied` of `n` decisions added (decisions taken before, whose marks
    /// exist, added nothing).
    pub fn add_jobs(&mut self, c: &JobCounts, applied: usize, n: usize) {
        let n = n.max(1);
        self.jobs += c.jobs * applied / n;
        for (reason, k) in &c.skipped {
            let k = k * applied / n;
            if k > 0 {
                self.skipped += k;
                *self.skipped_by.entry(reason.clone()).or_default() += k;
            }
        }
    }
}

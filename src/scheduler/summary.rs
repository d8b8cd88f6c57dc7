//! What a tick did, for people (`zaloflow tick` prints it) and for the log.

use std::collections::BTreeMap;
use std::fmt;

use crate::outbox::Summary;

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
    pub fn new(at: i64, tz: chrono_tz::Tz) -> TickReport {
        TickReport {
            at,
            tz,
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
        writeln!(f, "tick at {} ({})", self.local(self.at), self.tz)?;
        if !self.ran {
            writeln!(
                f,
                "  another instance is ticking right now: nothing decided here"
            )?;
        }
        for (id, c) in &self.campaigns {
            let mut parts = Vec::new();
            if c.entered > 0 {
                parts.push(format!("{} entered", c.entered));
            }
            for (step, n) in &c.steps {
                parts.push(format!("step {step} ran for {n}"));
            }
            if c.skipped > 0 {
                parts.push(format!("{} steps skipped (their `if:`)", c.skipped));
            }
            if c.rescheduled > 0 {
                parts.push(format!(
                    "{} moved to the next allowed day/time",
                    c.rescheduled
                ));
            }
            if c.left > 0 {
                parts.push(format!("{} left", c.left));
            }
            if c.done > 0 {
                parts.push(format!("{} finished", c.done));
            }
            if !parts.is_empty() {
                writeln!(f, "  campaign {id}: {}", parts.join(", "))?;
            }
            for e in &c.edits {
                writeln!(f, "  campaign {id} was edited: {e}")?;
            }
        }
        for (rule, r) in &self.field_changes {
            writeln!(f, "  field changed: {rule} ran for {}", r.fired)?;
        }
        for s in &self.schedules {
            match &s.status {
                ScheduleStatus::Ran { contacts, fired } => writeln!(
                    f,
                    "  schedule {} at {}: {fired} of {contacts} contacts",
                    s.rule,
                    self.local(s.occurrence)
                )?,
                ScheduleStatus::Stale => writeln!(
                    f,
                    "  schedule {} at {}: missed (the service was not running), not sent late",
                    s.rule,
                    self.local(s.occurrence)
                )?,
            }
        }
        for (rule, r) in &self.reactivation {
            writeln!(
                f,
                "  re-activation {rule}: {} silent contacts found, sent to {}",
                r.candidates, r.fired
            )?;
        }
        for (rule, r) in &self.special_days {
            writeln!(
                f,
                "  special day {rule}: {} contacts with the date, sent to {}",
                r.candidates, r.fired
            )?;
        }
        for (rule, r) in &self.not_opened {
            writeln!(f, "  email not opened: {rule} ran for {}", r.fired)?;
        }
        if self.escalated > 0 {
            writeln!(
                f,
                "  handoff deadlines missed and escalated: {}",
                self.escalated
            )?;
        }
        if self.ran
            && self.jobs == 0
            && self.skipped == 0
            && self.steps_run() == 0
            && self.fired() == 0
        {
            writeln!(f, "  nothing was due")?;
        } else if self.jobs > 0 {
            writeln!(f, "  {} messages and tasks queued", self.jobs)?;
        }
        if self.skipped > 0 {
            let sends = if self.skipped == 1 { "send" } else { "sends" };
            let why: Vec<String> = self
                .skipped_by
                .iter()
                .map(|(reason, n)| format!("{n} {}", skip_reason_words(reason)))
                .collect();
            writeln!(
                f,
                "  {} {sends} skipped (see the outbox, status=skipped): {}",
                self.skipped,
                why.join(", ")
            )?;
        }
        if let Some(d) = &self.delivered {
            writeln!(
                f,
                "  delivered: {} sent, {} skipped, {} held, {} to retry, {} failed for good",
                d.sent, d.skipped, d.held, d.retried, d.dead
            )?;
        }
        Ok(())
    }
}

/// A skipped send's reason in the words of the tick's summary.
fn skip_reason_words(reason: &str) -> &str {
    match reason {
        "not_configured" => "channel not configured",
        "window_closed" => "outside Zalo's 7-day window",
        "not_following" => "not following the OA",
        "not_zalo_user" => "not a Zalo user",
        "opted_out" => "the user refused this type of message",
        "fell_back" => "refused by Zalo, the next choice sent instead",
        other => other,
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

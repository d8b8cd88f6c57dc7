//! What a run did, per local day and rule: fires, sends by channel and class, skips by reason,
//! handoffs opened, template messages (against the OA's daily quota) and cost in VND. Read
//! from a scratch copy's outbox after its run (or from the live outbox, for comparison), a
//! page at a time.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone};
use serde::Serialize;

use crate::channels::Payload;
use crate::store::{DynStore, FireCount, Job};

use super::Window;

/// The counts of one rule on one day (or of a whole run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub fires: i64,
    /// Messages sent, by channel (`zalo`, `zns`, `sms`, `email`, `chat`, `task`; `zalo_tag`
    /// for tags mirrored to Zalo).
    pub sends: BTreeMap<String, i64>,
    /// Billed sends by class (`consultation_free`, `promotion`, …).
    pub classes: BTreeMap<String, i64>,
    /// Sends not made, by reason (`not_configured`, `opted_out`, `held`, `dead`…).
    pub skips: BTreeMap<String, i64>,
    pub handoffs: i64,
    /// Template messages (ZNS/ZBS): they count against the OA's daily quota.
    pub templates: i64,
    pub vnd: i64,
}

impl Counts {
    pub fn sent(&self) -> i64 {
        self.sends
            .iter()
            .filter(|(c, _)| c.as_str() != "zalo_tag")
            .map(|(_, n)| n)
            .sum()
    }

    pub fn skipped(&self) -> i64 {
        self.skips.values().sum()
    }

    pub fn add(&mut self, o: &Counts) {
        self.fires += o.fires;
        for (k, v) in &o.sends {
            *self.sends.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.classes {
            *self.classes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.skips {
            *self.skips.entry(k.clone()).or_default() += v;
        }
        self.handoffs += o.handoffs;
        self.templates += o.templates;
        self.vnd += o.vnd;
    }

    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }
}

/// The key of sends no rule made (staff notices, escalations).
pub const NO_RULE: &str = "";

/// Counts per day and rule.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    #[serde(skip)]
    tz: chrono_tz::Tz,
    /// The days shown: instants outside are counted in the nearest (the last pass at the
    /// window's end belongs to its last day).
    #[serde(skip)]
    bounds: Option<(NaiveDate, NaiveDate)>,
    pub days: BTreeMap<NaiveDate, BTreeMap<String, Counts>>,
    /// Each send, for exact comparisons: (rule, user, channel, text or template, day); kept
    /// only when asked (`keeping_sends`: it grows with the sends).
    #[serde(skip)]
    pub sends: Vec<SendKey>,
    #[serde(skip)]
    keep_sends: bool,
}

/// One send, as a comparison of two runs sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SendKey {
    pub rule: String,
    pub user: String,
    pub channel: String,
    pub what: String,
    pub day: NaiveDate,
}

impl Tally {
    pub fn new(tz: chrono_tz::Tz) -> Tally {
        Tally {
            tz,
            bounds: None,
            days: BTreeMap::new(),
            sends: Vec::new(),
            keep_sends: false,
        }
    }

    /// Each send is kept too (tests compare runs send for send).
    pub fn keeping_sends(mut self, keep: bool) -> Tally {
        self.keep_sends = keep;
        self
    }

    /// Counts are shown within `window`'s days.
    pub fn within(mut self, window: Window) -> Tally {
        let (lo, hi) = (self.date(window.from), self.date(window.to - 1));
        self.bounds = Some((lo, hi));
        // Every day of the window is shown, quiet ones too.
        for d in lo.iter_days().take_while(|d| *d <= hi) {
            self.days.entry(d).or_default();
        }
        self
    }

    fn date(&self, at: i64) -> NaiveDate {
        self.tz
            .timestamp_millis_opt(at)
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default()
    }

    fn day_of(&self, at: i64) -> NaiveDate {
        let d = self.date(at);
        match self.bounds {
            Some((lo, hi)) => d.clamp(lo, hi),
            None => d,
        }
    }

    fn entry(&mut self, at: i64, rule: &str) -> &mut Counts {
        let day = self.day_of(at);
        self.days
            .entry(day)
            .or_default()
            .entry(rule.to_string())
            .or_default()
    }

    /// Adds rule firings per hour.
    pub fn add_fires(&mut self, counts: &[FireCount]) {
        for f in counts {
            self.entry(f.hour * 3_600_000, &f.rule_id).fires += f.fires;
        }
    }

    /// Counts one outbox job: sent on its send day, not sent on the day it was first due.
    pub fn add_job(&mut self, j: &Job) {
        let payload: Option<Payload> = serde_json::from_str(&j.payload).ok();
        self.add_read_job(j, payload.as_ref());
    }

    /// [`Tally::add_job`] with the job's payload already read (the memory outbox has it).
    pub fn add_read_job(&mut self, j: &Job, payload: Option<&Payload>) {
        let rule = j.rule_id.clone().unwrap_or_default();
        let channel = match payload {
            Some(Payload::ZaloTag { .. }) => "zalo_tag".to_string(),
            _ => j.channel.clone(),
        };
        let held = j
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with(crate::outbox::sender::HELD_PREFIX));
        match j.status.as_str() {
            "sent" => {
                let at = j.sent_at.unwrap_or(j.run_at);
                let what = payload.map(what_of).unwrap_or_default();
                let day = self.day_of(at);
                let c = self.entry(at, &rule);
                *c.sends.entry(channel.clone()).or_default() += 1;
                if let Some(class) = &j.send_class {
                    *c.classes.entry(class.clone()).or_default() += 1;
                    if class.starts_with("template") {
                        c.templates += 1;
                    }
                }
                c.vnd += j.cost_vnd.unwrap_or(0);
                if channel != "zalo_tag" && self.keep_sends {
                    self.sends.push(SendKey {
                        rule,
                        user: j.user_id.clone(),
                        channel,
                        what,
                        day,
                    });
                }
            }
            "skipped" => {
                let reason = j.skip_reason.clone().unwrap_or_else(|| "skipped".into());
                *self
                    .entry(j.first_due, &rule)
                    .skips
                    .entry(reason)
                    .or_default() += 1;
            }
            "dead" => {
                *self
                    .entry(j.first_due, &rule)
                    .skips
                    .entry("dead".into())
                    .or_default() += 1;
            }
            _ if held => {
                *self
                    .entry(j.first_due, &rule)
                    .skips
                    .entry("held".into())
                    .or_default() += 1;
            }
            _ => {} // due after the window
        }
    }

    /// Everything, per rule.
    pub fn per_rule(&self) -> BTreeMap<String, Counts> {
        let mut out: BTreeMap<String, Counts> = BTreeMap::new();
        for rules in self.days.values() {
            for (rule, c) in rules {
                out.entry(rule.clone()).or_default().add(c);
            }
        }
        out
    }

    /// Everything, per day.
    pub fn per_day(&self) -> BTreeMap<NaiveDate, Counts> {
        self.days
            .iter()
            .map(|(d, rules)| {
                let mut c = Counts::default();
                for r in rules.values() {
                    c.add(r);
                }
                (*d, c)
            })
            .collect()
    }

    /// Everything.
    pub fn total(&self) -> Counts {
        let mut c = Counts::default();
        for d in self.per_day().values() {
            c.add(d);
        }
        c
    }
}

/// What a send says, for comparisons: its text, or its template.
fn what_of(p: &Payload) -> String {
    match p {
        Payload::Zalo {
            text, attachment, ..
        } => attachment
            .as_ref()
            .and_then(zaloflow_core::job::promotion_text)
            .or_else(|| text.clone())
            .unwrap_or_default(),
        Payload::Sms { text, .. } | Payload::Chat { text, .. } => text.clone(),
        Payload::Email { subject, .. } => subject.clone(),
        Payload::Zns { template_id, .. } => template_id.clone(),
        Payload::Task { title, .. } => title.clone(),
        Payload::ZaloTag { tag, add, .. } => format!("{}{tag}", if *add { "+" } else { "-" }),
    }
}

/// Adds a scratch copy's outbox and handoffs to `tally` (which already holds its firings).
pub async fn add_scratch(
    tally: &mut Tally,
    store: &DynStore,
    window: Window,
    page: i64,
) -> anyhow::Result<()> {
    add_outbox(tally, store, i64::MIN, i64::MAX, page).await?;
    tally.add_fires(&store.fire_counts(i64::MIN, i64::MAX).await?);
    let _ = window;
    for (rule, at) in store.handoffs_opened(i64::MIN).await? {
        tally.entry(at, rule.as_deref().unwrap_or(NO_RULE)).handoffs += 1;
    }
    Ok(())
}

async fn add_outbox(
    tally: &mut Tally,
    store: &DynStore,
    from: i64,
    to: i64,
    page: i64,
) -> anyhow::Result<()> {
    let mut after = 0;
    loop {
        let jobs = store.outbox_window(after, from, to, page).await?;
        for j in &jobs {
            tally.add_job(j);
        }
        match jobs.last() {
            Some(j) if jobs.len() as i64 == page => after = j.id,
            _ => break,
        }
    }
    Ok(())
}

/// What the live outbox recorded for the window: the sends first due in it, the firings and
/// handoffs of its hours.
pub async fn from_live(
    live: &DynStore,
    window: Window,
    tz: chrono_tz::Tz,
    page: i64,
    keep_sends: bool,
) -> anyhow::Result<Tally> {
    let mut t = Tally::new(tz).within(window).keeping_sends(keep_sends);
    add_outbox(&mut t, live, window.from, window.to, page).await?;
    let hours = (
        window.from.div_euclid(3_600_000),
        window.to.div_euclid(3_600_000),
    );
    t.add_fires(&live.fire_counts(hours.0, hours.1).await?);
    for (rule, at) in live.handoffs_opened(window.from).await? {
        if at < window.to {
            t.entry(at, rule.as_deref().unwrap_or(NO_RULE)).handoffs += 1;
        }
    }
    Ok(t)
}

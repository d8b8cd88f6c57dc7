//! Autoresponder campaigns (seed 000): a contact enters on a trigger (a form registration, a
//! follow, a tag, joining a list) and receives the steps in order, each on its day after entry
//! (II.1), at its send time (II.3), only on the allowed weekdays (II.4). The scheduler runs the
//! steps; this module holds the checked definitions and the pure time arithmetic.

use chrono::{Datelike, NaiveDate, TimeZone};

use super::model::{Condition, Ms, Origin, Rule, Trigger, DAY};

/// Every weekday allowed (bit 0 = Monday … bit 6 = Sunday).
pub const ALL_WEEKDAYS: u8 = 0x7f;

/// What enters a contact into a campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryTrigger {
    /// A registration on `POST /forms/{form}`.
    FormSubmitted(String),
    Follow,
    /// The tag was added (by Zalo, staff or a rule).
    TagAdded(String),
    /// The contact joined the list (by a rule, an import or the admin API): seen by the next tick.
    ListJoined(String),
}

impl EntryTrigger {
    pub fn describe(&self) -> String {
        match self {
            EntryTrigger::FormSubmitted(f) => format!("form_submitted {f}"),
            EntryTrigger::Follow => "follow".into(),
            EntryTrigger::TagAdded(t) => format!("tag_added {t}"),
            EntryTrigger::ListJoined(l) => format!("list_joined {l}"),
        }
    }
}

/// When on its day a step goes out (II.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendTime {
    /// At the clock time the contact entered (day 0: the moment they registered).
    Immediately,
    /// This long after that.
    After(Ms),
    /// At this local clock time (minutes from midnight).
    At(u16),
}

#[derive(Debug, Clone)]
pub struct Step {
    /// Unique within the campaign; the step's emails are known to rules as `CAMPAIGN/STEP`.
    /// Members wait for a step by this id. Written as `id:`, or derived from the step's day
    /// and send time ([`derived_step_id`]) when the file gives none.
    pub id: String,
    /// Whether `id` was written in the file (not derived).
    pub explicit_id: bool,
    /// 1-based position, also accepted in `after_step` and `email: CAMPAIGN/N`.
    pub number: usize,
    /// Days after entry (0 = the day of entry).
    pub day: u32,
    pub send: SendTime,
    /// The step's conditions (`if:`) and actions (`do:`), as a rule with id `CAMPAIGN/STEP`.
    pub rule: Rule,
}

#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub origin: Origin,
    /// Any of these enters the contact.
    pub enter_on: Vec<EntryTrigger>,
    /// II.2: a repeat registration on the form runs the first step again (the contact stays one
    /// member); when false it is a duplicate and nothing runs.
    pub repeat_registration: bool,
    /// With `repeat_registration`: a repeat this soon after the contact's last run of the
    /// first step runs nothing (default 1 hour), so a form posted five times sends once.
    pub repeat_cooldown: Ms,
    /// II.4: the weekdays steps may go out (bit 0 = Monday).
    pub weekdays: u8,
    /// The goal: a member for whom all of these hold leaves (empty: never).
    pub exit_if: Vec<Condition>,
    pub steps: Vec<Step>,
}

impl Campaign {
    /// A bare campaign `c` entered on follow, with steps `c/s0`, `c/s1`… on these days and
    /// send times and nothing in them: for tests of the time arithmetic.
    pub fn sample(steps: &[(u32, SendTime)], weekdays: u8) -> Campaign {
        let origin = Origin {
            file: std::sync::Arc::new("t.yaml".into()),
            pos: super::yaml::Pos { line: 1, col: 1 },
        };
        Campaign {
            id: "c".into(),
            description: None,
            enabled: true,
            origin: origin.clone(),
            enter_on: vec![EntryTrigger::Follow],
            repeat_registration: false,
            repeat_cooldown: super::model::HOUR,
            weekdays,
            exit_if: vec![],
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, (day, send))| Step {
                    id: format!("s{i}"),
                    explicit_id: true,
                    number: i + 1,
                    day: *day,
                    send: *send,
                    rule: Rule {
                        id: format!("c/s{i}"),
                        description: None,
                        enabled: true,
                        priority: 0,
                        origin: origin.clone(),
                        triggers: vec![],
                        conditions: vec![],
                        actions: vec![],
                        once_per: None,
                        cooldown: None,
                        sites: vec![],
                    },
                })
                .collect(),
        }
    }

    /// The id rules use for a step's emails and firings: `CAMPAIGN/STEP`.
    pub fn step_key(&self, step: usize) -> String {
        format!("{}/{}", self.id, self.steps[step].id)
    }

    /// The step with this id or 1-based number.
    pub fn find_step(&self, step: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == step).or_else(|| {
            step.parse::<usize>()
                .ok()
                .filter(|n| (1..=self.steps.len()).contains(n))
                .map(|n| n - 1)
        })
    }

    pub fn enters_on(&self, t: &EntryTrigger) -> bool {
        self.enter_on.contains(t)
    }

    /// When step `i` of a membership that began at `entered_at` is due: its day and send time,
    /// not before `not_before` (the previous step's time, so steps keep their order), moved to
    /// the next allowed weekday at the same local clock time.
    pub fn due(&self, i: usize, entered_at: i64, not_before: i64, tz: chrono_tz::Tz) -> i64 {
        let step = &self.steps[i];
        let entered = local(entered_at, tz);
        let date = entered.date_naive() + chrono::Days::new(u64::from(step.day));
        let t = match step.send {
            SendTime::Immediately => at_local(date, clock_of(entered_at, tz), tz),
            SendTime::After(d) => at_local(date, clock_of(entered_at, tz), tz) + d,
            SendTime::At(m) => {
                let t = at_local(date, m, tz);
                // Day 0 at 09:00 for someone who registered at 15:00: tomorrow at 09:00.
                if t < entered_at {
                    next_clock_after(entered_at, m, tz)
                } else {
                    t
                }
            }
        };
        let t = self.allowed_from(t, tz);
        if t >= not_before {
            return t;
        }
        let t = match step.send {
            SendTime::At(m) => next_clock_after(not_before - 1, m, tz),
            _ => not_before,
        };
        self.allowed_from(t, tz)
    }

    /// `t`, or the same local clock time on the next allowed weekday.
    pub fn allowed_from(&self, t: i64, tz: chrono_tz::Tz) -> i64 {
        let mask = if self.weekdays & ALL_WEEKDAYS == 0 {
            ALL_WEEKDAYS
        } else {
            self.weekdays
        };
        let l = local(t, tz);
        let minute = clock_of(t, tz);
        let seconds = t - at_local(l.date_naive(), minute, tz);
        for add in 0..7u64 {
            let date = l.date_naive() + chrono::Days::new(add);
            if mask & (1 << date.weekday().num_days_from_monday()) != 0 {
                return if add == 0 {
                    t
                } else {
                    at_local(date, minute, tz) + seconds
                };
            }
        }
        t
    }

    /// Whether `t` falls on an allowed weekday.
    pub fn allows(&self, t: i64, tz: chrono_tz::Tz) -> bool {
        self.allowed_from(t, tz) == t
    }
}

/// The id of a step written without `id:`: its day and send time — `day1` (immediately),
/// `day1_0900` (`at: "09:00"`), `day0_after2h` (`after: 2h`). Stable when other steps are
/// added, removed or reordered; changes when the step's own day or time is edited. Two steps
/// of one day and time get `_2`, `_3`… in file order (see [`unique_step_ids`]).
pub fn derived_step_id(day: u32, send: SendTime) -> String {
    match send {
        SendTime::Immediately => format!("day{day}"),
        SendTime::At(m) => format!("day{day}_{:02}{:02}", m / 60, m % 60),
        SendTime::After(d) => {
            let d = d.max(0);
            let text = if d % DAY == 0 {
                format!("{}d", d / DAY)
            } else if d % super::model::HOUR == 0 {
                format!("{}h", d / super::model::HOUR)
            } else if d % super::model::MINUTE == 0 {
                format!("{}m", d / super::model::MINUTE)
            } else {
                format!("{}s", d / 1000)
            };
            format!("day{day}_after{text}")
        }
    }
}

/// Makes derived step ids unique: a derived id taken by a written one or an earlier step gets
/// `_2`, `_3`… (the step's rule id follows).
pub fn unique_step_ids(steps: &mut [Step], campaign: &str) {
    let written: std::collections::HashSet<String> = steps
        .iter()
        .filter(|s| s.explicit_id)
        .map(|s| s.id.clone())
        .collect();
    let mut taken: std::collections::HashSet<String> = written.clone();
    for s in steps.iter_mut().filter(|s| !s.explicit_id) {
        let base = s.id.clone();
        let mut id = base.clone();
        let mut n = 2;
        while taken.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        taken.insert(id.clone());
        if id != s.id {
            s.id = id;
            s.rule.id = format!("{campaign}/{}", s.id);
        }
    }
}

/// What an edit of a campaign's steps does to the members waiting for each step that was
/// there before (`old`: the step ids in their former order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEdit {
    /// The step is still there: its members keep waiting for it, at their due time.
    Kept { step: String },
    /// Still there, at another place: its members keep waiting for it; the steps after it in
    /// the new order are the ones they get next.
    Moved {
        step: String,
        from: usize,
        to: usize,
    },
    /// The step is gone: its members go to `to`, the step that now stands where it stood —
    /// the first step after the last step before it that is still there (the first step when
    /// none before it is) — no earlier than they were due and no earlier than `to`'s own day
    /// and time for them; `None`: nothing stands after it, they are done.
    Removed { step: String, to: Option<String> },
    /// A new step (not among `old`).
    Added { step: String, at: usize },
}

impl Campaign {
    /// How the steps changed from `old` (ids in their former order) to this campaign's. Empty
    /// when nothing changed. Positions are 1-based.
    pub fn edits_from(&self, old: &[String]) -> Vec<StepEdit> {
        let now: Vec<&str> = self.steps.iter().map(|s| s.id.as_str()).collect();
        if old.iter().map(String::as_str).eq(now.iter().copied()) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, id) in old.iter().enumerate() {
            match now.iter().position(|s| s == id) {
                Some(j) if j == i => out.push(StepEdit::Kept { step: id.clone() }),
                Some(j) => out.push(StepEdit::Moved {
                    step: id.clone(),
                    from: i + 1,
                    to: j + 1,
                }),
                None => out.push(StepEdit::Removed {
                    step: id.clone(),
                    to: self.replacement(old, i),
                }),
            }
        }
        for (j, id) in now.iter().enumerate() {
            if !old.iter().any(|o| o == id) {
                out.push(StepEdit::Added {
                    step: id.to_string(),
                    at: j + 1,
                });
            }
        }
        out
    }

    /// Where the members of `old[i]`, a removed step, go (see [`StepEdit::Removed`]).
    fn replacement(&self, old: &[String], i: usize) -> Option<String> {
        let before = old[..i]
            .iter()
            .rev()
            .find_map(|id| self.steps.iter().position(|s| &s.id == id));
        let j = before.map_or(0, |b| b + 1);
        self.steps.get(j).map(|s| s.id.clone())
    }

    /// The index of the step with this id (ids only, not numbers).
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.id == id)
    }
}

impl std::fmt::Display for StepEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(crate::i18n::Lang::En))
    }
}

impl StepEdit {
    /// What the edit does to the campaign's members, in `lang` (`rules check --against`).
    pub fn render(&self, lang: crate::i18n::Lang) -> String {
        match self {
            StepEdit::Kept { step } => msg!(lang, "rules.campaign.kept", step = step),
            StepEdit::Moved { step, from, to } => {
                msg!(
                    lang,
                    "rules.campaign.moved",
                    step = step,
                    from = from,
                    to = to
                )
            }
            StepEdit::Removed { step, to: Some(to) } => {
                msg!(lang, "rules.campaign.removed_to", step = step, to = to)
            }
            StepEdit::Removed { step, to: None } => {
                msg!(lang, "rules.campaign.removed_end", step = step)
            }
            StepEdit::Added { step, at } => {
                msg!(lang, "rules.campaign.added", step = step, at = at)
            }
        }
    }
}

/// Whether `rule` follows a campaign's emails and steps (seed I.2–I.5): every trigger is
/// `after_step`, `email_opened`, `email_not_opened` or `email_clicked`. Such a rule's
/// `weekdays:` and `time_between:` (at the top of its `if:`) are its send window: its sends
/// move to the next allowed time instead of being dropped (seed II.4).
pub fn is_follow_up(rule: &Rule) -> bool {
    !rule.triggers.is_empty()
        && rule.triggers.iter().all(|t| {
            matches!(
                t,
                Trigger::AfterStep { .. }
                    | Trigger::EmailOpened { .. }
                    | Trigger::EmailNotOpened { .. }
                    | Trigger::EmailClicked { .. }
            )
        })
}

/// A `weekdays:` or `time_between:` condition: the send window of a follow-up rule.
pub fn is_window(c: &Condition) -> bool {
    matches!(c, Condition::Weekdays(_) | Condition::TimeBetween { .. })
}

/// The campaigns a follow-up rule follows: `after_step`'s campaign, the campaign of an
/// `email: CAMPAIGN/STEP`.
pub fn followed_campaigns(rule: &Rule) -> Vec<&str> {
    let mut out: Vec<&str> = rule
        .triggers
        .iter()
        .filter_map(|t| match t {
            Trigger::AfterStep { campaign, .. } => Some(campaign.as_str()),
            Trigger::EmailOpened { email, .. }
            | Trigger::EmailNotOpened { email, .. }
            | Trigger::EmailClicked { email, .. } => email
                .as_deref()
                .and_then(|e| e.split_once('/'))
                .map(|(c, _)| c),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// When a follow-up may send: the weekdays of its campaigns and of its own `weekdays:`, within
/// its own `time_between:` windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWindow {
    /// Bit 0 = Monday.
    pub weekdays: u8,
    /// Local (from, to) minutes, both inclusive; `from > to` crosses midnight.
    pub hours: Vec<(u16, u16)>,
}

impl SendWindow {
    /// The window of a follow-up rule given its campaigns' weekdays; `None` when it is not a
    /// follow-up or nothing limits it.
    pub fn of(rule: &Rule, campaign_weekdays: &[u8]) -> Option<SendWindow> {
        if !is_follow_up(rule) {
            return None;
        }
        let mut w = SendWindow {
            weekdays: ALL_WEEKDAYS,
            hours: Vec::new(),
        };
        for m in campaign_weekdays {
            w.weekdays &= m;
        }
        for c in &rule.conditions {
            match c {
                Condition::Weekdays(m) => w.weekdays &= m,
                Condition::TimeBetween { from, to } => w.hours.push((*from, *to)),
                _ => {}
            }
        }
        if w.weekdays == 0 {
            w.weekdays = ALL_WEEKDAYS; // no day left: not a window a shop meant
        }
        (w.weekdays != ALL_WEEKDAYS || !w.hours.is_empty()).then_some(w)
    }

    fn allows(&self, t: i64, tz: chrono_tz::Tz) -> bool {
        let l = local(t, tz);
        let day_ok = self.weekdays & (1 << l.weekday().num_days_from_monday()) != 0;
        let m = clock_of(t, tz);
        day_ok
            && self.hours.iter().all(|&(from, to)| {
                if from <= to {
                    m >= from && m <= to
                } else {
                    m >= from || m <= to
                }
            })
    }

    /// `t`, or the first allowed time after it: the same clock time on the next allowed day
    /// when that time is inside the hours, else the start of the hours on the first allowed day
    /// that still has them ahead. Never earlier than `t`.
    pub fn next_allowed(&self, t: i64, tz: chrono_tz::Tz) -> i64 {
        if self.allows(t, tz) {
            return t;
        }
        let d0 = local(t, tz).date_naive();
        let minute = clock_of(t, tz);
        for add in 0..9u64 {
            let date = d0 + chrono::Days::new(add);
            if add > 0 {
                let same = at_local(date, minute, tz);
                if self.allows(same, tz) {
                    return same;
                }
            }
            let mut starts: Vec<i64> = self
                .hours
                .iter()
                .map(|&(from, _)| at_local(date, from, tz))
                .collect();
            starts.sort_unstable();
            if let Some(c) = starts.into_iter().find(|&c| c > t && self.allows(c, tz)) {
                return c;
            }
        }
        t
    }
}

fn local(t: i64, tz: chrono_tz::Tz) -> chrono::DateTime<chrono_tz::Tz> {
    tz.timestamp_millis_opt(t)
        .single()
        .unwrap_or_else(|| tz.timestamp_millis_opt(0).unwrap())
}

/// Minutes from local midnight.
fn clock_of(t: i64, tz: chrono_tz::Tz) -> u16 {
    use chrono::Timelike;
    let l = local(t, tz);
    (l.hour() * 60 + l.minute()) as u16
}

/// The instant of `date` at local clock `minute` (a time skipped by DST: the hour after).
pub fn at_local(date: NaiveDate, minute: u16, tz: chrono_tz::Tz) -> i64 {
    let naive = date
        .and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)
        .unwrap_or_default();
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(d) | chrono::LocalResult::Ambiguous(d, _) => {
            d.timestamp_millis()
        }
        chrono::LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map(|d| d.timestamp_millis())
            .unwrap_or(0),
    }
}

/// The first instant strictly after `t` whose local clock reads `minute`.
pub fn next_clock_after(t: i64, minute: u16, tz: chrono_tz::Tz) -> i64 {
    let d = local(t, tz).date_naive();
    for add in 0..3u64 {
        let cand = at_local(d + chrono::Days::new(add), minute, tz);
        if cand > t {
            return cand;
        }
    }
    t + DAY
}

/// The local date of `t` in `tz`.
pub fn local_date(t: i64, tz: chrono_tz::Tz) -> NaiveDate {
    local(t, tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::HOUR;

    const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;

    fn t(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
        TZ.with_ymd_and_hms(y, m, d, h, mi, 0)
            .unwrap()
            .timestamp_millis()
    }

    fn campaign(steps: &[(u32, SendTime)], weekdays: u8) -> Campaign {
        Campaign::sample(steps, weekdays)
    }

    #[test]
    fn days_send_times_and_order() {
        let c = campaign(
            &[
                (0, SendTime::Immediately),
                (0, SendTime::After(2 * HOUR)),
                (1, SendTime::At(9 * 60)),
                (3, SendTime::At(9 * 60)),
            ],
            ALL_WEEKDAYS,
        );
        // Wednesday 2027-03-03 15:20.
        let e = t(2027, 3, 3, 15, 20);
        assert_eq!(c.due(0, e, e, TZ), e);
        assert_eq!(c.due(1, e, e, TZ), t(2027, 3, 3, 17, 20));
        assert_eq!(c.due(2, e, e, TZ), t(2027, 3, 4, 9, 0));
        assert_eq!(c.due(3, e, e, TZ), t(2027, 3, 6, 9, 0));
        // Day 0 at 09:00 after a 15:20 registration: the next 09:00.
        let c0 = campaign(&[(0, SendTime::At(9 * 60))], ALL_WEEKDAYS);
        assert_eq!(c0.due(0, e, e, TZ), t(2027, 3, 4, 9, 0));
    }

    #[test]
    fn blocked_weekdays_move_to_the_next_allowed_day_across_the_week_end() {
        // Monday to Friday only.
        let c = campaign(
            &[(1, SendTime::At(9 * 60)), (2, SendTime::Immediately)],
            0b0011111,
        );
        // Friday 2027-03-05 10:00: day 1 is Saturday -> Monday 09:00; day 2 (Sunday 10:00)
        // -> Monday 10:00.
        let e = t(2027, 3, 5, 10, 0);
        assert_eq!(c.due(0, e, e, TZ), t(2027, 3, 8, 9, 0));
        let first = c.due(0, e, e, TZ);
        assert_eq!(c.due(1, e, first, TZ), t(2027, 3, 8, 10, 0));
        assert!(c.allows(t(2027, 3, 8, 10, 0), TZ));
        assert!(!c.allows(t(2027, 3, 7, 10, 0), TZ));
    }

    #[test]
    fn a_send_window_moves_to_the_next_allowed_time() {
        // Monday to Saturday, 08:00-20:00.
        let w = SendWindow {
            weekdays: 0b0111111,
            hours: vec![(8 * 60, 20 * 60)],
        };
        // Sunday 7 March 2027 10:00 -> Monday 10:00; Saturday 21:00 -> Monday 08:00.
        assert_eq!(
            w.next_allowed(t(2027, 3, 7, 10, 0), TZ),
            t(2027, 3, 8, 10, 0)
        );
        assert_eq!(
            w.next_allowed(t(2027, 3, 6, 21, 0), TZ),
            t(2027, 3, 8, 8, 0)
        );
        // Monday 06:00 -> 08:00 that day; inside: unchanged.
        assert_eq!(w.next_allowed(t(2027, 3, 8, 6, 0), TZ), t(2027, 3, 8, 8, 0));
        assert_eq!(w.next_allowed(t(2027, 3, 8, 9, 5), TZ), t(2027, 3, 8, 9, 5));
        // Weekdays only: the same clock time.
        let d = SendWindow {
            weekdays: 0b0111111,
            hours: vec![],
        };
        assert_eq!(
            d.next_allowed(t(2027, 3, 7, 23, 30), TZ),
            t(2027, 3, 8, 23, 30)
        );
    }

    #[test]
    fn derived_ids_and_edits() {
        assert_eq!(derived_step_id(0, SendTime::Immediately), "day0");
        assert_eq!(derived_step_id(1, SendTime::At(9 * 60)), "day1_0900");
        assert_eq!(
            derived_step_id(0, SendTime::After(2 * HOUR)),
            "day0_after2h"
        );
        let c = campaign(
            &[(1, SendTime::Immediately), (3, SendTime::Immediately)],
            ALL_WEEKDAYS,
        );
        let old: Vec<String> = ["x", "s0", "y", "s1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let e = c.edits_from(&old);
        assert_eq!(
            e,
            [
                StepEdit::Removed {
                    step: "x".into(),
                    to: Some("s0".into())
                },
                StepEdit::Moved {
                    step: "s0".into(),
                    from: 2,
                    to: 1
                },
                StepEdit::Removed {
                    step: "y".into(),
                    to: Some("s1".into())
                },
                StepEdit::Moved {
                    step: "s1".into(),
                    from: 4,
                    to: 2
                },
            ]
        );
        let last: Vec<String> = ["s0", "s1", "z"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            c.edits_from(&last),
            [
                StepEdit::Kept { step: "s0".into() },
                StepEdit::Kept { step: "s1".into() },
                StepEdit::Removed {
                    step: "z".into(),
                    to: None
                },
            ]
        );
        assert!(c.edits_from(&["s0".into(), "s1".into()]).is_empty());
    }

    #[test]
    fn local_midnight_is_not_utc_midnight() {
        // 00:30 in Hồ Chí Minh City is 17:30 UTC the day before.
        let x = t(2027, 3, 4, 0, 30);
        assert_eq!(
            local_date(x, TZ),
            NaiveDate::from_ymd_opt(2027, 3, 4).unwrap()
        );
        assert_eq!(next_clock_after(x, 9 * 60, TZ), t(2027, 3, 4, 9, 0));
    }
}

//! Autoresponder campaigns (seed 000): a contact enters on a trigger (a form registration, a
//! follow, a tag, joining a list) and receives the steps in order, each on its day after entry
//! (II.1), at its send time (II.3), only on the allowed weekdays (II.4). The scheduler runs the
//! steps; this module holds the checked definitions and the pure time arithmetic.

use chrono::{Datelike, NaiveDate, TimeZone};

use super::model::{Condition, Ms, Origin, Rule, DAY};

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
    pub id: String,
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
            weekdays,
            exit_if: vec![],
            steps: steps
                .iter()
                .enumerate()
                .map(|(i, (day, send))| Step {
                    id: format!("s{i}"),
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

//! Working hours: a response deadline's clock runs only while the shop is open.
//!
//! `ZALOFLOW_WORKING_HOURS="08:00-21:00"` (every day) or with weekdays:
//! `"08:00-21:00 mon-sat"`, `"08:00-17:30 mon,tue,thu"`, `"08:00-21:00 t2-t7"` (Vietnamese day
//! names: t2 … t7, cn). Times are local to the OA's time zone.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone};

/// Opening hours, the same on every working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingHours {
    /// Minutes from local midnight.
    open: u32,
    close: u32,
    /// Monday = 0 … Sunday = 6.
    days: [bool; 7],
}

const DAY_NAMES: [[&str; 2]; 7] = [
    ["mon", "t2"],
    ["tue", "t3"],
    ["wed", "t4"],
    ["thu", "t5"],
    ["fri", "t6"],
    ["sat", "t7"],
    ["sun", "cn"],
];

impl WorkingHours {
    /// Parses `HH:MM-HH:MM` optionally followed by weekdays (`mon-fri`, `mon,wed,fri`, `t2-t7`).
    pub fn parse(s: &str) -> Result<WorkingHours, String> {
        let mut parts = s.split_whitespace();
        let span = parts
            .next()
            .ok_or_else(|| "expected HH:MM-HH:MM, e.g. 08:00-21:00".to_string())?;
        let (a, b) = span
            .split_once('-')
            .ok_or_else(|| format!("{span:?}: expected HH:MM-HH:MM, e.g. 08:00-21:00"))?;
        let open = clock(a)?;
        let close = clock(b)?;
        if close <= open {
            return Err(format!(
                "{span:?}: the closing time must come after the opening time (no overnight hours)"
            ));
        }
        let days = match parts.next() {
            None => [true; 7],
            Some(d) => weekdays(d)?,
        };
        if let Some(extra) = parts.next() {
            return Err(format!("unexpected {extra:?} after the weekdays"));
        }
        Ok(WorkingHours { open, close, days })
    }

    /// The instant `work_ms` of working time after `start`: time outside working hours does
    /// not count. A start outside hours begins counting at the next opening.
    pub fn add(&self, start: i64, work_ms: i64, tz: chrono_tz::Tz) -> i64 {
        let mut left = work_ms.max(0);
        let mut t = start;
        let mut day = crate::clock::to_utc(start).with_timezone(&tz).date_naive();
        // At least one day a week is open, so a year of days always covers any sane duration;
        // the bound only guards against a pathological input.
        for _ in 0..3660 {
            if self.days[day.weekday().num_days_from_monday() as usize] {
                let open = local_instant(tz, day, self.open);
                let close = local_instant(tz, day, self.close);
                if t < open {
                    t = open;
                }
                if t < close {
                    let room = close - t;
                    if left <= room {
                        return t + left;
                    }
                    left -= room;
                    t = close;
                }
            }
            day += Duration::days(1);
        }
        t + left
    }

    /// Working time between two instants (0 when `to` is not after `from`).
    pub fn between(&self, from: i64, to: i64, tz: chrono_tz::Tz) -> i64 {
        if to <= from {
            return 0;
        }
        let mut total = 0;
        let mut day = crate::clock::to_utc(from).with_timezone(&tz).date_naive();
        let last = crate::clock::to_utc(to).with_timezone(&tz).date_naive();
        while day <= last {
            if self.days[day.weekday().num_days_from_monday() as usize] {
                let open = local_instant(tz, day, self.open).max(from);
                let close = local_instant(tz, day, self.close).min(to);
                total += (close - open).max(0);
            }
            day += Duration::days(1);
        }
        total
    }

    /// `08:00-21:00 mon-sat` as written back (for logs and the board).
    /// In the words of the staff's notices: `08:00–17:00, T2–T6` (runs of days as ranges).
    /// In English: `08:00–17:00, Mon–Fri`.
    pub fn describe(&self, lang: crate::i18n::Lang) -> String {
        const SHORT: [&str; 7] = [
            "common.weekday_short.mon",
            "common.weekday_short.tue",
            "common.weekday_short.wed",
            "common.weekday_short.thu",
            "common.weekday_short.fri",
            "common.weekday_short.sat",
            "common.weekday_short.sun",
        ];
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        let mut s = format!("{}–{}", hm(self.open), hm(self.close));
        if self.days != [true; 7] {
            let name = |i: usize| crate::i18n::tr(lang, SHORT[i]).into_owned();
            let mut parts = Vec::new();
            let mut i = 0;
            while i < 7 {
                if !self.days[i] {
                    i += 1;
                    continue;
                }
                let start = i;
                while i + 1 < 7 && self.days[i + 1] {
                    i += 1;
                }
                parts.push(match i - start {
                    0 => name(start),
                    1 => format!("{}, {}", name(start), name(i)),
                    _ => format!("{}–{}", name(start), name(i)),
                });
                i += 1;
            }
            s.push_str(", ");
            s.push_str(&parts.join(", "));
        }
        s
    }
}

fn clock(s: &str) -> Result<u32, String> {
    let t = NaiveTime::parse_from_str(s.trim(), "%H:%M")
        .map_err(|_| format!("{s:?} is not a time like 08:00"))?;
    Ok(chrono::Timelike::hour(&t) * 60 + chrono::Timelike::minute(&t))
}

fn day_index(name: &str) -> Result<usize, String> {
    let n = name.trim().to_ascii_lowercase();
    DAY_NAMES
        .iter()
        .position(|names| names.contains(&n.as_str()))
        .ok_or_else(|| format!("{name:?} is not a weekday (mon … sun, or t2 … t7, cn)"))
}

fn weekdays(s: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day_index(a)?, day_index(b)?);
                // `sat-mon` wraps around the week end.
                let mut i = a;
                loop {
                    days[i] = true;
                    if i == b {
                        break;
                    }
                    i = (i + 1) % 7;
                }
            }
            None => days[day_index(part)?] = true,
        }
    }
    if !days.contains(&true) {
        return Err("no working day given".into());
    }
    Ok(days)
}

/// The instant of a local wall-clock time (the earlier one in a DST overlap, the time just
/// after a DST gap).
fn local_instant(tz: chrono_tz::Tz, day: NaiveDate, minutes: u32) -> i64 {
    let naive = day.and_time(NaiveTime::MIN) + Duration::minutes(minutes as i64);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.timestamp_millis(),
        None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| naive.and_utc().timestamp_millis()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;
    const H: i64 = 3_600_000;

    fn at(d: u32, h: u32, m: u32) -> i64 {
        // November 2026: the 16th is a Monday.
        TZ.with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn inside_hours_is_plain_addition() {
        let w = WorkingHours::parse("08:00-21:00").unwrap();
        assert_eq!(w.add(at(16, 10, 0), 2 * H, TZ), at(16, 12, 0));
    }

    #[test]
    fn the_clock_stops_at_closing_and_resumes_at_opening() {
        let w = WorkingHours::parse("08:00-21:00").unwrap();
        // 20:30 + 2h = 30 min today, 1h30 tomorrow from 08:00.
        assert_eq!(w.add(at(16, 20, 30), 2 * H, TZ), at(17, 9, 30));
        // A message at night starts counting at the next opening.
        assert_eq!(w.add(at(16, 23, 15), 2 * H, TZ), at(17, 10, 0));
        assert_eq!(w.add(at(17, 6, 0), 2 * H, TZ), at(17, 10, 0));
        assert_eq!(w.between(at(16, 20, 30), at(17, 9, 30), TZ), 2 * H);
    }

    #[test]
    fn closed_days_are_skipped() {
        let w = WorkingHours::parse("08:00-17:00 mon-fri").unwrap();
        // Friday 16:00 + 2h -> Monday 09:00.
        assert_eq!(w.add(at(20, 16, 0), 2 * H, TZ), at(23, 9, 0));
        // Saturday -> Monday 10:00.
        assert_eq!(w.add(at(21, 11, 0), 2 * H, TZ), at(23, 10, 0));
        let vi = WorkingHours::parse("08:00-17:00 t2-t6").unwrap();
        assert_eq!(vi, w);
        assert_eq!(w.describe(crate::i18n::Lang::Vi), "08:00–17:00, T2–T6");
        assert_eq!(w.describe(crate::i18n::Lang::En), "08:00–17:00, Mon–Fri");
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "",
            "8-21",
            "21:00-08:00",
            "08:00-21:00 funday",
            "08:00-21:00 mon x",
            "25:00-26:00",
        ] {
            assert!(WorkingHours::parse(bad).is_err(), "{bad:?}");
        }
        let w = WorkingHours::parse("09:00-18:00 sat-mon").unwrap();
        assert_eq!(w.describe(crate::i18n::Lang::Vi), "09:00–18:00, T2, T7, CN");
        assert_eq!(
            w.describe(crate::i18n::Lang::En),
            "09:00–18:00, Mon, Sat, Sun"
        );
    }
}

//! Property tests of the scheduling arithmetic (`src/rules/campaign.rs`): local clock times in
//! time zones with and without daylight saving (gaps and folds), weekday skipping, month ends
//! and leap years, over instants from 1970 to 2100.

use chrono::{Datelike, NaiveDate, TimeZone, Timelike};
use chrono_tz::Tz;
use proptest::prelude::*;
use zaloflow::rules::campaign::{at_local, local_date, next_clock_after};
use zaloflow::rules::{Campaign, SendTime};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// The OA's zone, zones with DST at 02:00, 01:00 and 00:00, a 30-minute DST, a +13:45 zone.
const ZONES: &[Tz] = &[
    chrono_tz::Asia::Ho_Chi_Minh,
    chrono_tz::UTC,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::America::Santiago,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Pacific::Chatham,
    chrono_tz::Asia::Kolkata,
];

fn zone() -> impl Strategy<Value = Tz> {
    prop::sample::select(ZONES)
}

/// 1970-01-01 .. 2100-01-01, in ms.
fn instant() -> impl Strategy<Value = i64> {
    0i64..4_102_444_800_000
}

fn campaign(steps: &[(u32, SendTime)], weekdays: u8) -> Campaign {
    Campaign::sample(steps, weekdays)
}

fn send_time() -> impl Strategy<Value = SendTime> {
    prop_oneof![
        Just(SendTime::Immediately),
        (0i64..48).prop_map(|h| SendTime::After(h * HOUR)),
        (0u16..1440).prop_map(SendTime::At),
    ]
}

fn local(t: i64, tz: Tz) -> chrono::DateTime<Tz> {
    tz.timestamp_millis_opt(t).unwrap()
}

fn weekday_allowed(mask: u8, t: i64, tz: Tz) -> bool {
    let m = if mask & 0x7f == 0 { 0x7f } else { mask };
    m & (1 << local(t, tz).weekday().num_days_from_monday()) != 0
}

/// Minutes from local midnight.
fn clock(t: i64, tz: Tz) -> i64 {
    let l = local(t, tz);
    i64::from(l.hour() * 60 + l.minute())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// A local date and clock time comes back as that date, and as that clock time unless it
    /// does not exist that day (a DST gap: then up to an hour later).
    #[test]
    fn at_local_keeps_date_and_clock(
        tz in zone(),
        days in 0i64..47_000, // 1970 .. 2098, every month end and 29 February among them
        minute in 0u16..1440,
    ) {
        let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Days::new(days as u64);
        let t = at_local(date, minute, tz);
        let shift = clock(t, tz) - i64::from(minute);
        if shift == 0 {
            prop_assert_eq!(local_date(t, tz), date);
        } else {
            // in a gap: the hour after (never earlier, never more than an hour and a bit)
            prop_assert!(tz.from_local_datetime(&date.and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0).unwrap()).single().is_none());
            let forward = (t - at_local(date, 0, tz)) / 60_000 - i64::from(minute);
            prop_assert!((0..=90).contains(&forward) || local_date(t, tz) != date, "{date} {minute}: {forward}");
        }
    }

    /// The next instant whose clock reads `minute` is strictly later and at most a day (plus a
    /// DST hour) away, and reads `minute` unless that time does not exist that day.
    #[test]
    fn next_clock_after_is_the_next_such_time(tz in zone(), t in instant(), minute in 0u16..1440) {
        let n = next_clock_after(t, minute, tz);
        prop_assert!(n > t);
        prop_assert!(n - t <= DAY + 2 * HOUR, "{} h later", (n - t) / HOUR);
        let c = clock(n, tz);
        prop_assert!(c == i64::from(minute) || (c - i64::from(minute)).rem_euclid(1440) <= 90,
            "clock {c} for {minute}");
        if tz == chrono_tz::Asia::Ho_Chi_Minh {
            prop_assert_eq!(c, i64::from(minute));
            prop_assert!(n - t <= DAY);
        }
    }

    /// Weekday skipping: never earlier, lands on an allowed day, at the same local clock time,
    /// within a week, unchanged when the day is already allowed, and stable.
    #[test]
    fn allowed_from_skips_to_an_allowed_weekday(
        tz in zone(),
        t in instant(),
        weekdays in 0u8..128,
    ) {
        let c = campaign(&[(0, SendTime::Immediately)], weekdays);
        let a = c.allowed_from(t, tz);
        prop_assert!(a >= t);
        prop_assert!(a - t < 7 * DAY + 2 * HOUR);
        prop_assert!(weekday_allowed(weekdays, a, tz), "lands on a closed day");
        if weekday_allowed(weekdays, t, tz) {
            prop_assert_eq!(a, t);
        }
        prop_assert!(c.allows(a, tz));
        prop_assert_eq!(c.allowed_from(a, tz), a);
        if tz == chrono_tz::Asia::Ho_Chi_Minh {
            prop_assert_eq!(clock(a, tz), clock(t, tz));
            prop_assert_eq!((a - t) % DAY, 0);
        }
    }

    /// A step is due on its day after entry (calendar days, across month ends and 29 February),
    /// at its time, on an allowed weekday, never before the previous step: steps keep order.
    #[test]
    fn steps_are_due_in_order_on_their_day(
        tz in zone(),
        entered in instant(),
        weekdays in 1u8..128,
        steps in prop::collection::vec((0u32..400, send_time()), 1..5),
    ) {
        let mut steps = steps;
        steps.sort_by_key(|s| s.0);
        let c = campaign(&steps, weekdays);
        let entry_date = local_date(entered, tz);
        let mut prev = entered;
        for (i, (day, send)) in steps.iter().enumerate() {
            let due = c.due(i, entered, prev, tz);
            prop_assert!(due >= prev, "step {i} before the one before it");
            prop_assert!(weekday_allowed(weekdays, due, tz), "step {i} on a closed day");
            let nominal = entry_date + chrono::Days::new(u64::from(*day));
            let due_date = local_date(due, tz);
            // never before its day; later only by weekday skipping, an `after` delay, a time
            // already past on day 0, or the previous step
            prop_assert!(due_date >= nominal || matches!(send, SendTime::At(_)) && due >= prev,
                "step {i}: {due_date} before its day {nominal}");
            if let (SendTime::At(m), true) = (send, tz == chrono_tz::Asia::Ho_Chi_Minh) {
                prop_assert_eq!(clock(due, tz), i64::from(*m));
            }
            if weekdays == 0x7f && i == 0 && tz == chrono_tz::Asia::Ho_Chi_Minh {
                match send {
                    SendTime::Immediately => prop_assert_eq!(due_date, nominal),
                    SendTime::At(m) if *day > 0 || i64::from(*m) >= clock(entered, tz) => {
                        prop_assert_eq!(due_date, nominal)
                    }
                    _ => {}
                }
            }
            prev = due;
        }
    }
}

/// Month ends and leap days by hand: day N after the 31st, after 28 and 29 February.
#[test]
fn calendar_days_across_month_ends_and_leap_years() {
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let c = campaign(
        &[(1, SendTime::At(9 * 60)), (30, SendTime::At(9 * 60))],
        0x7f,
    );
    for (entered, day1, day30) in [
        ((2024, 1, 31), (2024, 2, 1), (2024, 3, 1)),
        ((2024, 2, 28), (2024, 2, 29), (2024, 3, 29)),
        ((2024, 2, 29), (2024, 3, 1), (2024, 3, 30)),
        ((2025, 2, 28), (2025, 3, 1), (2025, 3, 30)),
        ((2100, 2, 28), (2100, 3, 1), (2100, 3, 30)), // 2100 is not a leap year
        ((2000, 2, 28), (2000, 2, 29), (2000, 3, 29)), // 2000 is
        ((2026, 12, 31), (2027, 1, 1), (2027, 1, 30)),
    ] {
        let t = tz
            .with_ymd_and_hms(entered.0, entered.1, entered.2, 8, 0, 0)
            .unwrap()
            .timestamp_millis();
        let d1 = c.due(0, t, t, tz);
        let d30 = c.due(1, t, d1, tz);
        let date = |(y, m, d): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert_eq!(local_date(d1, tz), date(day1), "{entered:?} + 1");
        assert_eq!(local_date(d30, tz), date(day30), "{entered:?} + 30");
        assert_eq!(clock(d30, tz), 9 * 60);
    }
}

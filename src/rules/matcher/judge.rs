//! Conditions judged for one contact at one instant: local time, silence, fields, special days.

use super::*;

/// The event's local time, computed once and only if a rule asks.
pub(super) struct Local {
    pub(super) date: NaiveDate,
    pub(super) minute: u16,
    /// 0 = Monday.
    pub(super) weekday: u8,
}

pub(super) fn local(at: i64, tz: chrono_tz::Tz) -> Local {
    let t = tz
        .timestamp_millis_opt(at)
        .single()
        .unwrap_or_else(|| tz.from_utc_datetime(&chrono::DateTime::UNIX_EPOCH.naive_utc()));
    Local {
        date: t.date_naive(),
        minute: (t.hour() * 60 + t.minute()) as u16,
        weekday: t.weekday().num_days_from_monday() as u8,
    }
}

pub(super) struct Judge<'i, 'a> {
    pub(super) input: &'i EvalInput<'a>,
    pub(super) local: Option<Local>,
    /// A user message's text folded with diacritics, and without.
    pub(super) text: Option<(String, String)>,
}

impl Judge<'_, '_> {
    pub(super) fn local(&mut self) -> &Local {
        let (at, tz) = (self.input.at, self.input.tz);
        self.local.get_or_insert_with(|| local(at, tz))
    }

    pub(super) fn silence_days(&self) -> Option<i64> {
        let p = self.input.previous_interaction?;
        Some((self.input.at - p).max(0) / DAY)
    }

    pub(super) fn holds(&mut self, c: &Condition) -> bool {
        let contact = self.input.contact;
        match c {
            Condition::All(v) => v.iter().all(|c| self.holds(c)),
            Condition::Any(v) => v.iter().any(|c| self.holds(c)),
            Condition::Not(c) => !self.holds(c),
            Condition::TimeBetween { from, to } => {
                let m = self.local().minute;
                in_window(m, *from, *to)
            }
            Condition::Weekdays(mask) => mask & (1 << self.local().weekday) != 0,
            Condition::SilentFor { min_days, max_days } => match self.silence_days() {
                Some(d) => {
                    min_days.is_none_or(|m| d >= i64::from(m))
                        && max_days.is_none_or(|m| d <= i64::from(m))
                }
                None => false,
            },
            Condition::LastInteractionWithin(d) => self
                .input
                .previous_interaction
                .is_some_and(|p| self.input.at - p <= *d),
            Condition::HasTag(tags) => tags.iter().all(|t| contact.tags.contains(t)),
            Condition::LacksTag(tags) => !tags.iter().any(|t| contact.tags.contains(t)),
            Condition::Follows(b) => contact.follows == Some(*b),
            Condition::InList(l) => self.input.lists.contains(l),
            Condition::Field { name, test } => {
                let v = field_value(contact, name);
                match test {
                    FieldTest::IsSet(b) => v.is_some_and(|v| !v.trim().is_empty()) == *b,
                    FieldTest::Equals(want) => {
                        v.is_some_and(|v| v.trim().to_lowercase() == want.trim().to_lowercase())
                    }
                    FieldTest::Contains(want) => {
                        v.is_some_and(|v| v.to_lowercase().contains(want.as_str()))
                    }
                }
            }
        }
    }

    /// The period a `once_per: period` rule fired in: the start of the `time_between`
    /// window that holds now.
    pub(super) fn period_key(&mut self, conds: &[Condition]) -> String {
        fn windows(c: &Condition, out: &mut Vec<(u16, u16)>) {
            match c {
                Condition::TimeBetween { from, to } => out.push((*from, *to)),
                Condition::All(v) | Condition::Any(v) => v.iter().for_each(|c| windows(c, out)),
                _ => {}
            }
        }
        let mut ws = Vec::new();
        conds.iter().for_each(|c| windows(c, &mut ws));
        let l = self.local();
        for (from, to) in ws {
            if in_window(l.minute, from, to) {
                let date = if from > to && l.minute <= to {
                    l.date.pred_opt().unwrap_or(l.date)
                } else {
                    l.date
                };
                return format!("period:{date}T{:02}:{:02}", from / 60, from % 60);
            }
        }
        format!("period:{}", l.date)
    }
}

pub(super) fn in_window(m: u16, from: u16, to: u16) -> bool {
    if from <= to {
        m >= from && m <= to
    } else {
        m >= from || m <= to
    }
}

pub(super) fn field_value<'c>(c: &'c Contact, name: &str) -> Option<&'c str> {
    match name {
        "display_name" => c.display_name.as_deref(),
        "phone" => c.phone.as_deref(),
        "email" => c.email.as_deref(),
        _ => c.fields.get(name).map(String::as_str),
    }
}

/// Day and month of a date field: `DD/MM/YYYY`, `DD/MM`, `YYYY-MM-DD`.
pub(super) fn day_month(s: &str) -> Option<(u32, u32)> {
    let s = s.trim();
    if let Some((y, rest)) = s.split_once('-') {
        if y.len() == 4 {
            let (m, d) = rest.split_once('-')?;
            return Some((d.parse().ok()?, m.parse().ok()?));
        }
    }
    let mut it = s.split('/');
    let d = it.next()?.trim().parse().ok()?;
    let m = it.next()?.trim().parse().ok()?;
    Some((d, m))
}

pub(super) fn is_special_day(value: &str, today: NaiveDate, days_before: u32) -> bool {
    let Some((d, m)) = day_month(value) else {
        return false;
    };
    let target = today + chrono::Days::new(u64::from(days_before));
    if (target.day(), target.month()) == (d, m) {
        return true;
    }
    // 29 February is celebrated on 28 February in other years.
    (d, m) == (29, 2)
        && (target.day(), target.month()) == (28, 2)
        && NaiveDate::from_ymd_opt(target.year(), 2, 29).is_none()
}

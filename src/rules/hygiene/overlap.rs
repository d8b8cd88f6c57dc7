//! When two rules overlap: triggers that cover each other, message filters, silence ranges,
//! minute and weekday masks, and the facts a rule's conditions fix.

use super::*;

/// The tags a rule adds (true) or removes (false) right away, before any `wait`: those start
/// other rules in the same evaluation.
pub(super) fn immediate_tag_changes(r: &Rule) -> impl Iterator<Item = (&str, bool)> {
    r.actions
        .iter()
        .take_while(|a| !matches!(a, Action::Wait(_)))
        .flat_map(|a| {
            let (tags, added) = match a {
                Action::Tag(t) => (t.as_slice(), true),
                Action::Untag(t) => (t.as_slice(), false),
                _ => (&[][..], true),
            };
            tags.iter().map(move |t| (t.as_str(), added))
        })
}

/// Whether `a` (which runs first and ends with `stop`) fires on every event `b` fires on.
pub(super) fn shadows(a: &Rule, b: &Rule, fb: &Facts) -> bool {
    b.triggers.iter().all(|tb| {
        let fb = fb.with_trigger(tb);
        a.triggers.iter().any(|ta| trigger_covers(ta, tb))
            && a.conditions.iter().all(|c| implied(&fb, c))
    })
}

/// The trigger word of an event both `a` (earlier) and `b` can fire on, if any.
pub(super) fn both_fire(a: &Rule, fa: &Facts, b: &Rule, fb: &Facts) -> Option<&'static str> {
    for ta in &a.triggers {
        // Each schedule rule is its own evaluation: a `stop` does not reach the other.
        if a.stops() && !matches!(ta, Trigger::Schedule(_)) {
            continue;
        }
        for tb in &b.triggers {
            if triggers_overlap(ta, tb) && !exclusive(&fa.with_trigger(ta), &fb.with_trigger(tb)) {
                return Some(ta.name());
            }
        }
    }
    None
}

pub(super) fn same_or_any(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

pub(super) fn covers_opt(a: &Option<String>, b: &Option<String>) -> bool {
    a.is_none() || a == b
}

pub(super) fn eq_ci(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Whether one event (one evaluation) can match both triggers.
pub(super) fn triggers_overlap(a: &Trigger, b: &Trigger) -> bool {
    use Trigger as T;
    match (a, b) {
        (T::Message(x), T::Message(y)) => !messages_disjoint(x, y),
        (T::Follow, T::Follow)
        | (T::Unfollow, T::Unfollow)
        | (T::ChatNow, T::ChatNow)
        | (T::InfoSubmitted, T::InfoSubmitted)
        | (T::OaReply, T::OaReply) => true,
        (T::TagAdded(x), T::TagAdded(y))
        | (T::TagRemoved(x), T::TagRemoved(y))
        | (T::FormSubmitted(x), T::FormSubmitted(y)) => x == y,
        // Each schedule rule runs on its own cron time: the same pattern is the same moment.
        (T::Schedule(x), T::Schedule(y)) => x
            .pattern
            .split_whitespace()
            .eq(y.pattern.split_whitespace()),
        // Ranges are met in `exclusive` through the facts.
        (T::Inactive { .. }, T::Inactive { .. }) => true,
        (
            T::SpecialDay {
                on: x,
                days_before: dx,
            },
            T::SpecialDay {
                on: y,
                days_before: dy,
            },
        ) => x == y && dx == dy,
        (T::FieldChanged { field: fx, to: x }, T::FieldChanged { field: fy, to: y }) => {
            fx == fy
                && match (x, y) {
                    (Some(x), Some(y)) => eq_ci(x, y),
                    _ => true,
                }
        }
        (T::EmailOpened { email: x, .. }, T::EmailOpened { email: y, .. }) => same_or_any(x, y),
        (T::EmailNotOpened { email: x, .. }, T::EmailNotOpened { email: y, .. }) => {
            same_or_any(x, y)
        }
        (
            T::EmailClicked {
                link: lx,
                email: ex,
            },
            T::EmailClicked {
                link: ly,
                email: ey,
            },
        ) => same_or_any(ex, ey) && same_or_any(lx, ly),
        (
            T::AfterStep {
                campaign: cx,
                step: sx,
            },
            T::AfterStep {
                campaign: cy,
                step: sy,
            },
        ) => cx == cy && sx == sy,
        _ => false,
    }
}

/// Whether every event that matches `b` also matches `a` (in the same evaluation).
pub(super) fn trigger_covers(a: &Trigger, b: &Trigger) -> bool {
    use Trigger as T;
    match (a, b) {
        (T::Message(x), T::Message(y)) => message_covers(x, y),
        // A schedule rule is evaluated alone at its own times.
        (T::Schedule(_), _) => false,
        (
            T::Inactive {
                min_days: a0,
                max_days: a1,
            },
            T::Inactive {
                min_days: b0,
                max_days: b1,
            },
        ) => {
            a0 <= b0
                && match (a1, b1) {
                    (None, _) => true,
                    (Some(a1), Some(b1)) => a1 >= b1,
                    (Some(_), None) => false,
                }
        }
        (T::FieldChanged { field: fx, to: x }, T::FieldChanged { field: fy, to: y }) => {
            fx == fy
                && match (x, y) {
                    (None, _) => true,
                    (Some(x), Some(y)) => eq_ci(x, y),
                    (Some(_), None) => false,
                }
        }
        (
            T::EmailOpened {
                email: x,
                machine_opens: mx,
            },
            T::EmailOpened {
                email: y,
                machine_opens: my,
            },
        ) => covers_opt(x, y) && (*mx || !*my),
        (
            T::EmailNotOpened {
                email: x,
                within_hours: hx,
                machine_opens: mx,
            },
            T::EmailNotOpened {
                email: y,
                within_hours: hy,
                machine_opens: my,
            },
        ) => covers_opt(x, y) && hx <= hy && (!*mx || *my),
        (
            T::EmailClicked {
                link: lx,
                email: ex,
            },
            T::EmailClicked {
                link: ly,
                email: ey,
            },
        ) => covers_opt(ex, ey) && covers_opt(lx, ly),
        _ => triggers_overlap(a, b) && !matches!(a, T::Message(_)),
    }
}

/// The texts of a filter in one form both filters can be compared in: as written when both
/// need diacritics, else without them.
pub(super) fn comparable(x: &MessageFilter, y: &MessageFilter) -> impl Fn(&String) -> String {
    let bare = x.accents == Accents::Optional || y.accents == Accents::Optional;
    move |s: &String| {
        if bare {
            text::fold(s, Accents::Optional)
        } else {
            s.clone()
        }
    }
}

pub(super) fn messages_disjoint(x: &MessageFilter, y: &MessageFilter) -> bool {
    let t = comparable(x, y);
    // Both need the whole text to be one of theirs, and no text is on both lists.
    if !x.equals.is_empty()
        && !y.equals.is_empty()
        && !x
            .equals
            .iter()
            .any(|e| y.equals.iter().any(|f| t(e) == t(f)))
    {
        return true;
    }
    // One needs the whole text to be one of its texts, none of which holds a keyword of the
    // other.
    let equals_without = |eq: &[String], other: &MessageFilter| {
        let keywords: Vec<String> = other
            .contains
            .iter()
            .chain(&other.contains_text)
            .map(&t)
            .collect();
        !eq.is_empty()
            && !keywords.is_empty()
            && !eq
                .iter()
                .any(|e| keywords.iter().any(|k| t(e).contains(k.as_str())))
    };
    if equals_without(&x.equals, y) || equals_without(&y.equals, x) {
        return true;
    }
    // One Zalo event carries one kind of attachment.
    matches!((&x.attachment, &y.attachment), (Some(a), Some(b)) if a != b && a != "any" && b != "any")
}

/// Whether every message `y` matches, `x` matches too.
pub(super) fn message_covers(x: &MessageFilter, y: &MessageFilter) -> bool {
    let regex_ok = match (&x.regex, &y.regex) {
        (None, _) => true,
        (Some(a), Some(b)) => a.as_str() == b.as_str(),
        (Some(_), None) => false,
    };
    let attachment_ok = match (x.attachment.as_deref(), y.attachment.as_deref()) {
        (None, _) => true,
        (Some("any"), Some(_)) => true,
        (Some(a), Some(b)) => a == b,
        (Some(_), None) => false,
    };
    let has_texts = |f: &MessageFilter| {
        !f.equals.is_empty() || !f.contains.is_empty() || !f.contains_text.is_empty()
    };
    // A filter that needs diacritics does not cover one that lets them go.
    if has_texts(x) && x.accents == Accents::Required && y.accents == Accents::Optional {
        return false;
    }
    let t = comparable(x, y);
    let equals_ok = x.equals.is_empty()
        || (!y.equals.is_empty()
            && y.equals
                .iter()
                .all(|e| x.equals.iter().any(|f| t(e) == t(f))));
    // A text of `y` surely holds a keyword of `x`: as words (for `contains`) or anywhere.
    let has_keyword = |s: &String, as_words: bool| {
        let s = t(s);
        x.contains
            .iter()
            .any(|k| as_words && text::contains_word(&s, &t(k)))
            || x.contains_text.iter().any(|k| s.contains(t(k).as_str()))
    };
    let keywords_ok = (x.contains.is_empty() && x.contains_text.is_empty())
        || (!y.equals.is_empty() && y.equals.iter().all(|e| has_keyword(e, true)))
        || ((!y.contains.is_empty() || !y.contains_text.is_empty())
            && y.contains.iter().all(|k| has_keyword(k, true))
            && y.contains_text.iter().all(|k| has_keyword(k, false)));
    regex_ok && attachment_ok && equals_ok && keywords_ok
}

// --- what a rule's conditions say ---

/// Whole days of silence, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Range {
    pub(super) min: u32,
    pub(super) max: Option<u32>,
}

impl Range {
    const ANY: Range = Range { min: 0, max: None };

    pub(super) fn and(self, o: Range) -> Range {
        Range {
            min: self.min.max(o.min),
            max: match (self.max, o.max) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    pub(super) fn is_empty(self) -> bool {
        self.max.is_some_and(|m| m < self.min)
    }

    pub(super) fn within(self, o: Range) -> bool {
        self.min >= o.min && o.max.is_none_or(|m| self.max.is_some_and(|x| x <= m))
    }

    /// Whether it holds some day count of at least `days`.
    pub(super) fn reaches(self, days: u32) -> bool {
        !self.is_empty() && self.max.is_none_or(|m| m >= days)
    }
}

/// The silence a rule's conditions require (top-level `silent_for` and
/// `last_interaction_within`, `all:` included).
pub(super) fn silence_range(conds: &[Condition]) -> Range {
    let mut r = Range::ANY;
    for c in conds {
        match c {
            Condition::SilentFor { min_days, max_days } => {
                r = r.and(Range {
                    min: min_days.unwrap_or(0),
                    max: *max_days,
                })
            }
            Condition::LastInteractionWithin(d) => {
                r = r.and(Range {
                    min: 0,
                    max: Some((d / DAY) as u32),
                })
            }
            Condition::All(v) => r = r.and(silence_range(v)),
            _ => {}
        }
    }
    r
}

/// A set of minutes of the day (1440 bits) or of weekdays (7 bits).
pub(super) trait Mask: Copy + PartialEq {
    const FULL: Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn not(self) -> Self;
    fn is_empty(self) -> bool;
    fn leaf(c: &Condition) -> Option<Self>;
    fn subset_of(self, o: Self) -> bool {
        self.and(o.not()).is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Minutes(pub(super) [u64; 23]);

impl Mask for Minutes {
    const FULL: Self = {
        let mut m = [u64::MAX; 23];
        m[22] = (1 << (1440 - 22 * 64)) - 1;
        Minutes(m)
    };
    fn and(self, o: Self) -> Self {
        Minutes(std::array::from_fn(|i| self.0[i] & o.0[i]))
    }
    fn or(self, o: Self) -> Self {
        Minutes(std::array::from_fn(|i| self.0[i] | o.0[i]))
    }
    fn not(self) -> Self {
        Minutes(std::array::from_fn(|i| !self.0[i] & Self::FULL.0[i]))
    }
    fn is_empty(self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    fn leaf(c: &Condition) -> Option<Self> {
        let Condition::TimeBetween { from, to } = c else {
            return None;
        };
        let mut m = [0u64; 23];
        let mut set = |i: u16| m[usize::from(i / 64)] |= 1 << (i % 64);
        if from <= to {
            (*from..=*to).for_each(&mut set);
        } else {
            (*from..1440).for_each(&mut set);
            (0..=*to).for_each(&mut set);
        }
        Some(Minutes(m))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Days(pub(super) u8);

impl Mask for Days {
    const FULL: Self = Days(0x7f);
    fn and(self, o: Self) -> Self {
        Days(self.0 & o.0)
    }
    fn or(self, o: Self) -> Self {
        Days(self.0 | o.0)
    }
    fn not(self) -> Self {
        Days(!self.0 & 0x7f)
    }
    fn is_empty(self) -> bool {
        self.0 == 0
    }
    fn leaf(c: &Condition) -> Option<Self> {
        match c {
            Condition::Weekdays(m) => Some(Days(m & 0x7f)),
            _ => None,
        }
    }
}

/// The moments a condition allows, at most (`true`: exactly, the condition is about nothing
/// else).
pub(super) fn mask<M: Mask>(c: &Condition) -> (M, bool) {
    if let Some(m) = M::leaf(c) {
        return (m, true);
    }
    match c {
        Condition::All(v) => v.iter().fold((M::FULL, true), |(m, e), c| {
            let (cm, ce) = mask::<M>(c);
            (m.and(cm), e && ce)
        }),
        Condition::Any(v) if !v.is_empty() => {
            let parts: Vec<(M, bool)> = v.iter().map(mask::<M>).collect();
            let m = parts.iter().fold(M::FULL.not(), |m, (p, _)| m.or(*p));
            (m, parts.iter().all(|(_, e)| *e))
        }
        Condition::Not(inner) => match mask::<M>(inner) {
            (m, true) => (m.not(), true),
            _ => (M::FULL, false),
        },
        _ => (M::FULL, false),
    }
}

/// Facts about the contact a condition needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Atom {
    Tag(String),
    Follows,
    List(String),
    FieldSet(String),
    /// The field equals this (lower-cased, trimmed) value.
    FieldIs(String, String),
}

/// The facts a single condition requires, when it is one fact (or, for `has_tag`/`lacks_tag`,
/// several that must all hold).
pub(super) fn literals(c: &Condition) -> Option<Vec<(Atom, bool)>> {
    Some(match c {
        Condition::HasTag(ts) => ts.iter().map(|t| (Atom::Tag(t.clone()), true)).collect(),
        Condition::LacksTag(ts) => ts.iter().map(|t| (Atom::Tag(t.clone()), false)).collect(),
        Condition::Follows(b) => vec![(Atom::Follows, *b)],
        Condition::InList(l) => vec![(Atom::List(l.clone()), true)],
        Condition::Field { name, test } => match test {
            FieldTest::IsSet(b) => vec![(Atom::FieldSet(name.clone()), *b)],
            FieldTest::Equals(v) if !v.trim().is_empty() => vec![
                (Atom::FieldSet(name.clone()), true),
                (Atom::FieldIs(name.clone(), v.trim().to_lowercase()), true),
            ],
            _ => return None,
        },
        // `not` of a single fact is that fact's opposite.
        Condition::Not(inner) => match literals(inner)?.as_slice() {
            [(atom, b)] => vec![(atom.clone(), !b)],
            _ => return None,
        },
        _ => return None,
    })
}

/// What a rule's conditions (all of them must hold) certainly require.
#[derive(Clone)]
pub(super) struct Facts {
    pub(super) minutes: Minutes,
    pub(super) days: Days,
    pub(super) silence: Range,
    /// The largest `last_interaction_within`, if any.
    pub(super) within: Option<Ms>,
    pub(super) lits: Vec<(Atom, bool)>,
}

impl Facts {
    pub(super) fn of(conds: &[Condition]) -> Facts {
        let mut f = Facts {
            minutes: Minutes::FULL,
            days: Days::FULL,
            silence: silence_range(conds),
            within: None,
            lits: Vec::new(),
        };
        f.add(conds);
        f
    }

    pub(super) fn add(&mut self, conds: &[Condition]) {
        for c in conds {
            self.minutes = self.minutes.and(mask::<Minutes>(c).0);
            self.days = self.days.and(mask::<Days>(c).0);
            match c {
                Condition::All(v) => self.add(v),
                Condition::LastInteractionWithin(d) => {
                    self.within = Some(self.within.map_or(*d, |w| w.min(*d)))
                }
                _ => {
                    if let Some(l) = literals(c) {
                        self.lits.extend(l);
                    }
                }
            }
        }
    }

    /// The facts when the rule fires on this trigger (an `inactive` range is a silence).
    pub(super) fn with_trigger(&self, t: &Trigger) -> Cow<'_, Facts> {
        match t {
            Trigger::Inactive { min_days, max_days } => {
                let mut f = self.clone();
                f.silence = f.silence.and(Range {
                    min: *min_days,
                    max: *max_days,
                });
                Cow::Owned(f)
            }
            _ => Cow::Borrowed(self),
        }
    }

    pub(super) fn has(&self, atom: &Atom, value: bool) -> bool {
        self.lits.iter().any(|(a, v)| a == atom && *v == value)
    }
}

/// Whether no contact and moment can satisfy both.
pub(super) fn exclusive(a: &Facts, b: &Facts) -> bool {
    if a.minutes.and(b.minutes).is_empty()
        || a.days.and(b.days).is_empty()
        || a.silence.and(b.silence).is_empty()
    {
        return true;
    }
    a.lits.iter().any(|(atom, v)| {
        b.has(atom, !v)
            || match atom {
                Atom::FieldIs(name, value) if *v => b.lits.iter().any(|(o, ov)| {
                    *ov && matches!(o, Atom::FieldIs(n, x) if n == name && x != value)
                }),
                _ => false,
            }
    })
}

/// Whether a contact and moment with these facts certainly satisfy `c`.
pub(super) fn implied(f: &Facts, c: &Condition) -> bool {
    // A condition only about the time of day (or only about weekdays).
    if let (m, true) = mask::<Minutes>(c) {
        return f.minutes.subset_of(m);
    }
    if let (m, true) = mask::<Days>(c) {
        return f.days.subset_of(m);
    }
    if let Some(lits) = literals(c) {
        return lits.iter().all(|(a, v)| f.has(a, *v));
    }
    match c {
        Condition::All(v) => v.iter().all(|c| implied(f, c)),
        Condition::Any(v) => v.iter().any(|c| implied(f, c)),
        Condition::SilentFor { min_days, max_days } => {
            f.silence != Range::ANY
                && f.silence.within(Range {
                    min: min_days.unwrap_or(0),
                    max: *max_days,
                })
        }
        Condition::LastInteractionWithin(d) => f.within.is_some_and(|w| w <= *d),
        Condition::Field {
            name,
            test: FieldTest::Contains(s),
        } => f.lits.iter().any(|(a, v)| {
            *v && matches!(a, Atom::FieldIs(n, x) if n == name && x.contains(s.as_str()))
        }),
        _ => false,
    }
}

//! Rule hygiene: what `zaloflow rules check` warns about in rules that load fine but would
//! work badly ("avoid too many complex rules, answer fast and accurately"). Warnings never
//! stop rules from loading; `rules check --deny-warnings` turns them into a failure.
//!
//! - two enabled rules that can fire on the same event and both message the customer (they
//!   would get two messages), directly or because one adds a tag that starts the other;
//! - a rule that can never fire: a rule that runs before it ends with `stop` and matches every
//!   event it matches;
//! - a message to the customer on a `message` trigger without `once_per` or `cooldown`;
//! - a re-activation (`inactive`, or a scheduler trigger with `silent_for` of 7+ days) `send`
//!   as a customer-service message, which Zalo refuses 7 days after the last interaction;
//! - a Zalo text longer than Zalo accepts.
//!
//! The analysis is conservative in one direction only: "can fire on the same event" assumes
//! overlap unless the triggers or conditions plainly exclude each other, and "can never fire"
//! is claimed only when it is certain from the rule text.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use crate::channels::ZaloKind;

use super::model::*;
use super::text::{self, Accents};
use super::yaml::Pos;
use super::RuleSet;

/// The longest text Zalo accepts in one OA message (characters).
pub const ZALO_TEXT_LIMIT: usize = 2000;

/// Days after the last interaction from which Zalo refuses customer-service messages (-230).
pub const CS_WINDOW_DAYS: u32 = 7;

/// One hygiene warning, shown as `path:line:col: warning: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub path: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: warning: {}",
            self.path.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

fn warn(rule: &Rule, pos: Pos, message: String) -> Warning {
    Warning {
        path: rule.origin.file.to_path_buf(),
        pos,
        message,
    }
}

/// Every warning for a checked rule set, in file and position order.
pub fn check(set: &RuleSet) -> Vec<Warning> {
    let mut out = Vec::new();
    let rules = set.rules();
    for r in rules {
        unlimited_message_sends(r, &mut out);
        reactivation_via_cs(r, &mut out);
        long_texts(r, &mut out);
    }
    for c in set.campaigns() {
        for s in &c.steps {
            long_texts(&s.rule, &mut out);
        }
    }
    pairs(rules, &mut out);
    out.extend(set.load_warnings().iter().cloned());
    out.sort();
    out.dedup();
    out
}

// --- one rule at a time ---

fn unlimited_message_sends(r: &Rule, out: &mut Vec<Warning>) {
    if r.once_per.is_some() || r.cooldown.is_some() {
        return;
    }
    if !r.triggers.iter().any(|t| matches!(t, Trigger::Message(_))) {
        return;
    }
    for (i, a) in r.actions.iter().enumerate() {
        if a.messages_customer() {
            out.push(warn(
                r,
                r.action_pos(i),
                format!(
                    "rule `{}`: `{}` on a `message` trigger without `once_per` or `cooldown`: \
                     the customer gets it again for every message they write; add e.g. \
                     `cooldown: 1h` or `once_per: day`",
                    r.id,
                    a.name()
                ),
            ));
        }
    }
}

/// Triggers the scheduler evaluates for contacts who did not just write (so their
/// customer-service window may be closed).
fn scheduler_trigger(t: &Trigger) -> bool {
    matches!(
        t,
        Trigger::Schedule(_)
            | Trigger::SpecialDay { .. }
            | Trigger::FieldChanged { .. }
            | Trigger::EmailNotOpened { .. }
            | Trigger::AfterStep { .. }
    )
}

fn reactivation_via_cs(r: &Rule, out: &mut Vec<Warning>) {
    let cond = silence_range(&r.conditions);
    let reaches_silent = r.triggers.iter().any(|t| match t {
        Trigger::Inactive { min_days, max_days } => cond
            .and(Range {
                min: *min_days,
                max: *max_days,
            })
            .reaches(CS_WINDOW_DAYS),
        t if scheduler_trigger(t) => cond.min >= CS_WINDOW_DAYS,
        _ => false,
    });
    if !reaches_silent {
        return;
    }
    for (i, a) in r.actions.iter().enumerate() {
        if let Action::Send {
            via: ZaloKind::Cs, ..
        } = a
        {
            out.push(warn(
                r,
                r.action_pos(i),
                format!(
                    "rule `{}` reaches customers silent for {CS_WINDOW_DAYS} days or more, but \
                     this `send` is a customer-service message, which Zalo refuses {CS_WINDOW_DAYS} \
                     days after the last interaction (-230; the service skips it): use \
                     `via: zalo_promotion`, or `sms`, `zns` or `email`",
                    r.id
                ),
            ));
        }
    }
}

fn long_texts(r: &Rule, out: &mut Vec<Warning>) {
    for (i, a) in r.actions.iter().enumerate() {
        for (j, t) in a.zalo_texts().into_iter().enumerate() {
            let n = t.literal_chars();
            if n <= ZALO_TEXT_LIMIT {
                continue;
            }
            let pos = r
                .sites
                .get(i)
                .and_then(|s| s.texts.get(j))
                .copied()
                .unwrap_or_else(|| r.action_pos(i));
            let what = if t.has_vars() {
                format!(
                    "the literal part of this text (without its {{{{…}}}} values) is already {n} characters"
                )
            } else {
                format!("this text is {n} characters")
            };
            out.push(warn(
                r,
                pos,
                format!(
                    "rule `{}`: {what}; Zalo accepts at most {ZALO_TEXT_LIMIT} in one message: \
                     shorten it or split it into two `send`s",
                    r.id
                ),
            ));
        }
    }
}

// --- pairs of rules ---

fn pairs(rules: &[Rule], out: &mut Vec<Warning>) {
    let facts: Vec<Facts> = rules.iter().map(|r| Facts::of(&r.conditions)).collect();
    // The trigger words of each rule, as bits: most pairs share none.
    let kinds: Vec<u32> = rules
        .iter()
        .map(|r| {
            r.triggers
                .iter()
                .filter_map(|t| super::load::TRIGGERS.iter().position(|w| *w == t.name()))
                .fold(0, |m, i| m | 1 << i)
        })
        .collect();
    let mut shadowed = vec![false; rules.len()];
    for (b, rb) in rules.iter().enumerate() {
        if !rb.enabled || rb.triggers.is_empty() {
            continue;
        }
        // The first rule before it that certainly keeps it from firing.
        for (a, ra) in rules[..b].iter().enumerate() {
            if kinds[b] & !kinds[a] == 0 && ra.enabled && ra.stops() && shadows(ra, rb, &facts[b]) {
                shadowed[b] = true;
                out.push(warn(
                    rb,
                    rb.origin.pos,
                    format!(
                        "rule `{}` can never fire: `{}` ({}) runs before it (priority {} ≥ {}), \
                         matches every event it matches and ends with `stop`",
                        rb.id, ra.id, ra.origin, ra.priority, rb.priority
                    ),
                ));
                break;
            }
        }
    }
    for (b, rb) in rules.iter().enumerate() {
        if !rb.enabled || shadowed[b] || !rb.actions.iter().any(Action::messages_customer) {
            continue;
        }
        for (a, ra) in rules[..b].iter().enumerate() {
            if kinds[a] & kinds[b] == 0
                || !ra.enabled
                || shadowed[a]
                || !ra.actions.iter().any(Action::messages_customer)
            {
                continue;
            }
            if let Some(kind) = both_fire(ra, &facts[a], rb, &facts[b]) {
                out.push(warn(
                    rb,
                    rb.origin.pos,
                    format!(
                        "rules `{}` ({}) and `{}` can both fire on the same `{kind}` event and \
                         both message the customer, who would get two messages: make their \
                         conditions exclude each other, or end the first with `stop`",
                        ra.id, ra.origin, rb.id
                    ),
                ));
                break;
            }
        }
    }
    // Through a tag: a rule that messages the customer and tags them right away starts, in
    // the same evaluation (the cascade), the `tag_added` rules of that tag.
    for (b, rb) in rules.iter().enumerate() {
        if !rb.enabled || shadowed[b] || !rb.actions.iter().any(Action::messages_customer) {
            continue;
        }
        let started_by = |tag: &str, added: bool| {
            rb.triggers.iter().any(|t| match t {
                Trigger::TagAdded(x) => added && x == tag,
                Trigger::TagRemoved(x) => !added && x == tag,
                _ => false,
            })
        };
        for (a, ra) in rules.iter().enumerate() {
            if a == b
                || !ra.enabled
                || shadowed[a]
                || !ra.actions.iter().any(Action::messages_customer)
                // At the same moment: time-of-day and weekday windows still apply.
                || facts[a].minutes.and(facts[b].minutes).is_empty()
                || facts[a].days.and(facts[b].days).is_empty()
            {
                continue;
            }
            let Some((tag, added)) = immediate_tag_changes(ra).find(|(t, ad)| started_by(t, *ad))
            else {
                continue;
            };
            out.push(warn(
                rb,
                rb.origin.pos,
                format!(
                    "rule `{}` ({}) messages the customer and {} the tag `{tag}`, which starts \
                     rule `{}` in the same event, and it messages them too: they would get two \
                     messages; drop one of the messages, or `wait` before the tag",
                    ra.id,
                    ra.origin,
                    if added { "adds" } else { "removes" },
                    rb.id
                ),
            ));
            break;
        }
    }
}

/// The tags a rule adds (true) or removes (false) right away, before any `wait`: those start
/// other rules in the same evaluation.
fn immediate_tag_changes(r: &Rule) -> impl Iterator<Item = (&str, bool)> {
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
fn shadows(a: &Rule, b: &Rule, fb: &Facts) -> bool {
    b.triggers.iter().all(|tb| {
        let fb = fb.with_trigger(tb);
        a.triggers.iter().any(|ta| trigger_covers(ta, tb))
            && a.conditions.iter().all(|c| implied(&fb, c))
    })
}

/// The trigger word of an event both `a` (earlier) and `b` can fire on, if any.
fn both_fire(a: &Rule, fa: &Facts, b: &Rule, fb: &Facts) -> Option<&'static str> {
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

fn same_or_any(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

fn covers_opt(a: &Option<String>, b: &Option<String>) -> bool {
    a.is_none() || a == b
}

fn eq_ci(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Whether one event (one evaluation) can match both triggers.
fn triggers_overlap(a: &Trigger, b: &Trigger) -> bool {
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
fn trigger_covers(a: &Trigger, b: &Trigger) -> bool {
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
fn comparable(x: &MessageFilter, y: &MessageFilter) -> impl Fn(&String) -> String {
    let bare = x.accents == Accents::Optional || y.accents == Accents::Optional;
    move |s: &String| {
        if bare {
            text::fold(s, Accents::Optional)
        } else {
            s.clone()
        }
    }
}

fn messages_disjoint(x: &MessageFilter, y: &MessageFilter) -> bool {
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
fn message_covers(x: &MessageFilter, y: &MessageFilter) -> bool {
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
struct Range {
    min: u32,
    max: Option<u32>,
}

impl Range {
    const ANY: Range = Range { min: 0, max: None };

    fn and(self, o: Range) -> Range {
        Range {
            min: self.min.max(o.min),
            max: match (self.max, o.max) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    fn is_empty(self) -> bool {
        self.max.is_some_and(|m| m < self.min)
    }

    fn within(self, o: Range) -> bool {
        self.min >= o.min && o.max.is_none_or(|m| self.max.is_some_and(|x| x <= m))
    }

    /// Whether it holds some day count of at least `days`.
    fn reaches(self, days: u32) -> bool {
        !self.is_empty() && self.max.is_none_or(|m| m >= days)
    }
}

/// The silence a rule's conditions require (top-level `silent_for` and
/// `last_interaction_within`, `all:` included).
fn silence_range(conds: &[Condition]) -> Range {
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
trait Mask: Copy + PartialEq {
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
struct Minutes([u64; 23]);

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
struct Days(u8);

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
fn mask<M: Mask>(c: &Condition) -> (M, bool) {
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
enum Atom {
    Tag(String),
    Follows,
    List(String),
    FieldSet(String),
    /// The field equals this (lower-cased, trimmed) value.
    FieldIs(String, String),
}

/// The facts a single condition requires, when it is one fact (or, for `has_tag`/`lacks_tag`,
/// several that must all hold).
fn literals(c: &Condition) -> Option<Vec<(Atom, bool)>> {
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
struct Facts {
    minutes: Minutes,
    days: Days,
    silence: Range,
    /// The largest `last_interaction_within`, if any.
    within: Option<Ms>,
    lits: Vec<(Atom, bool)>,
}

impl Facts {
    fn of(conds: &[Condition]) -> Facts {
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

    fn add(&mut self, conds: &[Condition]) {
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
    fn with_trigger(&self, t: &Trigger) -> Cow<'_, Facts> {
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

    fn has(&self, atom: &Atom, value: bool) -> bool {
        self.lits.iter().any(|(a, v)| a == atom && *v == value)
    }
}

/// Whether no contact and moment can satisfy both.
fn exclusive(a: &Facts, b: &Facts) -> bool {
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
fn implied(f: &Facts, c: &Condition) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{load_sources, LoadOptions};

    fn warnings(yaml: &str) -> Vec<String> {
        let set = load_sources(
            &[(PathBuf::from("t.yaml"), yaml.to_string())],
            &LoadOptions::default(),
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        check(&set).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn windows_and_days_across_midnight() {
        let night = Minutes::leaf(&Condition::TimeBetween {
            from: 22 * 60,
            to: 4 * 60 + 59,
        })
        .unwrap();
        let morning = Minutes::leaf(&Condition::TimeBetween {
            from: 5 * 60,
            to: 10 * 60 + 59,
        })
        .unwrap();
        assert!(night.and(morning).is_empty());
        assert!(!night.and(morning.not()).is_empty());
        assert!(Minutes::FULL.not().is_empty());
        let (weekend, exact) = mask::<Days>(&Condition::Not(Box::new(Condition::Weekdays(0x1f))));
        assert!(exact);
        assert_eq!(weekend.0, 0x60);
    }

    #[test]
    fn exclusive_tags_fields_and_silence() {
        let f = |c: Vec<Condition>| Facts::of(&c);
        let vip = f(vec![Condition::HasTag(vec!["vip".into()])]);
        let not_vip = f(vec![Condition::LacksTag(vec!["vip".into()])]);
        let not_not_vip = f(vec![Condition::Not(Box::new(Condition::HasTag(vec![
            "vip".into(),
        ])))]);
        assert!(exclusive(&vip, &not_vip));
        assert!(exclusive(&vip, &not_not_vip));
        assert!(!exclusive(&vip, &vip));
        let gift = |v: &str| {
            f(vec![Condition::Field {
                name: "gift".into(),
                test: FieldTest::Equals(v.into()),
            }])
        };
        assert!(exclusive(&gift("a"), &gift("b")));
        assert!(!exclusive(&gift("a"), &gift("A ")));
        let silent = |min, max| {
            f(vec![Condition::SilentFor {
                min_days: Some(min),
                max_days: Some(max),
            }])
        };
        assert!(exclusive(&silent(7, 14), &silent(15, 30)));
        assert!(!exclusive(&silent(7, 15), &silent(15, 30)));
    }

    #[test]
    fn clean_rules_have_no_warnings() {
        let w = warnings(
            "- id: a\n  when: message\n  if: {time_between: [\"05:00\", \"10:59\"]}\n  do: [send: a]\n  once_per: period\n\
             - id: b\n  when: message\n  if: {time_between: [\"11:00\", \"13:59\"]}\n  do: [send: b]\n  cooldown: 1h\n\
             - id: c\n  when: {message: {equals: [hi]}}\n  if: {time_between: [\"14:00\", \"16:59\"]}\n  do: [send: c]\n  once_per: day\n\
             - id: d\n  when: {message: {equals: [bye]}}\n  if: {time_between: [\"14:00\", \"16:59\"]}\n  do: [send: d]\n  once_per: day\n",
        );
        assert!(w.is_empty(), "{w:#?}");
    }
}

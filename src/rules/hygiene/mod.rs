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
use crate::i18n::Lang;

/// The longest text Zalo accepts in one OA message (characters).
pub const ZALO_TEXT_LIMIT: usize = 2000;

/// Days after the last interaction from which Zalo refuses customer-service messages (-230).
pub const CS_WINDOW_DAYS: u32 = 7;

/// One hygiene warning, shown as `path:line:col: warning: message` (in English; see
/// [`Warning::render`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    pub path: PathBuf,
    pub pos: Pos,
    pub message: String,
    /// The language of `message` (the rules' load options'): the warning is shown in it.
    pub lang: Lang,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.lang))
    }
}

impl Warning {
    /// The warning as staff read it in `lang` (see [`crate::rules::Diagnostic::render`]).
    pub fn render(&self, lang: crate::i18n::Lang) -> String {
        crate::rules::msg!(
            lang,
            "rules.check.warning",
            at = crate::rules::load::at(lang, &self.path, self.pos),
            message = self.message
        )
    }
}

fn warn(rule: &Rule, pos: Pos, lang: Lang, message: String) -> Warning {
    Warning {
        path: rule.origin.file.to_path_buf(),
        pos,
        message,
        lang,
    }
}

/// Every warning for a checked rule set, in file and position order.
pub fn check(set: &RuleSet) -> Vec<Warning> {
    let mut out = Vec::new();
    let rules = set.rules();
    let lang = set.lang();
    for r in rules {
        unlimited_message_sends(r, lang, &mut out);
        reactivation_via_cs(r, lang, &mut out);
        long_texts(r, lang, &mut out);
    }
    for c in set.campaigns() {
        for s in &c.steps {
            long_texts(&s.rule, lang, &mut out);
        }
    }
    pairs(rules, lang, &mut out);
    out.extend(set.load_warnings().iter().cloned());
    out.sort();
    out.dedup();
    out
}

// --- one rule at a time ---

/// Where a rule is written, in `lang`.
fn origin(lang: Lang, r: &Rule) -> String {
    super::load::at(lang, &r.origin.file, r.origin.pos)
}

fn unlimited_message_sends(r: &Rule, lang: Lang, out: &mut Vec<Warning>) {
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
                lang,
                msg!(
                    lang,
                    "rules.hygiene.unlimited",
                    id = r.id,
                    action = a.name()
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

fn reactivation_via_cs(r: &Rule, lang: Lang, out: &mut Vec<Warning>) {
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
                lang,
                msg!(
                    lang,
                    "rules.hygiene.reactivation_cs",
                    id = r.id,
                    days = CS_WINDOW_DAYS
                ),
            ));
        }
    }
}

fn long_texts(r: &Rule, lang: Lang, out: &mut Vec<Warning>) {
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
                msg!(lang, "rules.hygiene.literal_chars", n = n)
            } else {
                msg!(lang, "rules.hygiene.text_chars", n = n)
            };
            out.push(warn(
                r,
                pos,
                lang,
                msg!(
                    lang,
                    "rules.hygiene.too_long",
                    id = r.id,
                    what = what,
                    limit = ZALO_TEXT_LIMIT
                ),
            ));
        }
    }
}

// --- pairs of rules ---

fn pairs(rules: &[Rule], lang: Lang, out: &mut Vec<Warning>) {
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
                    lang,
                    msg!(
                        lang,
                        "rules.hygiene.never_fires",
                        id = rb.id,
                        other = ra.id,
                        at = origin(lang, ra),
                        p1 = ra.priority,
                        p2 = rb.priority
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
                    lang,
                    msg!(
                        lang,
                        "rules.hygiene.both_fire",
                        a = ra.id,
                        at = origin(lang, ra),
                        b = rb.id,
                        kind = kind
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
                lang,
                if added {
                    msg!(
                        lang,
                        "rules.hygiene.tag_chain_added",
                        a = ra.id,
                        at = origin(lang, ra),
                        tag = tag,
                        b = rb.id
                    )
                } else {
                    msg!(
                        lang,
                        "rules.hygiene.tag_chain_removed",
                        a = ra.id,
                        at = origin(lang, ra),
                        tag = tag,
                        b = rb.id
                    )
                },
            ));
            break;
        }
    }
}

mod overlap;

use overlap::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{load_sources, LoadOptions};

    fn warnings(yaml: &str) -> Vec<String> {
        let set = load_sources(
            &[(PathBuf::from("t.yaml"), yaml.to_string())],
            &LoadOptions {
                lang: Lang::En,
                ..LoadOptions::default()
            },
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

//! The matcher: an event (or a scheduler trigger) and a contact in, the rules that fire and
//! what each would do out. Pure: no I/O, no clock; time is the input's `at`.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate, TimeZone, Timelike};
use serde_json::json;

use crate::channels::Payload;
use crate::store::Contact;
use crate::zalo::event::{Event, EventKind};

use super::model::*;
use super::text::{self, Accents};
use super::RuleSet;

/// How deep rule-caused events cascade: a tag added by a rule may start `tag_added` rules,
/// whose tags may start others, up to this many levels below the original event.
pub const CASCADE_DEPTH: u8 = 3;

/// What the matcher needs to know about earlier firings to judge `once_per` and `cooldown`.
/// The caller records a firing (user, rule, `period_key`, at) in the same transaction as the
/// actions it planned.
pub trait FireHistory {
    /// Whether this rule already fired for this user with this period key.
    fn fired(&self, user_id: &str, rule_id: &str, period_key: &str) -> bool;
    /// When this rule last fired for this user (ms), if ever.
    fn last_fired(&self, user_id: &str, rule_id: &str) -> Option<i64>;
}

/// No rule has ever fired.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHistory;

impl FireHistory for NoHistory {
    fn fired(&self, _: &str, _: &str, _: &str) -> bool {
        false
    }
    fn last_fired(&self, _: &str, _: &str) -> Option<i64> {
        None
    }
}

/// An in-memory history (tests, `simulate`, the demo).
#[derive(Debug, Default, Clone)]
pub struct MemoryHistory {
    keys: std::collections::HashSet<(String, String, String)>,
    last: HashMap<(String, String), i64>,
}

impl MemoryHistory {
    pub fn record(&mut self, user_id: &str, rule_id: &str, period_key: &str, at: i64) {
        self.keys
            .insert((user_id.into(), rule_id.into(), period_key.into()));
        let l = self
            .last
            .entry((user_id.into(), rule_id.into()))
            .or_insert(at);
        *l = (*l).max(at);
    }

    /// Records every firing of an evaluation.
    pub fn record_all(&mut self, user_id: &str, ev: &Evaluation, at: i64) {
        for f in &ev.fired {
            self.record(user_id, &f.rule_id, &f.period_key, at);
        }
    }
}

impl FireHistory for MemoryHistory {
    fn fired(&self, user_id: &str, rule_id: &str, period_key: &str) -> bool {
        self.keys
            .contains(&(user_id.into(), rule_id.into(), period_key.into()))
    }
    fn last_fired(&self, user_id: &str, rule_id: &str) -> Option<i64> {
        self.last.get(&(user_id.into(), rule_id.into())).copied()
    }
}

/// What starts an evaluation.
#[derive(Debug, Clone, Copy)]
pub enum Stimulus<'a> {
    /// A Zalo webhook event.
    Event(&'a Event),
    /// A tag a rule added (`added`) or removed: the cascade's synthetic event.
    TagChanged {
        tag: &'a str,
        added: bool,
    },
    /// A `schedule` rule is due (the scheduler found its cron time).
    Schedule {
        rule_id: &'a str,
    },
    /// The scheduler's inactivity scan reached this contact.
    Inactive,
    /// Today is (or is `days_before` ahead of) this contact's date field.
    SpecialDay {
        field: &'a str,
    },
    FieldChanged {
        field: &'a str,
        value: Option<&'a str>,
    },
    FormSubmitted {
        form: &'a str,
    },
    /// `email` names what sent the email (a rule id or campaign step).
    EmailOpened {
        email: &'a str,
        /// A machine's fetch (see `crate::tracking::AGENTS`), not a person's open.
        machine: bool,
    },
    EmailNotOpened {
        email: &'a str,
        sent_at: i64,
    },
    EmailClicked {
        email: &'a str,
        link: &'a str,
    },
    AfterStep {
        campaign: &'a str,
        step: &'a str,
    },
}

static NO_LISTS: BTreeSet<String> = BTreeSet::new();

/// Everything one evaluation looks at.
#[derive(Clone, Copy)]
pub struct EvalInput<'a> {
    pub stimulus: Stimulus<'a>,
    /// The contact as currently known, with this event's own changes applied (follow status,
    /// Zalo's tags, submitted info) — what `Engine::process` keeps.
    pub contact: &'a Contact,
    /// The contact's last interaction *before* this event: what `silent_for`, `inactive`,
    /// `last_interaction_within` and `once_per: silence` judge. [`EvalInput::new`] takes it
    /// from the contact; set it explicitly for events the user caused.
    pub previous_interaction: Option<i64>,
    /// The contact lists the contact belongs to.
    pub lists: &'a BTreeSet<String>,
    /// The event's own time (ms).
    pub at: i64,
    /// The OA time zone.
    pub tz: chrono_tz::Tz,
    pub history: &'a dyn FireHistory,
}

impl<'a> EvalInput<'a> {
    pub fn new(
        stimulus: Stimulus<'a>,
        contact: &'a Contact,
        at: i64,
        tz: chrono_tz::Tz,
        history: &'a dyn FireHistory,
    ) -> Self {
        EvalInput {
            stimulus,
            contact,
            previous_interaction: contact.last_interaction,
            lists: &NO_LISTS,
            at,
            tz,
            history,
        }
    }

    pub fn with_previous_interaction(mut self, at: Option<i64>) -> Self {
        self.previous_interaction = at;
        self
    }

    pub fn with_lists(mut self, lists: &'a BTreeSet<String>) -> Self {
        self.lists = lists;
        self
    }
}

/// One action to carry out, at `run_at` (ms; later than the event after a `wait`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedAction {
    pub run_at: i64,
    pub action: ActionPlan,
    /// The A/B variant chosen for this contact, for a `send` with variants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// What to do. Outbound sends are ready-made channel payloads for the outbox.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActionPlan {
    /// Enqueue this job (Zalo message, SMS, email, ZNS, team chat, task).
    Outbound {
        payload: Payload,
    },
    /// Add (or remove) a tag on the contact, and mirror it to Zalo
    /// ([`PlannedAction::zalo_mirror`]).
    Tag {
        tag: String,
        add: bool,
    },
    SetField {
        name: String,
        value: String,
    },
    List {
        op: &'static str,
        list: String,
        from: Option<String>,
    },
    /// Open a handoff to people; agents must answer by `deadline_at`.
    Handoff {
        team: Option<String>,
        advisor: Option<String>,
        deadline_at: i64,
        priority: Priority,
        note: Option<String>,
    },
    /// `try:` — the first of these sends Zalo will accept now; the rest are the fallbacks
    /// (each an `Outbound` or a `Skipped`, in the rule's order).
    FirstOf(Vec<ActionPlan>),
    /// An action that cannot run for this contact (e.g. an SMS without a phone number).
    Skipped {
        action: &'static str,
        reason: String,
    },
}

impl PlannedAction {
    /// The outbox job this action needs: the payload of an outbound action, or the Zalo tag
    /// call that mirrors a tag change.
    pub fn payload(&self, user_id: &str) -> Option<Payload> {
        match &self.action {
            ActionPlan::Outbound { payload } => Some(payload.clone()),
            ActionPlan::FirstOf(choices) => choices.iter().find_map(|c| match c {
                ActionPlan::Outbound { payload } => Some(payload.clone()),
                _ => None,
            }),
            ActionPlan::Tag { .. } => self.zalo_mirror(user_id),
            _ => None,
        }
    }

    pub fn zalo_mirror(&self, user_id: &str) -> Option<Payload> {
        match &self.action {
            ActionPlan::Tag { tag, add } => Some(Payload::ZaloTag {
                user_id: user_id.to_string(),
                tag: tag.clone(),
                add: *add,
            }),
            _ => None,
        }
    }
}

/// One rule that fired.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fired {
    pub rule_id: String,
    /// Record (user, rule, period_key) as fired in the same transaction as the actions.
    pub period_key: String,
    /// 0 for the event itself; 1.. for rule-caused tag events.
    pub depth: u8,
    /// What started it, e.g. `message`, `tag_added vip_customer`.
    pub cause: String,
    pub actions: Vec<PlannedAction>,
    /// The rule ended with `stop`: no lower-priority rule ran for this event.
    pub stopped: bool,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Evaluation {
    pub user_id: String,
    /// In order: priority, then file, then position.
    pub fired: Vec<Fired>,
    /// The cascade stopped at [`CASCADE_DEPTH`] while rule-caused events were still pending.
    pub cascade_truncated: bool,
}

impl Evaluation {
    pub fn actions(&self) -> impl Iterator<Item = (&Fired, &PlannedAction)> {
        self.fired
            .iter()
            .flat_map(|f| f.actions.iter().map(move |a| (f, a)))
    }
}

type Entry = (u32, u16);

/// From this many `contains` keywords on, message rules are found through a literal set.
const CONTAINS_PREFILTER_MIN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Follow,
    Unfollow,
    ChatNow,
    InfoSubmitted,
    OaReply,
    Schedule,
    Inactive,
    SpecialDay,
    FieldChanged,
    EmailOpened,
    EmailNotOpened,
    EmailClicked,
    AfterStep,
}
const KINDS: usize = 13;

/// Rules by trigger, so an event only looks at rules that can start on it.
#[derive(Debug, Default)]
pub(crate) struct Index {
    simple: [Vec<Entry>; KINDS],
    /// Message triggers without `equals` (and, when the prefilter is built, without
    /// `contains`).
    message: Vec<Entry>,
    /// Many `contains` rules: one pass over the text finds the keywords present (every
    /// keyword is a literal pattern; pattern i belongs to `contains_entries[i]`).
    contains_set: Option<regex::RegexSet>,
    contains_entries: Vec<Entry>,
    /// Message triggers with `equals`, by each lower-cased text.
    message_equals: HashMap<String, Vec<Entry>>,
    tag_added: HashMap<String, Vec<Entry>>,
    tag_removed: HashMap<String, Vec<Entry>>,
    form: HashMap<String, Vec<Entry>>,
    by_id: HashMap<String, u32>,
}

impl Index {
    pub(crate) fn build(rules: &[Rule]) -> Index {
        let mut ix = Index::default();
        let mut contains: Vec<(String, Entry)> = Vec::new();
        for (ri, r) in rules.iter().enumerate() {
            ix.by_id.insert(r.id.clone(), ri as u32);
            if !r.enabled {
                continue;
            }
            for (ti, t) in r.triggers.iter().enumerate() {
                let e = (ri as u32, ti as u16);
                let kind = match t {
                    Trigger::Message(f) => {
                        let keywords = || f.contains.iter().chain(&f.contains_text);
                        if f.equals.is_empty() && keywords().next().is_some() {
                            // The prefilter looks for each keyword as a substring of the
                            // message without diacritics: whatever a rule can match, in
                            // either mode, holds that.
                            for k in keywords() {
                                contains.push((text::fold(k, Accents::Optional), e));
                            }
                        } else if f.equals.is_empty() {
                            ix.message.push(e);
                        } else {
                            for s in &f.equals {
                                ix.message_equals
                                    .entry(text::fold(s, Accents::Optional))
                                    .or_default()
                                    .push(e);
                            }
                        }
                        continue;
                    }
                    Trigger::TagAdded(tag) => {
                        ix.tag_added.entry(tag.clone()).or_default().push(e);
                        continue;
                    }
                    Trigger::TagRemoved(tag) => {
                        ix.tag_removed.entry(tag.clone()).or_default().push(e);
                        continue;
                    }
                    Trigger::FormSubmitted(f) => {
                        ix.form.entry(f.clone()).or_default().push(e);
                        continue;
                    }
                    Trigger::Follow => Kind::Follow,
                    Trigger::Unfollow => Kind::Unfollow,
                    Trigger::ChatNow => Kind::ChatNow,
                    Trigger::InfoSubmitted => Kind::InfoSubmitted,
                    Trigger::OaReply => Kind::OaReply,
                    Trigger::Schedule(_) => Kind::Schedule,
                    Trigger::Inactive { .. } => Kind::Inactive,
                    Trigger::SpecialDay { .. } => Kind::SpecialDay,
                    Trigger::FieldChanged { .. } => Kind::FieldChanged,
                    Trigger::EmailOpened { .. } => Kind::EmailOpened,
                    Trigger::EmailNotOpened { .. } => Kind::EmailNotOpened,
                    Trigger::EmailClicked { .. } => Kind::EmailClicked,
                    Trigger::AfterStep { .. } => Kind::AfterStep,
                };
                ix.simple[kind as usize].push(e);
            }
        }
        // A handful of `contains` rules are cheapest checked one by one; past that, one
        // pass of a literal set over the text (patterns are folded, like the text).
        let set = (contains.len() >= CONTAINS_PREFILTER_MIN)
            .then(|| {
                regex::RegexSetBuilder::new(contains.iter().map(|(k, _)| regex::escape(k)))
                    .size_limit(256 << 20)
                    .dfa_size_limit(64 << 20)
                    .build()
                    .ok()
            })
            .flatten();
        match set {
            Some(set) => {
                ix.contains_set = Some(set);
                ix.contains_entries = contains.into_iter().map(|(_, e)| e).collect();
            }
            None => {
                ix.message.extend(contains.into_iter().map(|(_, e)| e));
                ix.message.sort_unstable();
                ix.message.dedup();
            }
        }
        ix
    }

    pub(crate) fn rule_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).map(|&i| i as usize)
    }
}

/// The event's local time, computed once and only if a rule asks.
struct Local {
    date: NaiveDate,
    minute: u16,
    /// 0 = Monday.
    weekday: u8,
}

fn local(at: i64, tz: chrono_tz::Tz) -> Local {
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

struct Judge<'i, 'a> {
    input: &'i EvalInput<'a>,
    local: Option<Local>,
    /// A user message's text folded with diacritics, and without.
    text: Option<(String, String)>,
}

impl Judge<'_, '_> {
    fn local(&mut self) -> &Local {
        let (at, tz) = (self.input.at, self.input.tz);
        self.local.get_or_insert_with(|| local(at, tz))
    }

    fn silence_days(&self) -> Option<i64> {
        let p = self.input.previous_interaction?;
        Some((self.input.at - p).max(0) / DAY)
    }

    fn holds(&mut self, c: &Condition) -> bool {
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
    fn period_key(&mut self, conds: &[Condition]) -> String {
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

fn in_window(m: u16, from: u16, to: u16) -> bool {
    if from <= to {
        m >= from && m <= to
    } else {
        m >= from || m <= to
    }
}

fn field_value<'c>(c: &'c Contact, name: &str) -> Option<&'c str> {
    match name {
        "display_name" => c.display_name.as_deref(),
        "phone" => c.phone.as_deref(),
        "email" => c.email.as_deref(),
        _ => c.fields.get(name).map(String::as_str),
    }
}

/// Day and month of a date field: `DD/MM/YYYY`, `DD/MM`, `YYYY-MM-DD`.
fn day_month(s: &str) -> Option<(u32, u32)> {
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

fn is_special_day(value: &str, today: NaiveDate, days_before: u32) -> bool {
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

impl RuleSet {
    /// Evaluates one stimulus (no cascade): which rules fire, in order, and what each does.
    pub fn evaluate(&self, input: &EvalInput) -> Evaluation {
        self.evaluate_at_depth(input, 0)
    }

    fn candidates<'s>(
        &'s self,
        input: &EvalInput,
        judge: &mut Judge,
    ) -> (Cow<'s, [Entry]>, String) {
        let ix = &self.index;
        let simple = |k: Kind| Cow::Borrowed(ix.simple[k as usize].as_slice());
        let lookup = |m: &'s HashMap<String, Vec<Entry>>, k: &str| {
            Cow::Borrowed(m.get(k).map(Vec::as_slice).unwrap_or(&[]))
        };
        match input.stimulus {
            Stimulus::Event(e) => match &e.kind {
                EventKind::UserMessage { text: t, .. } => {
                    let t = t.as_deref().unwrap_or("");
                    let folded = text::fold(t, Accents::Required);
                    let bare = text::fold(&folded, Accents::Optional);
                    let eq = ix.message_equals.get(&bare);
                    let hits = ix.contains_set.as_ref().map(|set| set.matches(&bare));
                    let has_hits = hits.as_ref().is_some_and(|h| h.matched_any());
                    let c = if eq.is_none() && !has_hits {
                        Cow::Borrowed(ix.message.as_slice())
                    } else {
                        let mut c = ix.message.clone();
                        if let Some(eq) = eq {
                            c.extend_from_slice(eq);
                        }
                        if let Some(hits) = hits {
                            c.extend(hits.iter().map(|i| ix.contains_entries[i]));
                        }
                        c.sort_unstable();
                        c.dedup();
                        Cow::Owned(c)
                    };
                    judge.text = Some((folded, bare));
                    (c, "message".into())
                }
                EventKind::Follow { .. } => (simple(Kind::Follow), "follow".into()),
                EventKind::Unfollow { .. } => (simple(Kind::Unfollow), "unfollow".into()),
                EventKind::ChatNow { .. } => (simple(Kind::ChatNow), "chat_now".into()),
                EventKind::SubmitInfo { .. } => {
                    (simple(Kind::InfoSubmitted), "info_submitted".into())
                }
                // The OA's own sends never start message rules; a person's reply from the
                // OA console starts `oa_reply` rules.
                EventKind::OaMessage {
                    admin_id: Some(_), ..
                } => (simple(Kind::OaReply), "oa_reply".into()),
                EventKind::TagAdded { tag, .. } => {
                    (lookup(&ix.tag_added, tag), format!("tag_added {tag}"))
                }
                EventKind::TagRemoved { tag, .. } => {
                    (lookup(&ix.tag_removed, tag), format!("tag_removed {tag}"))
                }
                // A registration on a form starts that form's `form_submitted` rules.
                EventKind::FormSubmitted { form, .. } => {
                    (lookup(&ix.form, form), format!("form_submitted {form}"))
                }
                _ => (Cow::Borrowed(&[][..]), e.name.clone()),
            },
            Stimulus::TagChanged { tag, added: true } => (
                lookup(&ix.tag_added, tag),
                format!("tag_added {tag} (by a rule)"),
            ),
            Stimulus::TagChanged { tag, added: false } => (
                lookup(&ix.tag_removed, tag),
                format!("tag_removed {tag} (by a rule)"),
            ),
            Stimulus::Schedule { rule_id } => {
                let c = ix.simple[Kind::Schedule as usize]
                    .iter()
                    .copied()
                    .filter(|(r, _)| self.rules[*r as usize].id == rule_id)
                    .collect();
                (Cow::Owned(c), format!("schedule {rule_id}"))
            }
            Stimulus::Inactive => (simple(Kind::Inactive), "inactive".into()),
            Stimulus::SpecialDay { field } => {
                (simple(Kind::SpecialDay), format!("special_day {field}"))
            }
            Stimulus::FieldChanged { field, .. } => {
                (simple(Kind::FieldChanged), format!("field_changed {field}"))
            }
            Stimulus::FormSubmitted { form } => {
                (lookup(&ix.form, form), format!("form_submitted {form}"))
            }
            Stimulus::EmailOpened { .. } => (simple(Kind::EmailOpened), "email_opened".into()),
            Stimulus::EmailNotOpened { .. } => {
                (simple(Kind::EmailNotOpened), "email_not_opened".into())
            }
            Stimulus::EmailClicked { .. } => (simple(Kind::EmailClicked), "email_clicked".into()),
            Stimulus::AfterStep { campaign, step } => (
                simple(Kind::AfterStep),
                format!("after_step {campaign}/{step}"),
            ),
        }
    }

    fn trigger_matches(&self, t: &Trigger, input: &EvalInput, judge: &mut Judge) -> bool {
        match (t, input.stimulus) {
            (Trigger::Message(f), Stimulus::Event(e)) => {
                let EventKind::UserMessage {
                    text: raw,
                    attachments,
                    ..
                } = &e.kind
                else {
                    return false;
                };
                let (folded, bare) = judge.text.as_ref().map_or(("", ""), |(f, b)| (f, b));
                let optional = f.accents == Accents::Optional;
                let t = if optional { bare } else { folded };
                // Keywords are kept as written (folded with their diacritics).
                fn keyword(w: &str, optional: bool) -> Cow<'_, str> {
                    if optional {
                        Cow::Owned(text::fold(w, Accents::Optional))
                    } else {
                        Cow::Borrowed(w)
                    }
                }
                let k = |w| keyword(w, optional);
                let words = f.contains.iter().any(|w| text::contains_word(t, &k(w)));
                let inside = f.contains_text.iter().any(|w| t.contains(&*k(w)));
                (f.equals.is_empty() || f.equals.iter().any(|s| k(s) == t))
                    && ((f.contains.is_empty() && f.contains_text.is_empty()) || words || inside)
                    && f.regex
                        .as_ref()
                        .is_none_or(|r| r.is_match(raw.as_deref().unwrap_or("")))
                    && f.attachment.as_deref().is_none_or(|k| {
                        if k == "any" {
                            !attachments.is_empty()
                        } else {
                            attachments.iter().any(|a| a.kind == k)
                        }
                    })
            }
            (Trigger::Inactive { min_days, max_days }, Stimulus::Inactive) => {
                match judge.silence_days() {
                    Some(d) => {
                        d >= i64::from(*min_days) && max_days.is_none_or(|m| d <= i64::from(m))
                    }
                    None => false,
                }
            }
            (
                Trigger::SpecialDay {
                    on: SpecialDate::Field(field),
                    days_before,
                },
                Stimulus::SpecialDay { field: f },
            ) => {
                field == f
                    && field_value(input.contact, field).is_some_and(|v| {
                        let today = judge.local().date;
                        is_special_day(v, today, *days_before)
                    })
            }
            (
                Trigger::SpecialDay {
                    on: SpecialDate::Date { day, month },
                    days_before,
                },
                Stimulus::SpecialDay { .. },
            ) => {
                let today = judge.local().date;
                is_special_day(&format!("{day}/{month}"), today, *days_before)
            }
            (Trigger::FieldChanged { field, to }, Stimulus::FieldChanged { field: f, value }) => {
                field == f
                    && to.as_deref().is_none_or(|want| {
                        value.is_some_and(|v| v.trim().to_lowercase() == want.trim().to_lowercase())
                    })
            }
            (
                Trigger::EmailOpened {
                    email,
                    machine_opens,
                },
                Stimulus::EmailOpened { email: e, machine },
            ) => (!machine || *machine_opens) && email.as_deref().is_none_or(|x| x == e),
            (
                Trigger::EmailNotOpened {
                    within_hours,
                    email,
                    ..
                },
                Stimulus::EmailNotOpened { email: e, sent_at },
            ) => {
                email.as_deref().is_none_or(|x| x == e)
                    && input.at >= sent_at + i64::from(*within_hours) * HOUR
            }
            (
                Trigger::EmailClicked { link, email },
                Stimulus::EmailClicked { email: e, link: l },
            ) => email.as_deref().is_none_or(|x| x == e) && link.as_deref().is_none_or(|x| x == l),
            (
                Trigger::AfterStep { campaign, step },
                Stimulus::AfterStep {
                    campaign: c,
                    step: s,
                },
            ) => campaign == c && step == s,
            // Indexed exactly: being a candidate is the match.
            (
                Trigger::Follow
                | Trigger::Unfollow
                | Trigger::ChatNow
                | Trigger::InfoSubmitted
                | Trigger::OaReply
                | Trigger::TagAdded(_)
                | Trigger::TagRemoved(_)
                | Trigger::FormSubmitted(_)
                | Trigger::Schedule(_),
                _,
            ) => true,
            _ => false,
        }
    }

    fn evaluate_at_depth(&self, input: &EvalInput, depth: u8) -> Evaluation {
        let user_id = input.contact.user_id.as_str();
        let mut judge = Judge {
            input,
            local: None,
            text: None,
        };
        let mut out = Evaluation {
            user_id: user_id.to_string(),
            ..Evaluation::default()
        };
        let (cands, cause) = self.candidates(input, &mut judge);
        let mut last_rule = u32::MAX;
        for &(ri, ti) in cands.iter() {
            if ri == last_rule {
                continue;
            }
            let rule = &self.rules[ri as usize];
            if !self.trigger_matches(&rule.triggers[ti as usize], input, &mut judge) {
                continue;
            }
            // A follow-up's weekdays and hours move its sends (engine), they do not stop it.
            let follow_up = super::campaign::is_follow_up(rule);
            if !rule
                .conditions
                .iter()
                .filter(|c| !(follow_up && super::campaign::is_window(c)))
                .all(|c| judge.holds(c))
            {
                continue;
            }
            // Scheduler scans come back every tick: an `inactive` rule runs at most once per
            // silence and a `special_day` rule once per day even without `once_per`.
            let once_per = rule.once_per.or(match input.stimulus {
                Stimulus::Inactive => Some(OncePer::Silence),
                Stimulus::SpecialDay { .. } => Some(OncePer::Day),
                _ => None,
            });
            let period_key = match once_per {
                Some(OncePer::Day) => format!("day:{}", judge.local().date),
                Some(OncePer::Period) => judge.period_key(&rule.conditions),
                Some(OncePer::Silence) => match input.previous_interaction {
                    Some(p) => format!("silence:{p}"),
                    None => "silence:none".into(),
                },
                Some(OncePer::Ever) => "ever".into(),
                None => format!("at:{}", input.at),
            };
            // A rule held back by its own limit does not run; when it ends with `stop` it still
            // keeps the rules below it from running (an SMS sent earlier in this silence stays
            // instead of a promotion).
            let limited = (once_per.is_some()
                && input.history.fired(user_id, &rule.id, &period_key))
                || rule.cooldown.is_some_and(|cd| {
                    input
                        .history
                        .last_fired(user_id, &rule.id)
                        .is_some_and(|last| input.at - last < cd)
                });
            if limited {
                if rule.stops() {
                    break;
                }
                continue;
            }
            last_rule = ri;
            let actions = plan(rule, input);
            let stopped = rule.stops();
            out.fired.push(Fired {
                rule_id: rule.id.clone(),
                period_key,
                depth,
                cause: cause.clone(),
                actions,
                stopped,
            });
            if stopped {
                break;
            }
        }
        out
    }

    /// Evaluates the stimulus and then, to at most [`CASCADE_DEPTH`] levels, the tags that
    /// fired rules add or remove right away (not after a `wait`): each becomes a synthetic
    /// `tag_added` / `tag_removed` event for this contact. Tags already in the wanted state
    /// cause nothing, and a rule fires at most once per period key across the cascade.
    pub fn evaluate_cascade(&self, input: &EvalInput) -> Evaluation {
        let mut out = self.evaluate_at_depth(input, 0);
        let mut contact = input.contact.clone();
        let mut frontier = tag_changes(&out.fired, input.at, &mut contact);
        let mut depth = 1u8;
        while !frontier.is_empty() {
            if depth > CASCADE_DEPTH {
                out.cascade_truncated = true;
                break;
            }
            let snapshot = contact.clone();
            let overlay = Overlay {
                base: input.history,
                fired: &out.fired,
                user_id: &out.user_id,
                at: input.at,
            };
            let mut level = Vec::new();
            for (tag, added) in &frontier {
                let sub = EvalInput {
                    stimulus: Stimulus::TagChanged { tag, added: *added },
                    contact: &snapshot,
                    history: &overlay,
                    ..*input
                };
                level.extend(self.evaluate_at_depth(&sub, depth).fired);
            }
            frontier = tag_changes(&level, input.at, &mut contact);
            out.fired.extend(level);
            depth += 1;
        }
        out
    }

    /// The `schedule` rules and their cron patterns (for the scheduler).
    pub fn scheduled(&self) -> impl Iterator<Item = (&Rule, &Cron)> {
        self.index.simple[Kind::Schedule as usize]
            .iter()
            .filter_map(|(r, t)| {
                let rule = &self.rules[*r as usize];
                match &rule.triggers[*t as usize] {
                    Trigger::Schedule(c) => Some((rule, &**c)),
                    _ => None,
                }
            })
    }

    /// The enabled rules with a trigger of this word (e.g. `inactive`, `special_day`), for
    /// the scheduler's scans.
    pub fn rules_with_trigger(&self, word: &str) -> impl Iterator<Item = (&Rule, &Trigger)> {
        let word = word.to_string();
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .flat_map(|r| r.triggers.iter().map(move |t| (r, t)))
            .filter(move |(_, t)| t.name() == word)
    }
}

/// The history as seen inside one cascade: what the base says plus what already fired.
struct Overlay<'a> {
    base: &'a dyn FireHistory,
    fired: &'a [Fired],
    user_id: &'a str,
    at: i64,
}

impl FireHistory for Overlay<'_> {
    fn fired(&self, user_id: &str, rule_id: &str, period_key: &str) -> bool {
        (user_id == self.user_id
            && self
                .fired
                .iter()
                .any(|f| f.rule_id == rule_id && f.period_key == period_key))
            || self.base.fired(user_id, rule_id, period_key)
    }
    fn last_fired(&self, user_id: &str, rule_id: &str) -> Option<i64> {
        if user_id == self.user_id && self.fired.iter().any(|f| f.rule_id == rule_id) {
            return Some(self.at);
        }
        self.base.last_fired(user_id, rule_id)
    }
}

/// The immediate tag changes of these firings that change the contact, applied to it.
fn tag_changes(fired: &[Fired], at: i64, contact: &mut Contact) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for f in fired {
        for a in &f.actions {
            if let (ActionPlan::Tag { tag, add }, true) = (&a.action, a.run_at == at) {
                let changed = if *add {
                    contact.tags.insert(tag.clone())
                } else {
                    contact.tags.remove(tag)
                };
                if changed {
                    out.push((tag.clone(), *add));
                }
            }
        }
    }
    out
}

/// The next instant after `t` whose local clock reads `minute` (minutes from midnight).
fn next_clock(t: i64, minute: u16, tz: chrono_tz::Tz) -> i64 {
    let l = local(t, tz);
    for add_days in 0..3u64 {
        let date = l.date + chrono::Days::new(add_days);
        let Some(naive) = date.and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)
        else {
            continue;
        };
        // A clock time skipped by a DST change counts from the first instant after it.
        let cand = match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(d) => d.timestamp_millis(),
            chrono::LocalResult::Ambiguous(d, _) => d.timestamp_millis(),
            chrono::LocalResult::None => continue,
        };
        if cand > t {
            return cand;
        }
    }
    t + DAY
}

fn plan(rule: &Rule, input: &EvalInput) -> Vec<PlannedAction> {
    plan_list(rule, &rule.actions, input, input.at)
}

/// Plans `actions` of `rule` from `start` (a rule's own list, or the choices of a `try:`).
fn plan_list(rule: &Rule, actions: &[Action], input: &EvalInput, start: i64) -> Vec<PlannedAction> {
    let c = input.contact;
    let user_id = c.user_id.clone();
    let mut t = start;
    let mut out = Vec::with_capacity(actions.len());
    // The A/B variant of the next action pushed (set by a `send` with variants).
    let variant = std::cell::Cell::new(None::<String>);
    let mut push = |t: i64, action: ActionPlan| {
        out.push(PlannedAction {
            run_at: t,
            action,
            variant: variant.take(),
        })
    };
    for a in actions {
        match a {
            Action::FirstOf(alts) => {
                let choices = plan_list(rule, alts, input, t)
                    .into_iter()
                    .map(|p| p.action)
                    .collect();
                push(t, ActionPlan::FirstOf(choices))
            }
            Action::Wait(Wait::For(d)) => t += d,
            Action::Wait(Wait::Until(m)) => t = next_clock(t, *m, input.tz),
            Action::Stop => {}
            Action::Send {
                text,
                image,
                buttons,
                via,
                variants,
            } => {
                let weights: Vec<u32> = variants.iter().map(|v| v.weight).collect();
                let chosen = zaloflow_core::variant::pick(&rule.id, &user_id, &weights)
                    .and_then(|i| variants.get(i));
                let text = chosen.map_or(text, |v| &v.text).render(c);
                variant.set(chosen.map(|v| v.id.clone()));
                let buttons: Vec<_> = buttons
                    .iter()
                    .map(|b| {
                        let title = b.title.render(c);
                        match &b.action {
                            ButtonAction::Url(u) => json!({"title": title, "type": "oa.open.url", "payload": {"url": u.render(c)}}),
                            ButtonAction::Phone(p) => json!({"title": title, "type": "oa.open.phone", "payload": {"phone_code": p.render(c)}}),
                            ButtonAction::Query(q) => json!({"title": title, "type": "oa.query.show", "payload": q.render(c)}),
                        }
                    })
                    .collect();
                let image = image.as_ref().map(|i| i.render(c));
                // A promotion is a template (Zalo refuses a bare text): banner, header, text,
                // buttons. Other messages carry an attachment only for an image or buttons.
                let (text, attachment) = if *via == crate::channels::ZaloKind::Promotion {
                    let t =
                        zaloflow_core::job::promotion_template(&text, image.as_deref(), buttons);
                    (None, Some(t))
                } else {
                    let attachment = (image.is_some() || !buttons.is_empty()).then(|| {
                        let elements: Vec<_> = image
                            .iter()
                            .map(|url| json!({"media_type": "image", "url": url}))
                            .collect();
                        json!({"type": "template", "payload": {"template_type": "media", "elements": elements, "buttons": buttons}})
                    });
                    (Some(text), attachment)
                };
                push(
                    t,
                    ActionPlan::Outbound {
                        payload: Payload::Zalo {
                            user_id: user_id.clone(),
                            kind: *via,
                            text,
                            attachment,
                        },
                    },
                );
            }
            Action::Sms { text, to } => {
                let to = recipient(to.as_ref(), c.phone.as_deref(), c);
                match to {
                    Some(to) => push(
                        t,
                        ActionPlan::Outbound {
                            payload: Payload::Sms {
                                to,
                                text: text.render(c),
                            },
                        },
                    ),
                    None => push(t, skipped("sms", "the contact has no phone number")),
                }
            }
            Action::Email {
                subject,
                html,
                text,
                to,
                links,
            } => match recipient(to.as_ref(), c.email.as_deref(), c) {
                Some(to) => {
                    let text_body = text.as_ref().map(|t| t.render(c));
                    let html_body = html.as_ref().map(|h| h.render(c));
                    let html = html_body
                        .clone()
                        .unwrap_or_else(|| text_to_html(text_body.as_deref().unwrap_or("")));
                    let text = text_body.unwrap_or_else(|| html_to_text(&html));
                    push(
                        t,
                        ActionPlan::Outbound {
                            payload: Payload::Email {
                                to,
                                // A header: one line, whatever a value holds.
                                subject: subject.render(c).replace(['\r', '\n'], " "),
                                html,
                                text,
                                track: Some(crate::channels::EmailTrack {
                                    contact_id: user_id.clone(),
                                    links: links
                                        .iter()
                                        .map(|(name, url)| (url.clone(), name.clone()))
                                        .collect(),
                                }),
                            },
                        },
                    )
                }
                None => push(t, skipped("email", "the contact has no email address")),
            },
            Action::Zns {
                template_id,
                data,
                phone,
                by_user,
                tag,
            } => {
                let template_data: serde_json::Map<String, serde_json::Value> = data
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(v.render(c))))
                    .collect();
                let payload = |phone: String, user_id: Option<String>| Payload::Zns {
                    phone,
                    template_id: template_id.clone(),
                    template_data: serde_json::Value::Object(template_data.clone()),
                    tracking_id: format!("{}:{}:{}", rule.id, c.user_id, t),
                    user_id,
                    tag: (*tag != 1).then_some(*tag),
                };
                if *by_user {
                    push(
                        t,
                        ActionPlan::Outbound {
                            payload: payload(String::new(), Some(user_id.clone())),
                        },
                    )
                } else {
                    match recipient(phone.as_ref(), c.phone.as_deref(), c) {
                        Some(phone) => push(
                            t,
                            ActionPlan::Outbound {
                                payload: payload(phone, None),
                            },
                        ),
                        None => push(t, skipped("zns", "the contact has no phone number")),
                    }
                }
            }
            Action::Notify { channel, text } => push(
                t,
                ActionPlan::Outbound {
                    payload: Payload::Chat {
                        channel: channel.clone(),
                        text: text.render(c),
                        data: json!({
                            "rule_id": rule.id,
                            "user_id": user_id,
                            "display_name": c.display_name,
                        }),
                    },
                },
            ),
            Action::Task {
                title,
                description,
                due_in,
            } => push(
                t,
                ActionPlan::Outbound {
                    payload: Payload::Task {
                        title: title.render(c),
                        description: description
                            .as_ref()
                            .map(|d| d.render(c))
                            .unwrap_or_default(),
                        contact: Some(user_id.clone()),
                        due_at: due_in.map(|d| crate::clock::to_utc(t + d).to_rfc3339()),
                    },
                },
            ),
            Action::Tag(tags) | Action::Untag(tags) => {
                let add = matches!(a, Action::Tag(_));
                for tag in tags {
                    push(
                        t,
                        ActionPlan::Tag {
                            tag: tag.clone(),
                            add,
                        },
                    );
                }
            }
            Action::SetField { name, value } => push(
                t,
                ActionPlan::SetField {
                    name: name.clone(),
                    value: value.render(c),
                },
            ),
            Action::List { op, list, from } => push(
                t,
                ActionPlan::List {
                    op: match op {
                        ListOp::Add => "add",
                        ListOp::Remove => "remove",
                        ListOp::Copy => "copy",
                        ListOp::Move => "move",
                    },
                    list: list.clone(),
                    from: from.clone(),
                },
            ),
            Action::Handoff {
                team,
                advisor,
                deadline,
                priority,
                note,
            } => push(
                t,
                ActionPlan::Handoff {
                    team: team.clone(),
                    advisor: advisor.clone(),
                    deadline_at: t + deadline,
                    priority: *priority,
                    note: note.as_ref().map(|n| n.render(c)),
                },
            ),
        }
    }
    out
}

/// The actions of `rule` for this input, planned as if it fired (a campaign step's actions).
pub fn plan_actions(rule: &Rule, input: &EvalInput) -> Vec<PlannedAction> {
    plan(rule, input)
}

/// Whether every one of `conditions` holds for this input (a campaign's goal, a step's `if:`).
pub fn conditions_hold(conditions: &[Condition], input: &EvalInput) -> bool {
    let mut judge = Judge {
        input,
        local: None,
        text: None,
    };
    conditions.iter().all(|c| judge.holds(c))
}

/// Whether the contact-independent conditions of `conditions` (times of day, weekdays, at the
/// top level or under `all:`) allow `at`: a scan that would find nobody is not started.
pub fn time_allows(conditions: &[Condition], at: i64, tz: chrono_tz::Tz) -> bool {
    fn check(c: &Condition, l: &Local) -> bool {
        match c {
            Condition::TimeBetween { from, to } => in_window(l.minute, *from, *to),
            Condition::Weekdays(mask) => mask & (1 << l.weekday) != 0,
            Condition::All(v) => v.iter().all(|c| check(c, l)),
            _ => true,
        }
    }
    let l = local(at, tz);
    conditions.iter().all(|c| check(c, &l))
}

/// Day and month of a date field value (`DD/MM/YYYY`, `DD/MM`, `YYYY-MM-DD`).
pub fn date_of_field(value: &str) -> Option<(u32, u32)> {
    day_month(value)
}

fn skipped(action: &'static str, reason: &str) -> ActionPlan {
    ActionPlan::Skipped {
        action,
        reason: reason.to_string(),
    }
}

fn recipient(
    to: Option<&super::template::Template>,
    default: Option<&str>,
    c: &Contact,
) -> Option<String> {
    match to {
        Some(t) => Some(t.render(c)),
        None => default.map(str::to_string),
    }
    .filter(|s| !s.trim().is_empty())
}

fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<p>{}</p>", escaped.trim_end().replace('\n', "<br>\n"))
}

fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    // The text part is plain text: entities (escaped values among them) read as characters.
    super::template::html_unescape(out.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_subjects_stay_one_line_and_html_values_are_text() {
        let yaml = "rules:\n  - id: r\n    when: follow\n    do:\n      - email: {subject: \"Chào {{field.x}}\", html: \"<p>{{field.x}}</p>\"}\n";
        let set = super::super::load_sources(
            &[("t.yaml".into(), yaml.to_string())],
            &super::super::LoadOptions::default(),
        )
        .unwrap();
        let mut c = Contact {
            user_id: "1".into(),
            email: Some("a@b.vn".into()),
            ..Contact::default()
        };
        c.fields
            .insert("x".into(), "<b>Lan</b>\r\nBcc: x@evil.example".into());
        let history = MemoryHistory::default();
        let input = EvalInput::new(
            Stimulus::TagChanged {
                tag: "t",
                added: true,
            },
            &c,
            0,
            chrono_tz::Asia::Ho_Chi_Minh,
            &history,
        );
        let planned = plan_actions(&set.rules()[0], &input);
        let ActionPlan::Outbound {
            payload:
                Payload::Email {
                    subject,
                    html,
                    text,
                    ..
                },
        } = &planned[0].action
        else {
            panic!("{planned:?}");
        };
        assert_eq!(subject, "Chào <b>Lan</b>  Bcc: x@evil.example");
        assert_eq!(html, "<p>&lt;b&gt;Lan&lt;/b&gt;\r\nBcc: x@evil.example</p>");
        assert_eq!(text, "<b>Lan</b>\r\nBcc: x@evil.example");
    }

    #[test]
    fn windows_cross_midnight() {
        assert!(in_window(300, 300, 659));
        assert!(in_window(659, 300, 659));
        assert!(!in_window(660, 300, 659));
        assert!(in_window(1400, 1320, 359));
        assert!(in_window(10, 1320, 359));
        assert!(!in_window(600, 1320, 359));
    }

    #[test]
    fn special_days() {
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert!(is_special_day("30/10/1999", d(2024, 10, 30), 0));
        assert!(is_special_day("1999-10-30", d(2024, 10, 27), 3));
        assert!(!is_special_day("30/10/1999", d(2024, 10, 29), 0));
        assert!(is_special_day("29/02/2000", d(2023, 2, 28), 0));
        assert!(!is_special_day("29/02/2000", d(2024, 2, 28), 0));
        assert!(!is_special_day("garbage", d(2024, 2, 28), 0));
    }

    #[test]
    fn wait_until_is_the_next_local_clock_time() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let at = tz
            .with_ymd_and_hms(2024, 5, 1, 8, 0, 0)
            .unwrap()
            .timestamp_millis();
        let nine = tz
            .with_ymd_and_hms(2024, 5, 1, 9, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(next_clock(at, 540, tz), nine);
        let later = tz
            .with_ymd_and_hms(2024, 5, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        let tomorrow = tz
            .with_ymd_and_hms(2024, 5, 2, 9, 0, 0)
            .unwrap()
            .timestamp_millis();
        assert_eq!(next_clock(later, 540, tz), tomorrow);
        assert_eq!(next_clock(nine, 540, tz), tomorrow);
    }
}

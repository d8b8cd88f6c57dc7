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
        reason: SkipReason,
    },
}

/// Why a planned action cannot run for this contact. `Display` is English (the skipped job's
/// `last_error`, the log); [`SkipReason::words`] is in the staff's language (`simulate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// An SMS or ZNS send to a contact with no phone number.
    NoPhone,
    /// An email to a contact with no email address.
    NoEmail,
}

impl SkipReason {
    /// The reason in `lang`.
    pub fn words(self, lang: crate::i18n::Lang) -> String {
        let key = match self {
            SkipReason::NoPhone => "simulate.no_phone",
            SkipReason::NoEmail => "simulate.no_email",
        };
        crate::i18n::tr(lang, key).into_owned()
    }
}

/// Serialised as its English words, as the reason was before it had a type.
impl serde::Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.words(crate::i18n::Lang::En))
    }
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

mod eval;
mod index;
mod judge;
mod plan;

use eval::*;
pub(super) use index::Index;
use index::*;
use judge::*;
use plan::*;

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

//! The rule language as typed values. Everything here has been checked by the loader: a
//! [`Rule`] cannot hold a bad time, duration, cron, regex or template.

use std::path::PathBuf;
use std::sync::Arc;

use crate::channels::ZaloKind;

use super::template::Template;
use super::yaml::Pos;

/// Milliseconds.
pub type Ms = i64;

pub const MINUTE: Ms = 60_000;
pub const HOUR: Ms = 60 * MINUTE;
pub const DAY: Ms = 24 * HOUR;

/// Where something was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: Arc<PathBuf>,
    pub pos: Pos,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.file.display(),
            self.pos.line,
            self.pos.col
        )
    }
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// Higher first; ties keep the order of files (by name) and of rules in a file.
    pub priority: i64,
    pub origin: Origin,
    /// Any of these starts the rule.
    pub triggers: Vec<Trigger>,
    /// All of these must hold.
    pub conditions: Vec<Condition>,
    pub actions: Vec<Action>,
    pub once_per: Option<OncePer>,
    pub cooldown: Option<Ms>,
    /// Where each of `actions` was written, in the same order (empty for rules built in code).
    pub sites: Vec<ActionSite>,
}

/// Where an action and the Zalo texts it sends were written, for `rules check` warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionSite {
    /// The action's word (`send`, `sms`, …).
    pub pos: Pos,
    /// Where each text of [`Action::zalo_texts`] was written, in the same order.
    pub texts: Vec<Pos>,
}

impl Rule {
    /// Where action `i` was written: its own position, or the rule's when unknown.
    pub fn action_pos(&self, i: usize) -> Pos {
        self.sites.get(i).map(|s| s.pos).unwrap_or(self.origin.pos)
    }

    /// Whether a `stop` action ends this rule's actions.
    pub fn stops(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::Stop))
    }
}

/// What a user message must look like. Empty filter: any message.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Folded with their diacritics ([`crate::rules::text::fold`]); the message must hold one
    /// of them as whole words.
    pub contains: Vec<String>,
    /// Folded with their diacritics; the message must hold one of them anywhere.
    pub contains_text: Vec<String>,
    /// Folded with their diacritics; the whole message must be one of them.
    pub equals: Vec<String>,
    /// Whether `contains`, `contains_text` and `equals` may match without diacritics.
    pub accents: crate::rules::text::Accents,
    pub regex: Option<regex::Regex>,
    /// `image`, `sticker`, `file`, `link`, `gif`, `audio`, `video`, `location`, or `any`.
    pub attachment: Option<String>,
}

impl MessageFilter {
    pub fn is_any(&self) -> bool {
        self.contains.is_empty()
            && self.contains_text.is_empty()
            && self.equals.is_empty()
            && self.regex.is_none()
            && self.attachment.is_none()
    }
}

#[derive(Debug, Clone)]
pub enum Trigger {
    /// The user wrote to the OA (`user_send_*`). The OA's own sends never count.
    Message(MessageFilter),
    Follow,
    Unfollow,
    /// The "Nhắn tin" button.
    ChatNow,
    TagAdded(String),
    TagRemoved(String),
    /// The user shared their info (`user_submit_info`).
    InfoSubmitted,
    /// A person replied from the OA console (`oa_send_*` with an `admin_id`).
    OaReply,
    // --- evaluated by the scheduler ---
    /// A 5-field cron pattern in the OA time zone.
    Schedule(Box<Cron>),
    /// The contact has been silent between these many days (inclusive).
    Inactive {
        min_days: u32,
        max_days: Option<u32>,
    },
    /// A date — a contact's date field (e.g. `dob`) or a date of the shop's own — falls
    /// `days_before` days from today (OA time zone).
    SpecialDay {
        on: SpecialDate,
        days_before: u32,
    },
    FieldChanged {
        field: String,
        to: Option<String>,
    },
    FormSubmitted(String),
    /// An email sent by `email` (a rule id or campaign step) was opened; `None`: any. A click
    /// is an open; `machine_opens`: a machine's fetch (Apple Mail Privacy Protection, a
    /// security scanner: see `crate::tracking::AGENTS`) counts too.
    EmailOpened {
        email: Option<String>,
        machine_opens: bool,
    },
    /// Nobody opened (or clicked) the email within the hours; `machine_opens`: a machine's
    /// fetch counts as an open too (then fewer follow-ups go out).
    EmailNotOpened {
        within_hours: u32,
        email: Option<String>,
        machine_opens: bool,
    },
    EmailClicked {
        link: Option<String>,
        email: Option<String>,
    },
    AfterStep {
        campaign: String,
        step: String,
    },
}

/// A trigger as staff write it in a rule file, on one line: `tag_added: vip_customer`,
/// `message: {contains: [giá bao nhiêu], accents: optional}`, `inactive: 7–14 days`.
impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name();
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        let of = |email: &Option<String>| match email {
            Some(e) => format!(" (email {e})"),
            None => String::new(),
        };
        match self {
            Trigger::Message(m) => {
                let mut parts = Vec::new();
                for (key, v) in [
                    ("contains", &m.contains),
                    ("contains_text", &m.contains_text),
                    ("equals", &m.equals),
                ] {
                    if !v.is_empty() {
                        parts.push(format!("{key}: {}", list(v)));
                    }
                }
                if let Some(r) = &m.regex {
                    parts.push(format!("regex: {}", r.as_str()));
                }
                if let Some(a) = &m.attachment {
                    parts.push(format!("attachment: {a}"));
                }
                if !parts.is_empty() && m.accents == crate::rules::text::Accents::Optional {
                    parts.push("accents: optional".into());
                }
                if parts.is_empty() {
                    write!(f, "{name}")
                } else {
                    write!(f, "{name}: {{{}}}", parts.join(", "))
                }
            }
            Trigger::TagAdded(tag) | Trigger::TagRemoved(tag) => write!(f, "{name}: {tag}"),
            Trigger::FormSubmitted(form) => write!(f, "{name}: {form}"),
            Trigger::Schedule(c) => write!(f, "{name}: \"{}\"", c.pattern),
            Trigger::Inactive { min_days, max_days } => match max_days {
                Some(max) => write!(f, "{name}: {min_days}–{max} days"),
                None => write!(f, "{name}: {min_days}+ days"),
            },
            Trigger::SpecialDay { on, days_before } => {
                let on = match on {
                    SpecialDate::Field(field) => format!("field {field}"),
                    SpecialDate::Date { day, month } => format!("{day:02}/{month:02}"),
                };
                match days_before {
                    0 => write!(f, "{name}: {on}"),
                    n => write!(f, "{name}: {on}, {n} days before"),
                }
            }
            Trigger::FieldChanged { field, to } => match to {
                Some(v) => write!(f, "{name}: {field} → {v}"),
                None => write!(f, "{name}: {field}"),
            },
            Trigger::EmailOpened { email, .. } => write!(f, "{name}{}", of(email)),
            Trigger::EmailNotOpened {
                within_hours,
                email,
                ..
            } => write!(f, "{name}: within {within_hours} h{}", of(email)),
            Trigger::EmailClicked { link, email, .. } => match link {
                Some(l) => write!(f, "{name}: {l}{}", of(email)),
                None => write!(f, "{name}{}", of(email)),
            },
            Trigger::AfterStep { campaign, step } => write!(f, "{name}: {campaign}/{step}"),
            _ => write!(f, "{name}"),
        }
    }
}

impl Trigger {
    /// The word used in rule files.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Message(_) => "message",
            Trigger::Follow => "follow",
            Trigger::Unfollow => "unfollow",
            Trigger::ChatNow => "chat_now",
            Trigger::TagAdded(_) => "tag_added",
            Trigger::TagRemoved(_) => "tag_removed",
            Trigger::InfoSubmitted => "info_submitted",
            Trigger::OaReply => "oa_reply",
            Trigger::Schedule(_) => "schedule",
            Trigger::Inactive { .. } => "inactive",
            Trigger::SpecialDay { .. } => "special_day",
            Trigger::FieldChanged { .. } => "field_changed",
            Trigger::FormSubmitted(_) => "form_submitted",
            Trigger::EmailOpened { .. } => "email_opened",
            Trigger::EmailNotOpened { .. } => "email_not_opened",
            Trigger::EmailClicked { .. } => "email_clicked",
            Trigger::AfterStep { .. } => "after_step",
        }
    }
}

/// What a `special_day` trigger looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecialDate {
    /// A contact field holding a date (`DD/MM/YYYY` as Zalo's `dob`, `YYYY-MM-DD`, `DD/MM`).
    Field(String),
    /// A date of the shop's own (per account), every year: (day, month).
    Date { day: u32, month: u32 },
}

impl SpecialDate {
    /// The contact field, for a field date.
    pub fn field(&self) -> Option<&str> {
        match self {
            SpecialDate::Field(f) => Some(f),
            SpecialDate::Date { .. } => None,
        }
    }
}

/// A checked cron pattern (5 fields: minute hour day-of-month month day-of-week).
#[derive(Debug, Clone)]
pub struct Cron {
    pub pattern: String,
    pub cron: croner::Cron,
}

impl Cron {
    /// The first instant strictly after `after_ms` that matches, in `tz`.
    pub fn next_after(&self, after_ms: Ms, tz: chrono_tz::Tz) -> Option<Ms> {
        let t = chrono::DateTime::from_timestamp_millis(after_ms)?.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&t, false)
            .ok()
            .map(|d| d.timestamp_millis())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OncePer {
    /// One local day of the OA time zone.
    Day,
    /// The rule's `time_between` window on that day.
    Period,
    /// One silence spell: a new interaction starts a new one.
    Silence,
    Ever,
}

#[derive(Debug, Clone)]
pub enum FieldTest {
    Equals(String),
    Contains(String),
    IsSet(bool),
}

#[derive(Debug, Clone)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// Local time of day, minutes from midnight, both ends inclusive (to the end of the
    /// `to` minute). `from > to` crosses midnight.
    TimeBetween {
        from: u16,
        to: u16,
    },
    /// Bit 0 = Monday … bit 6 = Sunday.
    Weekdays(u8),
    /// Whole days since the contact's last interaction before this event.
    SilentFor {
        min_days: Option<u32>,
        max_days: Option<u32>,
    },
    LastInteractionWithin(Ms),
    /// Has every one of these tags.
    HasTag(Vec<String>),
    /// Has none of these tags.
    LacksTag(Vec<String>),
    Follows(bool),
    InList(String),
    Field {
        name: String,
        test: FieldTest,
    },
}

#[derive(Debug, Clone)]
pub enum ButtonAction {
    Url(Template),
    Phone(Template),
    /// Sends this text back to the OA as if the user typed it.
    Query(Template),
}

#[derive(Debug, Clone)]
pub struct Button {
    pub title: Template,
    pub action: ButtonAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOp {
    Add,
    Remove,
    /// Add to the list; keep the contact in `from`.
    Copy,
    /// Add to the list and remove from `from`.
    Move,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Normal,
    High,
    Urgent,
}

#[derive(Debug, Clone)]
pub enum Wait {
    For(Ms),
    /// Until the next time this local clock time comes (minutes from midnight).
    Until(u16),
}

/// One wording of an A/B-tested `send` (issue 10): a contact always gets the same variant of a
/// rule, and contacts spread over the variants in proportion to their weights.
#[derive(Debug, Clone)]
pub struct Variant {
    /// Recorded with each send, shown in reports (`a`, `b`… unless named).
    pub id: String,
    pub weight: u32,
    pub text: Template,
}

#[derive(Debug, Clone)]
pub enum Action {
    Send {
        /// The text; with `variants`, the first variant's.
        text: Template,
        image: Option<Template>,
        buttons: Vec<Button>,
        via: ZaloKind,
        /// A/B variants of the text (empty: no test).
        variants: Vec<Variant>,
    },
    Sms {
        text: Template,
        to: Option<Template>,
    },
    Email {
        subject: Template,
        html: Option<Template>,
        text: Option<Template>,
        to: Option<Template>,
        /// Named links (name, URL): a click on one is known to rules by its name.
        links: Vec<(String, String)>,
    },
    /// A template message (`zns:` by phone, `template:` by user id or phone).
    Zns {
        template_id: String,
        data: Vec<(String, Template)>,
        phone: Option<Template>,
        /// Sent by the contact's Zalo user id (`template:`'s default) rather than by phone.
        by_user: bool,
        /// Zalo's template tag: 1 transaction, 2 customer care, 3 promotion.
        tag: u8,
    },
    /// `try:` — the first of these sends Zalo will accept for this contact now; the rest are
    /// tried in order if Zalo refuses it when it is sent (`-230`, `-232`, `-249`, `-213`).
    FirstOf(Vec<Action>),
    Notify {
        channel: Option<String>,
        text: Template,
    },
    Task {
        title: Template,
        description: Option<Template>,
        due_in: Option<Ms>,
    },
    Tag(Vec<String>),
    Untag(Vec<String>),
    SetField {
        name: String,
        value: Template,
    },
    List {
        op: ListOp,
        list: String,
        from: Option<String>,
    },
    Handoff {
        team: Option<String>,
        advisor: Option<String>,
        deadline: Ms,
        priority: Priority,
        note: Option<Template>,
    },
    Wait(Wait),
    Stop,
}

impl Action {
    /// Every text this action sends to the customer as a Zalo OA message — the `send` text,
    /// and each variant's text where an action has several — for checks such as Zalo's
    /// length limit. The loader records where each was written in [`ActionSite::texts`], in
    /// this order.
    pub fn zalo_texts(&self) -> Vec<&Template> {
        match self {
            Action::Send { variants, .. } if !variants.is_empty() => {
                variants.iter().map(|v| &v.text).collect()
            }
            Action::Send { text, .. } => vec![text],
            Action::FirstOf(alts) => alts.iter().flat_map(|a| a.zalo_texts()).collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the action sends the customer something (an OA message, SMS, email or ZNS).
    pub fn messages_customer(&self) -> bool {
        matches!(
            self,
            Action::Send { .. }
                | Action::Sms { .. }
                | Action::Email { .. }
                | Action::Zns { .. }
                | Action::FirstOf(_)
        )
    }

    /// The word used in rule files.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Send { .. } => "send",
            Action::Sms { .. } => "sms",
            Action::Email { .. } => "email",
            Action::Zns { by_user: false, .. } => "zns",
            Action::Zns { .. } => "template",
            Action::FirstOf(_) => "try",
            Action::Notify { .. } => "notify",
            Action::Task { .. } => "task",
            Action::Tag(_) => "tag",
            Action::Untag(_) => "untag",
            Action::SetField { .. } => "set_field",
            Action::List { .. } => "list",
            Action::Handoff { .. } => "handoff",
            Action::Wait(_) => "wait",
            Action::Stop => "stop",
        }
    }
}

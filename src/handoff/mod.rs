//! Handoffs to people (VIP care, seed 002 strategy 3): a rule's `handoff` action opens one for
//! the contact — priority, team or dedicated advisor, a response deadline and the message
//! that caused it — and tells the agents on their team chat with links to claim and resolve it.
//! Later messages of the contact attach to the open handoff. The deadline is met by a person's
//! reply in the OA console (an `oa_send_*` echo carrying `sender.admin_id`, and not one of the
//! service's own sends) or by a claim/resolve through the admin API or the agents' board;
//! [`escalate_due`] tells the supervisors once per breach when it is missed.
//!
//! Deciding is plain code here (what to open, what to say, which echoes count); the store
//! applies a [`HandoffChange`] in the same transaction as the event that caused it.

use std::collections::BTreeSet;

use rust_i18n::t;

use serde_json::json;

use crate::i18n::{tr, Lang};
use crate::rules::model::Priority;
use crate::store::Contact;

pub mod escalate;
pub mod hours;
pub mod timing;
pub mod vip;

pub use escalate::{escalate_due, run_escalations, EscalationSummary};
pub use hours::WorkingHours;
pub use vip::VipSet;
pub use zaloflow_core::handoff::*;
pub use zaloflow_store::handoff::{
    record_first_response, Breach, Handoff, HandoffMessageRow, HandoffOutcomes, HandoffUpdate,
};

/// The rank stored for a rule's `priority:` (higher is more urgent).
pub fn priority_rank(p: Priority) -> i32 {
    match p {
        Priority::Normal => 0,
        Priority::High => 1,
        Priority::Urgent => 2,
    }
}

pub fn priority_name(rank: i32) -> &'static str {
    match rank {
        i32::MIN..=0 => "normal",
        1 => "high",
        _ => "urgent",
    }
}

/// Escalation and working-hours settings (`ZALOFLOW_WORKING_HOURS`,
/// `ZALOFLOW_ESCALATION_CHANNEL`, `ZALOFLOW_ESCALATION_SECOND_AFTER`,
/// `ZALOFLOW_ESCALATION_SECOND_CHANNEL`, `ZALOFLOW_ESCALATION_INTERVAL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandoffConfig {
    /// None: the deadline clock always runs.
    pub working_hours: Option<WorkingHours>,
    /// The supervisors' chat channel (default `supervisors`).
    pub escalation_channel: String,
    /// A second escalation this much working time after the deadline (None: one level).
    pub second_after_ms: Option<i64>,
    /// Where the second level goes (default: the escalation channel).
    pub second_channel: Option<String>,
    /// A cadence of its own for the escalation look (`ZALOFLOW_ESCALATION_INTERVAL`), finer
    /// than the scheduler's tick, which escalates on every pass; None (default, or `0`): only
    /// the tick.
    pub interval: Option<std::time::Duration>,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        HandoffConfig {
            working_hours: None,
            escalation_channel: "supervisors".into(),
            second_after_ms: None,
            second_channel: None,
            interval: None,
        }
    }
}

impl HandoffConfig {
    /// Reads the settings through `get` (trimmed, empty = unset).
    pub fn from_values<'a>(get: impl Fn(&str) -> Option<&'a str>) -> anyhow::Result<Self> {
        let working_hours = match get("ZALOFLOW_WORKING_HOURS") {
            Some(s) => Some(
                WorkingHours::parse(s)
                    .map_err(|e| anyhow::anyhow!("ZALOFLOW_WORKING_HOURS={s:?}: {e}"))?,
            ),
            None => None,
        };
        let second_after_ms = match get("ZALOFLOW_ESCALATION_SECOND_AFTER") {
            Some(s) => Some(
                crate::outbox::retry::parse_duration(s)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "ZALOFLOW_ESCALATION_SECOND_AFTER={s:?} is not a duration like 1h"
                        )
                    })?
                    .as_millis() as i64,
            ),
            None => None,
        };
        let interval = match get("ZALOFLOW_ESCALATION_INTERVAL") {
            None | Some("0") => None,
            Some(s) => Some(
                crate::outbox::retry::parse_duration(s)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "ZALOFLOW_ESCALATION_INTERVAL={s:?} is not a duration like 30s (0: off)"
                        )
                    })?,
            ),
        };
        Ok(HandoffConfig {
            interval,
            working_hours,
            escalation_channel: get("ZALOFLOW_ESCALATION_CHANNEL")
                .unwrap_or("supervisors")
                .to_string(),
            second_after_ms,
            second_channel: get("ZALOFLOW_ESCALATION_SECOND_CHANNEL").map(str::to_string),
        })
    }
}

/// What the engine needs to open handoffs: where the board is, the OA time zone, working
/// hours, and which chat channels exist (a dedicated advisor with a channel of their own is
/// told there first).
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffPolicy {
    pub tz: chrono_tz::Tz,
    /// The staff's language (`ZALOFLOW_LANG`): the fixed words of the notices.
    pub lang: Lang,
    pub board_url: String,
    pub working_hours: Option<WorkingHours>,
    pub chat_channels: BTreeSet<String>,
}

impl Default for HandoffPolicy {
    fn default() -> Self {
        HandoffPolicy {
            tz: chrono_tz::Asia::Ho_Chi_Minh,
            lang: Lang::default(),
            board_url: "http://localhost:8080/admin/board".into(),
            working_hours: None,
            chat_channels: BTreeSet::new(),
        }
    }
}

impl HandoffPolicy {
    /// The deadline `work_ms` of working time after `start`.
    pub fn deadline(&self, start: i64, work_ms: i64) -> i64 {
        match &self.working_hours {
            Some(w) => w.add(start, work_ms, self.tz),
            None => start + work_ms,
        }
    }

    /// The chat channel to post to: the named one when it is configured, else the default
    /// chat webhook (a missing channel would only make dead letters).
    pub fn chat_target(&self, name: Option<&str>) -> Option<String> {
        name.filter(|n| self.chat_channels.contains(*n))
            .map(str::to_string)
    }
}

/// The handoff action of a rule, for one contact.
#[derive(Debug, Clone)]
pub struct HandoffRequest<'a> {
    pub user_id: &'a str,
    pub contact: &'a Contact,
    pub rule_id: &'a str,
    pub team: Option<&'a str>,
    pub advisor: Option<&'a str>,
    /// When the action runs (the event's time, or later after a `wait`).
    pub opened_at: i64,
    /// The rule's `deadline:` (working time when working hours are set).
    pub response_ms: i64,
    pub priority: Priority,
    pub note: Option<&'a str>,
    pub message: Option<HandoffMessage>,
    pub source: &'a str,
    /// The outbox priority of the contact's jobs (VIPs first).
    pub job_priority: i32,
}

/// The contact field naming a dedicated advisor (wins over the rule's `advisor:`).
pub const ADVISOR_FIELD: &str = "advisor";

/// Decides the handoff a rule's `handoff` action opens, and the notifications that go out if
/// it is new: the dedicated advisor first (on their own chat channel, when one is configured
/// under their name), then the team.
pub fn plan(policy: &HandoffPolicy, r: HandoffRequest<'_>) -> NewHandoff {
    let deadline_at = policy.deadline(r.opened_at, r.response_ms);
    let advisor = r
        .contact
        .fields
        .get(ADVISOR_FIELD)
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .or(r.advisor)
        .map(str::to_string);
    let vip = r.contact.tags.contains(VIP_TAG);
    let rank = priority_rank(r.priority);
    let text = notice_text(policy, &r, vip, rank, deadline_at, advisor.as_deref());
    let data = json!({
        "contact": r.user_id,
        "display_name": r.contact.display_name,
        "rule": r.rule_id,
        "priority": priority_name(rank),
        "deadline_at": deadline_at,
        "advisor": advisor,
        "vip": vip,
        "message": r.message.as_ref().and_then(|m| m.text.clone()),
    });
    let notice = |channel: Option<String>, priority: i32| Notice {
        channel,
        text: text.clone(),
        data: data.clone(),
        priority,
        run_at: r.opened_at,
        rule_id: Some(r.rule_id.to_string()),
        source: r.source.to_string(),
        board_url: policy.board_url.clone(),
        link_labels: link_labels(policy.lang),
    };
    let mut notices = Vec::new();
    let advisor_channel = advisor.as_deref().and_then(|a| policy.chat_target(Some(a)));
    if let Some(ch) = &advisor_channel {
        // Notified first: enqueued first, and ahead in the queue.
        notices.push(notice(Some(ch.clone()), r.job_priority + 1));
    }
    let team = policy.chat_target(r.team);
    if advisor_channel.is_none() || team != advisor_channel {
        notices.push(notice(team, r.job_priority));
    }
    NewHandoff {
        user_id: r.user_id.to_string(),
        contact_name: r.contact.display_name.clone(),
        priority: rank,
        team: r.team.map(str::to_string),
        advisor,
        rule_id: Some(r.rule_id.to_string()),
        note: r.note.map(str::to_string),
        opened_at: r.opened_at,
        deadline_at,
        message: r.message,
        notices,
        source: r.source.to_string(),
    }
}

/// The words before a notice's claim and resolve links.
pub fn link_labels(lang: Lang) -> [String; 2] {
    [
        tr(lang, "handoff.link.claim").into_owned(),
        tr(lang, "handoff.link.resolve").into_owned(),
    ]
}

/// Who the contact is, for people: name, phone, id.
pub fn who(lang: Lang, user_id: &str, name: Option<&str>, phone: Option<&str>) -> String {
    let mut s = match name.filter(|n| !n.trim().is_empty()) {
        Some(n) => format!("{} ({user_id})", crate::rules::template::escape_chat(n)),
        None => t!("handoff.customer", locale = lang.code(), id = user_id).into_owned(),
    };
    if let Some(p) = phone {
        s.push_str(", ");
        s.push_str(&t!("handoff.phone", locale = lang.code(), phone = p));
    }
    s
}

fn notice_text(
    policy: &HandoffPolicy,
    r: &HandoffRequest<'_>,
    vip: bool,
    rank: i32,
    deadline_at: i64,
    advisor: Option<&str>,
) -> String {
    let lang = policy.lang;
    let head = match (vip, rank) {
        (true, _) => tr(lang, "handoff.head.vip"),
        (false, 2) => tr(lang, "handoff.head.urgent"),
        _ => tr(lang, "handoff.head.normal"),
    };
    let mut s = format!(
        "{head}: {}",
        who(
            lang,
            r.user_id,
            r.contact.display_name.as_deref(),
            r.contact.phone.as_deref()
        )
    );
    if rank > 0 {
        let p = priority_word(lang, rank);
        s.push_str(&format!(
            " [{}]",
            t!("handoff.priority", locale = lang.code(), p = p)
        ));
    }
    if let Some(text) = r.message.as_ref().and_then(|m| m.text.as_deref()) {
        let text = crate::rules::template::escape_chat(&clip(text, 500));
        s.push('\n');
        s.push_str(&t!("handoff.message", locale = lang.code(), text = text));
    }
    s.push('\n');
    s.push_str(&t!(
        "handoff.deadline",
        locale = lang.code(),
        at = local_time(deadline_at, policy.tz),
        within = human_duration(lang, r.response_ms)
    ));
    if let Some(w) = &policy.working_hours {
        s.push_str(&t!(
            "handoff.working_hours",
            locale = lang.code(),
            hours = w.describe(lang)
        ));
    }
    if let Some(a) = advisor {
        s.push('\n');
        s.push_str(&t!("handoff.advisor", locale = lang.code(), name = a));
    }
    if let Some(n) = r.note.map(str::trim).filter(|n| !n.is_empty()) {
        s.push('\n');
        let note = crate::rules::template::escape_chat(n);
        s.push_str(&t!("handoff.note", locale = lang.code(), note = note));
    }
    s
}

/// A handoff's priority in words (`thường`, `cao`, `khẩn`).
pub fn priority_word(lang: Lang, rank: i32) -> std::borrow::Cow<'static, str> {
    let key = match rank {
        i32::MIN..=0 => "handoff.priority.normal",
        1 => "handoff.priority.high",
        _ => "handoff.priority.urgent",
    };
    tr(lang, key)
}

/// `10:30 17/11` in the OA time zone.
pub fn local_time(ms: i64, tz: chrono_tz::Tz) -> String {
    crate::clock::to_utc(ms)
        .with_timezone(&tz)
        .format("%H:%M %d/%m")
        .to_string()
}

/// `2 giờ`, `1 giờ 5 phút`, `45 phút`, `2 ngày 3 giờ` (rounded down to the minute); in
/// English `2 h`, `1 h 5 min`, `1 d 2 h`.
pub fn human_duration(lang: Lang, ms: i64) -> String {
    let mins = ms.max(0) / 60_000;
    let (d, h, m) = (mins / 1440, (mins / 60) % 24, mins % 60);
    let l = lang.code();
    let mut parts = Vec::new();
    if d > 0 {
        parts.push(t!("common.duration.days", locale = l, n = d));
    }
    if h > 0 {
        parts.push(t!("common.duration.hours", locale = l, n = h));
    }
    if m > 0 || parts.is_empty() {
        parts.push(t!("common.duration.minutes", locale = l, n = m));
    }
    parts.join(" ")
}

/// At most `max` characters, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// What a customer message says, for people: its text, or what it carries.
pub fn message_text(
    lang: Lang,
    text: Option<&str>,
    attachments: &[crate::zalo::event::Attachment],
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) {
        parts.push(t.to_string());
    }
    for a in attachments {
        let key = match a.kind.as_str() {
            "image" => "handoff.attachment.image",
            "sticker" => "handoff.attachment.sticker",
            "gif" => "handoff.attachment.gif",
            "file" => "handoff.attachment.file",
            "link" => "handoff.attachment.link",
            "audio" => "handoff.attachment.audio",
            "video" => "handoff.attachment.video",
            "location" => "handoff.attachment.location",
            _ => "handoff.attachment.other",
        };
        parts.push(tr(lang, key).into_owned());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(vip: bool) -> Contact {
        let mut c = Contact {
            user_id: "42".into(),
            display_name: Some("Lan Nguyễn".into()),
            phone: Some("84912345678".into()),
            ..Default::default()
        };
        if vip {
            c.tags.insert("vip_customer".into());
        }
        c
    }

    fn request<'a>(c: &'a Contact, advisor: Option<&'a str>) -> HandoffRequest<'a> {
        HandoffRequest {
            user_id: "42",
            contact: c,
            rule_id: "vip",
            team: Some("agents"),
            advisor,
            opened_at: 1_000_000,
            response_ms: 2 * 3_600_000,
            priority: Priority::High,
            note: Some("trả lời trong 2 giờ"),
            message: Some(HandoffMessage {
                msg_id: Some("m1".into()),
                text: Some("Đơn hàng của mình đâu rồi?".into()),
                at: 1_000_000,
            }),
            source: "inbox:7",
            job_priority: 10,
        }
    }

    fn policy(channels: &[&str]) -> HandoffPolicy {
        HandoffPolicy {
            board_url: "https://shop.vn/admin/board".into(),
            chat_channels: channels.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_team_is_told_who_what_and_until_when_with_links() {
        let c = contact(true);
        let h = plan(&policy(&["agents"]), request(&c, None));
        assert_eq!(h.deadline_at, 1_000_000 + 7_200_000);
        assert_eq!(h.priority, 1);
        assert_eq!(h.notices.len(), 1);
        let job = h.notices[0].job(12);
        assert_eq!(job.channel, "chat");
        assert_eq!(job.priority, 10);
        let p: serde_json::Value = serde_json::from_str(&job.payload).unwrap();
        let text = p["text"].as_str().unwrap();
        assert!(text.contains("Khách VIP"), "{text}");
        assert!(text.contains("Lan Nguyễn"), "{text}");
        assert!(text.contains("Đơn hàng của mình đâu rồi?"), "{text}");
        assert!(text.contains("trong 2 giờ"), "{text}");
        assert!(
            text.contains("https://shop.vn/admin/board/handoffs/12/claim"),
            "{text}"
        );
        assert!(text.contains("https://shop.vn/admin/board/handoffs/12/resolve"));
        assert_eq!(p["chat_channel"], "agents");
        assert_eq!(p["data"]["handoff"], 12);
    }

    #[test]
    fn a_dedicated_advisor_with_a_channel_is_told_first() {
        let mut c = contact(true);
        c.fields.insert(ADVISOR_FIELD.into(), "minh".into());
        // The contact's advisor wins over the rule's.
        let h = plan(&policy(&["agents", "minh"]), request(&c, Some("lan")));
        assert_eq!(h.advisor.as_deref(), Some("minh"));
        assert_eq!(h.notices.len(), 2);
        assert_eq!(h.notices[0].channel.as_deref(), Some("minh"));
        assert!(h.notices[0].priority > h.notices[1].priority);
        assert_eq!(h.notices[1].channel.as_deref(), Some("agents"));
        assert!(h.notices[1].text.contains("Tư vấn viên riêng: minh"));
        // An advisor without a channel is only named in the team's message.
        let h = plan(&policy(&["agents"]), request(&c, None));
        assert_eq!(h.notices.len(), 1);
        assert!(h.notices[0].text.contains("Tư vấn viên riêng: minh"));
    }

    #[test]
    fn an_unconfigured_team_goes_to_the_default_webhook() {
        let c = contact(false);
        let h = plan(&policy(&[]), request(&c, None));
        assert_eq!(h.notices[0].channel, None);
        assert!(h.notices[0].text.starts_with("🔔 Khách cần hỗ trợ"));
    }

    #[test]
    fn own_sends_are_recognised() {
        assert!(is_own_send(true, &[], Some("hi")));
        assert!(is_own_send(
            false,
            &[Some("Chào bạn!".into())],
            Some("Chào bạn! ")
        ));
        assert!(!is_own_send(
            false,
            &[Some("Chào bạn!".into())],
            Some("Dạ em đây")
        ));
        assert!(!is_own_send(false, &[], Some("Dạ em đây")));
    }

    #[test]
    fn settings() {
        let m = |pairs: &[(&'static str, &'static str)]| {
            let pairs = pairs.to_vec();
            HandoffConfig::from_values(move |k| {
                pairs.iter().find(|(x, _)| *x == k).map(|(_, v)| *v)
            })
        };
        let d = m(&[]).unwrap();
        assert_eq!(d, HandoffConfig::default());
        assert_eq!(d.escalation_channel, "supervisors");
        let c = m(&[
            ("ZALOFLOW_WORKING_HOURS", "08:00-21:00 mon-sat"),
            ("ZALOFLOW_ESCALATION_CHANNEL", "quan_ly"),
            ("ZALOFLOW_ESCALATION_SECOND_AFTER", "1h"),
            ("ZALOFLOW_ESCALATION_INTERVAL", "0"),
        ])
        .unwrap();
        assert_eq!(c.escalation_channel, "quan_ly");
        assert_eq!(c.second_after_ms, Some(3_600_000));
        assert_eq!(c.interval, None);
        assert!(c.working_hours.is_some());
        for bad in [
            ("ZALOFLOW_WORKING_HOURS", "9h-17h"),
            ("ZALOFLOW_ESCALATION_SECOND_AFTER", "soon"),
            ("ZALOFLOW_ESCALATION_INTERVAL", "often"),
        ] {
            let e = m(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad.0), "{e}");
        }
    }

    #[test]
    fn durations_and_clipping() {
        assert_eq!(human_duration(Lang::Vi, 7_200_000), "2 giờ");
        assert_eq!(human_duration(Lang::Vi, 3_900_000), "1 giờ 5 phút");
        assert_eq!(human_duration(Lang::Vi, 45 * 60_000), "45 phút");
        assert_eq!(human_duration(Lang::Vi, 0), "0 phút");
        assert_eq!(human_duration(Lang::Vi, 26 * 3_600_000), "1 ngày 2 giờ");
        assert_eq!(
            human_duration(Lang::En, 26 * 3_600_000 + 60_000),
            "1 d 2 h 1 min"
        );
        assert_eq!(clip("Xin chào", 3), "Xin…");
        assert_eq!(clip("Xin", 3), "Xin");
    }
}

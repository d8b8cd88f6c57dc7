//! Jobs and their payloads: what the outbox stores and the channels send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The channels' names, as stored in `outbox.channel`.
pub mod names {
    pub const ZALO: &str = "zalo";
    pub const SMS: &str = "sms";
    pub const EMAIL: &str = "email";
    pub const ZNS: &str = "zns";
    pub const CHAT: &str = "chat";
    pub const TASK: &str = "task";
}

/// An outbound job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewJob {
    /// `zalo`, `sms`, `email`, `zns`, `chat`, `task` (the payload's channel).
    pub channel: String,
    /// The customer this send goes to: sends to one user keep their order. '' for staff.
    pub user_id: String,
    /// `channels::Payload` as JSON.
    pub payload: String,
    pub priority: i32,
    pub run_at: i64,
    pub rule_id: Option<String>,
    /// What caused it (`inbox:42`, `tick:…`, `admin`).
    pub source: String,
    /// Enqueued at most once per key (idempotent scheduler decisions).
    pub dedupe_key: Option<String>,
    /// The A/B variant of the send action, when it has variants (reports compare them).
    pub variant: Option<String>,
    /// Recorded as skipped (status `skipped`, never claimed) instead of queued.
    pub skip: Option<JobSkip>,
}

/// Why a send was not attempted: kept on its outbox row (status `skipped`) where staff look —
/// the outbox, the contact's timeline, the tick's summary, `zaloflow_jobs_skipped_total`.
/// Channels not configured today; sends Zalo would refuse may use it too.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobSkip {
    /// A short code: `not_configured`, … (the metric's `reason` label).
    pub reason: String,
    /// What staff read: what could not go out and what to set.
    pub message: String,
}

/// Whether a template in this status (as Zalo announces it in `change_template_status`) can be
/// sent: enabled or approved; anything else (disabled, rejected, pending review, deleted)
/// pauses its sends.
pub fn template_usable(status: &str) -> bool {
    matches!(
        status.trim().to_ascii_uppercase().as_str(),
        "ENABLE" | "ENABLED" | "APPROVED" | "ACTIVE"
    )
}

/// Where a job's payload keeps its fallbacks ([`NewJob::with_fallbacks`]).
pub const FALLBACK_KEY: &str = "fallback";

/// The fallbacks a stored payload carries (none when it has none or they cannot be read).
pub fn fallbacks(payload_json: &str) -> Vec<Payload> {
    serde_json::from_str::<Value>(payload_json)
        .ok()
        .and_then(|v| v.get(FALLBACK_KEY).cloned())
        .and_then(|f| serde_json::from_value(f).ok())
        .unwrap_or_default()
}

/// The status of a job that was skipped (see [`JobSkip`]).
pub const SKIPPED: &str = "skipped";

impl NewJob {
    /// The job recorded as skipped for `reason` (counted in `zaloflow_jobs_skipped_total`).
    pub fn skipped(mut self, reason: &str, message: impl Into<String>) -> NewJob {
        metrics::counter!("zaloflow_jobs_skipped_total", "channel" => self.channel.clone(), "reason" => reason.to_string())
            .increment(1);
        self.skip = Some(JobSkip {
            reason: reason.to_string(),
            message: message.into(),
        });
        self
    }

    /// The job with the sends to try instead if Zalo refuses its own when it is sent (a
    /// `try:` action's later choices), kept in its payload's JSON as `"fallback"`.
    pub fn with_fallbacks(mut self, rest: &[Payload]) -> NewJob {
        if rest.is_empty() {
            return self;
        }
        if let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&self.payload) {
            map.insert(
                FALLBACK_KEY.into(),
                serde_json::to_value(rest).unwrap_or_default(),
            );
            self.payload = Value::Object(map).to_string();
        }
        self
    }

    /// `pending`, or `skipped`.
    pub fn status(&self) -> &'static str {
        if self.skip.is_some() {
            SKIPPED
        } else {
            "pending"
        }
    }
}

/// What one outbox job asks a channel to do. Serialised as JSON in the outbox table, tagged by
/// `"channel"`: `{"channel":"sms","to":"…","text":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum Payload {
    /// A customer-service message (text, or `attachment` for image/template/buttons) or a
    /// promotion / transaction message: `kind` picks the endpoint.
    Zalo {
        user_id: String,
        #[serde(default)]
        kind: ZaloKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<Value>,
    },
    /// Adds (`add: true`) or removes a follower's tag.
    ZaloTag {
        user_id: String,
        tag: String,
        add: bool,
    },
    Sms {
        to: String,
        text: String,
    },
    Email {
        to: String,
        subject: String,
        html: String,
        text: String,
        /// Open/click tracking, added when the job is sent (its id is the email's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<EmailTrack>,
    },
    /// A template message (ZNS, now ZBS): by phone, or by Zalo user id when `user_id` is set
    /// (then `phone` is empty).
    Zns {
        #[serde(default)]
        phone: String,
        template_id: String,
        template_data: Value,
        tracking_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
        /// Zalo's template tag: 1 transaction, 2 customer care, 3 promotion (None: 1, as ZNS
        /// sends were before tags).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<u8>,
    },
    /// A team-chat notification. `channel` names a configured chat channel (None: the default
    /// webhook); in JSON it is `"chat_channel"`, because `"channel"` is the payload's tag.
    Chat {
        #[serde(
            rename = "chat_channel",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        channel: Option<String>,
        text: String,
        #[serde(default)]
        data: Value,
    },
    Task {
        title: String,
        description: String,
        #[serde(default)]
        contact: Option<String>,
        #[serde(default)]
        due_at: Option<String>,
    },
}

/// What an email's tracking needs: the contact it goes to, and the names of its links (URL ->
/// name) for `email_clicked: {link: NAME}` rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmailTrack {
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

impl Payload {
    /// What this send is, in a few words staff read ("template 231 by Zalo user id",
    /// "SMS to 0912…").
    pub fn summary(&self) -> String {
        match self {
            Payload::Zalo { kind, .. } => match kind {
                ZaloKind::Cs => "a Zalo customer-service message".into(),
                ZaloKind::Promotion => "a Zalo promotion message".into(),
                ZaloKind::Transaction => "a Zalo transaction message".into(),
            },
            Payload::ZaloTag { tag, .. } => format!("the Zalo tag {tag}"),
            Payload::Sms { to, .. } => format!("an SMS to {to}"),
            Payload::Email { to, .. } => format!("an email to {to}"),
            Payload::Zns {
                template_id,
                user_id: Some(_),
                ..
            } => format!("template message {template_id} by Zalo user id"),
            Payload::Zns {
                template_id, phone, ..
            } => format!("template message {template_id} by phone {phone}"),
            Payload::Chat { .. } => "a team-chat notice".into(),
            Payload::Task { .. } => "a task".into(),
        }
    }

    /// The name of the channel that sends this payload (`zalo`, `sms`, `email`, `zns`, `chat`,
    /// `task`).
    pub fn channel_name(&self) -> &'static str {
        match self {
            Payload::Zalo { .. } | Payload::ZaloTag { .. } => names::ZALO,
            Payload::Sms { .. } => names::SMS,
            Payload::Email { .. } => names::EMAIL,
            Payload::Zns { .. } => names::ZNS,
            Payload::Chat { .. } => names::CHAT,
            Payload::Task { .. } => names::TASK,
        }
    }
}

/// Which OA message endpoint a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZaloKind {
    /// customer-service message (`/v3.0/oa/message/cs`), accepted up to 7 days after the user's
    /// last interaction
    #[default]
    Cs,
    /// `/v3.0/oa/message/promotion`
    Promotion,
    /// `/v3.0/oa/message/transaction`
    Transaction,
}

impl ZaloKind {
    pub fn path(self) -> &'static str {
        match self {
            ZaloKind::Cs => "/v3.0/oa/message/cs",
            ZaloKind::Promotion => "/v3.0/oa/message/promotion",
            ZaloKind::Transaction => "/v3.0/oa/message/transaction",
        }
    }
}

/// A job for `payload`, due at `run_at`. Customer-facing sends keep their order per user;
/// staff notifications (chat, task) have no lane.
pub fn job(payload: &Payload, run_at: i64, source: impl Into<String>) -> NewJob {
    let user_id = match payload {
        Payload::Zalo { user_id, .. } | Payload::ZaloTag { user_id, .. } => user_id.clone(),
        Payload::Sms { to, .. } => to.clone(),
        Payload::Email { to, .. } => to.clone(),
        Payload::Zns { user_id, phone, .. } => user_id.clone().unwrap_or_else(|| phone.clone()),
        Payload::Chat { .. } | Payload::Task { .. } => String::new(),
    };
    NewJob {
        channel: payload.channel_name().to_string(),
        user_id,
        payload: serde_json::to_string(payload).expect("payload serialises"),
        priority: 0,
        run_at,
        rule_id: None,
        source: source.into(),
        dedupe_key: None,
        variant: None,
        skip: None,
    }
}

/// When promotions may go out, local minutes `[from, until)`: 07:00–22:00 (PROTOCOL.md §5: tags 2
/// and 3; one SDK says 08:00, hence the setting `ZALOFLOW_PROMOTION_HOURS`).
pub const PROMOTION_HOURS: (u32, u32) = (7 * 60, 22 * 60);

/// Zalo's promotion message (PROTOCOL.md §5): an attachment template (`template_type:
/// promotion`), never a bare text, which Zalo refuses. The text's first line or sentence is the
/// header, the rest its text element; an image is the banner above them; buttons below.
pub fn promotion_template(text: &str, banner: Option<&str>, buttons: Vec<Value>) -> Value {
    let (header, body) = split_header(text);
    let mut elements = Vec::new();
    if let Some(url) = banner.filter(|u| !u.trim().is_empty()) {
        elements.push(serde_json::json!({"type": "banner", "image_url": url}));
    }
    elements.push(serde_json::json!({"type": "header", "content": header}));
    if !body.is_empty() {
        elements.push(serde_json::json!({"type": "text", "align": "left", "content": body}));
    }
    serde_json::json!({
        "type": "template",
        "payload": {
            "template_type": "promotion",
            "language": "VI",
            "elements": elements,
            "buttons": buttons,
        }
    })
}

/// Whether an attachment is a promotion template.
pub fn is_promotion_template(attachment: &Value) -> bool {
    attachment
        .pointer("/payload/template_type")
        .and_then(Value::as_str)
        == Some("promotion")
}

/// What a promotion template says: its header and text elements, joined by a space.
pub fn promotion_text(attachment: &Value) -> Option<String> {
    if !is_promotion_template(attachment) {
        return None;
    }
    let parts: Vec<&str> = attachment
        .pointer("/payload/elements")?
        .as_array()?
        .iter()
        .filter(|e| {
            matches!(
                e.get("type").and_then(Value::as_str),
                Some("header" | "text")
            )
        })
        .filter_map(|e| e.get("content").and_then(Value::as_str))
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The longest header a promotion shows in full (characters).
const HEADER_MAX: usize = 100;

/// A promotion's header and text: the first line, or else the first sentence, when it is short
/// enough for a header; else the text's first words as the header and the whole text below.
fn split_header(text: &str) -> (String, String) {
    let text = text.trim();
    let cut = text
        .find('\n')
        .or_else(|| {
            text.match_indices(['.', '!', '?'])
                .map(|(i, m)| i + m.len())
                .find(|&end| text[end..].starts_with(char::is_whitespace))
        })
        .filter(|&i| text[..i].chars().count() <= HEADER_MAX);
    match cut {
        Some(i) => (text[..i].trim().to_string(), text[i..].trim().to_string()),
        None if text.chars().count() <= HEADER_MAX => (text.to_string(), String::new()),
        None => {
            let words: String = text.chars().take(HEADER_MAX - 1).collect();
            let head = words.rsplit_once(' ').map_or(words.as_str(), |(h, _)| h);
            (format!("{}…", head.trim_end()), text.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_headers() {
        let (h, b) = split_header("Ưu đãi dành riêng cho bạn! Giảm 30% cho đơn hàng đầu tiên.");
        assert_eq!(h, "Ưu đãi dành riêng cho bạn!");
        assert_eq!(b, "Giảm 30% cho đơn hàng đầu tiên.");
        let (h, b) = split_header("Sale 11.11\nMọi mặt hàng giảm 11%");
        assert_eq!(
            (h.as_str(), b.as_str()),
            ("Sale 11.11", "Mọi mặt hàng giảm 11%")
        );
        let (h, b) = split_header("Chào bạn");
        assert_eq!((h.as_str(), b.as_str()), ("Chào bạn", ""));
        let long = "a ".repeat(80);
        let (h, b) = split_header(&long);
        assert!(h.ends_with('…') && h.chars().count() <= HEADER_MAX, "{h}");
        assert_eq!(b, long.trim());
    }

    #[test]
    fn a_promotion_is_a_template_with_banner_header_text_and_buttons() {
        let t = promotion_template(
            "Sinh nhật vui vẻ! Tặng bạn voucher.",
            Some("https://shop.vn/b.png"),
            vec![
                serde_json::json!({"type": "oa.open.url", "title": "Xem", "payload": {"url": "https://shop.vn"}}),
            ],
        );
        assert!(is_promotion_template(&t));
        let els = t["payload"]["elements"].as_array().unwrap();
        assert_eq!(els[0]["type"], "banner");
        assert_eq!(
            els[1],
            serde_json::json!({"type": "header", "content": "Sinh nhật vui vẻ!"})
        );
        assert_eq!(els[2]["content"], "Tặng bạn voucher.");
        assert_eq!(t["payload"]["buttons"][0]["title"], "Xem");
    }
}

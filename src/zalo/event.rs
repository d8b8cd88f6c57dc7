//! Zalo webhook deliveries, normalised into typed domain events (PROTOCOL.md §1).
//!
//! Every delivery becomes an [`Event`]: known shapes get their own [`EventKind`], anything else
//! becomes [`EventKind::Unknown`] (stored and acknowledged, never dropped). Ids stay strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `link`, `sticker`, `file`, `gif`, `audio`, `video`, `location`, …
    pub kind: String,
    pub url: Option<String>,
    pub thumbnail: Option<String>,
    pub name: Option<String>,
    /// The attachment's payload as Zalo sent it (coordinates, size, description…).
    pub payload: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SubmittedInfo {
    pub name: Option<String>,
    pub phone: Option<String>,
    /// `DD/MM/YYYY` as Zalo sends it.
    pub dob: Option<String>,
    pub gender: Option<String>,
    pub address: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub ward: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// `user_send_*` (and `anonymous_send_*`): the user wrote to the OA.
    UserMessage {
        user_id: String,
        msg_id: Option<String>,
        text: Option<String>,
        attachments: Vec<Attachment>,
        anonymous: bool,
    },
    Follow {
        user_id: String,
        source: Option<String>,
    },
    Unfollow {
        user_id: String,
        source: Option<String>,
    },
    /// The "Nhắn tin" button (`user_click_chatnow`).
    ChatNow {
        user_id: String,
    },
    TagAdded {
        tag: String,
        user_ids: Vec<String>,
    },
    TagRemoved {
        tag: String,
        user_ids: Vec<String>,
    },
    SubmitInfo {
        user_id: String,
        info: SubmittedInfo,
    },
    Reaction {
        user_id: String,
        msg_id: Option<String>,
        icon: Option<String>,
    },
    /// `user_received_message`: a message of the OA (or a ZNS, by tracking id) reached the user.
    Received {
        user_id: Option<String>,
        msg_ids: Vec<String>,
        tracking_id: Option<String>,
    },
    /// `user_seen_message`.
    Seen {
        user_id: Option<String>,
        msg_ids: Vec<String>,
    },
    /// `oa_send_*`: the OA's own sends echoed back; `admin_id` is set when a person sent it
    /// from the OA console.
    OaMessage {
        user_id: String,
        admin_id: Option<String>,
        msg_id: Option<String>,
        text: Option<String>,
        attachments: Vec<Attachment>,
    },
    /// `permission_revoked`: the shop took back the app's permission on the OA; OA calls wait
    /// until it is connected again (docs/connect-oa.md).
    PermissionRevoked {},
    /// `change_template_status`: Zalo changed a template's status (approved, disabled…).
    /// PROTOCOL.md §5 names the event without its shape: the id is read from `template_id`
    /// (top level or under `data`/`template`), the status from `status.new_status`,
    /// `new_status` or `status`.
    TemplateStatus {
        template_id: String,
        status: String,
    },
    /// `change_oa_daily_quota`: the OA's daily template quota (None: unlimited); read from
    /// `daily_quota`, `quota` or `new_quota` (top level or under `data`).
    DailyQuota {
        quota: Option<i64>,
    },
    /// Any other event name: kept as received.
    Unknown {
        user_id: Option<String>,
    },
    /// `zaloflow.form_submitted`: a registration on `POST /forms/{form}`. `repeat` is true when
    /// the same contact registered on this form before (seed 000, II.2).
    FormSubmitted {
        contact_id: String,
        form: String,
        name: Option<String>,
        /// Normalised `84…`.
        phone: Option<String>,
        /// Lower case.
        email: Option<String>,
        fields: BTreeMap<String, String>,
        repeat: bool,
    },
    /// `zaloflow.email_opened`: the open pixel of outbox job `job_id` was fetched; `prefetch`
    /// when the fetch came from a mail scanner or image proxy rather than (surely) a person.
    EmailOpened {
        contact_id: String,
        job_id: i64,
        prefetch: bool,
    },
    /// `zaloflow.email_clicked`: a tracked link of outbox job `job_id` was followed.
    EmailClicked {
        contact_id: String,
        job_id: i64,
        url: String,
        link: Option<String>,
    },
}

/// Names of the events the service itself writes to the inbox. The webhook refuses any
/// delivery whose `event_name` starts with [`INTERNAL_PREFIX`].
pub const INTERNAL_PREFIX: &str = "zaloflow.";
pub const FORM_SUBMITTED: &str = "zaloflow.form_submitted";
pub const EMAIL_OPENED: &str = "zaloflow.email_opened";
pub const EMAIL_CLICKED: &str = "zaloflow.email_clicked";

/// True for names reserved to the service's own events (compared without case).
pub fn is_internal_name(name: &str) -> bool {
    name.len() >= INTERNAL_PREFIX.len()
        && name.as_bytes()[..INTERNAL_PREFIX.len()].eq_ignore_ascii_case(INTERNAL_PREFIX.as_bytes())
}

/// The stored body of one of the service's own events: `{"event_name", "timestamp", "data"}`
/// with the variant's fields under `data`. `None` for Zalo's own kinds.
pub fn internal_body(kind: &EventKind, timestamp_ms: i64) -> Option<(&'static str, String)> {
    let (name, data) = match kind {
        EventKind::FormSubmitted {
            contact_id,
            form,
            name,
            phone,
            email,
            fields,
            repeat,
        } => (
            FORM_SUBMITTED,
            serde_json::json!({"contact_id": contact_id, "form": form, "name": name,
                "phone": phone, "email": email, "fields": fields, "repeat": repeat}),
        ),
        EventKind::EmailOpened {
            contact_id,
            job_id,
            prefetch,
        } => (
            EMAIL_OPENED,
            serde_json::json!({"contact_id": contact_id, "job_id": job_id, "prefetch": prefetch}),
        ),
        EventKind::EmailClicked {
            contact_id,
            job_id,
            url,
            link,
        } => (
            EMAIL_CLICKED,
            serde_json::json!({"contact_id": contact_id, "job_id": job_id, "url": url, "link": link}),
        ),
        _ => return None,
    };
    let body = serde_json::json!({
        "event_name": name,
        "timestamp": timestamp_ms.to_string(),
        "data": data,
    });
    Some((name, body.to_string()))
}

#[derive(Deserialize)]
struct FormData {
    contact_id: String,
    form: String,
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    repeat: bool,
}

#[derive(Deserialize)]
struct OpenData {
    contact_id: String,
    job_id: i64,
    #[serde(default)]
    prefetch: bool,
}

#[derive(Deserialize)]
struct ClickData {
    contact_id: String,
    job_id: i64,
    url: String,
    link: Option<String>,
}

/// Our own events; a body that does not have the expected shape is kept as `Unknown`.
fn internal_kind(name: &str, v: &Value) -> EventKind {
    let data = v.get("data").cloned().unwrap_or(Value::Null);
    let fallback = || EventKind::Unknown {
        user_id: str_at(&data, &["contact_id"]),
    };
    match name {
        FORM_SUBMITTED => match serde_json::from_value::<FormData>(data.clone()) {
            Ok(d) => EventKind::FormSubmitted {
                contact_id: d.contact_id,
                form: d.form,
                name: d.name,
                phone: d.phone,
                email: d.email,
                fields: d.fields,
                repeat: d.repeat,
            },
            Err(_) => fallback(),
        },
        EMAIL_OPENED => match serde_json::from_value::<OpenData>(data.clone()) {
            Ok(d) => EventKind::EmailOpened {
                contact_id: d.contact_id,
                job_id: d.job_id,
                prefetch: d.prefetch,
            },
            Err(_) => fallback(),
        },
        EMAIL_CLICKED => match serde_json::from_value::<ClickData>(data.clone()) {
            Ok(d) => EventKind::EmailClicked {
                contact_id: d.contact_id,
                job_id: d.job_id,
                url: d.url,
                link: d.link,
            },
            Err(_) => fallback(),
        },
        _ => fallback(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// `event_name` as received.
    pub name: String,
    pub app_id: Option<String>,
    pub oa_id: Option<String>,
    /// Milliseconds since the epoch (Zalo sends a string).
    pub timestamp_ms: Option<i64>,
    pub kind: EventKind,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object")]
    NotObject,
    #[error("body has no event_name")]
    NoEventName,
}

/// The events a user causes: they count as an interaction (PROTOCOL.md's 7-day window).
impl EventKind {
    pub fn is_user_interaction(&self) -> bool {
        matches!(
            self,
            EventKind::UserMessage { .. }
                | EventKind::Follow { .. }
                | EventKind::ChatNow { .. }
                | EventKind::SubmitInfo { .. }
                | EventKind::Reaction { .. }
        )
    }
}

impl Event {
    /// The user this event is about, for per-user ordering. Tag events may concern several
    /// users: the first is the lane; all are updated.
    pub fn user_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::UserMessage { user_id, .. }
            | EventKind::Follow { user_id, .. }
            | EventKind::Unfollow { user_id, .. }
            | EventKind::ChatNow { user_id }
            | EventKind::SubmitInfo { user_id, .. }
            | EventKind::Reaction { user_id, .. }
            | EventKind::OaMessage { user_id, .. } => Some(user_id),
            EventKind::TagAdded { user_ids, .. } | EventKind::TagRemoved { user_ids, .. } => {
                user_ids.first().map(String::as_str)
            }
            EventKind::Received { user_id, .. }
            | EventKind::Seen { user_id, .. }
            | EventKind::Unknown { user_id } => user_id.as_deref(),
            EventKind::PermissionRevoked {}
            | EventKind::TemplateStatus { .. }
            | EventKind::DailyQuota { .. } => None,
            EventKind::FormSubmitted { contact_id, .. }
            | EventKind::EmailOpened { contact_id, .. }
            | EventKind::EmailClicked { contact_id, .. } => Some(contact_id),
        }
    }

    /// The message id when this event carries one message of its own.
    fn own_msg_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::UserMessage { msg_id, .. } | EventKind::OaMessage { msg_id, .. } => {
                msg_id.as_deref()
            }
            _ => None,
        }
    }
}

/// Parses and normalises a delivery. Never fails on an unknown or odd shape: only a body that
/// is not a JSON object with an `event_name` is refused.
pub fn parse(raw: &[u8]) -> Result<Event, ParseError> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| ParseError::NotJson(e.to_string()))?;
    normalise(&v)
}

pub fn normalise(v: &Value) -> Result<Event, ParseError> {
    let obj = v.as_object().ok_or(ParseError::NotObject)?;
    let name = str_at(v, &["event_name"]).ok_or(ParseError::NoEventName)?;
    let sender = str_at(v, &["sender", "id"]);
    let recipient = str_at(v, &["recipient", "id"]);
    let flat_user = str_at(v, &["user_id"]);
    let follower = str_at(v, &["follower", "id"]);
    let msg_id = str_at(v, &["message", "msg_id"]);
    let text = str_at(v, &["message", "text"]);
    let attachments = || attachments(v);
    let any_user = || follower.clone().or(flat_user.clone()).or(sender.clone());

    let kind = match name.as_str() {
        n if n.starts_with(INTERNAL_PREFIX) => internal_kind(n, v),
        n if n.starts_with("user_send_") || n.starts_with("anonymous_send_") => {
            match sender.clone().or(flat_user.clone()) {
                Some(user_id) => EventKind::UserMessage {
                    user_id,
                    msg_id,
                    text,
                    attachments: attachments(),
                    anonymous: n.starts_with("anonymous_"),
                },
                None => EventKind::Unknown { user_id: None },
            }
        }
        n if n.starts_with("oa_send_") => match recipient.clone().or(flat_user.clone()) {
            Some(user_id) => EventKind::OaMessage {
                user_id,
                admin_id: str_at(v, &["sender", "admin_id"]),
                msg_id,
                text,
                attachments: attachments(),
            },
            None => EventKind::Unknown { user_id: None },
        },
        "follow" | "unfollow" => match any_user() {
            Some(user_id) => {
                let source = str_at(v, &["source"]);
                if name == "follow" {
                    EventKind::Follow { user_id, source }
                } else {
                    EventKind::Unfollow { user_id, source }
                }
            }
            None => EventKind::Unknown { user_id: None },
        },
        // "Nhắn tin": flat user_id in one source, follower.id in another — accept both.
        "user_click_chatnow" => match any_user() {
            Some(user_id) => EventKind::ChatNow { user_id },
            None => EventKind::Unknown { user_id: None },
        },
        "add_user_to_tag" | "remove_user_from_tag" => {
            let tag = str_at(v, &["tag", "name"]).unwrap_or_default();
            let user_ids = v
                .pointer("/tag/user_ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(id_string).collect())
                .unwrap_or_default();
            if name == "add_user_to_tag" {
                EventKind::TagAdded { tag, user_ids }
            } else {
                EventKind::TagRemoved { tag, user_ids }
            }
        }
        "user_submit_info" => match sender.clone().or(flat_user.clone()) {
            Some(user_id) => EventKind::SubmitInfo {
                user_id,
                info: submitted_info(v),
            },
            None => EventKind::Unknown { user_id: None },
        },
        "user_reacted_message" => match sender.clone() {
            Some(user_id) => EventKind::Reaction {
                user_id,
                msg_id,
                icon: str_at(v, &["message", "react_icon"]),
            },
            None => EventKind::Unknown { user_id: None },
        },
        "user_received_message" => EventKind::Received {
            user_id: recipient.clone().or(flat_user.clone()),
            msg_ids: msg_ids(v),
            tracking_id: str_at(v, &["message", "tracking_id"]),
        },
        "user_seen_message" => EventKind::Seen {
            user_id: recipient.clone().or(flat_user.clone()),
            msg_ids: msg_ids(v),
        },
        "permission_revoked" => EventKind::PermissionRevoked {},
        "change_template_status" => {
            let first = |paths: &[&[&str]]| paths.iter().find_map(|p| str_at(v, p));
            match (
                first(&[
                    &["template_id"],
                    &["data", "template_id"],
                    &["template", "id"],
                ]),
                first(&[
                    &["status", "new_status"],
                    &["new_status"],
                    &["data", "new_status"],
                    &["status"],
                    &["data", "status"],
                ]),
            ) {
                (Some(template_id), Some(status)) => EventKind::TemplateStatus {
                    template_id,
                    status,
                },
                _ => EventKind::Unknown { user_id: None },
            }
        }
        "change_oa_daily_quota" => {
            let quota = [
                &["daily_quota"][..],
                &["quota"],
                &["new_quota"],
                &["data", "daily_quota"],
                &["data", "quota"],
                &["data", "new_quota"],
            ]
            .iter()
            .find_map(|p| str_at(v, p));
            match quota {
                // "unlimited" (or a level zaloflow cannot read as a number): no limit.
                Some(q) => EventKind::DailyQuota {
                    quota: q.trim().parse().ok(),
                },
                None => EventKind::Unknown { user_id: None },
            }
        }
        _ => EventKind::Unknown {
            user_id: any_user().or(recipient.clone()),
        },
    };
    let _ = obj;
    Ok(Event {
        app_id: str_at(v, &["app_id"]),
        oa_id: str_at(v, &["oa_id"]),
        timestamp_ms: str_at(v, &["timestamp"]).and_then(|t| t.parse().ok()),
        name,
        kind,
    })
}

/// The dedupe key of a delivery: the message id for events that carry one message of their own
/// (`user_send_*`, `oa_send_*`), otherwise a hash of the body in canonical form (keys sorted,
/// no whitespace), which is stable across Zalo's retries.
pub fn dedupe_key(event: &Event, body: &Value) -> String {
    if let Some(id) = event.own_msg_id() {
        return format!("{}:{}", event.name, id);
    }
    // serde_json's Map keeps keys sorted (no `preserve_order`), so this is canonical.
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    format!("h:{}", hex::encode(Sha256::digest(&canonical)))
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        // Ids are decimal strings; a number is kept as its exact text.
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    id_string(cur)
}

fn msg_ids(v: &Value) -> Vec<String> {
    if let Some(arr) = v.pointer("/message/msg_ids").and_then(Value::as_array) {
        return arr.iter().filter_map(id_string).collect();
    }
    str_at(v, &["message", "msg_id"]).into_iter().collect()
}

fn attachments(v: &Value) -> Vec<Attachment> {
    let Some(arr) = v.pointer("/message/attachments").and_then(Value::as_array) else {
        return Vec::new();
    };
    arr.iter()
        .map(|a| {
            let payload = a.get("payload").cloned().unwrap_or(Value::Null);
            Attachment {
                kind: str_at(a, &["type"]).unwrap_or_else(|| "unknown".into()),
                url: str_at(&payload, &["url"]),
                thumbnail: str_at(&payload, &["thumbnail"]),
                name: str_at(&payload, &["name"]),
                payload,
            }
        })
        .collect()
}

fn submitted_info(v: &Value) -> SubmittedInfo {
    let info = v.get("info").cloned().unwrap_or(Value::Null);
    let addr = |k: &str| str_at(&info, &["full_address", k]);
    SubmittedInfo {
        name: str_at(&info, &["name"]),
        phone: str_at(&info, &["phone"]),
        dob: str_at(&info, &["user_dob"]),
        gender: str_at(&info, &["gender"]),
        address: addr("user_address").or_else(|| str_at(&info, &["address"])),
        city: addr("user_city").or_else(|| str_at(&info, &["city"])),
        district: addr("user_district").or_else(|| str_at(&info, &["district"])),
        ward: addr("user_ward").or_else(|| str_at(&info, &["ward"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Event {
        let path = format!(
            "{}/tests/fixtures/zalo/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn user_send_text() {
        let e = fixture("user_send_text");
        assert_eq!(e.name, "user_send_text");
        assert_eq!(e.timestamp_ms, Some(154390853474));
        assert_eq!(
            e.kind,
            EventKind::UserMessage {
                user_id: "246845883529197922".into(),
                msg_id: Some("96d3cdf3af150460909".into()),
                text: Some("message".into()),
                attachments: vec![],
                anonymous: false,
            }
        );
        assert!(e.kind.is_user_interaction());
    }

    #[test]
    fn user_send_text_vietnamese() {
        let e = fixture("user_send_text_vi");
        match e.kind {
            EventKind::UserMessage { user_id, text, .. } => {
                assert_eq!(user_id, "6142494823000000001");
                assert_eq!(text.as_deref(), Some("Chào A4B"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn attachments_of_each_kind() {
        for (name, kind, url) in [
            ("user_send_image", "image", Some("url_to_thumbnail")),
            ("user_send_link", "link", Some("link")),
            ("user_send_sticker", "sticker", Some("link")),
            ("user_send_file", "file", Some("link_to_download_file")),
        ] {
            let e = fixture(name);
            let EventKind::UserMessage {
                user_id,
                attachments,
                ..
            } = e.kind
            else {
                panic!("{name}: {:?}", e.kind)
            };
            assert_eq!(user_id, "4339761418830368433");
            assert_eq!(attachments.len(), 1, "{name}");
            assert_eq!(attachments[0].kind, kind);
            assert_eq!(attachments[0].url.as_deref(), url);
        }
        let e = fixture("user_send_file");
        let EventKind::UserMessage { attachments, .. } = e.kind else {
            panic!()
        };
        assert_eq!(attachments[0].name.as_deref(), Some("file_name"));
    }

    #[test]
    fn follow() {
        let e = fixture("follow");
        assert_eq!(
            e.kind,
            EventKind::Follow {
                user_id: "8958041078911298472".into(),
                source: Some("oa_profile".into())
            }
        );
        assert_eq!(e.oa_id.as_deref(), Some("4024926008133882615"));
        assert_eq!(e.timestamp_ms, Some(1725608725618));
    }

    #[test]
    fn unfollow_and_chatnow_in_both_layouts() {
        let e = parse(br#"{"event_name":"unfollow","oa_id":"1","follower":{"id":"77"},"source":"oa_profile","app_id":"2","timestamp":"5"}"#).unwrap();
        assert!(matches!(e.kind, EventKind::Unfollow { ref user_id, .. } if user_id == "77"));
        assert!(!e.kind.is_user_interaction());
        let flat = parse(br#"{"event_name":"user_click_chatnow","oa_id":"1","user_id":"88","app_id":"2","timestamp":"5"}"#).unwrap();
        assert_eq!(
            flat.kind,
            EventKind::ChatNow {
                user_id: "88".into()
            }
        );
        let nested = parse(br#"{"event_name":"user_click_chatnow","oa_id":"1","follower":{"id":"99"},"app_id":"2","timestamp":"5"}"#).unwrap();
        assert_eq!(
            nested.kind,
            EventKind::ChatNow {
                user_id: "99".into()
            }
        );
    }

    #[test]
    fn tags() {
        let e = fixture("add_user_to_tag");
        assert_eq!(
            e.kind,
            EventKind::TagAdded {
                tag: "example".into(),
                user_ids: vec!["246845883296197922".into()]
            }
        );
        assert_eq!(e.user_id(), Some("246845883296197922"));
        let r = parse(br#"{"event_name":"remove_user_from_tag","oa_id":"1","tag":{"name":"vip_customer","user_ids":["1","2"]},"timestamp":"5"}"#).unwrap();
        assert_eq!(
            r.kind,
            EventKind::TagRemoved {
                tag: "vip_customer".into(),
                user_ids: vec!["1".into(), "2".into()]
            }
        );
    }

    #[test]
    fn submit_info() {
        let e = fixture("user_submit_info");
        let EventKind::SubmitInfo { user_id, info } = e.kind else {
            panic!()
        };
        assert_eq!(user_id, "246845883529697922");
        assert_eq!(info.name.as_deref(), Some("Name Example"));
        assert_eq!(info.phone.as_deref(), Some("84912345678"));
        assert_eq!(info.dob.as_deref(), Some("30/10/1999"));
        assert_eq!(info.gender.as_deref(), Some("Nam"));
        assert_eq!(info.city.as_deref(), Some("Thành phố Hồ Chí Minh"));
        assert_eq!(
            info.address.as_deref(),
            Some("Đường số 13, KCX Tân Thuận Đông")
        );
    }

    #[test]
    fn oa_echo_carries_admin_id() {
        let e = fixture("oa_send_file");
        let EventKind::OaMessage {
            user_id,
            admin_id,
            msg_id,
            attachments,
            ..
        } = e.kind
        else {
            panic!()
        };
        assert_eq!(user_id, "8309393969855402319");
        assert_eq!(admin_id.as_deref(), Some("8309393969855402319"));
        assert_eq!(msg_id.as_deref(), Some("f3af2263f0673c3f6570"));
        assert_eq!(attachments[0].kind, "file");
    }

    #[test]
    fn reactions_and_receipts() {
        let r = parse(br#"{"event_name":"user_reacted_message","sender":{"id":"5"},"recipient":{"id":"1"},"message":{"msg_id":"m9","react_icon":"/-heart"},"timestamp":"7"}"#).unwrap();
        assert_eq!(
            r.kind,
            EventKind::Reaction {
                user_id: "5".into(),
                msg_id: Some("m9".into()),
                icon: Some("/-heart".into())
            }
        );
        let rec = parse(br#"{"event_name":"user_received_message","sender":{"id":"1"},"recipient":{"id":"5"},"message":{"msg_id":"m9"},"timestamp":"7"}"#).unwrap();
        assert_eq!(
            rec.kind,
            EventKind::Received {
                user_id: Some("5".into()),
                msg_ids: vec!["m9".into()],
                tracking_id: None
            }
        );
        let zns = parse(br#"{"event_name":"user_received_message","sender":{"id":"1"},"recipient":{"id":"5"},"message":{"msg_id":"z1","tracking_id":"t-42"},"timestamp":"7"}"#).unwrap();
        assert!(
            matches!(zns.kind, EventKind::Received { tracking_id: Some(ref t), .. } if t == "t-42")
        );
        let seen = parse(br#"{"event_name":"user_seen_message","sender":{"id":"1"},"recipient":{"id":"5"},"message":{"msg_ids":["a","b"]},"timestamp":"7"}"#).unwrap();
        assert_eq!(
            seen.kind,
            EventKind::Seen {
                user_id: Some("5".into()),
                msg_ids: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn template_status_and_daily_quota_are_typed() {
        let e = parse(
            br#"{"app_id":"1","oa_id":"388","event_name":"change_template_status","timestamp":"5","template_id":"231456","status":{"prev_status":"ENABLE","new_status":"DISABLE"}}"#,
        )
        .unwrap();
        assert_eq!(
            e.kind,
            EventKind::TemplateStatus {
                template_id: "231456".into(),
                status: "DISABLE".into()
            }
        );
        let e = parse(
            br#"{"app_id":"1","oa_id":"388","event_name":"change_oa_daily_quota","timestamp":"5","data":{"daily_quota":"5000"}}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::DailyQuota { quota: Some(5000) });
        let e = parse(
            br#"{"app_id":"1","event_name":"change_oa_daily_quota","timestamp":"5","quota":"unlimited"}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::DailyQuota { quota: None });
    }

    #[test]
    fn permission_revoked_is_typed() {
        let e = parse(
            br#"{"app_id":"1","oa_id":"388","event_name":"permission_revoked","timestamp":"5"}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventKind::PermissionRevoked {});
        assert_eq!((e.oa_id.as_deref(), e.user_id()), (Some("388"), None));
    }

    #[test]
    fn unknown_events_are_kept_with_their_user() {
        let e = fixture("user_withdraw");
        assert_eq!(e.name, "user_withdraw");
        assert_eq!(
            e.kind,
            EventKind::Unknown {
                user_id: Some("4558424660619243532".into())
            }
        );
        let odd = parse(br#"{"event_name":"brand_new_thing","weird":[1,2,{"x":null}]}"#).unwrap();
        assert_eq!(odd.kind, EventKind::Unknown { user_id: None });
        // A known name with a missing user degrades to Unknown instead of failing.
        let broken = parse(br#"{"event_name":"user_send_text","message":{"text":"hi"}}"#).unwrap();
        assert_eq!(broken.kind, EventKind::Unknown { user_id: None });
    }

    #[test]
    fn refusals() {
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
        assert_eq!(parse(b"[1,2]"), Err(ParseError::NotObject));
        assert_eq!(parse(br#"{"a":1}"#), Err(ParseError::NoEventName));
    }

    #[test]
    fn big_ids_stay_exact() {
        let e = parse(
            br#"{"event_name":"follow","follower":{"id":18446744073709551617999},"timestamp":"1"}"#,
        );
        // A number too large for u64 is not valid serde_json without arbitrary precision; such a
        // body is refused rather than rounded.
        assert!(e.is_err() || matches!(e.unwrap().kind, EventKind::Follow { .. }));
        let e = parse(br#"{"event_name":"follow","follower":{"id":"18446744073709551617999"},"timestamp":"1"}"#).unwrap();
        assert_eq!(e.user_id(), Some("18446744073709551617999"));
    }

    #[test]
    fn internal_events_round_trip() {
        let kinds = [
            EventKind::FormSubmitted {
                contact_id: "phone:84912345678".into(),
                form: "spring-sale".into(),
                name: Some("Lan".into()),
                phone: Some("84912345678".into()),
                email: None,
                fields: BTreeMap::from([("gift".to_string(), "Áo thun".to_string())]),
                repeat: true,
            },
            EventKind::EmailOpened {
                contact_id: "u1".into(),
                job_id: 42,
                prefetch: true,
            },
            EventKind::EmailClicked {
                contact_id: "u1".into(),
                job_id: 42,
                url: "https://shop.example/p?a=1".into(),
                link: Some("promo".into()),
            },
        ];
        for kind in kinds {
            let (name, body) = internal_body(&kind, 1_700_000_000_000).unwrap();
            let e = parse(body.as_bytes()).unwrap();
            assert_eq!(e.name, name);
            assert_eq!(e.timestamp_ms, Some(1_700_000_000_000));
            assert_eq!(e.kind, kind);
            assert!(!e.kind.is_user_interaction());
            assert!(e.user_id().is_some());
        }
        assert!(internal_body(&EventKind::Unknown { user_id: None }, 1).is_none());
        // A malformed internal body is kept, not refused.
        let e =
            parse(br#"{"event_name":"zaloflow.email_opened","data":{"contact_id":"u1"}}"#).unwrap();
        assert_eq!(
            e.kind,
            EventKind::Unknown {
                user_id: Some("u1".into())
            }
        );
    }

    #[test]
    fn internal_names_are_recognised_without_case() {
        assert!(is_internal_name("zaloflow.form_submitted"));
        assert!(is_internal_name("ZaloFlow.anything"));
        assert!(!is_internal_name("zaloflow"));
        assert!(!is_internal_name("user_send_text"));
    }

    #[test]
    fn dedupe_keys() {
        let a = br#"{"event_name":"user_send_text","sender":{"id":"1"},"message":{"msg_id":"m1","text":"a"},"timestamp":"1"}"#;
        let a_retry = br#"{"timestamp":"1", "event_name":"user_send_text","sender":{"id":"1"},"message":{"text":"a","msg_id":"m1"}}"#;
        let key = |b: &[u8]| {
            let v: Value = serde_json::from_slice(b).unwrap();
            dedupe_key(&normalise(&v).unwrap(), &v)
        };
        assert_eq!(key(a), "user_send_text:m1");
        assert_eq!(key(a), key(a_retry));
        let f1 = br#"{"event_name":"follow","follower":{"id":"1"},"timestamp":"1"}"#;
        let f1_spaced = br#"{ "timestamp" : "1", "follower":{"id":"1"}, "event_name":"follow" }"#;
        let f2 = br#"{"event_name":"follow","follower":{"id":"1"},"timestamp":"2"}"#;
        assert_eq!(key(f1), key(f1_spaced));
        assert_ne!(key(f1), key(f2));
        // A reaction to a message must not be taken for that message.
        let react = br#"{"event_name":"user_reacted_message","sender":{"id":"1"},"message":{"msg_id":"m1","react_icon":"x"},"timestamp":"1"}"#;
        assert_ne!(key(react), key(a));
    }
}

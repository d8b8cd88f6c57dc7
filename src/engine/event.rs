//! What an event tells about its contacts: first seen, follow status, last interaction, name,
//! phone and tags; and the handoff signal of a customer message or an agent's reply.

use super::*;

/// What an event means for handoffs: a customer message (attached to an open handoff, or
/// the cause of a new one), or a reply a person sent from the OA console. The OA's automated
/// echoes (no `admin_id`) mean nothing.
pub(super) fn handoff_signal(
    event: &Event,
    at: i64,
    lang: crate::i18n::Lang,
) -> Option<HandoffChange> {
    match &event.kind {
        EventKind::UserMessage {
            user_id,
            msg_id,
            text,
            attachments,
            ..
        } => Some(HandoffChange::Message {
            user_id: user_id.clone(),
            message: HandoffMessage {
                msg_id: msg_id.clone(),
                text: Some(handoff::message_text(lang, text.as_deref(), attachments))
                    .filter(|t| !t.is_empty()),
                at,
            },
        }),
        EventKind::OaMessage {
            user_id,
            admin_id: Some(admin_id),
            msg_id,
            text,
            attachments,
        } if !admin_id.is_empty() => Some(HandoffChange::AgentReply {
            user_id: user_id.clone(),
            admin_id: admin_id.clone(),
            message: HandoffMessage {
                msg_id: msg_id.clone(),
                text: Some(handoff::message_text(lang, text.as_deref(), attachments))
                    .filter(|t| !t.is_empty()),
                at,
            },
        }),
        _ => None,
    }
}

/// The contacts rules are evaluated for: each user a tag event lists, else the event's user.
pub(super) fn evaluated_users(event: &Event) -> Vec<String> {
    match &event.kind {
        EventKind::TagAdded { user_ids, .. } | EventKind::TagRemoved { user_ids, .. } => {
            user_ids.clone()
        }
        _ => event.user_id().map(str::to_string).into_iter().collect(),
    }
}

/// What an event tells us about its contacts: first seen, follow status, last interaction
/// (only for events the user caused), name and phone when carried, and Zalo's tags.
pub fn contact_changes(event: &Event, at: i64) -> Vec<ContactChange> {
    let mut out = Vec::new();
    let one = |user_id: &str| {
        let mut ch = ContactChange::new(user_id, at);
        if event.kind.is_user_interaction() {
            ch.interaction_at = Some(at);
            ch.interactions = 1;
        }
        ch
    };
    match &event.kind {
        EventKind::Follow { user_id, .. } => {
            let mut ch = one(user_id);
            ch.follows = Some(true);
            ch.followed_at = Some(at);
            out.push(ch);
        }
        EventKind::Unfollow { user_id, .. } => {
            let mut ch = one(user_id);
            ch.follows = Some(false);
            ch.unfollowed_at = Some(at);
            out.push(ch);
        }
        EventKind::SubmitInfo { user_id, info } => {
            let mut ch = one(user_id);
            ch.display_name = info.name.clone();
            ch.phone = info.phone.as_deref().and_then(normalise_phone);
            let mut set = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    ch.fields_set.push((k.to_string(), v.clone()));
                }
            };
            set("dob", &info.dob);
            set("gender", &info.gender);
            set("address", &info.address);
            set("city", &info.city);
            set("district", &info.district);
            set("ward", &info.ward);
            out.push(ch);
        }
        EventKind::TagAdded { tag, user_ids } | EventKind::TagRemoved { tag, user_ids } => {
            let add = matches!(event.kind, EventKind::TagAdded { .. });
            for u in user_ids {
                let mut ch = one(u);
                if !tag.is_empty() {
                    if add {
                        ch.tags_add.push(tag.clone());
                    } else {
                        ch.tags_remove.push(tag.clone());
                    }
                }
                out.push(ch);
            }
        }
        EventKind::UserMessage { user_id, .. }
        | EventKind::ChatNow { user_id }
        | EventKind::Reaction { user_id, .. }
        | EventKind::OaMessage { user_id, .. } => out.push(one(user_id)),
        EventKind::Received { user_id, .. }
        | EventKind::Seen { user_id, .. }
        | EventKind::Unknown { user_id } => {
            if let Some(u) = user_id {
                out.push(one(u));
            }
        }
        // Handled by the inbox (the OA's connection), not a contact's fact.
        EventKind::PermissionRevoked {}
        | EventKind::TemplateStatus { .. }
        | EventKind::DailyQuota { .. } => {}
        // A form registration fills the contact in. It is not a Zalo interaction: the 7-day
        // customer-service window (PROTOCOL.md) opens only on events in the OA.
        EventKind::FormSubmitted {
            contact_id,
            name,
            phone,
            email,
            fields,
            ..
        } => {
            let mut ch = one(contact_id);
            ch.display_name.clone_from(name);
            ch.phone.clone_from(phone);
            ch.email.clone_from(email);
            ch.fields_set = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            out.push(ch);
        }
        // Opens and clicks change nothing on the contact (and must not move its Zalo
        // interaction time); rules react to the events themselves.
        EventKind::EmailOpened { .. } | EventKind::EmailClicked { .. } => {}
    }
    out
}

/// Vietnamese phone numbers in the international form `84…` (digits only); `None` if it
/// does not look like a phone number.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let plus = raw.trim_start().starts_with('+');
    let n = if let Some(rest) = digits.strip_prefix("84").filter(|_| digits.len() >= 11) {
        format!("84{rest}")
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("84{rest}")
    } else if plus {
        digits
    } else if digits.len() == 9 {
        format!("84{digits}")
    } else {
        digits
    };
    (10..=13).contains(&n.len()).then_some(n)
}

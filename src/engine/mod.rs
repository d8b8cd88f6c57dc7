//! The processing pipeline: a stored event and the current state of its contacts in, the
//! effects to apply out — plain code, no I/O. The store applies the effects atomically with
//! marking the event processed.

use std::collections::HashMap;

use crate::store::{Contact, ContactChange, Effects};
use crate::zalo::event::{Event, EventKind};

/// Turns events into effects. Rules plug in here.
#[derive(Debug, Default, Clone)]
pub struct Engine {}

impl Engine {
    pub fn new() -> Self {
        Engine {}
    }

    /// Processes one event at `at` (the event's own time). `contacts` holds the current state
    /// of every contact the event concerns and is updated in place, so the next event of the
    /// same user in a batch sees this one's changes.
    pub fn process(
        &self,
        event: &Event,
        at: i64,
        contacts: &mut HashMap<String, Contact>,
    ) -> Effects {
        let changes = contact_changes(event, at);
        for ch in &changes {
            let c = contacts.entry(ch.user_id.clone()).or_default();
            ch.apply_to(c);
        }
        Effects {
            contacts: changes,
            ..Default::default()
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zalo::event::parse;

    #[test]
    fn phones() {
        assert_eq!(
            normalise_phone("0912 345 678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalise_phone("+84 912-345-678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalise_phone("84912345678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(normalise_phone("912345678").as_deref(), Some("84912345678"));
        assert_eq!(normalise_phone("12"), None);
        assert_eq!(normalise_phone("abc"), None);
    }

    #[test]
    fn follow_then_unfollow_folds_in_order() {
        let engine = Engine::new();
        let mut contacts = HashMap::new();
        let f =
            parse(br#"{"event_name":"follow","follower":{"id":"7"},"timestamp":"1000"}"#).unwrap();
        let u = parse(br#"{"event_name":"unfollow","follower":{"id":"7"},"timestamp":"2000"}"#)
            .unwrap();
        engine.process(&f, 1000, &mut contacts);
        assert_eq!(contacts["7"].follows, Some(true));
        assert_eq!(contacts["7"].last_interaction, Some(1000));
        engine.process(&u, 2000, &mut contacts);
        let c = &contacts["7"];
        assert_eq!(c.follows, Some(false));
        assert_eq!(c.unfollowed_at, Some(2000));
        // Unfollowing is not an interaction.
        assert_eq!(c.last_interaction, Some(1000));
        assert_eq!(c.first_seen, 1000);
    }

    #[test]
    fn oa_echo_and_receipts_are_not_interactions() {
        for body in [
            r#"{"event_name":"oa_send_text","sender":{"id":"1","admin_id":"9"},"recipient":{"id":"7"},"message":{"msg_id":"x","text":"hi"},"timestamp":"5"}"#,
            r#"{"event_name":"user_seen_message","sender":{"id":"1"},"recipient":{"id":"7"},"message":{"msg_ids":["x"]},"timestamp":"5"}"#,
        ] {
            let e = parse(body.as_bytes()).unwrap();
            let ch = contact_changes(&e, 5);
            assert_eq!(ch.len(), 1);
            assert_eq!(ch[0].user_id, "7");
            assert_eq!(ch[0].interaction_at, None, "{body}");
        }
    }

    #[test]
    fn submit_info_sets_name_phone_fields() {
        let e = parse(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/zalo/user_submit_info.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let ch = &contact_changes(&e, 9)[0];
        assert_eq!(ch.display_name.as_deref(), Some("Name Example"));
        assert_eq!(ch.phone.as_deref(), Some("84912345678"));
        assert!(ch.fields_set.contains(&("dob".into(), "30/10/1999".into())));
        assert_eq!(ch.interaction_at, Some(9));
    }

    #[test]
    fn form_fills_the_contact_and_opens_change_nothing() {
        use crate::zalo::event::{internal_body, EventKind};
        let kind = EventKind::FormSubmitted {
            contact_id: "phone:84912345678".into(),
            form: "f".into(),
            name: Some("Lan".into()),
            phone: Some("84912345678".into()),
            email: Some("lan@example.vn".into()),
            fields: [("gift".to_string(), "Áo thun".to_string())].into(),
            repeat: false,
        };
        let (_, body) = internal_body(&kind, 5).unwrap();
        let e = parse(body.as_bytes()).unwrap();
        let ch = contact_changes(&e, 5);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].user_id, "phone:84912345678");
        assert_eq!(ch[0].display_name.as_deref(), Some("Lan"));
        assert_eq!(ch[0].phone.as_deref(), Some("84912345678"));
        assert_eq!(ch[0].email.as_deref(), Some("lan@example.vn"));
        assert_eq!(ch[0].fields_set, vec![("gift".into(), "Áo thun".into())]);
        // Not a Zalo interaction: the 7-day window stays as it was.
        assert_eq!(ch[0].interaction_at, None);
        let open = EventKind::EmailOpened {
            contact_id: "u".into(),
            job_id: 1,
            prefetch: false,
        };
        let (_, body) = internal_body(&open, 5).unwrap();
        assert!(contact_changes(&parse(body.as_bytes()).unwrap(), 5).is_empty());
    }

    #[test]
    fn tag_events_touch_every_listed_user() {
        let e = parse(br#"{"event_name":"add_user_to_tag","tag":{"name":"vip_customer","user_ids":["1","2"]},"timestamp":"5"}"#).unwrap();
        let ch = contact_changes(&e, 5);
        assert_eq!(ch.len(), 2);
        assert!(ch
            .iter()
            .all(|c| c.tags_add == vec!["vip_customer".to_string()]));
    }
}

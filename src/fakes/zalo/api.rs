//! The fake's OA API: what Zalo answers to each call, refusals included.

use super::*;

pub(super) fn api(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    token: Option<&str>,
    request: &Value,
) -> Answer {
    let now = inner.now();
    if let Some(refused) = gate(inner, token, now) {
        return refused;
    }

    match (method.as_str(), path) {
        ("POST", CS_PATH) => send_message(inner, "cs", request, now),
        ("POST", PROMOTION_PATH) => send_message(inner, "promotion", request, now),
        ("POST", TRANSACTION_PATH) => send_message(inner, "transaction", request, now),
        ("POST", "/v2.0/oa/tag/tagfollower") | ("POST", "/v2.0/oa/tag/rmfollowerfromtag") => {
            tag_follower(inner, path.ends_with("tagfollower"), request, now)
        }
        ("POST", "/v2.0/oa/tag/rmtag") => {
            let tag = request
                .get("tag_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            for user in inner.users.values_mut() {
                user.tags.remove(tag);
            }
            Answer::ok(Value::Null)
        }
        ("GET", "/v2.0/oa/tag/gettagsofoa") => {
            let tags: BTreeSet<&String> = inner.users.values().flat_map(|u| &u.tags).collect();
            Answer::ok(json!(tags))
        }
        ("GET", DETAIL_PATH) => {
            let user_id = request.get("user_id").and_then(Value::as_str).unwrap_or("");
            let tz = inner.opts.tz;
            match user_mut(inner, user_id, now) {
                Some(u) => Answer::ok(json!({
                    "user_id": u.user_id,
                    "display_name": u.display_name,
                    "avatar": "",
                    "user_is_follower": u.follower,
                    "user_last_interaction_date":
                        u.last_interaction.with_timezone(&tz).format("%d/%m/%Y").to_string(),
                    "tags_and_notes_info": { "tag_names": u.tags, "notes": [] },
                })),
                None => Answer::zalo(-201, "user_id is invalid"),
            }
        }
        ("GET", GETLIST_PATH) => follower_list(inner, request),
        ("POST", "/v3.0/oa/quota/message") => {
            Answer::ok(json!({ "total": 2000, "remain": 2000 - inner.messages.len().min(2000) }))
        }
        ("POST", ZNS_PATH) => send_zns(inner, request, now),
        _ => Answer {
            status: 404,
            error: 0,
            body: Value::Null,
        },
    }
}

fn user_mut<'a>(
    inner: &'a mut Inner,
    user_id: &str,
    now: DateTime<Utc>,
) -> Option<&'a mut FakeUser> {
    if user_id.is_empty() {
        return None;
    }
    if inner.opts.accept_unknown_users && !inner.users.contains_key(user_id) {
        inner
            .users
            .insert(user_id.to_string(), FakeUser::new(user_id, user_id, now));
    }
    inner.users.get_mut(user_id)
}

fn next_id(inner: &mut Inner) -> String {
    let id = inner.next_id;
    inner.next_id += 1;
    format!("{:016x}{:016x}", rand::random::<u64>(), id)
}

fn send_message(inner: &mut Inner, kind: &str, request: &Value, now: DateTime<Utc>) -> Answer {
    let user_id = request
        .pointer("/recipient/user_id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(message) = request.get("message").filter(|m| m.is_object()).cloned() else {
        return Answer::zalo(-201, "message is invalid");
    };
    let text = message.get("text").and_then(Value::as_str);
    let attachment = message.get("attachment");
    if text.is_none() && attachment.is_none() {
        return Answer::zalo(-201, "message has no text or attachment");
    }
    if text.is_some_and(|t| t.chars().count() > 2000) {
        return Answer::zalo(-201, "text is too long");
    }
    if kind == "promotion" {
        if let Some(refused) = promotion_refusal(&message, now.with_timezone(&inner.opts.tz)) {
            return refused;
        }
    }
    let promotions_today = promotions_on(inner, &user_id, now);
    let Some(user) = user_mut(inner, &user_id, now) else {
        return Answer::zalo(-201, "user_id is invalid");
    };
    if !user.follower {
        return Answer::zalo(-213, "User has not followed the OA");
    }
    if kind == "cs" && now - user.last_interaction > chrono::Duration::days(7) {
        return Answer::zalo(
            -230,
            "User has not interacted with the OA in the past 7 days",
        );
    }
    if inner
        .opted_out
        .contains(&(user_id.clone(), kind.to_string()))
    {
        return Answer::zalo(-244, "User has refused to receive this type of message");
    }
    if kind == "promotion" && inner.billing_empty {
        return Answer::zalo(-321, "The billing account is out of money");
    }
    if kind == "promotion" && promotions_today >= PROMOTIONS_PER_DAY {
        return Answer::zalo(-211, "Out of quota: one promotion message per user a day");
    }
    let message_id = next_id(inner);
    inner.messages.push(FakeMessage {
        kind: kind.to_string(),
        user_id: Some(user_id.clone()),
        phone: None,
        message,
        message_id: message_id.clone(),
        at: now,
    });
    Answer::ok(json!({
        "message_id": message_id,
        "user_id": user_id,
        "sent_time": now.timestamp_millis().to_string(),
        "quota": { "quota_type": "reply", "remain": 7, "total": 8 },
    }))
}

/// Promotion messages a user may receive a day (PROTOCOL.md §5: "1 a day in one SDK").
const PROMOTIONS_PER_DAY: usize = 1;

/// Why Zalo refuses a promotion message before looking at its user (PROTOCOL.md §5): a
/// promotion is an attachment template (`template_type: promotion`) with a header or text
/// element, never a bare `text`; and it goes out only between 07:00 and 22:00, OA time.
fn promotion_refusal(message: &Value, local: DateTime<Tz>) -> Option<Answer> {
    let payload = message.pointer("/attachment/payload");
    let is_template = message.pointer("/attachment/type").and_then(Value::as_str)
        == Some("template")
        && payload
            .and_then(|p| p.get("template_type"))
            .and_then(Value::as_str)
            == Some("promotion");
    if !is_template {
        return Some(Answer::zalo(
            -201,
            "message is invalid: a promotion message must be an attachment template (template_type promotion)",
        ));
    }
    let has_content = payload
        .and_then(|p| p.get("elements"))
        .and_then(Value::as_array)
        .is_some_and(|els| {
            els.iter().any(|e| {
                matches!(
                    e.get("type").and_then(Value::as_str),
                    Some("header" | "text")
                ) && e
                    .get("content")
                    .and_then(Value::as_str)
                    .is_some_and(|c| !c.trim().is_empty())
            })
        });
    if !has_content {
        return Some(Answer::zalo(
            -201,
            "elements are invalid: a promotion needs a header or text element",
        ));
    }
    let hour = chrono::Timelike::hour(&local);
    if !(7..22).contains(&hour) {
        return Some(Answer::zalo(
            -234,
            "Promotion messages are sent between 07:00 and 22:00 only",
        ));
    }
    None
}

/// Promotion messages `user_id` received on `now`'s day, OA time.
fn promotions_on(inner: &Inner, user_id: &str, now: DateTime<Utc>) -> usize {
    let day = now.with_timezone(&inner.opts.tz).date_naive();
    inner
        .messages
        .iter()
        .filter(|m| {
            matches!(m.kind.as_str(), "promotion" | "template_promotion")
                && m.user_id.as_deref() == Some(user_id)
                && m.at.with_timezone(&inner.opts.tz).date_naive() == day
        })
        .count()
}

/// What Zalo answers before looking at the call: a scripted failure, an invalid or expired
/// access token (-216), the app's rate limit (-32).
fn gate(inner: &mut Inner, token: Option<&str>, now: DateTime<Utc>) -> Option<Answer> {
    if let Some(failure) = inner.scripted.pop_front() {
        return Some(match failure {
            Failure::Zalo { code, message } => Answer::zalo(code, &message),
            Failure::Http(status) => Answer {
                status,
                error: 0,
                body: Value::Null,
            },
        });
    }
    let token_ok = token
        .and_then(|t| inner.access_tokens.get(t))
        .is_some_and(|expires| *expires > now);
    if !token_ok {
        return Some(Answer::zalo(-216, "Access token is invalid"));
    }
    let instant = Instant::now();
    while inner
        .window
        .front()
        .is_some_and(|t| instant.duration_since(*t) >= Duration::from_secs(60))
    {
        inner.window.pop_front();
    }
    let last_second = inner
        .window
        .iter()
        .filter(|t| instant.duration_since(**t) < Duration::from_secs(1))
        .count();
    let over_second = inner
        .opts
        .max_calls_per_second
        .is_some_and(|max| last_second >= max as usize);
    let over_minute = inner
        .opts
        .max_calls_per_minute
        .is_some_and(|max| inner.window.len() >= max as usize);
    if over_second || over_minute {
        return Some(Answer::zalo(
            -32,
            "The application has reached the request rate limit",
        ));
    }
    inner.window.push_back(instant);

    None
}

/// `tagfollower` / `rmfollowerfromtag`.
fn tag_follower(inner: &mut Inner, add: bool, request: &Value, now: DateTime<Utc>) -> Answer {
    let user_id = request.get("user_id").and_then(Value::as_str).unwrap_or("");
    let tag = request
        .get("tag_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if tag.is_empty() {
        return Answer::zalo(-201, "tag_name is invalid");
    }
    match user_mut(inner, user_id, now) {
        Some(user) => {
            if add {
                user.tags.insert(tag.to_string());
            } else {
                user.tags.remove(tag);
            }
            Answer::ok(Value::Null)
        }
        None => Answer::zalo(-201, "user_id is invalid"),
    }
}

/// `getfollowers`-style pages of at most 50 users.
fn follower_list(inner: &Inner, request: &Value) -> Answer {
    let offset = request.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
    let count = request.get("count").and_then(Value::as_u64).unwrap_or(50) as usize;
    if count > 50 {
        return Answer::zalo(-201, "count is invalid: at most 50 users per page");
    }
    // `is_follower`: "true" lists followers, "false" users who interacted but do not
    // follow (any more); absent: both.
    let wanted = match request.get("is_follower") {
        Some(Value::String(s)) => s.parse::<bool>().ok(),
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    };
    let followers: Vec<&FakeUser> = inner
        .users
        .values()
        .filter(|u| wanted.is_none_or(|w| u.follower == w))
        .collect();
    let page: Vec<Value> = followers
        .iter()
        .skip(offset)
        .take(count)
        .map(|u| json!({ "user_id": u.user_id }))
        .collect();
    Answer::ok(
        json!({ "total": followers.len(), "count": page.len(), "offset": offset, "users": page }),
    )
}

/// A template message (ZNS / ZBS) by phone, or by Zalo user id (PROTOCOL.md §3 and §5): tags 2
/// and 3 only 07:00–22:00 (-234), tag 3 once a day per user with promotions (-211), by user id
/// only for templates approved for it (-249) and only to followers (-213), opt-outs (-244).
fn send_zns(inner: &mut Inner, request: &Value, now: DateTime<Utc>) -> Answer {
    let phone = request.get("phone").and_then(Value::as_str).unwrap_or("");
    let by_user = request.get("user_id").and_then(Value::as_str);
    let template = request
        .get("template_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    if template.is_empty() || !request.get("template_data").is_some_and(Value::is_object) {
        return Answer::zalo(-201, "template is invalid");
    }
    let known = inner.templates.get(template).copied();
    if known.is_some_and(|t| !t.enabled) {
        return Answer::zalo(-201, "template is not enabled");
    }
    let tag = known.map_or(1, |t| t.tag);
    if let Some(quota) = inner.template_quota {
        let day = now.with_timezone(&inner.opts.tz).date_naive();
        let today = inner
            .messages
            .iter()
            .filter(|m| {
                matches!(m.kind.as_str(), "zns" | "template" | "template_promotion")
                    && m.at.with_timezone(&inner.opts.tz).date_naive() == day
            })
            .count();
        if today >= quota {
            return Answer::zalo(
                -211,
                "Out of quota: the OA's daily template quota is used up",
            );
        }
    }
    let hour = chrono::Timelike::hour(&now.with_timezone(&inner.opts.tz));
    if tag != 1 && !(7..22).contains(&hour) {
        return Answer::zalo(
            -234,
            "Template messages of this tag are sent between 07:00 and 22:00 only",
        );
    }
    let kind = match by_user {
        Some(user_id) => {
            if !known.is_some_and(|t| t.by_user_id) {
                return Answer::zalo(-249, "This template cannot be sent by user id");
            }
            let promotions_today = promotions_on(inner, user_id, now);
            let Some(user) = user_mut(inner, user_id, now) else {
                return Answer::zalo(-201, "user_id is invalid");
            };
            if !user.follower {
                return Answer::zalo(-213, "User has not followed the OA");
            }
            if inner
                .opted_out
                .contains(&(user_id.to_string(), "template".to_string()))
            {
                return Answer::zalo(-244, "User has refused to receive this type of message");
            }
            if tag == 3 && promotions_today >= PROMOTIONS_PER_DAY {
                return Answer::zalo(-211, "Out of quota: one promotion message per user a day");
            }
            if tag == 3 {
                "template_promotion"
            } else {
                "template"
            }
        }
        None => {
            if !(phone.starts_with("84")
                && phone.len() >= 10
                && phone.bytes().all(|b| b.is_ascii_digit()))
            {
                return Answer::zalo(-201, "phone is invalid");
            }
            "zns"
        }
    };
    if inner.billing_empty {
        return Answer::zalo(-321, "The billing account is out of money");
    }
    let msg_id = next_id(inner);
    inner.messages.push(FakeMessage {
        kind: kind.into(),
        user_id: by_user.map(str::to_string),
        phone: by_user.is_none().then(|| phone.to_string()),
        message: request.clone(),
        message_id: msg_id.clone(),
        at: now,
    });
    Answer::ok(json!({
        "msg_id": msg_id,
        "sent_time": now.timestamp_millis().to_string(),
        "quota": { "dailyQuota": "500", "remainingQuota": "499" },
    }))
}

//! `POST /forms/{form}`: a registration from a landing page (seed 000) — JSON or
//! `application/x-www-form-urlencoded`; fields `name`, `phone`, `email`, `birthday`, anything
//! else a custom field. At least a phone or an email is required.
//!
//! The registration becomes a `zaloflow.form_submitted` inbox event, durably stored before the
//! answer, then processed like any other event (the contact is filled in, rules and campaigns
//! fire). A form exists when a campaign enters on it, a rule's `form_submitted` names it, or a
//! rule file declares it under `forms:`; any other name answers 404 (a typo must not collect
//! contacts no campaign will ever see). Answers (every one JSON, `message` in Vietnamese for
//! the customer on success):
//! - `201 {"ok":true,"contact_id":…,"repeat":false,"message":…}` — a first registration;
//! - `200 {"ok":true,"contact_id":…,"repeat":true,"message":…}` — the same contact registered
//!   here before and repeats are allowed (II.2: the event says `repeat: true`; a campaign with
//!   `repeat_registration: true` runs its first step again, at most once per
//!   `repeat_cooldown`; the contact stays one record);
//! - `200 {"ok":true,"contact_id":…,"repeat":true,"already_registered":true,"message":"Bạn đã
//!   đăng ký rồi…"}` — a repeat on a form whose campaigns do not allow repeats: nothing is
//!   stored (not the name, not the event, not the count) and nothing runs;
//! - `422 {"error":{"code":"invalid_form","message":…,"fields":{"phone":"…"}}}`;
//! - `404 not_found` for an unknown form; `400 invalid_body`; `413 too_large` over 64 KiB;
//!   `415` for another content type; `429` over the per-IP limit; `503` when storage is
//!   unavailable. Limits: docs/email-and-forms.md.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::public::{retry_after, ClientIp, Public};
use crate::contacts::{self, BIRTHDAY_FIELD};
use crate::store::NewInboxEvent;
use crate::zalo::event::{internal_body, EventKind};

/// A submitted field: its name and its text (or why it is not text).
pub type Pair = (String, Result<String, String>);

/// At most this many custom fields per registration.
pub const MAX_FIELDS: usize = 50;

/// A validated registration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Registration {
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub fields: BTreeMap<String, String>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn valid_form_name(form: &str) -> bool {
    (1..=64).contains(&form.len())
        && form
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[tracing::instrument(skip_all, fields(form = %form))]
pub async fn submit(
    State(p): State<Arc<Public>>,
    ip: ClientIp,
    Path(form): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(wait) = p.forms_limit.check(ip.bucket()) {
        metrics::counter!("zaloflow_forms_total", "outcome" => "rate_limited").increment(1);
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many registrations from this address; try again later",
        );
        if let Ok(v) = retry_after(wait).parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let policy = valid_form_name(&form)
        .then(|| p.app.rules.as_ref().and_then(|w| w.current().form(&form)))
        .flatten();
    let Some(policy) = policy else {
        metrics::counter!("zaloflow_forms_total", "outcome" => "unknown_form").increment(1);
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such form: no campaign or rule names it (declare it under `forms:` in a rule file)",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            metrics::counter!("zaloflow_forms_total", "outcome" => "too_large").increment(1);
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "the registration is larger than 64 KiB",
            );
        }
        Err(rejection) => {
            return error(
                rejection.status(),
                "invalid_body",
                "the body could not be read",
            )
        }
    };
    let pairs = match read_pairs(&headers, &body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let reg = match validate(pairs) {
        Ok(r) => r,
        Err(fields) => {
            metrics::counter!("zaloflow_forms_total", "outcome" => "invalid").increment(1);
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({"error": {
                    "code": "invalid_form",
                    "message": "some fields are not valid",
                    "fields": fields,
                }})),
            )
                .into_response();
        }
    };
    match register(&p, &form, reg, policy).await {
        Ok(Registered::AlreadyRegistered(contact_id)) => {
            metrics::counter!("zaloflow_forms_total", "outcome" => "already_registered")
                .increment(1);
            tracing::info!(contact = %contact_id, "form registration: already registered, nothing stored (II.2)");
            (
                StatusCode::OK,
                Json(json!({
                    "ok": true,
                    "contact_id": contact_id,
                    "repeat": true,
                    "already_registered": true,
                    "message": ALREADY_REGISTERED_VI,
                })),
            )
                .into_response()
        }
        Ok(Registered::Stored(contact_id, repeat)) => {
            let outcome = if repeat { "repeat" } else { "new" };
            metrics::counter!("zaloflow_forms_total", "outcome" => outcome).increment(1);
            tracing::info!(contact = %contact_id, repeat, "form registration");
            let (status, message) = if repeat {
                (StatusCode::OK, REPEAT_VI)
            } else {
                (StatusCode::CREATED, REGISTERED_VI)
            };
            (
                status,
                Json(json!({"ok": true, "contact_id": contact_id, "repeat": repeat, "message": message})),
            )
                .into_response()
        }
        Err(e) => {
            metrics::counter!("zaloflow_forms_total", "outcome" => "unavailable").increment(1);
            tracing::warn!(error = %e, "form registration not stored");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the registration could not be stored; try again",
            )
        }
    }
}

/// The body's `(name, value)` pairs, whatever its content type. Repeated urlencoded keys
/// (checkbox groups) are joined with ", ".
#[allow(clippy::result_large_err)]
fn read_pairs(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Pair>, Response> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let bad = |msg: &str| error(StatusCode::BAD_REQUEST, "invalid_body", msg);
    match ctype.as_str() {
        "application/json" => {
            let v: Value =
                serde_json::from_slice(body).map_err(|_| bad("the body is not valid JSON"))?;
            let Value::Object(map) = v else {
                return Err(bad("the body must be a JSON object"));
            };
            Ok(map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => Ok(s),
                        Value::Number(n) => Ok(n.to_string()),
                        Value::Bool(b) => Ok(b.to_string()),
                        _ => Err("must be text, a number or true/false".to_string()),
                    };
                    (k, v)
                })
                .collect())
        }
        "application/x-www-form-urlencoded" => {
            let raw: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|_| bad("the body is not valid form data"))?;
            let mut joined: Vec<(String, String)> = Vec::with_capacity(raw.len());
            for (k, v) in raw {
                match joined.iter_mut().find(|(x, _)| *x == k) {
                    Some((_, old)) if !v.trim().is_empty() => {
                        if !old.is_empty() {
                            old.push_str(", ");
                        }
                        old.push_str(v.trim());
                    }
                    Some(_) => {}
                    None => joined.push((k, v)),
                }
            }
            Ok(joined.into_iter().map(|(k, v)| (k, Ok(v))).collect())
        }
        _ => Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// Validates a registration; on failure, one message per field.
pub fn validate(pairs: Vec<Pair>) -> Result<Registration, BTreeMap<String, String>> {
    let mut reg = Registration::default();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in pairs {
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                errors.insert(key, e);
                continue;
            }
        };
        let k = key.trim().to_ascii_lowercase();
        let err_key = if ["name", "phone", "email", "birthday"].contains(&k.as_str()) {
            k.clone()
        } else {
            key.clone()
        };
        let result = match k.as_str() {
            "name" => contacts::parse_name(&value).map(|v| reg.name = v),
            "phone" => contacts::parse_phone(&value).map(|v| reg.phone = v),
            "email" => contacts::parse_email(&value).map(|v| reg.email = v),
            "birthday" => contacts::parse_birthday(&value).map(|v| {
                if let Some(v) = v {
                    reg.fields.insert(BIRTHDAY_FIELD.to_string(), v);
                }
            }),
            _ => match contacts::parse_field_name(&key) {
                Err(e) => Err(e),
                Ok(name) => contacts::parse_field_value(&value).map(|v| {
                    if let Some(v) = v {
                        reg.fields.insert(name, v);
                    }
                }),
            },
        };
        if let Err(e) = result {
            errors.insert(err_key, e.to_string());
        }
    }
    if reg.fields.len() > MAX_FIELDS {
        errors.insert(
            "fields".into(),
            format!("at most {MAX_FIELDS} custom fields"),
        );
    }
    if reg.phone.is_none()
        && reg.email.is_none()
        && !errors.contains_key("phone")
        && !errors.contains_key("email")
    {
        let msg = "a phone number or an email address is required".to_string();
        errors.insert("phone".into(), msg.clone());
        errors.insert("email".into(), msg);
    }
    if errors.is_empty() {
        Ok(reg)
    } else {
        Err(errors)
    }
}

/// What the customer reads after a first registration.
pub const REGISTERED_VI: &str = "Đăng ký thành công. Cảm ơn bạn!";
/// What the customer reads after a repeat registration that is allowed.
pub const REPEAT_VI: &str = "Cảm ơn bạn đã đăng ký lại!";
/// What the customer reads after a repeat on a form that does not allow repeats (II.2).
pub const ALREADY_REGISTERED_VI: &str =
    "Bạn đã đăng ký rồi, thông tin của bạn đã có trong danh sách. Cảm ơn bạn!";

/// What became of a registration.
enum Registered {
    /// Stored (the contact id; whether it was a repeat).
    Stored(String, bool),
    /// A repeat the form does not allow: nothing stored (II.2).
    AlreadyRegistered(String),
}

/// Finds or names the contact, counts the registration and stores its event — unless it is a
/// repeat the form refuses, which stores nothing.
async fn register(
    p: &Public,
    form: &str,
    reg: Registration,
    policy: crate::rules::FormPolicy,
) -> Result<Registered, Box<dyn std::error::Error + Send + Sync>> {
    let store = &p.app.store;
    let phones: Vec<String> = reg.phone.iter().cloned().collect();
    let emails: Vec<String> = reg.email.iter().cloned().collect();
    let keys = store.find_contact_keys(&phones, &emails).await?;
    let contact_id = contacts::contact_id_for(&keys, reg.phone.as_deref(), reg.email.as_deref())
        .ok_or("validated registrations have a phone or an email")?;
    if policy.refuse_repeats && store.form_submission_count(form, &contact_id).await? > 0 {
        return Ok(Registered::AlreadyRegistered(contact_id));
    }
    let now = p.app.clock.now();
    let count = store.record_form_submission(form, &contact_id, now).await?;
    let repeat = count > 1;
    if repeat && policy.refuse_repeats {
        // Two first registrations at once: the later one is the duplicate.
        store.undo_form_submission(form, &contact_id).await?;
        return Ok(Registered::AlreadyRegistered(contact_id));
    }
    let kind = EventKind::FormSubmitted {
        contact_id: contact_id.clone(),
        form: form.to_string(),
        name: reg.name,
        phone: reg.phone,
        email: reg.email,
        fields: reg.fields,
        repeat,
    };
    let (name, body) = internal_body(&kind, now).ok_or("form events have a body")?;
    let event = NewInboxEvent {
        // The n-th registration of this contact on this form: a retry after a failure (which
        // took its count back) gets the same key, so it is never stored twice.
        dedupe_key: format!("form:{form}:{contact_id}:{count}"),
        event_name: name.to_string(),
        user_id: contact_id.clone(),
        priority: 0,
        body,
        event_ts: Some(now),
        received_at: now,
    };
    if let Err(e) = p.app.intake.submit(event).await {
        if let Err(undo) = store.undo_form_submission(form, &contact_id).await {
            tracing::warn!(error = %undo, "could not take back a registration count");
        }
        return Err(e.into());
    }
    Ok(Registered::Stored(contact_id, repeat))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<Pair> {
        v.iter()
            .map(|(k, v)| (k.to_string(), Ok(v.to_string())))
            .collect()
    }

    #[test]
    fn a_good_registration() {
        let r = validate(pairs(&[
            ("name", " Lan "),
            ("Phone", "0912 345 678"),
            ("email", ""),
            ("birthday", "30/10/1999"),
            ("gift", "Áo thun"),
            ("utm_source", "facebook"),
        ]))
        .unwrap();
        assert_eq!(r.name.as_deref(), Some("Lan"));
        assert_eq!(r.phone.as_deref(), Some("84912345678"));
        assert_eq!(r.email, None);
        assert_eq!(r.fields["birthday"], "1999-10-30");
        assert_eq!(r.fields["gift"], "Áo thun");
    }

    #[test]
    fn problems_are_listed_per_field() {
        let e = validate(pairs(&[
            ("phone", "12"),
            ("email", "x@"),
            ("tags", "vip_customer"),
        ]))
        .unwrap_err();
        assert!(e["phone"].contains("phone"), "{e:?}");
        assert!(e["email"].contains("email"), "{e:?}");
        assert!(e["tags"].contains("reserved"), "{e:?}");
        let e = validate(pairs(&[("name", "Lan")])).unwrap_err();
        assert!(e["phone"].contains("required") && e["email"].contains("required"));
        assert!(valid_form_name("spring-sale_2025"));
        assert!(!valid_form_name("../x") && !valid_form_name(""));
    }
}

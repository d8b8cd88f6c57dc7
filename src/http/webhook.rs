//! `POST /webhooks/zalo` (PROTOCOL.md §1): verify the mac over the raw bytes, store durably,
//! answer 200. Only the top-level `timestamp` string (part of what is signed) is read before
//! the mac is checked.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::inbox::IntakeError;
use crate::store::{Inserted, NewInboxEvent};
use crate::zalo::{event, signature};

pub const SIGNATURE_HEADER: &str = "x-zevent-signature";

/// Why a delivery was not stored; each maps to one status and one metric label.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook keys are not configured (ZALO_APP_ID, ZALO_OA_SECRET_KEY)")]
    NotConfigured,
    #[error("{0}")]
    Signature(#[from] signature::SignatureError),
    #[error("{0}")]
    BadRequest(String),
    #[error("storage unavailable")]
    Unavailable(#[from] IntakeError),
}

impl WebhookError {
    fn status(&self) -> StatusCode {
        match self {
            WebhookError::NotConfigured | WebhookError::Unavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            WebhookError::Signature(_) => StatusCode::UNAUTHORIZED,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
    fn label(&self) -> &'static str {
        match self {
            WebhookError::NotConfigured => "not_configured",
            WebhookError::Signature(_) => "bad_signature",
            WebhookError::BadRequest(_) => "bad_request",
            WebhookError::Unavailable(_) => "unavailable",
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        metrics::counter!("zaloflow_webhooks_total", "outcome" => self.label()).increment(1);
        match &self {
            WebhookError::Unavailable(e) => {
                tracing::warn!(error = %e, "webhook refused: storage unavailable")
            }
            other => tracing::info!(reason = %other, "webhook refused"),
        }
        (self.status(), Json(json!({"error": self.to_string()}))).into_response()
    }
}

#[derive(Deserialize)]
struct Stamp<'a> {
    #[serde(borrow)]
    timestamp: Option<StampValue<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StampValue<'a> {
    Str(&'a str),
    Owned(String),
    Num(u64),
}

impl StampValue<'_> {
    fn text(&self) -> String {
        match self {
            StampValue::Str(s) => s.to_string(),
            StampValue::Owned(s) => s.clone(),
            StampValue::Num(n) => n.to_string(),
        }
    }
}

pub async fn receive(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebhookError> {
    let (app_id, key) = st
        .config
        .webhook_keys()
        .ok_or(WebhookError::NotConfigured)?;
    let header = headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes());
    if header.is_none() {
        return Err(signature::SignatureError::Missing.into());
    }
    let stamp: Stamp = serde_json::from_slice(&body)
        .map_err(|e| WebhookError::BadRequest(format!("body is not JSON: {e}")))?;
    let ts = stamp.timestamp.map(|t| t.text()).unwrap_or_default();
    signature::verify(app_id, key.expose(), &body, &ts, header)?;

    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| WebhookError::BadRequest(format!("body is not JSON: {e}")))?;
    let ev = event::normalise(&value).map_err(|e| WebhookError::BadRequest(e.to_string()))?;
    if event::is_internal_name(&ev.name) {
        // Form registrations and email opens/clicks enter the inbox only through our own routes.
        return Err(WebhookError::BadRequest(format!(
            "event_name {:?} is reserved",
            ev.name
        )));
    }
    let dedupe_key = event::dedupe_key(&ev, &value);
    let user_id = ev.user_id().unwrap_or_default().to_string();
    // Without a copy when the request's buffer is this body's alone.
    let body = String::from_utf8(Vec::from(body))
        .map_err(|_| WebhookError::BadRequest("body is not UTF-8".into()))?;
    let outcome = st
        .intake
        .submit(NewInboxEvent {
            dedupe_key,
            event_name: ev.name.clone(),
            user_id: user_id.clone(),
            priority: st.vip.priority(&user_id),
            body,
            event_ts: ev.timestamp_ms,
            received_at: st.clock.now(),
        })
        .await?;
    let (label, answer) = match outcome {
        Inserted::Stored => ("stored", r#"{"ok":true,"outcome":"stored"}"#),
        Inserted::Duplicate => ("duplicate", r#"{"ok":true,"outcome":"duplicate"}"#),
    };
    metrics::counter!("zaloflow_webhooks_total", "outcome" => label).increment(1);
    tracing::info!(event = %ev.name, user = %user_id, outcome = label, "webhook");
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        answer,
    )
        .into_response())
}

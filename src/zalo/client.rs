//! The Zalo OA Open API client (and ZNS, which shares its tokens and envelope).
//!
//! Every answer is `{"error","message","data"}`, usually inside HTTP 200: a non-zero `error` is a
//! failure whatever the status. On -216/-220 (access token invalid/expired) the call refreshes the
//! token once through the [`TokenManager`] and is retried once.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::token::{as_i64, truncate, TokenError, TokenManager};
pub use zaloflow_core::job::ZaloKind;

/// Why a Zalo call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ZaloError {
    /// A non-zero `error` in the envelope (usually inside HTTP 200).
    #[error("Zalo error {code}: {message}")]
    Api { code: i64, message: String },
    /// A non-2xx HTTP status without a Zalo envelope.
    #[error("Zalo answered HTTP {status}: {body}")]
    Http {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    /// No answer: connection error or timeout.
    #[error("Zalo unreachable{}: {message}", if *.timeout { " (timeout)" } else { "" })]
    Transport { message: String, timeout: bool },
    /// An answer that is not the expected JSON.
    #[error("unexpected answer from Zalo: {message}")]
    Decode { message: String },
    /// No usable access token.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl ZaloError {
    /// The Zalo error code, when there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ZaloError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn is_token_rejection(&self) -> bool {
        matches!(self.code(), Some(-216 | -220))
    }
}

/// A message's content: `text`, or an `attachment` (image / template / buttons), or both.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OutgoingMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Value>,
}

/// What Zalo answered for an accepted message.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub message_id: Option<String>,
    pub user_id: Option<String>,
    /// the whole `data` object (sent_time, quota…)
    pub data: Value,
}

/// A follower's profile (`/v3.0/oa/user/detail`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserDetail {
    pub user_id: String,
    pub display_name: Option<String>,
    pub avatar: Option<String>,
    pub is_follower: Option<bool>,
    /// from `user_last_interaction_date` ("DD/MM/YYYY", OA time zone)
    pub last_interaction: Option<NaiveDate>,
    pub tags: Vec<String>,
    /// the whole `data` object
    pub raw: Value,
}

/// One page of `/v3.0/oa/user/getlist`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserPage {
    /// `data.total`: how many users the list has (all pages)
    pub total: Option<u64>,
    /// `data.users[].user_id`, in Zalo's order
    pub user_ids: Vec<String>,
}

/// A ZNS template message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZnsRequest {
    /// international form without `+`: `84…` (empty when sent by user id)
    pub phone: String,
    /// A template message (ZBS) by Zalo user id instead of phone.
    #[serde(default)]
    pub user_id: Option<String>,
    pub template_id: String,
    pub template_data: Value,
    pub tracking_id: String,
    /// sends `"mode":"development"` (template tests)
    #[serde(default)]
    pub development: bool,
}

/// The Zalo OA Open API + ZNS client. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ZaloClient {
    http: reqwest::Client,
    api_base: String,
    zns_base: String,
    tokens: Arc<TokenManager>,
    /// The outbox's rate limiter, for the second call after a token refresh (the first one
    /// went through it in the sender).
    retry_limiter: std::sync::OnceLock<super::limiter::Limiter>,
}

enum Call<'a> {
    Get { query: &'a [(&'a str, String)] },
    Post { body: &'a Value },
}

impl ZaloClient {
    /// `http` should come from [`super::token::http_client`] (connect + total timeouts).
    /// `api_base` e.g. `https://openapi.zalo.me`, `zns_base` e.g. `https://business.openapi.zalo.me`.
    pub fn new(
        http: reqwest::Client,
        api_base: impl Into<String>,
        zns_base: impl Into<String>,
        tokens: Arc<TokenManager>,
    ) -> Self {
        ZaloClient {
            http,
            api_base: api_base.into().trim_end_matches('/').to_string(),
            zns_base: zns_base.into().trim_end_matches('/').to_string(),
            tokens,
            retry_limiter: std::sync::OnceLock::new(),
        }
    }

    /// Makes the call repeated after a token refresh wait for `limiter` too, so that no
    /// second of OA calls goes over the rate (set once, by the outbox sender's builder).
    pub fn limit_retries(&self, limiter: super::limiter::Limiter) {
        let _ = self.retry_limiter.set(limiter);
    }

    pub fn tokens(&self) -> &Arc<TokenManager> {
        &self.tokens
    }

    /// A customer-service text message.
    pub async fn send_text(&self, user_id: &str, text: &str) -> Result<SentMessage, ZaloError> {
        let message = OutgoingMessage {
            text: Some(text.to_string()),
            attachment: None,
        };
        self.send_message(ZaloKind::Cs, user_id, &message).await
    }

    /// A message of any kind (cs / promotion / transaction) with text and/or an attachment.
    #[tracing::instrument(skip_all, fields(kind = ?kind, user_id = %user_id))]
    pub async fn send_message(
        &self,
        kind: ZaloKind,
        user_id: &str,
        message: &OutgoingMessage,
    ) -> Result<SentMessage, ZaloError> {
        let body = json!({ "recipient": { "user_id": user_id }, "message": message });
        let data = self
            .call(&self.api_base, kind.path(), Call::Post { body: &body })
            .await?;
        Ok(SentMessage {
            message_id: data.get("message_id").and_then(id_string),
            user_id: data.get("user_id").and_then(id_string),
            data,
        })
    }

    /// Adds a follower to a tag (creating the tag if needed).
    pub async fn tag_follower(&self, user_id: &str, tag: &str) -> Result<Value, ZaloError> {
        let body = json!({ "user_id": user_id, "tag_name": tag });
        self.call(
            &self.api_base,
            "/v2.0/oa/tag/tagfollower",
            Call::Post { body: &body },
        )
        .await
    }

    /// Removes a follower from a tag.
    pub async fn untag_follower(&self, user_id: &str, tag: &str) -> Result<Value, ZaloError> {
        let body = json!({ "user_id": user_id, "tag_name": tag });
        self.call(
            &self.api_base,
            "/v2.0/oa/tag/rmfollowerfromtag",
            Call::Post { body: &body },
        )
        .await
    }

    /// A follower's profile.
    pub async fn user_detail(&self, user_id: &str) -> Result<UserDetail, ZaloError> {
        let query = [("data", json!({ "user_id": user_id }).to_string())];
        let data = self
            .call(
                &self.api_base,
                "/v3.0/oa/user/detail",
                Call::Get { query: &query },
            )
            .await?;
        Ok(UserDetail {
            user_id: data
                .get("user_id")
                .and_then(id_string)
                .unwrap_or_else(|| user_id.to_string()),
            display_name: data
                .get("display_name")
                .and_then(Value::as_str)
                .map(String::from),
            avatar: data.get("avatar").and_then(Value::as_str).map(String::from),
            is_follower: data.get("user_is_follower").and_then(as_bool),
            last_interaction: data
                .get("user_last_interaction_date")
                .and_then(Value::as_str)
                .and_then(parse_zalo_date),
            tags: data
                .pointer("/tags_and_notes_info/tag_names")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            raw: data,
        })
    }

    /// One page of the OA's users (`/v3.0/oa/user/getlist`, PROTOCOL.md section 5): followers
    /// (`is_follower: true`) or users who interacted without following (`false`). Zalo serves at
    /// most 50 a page (a larger `count` is refused with -201).
    pub async fn user_page(
        &self,
        offset: u64,
        count: u64,
        is_follower: bool,
    ) -> Result<UserPage, ZaloError> {
        let data =
            json!({ "offset": offset, "count": count, "is_follower": is_follower.to_string() });
        let query = [("data", data.to_string())];
        let data = self
            .call(
                &self.api_base,
                "/v3.0/oa/user/getlist",
                Call::Get { query: &query },
            )
            .await?;
        let user_ids = data
            .get("users")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.get("user_id").and_then(id_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(UserPage {
            total: data.get("total").and_then(as_i64).map(|t| t.max(0) as u64),
            user_ids,
        })
    }

    /// The OA's message quota (`data` as Zalo answers it).
    pub async fn quota(&self) -> Result<Value, ZaloError> {
        self.call(
            &self.api_base,
            "/v3.0/oa/quota/message",
            Call::Post { body: &json!({}) },
        )
        .await
    }

    /// A ZNS template message by phone number; answers `data.msg_id`.
    #[tracing::instrument(skip_all, fields(template_id = %req.template_id, tracking_id = %req.tracking_id))]
    pub async fn send_zns(&self, req: &ZnsRequest) -> Result<SentMessage, ZaloError> {
        let mut body = json!({
            "template_id": req.template_id,
            "template_data": req.template_data,
            "tracking_id": req.tracking_id,
        });
        match &req.user_id {
            Some(user_id) => body["user_id"] = json!(user_id),
            None => body["phone"] = json!(req.phone),
        }
        if req.development {
            body["mode"] = json!("development");
        }
        let data = self
            .call(
                &self.zns_base,
                "/message/template",
                Call::Post { body: &body },
            )
            .await?;
        Ok(SentMessage {
            message_id: data.get("msg_id").and_then(id_string),
            user_id: None,
            data,
        })
    }

    /// One logical call: token, request, and on -216/-220 one refresh and one retry.
    async fn call(&self, base: &str, path: &str, call: Call<'_>) -> Result<Value, ZaloError> {
        let token = self.tokens.access_token().await?;
        match self.call_once(base, path, &call, &token).await {
            Err(e) if e.is_token_rejection() => {
                tracing::info!(code = ?e.code(), "Zalo rejected the access token; refreshing");
                let fresh = self.tokens.refresh_replacing(&token).await?;
                if let Some(l) = self.retry_limiter.get() {
                    l.pace().await;
                }
                self.call_once(base, path, &call, &fresh).await
            }
            other => other,
        }
    }

    async fn call_once(
        &self,
        base: &str,
        path: &str,
        call: &Call<'_>,
        token: &str,
    ) -> Result<Value, ZaloError> {
        let url = format!("{base}{path}");
        let request = match call {
            Call::Get { query } => self.http.get(url).query(query),
            Call::Post { body } => self.http.post(url).json(body),
        };
        let response = request
            .header("access_token", token)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let text = response.text().await.map_err(transport_error)?;
        parse_envelope(status.as_u16(), &text, retry_after)
    }
}

fn transport_error(e: reqwest::Error) -> ZaloError {
    ZaloError::Transport {
        timeout: e.is_timeout(),
        message: e.without_url().to_string(),
    }
}

/// `Retry-After` in seconds (or an HTTP date), clamped to one hour.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let secs = match value.parse::<u64>() {
        Ok(s) => s,
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            (at.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64
        }
    };
    Some(Duration::from_secs(secs.min(3600)))
}

/// Reads Zalo's envelope: `Ok(data)` when `error` is 0, the error otherwise, whatever the status.
pub fn parse_envelope(
    status: u16,
    text: &str,
    retry_after: Option<Duration>,
) -> Result<Value, ZaloError> {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(as_i64);
    match (code, parsed) {
        (Some(code), Some(body)) if code != 0 => Err(ZaloError::Api {
            code,
            message: body
                .get("message")
                .and_then(Value::as_str)
                .map(|m| truncate(m, 200))
                .unwrap_or_default(),
        }),
        _ if !(200..300).contains(&status) => Err(ZaloError::Http {
            status,
            body: truncate(text, 200),
            retry_after,
        }),
        (Some(_), Some(mut body)) => {
            Ok(body.get_mut("data").map(Value::take).unwrap_or(Value::Null))
        }
        _ => Err(ZaloError::Decode {
            message: format!(
                "no envelope in HTTP {status} answer: {}",
                truncate(text, 200)
            ),
        }),
    }
}

/// "DD/MM/YYYY" (Zalo's date format) as a date.
pub fn parse_zalo_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.trim(), "%d/%m/%Y").ok()
}

/// Ids are decimal strings that overflow 2^53: keep them as strings, whatever JSON type came.
fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_errors_inside_http_200() {
        let ok = parse_envelope(
            200,
            r#"{"error":0,"message":"Success","data":{"message_id":"1"}}"#,
            None,
        );
        assert_eq!(ok, Ok(json!({"message_id":"1"})));
        let err = parse_envelope(
            200,
            r#"{"error":-230,"message":"User has not interacted"}"#,
            None,
        );
        assert_eq!(
            err,
            Err(ZaloError::Api {
                code: -230,
                message: "User has not interacted".into()
            })
        );
        let as_string = parse_envelope(200, r#"{"error":"-32","message":"rate"}"#, None);
        assert_eq!(as_string.unwrap_err().code(), Some(-32));
        let http = parse_envelope(502, "<html>bad gateway</html>", None);
        assert!(matches!(http, Err(ZaloError::Http { status: 502, .. })));
        let decode = parse_envelope(200, "not json", None);
        assert!(matches!(decode, Err(ZaloError::Decode { .. })));
    }

    #[test]
    fn dates_ids_and_kinds() {
        assert_eq!(
            parse_zalo_date("05/03/2024"),
            NaiveDate::from_ymd_opt(2024, 3, 5)
        );
        assert_eq!(parse_zalo_date("2024-03-05"), None);
        assert_eq!(id_string(&json!(1234)), Some("1234".into()));
        assert_eq!(
            serde_json::to_value(ZaloKind::Promotion).unwrap(),
            json!("promotion")
        );
        assert_eq!(ZaloKind::Transaction.path(), "/v3.0/oa/message/transaction");
    }

    #[test]
    fn retry_after_is_clamped() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(reqwest::header::RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}

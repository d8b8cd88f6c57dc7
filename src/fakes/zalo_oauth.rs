//! The fake Zalo's side of connecting an OA (PROTOCOL.md §5): the permission page
//! (`GET /v4/oa/permission`), authorization codes checked with PKCE at the token endpoint
//! (single use, ~10 minutes), and `permission_revoked` sent as a signed webhook. Wired into
//! [`super::zalo::FakeZalo`], whose state holds a [`ConnectState`].

use std::collections::{BTreeMap, HashMap};

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::http::esc;

pub const PERMISSION_PATH: &str = "/v4/oa/permission";

/// An authorization code handed out by the permission page.
#[derive(Debug, Clone)]
struct Grant {
    challenge: String,
    expires_at: DateTime<Utc>,
}

/// What the fake knows about connecting.
#[derive(Debug, Clone)]
pub struct ConnectState {
    /// The OA the shop owner approves for.
    pub oa_id: String,
    /// Redirect at once instead of showing the page with its button.
    pub auto_approve: bool,
    /// How long a code may wait for its exchange.
    pub code_ttl: chrono::Duration,
    /// The permission was taken back (tokens refused until a new code is exchanged).
    pub revoked: bool,
    /// Codes exchanged successfully.
    pub exchanged: u32,
    codes: HashMap<String, Grant>,
}

impl Default for ConnectState {
    fn default() -> Self {
        ConnectState {
            oa_id: "388613280878808645".into(),
            auto_approve: false,
            code_ttl: chrono::Duration::minutes(10),
            revoked: false,
            exchanged: 0,
            codes: HashMap::new(),
        }
    }
}

/// A refusal at the token endpoint: Zalo's error code, name and description.
pub type Refusal = (i64, &'static str, &'static str);

impl ConnectState {
    /// A new code for this challenge (what approving on the permission page does).
    pub fn issue_code(&mut self, challenge: &str, now: DateTime<Utc>) -> String {
        let code = format!("fake-code-{:016x}", rand::random::<u64>());
        self.codes.insert(
            code.clone(),
            Grant {
                challenge: challenge.to_string(),
                expires_at: now + self.code_ttl,
            },
        );
        code
    }

    /// Checks `grant_type=authorization_code`: the code is known, unexpired and unused (it is
    /// gone after this call, whatever the outcome), and `base64url(sha256(code_verifier))`
    /// equals its challenge.
    pub fn take_code(
        &mut self,
        form: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let code = form.get("code").map(String::as_str).unwrap_or("");
        let Some(grant) = self.codes.remove(code) else {
            return Err((
                -14019,
                "Invalid authorization code",
                "the code is invalid or was already used",
            ));
        };
        if grant.expires_at <= now {
            return Err((-14020, "Authorization code expired", "the code has expired"));
        }
        let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
        if verifier.is_empty() || crate::zalo::connect::code_challenge(verifier) != grant.challenge
        {
            return Err((
                -14021,
                "Invalid code verifier",
                "code_verifier does not match code_challenge",
            ));
        }
        self.revoked = false;
        self.exchanged += 1;
        Ok(())
    }
}

/// `GET /v4/oa/permission?app_id&redirect_uri&code_challenge&state`: a page with an approve
/// button (or, with `auto_approve`, the redirect itself) back to
/// `redirect_uri?code=…&oa_id=…&state=…`.
pub fn permission_page(
    st: &mut ConnectState,
    app_id: &str,
    uri: &Uri,
    now: DateTime<Utc>,
) -> Response {
    let q: BTreeMap<String, String> = axum::extract::Query::try_from_uri(uri)
        .map(|q: axum::extract::Query<BTreeMap<String, String>>| q.0)
        .unwrap_or_default();
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!(
                "<!doctype html><title>Zalo</title><p id=error>{}</p>",
                esc(why)
            ),
        )
            .into_response()
    };
    if get("app_id") != app_id {
        return refuse("Ứng dụng không tồn tại (app_id)");
    }
    let redirect = get("redirect_uri");
    if !(redirect.starts_with("http://") || redirect.starts_with("https://")) {
        return refuse("redirect_uri không hợp lệ");
    }
    if get("code_challenge").is_empty() {
        return refuse("Thiếu code_challenge");
    }
    let code = st.issue_code(get("code_challenge"), now);
    let back = serde_urlencoded::to_string([
        ("code", code.as_str()),
        ("oa_id", st.oa_id.as_str()),
        ("state", get("state")),
    ])
    .expect("strings encode");
    let sep = if redirect.contains('?') { '&' } else { '?' };
    if st.auto_approve {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, format!("{redirect}{sep}{back}"))],
        )
            .into_response();
    }
    let html = format!(
        r#"<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Zalo — Cấp quyền</title></head>
<body>
<h1>Cấp quyền cho ứng dụng</h1>
<p>Ứng dụng {app} muốn quản lý Official Account {oa}.</p>
<form method="get" action="{redirect}">
<input type="hidden" name="code" value="{code}">
<input type="hidden" name="oa_id" value="{oa}">
<input type="hidden" name="state" value="{state}">
<button id="approve" type="submit">Đồng ý</button>
</form>
</body></html>"#,
        app = esc(app_id),
        oa = esc(&st.oa_id),
        redirect = esc(redirect),
        code = esc(&code),
        state = esc(get("state")),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

/// Sends `permission_revoked` for `oa_id` to `webhook_url`, signed as Zalo signs webhooks with
/// `app_id` and the OA secret key; answers the HTTP status.
pub async fn send_revoked(
    webhook_url: &str,
    app_id: &str,
    oa_secret_key: &str,
    oa_id: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<u16> {
    let ts = now.timestamp_millis().to_string();
    let body = serde_json::json!({
        "app_id": app_id,
        "oa_id": oa_id,
        "event_name": "permission_revoked",
        "timestamp": ts,
    })
    .to_string();
    let signature =
        crate::zalo::signature::header_value(app_id, body.as_bytes(), &ts, oa_secret_key);
    let r = reqwest::Client::new()
        .post(webhook_url)
        .header("X-ZEvent-Signature", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

//! `/admin/zalo/connect`: connect the OA from the browser (Zalo OAuth v4 with PKCE, PROTOCOL.md
//! §5) and see the connection's state, in words a shop owner reads (docs/connect-oa.md).
//!
//! Access as for the agents' board: the admin bearer token, or a session cookie made from it
//! (`?token=…` once, or the login form), HttpOnly and SameSite=Lax, holding an HMAC of the
//! token. The connect button posts to `/start`, which keeps a new flow server-side (the state and a
//! browser binding, both hashed, the code verifier, an expiry of 10 minutes), sets the binding
//! in a cookie of its own and sends the browser to Zalo's permission page. Zalo sends it back
//! to `/callback?code=…&oa_id=…&state=…`: the flow is taken (once), its binding must be this
//! browser's and not expired, then the code and verifier are exchanged and the pair is stored
//! under the token refresh lease. Anything wrong answers a page saying what, and stores nothing.
//! The page speaks the staff's language (`ZALOFLOW_LANG`, `locales/connect.yml`).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;

use super::board::{cookies, ct_eq, same_origin, secure, see_other};
use super::{esc, AppState};
use crate::i18n::{tr, words, Lang};
use crate::store::{OaConnection, OauthState};
use crate::zalo::connect::{self as oauth, CALLBACK_PATH, FLOW_TTL_MS};
use crate::zalo::token::{self, TokenConfig, UNKNOWN_EXPIRY_MS};

pub const PAGE: &str = "/admin/zalo/connect";
pub const SESSION_COOKIE: &str = "zf_connect";
/// The browser binding of a flow in progress.
pub const FLOW_COOKIE: &str = "zf_oauth";
const COOKIE_PATH: &str = "/admin/zalo";
const SESSION_SECONDS: i64 = 12 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PAGE, get(show))
        .route("/admin/zalo/connect/login", post(login))
        .route("/admin/zalo/connect/start", post(start))
        .route(CALLBACK_PATH, get(callback))
}

/// The cookie value of a connect-page session: HMAC-SHA256 of a fixed label under the token.
pub fn session_value(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(b"zaloflow connect session v1");
    hex::encode(mac.finalize().into_bytes())
}

enum Access {
    Granted,
    Denied,
    Disabled,
}

fn access(st: &AppState, headers: &HeaderMap) -> Access {
    let Some(token) = st.config.admin_token.as_ref() else {
        return Access::Disabled;
    };
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| ct_eq(b, token.expose())) {
        return Access::Granted;
    }
    match cookies(headers).get(SESSION_COOKIE) {
        Some(c) if ct_eq(c, &session_value(token.expose())) => Access::Granted,
        _ => Access::Denied,
    }
}

fn session_cookie(st: &AppState, token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path={COOKIE_PATH}; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Lax{}",
        session_value(token),
        secure(st)
    )
}

fn flow_cookie(st: &AppState, value: &str, max_age: i64) -> String {
    format!(
        "{FLOW_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        secure(st)
    )
}

/// The origin (scheme://host[:port]) of a URL, for the page's `form-action`.
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => String::new(),
    }
}

/// The language of the page (`ZALOFLOW_LANG`; words in `locales/connect.yml`).
fn lang(st: &AppState) -> Lang {
    st.config.lang
}

/// `key` in the page's language.
fn t(st: &AppState, key: &str) -> String {
    tr(lang(st), key).into_owned()
}

/// `key` in the page's language with its `%{name}`s filled.
fn w(st: &AppState, key: &str, args: &[(&str, String)]) -> String {
    words(lang(st), key, args)
}

/// The connect button's words, as the messages that name it quote them.
fn button_args(st: &AppState) -> [(&'static str, String); 1] {
    [("button", t(st, "connect.button"))]
}

fn page(st: &AppState, status: StatusCode, title: &str, body: &str) -> Response {
    // The connect form's answer redirects to Zalo: form-action allows that origin too.
    super::board::html_page(
        lang(st),
        status,
        title,
        "\ndl{display:grid;grid-template-columns:max-content 1fr;gap:.35rem .8rem;margin:.4rem 0}\ndt{color:#475467} dd{margin:0;overflow-wrap:anywhere}\ncode{overflow-wrap:anywhere}\n",
        body,
        &origin(&st.config.zalo_oauth_base),
    )
}

/// A page that says what went wrong and links back to the connect page.
fn problem(st: &AppState, status: StatusCode, message: &str) -> Response {
    let title = t(st, "connect.title");
    page(
        st,
        status,
        &title,
        &format!(
            "<main class=narrow><h1>{title}</h1><p class=\"flash bad\" id=problem>{}</p><p>{} <a href=\"{PAGE}\">{}</a> {}</p></main>",
            esc(message),
            esc(&t(st, "connect.nothing_stored")),
            esc(&t(st, "connect.back")),
            esc(&w(st, "connect.try_again", &button_args(st))),
            title = esc(&title),
        ),
    )
}

fn disabled(st: &AppState) -> Response {
    let title = t(st, "connect.off_title");
    let off = esc(&t(st, "connect.off")).replace("%{var}", "<code>ZALOFLOW_ADMIN_TOKEN</code>");
    page(
        st,
        StatusCode::FORBIDDEN,
        &title,
        &format!(
            "<main class=narrow><h1>{title}</h1><p>{off}</p></main>",
            title = esc(&title)
        ),
    )
}

fn login_page(st: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<p class=\"flash bad\">{}</p>", esc(e)))
        .unwrap_or_default();
    page(
        st,
        status,
        &t(st, "connect.login_title"),
        &format!(
            r#"<main class=narrow>
<h1>{title}</h1>
{err}
<form method="post" action="/admin/zalo/connect/login" class="login">
<label for="token">{label}</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button>
</form>
</main>"#,
            title = esc(&t(st, "connect.title")),
            label = esc(&t(st, "connect.token_label")),
            submit = esc(&t(st, "connect.sign_in")),
        ),
    )
}

// --- the page ---

#[derive(Deserialize)]
pub struct ShowQuery {
    token: Option<String>,
    msg: Option<String>,
}

async fn show(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ShowQuery>,
) -> Response {
    if let Some(given) = q.token.as_deref() {
        let Some(token) = st.config.admin_token.as_ref() else {
            return disabled(&st);
        };
        return if ct_eq(given, token.expose()) {
            see_other(PAGE, &[session_cookie(&st, token.expose())])
        } else {
            login_page(
                &st,
                StatusCode::UNAUTHORIZED,
                Some(&t(&st, "connect.wrong_token")),
            )
        };
    }
    match access(&st, &headers) {
        Access::Granted => {}
        Access::Denied => return login_page(&st, StatusCode::UNAUTHORIZED, None),
        Access::Disabled => return disabled(&st),
    }
    let (conn, tokens, waiting) = match read_state(&st).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, "connect page: storage unavailable");
            return problem(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                &t(&st, "connect.db_unreadable"),
            );
        }
    };
    let flash = match q.msg.as_deref() {
        Some("connected") => format!(
            "<p class=flash id=flash>{}</p>",
            esc(&w(
                &st,
                "connect.connected_flash",
                &[("oa", conn.oa_id.clone().unwrap_or_default())]
            ))
        ),
        _ => String::new(),
    };
    page(
        &st,
        StatusCode::OK,
        &t(&st, "connect.title"),
        &status_html(&st, &conn, tokens.as_ref(), waiting, &flash),
    )
}

async fn read_state(
    st: &AppState,
) -> anyhow::Result<(OaConnection, Option<token::TokenPair>, i64)> {
    let conn = st.store.oa_connection().await?;
    let tokens = st.store.load_tokens().await?;
    let waiting = st
        .store
        .job_counts()
        .await?
        .into_iter()
        .filter(|(channel, status, _)| channel == "zalo" && status == "pending")
        .map(|(_, _, n)| n)
        .sum();
    Ok((conn, tokens, waiting))
}

fn when(st: &AppState, ms: i64) -> String {
    crate::clock::to_utc(ms)
        .with_timezone(&st.config.tz)
        .format(&t(st, "connect.at"))
        .to_string()
}

fn status_html(
    st: &AppState,
    conn: &OaConnection,
    tokens: Option<&token::TokenPair>,
    waiting: i64,
    flash: &str,
) -> String {
    let now = st.clock.now();
    let env_tokens =
        st.config.zalo_access_token.is_some() || st.config.zalo_refresh_token.is_some();
    // Every text below is escaped where it lands; the markup the words name (a setting in
    // <code>) is put in after.
    let code = |vars: &[&str]| {
        vars.iter()
            .map(|v| format!("<code>{v}</code>"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let state = if let Some(at) = conn.revoked_at {
        let why = match conn.revoked_reason.as_deref() {
            Some(crate::outbox::oa::REFRESH_REFUSED) => t(st, "connect.refresh_refused"),
            _ => t(st, "connect.revoked"),
        };
        format!(
            "<span class=bad>{}</span> {}",
            esc(&t(st, "connect.needs_reconnect")),
            esc(&w(
                st,
                "connect.paused",
                &[
                    ("why", why),
                    ("at", when(st, at)),
                    ("n", waiting.to_string())
                ]
            ))
        )
    } else if conn.connected_at.is_some() {
        esc(&t(st, "connect.state_connected"))
    } else if tokens.is_some() || env_tokens {
        esc(&w(
            st,
            "connect.state_env_tokens",
            &[
                ("button", t(st, "connect.button")),
                ("vars", "%{vars}".into()),
            ],
        ))
        .replace(
            "%{vars}",
            &code(&["ZALO_ACCESS_TOKEN", "ZALO_REFRESH_TOKEN"]),
        )
    } else {
        esc(&w(st, "connect.state_none", &button_args(st)))
    };
    let oa = match &conn.oa_id {
        Some(id) => esc(id),
        None => esc(&t(st, "connect.oa_unknown")),
    };
    let expires = match tokens {
        None if env_tokens => t(st, "connect.expiry_unknown"),
        None => t(st, "connect.no_token"),
        Some(p) if p.expires_at_ms == UNKNOWN_EXPIRY_MS => t(st, "connect.expiry_unknown"),
        Some(p) if p.expires_at_ms <= now => {
            w(st, "connect.expired", &[("at", when(st, p.expires_at_ms))])
        }
        Some(p) => w(
            st,
            "connect.expires",
            &[
                ("at", when(st, p.expires_at_ms)),
                (
                    "left",
                    crate::handoff::human_duration(lang(st), p.expires_at_ms - now),
                ),
            ],
        ),
    };
    let expires = esc(&expires);
    let refresh = match (conn.last_refresh_at, &conn.last_refresh_error) {
        (None, _) => esc(&t(st, "connect.never_refreshed")),
        (Some(at), None) => esc(&w(st, "connect.refreshed", &[("at", when(st, at))])),
        (Some(at), Some(e)) => format!(
            "{} — <span class=bad>{}</span>: {}",
            esc(&when(st, at)),
            esc(&t(st, "connect.refresh_failed")),
            esc(&crate::handoff::clip(e, 300))
        ),
    };
    let connected = conn
        .connected_at
        .map(|at| esc(&when(st, at)))
        .unwrap_or_else(|| "—".into());
    let ready = match (
        st.config.zalo_app_id.is_some(),
        st.config.zalo_app_secret.is_some(),
    ) {
        (true, true) => String::new(),
        _ => format!(
            "<p class=\"flash bad\">{}</p>",
            esc(&t(st, "connect.needs_app"))
                .replace("%{a}", &code(&["ZALO_APP_ID"]))
                .replace("%{b}", &code(&["ZALO_APP_SECRET"]))
        ),
    };
    let button = if conn.needs_reconnect() || conn.connected_at.is_none() {
        t(st, "connect.button")
    } else {
        t(st, "connect.button_again")
    };
    format!(
        r#"<header><div><h1>{title}</h1><p class="sub">{subtitle}</p></div></header>
<main>
{flash}{ready}
<section class="card ok">
<p id=state>{state}</p>
<dl>
<dt>OA</dt><dd id=oa-id>{oa}</dd>
<dt>{l_connected}</dt><dd id=connected>{connected}</dd>
<dt>{l_expires}</dt><dd id=expires>{expires}</dd>
<dt>{l_refresh}</dt><dd id=refresh>{refresh}</dd>
</dl>
</section>
<form method="post" action="/admin/zalo/connect/start" class="act"><button id=connect type="submit">{button}</button></form>
<details><summary>{callback_summary}</summary><p><code id=callback>{callback}</code></p><p>{callback_help}</p></details>
</main>"#,
        title = esc(&t(st, "connect.title")),
        subtitle = esc(&t(st, "connect.subtitle")),
        l_connected = esc(&t(st, "connect.label_connected")),
        l_expires = esc(&t(st, "connect.label_expires")),
        l_refresh = esc(&t(st, "connect.label_refresh")),
        button = esc(&button),
        callback_summary = esc(&t(st, "connect.callback_summary")),
        callback_help = esc(&t(st, "connect.callback_help")),
        callback = esc(&oauth::redirect_uri(&st.config.public_url)),
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: Option<String>,
}

async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return problem(&st, StatusCode::FORBIDDEN, &t(&st, "connect.not_this_page"));
    }
    let Some(token) = st.config.admin_token.as_ref() else {
        return disabled(&st);
    };
    if ct_eq(f.token.as_deref().unwrap_or("").trim(), token.expose()) {
        see_other(PAGE, &[session_cookie(&st, token.expose())])
    } else {
        login_page(
            &st,
            StatusCode::UNAUTHORIZED,
            Some(&t(&st, "connect.wrong_token")),
        )
    }
}

// --- the flow ---

fn token_config(st: &AppState) -> TokenConfig {
    TokenConfig {
        oauth_base: st.config.zalo_oauth_base.clone(),
        app_id: st.config.zalo_app_id.clone(),
        app_secret: st
            .config
            .zalo_app_secret
            .as_ref()
            .map(|s| s.expose().to_string()),
        env_pair: None,
    }
}

async fn start(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match access(&st, &headers) {
        Access::Granted => {}
        Access::Denied => return login_page(&st, StatusCode::UNAUTHORIZED, None),
        Access::Disabled => return disabled(&st),
    }
    if !same_origin(&headers) {
        return problem(&st, StatusCode::FORBIDDEN, &t(&st, "connect.not_this_page"));
    }
    let Some(app_id) = st
        .config
        .zalo_app_id
        .clone()
        .filter(|_| st.config.zalo_app_secret.is_some())
    else {
        return problem(
            &st,
            StatusCode::CONFLICT,
            &w(
                &st,
                "connect.start_needs_app",
                &[("a", "ZALO_APP_ID".into()), ("b", "ZALO_APP_SECRET".into())],
            ),
        );
    };
    let (verifier, state, binding) = (
        oauth::random_token(),
        oauth::random_token(),
        oauth::random_token(),
    );
    let now = st.clock.now();
    let flow = OauthState {
        state_hash: oauth::hash(&state),
        session_hash: oauth::hash(&binding),
        code_verifier: verifier.clone(),
        expires_at: now + FLOW_TTL_MS,
    };
    if let Err(e) = st.store.put_oauth_state(&flow, now).await {
        tracing::warn!(error = %e, "connect: could not keep the flow");
        return problem(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            &t(&st, "connect.flow_not_saved"),
        );
    }
    let url = oauth::permission_url(
        &st.config.zalo_oauth_base,
        &app_id,
        &oauth::redirect_uri(&st.config.public_url),
        &oauth::code_challenge(&verifier),
        &state,
    );
    tracing::info!("connect: the browser goes to Zalo's permission page");
    see_other(&url, &[flow_cookie(&st, &binding, FLOW_TTL_MS / 1000)])
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    oa_id: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match access(&st, &headers) {
        Access::Granted => {}
        Access::Denied => {
            return login_page(
                &st,
                StatusCode::UNAUTHORIZED,
                Some(&w(&st, "connect.session_over", &button_args(&st))),
            )
        }
        Access::Disabled => return disabled(&st),
    }
    let bad = |message: &str| problem(&st, StatusCode::BAD_REQUEST, message);
    let Some(state) = q
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
    else {
        return bad(&t(&st, "connect.no_state"));
    };
    // The flow is used once, whatever happens next.
    let flow = match st.store.take_oauth_state(&oauth::hash(state)).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return bad(&t(&st, "connect.state_used")),
        Err(e) => {
            tracing::warn!(error = %e, "connect: could not read the flow");
            return problem(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                &t(&st, "connect.db_unreadable"),
            );
        }
    };
    let binding = cookies(&headers)
        .get(FLOW_COOKIE)
        .cloned()
        .unwrap_or_default();
    if binding.is_empty() || !ct_eq(&oauth::hash(&binding), &flow.session_hash) {
        tracing::warn!("connect: a callback whose state belongs to another browser session");
        return bad(&t(&st, "connect.other_browser"));
    }
    let now = st.clock.now();
    if flow.expires_at < now {
        return bad(&t(&st, "connect.flow_expired"));
    }
    if let Some(err) = q.error.as_deref().filter(|e| !e.is_empty()) {
        let detail = q.error_description.as_deref().unwrap_or(err);
        return bad(&w(
            &st,
            "connect.zalo_denied",
            &[("detail", crate::handoff::clip(detail, 200))],
        ));
    }
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return bad(&t(&st, "connect.no_code"));
    };
    let oa_id = q.oa_id.as_deref().unwrap_or("");
    if oa_id.is_empty() || oa_id.len() > 40 || !oa_id.bytes().all(|b| b.is_ascii_digit()) {
        return bad(&t(&st, "connect.bad_oa_id"));
    }
    let http = token::http_client(st.config.send_timeout);
    let pair = match oauth::exchange_code(&http, &token_config(&st), code, &flow.code_verifier, now)
        .await
    {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "connect: Zalo refused the code exchange");
            let why = match &e {
                token::TokenError::Rejected { code, message } => match code {
                    Some(c) => w(
                        &st,
                        "connect.token_refused_code",
                        &[("code", c.to_string()), ("message", message.clone())],
                    ),
                    None => w(
                        &st,
                        "connect.token_refused",
                        &[("message", message.clone())],
                    ),
                },
                other => w(&st, "connect.unreachable", &[("error", other.to_string())]),
            };
            return problem(&st, StatusCode::BAD_GATEWAY, &why);
        }
    };
    let tokens = crate::zalo::stored_tokens::DbTokenStore::new(
        st.store.clone(),
        format!("{}/connect", crate::wiring::instance_id()),
        st.clock.clone(),
    );
    if let Err(e) = tokens.connect(&pair, oa_id).await {
        tracing::error!(error = %e, "connect: could not store the new token pair");
        return problem(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            &t(&st, "connect.tokens_not_saved"),
        );
    }
    tracing::info!(oa_id, token = %pair.fingerprint(), "OA connected from the browser");
    st.jobs_enqueued.notify_one();
    see_other(&format!("{PAGE}?msg=connected"), &[flow_cookie(&st, "", 0)])
}

/// `/readyz`'s word on the OA: ready either way (webhooks keep being stored and other channels
/// keep sending), but while a person must connect the OA again it says why and where.
pub async fn readyz_part(st: &AppState) -> Value {
    let conn =
        match tokio::time::timeout(std::time::Duration::from_secs(2), st.store.oa_connection())
            .await
        {
            Ok(Ok(c)) => c,
            _ => return json!({"state": "unknown"}),
        };
    if let Some(at) = conn.revoked_at {
        return json!({
            "state": "needs_reconnect",
            "reason": conn.revoked_reason,
            "since": at,
            "oa_id": conn.oa_id,
            "fix": format!("Zalo OA calls wait: connect the OA again at {}{PAGE}", st.config.public_url.trim_end_matches('/')),
        });
    }
    let state = if conn.connected_at.is_some() {
        "connected"
    } else if st.config.zalo_access_token.is_some() || st.config.zalo_refresh_token.is_some() {
        "env_tokens"
    } else {
        "not_connected"
    };
    json!({"state": state, "oa_id": conn.oa_id})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_sessions() {
        assert_eq!(
            origin("https://oauth.zaloapp.com"),
            "https://oauth.zaloapp.com"
        );
        assert_eq!(origin("http://127.0.0.1:9/x?y"), "http://127.0.0.1:9");
        assert_ne!(session_value("t"), crate::http::board::session_value("t"));
    }
}

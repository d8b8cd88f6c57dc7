//! Agents sign in to the board as themselves (issue 30; accounts in `crate::agents`).
//!
//! - `GET /admin/board/signin` is the sign-in form (name and password; admins find the
//!   access-token form below it); `POST` checks them and sets the session cookie: a random
//!   token, HttpOnly, SameSite=Lax, `Secure` when `ZALOFLOW_PUBLIC_URL` is https, for
//!   `ZALOFLOW_AGENT_SESSION_HOURS`. An unknown name and a wrong password get the same page.
//! - [`gate`] runs before every `/admin` route: a request with a live agent session reaches
//!   the board's routes (the page, its handoff actions, its event stream, signing out) with
//!   the agent attached ([`AgentSession`]); every other `/admin` route answers it 403
//!   (`agent_forbidden`). A request with the admin bearer token is an admin's, whatever
//!   cookie it carries; requests without an agent cookie pass untouched, so the admin token
//!   and its board cookie work as before.
//! - Signing out (`POST /admin/board/logout`, the board's button) ends the session in the
//!   store as well as in the browser.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::board::{self, cookies, html_page, same_origin, secure, see_other, Access};
use super::{esc, AppState};
use crate::agents::{self, SignInError};
use crate::i18n::{tr, Lang};

/// The session cookie of a signed-in agent.
pub const COOKIE: &str = "zf_session";
/// Sent to every `/admin` route, so a route an agent may not use answers 403, not 401.
const COOKIE_PATH: &str = "/admin";
pub const SIGNIN_PATH: &str = "/admin/board/signin";

pub fn router() -> Router<AppState> {
    Router::new().route(SIGNIN_PATH, get(form).post(submit))
}

/// The agent a request's session belongs to.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub agent_id: i64,
    pub name: String,
    token_sha256: String,
}

/// What [`gate`] found of an agent session: the agent, or a cookie that no longer counts
/// (expired, revoked, disabled agent).
#[derive(Debug, Clone, Default)]
pub struct AgentSession {
    pub agent: Option<SignedIn>,
    pub stale: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for AgentSession {
    type Rejection = Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<AgentSession>()
            .cloned()
            .unwrap_or_default())
    }
}

/// Whether an agent's session may use `path`: the board's page, its handoff actions, its live
/// events and script, signing in and out. Not the campaigns page (`/admin/board/campaigns`:
/// taking people out of campaigns is an admin's), nor anything else of `/admin`.
pub fn agent_may(path: &str) -> bool {
    matches!(
        path,
        "/admin/board"
            | "/admin/board/events"
            | "/admin/board/live.js"
            | "/admin/board/login"
            | "/admin/board/logout"
            | SIGNIN_PATH
    ) || path.starts_with("/admin/board/handoffs/")
}

fn admin_bearer(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = st.config.admin_token.as_ref() else {
        return false;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|b| board::ct_eq(b, token.expose()))
}

/// The middleware of every route: resolves an agent's session cookie on `/admin` paths and
/// keeps agents to the board.
pub async fn gate(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/admin" || path.starts_with("/admin/")) {
        return next.run(req).await;
    }
    let Some(token) = cookies(req.headers())
        .remove(COOKIE)
        .filter(|t| !t.is_empty())
    else {
        return next.run(req).await;
    };
    if admin_bearer(&st, req.headers()) {
        return next.run(req).await;
    }
    let sha = agents::token_sha256(&token);
    let session = match st.store.session_agent(&sha, st.clock.now()).await {
        Ok(Some(a)) => AgentSession {
            agent: Some(SignedIn {
                agent_id: a.agent_id,
                name: a.name,
                token_sha256: sha,
            }),
            stale: false,
        },
        Ok(None) => AgentSession {
            agent: None,
            stale: true,
        },
        Err(e) => {
            tracing::error!(error = %e, "agent session lookup failed");
            return super::admin::ApiError::from(e).into_response();
        }
    };
    if session.agent.is_some() && !agent_may(req.uri().path()) {
        tracing::info!(path = %req.uri().path(), "agent session refused outside the board");
        return super::admin::ApiError::new(
            StatusCode::FORBIDDEN,
            "agent_forbidden",
            "an agent's session reaches only the board; this route needs the admin token",
        )
        .into_response();
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// The board's access: an agent's session, else the admin token or its board cookie. With
/// no admin token configured the board still takes agents (the sign-in page, not "off").
pub(crate) fn access(st: &AppState, headers: &HeaderMap, session: &AgentSession) -> Access {
    if session.agent.is_some() {
        return Access::Granted;
    }
    match board::access(st, headers) {
        Access::Disabled => Access::Denied,
        other => other,
    }
}

/// The answer to a board request without access: the sign-in page, `next` where to go after.
pub(crate) fn denied(st: &AppState, session: &AgentSession, next: &str) -> Response {
    let note = session
        .stale
        .then(|| ("", tr(st.config.lang, "agents.signin.expired").into_owned()));
    page(st, StatusCode::UNAUTHORIZED, next, note)
}

/// The sign-in page; `flash` is (class, text) of a message above the form.
fn page(st: &AppState, status: StatusCode, next: &str, flash: Option<(&str, String)>) -> Response {
    let lang = st.config.lang;
    let t = |k: &str| esc(&tr(lang, k));
    let flash = flash
        .map(|(cls, text)| {
            format!(
                "<p class=\"flash {cls}\" role=\"status\">{}</p>\n",
                esc(&text)
            )
        })
        .unwrap_or_default();
    let next = esc(&board::safe_next(Some(next)));
    let admin = if st.config.admin_token.is_some() {
        format!(
            r#"<details><summary>{summary}</summary>
<form method="post" action="/admin/board/login" class="login">
<label for="token">{token}</label>
<input id="token" name="token" type="password" autocomplete="off" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">{submit}</button>
</form></details>
"#,
            summary = t("agents.signin.admin"),
            token = t("agents.signin.token"),
            submit = t("agents.signin.submit"),
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<main class=narrow>
<h1>{heading}</h1>
{flash}<p>{intro}</p>
<form method="post" action="{SIGNIN_PATH}" class="login">
<label for="name">{name}</label>
<input id="name" name="name" autocomplete="username" required maxlength="80">
<label for="password">{password}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">{submit}</button>
</form>
<p class="sub">{forgot}</p>
{admin}</main>"#,
        heading = t("agents.signin.heading"),
        intro = t("agents.signin.intro"),
        name = t("agents.signin.name"),
        password = t("agents.signin.password"),
        submit = t("agents.signin.submit"),
        forgot = t("agents.signin.forgot"),
    );
    let mut r = html_page(
        lang,
        status,
        &tr(lang, "agents.signin.title"),
        "",
        &body,
        "",
    );
    // A cookie that no longer counts goes.
    if let Ok(v) = clear_cookie(st).parse() {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

async fn form(
    State(st): State<AppState>,
    session: AgentSession,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let next = board::safe_next(q.next.as_deref());
    if session.agent.is_some() {
        return see_other(&next, &[]);
    }
    page(&st, StatusCode::OK, &next, None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    name: Option<String>,
    password: Option<String>,
    next: Option<String>,
}

async fn submit(
    State(st): State<AppState>,
    headers: HeaderMap,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Form(f): Form<SignInForm>,
) -> Response {
    let lang = st.config.lang;
    let next = board::safe_next(f.next.as_deref());
    if !same_origin(&headers) {
        let text = tr(lang, "agents.signin.bad_request").into_owned();
        return page(&st, StatusCode::FORBIDDEN, &next, Some(("bad", text)));
    }
    let (name, password) = (f.name.unwrap_or_default(), f.password.unwrap_or_default());
    let peer = peer.map(|axum::Extension(ConnectInfo(a))| a.ip());
    let service = std::sync::Arc::as_ptr(&st.config) as usize;
    let who = (
        service,
        client_ip(&st, &headers, peer),
        name.trim().to_string(),
    );
    if failures().blocked(&who, Instant::now()) {
        tracing::warn!(ip = %who.1, "agent sign-in throttled after repeated failures");
        let text = tr(lang, "agents.signin.throttled").into_owned();
        return page(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(("bad", text)),
        );
    }
    let now = st.clock.now();
    let hours = st.config.agent_session_hours;
    match agents::sign_in(&st.store, &name, &password, now, hours).await {
        Ok((token, _)) => see_other(&next, &[session_cookie(&st, &token, hours)]),
        Err(SignInError::Refused) => {
            failures().failed(who, Instant::now());
            let text = tr(lang, "agents.signin.wrong").into_owned();
            page(&st, StatusCode::UNAUTHORIZED, &next, Some(("bad", text)))
        }
        Err(SignInError::Store(e)) => {
            tracing::error!(error = %e, "agent sign-in: storage error");
            let text = tr(lang, "agents.signin.unavailable").into_owned();
            page(
                &st,
                StatusCode::SERVICE_UNAVAILABLE,
                &next,
                Some(("bad", text)),
            )
        }
    }
}

/// How many wrong sign-ins one client may make for one name in [`FAILURE_WINDOW`] before it
/// waits for the window to pass (online guessing; Argon2 makes each guess slow as well).
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Who is trying: the running service (one table per service, as tests run several in one
/// process), the client's address, the name.
type Who = (usize, IpAddr, String);

/// Failed sign-ins per [`Who`], in memory.
#[derive(Default)]
struct Failures(Mutex<HashMap<Who, (Instant, u32)>>);

impl Failures {
    fn blocked(&self, who: &Who, now: Instant) -> bool {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(who).is_some_and(|(since, n)| {
            now.duration_since(*since) < FAILURE_WINDOW && *n >= MAX_FAILURES
        })
    }

    fn failed(&self, who: Who, now: Instant) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, (since, _)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        let e = map.entry(who).or_insert((now, 0));
        if now.duration_since(e.0) >= FAILURE_WINDOW {
            *e = (now, 0);
        }
        e.1 += 1;
    }
}

fn failures() -> &'static Failures {
    static F: OnceLock<Failures> = OnceLock::new();
    F.get_or_init(Failures::default)
}

/// The client's address: the configured proxy header's, else the peer's.
fn client_ip(st: &AppState, headers: &HeaderMap, peer: Option<IpAddr>) -> IpAddr {
    st.config
        .client_ip_header
        .as_ref()
        .and_then(|h| headers.get(h.as_str()))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|v| v.trim().parse().ok())
        .or(peer)
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

fn session_cookie(st: &AppState, token: &str, hours: u32) -> String {
    format!(
        "{COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        u64::from(hours) * 3600,
        secure(st)
    )
}

/// The header that removes the agent's cookie.
pub fn clear_cookie(st: &AppState) -> String {
    format!(
        "{COOKIE}=; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Lax{}",
        secure(st)
    )
}

/// `POST /admin/board/logout`, the board's sign-out button: an agent's session ends in the
/// store as well as in the browser; an admin's board cookie goes.
pub async fn logout(State(st): State<AppState>, session: AgentSession) -> Response {
    if let Some(a) = &session.agent {
        match st.store.end_session(&a.token_sha256).await {
            Ok(_) => tracing::info!(agent = %a.name, "agent signed out"),
            Err(e) => tracing::error!(error = %e, "agent sign-out: storage error"),
        }
    }
    let admin = format!(
        "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
        board::SESSION_COOKIE,
        board::COOKIE_PATH,
        secure(&st)
    );
    see_other("/admin/board", &[admin, clear_cookie(&st)])
}

/// On the board for a signed-in agent: who is signed in, and that claims go under that name
/// (the name fields of the board's forms are not needed: they are hidden).
pub fn bar(lang: Lang, session: &AgentSession) -> String {
    let Some(a) = &session.agent else {
        return String::new();
    };
    format!(
        "<style>form.act input[name=agent],form.act label[for=agent]{{display:none}}</style>\n<p class=\"flash signed-in\"><strong>{who}</strong> · {note}</p>\n",
        who = esc(&rust_i18n::t!(
            "agents.board.signed_in_as",
            locale = lang.code(),
            name = a.name
        )),
        note = esc(&tr(lang, "agents.board.claims_under")),
    )
}

/// The name a board action is recorded under: the signed-in agent's, else the typed one.
pub fn agent_name(session: &AgentSession, typed: Option<&str>) -> Option<String> {
    match &session.agent {
        Some(a) => Some(a.name.clone()),
        None => super::admin::handoffs::agent_name(typed).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_wait_for_the_window() {
        let f = Failures::default();
        let t0 = Instant::now();
        let minh = (1, IpAddr::from([10, 0, 0, 1]), "Minh".to_string());
        let lan = (1, IpAddr::from([10, 0, 0, 1]), "Lan".to_string());
        for i in 0..MAX_FAILURES {
            assert!(!f.blocked(&minh, t0), "{i}");
            f.failed(minh.clone(), t0);
        }
        assert!(f.blocked(&minh, t0 + Duration::from_secs(60)));
        assert!(!f.blocked(&lan, t0), "another name");
        assert!(!f.blocked(&minh, t0 + FAILURE_WINDOW));
        f.failed(minh.clone(), t0 + FAILURE_WINDOW);
        assert!(!f.blocked(&minh, t0 + FAILURE_WINDOW), "a new window");
    }

    #[test]
    fn agents_reach_only_the_board() {
        for p in [
            "/admin/board",
            "/admin/board/events",
            "/admin/board/handoffs/3/claim",
            "/admin/board/logout",
            "/admin/board/signin",
            "/admin/board/live.js",
        ] {
            assert!(agent_may(p), "{p}");
        }
        for p in [
            "/admin",
            "/admin/contacts",
            "/admin/handoffs/3/claim",
            "/admin/agents",
            "/admin/boards",
            "/admin/report",
            "/admin/zalo/connect",
            "/admin/board/campaigns",
            "/admin/board/campaigns/1",
        ] {
            assert!(!agent_may(p), "{p}");
        }
    }
}

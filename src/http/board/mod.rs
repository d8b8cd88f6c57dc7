//! `/admin/board`: the agents' board — a small server-rendered page (plain HTML and a little
//! CSS) listing unresolved handoffs by urgency, with the time left, who took them, and buttons
//! to claim and resolve. Readable on a phone. One small script (`super::live`) keeps it
//! current: it listens to the board's server-sent events and swaps in the list the server
//! renders when a handoff opens, is claimed, resolved or breached; without JavaScript the page
//! refreshes itself every minute.
//!
//! Access: the admin bearer token, or a session cookie set from it — open
//! `/admin/board?token=…` once (or type the token into the login form): the page sets an
//! HttpOnly, SameSite=Lax cookie holding an HMAC of the token (never the token itself) and
//! redirects to the bare URL. Changing `ZALOFLOW_ADMIN_TOKEN` ends every session.
//!
//! The links in chat notifications (`/admin/board/handoffs/{id}/claim|resolve`) open a page
//! with one button: chat apps fetch links to preview them, so a GET never changes anything.
//! Forms post only from our own pages (Origin checked; the cookie is not sent cross-site).

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub mod campaigns;
mod card;

use card::Card;

use super::admin::handoffs::{agent_name, take, Take};
use super::signin::{self, AgentSession};
use super::{esc, AppState};
use crate::handoff::{self, local_time, Handoff};
use crate::i18n::{tr, Lang};
use rust_i18n::t;

pub const SESSION_COOKIE: &str = "zf_board";
pub const AGENT_COOKIE: &str = "zf_agent";
pub(crate) const COOKIE_PATH: &str = "/admin/board";
const SESSION_SECONDS: i64 = 12 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/board", get(board))
        .route("/admin/board/login", post(login))
        .route("/admin/board/logout", post(signin::logout))
        .route("/admin/board/events", get(super::live::events))
        .route("/admin/board/live.js", get(super::live::script))
        .route(campaigns::PATH, get(campaigns::list))
        .route("/admin/board/campaigns/{id}", get(campaigns::members))
        .route(
            "/admin/board/campaigns/{id}/members/{contact}/{action}",
            post(campaigns::act),
        )
        .route(
            "/admin/board/handoffs/{id}/{action}",
            get(confirm).post(act),
        )
}

// --- access ---

pub(crate) enum Access {
    Granted,
    Denied,
    /// No admin token configured: the board is off.
    Disabled,
}

/// The cookie value of a board session: HMAC-SHA256 of a fixed label under the admin token.
pub fn session_value(token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("any key length");
    mac.update(b"zaloflow board session v1");
    hex::encode(mac.finalize().into_bytes())
}

pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub(crate) fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub(crate) fn access(st: &AppState, headers: &HeaderMap) -> Access {
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

/// A form post from one of our own pages: no `Origin` (older clients), or the same host.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

pub(crate) fn secure(st: &AppState) -> &'static str {
    if st.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn session_cookie(st: &AppState, token: &str) -> String {
    format!(
        "{SESSION_COOKIE}={}; Path={COOKIE_PATH}; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Lax{}",
        session_value(token),
        secure(st)
    )
}

fn agent_cookie(st: &AppState, agent: &str) -> String {
    format!(
        "{AGENT_COOKIE}={}; Path={COOKIE_PATH}; Max-Age=31536000; HttpOnly; SameSite=Lax{}",
        pct_encode(agent),
        secure(st)
    )
}

fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn pct_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn remembered_agent(headers: &HeaderMap) -> String {
    cookies(headers)
        .get(AGENT_COOKIE)
        .and_then(|v| pct_decode(v))
        .and_then(|a| agent_name(Some(&a)).ok())
        .unwrap_or_default()
}

/// Only paths of the board itself (no open redirect).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin/board")
                && !n.contains("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/admin/board".to_string(),
    }
}

// --- responses ---

fn page(lang: Lang, status: StatusCode, title: &str, body: &str) -> Response {
    html_page(lang, status, title, "", body, "")
}

/// A staff page in the staff's language, not cached, not framed, no scripts; `css` adds to
/// the shared style, `form_action` names one more origin forms may go to.
pub(crate) fn html_page(
    lang: Lang,
    status: StatusCode,
    title: &str,
    css: &str,
    body: &str,
    form_action: &str,
) -> Response {
    let html = format!(
        r#"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>{CSS}{css}</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = esc(title),
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'{}{form_action}; frame-ancestors 'none'; base-uri 'none'",
        if form_action.is_empty() { "" } else { " " }
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

pub(crate) fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn disabled(lang: Lang) -> Response {
    let title = tr(lang, "board.disabled.title");
    page(
        lang,
        StatusCode::FORBIDDEN,
        &title,
        &format!(
            "<main class=narrow><h1>{}</h1><p>{}</p></main>",
            esc(&title),
            esc(&tr(lang, "board.disabled.text"))
        ),
    )
}

fn login_page(lang: Lang, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<p class=\"flash bad\">{}</p>", esc(e)))
        .unwrap_or_default();
    page(
        lang,
        status,
        &tr(lang, "board.login.title"),
        &format!(
            r#"<main class=narrow>
<h1>{title}</h1>
{err}
<form method="post" action="/admin/board/login" class="login">
<label for="token">{label}</label>
<input id="token" name="token" type="password" autocomplete="current-password" required>
<input type="hidden" name="next" value="{next}">
<button type="submit">{submit}</button>
</form>
</main>"#,
            title = esc(&tr(lang, "board.title")),
            label = esc(&tr(lang, "board.login.token")),
            submit = esc(&tr(lang, "board.login.submit")),
            next = esc(next)
        ),
    )
}

// --- handlers ---

#[derive(Deserialize)]
pub struct BoardQuery {
    token: Option<String>,
    msg: Option<String>,
    id: Option<i64>,
}

async fn board(
    State(st): State<AppState>,
    headers: HeaderMap,
    session: AgentSession,
    Query(q): Query<BoardQuery>,
) -> Response {
    let lang = st.config.lang;
    if let Some(given) = q.token.as_deref() {
        let Some(token) = st.config.admin_token.as_ref() else {
            return disabled(lang);
        };
        return if ct_eq(given, token.expose()) {
            see_other("/admin/board", &[session_cookie(&st, token.expose())])
        } else {
            login_page(
                lang,
                StatusCode::UNAUTHORIZED,
                "/admin/board",
                Some(&tr(lang, "board.login.wrong_token")),
            )
        };
    }
    match signin::access(&st, &headers, &session) {
        Access::Disabled => return disabled(lang),
        Access::Denied => return signin::denied(&st, &session, "/admin/board"),
        Access::Granted => {}
    }
    let now = st.clock.now();
    let active = match st
        .store
        .list_handoffs(&[handoff::OPEN, handoff::CLAIMED], 500)
        .await
    {
        Ok(h) => h,
        Err(e) => return unavailable(lang, e),
    };
    let done = st
        .store
        .list_handoffs(&[handoff::RESOLVED], 10)
        .await
        .unwrap_or_default();
    let users: Vec<String> = active
        .iter()
        .chain(&done)
        .map(|h| h.user_id.clone())
        .collect();
    let contacts = st.store.load_contacts(&users).await.unwrap_or_default();
    let agent = signin::agent_name(&session, None).unwrap_or_else(|| remembered_agent(&headers));
    let tz = st.config.tz;
    let mut active = active;
    active.sort_by_key(urgency);

    let waiting = active.iter().filter(|h| h.responded_at.is_none()).count();
    let overdue = active
        .iter()
        .filter(|h| h.responded_at.is_none() && now > h.deadline_at)
        .count();
    let l = lang.code();
    let mut body = String::new();
    body.push_str(&format!(
        r#"<header>
<div><h1>{title}</h1>
<p class="sub">{waiting}{overdue_txt} · {total} · {updated}</p></div>
<nav>{campaigns}<form method="post" action="/admin/board/logout"><button class="link" type="submit">{logout}</button></form></nav>
</header>
"#,
        title = esc(&tr(lang, "board.title")),
        waiting = esc(&t!("board.waiting", locale = l, n = waiting)),
        total = esc(&t!("board.open_total", locale = l, n = active.len())),
        overdue_txt = if overdue > 0 {
            format!(
                " · <strong class=\"bad\">{}</strong>",
                esc(&t!("board.overdue", locale = l, n = overdue))
            )
        } else {
            String::new()
        },
        updated = esc(&t!("board.updated", locale = l, at = local_time(now, tz))),
        logout = esc(&tr(lang, "board.logout")),
        // Agents reach the board and its handoffs only: no link to the campaigns page.
        campaigns = if session.agent.is_none() {
            format!(
                "<a href=\"/admin/board/campaigns\">{}</a> ",
                esc(&tr(lang, "board.nav.campaigns"))
            )
        } else {
            String::new()
        },
    ));
    body.push_str(&signin::bar(lang, &session));
    body.push_str(&flash(lang, q.msg.as_deref(), q.id));
    body.push_str("<main>\n");
    let card_of = |h: &Handoff, with_form: bool| {
        let c = Card {
            lang,
            now,
            tz,
            agent: &agent,
            with_form,
        };
        c.render(h, contacts.get(&h.user_id))
    };
    if active.is_empty() {
        let _ = writeln!(
            body,
            "<p class=\"empty\">{}</p>",
            esc(&tr(lang, "board.empty"))
        );
    } else {
        body.push_str("<ol class=\"cards\">\n");
        for h in &active {
            body.push_str(&card_of(h, true));
        }
        body.push_str("</ol>\n");
    }
    if !done.is_empty() {
        body.push_str(&format!(
            "<details><summary>{}</summary>\n<ol class=\"cards done\">\n",
            esc(&t!("board.recent_done", locale = l, n = done.len()))
        ));
        for h in &done {
            body.push_str(&card_of(h, false));
        }
        body.push_str("</ol>\n</details>\n");
    }
    body.push_str("</main>\n");
    // Live updates (and the time left, every minute) from the page's script; without
    // JavaScript a plain refresh every minute.
    body.push_str(
        "<noscript><meta http-equiv=\"refresh\" content=\"60\"></noscript>\n<script src=\"/admin/board/live.js\" defer></script>\n",
    );
    let mut r = page(lang, StatusCode::OK, &tr(lang, "board.title"), &body);
    // The one script, from this origin, and its event stream; nothing inline.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: Option<String>,
    next: Option<String>,
}

async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let lang = st.config.lang;
    let Some(token) = st.config.admin_token.as_ref() else {
        return disabled(lang);
    };
    let next = safe_next(f.next.as_deref());
    if !same_origin(&headers) {
        let why = tr(lang, "board.bad_request");
        return login_page(lang, StatusCode::FORBIDDEN, &next, Some(&why));
    }
    if ct_eq(f.token.as_deref().unwrap_or("").trim(), token.expose()) {
        see_other(&next, &[session_cookie(&st, token.expose())])
    } else {
        let why = tr(lang, "board.login.wrong_token");
        login_page(lang, StatusCode::UNAUTHORIZED, &next, Some(&why))
    }
}

fn parse_action(action: &str) -> Option<Take> {
    match action {
        "claim" => Some(Take::Claim),
        "resolve" => Some(Take::Resolve),
        _ => None,
    }
}

/// The page a chat link opens: the handoff and one button.
async fn confirm(
    State(st): State<AppState>,
    headers: HeaderMap,
    session: AgentSession,
    Path((id, action)): Path<(i64, String)>,
) -> Response {
    let lang = st.config.lang;
    let Some(what) = parse_action(&action) else {
        return not_found(lang);
    };
    let here = format!("/admin/board/handoffs/{id}/{action}");
    match signin::access(&st, &headers, &session) {
        Access::Disabled => return disabled(lang),
        Access::Denied => return signin::denied(&st, &session, &here),
        Access::Granted => {}
    }
    let h = match st.store.get_handoff(id).await {
        Ok(Some(h)) => h,
        Ok(None) => return not_found(lang),
        Err(e) => return unavailable(lang, e),
    };
    let contact = st.store.get_contact(&h.user_id).await.ok().flatten();
    let now = st.clock.now();
    let agent = signin::agent_name(&session, None).unwrap_or_else(|| remembered_agent(&headers));
    let l = lang.code();
    let title = match what {
        Take::Claim => t!("board.confirm.claim", locale = l, id = id),
        Take::Resolve => t!("board.confirm.resolve", locale = l, id = id),
    };
    let mut body = format!(
        "<header><div><h1>{}</h1><p class=\"sub\"><a href=\"/admin/board#h{id}\">{}</a></p></div></header>\n<main>\n<ol class=\"cards\">\n",
        esc(&title),
        esc(&tr(lang, "board.back"))
    );
    body.push_str(&signin::bar(lang, &session));
    let c = Card {
        lang,
        now,
        tz: st.config.tz,
        agent: &agent,
        with_form: false,
    };
    body.push_str(&c.render(&h, contact.as_ref()));
    body.push_str("</ol>\n");
    if h.status == handoff::RESOLVED {
        let _ = writeln!(
            body,
            "<p class=\"flash\">{}</p>",
            esc(&tr(lang, "board.already_done"))
        );
    } else {
        let button = match what {
            Take::Claim => tr(lang, "board.button.claim"),
            Take::Resolve => tr(lang, "board.button.resolve"),
        };
        body.push_str(&format!(
            r#"<form method="post" action="{here}" class="act">
<label for="agent">{name}</label>
<input id="agent" name="agent" value="{agent}" required maxlength="80" autocomplete="name" placeholder="{name}">
<button type="submit" class="{cls}">{button}</button>
</form>
"#,
            name = esc(&tr(lang, "board.your_name")),
            agent = esc(&agent),
            button = esc(&button),
            cls = if what == Take::Claim { "claim" } else { "resolve" },
        ));
    }
    body.push_str("</main>\n");
    page(lang, StatusCode::OK, &title, &body)
}

#[derive(Deserialize)]
pub struct ActForm {
    agent: Option<String>,
}

async fn act(
    State(st): State<AppState>,
    headers: HeaderMap,
    session: AgentSession,
    Path((id, action)): Path<(i64, String)>,
    Form(f): Form<ActForm>,
) -> Response {
    let lang = st.config.lang;
    let Some(what) = parse_action(&action) else {
        return not_found(lang);
    };
    match signin::access(&st, &headers, &session) {
        Access::Disabled => return disabled(lang),
        Access::Denied => {
            let here = format!("/admin/board/handoffs/{id}/{action}");
            return signin::denied(&st, &session, &here);
        }
        Access::Granted => {}
    }
    if !same_origin(&headers) {
        return refused_origin(lang);
    }
    let back = |msg: &str, cookies: &[String]| {
        see_other(&format!("/admin/board?msg={msg}&id={id}#h{id}"), cookies)
    };
    // A signed-in agent acts under their account's name; with the admin token, the typed one.
    let Some(agent) = signin::agent_name(&session, f.agent.as_deref()) else {
        return back("bad_agent", &[]);
    };
    let remember = [agent_cookie(&st, &agent)];
    match take(&st, id, &agent, what).await {
        Ok(_) => back(
            match what {
                Take::Claim => "claimed",
                Take::Resolve => "resolved",
            },
            &remember,
        ),
        Err(e) if e.status == StatusCode::NOT_FOUND => back("not_found", &remember),
        Err(e) if e.status == StatusCode::CONFLICT => back("conflict", &remember),
        Err(_) => back("unavailable", &remember),
    }
}

/// A form posted from another site.
fn refused_origin(lang: Lang) -> Response {
    page(
        lang,
        StatusCode::FORBIDDEN,
        &tr(lang, "board.bad_request.title"),
        &format!(
            "<main class=narrow><p class=\"flash bad\">{}</p></main>",
            esc(&tr(lang, "board.bad_origin"))
        ),
    )
}

fn not_found(lang: Lang) -> Response {
    page(
        lang,
        StatusCode::NOT_FOUND,
        &tr(lang, "board.not_found.title"),
        &format!(
            "<main class=narrow><p class=\"flash bad\">{}</p><p><a href=\"/admin/board\">{}</a></p></main>",
            esc(&tr(lang, "board.not_found.text")),
            esc(&tr(lang, "board.back"))
        ),
    )
}

fn unavailable(lang: Lang, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "board: storage error");
    page(
        lang,
        StatusCode::SERVICE_UNAVAILABLE,
        &tr(lang, "board.unavailable.title"),
        &format!(
            "<main class=narrow><p class=\"flash bad\">{}</p></main>",
            esc(&tr(lang, "board.unavailable.text"))
        ),
    )
}

/// The message after an action (fixed texts: nothing from the URL is shown but the id).
fn flash(lang: Lang, msg: Option<&str>, id: Option<i64>) -> String {
    let id = id.map(|i| format!("#{i}")).unwrap_or_default();
    let l = lang.code();
    let (cls, text) = match msg {
        Some("claimed") => ("ok", t!("board.flash.claimed", locale = l, id = id)),
        Some("resolved") => ("ok", t!("board.flash.resolved", locale = l, id = id)),
        Some("conflict") => ("bad", t!("board.flash.conflict", locale = l, id = id)),
        Some("not_found") => ("bad", t!("board.flash.not_found", locale = l, id = id)),
        Some("bad_agent") => ("bad", tr(lang, "board.flash.bad_agent")),
        Some("unavailable") => ("bad", tr(lang, "board.flash.unavailable")),
        _ => return String::new(),
    };
    format!(
        "<p class=\"flash {cls}\" role=\"status\">{}</p>\n",
        esc(&text)
    )
}

/// Unanswered first (by deadline, most urgent priority first), then the answered ones.
fn urgency(h: &Handoff) -> (bool, i64, i32, i64) {
    (h.responded_at.is_some(), h.deadline_at, -h.priority, h.id)
}

pub(crate) const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;background:#f4f5f7;color:#1d2330}
header{display:flex;justify-content:space-between;align-items:flex-start;gap:.5rem;padding:.9rem 1rem;background:#0b5cad;color:#fff}
header h1{margin:0;font-size:1.2rem}
header a{color:#fff}
.sub{margin:.2rem 0 0;font-size:.9rem;opacity:.95}
.bad{color:#b42318}
header .bad{color:#fff;background:#b42318;padding:0 .35rem;border-radius:.3rem}
main{max-width:46rem;margin:0 auto;padding:.75rem}
main.narrow{max-width:26rem;padding-top:2rem}
.cards{list-style:none;margin:0;padding:0;display:grid;gap:.75rem}
.card{background:#fff;border-radius:.6rem;padding:.8rem .9rem;border-left:.4rem solid #98a2b3;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card.overdue{border-left-color:#d92d20;background:#fff6f5}
.card.soon{border-left-color:#f79009}
.card.ok{border-left-color:#0b5cad}
.card.answered{border-left-color:#12b76a}
.card.done{opacity:.75}
.row{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem}
.name{font-size:1.05rem}
.id{margin-left:auto;color:#667085;font-size:.85rem}
.badge{font-size:.75rem;padding:.05rem .45rem;border-radius:1rem;background:#eef4ff;color:#0b5cad;white-space:nowrap}
.badge.vip{background:#fef0c7;color:#93370d}
.badge.prio{background:#fee4e2;color:#b42318}
.contact,.who,.more{margin:.25rem 0;color:#475467;font-size:.9rem}
blockquote{margin:.5rem 0;padding:.45rem .7rem;background:#f2f4f7;border-radius:.4rem;white-space:pre-wrap;overflow-wrap:anywhere}
.due{margin:.35rem 0;font-size:.95rem}
.left{font-weight:600}
.overdue .left{color:#b42318}
.soon .left{color:#b54708}
.answered .left{color:#067647}
form.act,form.login{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.6rem}
form.login{flex-direction:column}
input{flex:1 1 9rem;min-width:0;font:inherit;padding:.55rem .6rem;border:1px solid #d0d5dd;border-radius:.45rem}
button{font:inherit;padding:.55rem .9rem;border:0;border-radius:.45rem;background:#0b5cad;color:#fff;cursor:pointer;min-height:2.6rem}
button.resolve{background:#067647}
button.link{white-space:nowrap;background:none;padding:.2rem;min-height:0;text-decoration:underline;color:#fff}
.flash{margin:.75rem auto;max-width:46rem;padding:.6rem .9rem;border-radius:.45rem;background:#ecfdf3;color:#067647}
.flash.bad{background:#fef3f2;color:#b42318}
.empty{text-align:center;color:#475467;padding:2rem 0}
details{margin-top:1rem}
summary{cursor:pointer;color:#475467;margin-bottom:.5rem}
label{font-size:.9rem;color:#475467}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_cookies() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
        let name = "Nguyễn Văn Minh";
        assert_eq!(pct_decode(&pct_encode(name)).as_deref(), Some(name));
        assert!(pct_encode(name).bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(pct_decode("%zz"), None);
        assert_ne!(session_value("a"), session_value("b"));
        assert_eq!(session_value("a").len(), 64);
    }

    #[test]
    fn next_stays_on_the_board() {
        assert_eq!(
            safe_next(Some("/admin/board/handoffs/3/claim")),
            "/admin/board/handoffs/3/claim"
        );
        assert_eq!(safe_next(Some("https://evil.example")), "/admin/board");
        assert_eq!(
            safe_next(Some("/admin/board//evil.example")),
            "/admin/board"
        );
        assert_eq!(safe_next(None), "/admin/board");
    }

    #[test]
    fn origin_check() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("shop.vn"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://shop.vn"));
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
    }
}

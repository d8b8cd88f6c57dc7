//! `/admin/board/campaigns`: the board's page of the campaigns (issue 30). Each campaign with
//! the members waiting for each step; a campaign's members with their name, the step they wait
//! for and when it is due, with a button to take one out and a choice to move them to a step
//! (it goes out at the next scheduler pass). The same operations as the admin API
//! (`/admin/campaigns…`), behind the board's sign-in; forms post only from our own pages.

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use rust_i18n::t;
use serde::Deserialize;

use super::{access, disabled, esc, login_page, same_origin, see_other, Access};
use crate::handoff::local_time;
use crate::http::admin::campaigns::{self, CampaignMembers, MemberView};
use crate::http::AppState;
use crate::i18n::{tr, Lang};

/// Where the page lives.
pub const PATH: &str = "/admin/board/campaigns";

/// The board's sign-in, for a page at `here`: None when granted.
fn gate(st: &AppState, headers: &HeaderMap, here: &str) -> Option<Response> {
    let lang = st.config.lang;
    match access(st, headers) {
        Access::Disabled => Some(disabled(lang)),
        Access::Denied => Some(login_page(lang, StatusCode::UNAUTHORIZED, here, None)),
        Access::Granted => None,
    }
}

fn header(lang: Lang, title: &str, back: (&str, &str)) -> String {
    format!(
        "<header><div><h1>{}</h1><p class=\"sub\"><a href=\"{}\">{}</a></p></div></header>\n",
        esc(title),
        back.0,
        esc(&tr(lang, back.1))
    )
}

/// `GET /admin/board/campaigns`: every campaign, its steps and who waits for each.
pub async fn list(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(r) = gate(&st, &headers, PATH) {
        return r;
    }
    let lang = st.config.lang;
    let all = match campaigns::list(&st).await {
        Ok(c) => c.campaigns,
        Err(e) => return super::unavailable(lang, &e.message),
    };
    let title = tr(lang, "board.campaigns.title");
    let mut body = header(lang, &title, ("/admin/board", "board.back"));
    body.push_str("<main>\n");
    if all.is_empty() {
        let _ = writeln!(
            body,
            "<p class=\"empty\">{}</p>",
            esc(&tr(lang, "board.campaigns.none"))
        );
    }
    for c in &all {
        let off = if c.enabled {
            String::new()
        } else {
            format!(
                " <span class=\"badge\">{}</span>",
                esc(&tr(lang, "board.campaigns.off"))
            )
        };
        let _ = write!(
            body,
            "<section class=\"card campaign\" id=\"c-{id}\"><h2><a href=\"{PATH}/{url}\">{id}</a>{off}</h2>",
            id = esc(&c.id),
            url = pct(&c.id),
        );
        if let Some(d) = &c.description {
            let _ = write!(body, "<p class=\"contact\">{}</p>", esc(d));
        }
        let _ = write!(
            body,
            "<table><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>",
            esc(&tr(lang, "board.campaigns.step")),
            esc(&tr(lang, "board.campaigns.waiting"))
        );
        for s in &c.steps {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&s.step),
                s.waiting
            );
        }
        body.push_str("</tbody></table></section>\n");
    }
    body.push_str("</main>\n");
    super::html_page(lang, StatusCode::OK, &title, CSS, &body, "")
}

#[derive(Deserialize)]
pub struct MembersQuery {
    msg: Option<String>,
    contact: Option<String>,
}

/// `GET /admin/board/campaigns/{id}`: the campaign's members, with their actions.
pub async fn members(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<MembersQuery>,
) -> Response {
    let here = format!("{PATH}/{}", pct(&id));
    if let Some(r) = gate(&st, &headers, &here) {
        return r;
    }
    let lang = st.config.lang;
    let list = match campaigns::member_list(&st, id.clone()).await {
        Ok(m) => m,
        Err(e) if e.status == StatusCode::NOT_FOUND => return super::not_found(lang),
        Err(e) => return super::unavailable(lang, &e.message),
    };
    let steps: Vec<String> = st
        .rules
        .as_ref()
        .and_then(|r| {
            let set = r.current();
            set.campaign(&id)
                .map(|c| c.steps.iter().map(|s| s.id.clone()).collect())
        })
        .unwrap_or_default();
    let title = t!("board.campaigns.members", locale = lang.code(), id = id);
    let mut body = header(lang, &title, (PATH, "board.campaigns.back"));
    body.push_str(&flash(lang, &q, &list));
    body.push_str("<main>\n");
    if list.members.is_empty() {
        let _ = writeln!(
            body,
            "<p class=\"empty\">{}</p>",
            esc(&tr(lang, "board.campaigns.no_members"))
        );
    } else {
        body.push_str(&table(&st, lang, &here, &list, &steps));
    }
    body.push_str("</main>\n");
    super::html_page(lang, StatusCode::OK, &title, CSS, &body, "")
}

fn table(
    st: &AppState,
    lang: Lang,
    here: &str,
    list: &CampaignMembers,
    steps: &[String],
) -> String {
    let mut s = String::from("<table class=\"members\"><thead><tr>");
    for k in [
        "board.campaigns.col.name",
        "board.campaigns.col.step",
        "board.campaigns.col.due",
        "board.campaigns.col.status",
    ] {
        let _ = write!(s, "<th>{}</th>", esc(&tr(lang, k)));
    }
    s.push_str("<th></th></tr></thead><tbody>\n");
    for m in &list.members {
        let due = m
            .next_at
            .map(|t| local_time(t, st.config.tz))
            .unwrap_or_default();
        let _ = write!(
            s,
            "<tr id=\"m-{cid}\"><td>{}<br><small>{cid}</small></td><td>{}</td><td>{}</td><td>{}</td><td>",
            esc(&display_name(lang, m)),
            esc(m.step.as_deref().unwrap_or("")),
            esc(&due),
            esc(&status(lang, m)),
            cid = esc(&m.contact_id),
        );
        if m.status == "active" {
            let action = format!("{here}/members/{}", pct(&m.contact_id));
            let _ = write!(
                s,
                "<form method=\"post\" action=\"{action}/leave\" class=\"act\"><button type=\"submit\" class=\"resolve\">{}</button></form>",
                esc(&tr(lang, "board.campaigns.take_out"))
            );
            if m.step.is_some() {
                let _ = write!(
                    s,
                    "<form method=\"post\" action=\"{action}/move\" class=\"act\"><select name=\"step\" aria-label=\"{label}\">",
                    label = esc(&tr(lang, "board.campaigns.move"))
                );
                for step in steps {
                    let sel = if m.step.as_deref() == Some(step) {
                        " selected"
                    } else {
                        ""
                    };
                    let _ = write!(s, "<option{sel}>{}</option>", esc(step));
                }
                let _ = write!(
                    s,
                    "</select><button type=\"submit\" class=\"claim\">{}</button></form>",
                    esc(&tr(lang, "board.campaigns.move"))
                );
            }
        }
        s.push_str("</td></tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

fn display_name(lang: Lang, m: &MemberView) -> String {
    m.name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            t!(
                "board.card.customer",
                locale = lang.code(),
                id = m.contact_id
            )
            .into_owned()
        })
}

fn status(lang: Lang, m: &MemberView) -> String {
    match (m.status.as_str(), m.left_reason.as_deref()) {
        ("left", Some(why)) => t!(
            "board.campaigns.left_because",
            locale = lang.code(),
            why = why
        )
        .into_owned(),
        ("active" | "done" | "left", _) => {
            tr(lang, &format!("board.campaigns.status.{}", m.status)).into_owned()
        }
        (other, _) => other.to_string(),
    }
}

/// The message after an action: fixed words, and the member's name as the store has it (what
/// the URL carries is only looked up, never shown).
fn flash(lang: Lang, q: &MembersQuery, list: &CampaignMembers) -> String {
    let l = lang.code();
    let member = q
        .contact
        .as_deref()
        .and_then(|c| list.members.iter().find(|m| m.contact_id == c));
    let (cls, text) = match (q.msg.as_deref(), member) {
        (Some("left"), Some(m)) => (
            "ok",
            t!(
                "board.campaigns.flash.left",
                locale = l,
                name = display_name(lang, m)
            ),
        ),
        (Some("moved"), Some(m)) => {
            let step = m.step.clone().unwrap_or_default();
            (
                "ok",
                t!(
                    "board.campaigns.flash.moved",
                    locale = l,
                    name = display_name(lang, m),
                    step = step
                ),
            )
        }
        (Some("failed"), _) => ("bad", tr(lang, "board.campaigns.flash.failed")),
        _ => return String::new(),
    };
    format!(
        "<p class=\"flash {cls}\" role=\"status\">{}</p>\n",
        esc(&text)
    )
}

#[derive(Deserialize)]
pub struct MoveForm {
    step: Option<String>,
}

/// `POST …/members/{contact}/leave` and `…/move` from the page.
pub async fn act(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((id, contact, action)): Path<(String, String, String)>,
    Form(f): Form<MoveForm>,
) -> Response {
    let here = format!("{PATH}/{}", pct(&id));
    if let Some(r) = gate(&st, &headers, &here) {
        return r;
    }
    let lang = st.config.lang;
    if !same_origin(&headers) {
        return super::refused_origin(lang);
    }
    let done = match action.as_str() {
        "leave" => campaigns::take_out(&st, &id, &contact)
            .await
            .map(|_| "left"),
        "move" => {
            let step = f.step.unwrap_or_default();
            campaigns::move_member(&st, &id, &contact, &step)
                .await
                .map(|_| "moved")
        }
        _ => return super::not_found(lang),
    };
    let msg = done.unwrap_or("failed");
    see_other(
        &format!(
            "{here}?msg={msg}&contact={}#m-{}",
            pct(&contact),
            pct(&contact)
        ),
        &[],
    )
}

fn pct(s: &str) -> String {
    super::pct_encode(s)
}

/// What the campaigns' tables add to the board's style.
const CSS: &str = "table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e4e7ec;vertical-align:top}td.n{text-align:right}.campaign h2{margin:.1rem 0 .4rem;font-size:1.05rem}form.act{display:inline-flex;gap:.3rem;margin:.15rem .3rem .15rem 0}";

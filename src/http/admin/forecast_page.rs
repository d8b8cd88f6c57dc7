//! `/admin/forecast.html` (issue 28): a page where staff paste an edited rule file, and see what
//! it would have done over the last 28 days (or will do over the coming days) beside the
//! running rules: a chart and a table per day, a table per rule, what the forecast could not
//! know. Words from `locales/forecast.yml`, in the shop's language.
//!
//! It takes the admin bearer token, or the session cookie the report page sets (open
//! `/admin/report.html?token=…` once). The form posts back to the page (the cookie is
//! SameSite=Strict, so another site cannot post it).
//!
//! A draft that does not load is answered at once. Otherwise the forecast runs in the
//! background (`forecast_runs`) and the post is sent on to `?run=ID`, a page that shows each
//! rule set's progress and refreshes itself every 2 seconds until the result is there.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::forecast::{ForecastDraft, ForecastView, SideBySide};
use super::forecast_runs::{self, ForecastRun, RunState};
use crate::http::{esc, AppState};
use crate::i18n::tr;
use crate::report::spend::vnd;

/// Where the page is served.
pub const PAGE_PATH: &str = "/admin/forecast.html";

#[derive(Debug, Default, Deserialize)]
pub struct PageForm {
    /// The file's name in the rules folder (`greetings.yaml`).
    #[serde(default)]
    name: String,
    #[serde(default)]
    yaml: String,
    /// Empty: the last 28 days; else e.g. `14d`.
    #[serde(default)]
    ahead: String,
}

/// `?run=ID`: the background run to show.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    run: Option<String>,
}

/// The report page's access: the admin token, or the session cookie its sign-in sets.
fn granted(st: &AppState, headers: &HeaderMap) -> bool {
    super::report_page::granted(st, headers) == Some(true)
}

/// `GET /admin/forecast.html`: the form; with `?run=ID`, that run's progress or result beside
/// the draft it was started with.
pub async fn page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if !granted(&st, &headers) {
        return refused(&st);
    }
    let Some(id) = q.run else {
        return Html(render(&st, &PageForm::default(), Shown::Nothing)).into_response();
    };
    if let Some(machine) = st.forecasts.elsewhere(&id) {
        return forecast_runs::replay_on(&machine);
    }
    let Some(entry) = st.forecasts.get(&id) else {
        let gone = Shown::Note("forecast.page.gone", None);
        return Html(render(&st, &PageForm::default(), gone)).into_response();
    };
    let (name, yaml) = entry.files.into_iter().next().unwrap_or_default();
    let form = PageForm {
        name,
        yaml,
        ahead: entry.ahead.unwrap_or_default(),
    };
    Html(render(&st, &form, Shown::Run(&entry.run))).into_response()
}

/// `POST /admin/forecast.html`: a draft that does not load is shown at once with its
/// problems; one that loads starts a forecast, and the browser goes on to follow it.
pub async fn run(
    State(st): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<PageForm>,
) -> Response {
    if !granted(&st, &headers) {
        return refused(&st);
    }
    let req = ForecastDraft {
        files: BTreeMap::from([(form.name.trim().to_string(), form.yaml.clone())]),
        from: None,
        to: None,
        ahead: Some(form.ahead.trim().to_string()).filter(|a| !a.is_empty()),
        every: None,
    };
    match forecast_runs::begin(&st, req).await {
        Ok(run) if run.state == RunState::Running => {
            Redirect::to(&format!("{PAGE_PATH}?run={}", run.id)).into_response()
        }
        Ok(run) => Html(render(&st, &form, Shown::Run(&run))).into_response(),
        // Another forecast is running here: a link to it, the draft kept in the form.
        Err(e) if e.code == "forecast_running" => {
            let busy = Shown::Note("forecast.page.busy", st.forecasts.running());
            Html(render(&st, &form, busy)).into_response()
        }
        Err(e) => {
            // A span mistyped is said in the staff's words (the API's message is English).
            let view = ForecastView::refused(vec![e.for_staff().to_string()]);
            Html(render(&st, &form, Shown::Result(&view))).into_response()
        }
    }
}

/// What the page shows under the form.
enum Shown<'a> {
    Nothing,
    Run(&'a ForecastRun),
    Result(&'a ForecastView),
    /// A message (its locale key), with a link to a run.
    Note(&'static str, Option<String>),
}

fn refused(st: &AppState) -> Response {
    let title = esc(&tr(st.config.lang, "forecast.page.title"));
    let text = esc(&tr(st.config.lang, "forecast.page.sign_in"));
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
    );
    (StatusCode::UNAUTHORIZED, Html(body)).into_response()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}\
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}\
td:first-child,th:first-child{text-align:left}textarea{width:100%;height:16rem;font-family:monospace}\
.up{color:#b00}.down{color:#070}.problems{color:#b00;white-space:pre-wrap}";

fn render(st: &AppState, form: &PageForm, shown: Shown) -> String {
    let lang = st.config.lang;
    let t = |k: &str| esc(&tr(lang, k));
    let mut out = String::new();
    let running = matches!(shown, Shown::Run(r) if r.state == RunState::Running);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"{}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">{}<title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1><p>{}</p>",
        lang.code(),
        if running { "<meta http-equiv=\"refresh\" content=\"2\">" } else { "" },
        t("forecast.page.title"),
        t("forecast.page.title"),
        t("forecast.page.intro"),
    );
    let _ = write!(
        out,
        "<form method=\"post\"><label>{}<br><input name=\"name\" value=\"{}\" placeholder=\"greetings.yaml\" required></label><br><textarea name=\"yaml\" required>{}</textarea><br><label>{}<br><input name=\"ahead\" value=\"{}\" placeholder=\"14d\" size=\"5\"></label> <button>{}</button></form>",
        t("forecast.page.files"),
        esc(&form.name),
        esc(&form.yaml),
        t("forecast.page.ahead"),
        esc(&form.ahead),
        t("forecast.page.run"),
    );
    match shown {
        Shown::Nothing => {}
        Shown::Result(v) => result(&mut out, st, v),
        Shown::Note(key, run) => {
            let _ = write!(out, "<p class=\"problems\">{}", t(key));
            if let Some(id) = run {
                let _ = write!(
                    out,
                    " <a href=\"{PAGE_PATH}?run={}\">{}</a>",
                    esc(&id),
                    esc(&id)
                );
            }
            out.push_str("</p>");
        }
        Shown::Run(r) => match (&r.state, &r.result, &r.error) {
            (RunState::Running, _, _) => progress(&mut out, st, r),
            (RunState::Done, Some(v), _) => result(&mut out, st, v),
            (_, _, error) => {
                let _ = write!(
                    out,
                    "<p class=\"problems\">{}\n{}</p>",
                    t("forecast.page.failed"),
                    esc(error.as_deref().unwrap_or_default())
                );
            }
        },
    }
    out.push_str("</body></html>");
    out
}

/// How far each rule set's run has got: events replayed and the share of the window.
fn progress(out: &mut String, st: &AppState, r: &ForecastRun) {
    let lang = st.config.lang;
    let _ = write!(
        out,
        "<div class=\"progress\" data-run=\"{}\"><p>{}</p><ul>",
        esc(&r.id),
        esc(&tr(lang, "forecast.page.running"))
    );
    if r.progress.is_empty() {
        let _ = write!(out, "<li>{}</li>", esc(&tr(lang, "forecast.page.waiting")));
    }
    for step in &r.progress {
        let percent = (step.share * 100.0).floor().clamp(0.0, 100.0);
        let label = crate::forecast::text::words(
            lang,
            "forecast.page.step",
            &[
                (
                    "run",
                    tr(lang, &format!("forecast.col.{}", step.run)).into(),
                ),
                ("events", step.events.to_string()),
                ("percent", format!("{percent}")),
            ],
        );
        let _ = write!(
            out,
            "<li data-step=\"{}\"><progress max=\"100\" value=\"{percent}\"></progress> {}</li>",
            esc(step.run),
            esc(&label)
        );
    }
    out.push_str("</ul></div>");
}

fn result(out: &mut String, st: &AppState, v: &ForecastView) {
    let lang = st.config.lang;
    let t = |k: &str| esc(&tr(lang, k));
    if !v.ok {
        let _ = write!(
            out,
            "<p class=\"problems\">{}\n{}</p>",
            t("forecast.refused"),
            esc(&v.problems.join("\n"))
        );
        return;
    }
    let _ = write!(
        out,
        "<p><b>{}</b></p>",
        esc(&v.summary).replace('\n', "<br>")
    );
    let _ = write!(
        out,
        "<h2>{}</h2>{}",
        t("forecast.page.chart"),
        chart(&v.days)
    );
    let heads = format!(
        "<tr><th>{{}}</th><th>{} ({})</th><th>{} ({})</th><th>{}</th><th>{}</th><th>{}</th><th>{} ({})</th><th>{} ({})</th></tr>",
        t("forecast.col.sends"), t("forecast.col.current"),
        t("forecast.col.sends"), t("forecast.col.draft"),
        t("forecast.col.diff"), t("forecast.col.skips"), t("forecast.col.handoffs"),
        t("forecast.col.cost"), t("forecast.col.current"),
        t("forecast.col.cost"), t("forecast.col.draft"),
    );
    for (title, col, class, rows) in [
        ("forecast.section.days", "forecast.col.day", "days", &v.days),
        (
            "forecast.section.rules",
            "forecast.col.rule",
            "rules",
            &v.rules,
        ),
    ] {
        let _ = write!(
            out,
            "<h2>{}</h2><table class=\"{class}\">{}",
            t(title),
            heads.replacen("{}", &t(col), 1)
        );
        for r in rows {
            let key = if r.key.is_empty() {
                tr(lang, "forecast.no_rule")
            } else {
                r.key.as_str().into()
            };
            row(out, &key, r);
        }
        if let Some(total) = &v.total {
            row(out, &tr(lang, "forecast.page.total"), total);
        }
        out.push_str("</table>");
    }
    let _ = write!(out, "<h2>{}</h2><ul>", t("forecast.section.unknown"));
    for u in &v.cannot_know {
        let _ = write!(out, "<li>{}</li>", esc(u));
    }
    out.push_str("</ul>");
}

/// One row: `label` (a rule, a day, the total), then the running rules and the draft.
fn row(out: &mut String, label: &str, r: &SideBySide) {
    let d = r.draft.sends - r.current.sends;
    let class = match d.signum() {
        1 => "up",
        -1 => "down",
        _ => "",
    };
    let _ = write!(
        out,
        "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(label),
        r.current.sends,
        r.draft.sends,
        esc(&crate::forecast::text::signed(d)),
        r.draft.skips.values().sum::<i64>(),
        r.draft.handoffs,
        esc(&vnd(r.current.vnd)),
        esc(&vnd(r.draft.vnd)),
    );
}

/// Bars per day (a `g.day` each): the running rules' sends (grey) beside the draft's (blue),
/// inline SVG.
pub fn chart(days: &[SideBySide]) -> String {
    let max = days
        .iter()
        .map(|d| d.current.sends.max(d.draft.sends))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (w, h, bar) = (22.0 * days.len().max(1) as f64, 120.0, 9.0);
    let mut svg = format!(
        "<svg class=\"chart\" role=\"img\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" xmlns=\"http://www.w3.org/2000/svg\">",
        h + 14.0,
        h + 14.0
    );
    for (i, d) in days.iter().enumerate() {
        let x = i as f64 * 22.0 + 1.0;
        let _ = write!(svg, "<g class=\"day\" data-day=\"{}\">", esc(&d.key));
        for (n, (v, colour, side)) in [
            (d.current.sends, "#999", "current"),
            (d.draft.sends, "#2a6fdb", "draft"),
        ]
        .into_iter()
        .enumerate()
        {
            let bh = (v as f64 / max * h).round();
            let _ = write!(
                svg,
                "<rect class=\"{side}\" data-sends=\"{v}\" x=\"{}\" y=\"{}\" width=\"{bar}\" height=\"{bh}\" fill=\"{colour}\"><title>{}: {v}</title></rect>",
                x + n as f64 * (bar + 1.0),
                h - bh,
                esc(&d.key)
            );
        }
        let _ = write!(
            svg,
            "<text x=\"{x}\" y=\"{}\" font-size=\"8\">{}</text>",
            h + 11.0,
            esc(d.key.get(8..).unwrap_or(&d.key))
        );
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

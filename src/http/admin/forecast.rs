//! `POST /admin/forecast` (issue 28): what draft rule files would have done over a past window
//! and will do over the coming days, beside the running rules — per rule and per day. Runs in
//! a scratch copy: nothing is sent, the database is only read.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ErrorBody};
use crate::forecast::{self, draft, Counts, Forecast};
use crate::http::AppState;
use crate::rules::RuleSet;

/// Draft rule files and what to forecast.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"files": {"greetings.yaml": "rules:\n  - id: hello\n    when: message\n    do:\n      - send: \"Xin chào!\"\n"}, "ahead": "1d"}))]
pub struct ForecastDraft {
    /// File name (`*.yaml` or `*.yml`, no folders) → its YAML text. A name of a file in the
    /// running folder stands in for it; a new name is added beside the others.
    pub files: BTreeMap<String, String>,
    /// A past window's first day (`2027-03-01`, OA time zone) or RFC 3339 instant; default:
    /// 28 days ago.
    pub from: Option<String>,
    /// Its last day (inclusive) or instant; default: yesterday.
    pub to: Option<String>,
    /// The coming days instead of a past window, e.g. `14d` (at most `92d`).
    pub ahead: Option<String>,
    /// The scheduler's cadence in the forecast, e.g. `1m` (default `10m`; the service's own
    /// cadence gives the exact send times, and with them the exact prices near a free tier's
    /// end).
    pub every: Option<String>,
}

/// One rule's, day's or the whole run's counts.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct CountsView {
    pub fires: i64,
    /// Messages sent (tags mirrored to Zalo not counted).
    pub sends: i64,
    /// Sends by channel (`zalo`, `zns`, `sms`, `email`, `chat`, `task`, `zalo_tag`).
    pub by_channel: BTreeMap<String, i64>,
    /// Billed sends by class (`consultation_free`, `promotion`, `template_phone`…).
    pub by_class: BTreeMap<String, i64>,
    /// Sends not made, by reason (`not_configured`, `held`, `opted_out`, `dead`…).
    pub skips: BTreeMap<String, i64>,
    pub handoffs: i64,
    /// Template messages, which count against the OA's daily quota.
    pub templates: i64,
    pub vnd: i64,
}

impl From<&Counts> for CountsView {
    fn from(c: &Counts) -> Self {
        CountsView {
            fires: c.fires,
            sends: c.sent(),
            by_channel: c.sends.clone(),
            by_class: c.classes.clone(),
            skips: c.skips.clone(),
            handoffs: c.handoffs,
            templates: c.templates,
            vnd: c.vnd,
        }
    }
}

/// The running rules and the draft side by side (and, for a replay, what the outbox sent).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SideBySide {
    /// The rule id (`""`: sends no rule made), the day (`2027-03-01`) or `total`.
    #[schema(example = "hello")]
    pub key: String,
    pub current: CountsView,
    pub draft: CountsView,
    /// Replays: what the live outbox recorded.
    pub actual: Option<CountsView>,
}

/// Expected replies and returns of a rule's extra sends (95 % ranges from its past outcomes).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExpectationView {
    pub rule: String,
    pub extra_sends: i64,
    pub past_sends: i64,
    pub replies_low: i64,
    pub replies_high: i64,
    pub returns_low: i64,
    pub returns_high: i64,
}

/// A forecast, or the draft's problems.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastView {
    /// False when the draft does not load: `problems` says why.
    pub ok: bool,
    /// `path:line:col: message` per problem.
    pub problems: Vec<String>,
    /// `replay` or `ahead`.
    pub mode: String,
    /// The window, ms since the epoch.
    pub from: i64,
    pub to: i64,
    pub events: u64,
    pub contacts: u64,
    /// The OA's daily template quota, when Zalo told it.
    pub template_quota: Option<i64>,
    pub total: Option<SideBySide>,
    pub days: Vec<SideBySide>,
    pub rules: Vec<SideBySide>,
    pub outlook: Vec<ExpectationView>,
    /// What the forecast could not know, in the staff's language.
    pub cannot_know: Vec<String>,
    /// The short form, in the staff's language.
    pub summary: String,
}

impl ForecastView {
    pub fn refused(problems: Vec<String>) -> ForecastView {
        ForecastView {
            ok: false,
            problems,
            mode: String::new(),
            from: 0,
            to: 0,
            events: 0,
            contacts: 0,
            template_quota: None,
            total: None,
            days: Vec::new(),
            rules: Vec::new(),
            outlook: Vec::new(),
            cannot_know: Vec::new(),
            summary: String::new(),
        }
    }

    pub fn of(f: &Forecast, st: &AppState) -> ForecastView {
        let (tz, lang) = (st.config.tz, st.config.lang);
        let side = |key: String, a: Option<&Counts>, b: Option<&Counts>, x: Option<&Counts>| {
            let empty = Counts::default();
            SideBySide {
                key,
                current: a.unwrap_or(&empty).into(),
                draft: b.unwrap_or(&empty).into(),
                actual: x.map(CountsView::from),
            }
        };
        let (cd, dd) = (f.current.per_day(), f.draft.per_day());
        let ad = f.actual.as_ref().map(|a| a.per_day()).unwrap_or_default();
        let mut days: Vec<_> = cd.keys().chain(dd.keys()).copied().collect();
        days.sort();
        days.dedup();
        let (cr, dr) = (f.current.per_rule(), f.draft.per_rule());
        let ar = f.actual.as_ref().map(|a| a.per_rule()).unwrap_or_default();
        let mut rules: Vec<&String> = cr.keys().chain(dr.keys()).collect();
        rules.sort();
        rules.dedup();
        let actual_total = f.actual.as_ref().map(|a| a.total());
        let text = forecast::text::report(f, tz, lang);
        let cannot_know = text
            .lines()
            .filter_map(|l| l.strip_prefix("  - "))
            .map(str::to_string)
            .collect();
        ForecastView {
            ok: true,
            problems: Vec::new(),
            mode: f.mode.to_string(),
            from: f.window.from,
            to: f.window.to,
            events: f.events,
            contacts: f.contacts,
            template_quota: f.template_quota,
            total: Some(side(
                "total".into(),
                Some(&f.current.total()),
                Some(&f.draft.total()),
                actual_total.as_ref(),
            )),
            days: days
                .iter()
                .map(|d| {
                    let k = if f.actual.is_some() {
                        Some(ad.get(d).cloned().unwrap_or_default())
                    } else {
                        None
                    };
                    side(d.to_string(), cd.get(d), dd.get(d), k.as_ref())
                })
                .collect(),
            rules: rules
                .into_iter()
                .map(|r| {
                    let x = f
                        .actual
                        .as_ref()
                        .map(|_| ar.get(r).cloned().unwrap_or_default());
                    side(r.clone(), cr.get(r), dr.get(r), x.as_ref())
                })
                .collect(),
            outlook: f
                .outlook
                .iter()
                .map(|e| ExpectationView {
                    rule: e.rule.clone(),
                    extra_sends: e.extra_sends,
                    past_sends: e.past_sends,
                    replies_low: e.replies.0,
                    replies_high: e.replies.1,
                    returns_low: e.returns.0,
                    returns_high: e.returns.1,
                })
                .collect(),
            cannot_know,
            summary: forecast::text::short(f, tz, lang),
        }
    }
}

/// A draft that loads, with what it is run beside and how: ready to run.
pub struct Prepared {
    rules: (Arc<RuleSet>, Arc<RuleSet>),
    plan: draft::Plan,
    settings: forecast::Settings,
}

/// What a request comes to before anything runs.
pub enum Prepare {
    Ready(Box<Prepared>),
    /// The draft does not load: its problems, with line and column.
    Refused(Box<ForecastView>),
}

/// Reads the request's draft beside the running folder and checks what it asks: a draft that
/// does not load is `Refused`; an unreadable window, span or cadence is an error.
pub async fn prepare(st: &AppState, req: ForecastDraft) -> Result<Prepare, ApiError> {
    if req.files.is_empty() || req.files.len() > draft::MAX_FILES {
        return Err(ApiError::invalid(format!(
            "give between 1 and {} files",
            draft::MAX_FILES
        )));
    }
    if let Some(bad) = req.files.keys().find(|n| !draft::plain_name(n)) {
        return Err(ApiError::invalid(format!(
            "{bad:?} is not a rule file name (name.yaml or name.yml, no folders)"
        )));
    }
    let config = st.config.clone();
    let files = req.files;
    let loaded = tokio::task::spawn_blocking(move || {
        let opts = crate::wiring::rule_load_options(&config);
        let draft = draft::load_overlay(&config.rules_dir, &files, &opts);
        let current = forecast::load_rules(&config.rules_dir, &opts);
        (draft, current)
    })
    .await
    .map_err(|_| ApiError::invalid("the draft could not be read"))?;
    let draft = match loaded.0 {
        Ok(d) => Arc::new(d),
        Err(diags) => {
            return Ok(Prepare::Refused(Box::new(ForecastView::refused(
                diags.iter().map(|d| d.to_string()).collect(),
            ))))
        }
    };
    let current = match (&st.rules, loaded.1) {
        (Some(w), _) => w.current(),
        (None, Ok(c)) => Arc::new(c),
        (None, Err(problems)) => {
            return Err(ApiError::invalid(format!(
                "the running rules do not load:\n{problems}"
            )))
        }
    };
    let mut settings = forecast::Settings::from_config(&st.config);
    if let Some(e) = req.every.as_deref() {
        settings.every_ms = forecast::parse_span(e)
            .map_err(|e| bad_ask(st, e))?
            .max(forecast::MIN_EVERY);
    }
    let ask = draft::Ask {
        from: req.from,
        to: req.to,
        ahead: req.ahead,
    };
    let plan = ask
        .plan(st.clock.now(), settings.tz)
        .map_err(|e| bad_ask(st, e))?;
    Ok(Prepare::Ready(Box::new(Prepared {
        rules: (current, draft),
        plan,
        settings,
    })))
}

/// A window, span or cadence that cannot be read or is too long: 400 `bad_forecast`, in English
/// for programs and in the staff's words for the page.
fn bad_ask(st: &AppState, e: forecast::BadAsk) -> ApiError {
    ApiError::bad_request("bad_forecast", e.to_string()).with_words(e.words(st.config.lang))
}

/// Runs a prepared forecast, telling `progress` how far it has got.
pub async fn execute(
    st: &AppState,
    p: Prepared,
    progress: Option<forecast::Progress>,
) -> Result<ForecastView, ApiError> {
    let f = draft::run(&st.store, p.rules, p.plan, &p.settings, progress)
        .await
        .map_err(|e| ApiError::bad_request("bad_forecast", format!("{e:#}")))?;
    Ok(ForecastView::of(&f, st))
}

/// Prepares and runs a forecast within the request.
pub async fn run(st: &AppState, req: ForecastDraft) -> Result<ForecastView, ApiError> {
    match prepare(st, req).await? {
        Prepare::Refused(view) => Ok(*view),
        Prepare::Ready(p) => execute(st, *p, None).await,
    }
}

/// Forecasts draft rule files: what they would have done over a past window (default: the
/// last 28 days) or will do over the coming days (`ahead`), beside the running rules, per rule
/// and per day — fires, sends by channel and class, skips by reason, handoffs, template
/// messages and cost in VND — and what the forecast could not know.
///
/// The draft is loaded together with the other files of the running folder. The forecast runs
/// in a scratch copy of its own: nothing is sent, nothing in the database changes.
///
/// It runs within the request, which the service ends after 10 seconds (408): enough for a
/// few tens of thousands of stored events. `POST /admin/forecasts` runs it in the background
/// with its progress to follow, however long it takes.
#[utoipa::path(
    post,
    path = "/admin/forecast",
    tag = "rules",
    operation_id = "forecast_rules",
    request_body = ForecastDraft,
    responses(
        (status = 200, description = "The forecast (`ok` false with `problems` when the draft does not load)", body = ForecastView),
        (status = 400, description = "A window or span that cannot be read or is too long (`bad_forecast`)", body = ErrorBody),
        (status = 422, description = "No files, too many, or a file name that is not `name.yaml` (`invalid`)", body = ErrorBody),
    )
)]
pub async fn forecast(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<ForecastDraft>,
) -> Result<Json<ForecastView>, ApiError> {
    Ok(Json(run(&st, req).await?))
}

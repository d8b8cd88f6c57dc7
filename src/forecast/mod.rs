//! What-if (issue 28): replays the stored events of a past window, and the scheduler's passes
//! over it, against draft rules and, side by side, the running ones — in a scratch SQLite copy
//! of its own, through the real engine, inbox processor, scheduler and sender (whose channels
//! send nothing). Nothing is sent and the live database is only read, page by page. The
//! forward projection (`ahead`) starts the scratch from the contacts as they are now and runs
//! the scheduler alone over the coming days.
//!
//! - [`scratch`]: the isolated copy and what it is seeded with;
//! - [`replay`]: one rule set's run over a window;
//! - [`tally`]: what a run did, per day and rule;
//! - [`text`]: the report staff read (`zaloflow forecast`, `rules check --forecast`);
//! - [`outlook`]: expected replies and returns, with intervals, from past outcomes.

pub mod draft;
pub mod dry;
pub mod emails;
pub mod outbox;
pub mod outlook;
pub mod replay;
pub mod scratch;
pub mod tally;
pub mod text;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail};
use chrono::TimeZone;
use serde::Serialize;

use crate::channels::configured::Configured;
use crate::config::Config;
use crate::i18n::Lang;
use crate::rules::model::{DAY, MINUTE};
use crate::rules::{load_dir, LoadOptions, RuleSet};
use crate::store::DynStore;

pub use tally::{Counts, Tally};

/// The finest cadence a forecast takes (a pass a minute, as `serve` by default).
pub const MIN_EVERY: i64 = MINUTE;

/// How many contacts' state a run keeps in memory at most (about a kilobyte each: 50,000 in
/// each of two runs raised the benchmark's peak by about 90 MiB).
pub const STATES_IN_MEMORY: usize = 200_000;

/// What a forecast needs of the deployment's settings (built from `Config` by the command).
#[derive(Debug, Clone)]
pub struct Settings {
    pub tz: chrono_tz::Tz,
    pub lang: Lang,
    /// The scheduler's cadence in the replay (default 10 minutes: within the grace a missed
    /// schedule occurrence keeps, so no occurrence is lost).
    pub every_ms: i64,
    pub handoff_policy: crate::handoff::HandoffPolicy,
    pub handoffs: crate::handoff::HandoffConfig,
    pub promotion_hours: (u32, u32),
    /// The deployment's channels: a send through one it lacks is skipped, as live.
    pub channels: Configured,
    pub cost: zaloflow_core::cost::CostPolicy,
    /// Where the scratch database goes (default: the system's temporary folder).
    pub scratch_dir: Option<PathBuf>,
    /// Live rows read per page.
    pub page: i64,
    /// Keep each send for exact comparisons (tests; memory grows with the sends).
    pub keep_sends: bool,
    /// The copy's sends (but emails) are decided in memory (`outbox`) rather than through its
    /// store's outbox table: the same decisions, in a fraction of the time. Off only to
    /// compare the two (tests).
    pub sends_in_memory: bool,
    /// The contacts' state is kept in memory between batches (`engine::state::StateCache`,
    /// up to this many contacts a run) rather than read back from the copy each batch. 0:
    /// always read back (to compare the two, tests).
    pub states_in_memory: usize,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            tz: config.tz,
            lang: config.lang,
            every_ms: 10 * MINUTE,
            handoff_policy: config.handoff_policy(),
            handoffs: config.handoffs.clone(),
            promotion_hours: config.promotion_hours,
            channels: config.configured_channels(),
            cost: config.cost,
            scratch_dir: None,
            page: 2000,
            keep_sends: false,
            sends_in_memory: true,
            states_in_memory: STATES_IN_MEMORY,
        }
    }
}

/// The instants a forecast covers, `[from, to)` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: i64,
    pub to: i64,
}

impl Window {
    /// The last `days` whole local days before `now`'s day.
    pub fn last_days(now: i64, days: i64, tz: chrono_tz::Tz) -> Window {
        let today = day_start(now, tz);
        Window {
            from: today - days * DAY,
            to: today,
        }
    }

    /// From `--from`/`--to` (dates in the OA time zone, `--to` inclusive, or RFC 3339 instants).
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        now: i64,
        tz: chrono_tz::Tz,
    ) -> Result<Window, BadAsk> {
        let default = Window::last_days(now, 28, tz);
        let from = match from {
            Some(s) => parse_instant(s, tz, false)?,
            None => default.from,
        };
        let to = match to {
            Some(s) => parse_instant(s, tz, true)?,
            None => default.to.max(from + DAY),
        };
        if to <= from {
            return Err(BadAsk::ToBeforeFrom);
        }
        Ok(Window { from, to })
    }
}

/// What staff asked of a forecast that cannot be read or will not run. The English `Display`
/// is the admin API's message; staff read [`BadAsk::words`] in their language (`zaloflow
/// forecast`, the forecast page; `locales/forecast.yml`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadAsk {
    #[error("{0:?} is neither a date (2027-03-01) nor an RFC 3339 time")]
    NotATime(String),
    #[error("{0:?} is not a duration (14d, 36h, 10m)")]
    NotASpan(String),
    #[error("{0:?} must be more than nothing")]
    NoSpan(String),
    #[error("--to must come after --from")]
    ToBeforeFrom,
    #[error("look at most {0} days ahead")]
    TooFarAhead(i64),
    #[error("replay at most {0} days")]
    TooLong(i64),
}

impl BadAsk {
    /// The reason in `lang`, with what was typed as it was typed.
    pub fn words(&self, lang: Lang) -> String {
        let (key, args): (&str, Vec<(&str, String)>) = match self {
            BadAsk::NotATime(s) => ("not_a_time", vec![("text", s.clone())]),
            BadAsk::NotASpan(s) => ("not_a_span", vec![("text", s.clone())]),
            BadAsk::NoSpan(s) => ("no_span", vec![("text", s.clone())]),
            BadAsk::ToBeforeFrom => ("to_before_from", vec![]),
            BadAsk::TooFarAhead(n) => ("too_far_ahead", vec![("days", n.to_string())]),
            BadAsk::TooLong(n) => ("too_long", vec![("days", n.to_string())]),
        };
        crate::i18n::words(lang, &format!("forecast.bad.{key}"), &args)
    }
}

/// A date (`2027-03-01`, the start of that local day; with `end`, the start of the next) or
/// an RFC 3339 instant.
pub fn parse_instant(s: &str, tz: chrono_tz::Tz, end: bool) -> Result<i64, BadAsk> {
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        let d = if end { d.succ_opt().unwrap_or(d) } else { d };
        // A zone without that midnight (none in Vietnam) is no date to start from either.
        let t = tz
            .from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .ok_or_else(|| BadAsk::NotATime(s.to_string()))?;
        return Ok(t.timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|d| d.timestamp_millis())
        .map_err(|_| BadAsk::NotATime(s.to_string()))
}

/// A duration like `14d`, `36h`, `10m`.
pub fn parse_span(s: &str) -> Result<i64, BadAsk> {
    let s = s.trim();
    let bad = || BadAsk::NotASpan(s.to_string());
    // The unit is the last character, whatever its width (`14đ` is no span, not a panic).
    let (n, unit) = s.split_at(s.char_indices().last().map_or(0, |(i, _)| i));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit = match unit {
        "d" => DAY,
        "h" => 3_600_000,
        "m" => MINUTE,
        _ => return Err(bad()),
    };
    let ms = n.checked_mul(unit).ok_or_else(bad)?;
    if ms <= 0 {
        return Err(BadAsk::NoSpan(s.to_string()));
    }
    Ok(ms)
}

/// The start of `at`'s local day.
pub fn day_start(at: i64, tz: chrono_tz::Tz) -> i64 {
    let d = tz
        .timestamp_millis_opt(at)
        .single()
        .map(|t| t.date_naive())
        .unwrap_or_default();
    tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
        .earliest()
        .map(|t| t.timestamp_millis())
        .unwrap_or(at)
}

/// Loads a rules folder as the service would, or the problems with `path:line:col`.
pub fn load_rules(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, String> {
    load_dir(dir, opts).map_err(|diags| {
        diags
            .iter()
            .map(|d| format!("{d}\n"))
            .collect::<Vec<_>>()
            .concat()
    })
}

/// A whole forecast: the running rules' run, the draft's, and what the live outbox did.
#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub window: Window,
    /// `replay` (a past window) or `ahead` (the coming days).
    pub mode: &'static str,
    pub current: Tally,
    pub draft: Tally,
    /// What the live outbox recorded over the window (replays only).
    pub actual: Option<Tally>,
    /// Events replayed.
    pub events: u64,
    /// Contacts the scratch started with.
    pub contacts: u64,
    /// The OA's daily template quota, when Zalo told it.
    pub template_quota: Option<i64>,
    /// Expected replies and returns of the draft's extra sends, where outcomes exist.
    pub outlook: Vec<outlook::Expectation>,
    /// The scheduler's cadence in the run (ms).
    pub every_ms: i64,
}

/// Where one of a forecast's two runs has got to, at the end of a simulated day.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Step {
    /// `current` or `draft`.
    pub run: &'static str,
    /// Stored events replayed so far.
    pub events: u64,
    /// The share of the window's time replayed, 0 to 1.
    pub share: f64,
}

/// Progress of a run, for whoever shows it (the command prints it to stderr, the admin API
/// keeps it for `GET /admin/forecasts/{id}`).
pub type Progress = Arc<dyn Fn(Step) + Send + Sync>;

/// Replays `window` against `current` and `draft` (side by side, each in its own scratch
/// copy) and returns both tallies beside what the live outbox did.
pub async fn replay_window(
    live: &DynStore,
    current: Arc<RuleSet>,
    draft: Arc<RuleSet>,
    window: Window,
    settings: &Settings,
    progress: Option<Progress>,
) -> anyhow::Result<Forecast> {
    forecast(
        live,
        (current, draft),
        window,
        settings,
        progress,
        replay::Mode::Past,
    )
    .await
}

/// Projects the coming `ahead` ms from `now`: the contacts as they are, the scheduler alone.
pub async fn project_ahead(
    live: &DynStore,
    current: Arc<RuleSet>,
    draft: Arc<RuleSet>,
    now: i64,
    ahead: i64,
    settings: &Settings,
    progress: Option<Progress>,
) -> anyhow::Result<Forecast> {
    let window = Window {
        from: now,
        to: now + ahead,
    };
    forecast(
        live,
        (current, draft),
        window,
        settings,
        progress,
        replay::Mode::Ahead,
    )
    .await
}

/// Runs `current` and `draft` side by side (on the runtime's threads), each in its own
/// scratch copy, handed the live store's events read once, a page at a time; then what the live store
/// adds: the outbox of a past window, the template quota, the expected outcomes.
async fn forecast(
    live: &DynStore,
    (current, draft): (Arc<RuleSet>, Arc<RuleSet>),
    window: Window,
    settings: &Settings,
    progress: Option<Progress>,
    mode: replay::Mode,
) -> anyhow::Result<Forecast> {
    // The live events are read once, for both runs.
    let mut pages = match mode {
        replay::Mode::Past => replay::read_events(live.clone(), window, settings.page, 2)
            .into_iter()
            .map(Some)
            .collect(),
        replay::Mode::Ahead => vec![None, None],
    };
    let spawn = |rules: Arc<RuleSet>, label: &'static str, events: Option<replay::Pages>| {
        let (live, settings, progress) = (live.clone(), settings.clone(), progress.clone());
        tokio::spawn(async move {
            replay::run(&live, rules, window, &settings, label, progress, events).await
        })
    };
    let (d, c) = (pages.pop().flatten(), pages.pop().flatten());
    let (a, b) = tokio::join!(spawn(current, "current", c), spawn(draft, "draft", d));
    let (cur, new) = (a??, b??);
    let actual = match mode {
        replay::Mode::Past => Some(
            tally::from_live(
                live,
                window,
                settings.tz,
                settings.page,
                settings.keep_sends,
            )
            .await?,
        ),
        replay::Mode::Ahead => None,
    };
    let template_quota = live.daily_quota().await?;
    let outlook = outlook::expect(live, &cur.tally, &new.tally, window).await?;
    Ok(Forecast {
        window,
        mode: match mode {
            replay::Mode::Past => "replay",
            replay::Mode::Ahead => "ahead",
        },
        current: cur.tally,
        draft: new.tally,
        actual,
        events: new.events,
        contacts: new.contacts,
        template_quota,
        outlook,
        every_ms: settings.every_ms,
    })
}

/// What `zaloflow forecast` was asked.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub draft: PathBuf,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `--ahead 14d`: the coming days instead of a past window.
    pub ahead: Option<String>,
    /// `--every 10m`: the scheduler's cadence in the replay.
    pub every: Option<String>,
    /// `--json`
    pub json: bool,
}

/// `zaloflow forecast`: the report, or why there is none. Exit code 0 on a report, 1 when
/// the draft does not load (its problems with `path:line:col`), 2 on a bad request.
pub async fn command(config: &Config, req: &Request) -> (String, i32) {
    let opts = crate::rule_load_options(config);
    let draft = match load_rules(&req.draft, &opts) {
        Ok(r) => Arc::new(r),
        Err(problems) => {
            let head = crate::i18n::tr(config.lang, "forecast.refused");
            return (format!("{head}\n{problems}"), 1);
        }
    };
    match run_command(config, req, draft).await {
        Ok(s) => (s, 0),
        Err(e) => match e.downcast_ref::<BadAsk>() {
            Some(bad) => (
                format!("zaloflow forecast: {}\n", bad.words(config.lang)),
                2,
            ),
            None => (format!("zaloflow forecast: {e:#}\n"), 2),
        },
    }
}

async fn run_command(
    config: &Config,
    req: &Request,
    draft: Arc<RuleSet>,
) -> anyhow::Result<String> {
    let opts = crate::rule_load_options(config);
    let current = match load_rules(&config.rules_dir, &opts) {
        Ok(r) => Arc::new(r),
        Err(problems) => bail!("{}", running_broken(config, &problems)),
    };
    let mut settings = Settings::from_config(config);
    if let Some(e) = &req.every {
        settings.every_ms = parse_span(e)?.max(MIN_EVERY);
    }
    // What was asked is read before the database is opened: a typo is told first. (No limit
    // on the span here, unlike over HTTP: the command runs on the operator's own time.)
    let now = crate::clock::system_now();
    let plan = match &req.ahead {
        Some(a) => draft::Plan::Ahead {
            now,
            ms: parse_span(a)?,
        },
        None => draft::Plan::Past(Window::parse(
            req.from.as_deref(),
            req.to.as_deref(),
            now,
            config.tz,
        )?),
    };
    // Opened, not migrated: a forecast writes nothing to the live database.
    let live = crate::wiring::open_unchanged(config.database_url.expose(), config.lang).await?;
    let lang = config.lang;
    let progress: Progress = Arc::new(move |step: Step| {
        eprintln!(
            "{}",
            text::words(
                lang,
                "forecast.progress",
                &[
                    ("run", step.run.to_string()),
                    ("events", step.events.to_string())
                ]
            )
        );
    });
    let f = draft::run(&live, (current, draft), plan, &settings, Some(progress)).await?;
    if req.json {
        return Ok(serde_json::to_string_pretty(&f)? + "\n");
    }
    Ok(text::report(&f, config.tz, config.lang))
}

/// Why there is no forecast when the running rules (`ZALOFLOW_RULES`) do not load, in the
/// staff's language, with their problems.
fn running_broken(config: &Config, problems: &str) -> String {
    let head = text::words(
        config.lang,
        "forecast.running_broken",
        &[("dir", config.rules_dir.display().to_string())],
    );
    format!("{head}\n{problems}")
}

/// `rules check --forecast`: the short form of the last 28 days replayed with the rules of
/// `dir` beside the running ones (`ZALOFLOW_RULES`).
pub async fn short_command(config: &Config, dir: &Path) -> anyhow::Result<String> {
    let opts = crate::rule_load_options(config);
    let draft = load_rules(dir, &opts).map_err(|p| anyhow!("{p}"))?;
    let current = load_rules(&config.rules_dir, &opts)
        .map_err(|p| anyhow!("{}", running_broken(config, &p)))?;
    let settings = Settings::from_config(config);
    let live = crate::wiring::open_unchanged(config.database_url.expose(), config.lang).await?;
    let now = crate::clock::system_now();
    let window = Window::last_days(now, 28, config.tz);
    let f = replay_window(
        &live,
        Arc::new(current),
        Arc::new(draft),
        window,
        &settings,
        None,
    )
    .await?;
    Ok(text::short(&f, config.tz, config.lang))
}

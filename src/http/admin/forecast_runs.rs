//! `/admin/forecasts` (issue 28): a forecast run in the background, with its progress to
//! follow. A forecast over a month of a busy OA's history takes minutes, far past the 10
//! seconds a request may last (`POST /admin/forecast` runs within the request): here the
//! request answers at once with the run's id, and `GET /admin/forecasts/{id}` tells how far
//! each of the two runs (current rules, draft) has got, then gives the result.
//!
//! A run lives in the memory of the instance that started it: one at a time per instance (a
//! forecast takes a core per rule set from the live service), the last few kept for an hour.
//! On Fly.io an id names its machine, and a request for it that reaches another machine is
//! replayed there (`fly-replay: instance=…`, <https://fly.io/docs/networking/dynamic-request-routing/>).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::forecast::{execute, prepare, ForecastDraft, ForecastView, Prepare, Prepared};
use super::{ApiError, ApiJson, ErrorBody};
use crate::forecast::Step;
use crate::http::AppState;

/// How many runs are kept (the running one and the latest finished ones).
const KEPT: usize = 8;
/// How long a finished run is kept.
const KEPT_MS: i64 = 3_600_000;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    /// Finished: `result` holds the forecast (`ok` false with `problems` when the draft did not
    /// load).
    Done,
    /// Stopped on an error: `error` says which.
    Failed,
}

/// A forecast started with `POST /admin/forecasts`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ForecastRun {
    /// Follow it at `/admin/forecasts/{id}`.
    pub id: String,
    pub state: RunState,
    /// When it started and finished (ms since the epoch).
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// The latest step of each rule set's run (`current`, `draft`), once it has one.
    pub progress: Vec<Step>,
    pub result: Option<ForecastView>,
    pub error: Option<String>,
}

/// A run and the draft it was started with (the page shows the draft again beside it).
#[derive(Clone)]
pub struct Entry {
    pub run: ForecastRun,
    pub files: BTreeMap<String, String>,
    pub ahead: Option<String>,
}

/// The runs of this instance.
pub struct ForecastRuns {
    /// This machine on Fly.io (`FLY_MACHINE_ID`): ids carry it.
    machine: Option<String>,
    runs: Mutex<VecDeque<Entry>>,
}

/// Why a run cannot start now.
pub struct Busy {
    /// The run under way.
    pub id: String,
}

impl ForecastRuns {
    pub fn new(machine: Option<String>) -> ForecastRuns {
        ForecastRuns {
            machine,
            runs: Mutex::new(VecDeque::new()),
        }
    }

    /// Starts `prepared` in the background, or says which run is under way.
    pub fn start(
        self: &Arc<Self>,
        st: &AppState,
        prepared: Prepared,
        files: BTreeMap<String, String>,
        ahead: Option<String>,
    ) -> Result<ForecastRun, Busy> {
        let now = st.clock.now();
        let run = self.add(None, files, ahead, now)?;
        let id = run.id.clone();
        let (runs, st, progress_id) = (self.clone(), st.clone(), id.clone());
        let progress: crate::forecast::Progress = {
            let runs = runs.clone();
            Arc::new(move |step: Step| {
                runs.update(&progress_id, |r| {
                    match r.progress.iter_mut().find(|p| p.run == step.run) {
                        Some(p) => *p = step,
                        None => r.progress.push(step),
                    }
                    r.progress.sort_by_key(|p| p.run);
                })
            })
        };
        tokio::spawn(async move {
            tracing::info!(run = %id, "forecast started");
            // On a task of its own: a run that panics is marked failed, not left running
            // (which would refuse every later forecast here).
            let work = {
                let st = st.clone();
                tokio::spawn(async move {
                    execute(&st, prepared, Some(progress))
                        .await
                        .map_err(|e| e.message)
                })
            };
            let result = work
                .await
                .unwrap_or_else(|e| Err(format!("the forecast stopped: {e}")));
            let end = st.clock.now();
            runs.update(&id, |r| {
                r.finished_at = Some(end);
                match result {
                    Ok(view) => {
                        r.state = RunState::Done;
                        r.result = Some(view);
                    }
                    Err(e) => {
                        r.state = RunState::Failed;
                        r.error = Some(e);
                    }
                }
            });
            tracing::info!(run = %id, ms = end - now, "forecast finished");
        });
        Ok(run)
    }

    /// A new entry: running (unless one is running already), or, with its `result`, one that
    /// finished at once (its draft does not load), kept like the others.
    fn add(
        &self,
        result: Option<ForecastView>,
        files: BTreeMap<String, String>,
        ahead: Option<String>,
        now: i64,
    ) -> Result<ForecastRun, Busy> {
        let mut runs = self.runs.lock().expect("poisoned");
        if let (None, Some(id)) = (&result, running_in(&runs)) {
            return Err(Busy { id });
        }
        let run = ForecastRun {
            id: self.new_id(),
            state: match result {
                None => RunState::Running,
                Some(_) => RunState::Done,
            },
            started_at: now,
            finished_at: result.as_ref().map(|_| now),
            progress: Vec::new(),
            result,
            error: None,
        };
        make_room(&mut runs, now);
        runs.push_back(Entry {
            run: run.clone(),
            files,
            ahead,
        });
        Ok(run)
    }

    /// A new run's id: random, after this machine's id on Fly.io.
    fn new_id(&self) -> String {
        let tag = hex::encode(rand::random::<[u8; 8]>());
        match &self.machine {
            Some(m) => format!("{m}-{tag}"),
            None => tag,
        }
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut ForecastRun)) {
        if let Some(e) = self
            .runs
            .lock()
            .expect("poisoned")
            .iter_mut()
            .find(|e| e.run.id == id)
        {
            f(&mut e.run);
        }
    }

    /// The run under way here, if any.
    pub fn running(&self) -> Option<String> {
        running_in(&self.runs.lock().expect("poisoned"))
    }

    /// Run `id` as it is now, with its draft.
    pub fn get(&self, id: &str) -> Option<Entry> {
        self.runs
            .lock()
            .expect("poisoned")
            .iter()
            .find(|e| e.run.id == id)
            .cloned()
    }

    /// The machine that holds run `id`, when it is not this one (Fly.io only).
    pub fn elsewhere(&self, id: &str) -> Option<String> {
        let here = self.machine.as_deref()?;
        let (machine, _) = id.rsplit_once('-')?;
        let plain = !machine.is_empty()
            && machine
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        (plain && machine != here).then(|| machine.to_string())
    }
}

/// The id of the run under way among `runs`.
fn running_in(runs: &VecDeque<Entry>) -> Option<String> {
    runs.iter()
        .find(|e| e.run.state == RunState::Running)
        .map(|e| e.run.id.clone())
}

/// Drops the runs that finished more than an hour before `now`, then the oldest finished ones
/// until there is room for one more (the running one stays).
fn make_room(runs: &mut VecDeque<Entry>, now: i64) {
    runs.retain(|e| e.run.finished_at.is_none_or(|f| now - f < KEPT_MS));
    while runs.len() >= KEPT {
        match runs.iter().position(|e| e.run.state != RunState::Running) {
            Some(i) => drop(runs.remove(i)),
            None => break,
        }
    }
}

/// Starts a forecast of draft rule files in the background (what `POST /admin/forecast` does
/// within the request) and answers at once with the run to follow. A draft that does not load
/// is answered at once too, its run `done` with the problems (line and column).
#[utoipa::path(
    post,
    path = "/admin/forecasts",
    tag = "rules",
    operation_id = "start_forecast",
    request_body = ForecastDraft,
    responses(
        (status = 202, description = "The run, started (or already done when the draft does not load); follow it with `GET /admin/forecasts/{id}`", body = ForecastRun),
        (status = 400, description = "A window or span that cannot be read or is too long (`bad_forecast`)", body = ErrorBody),
        (status = 409, description = "A forecast is already running on this instance (`forecast_running`, its id in the message)", body = ErrorBody),
        (status = 422, description = "No files, too many, or a file name that is not `name.yaml` (`invalid`)", body = ErrorBody),
    )
)]
pub async fn start(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<ForecastDraft>,
) -> Result<(StatusCode, Json<ForecastRun>), ApiError> {
    let run = begin(&st, req).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Prepares `req` and starts it (what the API and the page share).
pub async fn begin(st: &AppState, req: ForecastDraft) -> Result<ForecastRun, ApiError> {
    let (files, ahead) = (req.files.clone(), req.ahead.clone());
    match prepare(st, req).await? {
        Prepare::Refused(view) => st
            .forecasts
            .add(Some(*view), files, ahead, st.clock.now())
            .map_err(busy),
        Prepare::Ready(p) => st.forecasts.start(st, *p, files, ahead).map_err(busy),
    }
}

/// The answer when a forecast is already running here.
pub fn busy(b: Busy) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "forecast_running",
        format!(
            "a forecast is already running ({}): follow it at /admin/forecasts/{}, then start this one",
            b.id, b.id
        ),
    )
}

/// A forecast started with `POST /admin/forecasts`: how far each rule set's run has got
/// (events replayed, share of the window), then its result.
#[utoipa::path(
    get,
    path = "/admin/forecasts/{id}",
    tag = "rules",
    operation_id = "forecast_run",
    params(("id" = String, Path, description = "The run's id", example = "00ff00ff00ff00ff")),
    responses(
        (status = 200, description = "The run", body = ForecastRun),
        (status = 404, description = "No such run here (unknown, or finished more than an hour ago)", body = ErrorBody),
    )
)]
pub async fn show(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if let Some(machine) = st.forecasts.elsewhere(&id) {
        return replay_on(&machine);
    }
    match st.forecasts.get(&id) {
        Some(e) => Json(e.run).into_response(),
        None => ApiError::not_found(format!(
            "no forecast {id} here: unknown, or finished more than an hour ago"
        ))
        .into_response(),
    }
}

/// Asks Fly's proxy to replay the request on `machine`, which holds the run.
pub fn replay_on(machine: &str) -> Response {
    let mut r = StatusCode::CONFLICT.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("instance={machine}")) {
        r.headers_mut()
            .insert(HeaderName::from_static("fly-replay"), v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> BTreeMap<String, String> {
        BTreeMap::from([("t.yaml".to_string(), "rules: []".to_string())])
    }

    #[test]
    fn one_run_at_a_time_and_finished_ones_are_kept_an_hour() {
        let runs = ForecastRuns::new(None);
        let first = runs.add(None, draft(), None, 1_000).ok().unwrap();
        let busy = runs.add(None, draft(), None, 2_000).err().unwrap();
        assert_eq!(busy.id, first.id);
        assert_eq!(runs.running(), Some(first.id.clone()));
        // A draft that does not load is answered (done at once) even while one runs.
        let refused = ForecastView::refused(vec!["t.yaml:1:1: bad".into()]);
        let done = runs.add(Some(refused), draft(), None, 2_000).ok().unwrap();
        assert_eq!(
            (done.state, done.finished_at),
            (RunState::Done, Some(2_000))
        );
        assert_eq!(runs.running(), Some(first.id.clone()));
        runs.update(&first.id, |r| {
            r.state = RunState::Done;
            r.finished_at = Some(3_000);
        });
        let second = runs
            .add(None, draft(), Some("7d".into()), 4_000)
            .ok()
            .unwrap();
        assert_ne!(second.id, first.id);
        assert_eq!(runs.get(&first.id).unwrap().run.state, RunState::Done);
        assert_eq!(runs.get(&second.id).unwrap().ahead.as_deref(), Some("7d"));
        runs.update(&second.id, |r| {
            r.state = RunState::Failed;
            r.finished_at = Some(5_000);
        });
        // An hour after the first finished, it is gone; the second (finished later) stays.
        let third = runs.add(None, draft(), None, 3_000 + KEPT_MS).ok().unwrap();
        assert!(runs.get(&first.id).is_none());
        assert!(runs.get(&second.id).is_some());
        // At most KEPT: the oldest finished go first, the running one stays.
        runs.update(&third.id, |r| {
            r.state = RunState::Done;
            r.finished_at = Some(3_000 + KEPT_MS);
        });
        let ids: Vec<String> = (0..KEPT + 2)
            .map(|i| {
                let r = runs.add(None, draft(), None, 3_001 + KEPT_MS).ok().unwrap();
                if i < KEPT + 1 {
                    runs.update(&r.id, |r| {
                        r.state = RunState::Done;
                        r.finished_at = Some(3_001 + KEPT_MS);
                    });
                }
                r.id
            })
            .collect();
        let kept = runs.runs.lock().unwrap().len();
        assert_eq!(kept, KEPT);
        assert!(runs.get(&second.id).is_none());
        assert_eq!(
            runs.get(ids.last().unwrap()).unwrap().run.state,
            RunState::Running
        );
    }

    #[test]
    fn on_fly_an_id_names_its_machine_and_another_machines_id_is_replayed_there() {
        let here = ForecastRuns::new(Some("3d8d9e1b".into()));
        let run = here.add(None, draft(), None, 0).ok().unwrap();
        assert!(run.id.starts_with("3d8d9e1b-"), "{}", run.id);
        assert_eq!(here.elsewhere(&run.id), None);
        assert_eq!(
            here.elsewhere("e784079b-00ff00ff00ff00ff"),
            Some("e784079b".to_string())
        );
        // Nothing that could inject into the header.
        assert_eq!(here.elsewhere("a b\r\n-00ff"), None);
        let replayed = replay_on("e784079b");
        assert_eq!(replayed.headers()["fly-replay"], "instance=e784079b");
        // Off Fly.io ids name no machine, and nothing is replayed.
        let local = ForecastRuns::new(None);
        let run = local.add(None, draft(), None, 0).ok().unwrap();
        assert!(!run.id.contains('-'));
        assert_eq!(local.elsewhere("e784079b-00ff00ff00ff00ff"), None);
    }
}

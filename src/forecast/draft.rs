//! A draft as staff send it (the admin API, the page): some rule files by name, standing in
//! for the running folder's files of the same name, beside the others; and the run a request
//! asks for, with the limits an HTTP request keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::rules::{load_sources, Diagnostic, LoadOptions, RuleSet};
use crate::store::DynStore;

use super::{
    parse_span, project_ahead, replay_window, BadAsk, Forecast, Progress, Settings, Window,
};

/// The longest window or span the admin API and the page run (a quarter).
pub const MAX_DAYS: i64 = 92;

/// At most this many draft files.
pub const MAX_FILES: usize = 200;

/// Whether `name` is a plain rule file name (`name.yaml`, `name.yml`, no folders).
pub fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// The running folder `dir` with `files` in it (by file name): the rules, or every problem.
pub fn load_overlay(
    dir: &Path,
    files: &BTreeMap<String, String>,
    opts: &LoadOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut all: BTreeMap<PathBuf, String> = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for p in rd.filter_map(|e| e.ok().map(|e| e.path())) {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !crate::rules::load::is_rule_file(&p) || files.contains_key(&name) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&p) {
                all.insert(p, text);
            }
        }
    }
    for (name, text) in files {
        all.insert(dir.join(name), text.clone());
    }
    let all: Vec<(PathBuf, String)> = all.into_iter().collect();
    load_sources(&all, opts)
}

/// What a request asks: a past window (`from`/`to`, default the last 28 days) or the coming
/// days (`ahead`, e.g. `14d`).
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub from: Option<String>,
    pub to: Option<String>,
    pub ahead: Option<String>,
}

/// What a request's [`Ask`] comes to, checked before anything runs.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// The coming `ms` from `now`.
    Ahead {
        now: i64,
        ms: i64,
    },
    Past(Window),
}

impl Ask {
    /// The window or span asked for, or why it cannot be run (unreadable, or too long).
    pub fn plan(&self, now: i64, tz: chrono_tz::Tz) -> Result<Plan, BadAsk> {
        match &self.ahead {
            Some(a) => {
                let ms = parse_span(a)?;
                if ms > MAX_DAYS * super::DAY {
                    return Err(BadAsk::TooFarAhead(MAX_DAYS));
                }
                Ok(Plan::Ahead { now, ms })
            }
            None => {
                let w = Window::parse(self.from.as_deref(), self.to.as_deref(), now, tz)?;
                if w.to - w.from > MAX_DAYS * super::DAY {
                    return Err(BadAsk::TooLong(MAX_DAYS));
                }
                Ok(Plan::Past(w))
            }
        }
    }
}

/// Runs a planned forecast.
pub async fn run(
    live: &DynStore,
    (current, draft): (Arc<RuleSet>, Arc<RuleSet>),
    plan: Plan,
    settings: &Settings,
    progress: Option<Progress>,
) -> anyhow::Result<Forecast> {
    match plan {
        Plan::Ahead { now, ms } => {
            project_ahead(live, current, draft, now, ms, settings, progress).await
        }
        Plan::Past(w) => replay_window(live, current, draft, w, settings, progress).await,
    }
}

//! A draft as staff send it (the admin API, the page): some rule files by name, standing in
//! for the running folder's files of the same name, beside the others; and the run a request
//! asks for, with the limits an HTTP request keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::rules::{load_sources, Diagnostic, LoadOptions, RuleSet};
use crate::store::DynStore;

use super::{parse_span, project_ahead, replay_window, Forecast, Settings, Window};

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

/// Runs the forecast a request asks for.
pub async fn run(
    live: &DynStore,
    current: Arc<RuleSet>,
    draft: Arc<RuleSet>,
    ask: &Ask,
    settings: &Settings,
    now: i64,
) -> anyhow::Result<Forecast> {
    match &ask.ahead {
        Some(a) => {
            let ahead = parse_span(a)?;
            anyhow::ensure!(ahead <= 92 * super::DAY, "look at most 92 days ahead");
            project_ahead(live, current, draft, now, ahead, settings, None).await
        }
        None => {
            let w = Window::parse(ask.from.as_deref(), ask.to.as_deref(), now, settings.tz)?;
            anyhow::ensure!(w.to - w.from <= 92 * super::DAY, "replay at most 92 days");
            replay_window(live, current, draft, w, settings, None).await
        }
    }
}

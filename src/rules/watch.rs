//! Hot reload: re-reads the rules folder when a file changes (polling names, sizes and
//! modification times), swaps in the new rules only when they check clean, and otherwise
//! keeps the last good rules running and reports why (log, metric, status for `/readyz`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::hygiene::{self, Warning};
use super::load::{is_rule_file, load_dir, Diagnostic, LoadOptions};
use super::RuleSet;

/// Counter of reloads that failed the check.
pub const RELOAD_ERRORS_METRIC: &str = "zaloflow_rules_reload_errors_total";
/// Gauge: rules running now.
pub const RULES_LOADED_METRIC: &str = "zaloflow_rules_loaded";

/// What is running and how the last reload went (for `/readyz` and the admin API).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ReloadStatus {
    pub dir: PathBuf,
    /// Rules and files of the running set.
    pub rules: usize,
    pub files: usize,
    /// When the running set was loaded (ms).
    pub loaded_at: i64,
    /// How many times a changed folder was loaded successfully (after the first load).
    pub reloads: u64,
    /// The problems of the files on disk when they failed the check, as
    /// `path:line:col: message`; empty when the files on disk are the ones running.
    pub errors: Vec<String>,
    /// When the last failed reload happened (ms).
    pub failed_at: Option<i64>,
    /// The hygiene warnings of the running rules (they never stop a load).
    #[serde(skip)]
    pub warnings: Vec<Warning>,
}

/// The warnings of a set that loaded, logged.
fn warnings_of(set: &RuleSet) -> Vec<Warning> {
    let warnings = hygiene::check(set);
    for w in &warnings {
        tracing::warn!(warning = %w, "rule hygiene");
    }
    warnings
}

/// The outcome of one look at the folder.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    Unchanged,
    /// New rules are running.
    Reloaded,
    /// The folder changed but does not check clean: the previous rules keep running.
    Failed(Vec<Diagnostic>),
}

type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut out: Fingerprint = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| is_rule_file(p))
                .map(|p| {
                    let meta = std::fs::metadata(&p).ok();
                    let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
                    let mtime = meta.and_then(|m| m.modified().ok());
                    (p, len, mtime)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

struct State {
    fingerprint: Fingerprint,
    status: ReloadStatus,
}

/// Keeps the current [`RuleSet`] of a folder, shared with readers.
pub struct RuleWatcher {
    dir: PathBuf,
    opts: LoadOptions,
    current: Arc<RwLock<Arc<RuleSet>>>,
    state: Mutex<State>,
}

impl RuleWatcher {
    /// Loads the folder; fails (with every problem) if it does not check clean, since there
    /// are no earlier rules to fall back on.
    pub fn load(dir: &Path, opts: LoadOptions, now: i64) -> Result<RuleWatcher, Vec<Diagnostic>> {
        let fp = fingerprint(dir);
        let set = load_dir(dir, &opts)?;
        metrics::gauge!(RULES_LOADED_METRIC).set(set.len() as f64);
        let status = ReloadStatus {
            dir: dir.to_path_buf(),
            rules: set.len(),
            files: set.files().len(),
            loaded_at: now,
            warnings: warnings_of(&set),
            ..ReloadStatus::default()
        };
        Ok(RuleWatcher {
            dir: dir.to_path_buf(),
            opts,
            current: Arc::new(RwLock::new(Arc::new(set))),
            state: Mutex::new(State {
                fingerprint: fp,
                status,
            }),
        })
    }

    /// The rules running now. Cheap: clone of an `Arc`.
    pub fn current(&self) -> Arc<RuleSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The shared slot, for components that hold it directly.
    pub fn shared(&self) -> Arc<RwLock<Arc<RuleSet>>> {
        self.current.clone()
    }

    pub fn status(&self) -> ReloadStatus {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .status
            .clone()
    }

    /// True when the files on disk are the rules running (no failed change pending).
    pub fn is_clean(&self) -> bool {
        self.status().errors.is_empty()
    }

    /// Reloads if any rule file was added, removed or changed since the last look.
    pub fn check(&self, now: i64) -> Reload {
        let fp = fingerprint(&self.dir);
        {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.fingerprint == fp {
                return Reload::Unchanged;
            }
        }
        self.reload_with(fp, now)
    }

    /// Reloads now, changed or not (admin "reload" button).
    pub fn reload(&self, now: i64) -> Reload {
        self.reload_with(fingerprint(&self.dir), now)
    }

    fn reload_with(&self, fp: Fingerprint, now: i64) -> Reload {
        let result = load_dir(&self.dir, &self.opts);
        // Outside the lock: the analysis looks at every pair of rules.
        let warnings = result.as_ref().map(warnings_of).unwrap_or_default();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.fingerprint = fp;
        match result {
            Ok(set) => {
                tracing::info!(dir = %self.dir.display(), summary = %set.summary(), "rules reloaded");
                metrics::gauge!(RULES_LOADED_METRIC).set(set.len() as f64);
                st.status.rules = set.len();
                st.status.files = set.files().len();
                st.status.loaded_at = now;
                st.status.reloads += 1;
                st.status.errors.clear();
                st.status.failed_at = None;
                st.status.warnings = warnings;
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                Reload::Reloaded
            }
            Err(diags) => {
                for d in &diags {
                    tracing::warn!(problem = %d, "rules not reloaded: keeping the previous rules");
                }
                metrics::counter!(RELOAD_ERRORS_METRIC).increment(1);
                st.status.errors = diags.iter().map(ToString::to_string).collect();
                st.status.failed_at = Some(now);
                Reload::Failed(diags)
            }
        }
    }

    /// Looks at the folder every `every` until `stop`.
    pub async fn run(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let me = self.clone();
            // File reads are blocking: keep them off the async workers.
            let _ = tokio::task::spawn_blocking(move || me.check(crate::clock::system_now())).await;
        }
    }
}

//! Hot reload: re-reads the rules folder when a file changes (polling names, sizes and
//! modification times), swaps in the new rules only when they check clean, and otherwise
//! keeps the last good rules running and reports why (log, metric, status for `/readyz`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::findings::{self, ChannelCheck, Finding};
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
    /// The running rules' actions whose channel is not configured (recorded as skipped when
    /// they run); empty when the channels were not checked.
    pub findings: Vec<Finding>,
}

/// The findings of a set that loaded, logged loudly; in strict mode, the problems that refuse
/// it.
fn findings_of(set: &RuleSet, check: &ChannelCheck) -> Result<Vec<Finding>, Vec<Diagnostic>> {
    let Some(channels) = &check.channels else {
        return Ok(Vec::new());
    };
    let found = findings::check(set, channels);
    if check.strict && !found.is_empty() {
        tracing::error!("{}", findings::strict_refusal(&found));
        for f in &found {
            tracing::error!(finding = %f, "configuration");
        }
        return Err(found.iter().map(|f| f.diagnostic(set.lang())).collect());
    }
    for f in &found {
        tracing::warn!(finding = %f, skipped_when_it_runs = f.skips, "configuration finding");
    }
    if !found.is_empty() {
        tracing::warn!(
            "{} rule action(s) cannot run as written with this configuration: sends without their channel are recorded as skipped when they would run (the outbox, status=skipped); set the variables named above, or ZALOFLOW_STRICT_CONFIG=true to refuse such a start",
            found.len()
        );
    }
    Ok(found)
}

/// The warnings of a set that loaded, logged.
fn warnings_of(set: &RuleSet) -> Vec<Warning> {
    let warnings = hygiene::check(set);
    for w in &warnings {
        tracing::warn!(warning = %w, "rule hygiene");
    }
    warnings
}

/// Says, per changed step of each campaign, what the next scheduler pass will do to its
/// members (docs/campaigns.md); the pass logs it again with the number of members moved.
fn log_step_edits(old: &RuleSet, new: &RuleSet) {
    for c in new.campaigns() {
        let Some(before) = old.campaign(&c.id) else {
            continue;
        };
        let ids: Vec<String> = before.steps.iter().map(|s| s.id.clone()).collect();
        for e in c.edits_from(&ids) {
            if !matches!(e, super::campaign::StepEdit::Kept { .. }) {
                tracing::info!(campaign = %c.id, file = %c.origin, edit = %e, "campaign steps changed by the reload");
            }
        }
    }
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
    check: ChannelCheck,
    current: Arc<RwLock<Arc<RuleSet>>>,
    state: Mutex<State>,
}

impl RuleWatcher {
    /// Loads the folder; fails (with every problem) if it does not check clean, since there
    /// are no earlier rules to fall back on.
    pub fn load(dir: &Path, opts: LoadOptions, now: i64) -> Result<RuleWatcher, Vec<Diagnostic>> {
        Self::load_with(dir, opts, ChannelCheck::default(), now)
    }

    /// [`RuleWatcher::load`], checking the rules against the deployment's channels at this load
    /// and every reload (in strict mode, findings refuse the rules).
    pub fn load_with(
        dir: &Path,
        opts: LoadOptions,
        check: ChannelCheck,
        now: i64,
    ) -> Result<RuleWatcher, Vec<Diagnostic>> {
        let fp = fingerprint(dir);
        let set = load_dir(dir, &opts)?;
        let found = findings_of(&set, &check)?;
        metrics::gauge!(RULES_LOADED_METRIC).set(set.len() as f64);
        let status = ReloadStatus {
            dir: dir.to_path_buf(),
            rules: set.len(),
            files: set.files().len(),
            loaded_at: now,
            warnings: warnings_of(&set),
            findings: found,
            ..ReloadStatus::default()
        };
        Ok(RuleWatcher {
            dir: dir.to_path_buf(),
            opts,
            check,
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
        let result = load_dir(&self.dir, &self.opts)
            .and_then(|set| findings_of(&set, &self.check).map(|found| (set, found)));
        // Outside the lock: the analysis looks at every pair of rules.
        let warnings = result
            .as_ref()
            .map(|(set, _)| warnings_of(set))
            .unwrap_or_default();
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.fingerprint = fp;
        match result {
            Ok((set, found)) => {
                st.status.findings = found;
                tracing::info!(dir = %self.dir.display(), summary = %set.summary(), "rules reloaded");
                metrics::gauge!(RULES_LOADED_METRIC).set(set.len() as f64);
                st.status.rules = set.len();
                st.status.files = set.files().len();
                st.status.loaded_at = now;
                st.status.reloads += 1;
                st.status.errors.clear();
                st.status.failed_at = None;
                st.status.warnings = warnings;
                log_step_edits(&self.current(), &set);
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
                Reload::Reloaded
            }
            Err(diags) => {
                for d in &diags {
                    tracing::warn!(problem = %d, "rules not reloaded: keeping the previous rules");
                }
                metrics::counter!(RELOAD_ERRORS_METRIC).increment(1);
                st.status.errors = diags.iter().map(|d| d.render(self.opts.lang)).collect();
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

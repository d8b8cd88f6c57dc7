//! `/admin/rules…`: the running rules, a draft checked without saving, reload now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ErrorBody, ErrorDetail};
use crate::http::AppState;
use crate::rules::watch::Reload;
use crate::rules::{hygiene, load_sources, Diagnostic, ReloadStatus, Warning};

/// At most this many files in one draft.
pub const MAX_DRAFT_FILES: usize = 50;

/// One problem in a rule file.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DiagnosticView {
    /// The file's name (within the rules folder).
    #[schema(example = "greetings.yaml")]
    pub file: String,
    /// 1-based.
    #[schema(example = 4)]
    pub line: u32,
    /// 1-based.
    #[schema(example = 11)]
    pub col: u32,
    #[schema(example = "unknown trigger `mesage` (did you mean `message`?)")]
    pub message: String,
    /// True when the file is one of the draft's (false: a file of the running folder).
    pub draft: bool,
}

fn diagnostic_view(d: &Diagnostic, draft: &[String]) -> DiagnosticView {
    let file = file_name(&d.path);
    DiagnosticView {
        draft: draft.contains(&file),
        file,
        line: d.pos.line,
        col: d.pos.col,
        message: d.message.clone(),
    }
}

fn warning_view(w: &Warning, draft: &[String]) -> DiagnosticView {
    let file = file_name(&w.path);
    DiagnosticView {
        draft: draft.contains(&file),
        file,
        line: w.pos.line,
        col: w.pos.col,
        message: w.message.clone(),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// One rule of the running set.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    #[schema(example = "greet_morning")]
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub priority: i64,
    /// What starts it, e.g. `message`, `tag_added vip_customer`, `inactive 7-14 days`.
    pub triggers: Vec<String>,
    /// The file that holds it, and where.
    #[schema(example = "greetings.yaml")]
    pub file: String,
    pub line: u32,
    pub col: u32,
}

/// How the rules folder was last loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReloadStatusView {
    pub dir: String,
    pub rules: usize,
    pub files: usize,
    /// When the running set was loaded.
    pub loaded_at: i64,
    /// Successful reloads since the start.
    pub reloads: u64,
    /// Problems of the files on disk when they failed the check (the previous rules keep
    /// running), as `path:line:col: message`; empty when the files on disk are running.
    pub errors: Vec<String>,
    pub failed_at: Option<i64>,
    /// Hygiene warnings of the running rules (e.g. two rules that would both message a
    /// customer for one event); they never stop a load. `draft` is always false here.
    pub warnings: Vec<DiagnosticView>,
}

impl From<ReloadStatus> for ReloadStatusView {
    fn from(s: ReloadStatus) -> Self {
        ReloadStatusView {
            dir: s.dir.display().to_string(),
            rules: s.rules,
            files: s.files,
            loaded_at: s.loaded_at,
            reloads: s.reloads,
            errors: s.errors,
            failed_at: s.failed_at,
            warnings: s.warnings.iter().map(|w| warning_view(w, &[])).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulesView {
    /// False when the service started without a rules folder.
    pub loaded: bool,
    /// e.g. `12 rules in 4 files (1 disabled)`.
    pub summary: String,
    pub status: Option<ReloadStatusView>,
    /// In firing order.
    pub rules: Vec<RuleView>,
}

/// The running rules, in firing order, and how the folder was last loaded.
#[utoipa::path(
    get,
    path = "/admin/rules",
    tag = "rules",
    operation_id = "list_rules",
    responses((status = 200, description = "The running rules", body = RulesView))
)]
pub async fn list(State(st): State<AppState>) -> Json<RulesView> {
    let Some(w) = &st.rules else {
        return Json(RulesView {
            loaded: false,
            summary: format!(
                "no rules: the folder {} was not found at start",
                st.config.rules_dir.display()
            ),
            status: None,
            rules: Vec::new(),
        });
    };
    let set = w.current();
    let rules = set
        .rules()
        .iter()
        .map(|r| RuleView {
            id: r.id.clone(),
            description: r.description.clone(),
            enabled: r.enabled,
            priority: r.priority,
            triggers: r.triggers.iter().map(ToString::to_string).collect(),
            file: file_name(&r.origin.file),
            line: r.origin.pos.line,
            col: r.origin.pos.col,
        })
        .collect();
    Json(RulesView {
        loaded: true,
        summary: set.summary(),
        status: Some(w.status().into()),
        rules,
    })
}

/// Rule files to check, by file name.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"files": {"greetings.yaml": "rules:\n  - id: hello\n    when: message\n    do:\n      - send: \"Xin chào!\"\n"}}))]
pub struct RulesDraft {
    /// File name (`*.yaml` or `*.yml`, no folders) → its YAML text. A name of a file in the
    /// running folder stands in for it; a new name is checked beside the others.
    pub files: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulesCheck {
    /// True when the folder with the draft in it would load.
    pub ok: bool,
    /// When `ok`: what would run, e.g. `13 rules in 5 files`.
    pub summary: Option<String>,
    /// Every problem, in file and position order (empty when `ok`).
    pub diagnostics: Vec<DiagnosticView>,
    /// When `ok`: the hygiene warnings of the folder with the draft in it (`rules check`
    /// prints them as `path:line:col: warning: message`). They never stop a load.
    pub warnings: Vec<DiagnosticView>,
}

/// Checks draft rule files without saving them.
///
/// The draft is checked together with the other files of the running rules folder (ids must
/// be unique across files; lists and channels declared anywhere count). Nothing on disk or in
/// the running rules changes. A draft that loads may still have hygiene `warnings`; they do
/// not make `ok` false.
#[utoipa::path(
    post,
    path = "/admin/rules/check",
    tag = "rules",
    operation_id = "check_rules",
    request_body = RulesDraft,
    responses(
        (status = 200, description = "The verdict (`ok` false with diagnostics when the draft has problems; `warnings` when it loads but has hygiene warnings)", body = RulesCheck),
        (status = 422, description = "No files, too many, or a file name that is not `name.yaml` (`invalid`)", body = ErrorBody),
    )
)]
pub async fn check(
    State(st): State<AppState>,
    ApiJson(draft): ApiJson<RulesDraft>,
) -> Result<Json<RulesCheck>, ApiError> {
    if draft.files.is_empty() || draft.files.len() > MAX_DRAFT_FILES {
        return Err(ApiError::invalid(format!(
            "give between 1 and {MAX_DRAFT_FILES} files"
        )));
    }
    for name in draft.files.keys() {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains(['/', '\\'])
            && !name.chars().any(char::is_control)
            && (name.ends_with(".yaml") || name.ends_with(".yml"));
        if !plain {
            return Err(ApiError::invalid(format!(
                "{name:?} is not a rule file name (name.yaml or name.yml, no folders)"
            )));
        }
    }
    let dir = st.config.rules_dir.clone();
    let opts = crate::wiring::rule_load_options(&st.config);
    let names: Vec<String> = draft.files.keys().cloned().collect();
    let result = tokio::task::spawn_blocking(move || {
        let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
        let mut unreadable = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for p in rd.filter_map(|e| e.ok().map(|e| e.path())) {
                if !crate::rules::load::is_rule_file(&p) || draft.files.contains_key(&file_name(&p))
                {
                    continue;
                }
                match std::fs::read_to_string(&p) {
                    Ok(text) => {
                        files.insert(p, text);
                    }
                    Err(e) => unreadable.push(Diagnostic {
                        pos: crate::rules::yaml::Pos { line: 1, col: 1 },
                        message: format!("cannot read: {e}"),
                        path: p,
                    }),
                }
            }
        }
        for (name, text) in draft.files {
            files.insert(dir.join(name), text);
        }
        let files: Vec<(PathBuf, String)> = files.into_iter().collect();
        match load_sources(&files, &opts) {
            Ok(set) if unreadable.is_empty() => Ok((set.summary(), hygiene::check(&set))),
            Ok(_) => Err(unreadable),
            Err(mut diags) => {
                diags.append(&mut unreadable);
                Err(diags)
            }
        }
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "rules check task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the check could not run",
        )
    })?;
    Ok(Json(match result {
        Ok((summary, warnings)) => RulesCheck {
            ok: true,
            summary: Some(summary),
            diagnostics: Vec::new(),
            warnings: warnings.iter().map(|w| warning_view(w, &names)).collect(),
        },
        Err(mut diags) => {
            diags.sort_by(|a, b| (&a.path, a.pos).cmp(&(&b.path, b.pos)));
            RulesCheck {
                ok: false,
                summary: None,
                diagnostics: diags.iter().map(|d| diagnostic_view(d, &names)).collect(),
                warnings: Vec::new(),
            }
        }
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RulesReloaded {
    /// `reloaded`.
    #[schema(example = "reloaded")]
    pub outcome: String,
    pub status: ReloadStatusView,
}

/// Reloads the rules folder now.
///
/// When the files on disk do not check clean, the previous rules keep running and the answer
/// lists every problem.
#[utoipa::path(
    post,
    path = "/admin/rules/reload",
    tag = "rules",
    operation_id = "reload_rules",
    responses(
        (status = 200, description = "The files on disk are running now", body = RulesReloaded),
        (status = 409, description = "The service started without a rules folder: restart it (`no_rules_folder`)", body = ErrorBody),
        (status = 422, description = "The files on disk have problems; the previous rules keep running (`rules_invalid`, with `diagnostics`)", body = ErrorBody),
    )
)]
pub async fn reload(State(st): State<AppState>) -> Result<Response, ApiError> {
    let Some(w) = st.rules.clone() else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_rules_folder",
            format!(
                "the service started without the rules folder {}: restart it once the folder exists",
                st.config.rules_dir.display()
            ),
        ));
    };
    let now = st.clock.now();
    let watcher = w.clone();
    let outcome = tokio::task::spawn_blocking(move || watcher.reload(now))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "rules reload task failed");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the reload could not run",
            )
        })?;
    match outcome {
        Reload::Reloaded | Reload::Unchanged => {
            tracing::info!("rules reloaded by an operator");
            Ok(Json(RulesReloaded {
                outcome: "reloaded".into(),
                status: w.status().into(),
            })
            .into_response())
        }
        Reload::Failed(diags) => {
            let body = ErrorBody {
                error: ErrorDetail {
                    code: "rules_invalid".into(),
                    message: format!(
                        "{} problem(s) in the rules folder; the previous rules keep running",
                        diags.len()
                    ),
                    diagnostics: Some(diags.iter().map(|d| diagnostic_view(d, &[])).collect()),
                },
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
        }
    }
}

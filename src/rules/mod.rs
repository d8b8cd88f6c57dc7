//! The rule language that shop staff edit: YAML files in `rules/`, checked as a whole, and a
//! pure matcher that turns an event (or a scheduler trigger) and a contact into the actions
//! to carry out.
//!
//! - [`load_dir`] reads and checks a folder; every problem is a [`Diagnostic`]
//!   (`path:line:col: message`).
//! - [`RuleSet::evaluate`] / [`RuleSet::evaluate_cascade`] match one [`EvalInput`] and return
//!   an [`Evaluation`]: the rules that fire, the period key to record for each, and their
//!   [`PlannedAction`]s with rendered texts and `run_at` times.
//! - [`RuleWatcher`] reloads the folder when it changes and keeps the last good rules.
//! - [`schema::json_schema`] is the JSON Schema of rule files; [`simulate`] is the dry run.

/// A message of the rules' catalogue (`locales/rules.yml`) in a [`crate::i18n::Lang`], as a
/// `String`: `msg!(lang, "rules.key", name = value)` fills `%{name}`.
macro_rules! msg {
    ($lang:expr, $key:literal $(, $name:ident = $val:expr)* $(,)?) => {
        rust_i18n::t!($key, locale = $lang.code() $(, $name = $val)*).into_owned()
    };
}
pub(crate) use msg;

pub mod campaign;
pub mod findings;
pub mod hygiene;
pub mod load;
pub mod matcher;
pub mod model;
pub mod schema;
pub mod template;
pub mod text;
pub mod watch;
pub mod yaml;

use std::path::PathBuf;

pub use campaign::{Campaign, EntryTrigger, SendTime, Step};
pub use findings::{ChannelCheck, Finding};
pub use hygiene::Warning;
pub use load::{load_dir, load_sources, Diagnostic, LoadOptions};
pub use matcher::{
    ActionPlan, EvalInput, Evaluation, FireHistory, Fired, MemoryHistory, NoHistory, PlannedAction,
    Stimulus, CASCADE_DEPTH,
};
pub use model::{Action, ActionSite, Condition, OncePer, Rule, SpecialDate, Trigger};
pub use watch::{ReloadStatus, RuleWatcher};

/// A checked, indexed set of rules, in firing order (priority, then file, then position).
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    index: matcher::Index,
    files: Vec<PathBuf>,
    lists: Vec<String>,
    chat_channels: Vec<String>,
    /// Autoresponder campaigns, in file order.
    campaigns: Vec<Campaign>,
    /// Warnings only the loader can give (names it saw where they were written).
    load_warnings: Vec<Warning>,
    /// Forms declared with `forms:`.
    forms: Vec<String>,
    /// The language the rules were checked in: their warnings and findings speak it too.
    lang: crate::i18n::Lang,
}

/// What the service knows of a form (`POST /forms/{form}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormPolicy {
    /// A repeat registration is refused at the door ("already registered", nothing stored,
    /// nothing run, II.2): campaigns enter on the form and none allows repeats.
    pub refuse_repeats: bool,
}

impl RuleSet {
    pub(crate) fn new(
        rules: Vec<Rule>,
        files: Vec<PathBuf>,
        lists: Vec<String>,
        chat_channels: Vec<String>,
    ) -> RuleSet {
        let index = matcher::Index::build(&rules);
        RuleSet {
            rules,
            index,
            files,
            lists,
            chat_channels,
            campaigns: Vec::new(),
            load_warnings: Vec::new(),
            forms: Vec::new(),
            lang: crate::i18n::Lang::default(),
        }
    }

    /// The same rules, their warnings and findings told in `lang`.
    pub(crate) fn with_lang(mut self, lang: crate::i18n::Lang) -> RuleSet {
        self.lang = lang;
        self
    }

    /// The language of the rules' warnings and findings (the load options').
    pub fn lang(&self) -> crate::i18n::Lang {
        self.lang
    }

    /// The same rules with the loader's warnings.
    pub(crate) fn with_load_warnings(mut self, warnings: Vec<Warning>) -> RuleSet {
        self.load_warnings = warnings;
        self
    }

    pub(crate) fn load_warnings(&self) -> &[Warning] {
        &self.load_warnings
    }

    /// The same rules with these declared forms.
    pub(crate) fn with_forms(mut self, forms: Vec<String>) -> RuleSet {
        self.forms = forms;
        self
    }

    /// The form's policy, or `None` when no campaign, rule or `forms:` line names it (its
    /// registrations would reach nobody: the route answers 404).
    pub fn form(&self, name: &str) -> Option<FormPolicy> {
        let trigger = EntryTrigger::FormSubmitted(name.to_string());
        let campaigns: Vec<&Campaign> = self
            .campaigns
            .iter()
            .filter(|c| c.enabled && c.enters_on(&trigger))
            .collect();
        let by_rule = self.rules.iter().any(|r| {
            r.triggers
                .iter()
                .any(|t| matches!(t, model::Trigger::FormSubmitted(f) if f == name))
        });
        let declared = self.forms.iter().any(|f| f == name);
        if campaigns.is_empty() && !by_rule && !declared {
            return None;
        }
        Some(FormPolicy {
            refuse_repeats: !campaigns.is_empty()
                && !campaigns.iter().any(|c| c.repeat_registration),
        })
    }

    /// The same rules with these campaigns.
    pub(crate) fn with_campaigns(mut self, campaigns: Vec<Campaign>) -> RuleSet {
        self.campaigns = campaigns;
        self
    }

    /// Every campaign, enabled or not, in file order.
    pub fn campaigns(&self) -> &[Campaign] {
        &self.campaigns
    }

    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    /// No rules at all.
    pub fn empty() -> RuleSet {
        RuleSet::new(Vec::new(), Vec::new(), Vec::new(), Vec::new())
    }

    /// Every rule, enabled or not, in firing order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.index.rule_index(id).map(|i| &self.rules[i])
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Contact lists declared in the files (and the load options).
    pub fn lists(&self) -> &[String] {
        &self.lists
    }

    /// Team-chat channel names declared in the files (and the load options).
    pub fn chat_channels(&self) -> &[String] {
        &self.chat_channels
    }

    /// One line: how many rules and files (in English, for the admin API and the logs).
    pub fn summary(&self) -> String {
        self.summary_in(crate::i18n::Lang::En)
    }

    /// [`RuleSet::summary`] in `lang` (`rules check`).
    pub fn summary_in(&self, lang: crate::i18n::Lang) -> String {
        let enabled = self.rules.iter().filter(|r| r.enabled).count();
        let disabled = self.rules.len() - enabled;
        let rules = match self.rules.len() {
            1 => msg!(lang, "rules.check.rule_one"),
            n => msg!(lang, "rules.check.rules_many", n = n),
        };
        let files = match self.files.len() {
            1 => msg!(lang, "rules.check.file_one"),
            n => msg!(lang, "rules.check.files_many", n = n),
        };
        let mut s = msg!(
            lang,
            "rules.check.rules_in_files",
            rules = rules,
            files = files
        );
        if disabled > 0 {
            s.push_str(&msg!(lang, "rules.check.disabled", n = disabled));
        }
        match self.campaigns.len() {
            0 => {}
            1 => s.push_str(&msg!(lang, "rules.check.campaign_one")),
            n => s.push_str(&msg!(lang, "rules.check.campaigns_many", n = n)),
        }
        s
    }
}

/// `zaloflow rules check`: the text to print and whether the check passed. Problems are
/// `path:line:col: message`, warnings `path:line:col: warning: message`, then one summary
/// line. Warnings pass unless `deny_warnings`.
pub fn check_command(dir: &std::path::Path, deny_warnings: bool) -> (String, bool) {
    check_command_in(dir, deny_warnings, crate::i18n::Lang::default())
}

/// [`check_command`] told in `lang`.
pub fn check_command_in(
    dir: &std::path::Path,
    deny_warnings: bool,
    lang: crate::i18n::Lang,
) -> (String, bool) {
    let opts = LoadOptions {
        lang,
        ..LoadOptions::default()
    };
    let (out, ok, _) = check_command_with(dir, deny_warnings, &opts, None);
    (out, ok)
}

/// [`check_command`] (channels not checked) with the deployment's load options and channels: each rule action whose
/// channel is not configured is a warning (`path:line:col: warning: rule …`). `channels` None:
/// no deployment configuration was found. The third value says whether the channels were
/// checked (for stderr: the summary line keeps its shape).
pub fn check_command_with(
    dir: &std::path::Path,
    deny_warnings: bool,
    opts: &LoadOptions,
    channels: Option<&crate::channels::configured::Configured>,
) -> (String, bool, String) {
    let lang = opts.lang;
    match load_dir(dir, opts) {
        Ok(set) => {
            let mut warnings: Vec<String> = hygiene::check(&set)
                .iter()
                .map(|w| w.render(lang))
                .collect();
            let note = match channels {
                Some(c) => {
                    // The OA's tokens may be kept in the database (connected from the browser),
                    // which this command does not open: `serve` checks them at start.
                    let c = crate::channels::configured::Configured {
                        zalo_tokens: true,
                        ..c.clone()
                    };
                    for f in findings::check(&set, &c) {
                        warnings.push(f.as_warning(lang));
                    }
                    msg!(lang, "rules.check.note_checked")
                }
                None => msg!(lang, "rules.check.note_not_checked"),
            };
            let mut out = String::new();
            for w in &warnings {
                out.push_str(w);
                out.push('\n');
            }
            let ok = warnings.is_empty() || !deny_warnings;
            let verdict = match warnings.len() {
                0 => msg!(lang, "rules.check.no_warnings"),
                1 => msg!(lang, "rules.check.warning_one"),
                n => msg!(lang, "rules.check.warnings_many", n = n),
            };
            let verdict = if ok {
                verdict
            } else {
                msg!(lang, "rules.check.denied", verdict = verdict)
            };
            let summary = set.summary_in(lang);
            let line = if ok {
                msg!(
                    lang,
                    "rules.check.ok",
                    summary = summary,
                    dir = dir.display(),
                    verdict = verdict
                )
            } else {
                msg!(
                    lang,
                    "rules.check.failed",
                    summary = summary,
                    dir = dir.display(),
                    verdict = verdict
                )
            };
            out.push_str(&line);
            out.push('\n');
            (out, ok, note)
        }
        Err(diags) => {
            let mut out = String::new();
            for d in &diags {
                out.push_str(&d.render(lang));
                out.push('\n');
            }
            let problems = match diags.len() {
                1 => msg!(lang, "rules.check.problem_one"),
                n => msg!(lang, "rules.check.problems_many", n = n),
            };
            out.push_str(&msg!(
                lang,
                "rules.check.not_loaded",
                problems = problems,
                dir = dir.display()
            ));
            out.push('\n');
            (out, false, String::new())
        }
    }
}

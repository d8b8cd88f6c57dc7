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

pub mod campaign;
pub mod hygiene;
pub mod load;
pub mod matcher;
pub mod model;
pub mod schema;
pub mod simulate;
pub mod template;
pub mod watch;
pub mod yaml;

use std::path::PathBuf;

pub use campaign::{Campaign, EntryTrigger, SendTime, Step};
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
        }
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

    /// One line: how many rules and files.
    pub fn summary(&self) -> String {
        let enabled = self.rules.iter().filter(|r| r.enabled).count();
        let disabled = self.rules.len() - enabled;
        let mut s = format!(
            "{} rule{} in {} file{}",
            self.rules.len(),
            if self.rules.len() == 1 { "" } else { "s" },
            self.files.len(),
            if self.files.len() == 1 { "" } else { "s" },
        );
        if disabled > 0 {
            s.push_str(&format!(" ({disabled} disabled)"));
        }
        if !self.campaigns.is_empty() {
            let n = self.campaigns.len();
            s.push_str(&format!(", {n} campaign{}", if n == 1 { "" } else { "s" }));
        }
        s
    }
}

/// `zaloflow rules check`: the text to print and whether the check passed. Problems are
/// `path:line:col: message`, warnings `path:line:col: warning: message`, then one summary
/// line. Warnings pass unless `deny_warnings`.
pub fn check_command(dir: &std::path::Path, deny_warnings: bool) -> (String, bool) {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match load_dir(dir, &LoadOptions::default()) {
        Ok(set) => {
            let warnings = hygiene::check(&set);
            let mut out = String::new();
            for w in &warnings {
                out.push_str(&w.to_string());
                out.push('\n');
            }
            let ok = warnings.is_empty() || !deny_warnings;
            let verdict = match (warnings.len(), ok) {
                (0, _) => "no warnings".to_string(),
                (n, true) => plural(n, "warning"),
                (n, false) => format!("{} (--deny-warnings)", plural(n, "warning")),
            };
            out.push_str(&format!(
                "{}: {} in {}, {verdict}\n",
                if ok { "ok" } else { "failed" },
                set.summary(),
                dir.display(),
            ));
            (out, ok)
        }
        Err(diags) => {
            let mut out = String::new();
            for d in &diags {
                out.push_str(&d.to_string());
                out.push('\n');
            }
            out.push_str(&format!(
                "failed: {} in {}: the rules do not load\n",
                plural(diags.len(), "problem"),
                dir.display()
            ));
            (out, false)
        }
    }
}

//! The configuration checked whole against the rules: every rule action whose channel this
//! deployment has not configured is a [`Finding`] — where it was written (`path:line:col`), what
//! cannot go out and the variable to set. `serve` logs them at start and on every reload,
//! `/readyz` lists them, `zaloflow rules check` prints them as warnings; with
//! `ZALOFLOW_STRICT_CONFIG=true` they refuse the start and the reload.
//!
//! The checker takes the deployment's channels as plain data ([`Configured`]): no configuration
//! type reaches the rules.

use std::fmt;

use super::load::Diagnostic;
use super::model::{Action, Rule};
use super::yaml::Pos;
use super::RuleSet;
use crate::channels::configured::{Configured, Missing};
use crate::i18n::Lang;

/// One rule action that needs a channel the deployment lacks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Where the action was written.
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// The rule (or `CAMPAIGN/STEP`).
    pub rule: String,
    /// The action's word (`sms`, `notify`, `email`…).
    pub action: String,
    /// The channel (`sms`, `email`, `chat`, `task`, `zalo`, `zns`).
    pub channel: String,
    /// What cannot go out and what to set.
    pub message: String,
    /// Whether the action is recorded as skipped when it runs (false: it runs, but wrong).
    pub skips: bool,
    /// The language of `message` (the rules' load options'): the finding is shown in it.
    #[serde(skip)]
    pub lang: Lang,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            super::load::at(self.lang, std::path::Path::new(&self.file), self.pos()),
            self.cannot_run(self.lang)
        )
    }
}

impl Finding {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    /// "rule r: `sms` cannot run: …" in `lang`.
    fn cannot_run(&self, lang: Lang) -> String {
        msg!(
            lang,
            "rules.findings.cannot_run",
            rule = self.rule,
            action = self.action,
            message = self.message
        )
    }

    /// The finding as a rule problem (strict mode refuses the rules with it), in `lang`.
    pub fn diagnostic(&self, lang: Lang) -> Diagnostic {
        Diagnostic {
            path: self.file.clone().into(),
            pos: self.pos(),
            message: format!(
                "{} {}",
                self.cannot_run(lang),
                msg!(lang, "rules.findings.strict")
            ),
        }
    }

    /// The finding as a `rules check` warning line, in `lang`.
    pub fn as_warning(&self, lang: Lang) -> String {
        let then = if self.skips {
            msg!(lang, "rules.findings.skipped")
        } else {
            String::new()
        };
        msg!(
            lang,
            "rules.check.warning",
            at = super::load::at(lang, std::path::Path::new(&self.file), self.pos()),
            message = format!("{}{then}", self.cannot_run(lang))
        )
    }
}

/// The end of a finding's message when strict mode refuses the rules with it (in English;
/// [`is_strict_refusal`] knows it in every language).
pub const STRICT_MARK: &str = "(refused: ZALOFLOW_STRICT_CONFIG=true)";

/// Whether `d` is a finding that strict mode refused (in any language).
pub fn is_strict_refusal(d: &Diagnostic) -> bool {
    d.message.ends_with("ZALOFLOW_STRICT_CONFIG=true)")
}

/// What the rule watcher checks the rules against besides the files: the deployment's
/// channels (None: not checked) and whether findings refuse the rules.
#[derive(Debug, Clone, Default)]
pub struct ChannelCheck {
    pub channels: Option<Configured>,
    /// `ZALOFLOW_STRICT_CONFIG=true`
    pub strict: bool,
}

/// Every finding of `set` under `channels`, in file order.
pub fn check(set: &RuleSet, channels: &Configured) -> Vec<Finding> {
    let mut out = Vec::new();
    for rule in set.rules().iter().filter(|r| r.enabled) {
        rule_findings(rule, channels, set.lang(), &mut out);
    }
    for c in set.campaigns().iter().filter(|c| c.enabled) {
        for step in &c.steps {
            rule_findings(&step.rule, channels, set.lang(), &mut out);
        }
    }
    out.sort_by(|a, b| (&a.file, a.line, a.col, &a.rule).cmp(&(&b.file, b.line, b.col, &b.rule)));
    out.dedup();
    out
}

fn rule_findings(rule: &Rule, channels: &Configured, lang: Lang, out: &mut Vec<Finding>) {
    for (i, action) in rule.actions.iter().enumerate() {
        let mut missing: Vec<Missing> = Vec::new();
        match action {
            Action::Send { .. } => missing.extend(channels.zalo(false)),
            Action::Zns { .. } => missing.extend(channels.zalo(true)),
            Action::Sms { .. } => missing.extend(channels.sms()),
            Action::Email { .. } => {
                missing.extend(channels.email());
                // Every email a rule sends is tracked (open pixel, click redirects).
                missing.extend(channels.public_url());
            }
            Action::Task { .. } => missing.extend(channels.task()),
            Action::Notify { channel, .. } => missing.extend(channels.chat(channel.as_deref())),
            Action::Handoff { team, advisor, .. } => {
                // Told on the team's (or advisor's) channel, else the default webhook.
                let any = [team.as_deref(), advisor.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|n| channels.chat(Some(n)).is_none());
                if !any {
                    missing.extend(channels.chat(team.as_deref()));
                }
            }
            _ => {}
        }
        let pos = rule.action_pos(i);
        for m in missing {
            out.push(Finding {
                file: rule.origin.file.display().to_string(),
                line: pos.line,
                col: pos.col,
                rule: rule.id.clone(),
                action: action.name().to_string(),
                channel: m.channel.to_string(),
                message: m.text(lang),
                skips: m.skips,
                lang,
            });
        }
    }
}

/// What strict mode says when findings refuse a start or a reload.
pub fn strict_refusal(findings: &[Finding]) -> String {
    format!(
        "ZALOFLOW_STRICT_CONFIG=true: {} rule action{} cannot run with this configuration",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{load_sources, LoadOptions};

    fn set(yaml: &str) -> RuleSet {
        load_sources(
            &[("r.yaml".into(), yaml.to_string())],
            &LoadOptions {
                lang: Lang::En,
                ..LoadOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn each_unconfigured_action_is_found_where_it_was_written() {
        let s = set(r#"
chat_channels: {agents: the agents}
rules:
  - id: a
    when: follow
    do:
      - sms: "hi"
      - notify: {channel: agents, text: "x"}
      - task: {title: "t"}
      - email: {subject: "s", text: "t"}
  - id: off
    enabled: false
    when: follow
    do:
      - sms: "hi"
"#);
        let f = check(&s, &Configured::default());
        let shown: Vec<String> = f.iter().map(ToString::to_string).collect();
        assert_eq!(f.len(), 5, "{shown:#?}");
        assert!(
            shown[0].starts_with(
                "r.yaml:7:9: rule a: `sms` cannot run: SMS is not configured: set ZALOFLOW_SMS_URL"
            ),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("r.yaml:8:9:")
                && shown[1].contains("\"agents\"")
                && shown[1].contains("ZALOFLOW_CHAT_WEBHOOK_URL"),
            "{shown:#?}"
        );
        assert!(shown[2].contains("ZALOFLOW_TASK_WEBHOOK_URL"), "{shown:#?}");
        assert!(
            shown.iter().any(|s| s.contains("ZALOFLOW_SMTP_URL")),
            "{shown:#?}"
        );
        assert!(
            shown.iter().any(|s| s.contains("ZALOFLOW_PUBLIC_URL")),
            "{shown:#?}"
        );
        let only_chat = Configured {
            chat_default: true,
            ..Configured::all()
        };
        assert!(check(&s, &only_chat).is_empty());
    }

    #[test]
    fn a_handoff_needs_its_team_channel_or_the_default_webhook() {
        let s = set(r#"
chat_channels: {agents: the agents}
rules:
  - id: h
    when: message
    do:
      - handoff: {team: agents, deadline: 2h}
"#);
        let f = check(&s, &Configured::all_but_chat());
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].to_string().starts_with(
                "r.yaml:7:9: rule h: `handoff` cannot run: team-chat channel \"agents\""
            ),
            "{}",
            f[0]
        );
        let mut named = Configured::all_but_chat();
        named.chat_named.insert("agents".into());
        assert!(check(&s, &named).is_empty());
    }
}

//! The loader and checker: a folder of YAML files in, a [`RuleSet`] or every problem out,
//! each as `path:line:col: message`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::channels::ZaloKind;

use super::campaign::{Campaign, EntryTrigger, SendTime, Step, ALL_WEEKDAYS};
use super::model::*;
use super::template::{Escape, Template};
use super::text;
use super::yaml::{self, Node, NodeKind, Pos};
use super::RuleSet;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.pos.line,
            self.pos.col,
            self.message
        )
    }
}

/// Names known outside the rule files (e.g. chat channels configured for the deployment).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub extra_chat_channels: Vec<String>,
    pub extra_lists: Vec<String>,
    /// URLs in rules (email links, buttons, images) may name internal hosts
    /// (`ZALOFLOW_ALLOW_PRIVATE_URLS=true`; default false: the SSRF guard refuses them).
    pub allow_private_urls: bool,
}

/// Every trigger word, in the order the guide lists them.
pub const TRIGGERS: &[&str] = &[
    "message",
    "follow",
    "unfollow",
    "chat_now",
    "tag_added",
    "tag_removed",
    "info_submitted",
    "oa_reply",
    "schedule",
    "inactive",
    "special_day",
    "field_changed",
    "form_submitted",
    "email_opened",
    "email_not_opened",
    "email_clicked",
    "after_step",
];

/// Every condition word.
pub const CONDITIONS: &[&str] = &[
    "all",
    "any",
    "not",
    "time_between",
    "weekdays",
    "silent_for",
    "last_interaction_within",
    "has_tag",
    "lacks_tag",
    "follows",
    "in_list",
    "group",
    "field",
];

/// Every action word.
pub const ACTIONS: &[&str] = &[
    "send",
    "sms",
    "email",
    "zns",
    "template",
    "try",
    "notify",
    "task",
    "tag",
    "untag",
    "set_field",
    "list",
    "handoff",
    "wait",
    "stop",
];

pub const RULE_KEYS: &[&str] = &[
    "id",
    "description",
    "enabled",
    "priority",
    "when",
    "if",
    "do",
    "once_per",
    "cooldown",
];

pub const FILE_KEYS: &[&str] = &[
    "rules",
    "tags",
    "lists",
    "chat_channels",
    "campaigns",
    "forms",
];

/// The keys of a campaign.
pub const CAMPAIGN_KEYS: &[&str] = &[
    "id",
    "description",
    "enabled",
    "enter_on",
    "repeat_registration",
    "repeat_cooldown",
    "weekdays",
    "exit_if",
    "steps",
];

/// The keys of a campaign step.
pub const STEP_KEYS: &[&str] = &["id", "day", "at", "after", "if", "do"];

/// What can enter a contact into a campaign.
pub const ENTRY_TRIGGERS: &[&str] = &["form_submitted", "follow", "tag_added", "list_joined"];

/// Loads every `*.yaml` / `*.yml` file of `dir` (not recursive), in file-name order.
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Result<RuleSet, Vec<Diagnostic>> {
    let at_dir = |message: String| Diagnostic {
        path: dir.to_path_buf(),
        pos: Pos { line: 1, col: 1 },
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![at_dir(format!("cannot read the rules folder: {e}"))])?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_rule_file(p))
        .collect();
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    let mut diags = Vec::new();
    for p in paths {
        match std::fs::read(&p) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(s) => files.push((p, s)),
                Err(e) => diags.push(Diagnostic {
                    path: p,
                    pos: Pos { line: 1, col: 1 },
                    message: format!("not UTF-8 text ({e}); save the file as UTF-8"),
                }),
            },
            Err(e) => diags.push(Diagnostic {
                path: p,
                pos: Pos { line: 1, col: 1 },
                message: format!("cannot read: {e}"),
            }),
        }
    }
    match load_sources(&files, opts) {
        Ok(set) if diags.is_empty() => Ok(set),
        Ok(_) => Err(diags),
        Err(mut more) => {
            diags.append(&mut more);
            diags.sort_by(|a, b| (&a.path, a.pos).cmp(&(&b.path, b.pos)));
            Err(diags)
        }
    }
}

pub(crate) fn is_rule_file(p: &Path) -> bool {
    p.is_file()
        && matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        )
}

/// What to do about the YAML mistakes staff make most, with the line written right.
fn syntax_hint(line: &str, message: &str) -> Option<String> {
    // `key: text` → `key: "text"`, the text's own double quotes escaped.
    let quoted = |l: &str, single: bool| -> Option<String> {
        let (key, text) = l.split_once(": ")?;
        let text = text.trim();
        Some(if single {
            format!("{key}: '{}'", text.replace('\'', "''"))
        } else {
            format!(
                "{key}: \"{}\"",
                text.replace('\\', "\\\\").replace('"', "\\\"")
            )
        })
    };
    // `send: {{display_name}} ơi` opens a YAML flow mapping.
    if line.contains(": {{") || line.contains("- {{") {
        return Some(
            " (a text that starts with `{{` must be written in quotes or as a block with `|`)"
                .into(),
        );
    }
    if message.contains("mapping values are not allowed") {
        let fixed = quoted(line, false)?;
        return Some(format!(
            " — a text with a colon and a space (`: `) in it must be in quotes or written as a block with `|`; write it as:\n    {}",
            fixed.trim_start()
        ));
    }
    if message.contains("after double-quoted scalar")
        || message.contains("after single-quoted scalar")
    {
        let inner = line.split_once(": ").map(|(_, t)| t.trim()).unwrap_or("");
        let unquoted = inner.get(1..inner.len().saturating_sub(1)).unwrap_or(inner);
        let fixed = if line.contains(": \"") {
            quoted(&format!("{}: {unquoted}", line.split_once(": ")?.0), true)?
        } else {
            quoted(&format!("{}: {unquoted}", line.split_once(": ")?.0), false)?
        };
        return Some(format!(
            " — the text has a quote mark inside the quotes around it; put it in the other kind of quotes (or write it as a block with `|`):\n    {}",
            fixed.trim_start()
        ));
    }
    None
}

/// Loads rule files given as (path, text), in this order.
pub fn load_sources(
    files: &[(PathBuf, String)],
    opts: &LoadOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let mut refs = Vec::new();
    let mut decl = Declared::default();
    for n in &opts.extra_chat_channels {
        decl.chat_channels.insert(n.clone(), None);
    }
    for n in &opts.extra_lists {
        decl.lists.insert(n.clone(), None);
    }
    let mut rules = Vec::new();
    let mut step_refs = Vec::new();
    let mut campaigns = Vec::new();
    let mut load_warnings = Vec::new();
    for (file_idx, (path, src)) in files.iter().enumerate() {
        let path = Arc::new(path.clone());
        let mut cx = Ctx {
            path: &path,
            src,
            diags: &mut diags,
            refs: &mut refs,
            step_refs: &mut step_refs,
            text_sites: Vec::new(),
            allow_private_urls: opts.allow_private_urls,
            warnings: &mut load_warnings,
        };
        let docs = match yaml::parse(src) {
            Ok(d) => d,
            Err(e) => {
                let line = src.lines().nth(e.pos.line.saturating_sub(1) as usize);
                let hint = line
                    .and_then(|l| syntax_hint(l, &e.message))
                    .unwrap_or_default();
                cx.diags.push(Diagnostic {
                    path: path.to_path_buf(),
                    pos: e.pos,
                    message: format!("YAML syntax: {}{hint}", e.message),
                });
                continue;
            }
        };
        let blank = docs.iter().all(|d| match &d.kind {
            NodeKind::Scalar { text, plain: true } => matches!(text.as_str(), "" | "~" | "null"),
            NodeKind::Map(m) => m.is_empty(),
            _ => false,
        });
        if blank {
            // An emptied or cut-off file would silently take its rules away.
            cx.diags.push(Diagnostic {
                path: path.to_path_buf(),
                pos: Pos { line: 1, col: 1 },
                message: "this file is empty (or holds only comments): its rules would all stop. Put them back, or write `rules: []` to switch them off on purpose".into(),
            });
            continue;
        }
        for doc in &docs {
            for (pos_in_file, rule) in cx
                .file(doc, &mut decl, &mut campaigns)
                .into_iter()
                .enumerate()
            {
                rules.push((file_idx, pos_in_file, rule));
            }
        }
    }
    // Names used but declared nowhere.
    // Tags rules set; with no vocabulary, a tag a rule waits for or tests that no rule sets
    // and nobody declared is most likely a typo.
    let set_tags: std::collections::BTreeSet<&str> = rules
        .iter()
        .map(|(_, _, r)| r)
        .chain(
            campaigns
                .iter()
                .flat_map(|c| c.steps.iter().map(|s| &s.rule)),
        )
        .flat_map(|r| &r.actions)
        .flat_map(|a| match a {
            Action::Tag(tags) => tags.as_slice(),
            _ => &[],
        })
        .map(String::as_str)
        .collect();
    for r in refs.iter().filter(|r| matches!(r.kind, RefKind::Tag)) {
        if decl.tags.contains_key(&r.name)
            || (!decl.tag_vocabulary && set_tags.contains(r.name.as_str()))
        {
            continue;
        }
        let mut names: Vec<&str> = decl.tags.keys().map(String::as_str).collect();
        if !decl.tag_vocabulary {
            names.extend(set_tags.iter().copied());
            names.extend(
                refs.iter()
                    .filter(|o| matches!(o.kind, RefKind::Tag) && o.name != r.name)
                    .map(|o| o.name.as_str()),
            );
        }
        let hint = suggest(&r.name, &names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        if decl.tag_vocabulary {
            diags.push(Diagnostic {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: format!(
                    "unknown tag `{}`{hint} (add it under `tags:` if it is a new tag)",
                    r.name
                ),
            });
        } else {
            load_warnings.push(super::Warning {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: format!(
                    "no rule sets the tag `{}`{hint} — if staff or Zalo set it, list it under `tags:` in a rule file",
                    r.name
                ),
            });
        }
    }
    for r in refs.iter().filter(|r| !matches!(r.kind, RefKind::Tag)) {
        let known = match r.kind {
            RefKind::List => &decl.lists,
            RefKind::Channel | RefKind::Tag => &decl.chat_channels,
        };
        if !known.contains_key(&r.name) {
            let (what, key) = match r.kind {
                RefKind::List => ("list", "lists"),
                RefKind::Channel | RefKind::Tag => ("chat channel", "chat_channels"),
            };
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            let hint = suggest(&r.name, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.push(Diagnostic {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: format!(
                    "unknown {what} `{}`: declare it under `{key}:` in a rule file{hint}",
                    r.name
                ),
            });
        }
    }
    // Ids are unique across the folder.
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for (_, _, r) in &rules {
        if let Some(first) = seen.get(r.id.as_str()) {
            diags.push(Diagnostic {
                path: r.origin.file.to_path_buf(),
                pos: r.origin.pos,
                message: format!("duplicate rule id `{}` (first used at {first})", r.id),
            });
        } else {
            seen.insert(&r.id, &r.origin);
        }
    }
    // Campaign ids are unique too (steps are unique within their campaign).
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for c in &campaigns {
        if let Some(first) = seen.get(c.id.as_str()) {
            diags.push(Diagnostic {
                path: c.origin.file.to_path_buf(),
                pos: c.origin.pos,
                message: format!("duplicate campaign id `{}` (first used at {first})", c.id),
            });
        } else {
            seen.insert(&c.id, &c.origin);
        }
    }
    // `after_step` and `email:` name campaigns, steps and rules that must exist; a step given
    // by number becomes its id.
    let rule_ids: std::collections::HashSet<String> =
        rules.iter().map(|(_, _, r)| r.id.clone()).collect();
    let mut renames: Vec<(String, StepRefKind, String, String)> = Vec::new();
    for r in &step_refs {
        let Some(rule_id) = &r.rule_id else { continue };
        let err = |message: String| Diagnostic {
            path: r.path.to_path_buf(),
            pos: r.pos,
            message,
        };
        match &r.step {
            None if r.kind == StepRefKind::Email && !rule_ids.contains(&r.campaign) => {
                let ids: Vec<&str> = rule_ids.iter().map(String::as_str).collect();
                let hint = suggest(&r.campaign, &ids)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                diags.push(err(format!(
                    "`email: {}` names no rule (write a rule id, or CAMPAIGN/STEP for a campaign step){hint}",
                    r.campaign
                )));
            }
            None => {}
            Some(step) => match campaigns.iter().find(|c| c.id == r.campaign) {
                None => {
                    let ids: Vec<&str> = campaigns.iter().map(|c| c.id.as_str()).collect();
                    let hint = suggest(&r.campaign, &ids)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    diags.push(Diagnostic {
                        pos: r.campaign_pos,
                        ..err(format!(
                            "unknown campaign `{}`{hint} (campaigns: {})",
                            r.campaign,
                            one_of(&ids)
                        ))
                    });
                }
                Some(c) => match c.find_step(step) {
                    None => {
                        let ids: Vec<&str> = c.steps.iter().map(|s| s.id.as_str()).collect();
                        diags.push(err(format!(
                            "campaign `{}` has no step `{step}` (its steps: {}, or a number from 1 to {})",
                            c.id,
                            one_of(&ids),
                            c.steps.len()
                        )));
                    }
                    Some(i) if c.steps[i].id != *step => renames.push((
                        rule_id.clone(),
                        r.kind,
                        format!("{}/{step}", c.id),
                        c.step_key(i),
                    )),
                    Some(_) => {}
                },
            },
        }
    }
    for (rule_id, kind, from, to) in renames {
        let Some((_, _, rule)) = rules.iter_mut().find(|(_, _, r)| r.id == rule_id) else {
            continue;
        };
        for t in &mut rule.triggers {
            match (t, kind) {
                (Trigger::AfterStep { campaign, step }, StepRefKind::AfterStep)
                    if format!("{campaign}/{step}") == from =>
                {
                    if let Some((_, s)) = to.split_once('/') {
                        *step = s.to_string();
                    }
                }
                (
                    Trigger::EmailOpened { email, .. }
                    | Trigger::EmailNotOpened { email, .. }
                    | Trigger::EmailClicked { email, .. },
                    StepRefKind::Email,
                ) if email.as_deref() == Some(from.as_str()) => *email = Some(to.clone()),
                _ => {}
            }
        }
    }
    if !diags.is_empty() {
        diags.sort_by(|a, b| (&a.path, a.pos).cmp(&(&b.path, b.pos)));
        diags.dedup();
        return Err(diags);
    }
    rules.sort_by_key(|(f, p, r)| (std::cmp::Reverse(r.priority), *f, *p));
    Ok(RuleSet::new(
        rules.into_iter().map(|(_, _, r)| r).collect(),
        files.iter().map(|(p, _)| p.clone()).collect(),
        decl.lists.into_keys().collect(),
        decl.chat_channels.into_keys().collect(),
    )
    .with_campaigns(campaigns)
    .with_load_warnings(load_warnings)
    .with_forms(decl.forms.into_keys().collect()))
}

#[derive(Default)]
struct Declared {
    /// Whether any file has a `tags:` vocabulary: then every tag must be in it.
    tag_vocabulary: bool,
    tags: BTreeMap<String, Option<Origin>>,
    lists: BTreeMap<String, Option<Origin>>,
    chat_channels: BTreeMap<String, Option<Origin>>,
    /// Forms declared with `forms:` (campaigns and rules that name a form declare it too).
    forms: BTreeMap<String, Option<Origin>>,
}

#[derive(Clone, Copy)]
enum RefKind {
    List,
    Channel,
    Tag,
}

struct Ref {
    kind: RefKind,
    name: String,
    path: Arc<PathBuf>,
    pos: Pos,
}

struct Ctx<'a> {
    path: &'a Arc<PathBuf>,
    src: &'a str,
    diags: &'a mut Vec<Diagnostic>,
    refs: &'a mut Vec<Ref>,
    step_refs: &'a mut Vec<StepRef>,
    /// Where the Zalo texts of the action being read were written (see [`Ctx::zalo_text`]).
    text_sites: Vec<Pos>,
    /// See [`LoadOptions::allow_private_urls`].
    allow_private_urls: bool,
    /// Warnings only the loader can give (they never stop a load).
    warnings: &'a mut Vec<super::Warning>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StepRefKind {
    AfterStep,
    Email,
}

/// A campaign step (or, for an `email:` without `/`, a rule) named by a trigger; checked once
/// every file is read.
struct StepRef {
    kind: StepRefKind,
    /// The campaign, or the rule id of `email: RULE`.
    campaign: String,
    step: Option<String>,
    /// The rule whose trigger it is (set when the rule checked clean).
    rule_id: Option<String>,
    path: Arc<PathBuf>,
    /// Where the step (or the email) is written, and where the campaign is.
    pos: Pos,
    campaign_pos: Pos,
}

/// The keys of a mapping, checked.
struct Keys<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
    at: &'n Node,
}

impl<'n> Keys<'n> {
    fn get(&self, k: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _, _)| *name == k)
            .map(|(_, _, v)| *v)
    }
    fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest<'s>(word: &str, known: &[&'s str]) -> Option<&'s str> {
    known
        .iter()
        .map(|k| (levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn one_of(known: &[&str]) -> String {
    known.join(", ")
}

impl<'a> Ctx<'a> {
    fn err_at(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            pos,
            message: message.into(),
        });
    }

    fn err(&mut self, node: &Node, message: impl Into<String>) {
        self.err_at(node.pos, message)
    }

    fn origin(&self, node: &Node) -> Origin {
        Origin {
            file: self.path.clone(),
            pos: node.pos,
        }
    }

    fn refer(&mut self, kind: RefKind, name: &str, node: &Node) {
        self.refs.push(Ref {
            kind,
            name: name.to_string(),
            path: self.path.clone(),
            pos: node.pos,
        });
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed` and not repeated.
    fn keys<'n>(&mut self, node: &'n Node, what: &str, allowed: &[&str]) -> Option<Keys<'n>> {
        let Some(map) = node.as_map() else {
            self.err(
                node,
                format!(
                    "{what} must be a mapping (key: value) with keys {}; found {}",
                    one_of(allowed),
                    node.describe()
                ),
            );
            return None;
        };
        let mut entries: Vec<(&'n str, &'n Node, &'n Node)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                self.err(k, format!("{what}: a key must be a word"));
                continue;
            };
            if !allowed.contains(&name) {
                let hint = suggest(name, allowed)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.err(
                    k,
                    format!(
                        "unknown key `{name}` in {what}: {hint}(expected one of {})",
                        one_of(allowed)
                    ),
                );
                continue;
            }
            if entries.iter().any(|(n, _, _)| *n == name) {
                self.err(k, format!("`{name}` is written twice in {what}"));
                continue;
            }
            entries.push((name, k, v));
        }
        Some(Keys { entries, at: node })
    }

    fn require<'n>(&mut self, keys: &Keys<'n>, key: &str, what: &str) -> Option<&'n Node> {
        let v = keys.get(key);
        if v.is_none() {
            self.err(keys.at, format!("{what} needs `{key}:`"));
        }
        v
    }

    /// The SSRF guard on a URL written in a rule (its `{{…}}` parts stand for a word): an
    /// internal host is a warning at the URL's position. The service never fetches these
    /// URLs (customers' phones do), and rule files that loaded before must still load.
    fn guard_url(&mut self, node: &Node, what: &str) {
        let Some(raw) = node.as_str() else { return };
        let mut url = String::new();
        let mut rest = raw.trim();
        while let Some(start) = rest.find("{{") {
            url.push_str(&rest[..start]);
            match rest[start..].find("}}") {
                Some(end) => {
                    url.push('x');
                    rest = &rest[start + end + 2..];
                }
                None => {
                    rest = "";
                }
            }
        }
        url.push_str(rest);
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return; // not a URL the guard can judge (e.g. all of it a placeholder)
        }
        if let Err(e) = crate::channels::guard::check_untrusted(&url, self.allow_private_urls) {
            if e.contains("internal") {
                self.warnings.push(super::Warning {
                    path: self.path.to_path_buf(),
                    pos: node.pos,
                    message: format!(
                        "{what}: {} — customers cannot open it",
                        e.replace(&url, raw.trim())
                    ),
                });
            }
        }
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => {
                self.err(
                    node,
                    format!("{what} must be a text or a name; found {}", node.describe()),
                );
                None
            }
        }
    }

    /// A name (tag, list, channel, field): one word without spaces.
    fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if s.chars().any(char::is_whitespace) {
            self.err(
                node,
                format!("{what} `{s}` must not contain spaces (use _)"),
            );
            return None;
        }
        if what == "a tag" {
            self.refer(RefKind::Tag, &s, node);
        }
        Some(s)
    }

    fn names(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        match &node.kind {
            NodeKind::Seq(items) if !items.is_empty() => {
                let v: Vec<_> = items.iter().filter_map(|i| self.name(i, what)).collect();
                (v.len() == items.len()).then_some(v)
            }
            NodeKind::Seq(_) => {
                self.err(node, format!("{what}: the list is empty"));
                None
            }
            _ => self.name(node, what).map(|n| vec![n]),
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true" | "True" | "TRUE" | "yes" | "Yes" | "on") => Some(true),
            Some("false" | "False" | "FALSE" | "no" | "No" | "off") => Some(false),
            _ => {
                self.err(node, format!("{what} must be true or false"));
                None
            }
        }
    }

    fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        match node.as_str().and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    node,
                    format!("{what} must be a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Ms> {
        match node.as_str().and_then(parse_duration) {
            Some(d) if d > 0 => Some(d),
            _ => {
                let shown = node.as_str().unwrap_or("");
                self.err(
                    node,
                    format!("{what}: bad duration `{shown}`: write a number and a unit (s, m, h, d, w), e.g. 30m, 2h, 1d, 1h30m"),
                );
                None
            }
        }
    }

    fn clock(&mut self, node: &Node, what: &str) -> Option<u16> {
        match node.as_str().and_then(parse_clock) {
            Some(m) => Some(m),
            None => {
                let shown = node.as_str().unwrap_or("");
                self.err(
                    node,
                    format!("{what}: bad time `{shown}`: write HH:MM from 00:00 to 23:59, in quotes, e.g. \"05:00\""),
                );
                None
            }
        }
    }

    fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
        self.template_as(node, what, Escape::Plain)
    }

    /// A template whose values are escaped for `escape` (see [`Escape`]).
    fn template_as(&mut self, node: &Node, what: &str, escape: Escape) -> Option<Template> {
        let text = match node.as_str() {
            Some(s) if !s.trim().is_empty() => s.trim_end(),
            _ => {
                // `send: {{display_name}} ơi` reads as a YAML mapping: say so.
                let starts_with_braces = node
                    .as_map()
                    .and_then(|m| m.first())
                    .is_some_and(|(k, _)| k.as_map().is_some());
                if starts_with_braces {
                    self.err(
                        node,
                        format!("{what}: a text that starts with `{{{{` must be written in quotes or as a block (`|` on the line before)"),
                    );
                } else {
                    self.err(
                        node,
                        format!("{what} must be a text; found {}", node.describe()),
                    );
                }
                return None;
            }
        };
        match Template::parse_as(text, escape) {
            Ok(t) => Some(t),
            Err(e) => {
                // Find that `{{` in the file: the nth one in the node's source text.
                let raw = yaml::source_of(self.src, node);
                let pos = raw
                    .match_indices("{{")
                    .nth(e.nth)
                    .map(|(b, _)| yaml::pos_at(self.src, node.start + raw[..b].chars().count()))
                    .unwrap_or(node.pos);
                self.err_at(pos, format!("{what}: {}", e.message));
                None
            }
        }
    }

    /// A text the customer receives as a Zalo message: a template whose position is recorded
    /// for [`ActionSite::texts`]. Call it in the order [`Action::zalo_texts`] yields them.
    fn zalo_text(&mut self, node: &Node, what: &str) -> Option<Template> {
        let t = self.template(node, what)?;
        self.text_sites.push(node.pos);
        Some(t)
    }

    fn opt_template(&mut self, keys: &Keys, key: &str, what: &str) -> Option<Option<Template>> {
        match keys.get(key) {
            None => Some(None),
            Some(n) => self.template(n, what).map(Some),
        }
    }

    // --- files ---

    fn file(
        &mut self,
        doc: &Node,
        decl: &mut Declared,
        campaigns: &mut Vec<Campaign>,
    ) -> Vec<Rule> {
        if doc.is_null() {
            return Vec::new();
        }
        if let NodeKind::Seq(_) = doc.kind {
            return self.rule_list(doc);
        }
        let Some(keys) = self.keys(doc, "a rule file", FILE_KEYS) else {
            return Vec::new();
        };
        if keys.get("tags").is_some() {
            decl.tag_vocabulary = true;
        }
        for (key, target, kind) in [
            ("tags", &mut decl.tags, "tag"),
            ("lists", &mut decl.lists, "list"),
            ("chat_channels", &mut decl.chat_channels, "chat channel"),
            ("forms", &mut decl.forms, "form"),
        ] {
            let Some(node) = keys.get(key) else { continue };
            let names: Vec<&Node> = match &node.kind {
                NodeKind::Seq(items) => items.iter().collect(),
                NodeKind::Map(entries) => entries.iter().map(|(k, _)| k).collect(),
                _ if node.is_null() => Vec::new(),
                _ => {
                    self.err(
                        node,
                        format!("`{key}:` must be a list of {kind} names (or name: description)"),
                    );
                    continue;
                }
            };
            for n in names {
                if let Some(name) = self.name(n, &format!("a {kind} name")) {
                    let origin = self.origin(n);
                    target.entry(name).or_insert(Some(origin));
                }
            }
        }
        if let Some(c) = keys.get("campaigns") {
            match &c.kind {
                NodeKind::Seq(items) => {
                    campaigns.extend(items.iter().filter_map(|n| self.campaign(n)));
                }
                _ if c.is_null() => {}
                _ => self.err(
                    c,
                    "`campaigns:` must be a list: start each campaign with `- id: …`",
                ),
            }
        }
        match keys.get("rules") {
            Some(r) => self.rule_list(r),
            None => Vec::new(),
        }
    }

    // --- campaigns ---

    fn ident(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if !s
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            self.err(
                node,
                format!("{what} `{s}` may hold only letters, digits, _ - and ."),
            );
            return None;
        }
        Some(s)
    }

    fn campaign(&mut self, node: &Node) -> Option<Campaign> {
        let keys = self.keys(node, "a campaign", CAMPAIGN_KEYS)?;
        let errors_before = self.diags.len();
        let id = self
            .require(&keys, "id", "a campaign")
            .and_then(|n| self.ident(n, "campaign id"));
        let description = keys
            .get("description")
            .and_then(|n| self.string(n, "`description`"));
        let enabled = keys
            .get("enabled")
            .and_then(|n| self.boolean(n, "`enabled`"))
            .unwrap_or(true);
        let enter_on = match self.require(&keys, "enter_on", "a campaign") {
            Some(n) => self.entry_triggers(n),
            None => Vec::new(),
        };
        let repeat_registration = keys
            .get("repeat_registration")
            .and_then(|n| self.boolean(n, "`repeat_registration`"))
            .unwrap_or(false);
        let repeat_cooldown = match keys.get("repeat_cooldown") {
            Some(n) => self.duration(n, "`repeat_cooldown`").unwrap_or(HOUR),
            None => HOUR,
        };
        let weekdays = match keys.get("weekdays") {
            Some(n) => self.weekday_mask(n).unwrap_or(ALL_WEEKDAYS),
            None => ALL_WEEKDAYS,
        };
        let exit_if = match keys.get("exit_if") {
            Some(c) => self.conditions(c),
            None => Vec::new(),
        };
        let steps_node = self.require(&keys, "steps", "a campaign");
        let cid = id.clone().unwrap_or_default();
        let mut steps: Vec<Step> = Vec::new();
        match steps_node.map(|n| (n, &n.kind)) {
            Some((_, NodeKind::Seq(items))) if !items.is_empty() => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(st) = self.step(item, &cid, i + 1) {
                        if let Some(first) = steps
                            .iter()
                            .find(|s| s.explicit_id && st.explicit_id && s.id == st.id)
                        {
                            let at = first.rule.origin.clone();
                            self.err(
                                item,
                                format!("duplicate step id `{}` (first used at {at})", st.id),
                            );
                        } else {
                            steps.push(st);
                        }
                    }
                }
            }
            Some((n, _)) => self.err(
                n,
                "`steps:` must be a list with at least one step: start each with `- day: …` or `- id: …`",
            ),
            None => {}
        }
        if self.diags.len() > errors_before {
            return None;
        }
        super::campaign::unique_step_ids(&mut steps, &cid);
        Some(Campaign {
            id: id?,
            description,
            enabled,
            origin: self.origin(node),
            enter_on,
            repeat_registration,
            repeat_cooldown,
            weekdays,
            exit_if,
            steps,
        })
    }

    fn entry_triggers(&mut self, node: &Node) -> Vec<EntryTrigger> {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() || node.is_null() {
            self.err(node, "`enter_on:` is empty: name at least one trigger");
            return Vec::new();
        }
        let mut out = Vec::new();
        for item in items {
            let pairs: Vec<(&Node, Option<&Node>)> = match &item.kind {
                NodeKind::Map(entries) => entries.iter().map(|(k, v)| (k, Some(v))).collect(),
                NodeKind::Scalar { .. } if !item.is_null() => vec![(item, None)],
                _ => {
                    self.err(
                        item,
                        format!(
                            "an entry trigger is `follow` or `name: value` ({}); found {}",
                            one_of(ENTRY_TRIGGERS),
                            item.describe()
                        ),
                    );
                    continue;
                }
            };
            for (k, v) in pairs {
                let name = k.as_str().unwrap_or_default();
                let value = v.filter(|v| !v.is_null());
                let t = match (name, value) {
                    ("follow", None) => Some(EntryTrigger::Follow),
                    ("follow", Some(v)) => {
                        self.err(v, "`follow` takes no options");
                        None
                    }
                    ("form_submitted" | "tag_added" | "list_joined", None) => {
                        self.err(k, format!("`{name}` needs a name, e.g. `{name}: dang_ky`"));
                        None
                    }
                    ("form_submitted", Some(v)) => {
                        self.name(v, "a form name").map(EntryTrigger::FormSubmitted)
                    }
                    ("tag_added", Some(v)) => self.name(v, "a tag").map(EntryTrigger::TagAdded),
                    ("list_joined", Some(v)) => self.name(v, "a list name").map(|l| {
                        self.refer(RefKind::List, &l, v);
                        EntryTrigger::ListJoined(l)
                    }),
                    _ => {
                        let hint = suggest(name, ENTRY_TRIGGERS)
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        self.err(
                            k,
                            format!(
                                "unknown entry trigger `{name}`: {hint}(known: {})",
                                one_of(ENTRY_TRIGGERS)
                            ),
                        );
                        None
                    }
                };
                out.extend(t);
            }
        }
        out
    }

    fn weekday_mask(&mut self, v: &Node) -> Option<u8> {
        let items: Vec<&Node> = match &v.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        if items.is_empty() {
            self.err(v, "`weekdays` is empty: list the days messages may go out");
            return None;
        }
        let mut mask = 0u8;
        for i in items {
            match i.as_str().and_then(parse_weekday) {
                Some(b) => mask |= b,
                None => {
                    self.err(
                        i,
                        "a weekday is one of mon, tue, wed, thu, fri, sat, sun (or t2…t7, cn)",
                    );
                    return None;
                }
            }
        }
        Some(mask)
    }

    fn step(&mut self, node: &Node, campaign: &str, number: usize) -> Option<Step> {
        let keys = self.keys(node, "a campaign step", STEP_KEYS)?;
        let errors_before = self.diags.len();
        let written_id = keys.get("id").map(|n| self.ident(n, "step id"));
        let day = match keys.get("day") {
            Some(n) => self.int(n, "`day`", 0, 3650).map(|d| d as u32),
            None => Some(0),
        };
        let send = match (keys.get("at"), keys.get("after")) {
            (Some(a), Some(_)) => {
                self.err(
                    a,
                    "a step has either `at:` (a clock time) or `after:` (a delay), not both",
                );
                None
            }
            (Some(a), None) => self.clock(a, "`at`").map(SendTime::At),
            (None, Some(d)) => self.duration(d, "`after`").map(SendTime::After),
            (None, None) => Some(SendTime::Immediately),
        };
        let conditions = match keys.get("if") {
            Some(c) => self.conditions(c),
            None => Vec::new(),
        };
        let (actions, sites) = match keys.get("do") {
            Some(d) => self.actions(d),
            None => {
                self.err(node, "a step needs `do:` (what to send or do)");
                Default::default()
            }
        };
        if self.diags.len() > errors_before {
            return None;
        }
        let (day, send) = (day?, send?);
        let explicit_id = written_id.is_some();
        let id = match written_id {
            Some(id) => id?,
            None => super::campaign::derived_step_id(day, send),
        };
        Some(Step {
            rule: Rule {
                id: format!("{campaign}/{id}"),
                description: None,
                enabled: true,
                priority: 0,
                origin: self.origin(node),
                triggers: Vec::new(),
                conditions,
                actions,
                once_per: None,
                cooldown: None,
                sites,
            },
            id,
            explicit_id,
            number,
            day,
            send,
        })
    }

    fn rule_list(&mut self, node: &Node) -> Vec<Rule> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().filter_map(|r| self.rule(r)).collect(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.err(
                    node,
                    "`rules:` must be a list: start each rule with `- id: …`",
                );
                Vec::new()
            }
        }
    }

    fn rule(&mut self, node: &Node) -> Option<Rule> {
        let keys = self.keys(node, "a rule", RULE_KEYS)?;
        let errors_before = self.diags.len();
        let refs_before = self.step_refs.len();
        let id_node = self.require(&keys, "id", "a rule");
        let id = id_node.and_then(|n| {
            let s = self.string(n, "`id`")?;
            if !s
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                self.err(
                    n,
                    format!("rule id `{s}` may hold only letters, digits, _ - and ."),
                );
                return None;
            }
            Some(s)
        });
        let description = keys
            .get("description")
            .and_then(|n| self.string(n, "`description`"));
        let enabled = keys
            .get("enabled")
            .and_then(|n| self.boolean(n, "`enabled`"))
            .unwrap_or(true);
        let priority = keys
            .get("priority")
            .and_then(|n| self.int(n, "`priority`", -1_000_000, 1_000_000))
            .unwrap_or(0);
        let triggers = match keys.get("when") {
            Some(w) => self.when(w),
            None => {
                self.err(
                    node,
                    "a rule needs `when:` (what starts it, e.g. `when: message`)",
                );
                Vec::new()
            }
        };
        let conditions = match keys.get("if") {
            Some(c) => self.conditions(c),
            None => Vec::new(),
        };
        let (actions, sites) = match keys.get("do") {
            Some(d) => self.actions(d),
            None => {
                self.err(node, "a rule needs `do:` (the list of actions)");
                Default::default()
            }
        };
        let once_per = keys.get("once_per").and_then(|n| match n.as_str() {
            Some("day") => Some(OncePer::Day),
            Some("period") => Some(OncePer::Period),
            Some("silence") => Some(OncePer::Silence),
            Some("ever") => Some(OncePer::Ever),
            _ => {
                self.err(n, "`once_per` must be one of day, period, silence, ever");
                None
            }
        });
        if once_per == Some(OncePer::Period) && !conditions.iter().any(has_time_between) {
            let n = keys.get("once_per").unwrap_or(node);
            self.err(
                n,
                "`once_per: period` needs a `time_between` condition under `if:` (the period)",
            );
        }
        let cooldown = keys
            .get("cooldown")
            .and_then(|n| self.duration(n, "`cooldown`"));
        if self.diags.len() > errors_before {
            return None;
        }
        let id = id?;
        for r in &mut self.step_refs[refs_before..] {
            r.rule_id = Some(id.clone());
        }
        Some(Rule {
            id,
            description,
            enabled,
            priority,
            origin: self.origin(node),
            triggers,
            conditions,
            actions,
            once_per,
            cooldown,
            sites,
        })
    }

    // --- when ---

    fn when(&mut self, node: &Node) -> Vec<Trigger> {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() {
            self.err(node, "`when:` is empty: name at least one trigger");
        }
        let mut out = Vec::new();
        for item in items {
            match &item.kind {
                NodeKind::Scalar { .. } if !item.is_null() => {
                    let name = item.as_str().unwrap_or_default();
                    if let Some(t) = self.trigger(name, item, None) {
                        out.push(t);
                    }
                }
                NodeKind::Map(entries) => {
                    for (k, v) in entries {
                        match k.as_str() {
                            Some(name) => {
                                if let Some(t) = self.trigger(name, k, Some(v)) {
                                    out.push(t);
                                }
                            }
                            None => self.err(k, "a trigger must be a word"),
                        }
                    }
                }
                _ => self.err(
                    item,
                    format!(
                        "a trigger must be a word (e.g. `follow`) or `name: options`; found {}",
                        item.describe()
                    ),
                ),
            }
        }
        out
    }

    fn no_value(&mut self, name: &str, value: Option<&Node>) -> bool {
        match value {
            Some(v) if !v.is_null() => {
                self.err(v, format!("`{name}` takes no options"));
                false
            }
            _ => true,
        }
    }

    fn trigger(&mut self, name: &str, at: &Node, value: Option<&Node>) -> Option<Trigger> {
        let value_or_err = |cx: &mut Self, what: &str| -> Option<&Node> {
            match value {
                Some(v) if !v.is_null() => Some(v),
                _ => {
                    cx.err(at, format!("`{name}` needs {what}"));
                    None
                }
            }
        };
        let t = match name {
            "message" => {
                let Some(v) = value.filter(|v| !v.is_null()) else {
                    return Some(Trigger::Message(MessageFilter::default()));
                };
                if v.as_str().is_some() {
                    self.err(
                        v,
                        "write the text to look for as `message: {contains: …}` or `message: {equals: …}`",
                    );
                    return None;
                }
                let keys = self.keys(
                    v,
                    "`message`",
                    &[
                        "contains",
                        "contains_text",
                        "equals",
                        "accents",
                        "regex",
                        "attachment",
                    ],
                )?;
                let mut f = MessageFilter::default();
                let mut ok = true;
                if let Some(n) = keys.get("accents") {
                    match n.as_str() {
                        Some("required") => f.accents = text::Accents::Required,
                        Some("optional") => f.accents = text::Accents::Optional,
                        _ => {
                            self.err(
                                n,
                                "`accents` is `required` (the default: \"giá\" does not match \"gia\") or `optional` (with or without dấu)",
                            );
                            ok = false;
                        }
                    }
                }
                for (key, list) in [
                    ("contains", &mut f.contains),
                    ("contains_text", &mut f.contains_text),
                    ("equals", &mut f.equals),
                ] {
                    if let Some(n) = keys.get(key) {
                        let items: Vec<&Node> = match &n.kind {
                            NodeKind::Seq(s) => s.iter().collect(),
                            _ => vec![n],
                        };
                        for i in items {
                            match self.string(i, &format!("`{key}`")) {
                                Some(s) if text::fold(&s, f.accents).is_empty() => {
                                    self.err(i, format!("`{key}` needs a word, not an empty text"));
                                    ok = false;
                                }
                                Some(s) => list.push(text::fold(&s, text::Accents::Required)),
                                None => ok = false,
                            }
                        }
                    }
                }
                if let Some(n) = keys.get("regex") {
                    let src = self.string(n, "`regex`")?;
                    match regex::RegexBuilder::new(&src)
                        .case_insensitive(true)
                        .size_limit(1 << 20)
                        .build()
                    {
                        Ok(r) => f.regex = Some(r),
                        Err(e) => {
                            let msg = e.to_string();
                            let last = msg.lines().last().unwrap_or("").trim();
                            let last = last.strip_prefix("error: ").unwrap_or(last).to_string();
                            self.err(n, format!("bad regex `{src}`: {last}"));
                            ok = false;
                        }
                    }
                }
                if let Some(n) = keys.get("attachment") {
                    const KINDS: &[&str] = &[
                        "image", "sticker", "file", "link", "gif", "audio", "video", "location",
                        "any",
                    ];
                    match n.as_str() {
                        Some(k) if KINDS.contains(&k) => f.attachment = Some(k.to_string()),
                        _ => {
                            self.err(n, format!("`attachment` must be one of {}", one_of(KINDS)));
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                Trigger::Message(f)
            }
            "follow" | "unfollow" | "chat_now" | "info_submitted" | "oa_reply" => {
                if !self.no_value(name, value) {
                    return None;
                }
                match name {
                    "follow" => Trigger::Follow,
                    "unfollow" => Trigger::Unfollow,
                    "chat_now" => Trigger::ChatNow,
                    "info_submitted" => Trigger::InfoSubmitted,
                    _ => Trigger::OaReply,
                }
            }
            "tag_added" | "tag_removed" => {
                let v = value_or_err(self, "a tag name, e.g. `tag_added: vip_customer`")?;
                let tag = self.name(v, "a tag")?;
                if name == "tag_added" {
                    Trigger::TagAdded(tag)
                } else {
                    Trigger::TagRemoved(tag)
                }
            }
            "schedule" => {
                let v = value_or_err(self, "a cron pattern, e.g. `schedule: \"0 9 * * *\"`")?;
                let pattern = self.string(v, "`schedule`")?;
                Trigger::Schedule(Box::new(self.cron(v, &pattern)?))
            }
            "inactive" => {
                let v = value_or_err(self, "`{min_days: 7, max_days: 14}`")?;
                let keys = self.keys(v, "`inactive`", &["min_days", "max_days"])?;
                let min = self
                    .require(&keys, "min_days", "`inactive`")
                    .and_then(|n| self.int(n, "`min_days`", 0, 3650))?;
                let max = match keys.get("max_days") {
                    Some(n) => Some(self.int(n, "`max_days`", 0, 3650)?),
                    None => None,
                };
                if let (Some(max), Some(n)) = (max, keys.get("max_days")) {
                    if max < min {
                        self.err(n, "`max_days` is smaller than `min_days`");
                        return None;
                    }
                }
                Trigger::Inactive {
                    min_days: min as u32,
                    max_days: max.map(|m| m as u32),
                }
            }
            "special_day" => {
                let v = value_or_err(
                    self,
                    "`{field: dob, days_before: 0}` or `{date: \"08/03\"}`",
                )?;
                let keys = self.keys(v, "`special_day`", &["field", "date", "days_before"])?;
                let on = match (keys.get("field"), keys.get("date")) {
                    (Some(f), None) => SpecialDate::Field(self.name(f, "`field`")?),
                    (None, Some(d)) => {
                        let text = d.as_str().unwrap_or_default();
                        match parse_day_month(text) {
                            Some((day, month)) => SpecialDate::Date { day, month },
                            None => {
                                self.err(
                                    d,
                                    format!("`date`: bad date `{text}`: write DD/MM in quotes, e.g. \"08/03\""),
                                );
                                return None;
                            }
                        }
                    }
                    _ => {
                        self.err(
                            v,
                            "`special_day` needs either `field:` (a contact's date, e.g. dob) or `date:` (the shop's own date, DD/MM)",
                        );
                        return None;
                    }
                };
                let days_before = match keys.get("days_before") {
                    Some(n) => self.int(n, "`days_before`", 0, 365)? as u32,
                    None => 0,
                };
                Trigger::SpecialDay { on, days_before }
            }
            "field_changed" => {
                let v = value_or_err(self, "`{field: NAME, to: VALUE}`")?;
                if v.as_str().is_some() {
                    Trigger::FieldChanged {
                        field: self.name(v, "`field`")?,
                        to: None,
                    }
                } else {
                    let keys = self.keys(v, "`field_changed`", &["field", "to"])?;
                    let field = self
                        .require(&keys, "field", "`field_changed`")
                        .and_then(|n| self.name(n, "`field`"))?;
                    let to = match keys.get("to") {
                        Some(n) => Some(self.string(n, "`to`")?),
                        None => None,
                    };
                    Trigger::FieldChanged { field, to }
                }
            }
            "form_submitted" => {
                let v = value_or_err(self, "a form name, e.g. `form_submitted: dang_ky`")?;
                Trigger::FormSubmitted(self.name(v, "a form name")?)
            }
            "email_opened" => {
                let email = self.email_ref(value, &["email", "machine_opens"])?.0;
                let machine_opens = self.machine_opens(value)?;
                Trigger::EmailOpened {
                    email,
                    machine_opens,
                }
            }
            "email_clicked" => {
                let (email, link) = self.email_ref(value, &["email", "link"])?;
                Trigger::EmailClicked { email, link }
            }
            "email_not_opened" => {
                let v = value_or_err(self, "`{within_hours: 24}`")?;
                let keys = self.keys(
                    v,
                    "`email_not_opened`",
                    &["within_hours", "email", "machine_opens"],
                )?;
                let machine_opens = self.machine_opens(Some(v))?;
                let hours = self
                    .require(&keys, "within_hours", "`email_not_opened`")
                    .and_then(|n| self.int(n, "`within_hours`", 1, 24 * 90))?;
                let email = match keys.get("email") {
                    Some(n) => {
                        let e = self.string(n, "`email`")?;
                        self.refer_email(&e, n);
                        Some(e)
                    }
                    None => None,
                };
                Trigger::EmailNotOpened {
                    within_hours: hours as u32,
                    email,
                    machine_opens,
                }
            }
            "after_step" => {
                let v = value_or_err(self, "`{campaign: NAME, step: N}`")?;
                let keys = self.keys(v, "`after_step`", &["campaign", "step"])?;
                let campaign_node = self.require(&keys, "campaign", "`after_step`");
                let campaign = campaign_node.and_then(|n| self.name(n, "`campaign`"));
                let step_node = self.require(&keys, "step", "`after_step`");
                let step = step_node.and_then(|n| self.string(n, "`step`"));
                if let (Some(c), Some(s), Some(n), Some(cn)) =
                    (&campaign, &step, step_node, campaign_node)
                {
                    self.step_refs.push(StepRef {
                        kind: StepRefKind::AfterStep,
                        campaign: c.clone(),
                        step: Some(s.clone()),
                        rule_id: None,
                        path: self.path.clone(),
                        pos: n.pos,
                        campaign_pos: cn.pos,
                    });
                }
                Trigger::AfterStep {
                    campaign: campaign?,
                    step: step?,
                }
            }
            _ => {
                let hint = suggest(name, TRIGGERS)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.err(
                    at,
                    format!(
                        "unknown trigger `{name}`: {hint}(known: {})",
                        one_of(TRIGGERS)
                    ),
                );
                return None;
            }
        };
        Some(t)
    }

    fn email_ref(
        &mut self,
        value: Option<&Node>,
        allowed: &[&str],
    ) -> Option<(Option<String>, Option<String>)> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Some((None, None));
        };
        let keys = self.keys(v, "the email trigger", allowed)?;
        let get = |cx: &mut Self, k: &str| match keys.get(k) {
            Some(n) => cx.string(n, &format!("`{k}`")).map(Some),
            None => Some(None),
        };
        let email = get(self, "email")?;
        let link = get(self, "link")?;
        if let (Some(e), Some(n)) = (&email, keys.get("email")) {
            self.refer_email(e, n);
        }
        Some((email, link))
    }

    /// `machine_opens: true|false` of an email trigger (default false).
    fn machine_opens(&mut self, value: Option<&Node>) -> Option<bool> {
        let node = value
            .and_then(|v| v.as_map())
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("machine_opens")))
            .map(|(_, n)| n);
        match node {
            Some(n) => self.boolean(n, "`machine_opens`"),
            None => Some(false),
        }
    }

    /// `email: RULE` or `email: CAMPAIGN/STEP`, checked once every file is read.
    fn refer_email(&mut self, email: &str, node: &Node) {
        let (campaign, step) = match email.split_once('/') {
            Some((c, s)) => (c.to_string(), Some(s.to_string())),
            None => (email.to_string(), None),
        };
        self.step_refs.push(StepRef {
            kind: StepRefKind::Email,
            campaign,
            step,
            rule_id: None,
            path: self.path.clone(),
            pos: node.pos,
            campaign_pos: node.pos,
        });
    }

    fn cron(&mut self, node: &Node, pattern: &str) -> Option<Cron> {
        let fields = pattern.split_whitespace().count();
        if !pattern.starts_with('@') && fields != 5 {
            self.err(
                node,
                format!("bad cron `{pattern}`: write 5 fields (minute hour day month weekday), e.g. \"0 9 * * *\"; found {fields}"),
            );
            return None;
        }
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build();
        match parser.parse(pattern) {
            Ok(cron) => Some(Cron {
                pattern: pattern.to_string(),
                cron,
            }),
            Err(e) => {
                self.err(node, format!("bad cron `{pattern}`: {e}"));
                None
            }
        }
    }

    // --- if ---

    fn conditions(&mut self, node: &Node) -> Vec<Condition> {
        match &node.kind {
            NodeKind::Map(entries) => {
                let mut seen: Vec<&str> = Vec::new();
                let mut out = Vec::new();
                for (k, v) in entries {
                    let Some(name) = k.as_str() else {
                        self.err(k, "a condition must be a word");
                        continue;
                    };
                    if seen.contains(&name) {
                        self.err(
                            k,
                            format!(
                                "`{name}` is written twice here: use `all:` or `any:` with a list"
                            ),
                        );
                        continue;
                    }
                    seen.push(name);
                    if let Some(c) = self.condition(name, k, v) {
                        out.push(c);
                    }
                }
                out
            }
            NodeKind::Seq(items) => items.iter().flat_map(|i| self.conditions(i)).collect(),
            _ => {
                self.err(
                    node,
                    format!(
                        "conditions must be `name: value` lines (e.g. `has_tag: vip_customer`); found {}",
                        node.describe()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn group(&mut self, node: &Node) -> Condition {
        let mut c = self.conditions(node);
        if c.len() == 1 {
            c.pop().unwrap_or(Condition::All(Vec::new()))
        } else {
            Condition::All(c)
        }
    }

    fn condition(&mut self, name: &str, key: &Node, v: &Node) -> Option<Condition> {
        let c = match name {
            "all" => Condition::All(self.conditions(v)),
            "any" => match &v.kind {
                NodeKind::Seq(items) if !items.is_empty() => {
                    Condition::Any(items.iter().map(|i| self.group(i)).collect())
                }
                _ => {
                    self.err(v, "`any:` needs a list: each `- ` item is one alternative");
                    return None;
                }
            },
            "not" => Condition::Not(Box::new(self.group(v))),
            "time_between" => {
                let (from, to) = match &v.kind {
                    NodeKind::Seq(items) if items.len() == 2 => (&items[0], &items[1]),
                    NodeKind::Map(_) => {
                        let keys = self.keys(v, "`time_between`", &["from", "to"])?;
                        let from = self.require(&keys, "from", "`time_between`");
                        let to = self.require(&keys, "to", "`time_between`");
                        (from?, to?)
                    }
                    _ => {
                        self.err(v, "`time_between` needs two times: [\"05:00\", \"10:59\"]");
                        return None;
                    }
                };
                let from = self.clock(from, "`time_between`");
                let to = self.clock(to, "`time_between`");
                Condition::TimeBetween {
                    from: from?,
                    to: to?,
                }
            }
            "weekdays" => {
                let items: Vec<&Node> = match &v.kind {
                    NodeKind::Seq(items) => items.iter().collect(),
                    _ => vec![v],
                };
                let mut mask = 0u8;
                for i in items {
                    match i.as_str().and_then(parse_weekday) {
                        Some(b) => mask |= b,
                        None => {
                            self.err(
                                i,
                                "a weekday is one of mon, tue, wed, thu, fri, sat, sun (or t2…t7, cn)",
                            );
                            return None;
                        }
                    }
                }
                Condition::Weekdays(mask)
            }
            "silent_for" => {
                let keys = self.keys(v, "`silent_for`", &["min_days", "max_days"])?;
                if !keys.has("min_days") && !keys.has("max_days") {
                    self.err(v, "`silent_for` needs `min_days:` or `max_days:`");
                    return None;
                }
                let get = |cx: &mut Self, k: &str| match keys.get(k) {
                    Some(n) => cx
                        .int(n, &format!("`{k}`"), 0, 3650)
                        .map(|d| Some(d as u32)),
                    None => Some(None),
                };
                let min_days = get(self, "min_days")?;
                let max_days = get(self, "max_days")?;
                if let (Some(a), Some(b)) = (min_days, max_days) {
                    if b < a {
                        self.err(v, "`max_days` is smaller than `min_days`");
                        return None;
                    }
                }
                Condition::SilentFor { min_days, max_days }
            }
            "last_interaction_within" => {
                Condition::LastInteractionWithin(self.duration(v, "`last_interaction_within`")?)
            }
            "has_tag" => Condition::HasTag(self.names(v, "a tag")?),
            "lacks_tag" => Condition::LacksTag(self.names(v, "a tag")?),
            "follows" => Condition::Follows(self.boolean(v, "`follows`")?),
            "in_list" | "group" => {
                let list = self.name(v, "a list name")?;
                self.refer(RefKind::List, &list, v);
                Condition::InList(list)
            }
            "field" => {
                let keys = self.keys(v, "`field`", &["name", "equals", "contains", "is_set"])?;
                let name = self
                    .require(&keys, "name", "`field`")
                    .and_then(|n| self.name(n, "a field name"))?;
                let tests: Vec<_> = ["equals", "contains", "is_set"]
                    .into_iter()
                    .filter(|k| keys.has(k))
                    .collect();
                if tests.len() != 1 {
                    self.err(
                        v,
                        "`field` needs exactly one of `equals:`, `contains:`, `is_set:`",
                    );
                    return None;
                }
                let n = keys.get(tests[0])?;
                let test = match tests[0] {
                    "equals" => FieldTest::Equals(n.as_str().unwrap_or_default().to_string()),
                    "contains" => FieldTest::Contains(self.string(n, "`contains`")?.to_lowercase()),
                    _ => FieldTest::IsSet(self.boolean(n, "`is_set`")?),
                };
                Condition::Field { name, test }
            }
            _ => {
                let hint = suggest(name, CONDITIONS)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                self.err(
                    key,
                    format!(
                        "unknown condition `{name}`: {hint}(known: {})",
                        one_of(CONDITIONS)
                    ),
                );
                return None;
            }
        };
        Some(c)
    }

    // --- do ---

    /// The actions, and where each was written.
    fn actions(&mut self, node: &Node) -> (Vec<Action>, Vec<ActionSite>) {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() || node.is_null() {
            self.err(node, "`do:` is empty: list at least one action");
            return Default::default();
        }
        let mut out = Vec::new();
        let mut sites = Vec::new();
        for item in items {
            match &item.kind {
                NodeKind::Scalar { .. } if item.as_str() == Some("stop") => {
                    out.push(Action::Stop);
                    sites.push(ActionSite {
                        pos: item.pos,
                        texts: Vec::new(),
                    });
                }
                NodeKind::Scalar { .. } => {
                    let name = item.as_str().unwrap_or_default();
                    if ACTIONS.contains(&name) {
                        self.err(item, format!("`{name}` needs a value: `{name}: …`"));
                    } else {
                        self.unknown_action(name, item);
                    }
                }
                NodeKind::Map(entries) => {
                    let Some((k, v)) = entries.first() else {
                        self.err(item, "an empty action");
                        continue;
                    };
                    if let Some((extra, _)) = entries.get(1) {
                        let name = k.as_str().unwrap_or("");
                        let e = extra.as_str().unwrap_or("");
                        if ACTIONS.contains(&e) {
                            self.err(
                                extra,
                                format!(
                                    "one action per item: start `{e}:` on its own line with `- `"
                                ),
                            );
                        } else {
                            self.err(
                                extra,
                                format!(
                                    "`{e}` belongs inside `{name}:` (indent it under `{name}:`)"
                                ),
                            );
                        }
                        continue;
                    }
                    match k.as_str() {
                        Some(name) => {
                            self.text_sites.clear();
                            if let Some(a) = self.action(name, k, v) {
                                out.push(a);
                                sites.push(ActionSite {
                                    pos: k.pos,
                                    texts: std::mem::take(&mut self.text_sites),
                                });
                            }
                        }
                        None => self.err(k, "an action must be a word"),
                    }
                }
                _ => self.err(
                    item,
                    format!("an action must be `name: value`; found {}", item.describe()),
                ),
            }
        }
        (out, sites)
    }

    /// `zns:` (by phone, tag 1 unless said) and `template:` (a ZBS template message: by the
    /// contact's Zalo user id unless `by: phone`, and its tag must be given).
    fn template_action(&mut self, v: &Node, word: &str) -> Option<Action> {
        let what = format!("`{word}`");
        let allowed: &[&str] = if word == "zns" {
            &["template_id", "data", "phone", "tag"]
        } else {
            &["id", "template_id", "data", "phone", "tag", "by"]
        };
        let keys = self.keys(v, &what, allowed)?;
        let id_key = if keys.has("id") { "id" } else { "template_id" };
        let template_id = self
            .require(&keys, id_key, &what)
            .and_then(|n| self.string(n, "the template id"));
        let tag = match keys.get("tag") {
            Some(n) => self.template_tag(n),
            None if word == "zns" => Some(1),
            None => {
                self.err(
                    v,
                    "`template` needs `tag:` — the tag the template was approved with in Zalo's console: \
                     `transaction` (1, any hour), `customer_care` (2) or `promotion` (3; both 07:00–22:00)",
                );
                None
            }
        };
        let by_user = match keys.get("by") {
            None => word == "template",
            Some(n) => match n.as_str().map(str::trim) {
                Some("user" | "user_id" | "zalo") => true,
                Some("phone") => false,
                _ => {
                    self.err(
                        n,
                        format!(
                            "`by:` is `user` (the contact's Zalo id) or `phone`; found {}",
                            n.describe()
                        ),
                    );
                    None?
                }
            },
        };
        let mut data = Vec::new();
        if let Some(d) = keys.get("data") {
            let Some(entries) = d.as_map() else {
                self.err(
                    d,
                    "`data` must be `name: value` lines, one per template parameter",
                );
                return None;
            };
            for (k, val) in entries {
                let key = self.name(k, "a template parameter")?;
                if val.is_null() || val.as_str().is_some_and(|s| s.trim().is_empty()) {
                    self.err(
                        val,
                        format!(
                            "template parameter `{key}` has no value: Zalo refuses a template \
                             message with an empty parameter"
                        ),
                    );
                    continue;
                }
                data.push((key, self.template(val, "a data value")?));
            }
        }
        let phone = self.opt_template(&keys, "phone", "`phone`");
        if by_user && keys.has("phone") {
            self.err(
                v,
                "`phone:` is for `by: phone`; a template `by: user` goes to the contact's Zalo id",
            );
        }
        Some(Action::Zns {
            template_id: template_id?,
            data,
            phone: phone?,
            by_user,
            tag: tag?,
        })
    }

    fn template_tag(&mut self, n: &Node) -> Option<u8> {
        match n.as_str().map(str::trim) {
            Some("1" | "transaction") => Some(1),
            Some("2" | "customer_care" | "care") => Some(2),
            Some("3" | "promotion") => Some(3),
            _ => {
                let hint = n
                    .as_str()
                    .and_then(|s| suggest(s.trim(), &["transaction", "customer_care", "promotion"]))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                let found = n
                    .as_str()
                    .map_or_else(|| n.describe().to_string(), |s| format!("`{}`", s.trim()));
                self.err(
                    n,
                    format!(
                        "unknown template tag {found}{hint}: Zalo's tags are `transaction` (1), \
                         `customer_care` (2) and `promotion` (3)"
                    ),
                );
                None
            }
        }
    }

    /// `try:` — a list of sends, the first Zalo will accept is made.
    fn first_of(&mut self, v: &Node) -> Option<Action> {
        const SENDS: &[&str] = &["send", "template", "zns", "sms", "email"];
        let Some(items) = v.as_seq() else {
            self.err(
                v,
                format!(
                    "`try:` is a list of sends to try in order (`- send: …`, `- template: …`, \
                     `- sms: …`); found {}",
                    v.describe()
                ),
            );
            return None;
        };
        let mut alts = Vec::new();
        for item in items {
            let Some((k, val)) = item.as_map().and_then(|m| m.first().map(|(k, v)| (k, v))) else {
                self.err(item, "each choice of `try:` is one send: `- send: …`");
                continue;
            };
            match k.as_str() {
                Some(name) if SENDS.contains(&name) => {
                    if let Some(a) = self.action(name, k, val) {
                        alts.push(a);
                    }
                }
                Some(name) => self.err(
                    k,
                    format!(
                        "`{name}` cannot be a choice of `try:`: only sends can ({})",
                        one_of(SENDS)
                    ),
                ),
                None => self.err(k, "an action must be a word"),
            }
        }
        if alts.len() < 2 && items.len() >= 2 {
            return None;
        }
        if items.len() < 2 {
            self.err(
                v,
                "`try:` needs at least two sends: the first choice and what to send instead",
            );
            return None;
        }
        Some(Action::FirstOf(alts))
    }

    fn unknown_action(&mut self, name: &str, at: &Node) {
        let hint = suggest(name, ACTIONS)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        self.err(
            at,
            format!(
                "unknown action `{name}`: {hint}(known: {})",
                one_of(ACTIONS)
            ),
        );
    }

    fn action(&mut self, name: &str, key: &Node, v: &Node) -> Option<Action> {
        let braced_text = v
            .as_map()
            .and_then(|m| m.first())
            .is_some_and(|(k, _)| k.as_map().is_some());
        if braced_text {
            // `send: {{display_name}} ơi` — explain instead of "unknown key".
            self.template(v, &format!("`{name}`"));
            return None;
        }
        let a = match name {
            "send" => {
                if v.as_str().is_some() {
                    return Some(Action::Send {
                        text: self.zalo_text(v, "`send`")?,
                        image: None,
                        buttons: Vec::new(),
                        via: ZaloKind::Cs,
                        variants: Vec::new(),
                    });
                }
                let keys = self.keys(
                    v,
                    "`send`",
                    &["text", "variants", "image", "buttons", "via"],
                )?;
                let (text, variants) = match keys.get("variants") {
                    Some(list) => {
                        if keys.has("text") {
                            self.err(
                                v,
                                "`send` takes `text:` or `variants:`, not both (each variant has its own text)",
                            );
                        }
                        let variants = self.variants(list);
                        (
                            variants
                                .as_ref()
                                .and_then(|vs| vs.first())
                                .map(|x| x.text.clone()),
                            variants,
                        )
                    }
                    None => (
                        self.require(&keys, "text", "`send`")
                            .and_then(|n| self.zalo_text(n, "`text`")),
                        Some(Vec::new()),
                    ),
                };
                if let Some(n) = keys.get("image") {
                    self.guard_url(n, "`image`");
                }
                let image = match keys.get("image") {
                    None => Some(None),
                    Some(n) => self.template_as(n, "`image`", Escape::Url).map(Some),
                };
                let via = match keys.get("via") {
                    None => Some(ZaloKind::Cs),
                    Some(n) => match n.as_str() {
                        Some("zalo") => Some(ZaloKind::Cs),
                        Some("zalo_promotion") => Some(ZaloKind::Promotion),
                        Some("zalo_transaction") => Some(ZaloKind::Transaction),
                        _ => {
                            self.err(n, "`via` must be zalo, zalo_promotion or zalo_transaction");
                            None
                        }
                    },
                };
                let buttons = match keys.get("buttons") {
                    None => Some(Vec::new()),
                    Some(b) => self.buttons(b),
                };
                Action::Send {
                    text: text?,
                    image: image?,
                    buttons: buttons?,
                    via: via?,
                    variants: variants?,
                }
            }
            "sms" => {
                if v.as_str().is_some() {
                    return Some(Action::Sms {
                        text: self.template(v, "`sms`")?,
                        to: None,
                    });
                }
                let keys = self.keys(v, "`sms`", &["text", "to"])?;
                let text = self
                    .require(&keys, "text", "`sms`")
                    .and_then(|n| self.template(n, "`text`"));
                let to = self.opt_template(&keys, "to", "`to`");
                Action::Sms {
                    text: text?,
                    to: to?,
                }
            }
            "email" => {
                let keys = self.keys(v, "`email`", &["subject", "html", "text", "to", "links"])?;
                let subject = self
                    .require(&keys, "subject", "`email`")
                    .and_then(|n| self.template(n, "`subject`"));
                if !keys.has("html") && !keys.has("text") {
                    self.err(v, "`email` needs `text:` or `html:` (or both)");
                    return None;
                }
                let html = match keys.get("html") {
                    None => Some(None),
                    Some(n) => self.template_as(n, "`html`", Escape::Html).map(Some),
                };
                let text = self.opt_template(&keys, "text", "`text`");
                let to = self.opt_template(&keys, "to", "`to`");
                let mut links = Vec::new();
                if let Some(l) = keys.get("links") {
                    let Some(entries) = l.as_map() else {
                        self.err(l, "`links` must be `name: URL` lines (the names rules use in `email_clicked: {link: …}`)");
                        return None;
                    };
                    for (k, val) in entries {
                        let name = self.name(k, "a link name")?;
                        let url = self.string(val, "a link URL")?;
                        if !crate::tracking::is_http_url(&url) {
                            self.err(val, format!("link `{name}`: `{url}` is not an http(s) URL"));
                            return None;
                        }
                        self.guard_url(val, &format!("link `{name}`"));
                        links.push((name, url));
                    }
                }
                Action::Email {
                    subject: subject?,
                    html: html?,
                    text: text?,
                    to: to?,
                    links,
                }
            }
            "zns" => self.template_action(v, "zns")?,
            "template" => self.template_action(v, "template")?,
            "try" => self.first_of(v)?,
            "notify" => {
                if v.as_str().is_some() {
                    return Some(Action::Notify {
                        channel: None,
                        text: self.template_as(v, "`notify`", Escape::Chat)?,
                    });
                }
                let keys = self.keys(v, "`notify`", &["channel", "text"])?;
                let channel = match keys.get("channel") {
                    Some(n) => {
                        let c = self.name(n, "a chat channel")?;
                        self.refer(RefKind::Channel, &c, n);
                        Some(c)
                    }
                    None => None,
                };
                let text = self
                    .require(&keys, "text", "`notify`")
                    .and_then(|n| self.template_as(n, "`text`", Escape::Chat))?;
                Action::Notify { channel, text }
            }
            "task" => {
                if v.as_str().is_some() {
                    return Some(Action::Task {
                        title: self.template(v, "`task`")?,
                        description: None,
                        due_in: None,
                    });
                }
                let keys = self.keys(v, "`task`", &["title", "description", "due_in"])?;
                let title = self
                    .require(&keys, "title", "`task`")
                    .and_then(|n| self.template(n, "`title`"));
                let description = self.opt_template(&keys, "description", "`description`");
                let due_in = match keys.get("due_in") {
                    Some(n) => Some(self.duration(n, "`due_in`")),
                    None => Some(None),
                };
                Action::Task {
                    title: title?,
                    description: description?,
                    due_in: due_in?,
                }
            }
            "tag" => Action::Tag(self.names(v, "a tag")?),
            "untag" => Action::Untag(self.names(v, "a tag")?),
            "set_field" => {
                let keys = self.keys(v, "`set_field`", &["name", "value"])?;
                let name = self
                    .require(&keys, "name", "`set_field`")
                    .and_then(|n| self.name(n, "a field name"));
                let value = self
                    .require(&keys, "value", "`set_field`")
                    .and_then(|n| self.template(n, "`value`"));
                Action::SetField {
                    name: name?,
                    value: value?,
                }
            }
            "list" => {
                let keys = self.keys(v, "`list`", &["add", "remove", "copy", "move", "from"])?;
                let ops: Vec<_> = ["add", "remove", "copy", "move"]
                    .into_iter()
                    .filter(|k| keys.has(k))
                    .collect();
                if ops.len() != 1 {
                    self.err(
                        v,
                        "`list` needs exactly one of `add:`, `remove:`, `copy:`, `move:`",
                    );
                    return None;
                }
                let n = keys.get(ops[0])?;
                let list = self.name(n, "a list name")?;
                self.refer(RefKind::List, &list, n);
                let op = match ops[0] {
                    "add" => ListOp::Add,
                    "remove" => ListOp::Remove,
                    "copy" => ListOp::Copy,
                    _ => ListOp::Move,
                };
                let from = match keys.get("from") {
                    Some(f) => {
                        let from = self.name(f, "a list name")?;
                        self.refer(RefKind::List, &from, f);
                        Some(from)
                    }
                    None => None,
                };
                if op == ListOp::Move && from.is_none() {
                    self.err(v, "`list: {move: …}` needs `from:` (the list to leave)");
                    return None;
                }
                Action::List { op, list, from }
            }
            "handoff" => {
                if v.is_null() {
                    return Some(Action::Handoff {
                        team: None,
                        advisor: None,
                        deadline: 2 * HOUR,
                        priority: Priority::Normal,
                        note: None,
                    });
                }
                let keys = self.keys(
                    v,
                    "`handoff`",
                    &["team", "advisor", "deadline", "priority", "note"],
                )?;
                let team = match keys.get("team") {
                    Some(n) => {
                        let t = self.name(n, "a team (chat channel)")?;
                        self.refer(RefKind::Channel, &t, n);
                        Some(t)
                    }
                    None => None,
                };
                let advisor = match keys.get("advisor") {
                    Some(n) => Some(self.string(n, "`advisor`")?),
                    None => None,
                };
                let deadline = match keys.get("deadline") {
                    Some(n) => self.duration(n, "`deadline`")?,
                    None => 2 * HOUR,
                };
                let priority = match keys.get("priority").map(|n| (n, n.as_str())) {
                    None | Some((_, Some("normal"))) => Priority::Normal,
                    Some((_, Some("high"))) => Priority::High,
                    Some((_, Some("urgent"))) => Priority::Urgent,
                    Some((n, _)) => {
                        self.err(n, "`priority` must be normal, high or urgent");
                        return None;
                    }
                };
                let note = self.opt_template(&keys, "note", "`note`")?;
                Action::Handoff {
                    team,
                    advisor,
                    deadline,
                    priority,
                    note,
                }
            }
            "wait" => {
                if v.as_str().is_some() {
                    return Some(Action::Wait(Wait::For(self.duration(v, "`wait`")?)));
                }
                let keys = self.keys(v, "`wait`", &["until"])?;
                let until = self
                    .require(&keys, "until", "`wait`")
                    .and_then(|n| self.clock(n, "`until`"))?;
                Action::Wait(Wait::Until(until))
            }
            "stop" => {
                if !self.no_value("stop", Some(v)) {
                    return None;
                }
                Action::Stop
            }
            _ => {
                self.unknown_action(name, key);
                return None;
            }
        };
        Some(a)
    }

    /// `variants:` of a `send` (issue 10): two or more `- text: …` items, each with an optional
    /// `id:` (default `a`, `b`, …) and `weight:` (default 1).
    fn variants(&mut self, node: &Node) -> Option<Vec<Variant>> {
        let Some(items) = node.as_seq() else {
            self.err(
                node,
                "`variants` must be a list of `- text: …` items (with optional `id:` and `weight:`)",
            );
            return None;
        };
        if items.len() < 2 {
            self.err(node, "an A/B test needs at least 2 variants");
        }
        if items.len() > 26 {
            self.err(node, "at most 26 variants");
            return None;
        }
        let mut out: Vec<Variant> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let Some(keys) = self.keys(item, "a variant", &["id", "weight", "text"]) else {
                ok = false;
                continue;
            };
            let text = self
                .require(&keys, "text", "a variant")
                .and_then(|n| self.zalo_text(n, "`text`"));
            let id = match keys.get("id") {
                None => Some(((b'a' + i as u8) as char).to_string()),
                Some(n) => match n.as_str() {
                    Some(s)
                        if !s.is_empty()
                            && s.len() <= 32
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                    {
                        if out.iter().any(|v| v.id == s) {
                            self.err(n, format!("variant id `{s}` is used twice in this `send`"));
                            None
                        } else {
                            Some(s.to_string())
                        }
                    }
                    _ => {
                        self.err(n, "a variant `id` must be 1–32 letters, digits, `_` or `-`");
                        None
                    }
                },
            };
            let weight = match keys.get("weight") {
                None => Some(1),
                Some(n) => self.int(n, "`weight`", 0, 1000).map(|w| w as u32),
            };
            match (id, weight, text) {
                (Some(id), Some(weight), Some(text)) => out.push(Variant { id, weight, text }),
                _ => ok = false,
            }
        }
        if ok && !out.is_empty() && out.iter().all(|v| v.weight == 0) {
            self.err(node, "at least one variant needs a `weight` above 0");
            return None;
        }
        ok.then_some(out)
    }

    fn buttons(&mut self, node: &Node) -> Option<Vec<Button>> {
        let Some(items) = node.as_seq() else {
            self.err(node, "`buttons` must be a list of `- title: …` items");
            return None;
        };
        if items.len() > 5 {
            self.err(node, "at most 5 buttons");
        }
        let mut out = Vec::new();
        for item in items {
            let keys = self.keys(item, "a button", &["title", "url", "phone", "query"])?;
            let title = self
                .require(&keys, "title", "a button")
                .and_then(|n| self.template(n, "`title`"));
            let kinds: Vec<_> = ["url", "phone", "query"]
                .into_iter()
                .filter(|k| keys.has(k))
                .collect();
            if kinds.len() != 1 {
                self.err(
                    item,
                    "a button needs exactly one of `url:`, `phone:`, `query:`",
                );
                return None;
            }
            if kinds[0] == "url" {
                if let Some(n) = keys.get("url") {
                    self.guard_url(n, "button `url`");
                }
            }
            let escape = if kinds[0] == "url" {
                Escape::Url
            } else {
                Escape::Plain
            };
            let t = self.template_as(keys.get(kinds[0])?, &format!("`{}`", kinds[0]), escape)?;
            let action = match kinds[0] {
                "url" => ButtonAction::Url(t),
                "phone" => ButtonAction::Phone(t),
                _ => ButtonAction::Query(t),
            };
            out.push(Button {
                title: title?,
                action,
            });
        }
        Some(out)
    }
}

fn has_time_between(c: &Condition) -> bool {
    match c {
        Condition::TimeBetween { .. } => true,
        Condition::All(v) | Condition::Any(v) => v.iter().any(has_time_between),
        Condition::Not(_) => false,
        _ => false,
    }
}

/// `30m`, `2h`, `1d`, `1h30m`, `90s`, `1w` -> milliseconds.
pub fn parse_duration(s: &str) -> Option<Ms> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: Ms = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else if c == ' ' {
            continue;
        } else {
            let n: Ms = num.parse().ok()?;
            num.clear();
            let unit = match c {
                's' => 1_000,
                'm' => MINUTE,
                'h' => HOUR,
                'd' => DAY,
                'w' => 7 * DAY,
                _ => return None,
            };
            total = total.checked_add(n.checked_mul(unit)?)?;
        }
    }
    if !num.is_empty() {
        return None;
    }
    (total <= 400 * DAY).then_some(total)
}

/// `HH:MM` -> minutes from midnight.
pub fn parse_clock(s: &str) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// `DD/MM` (a year is allowed and ignored) -> (day, month), a date that exists in some year.
pub fn parse_day_month(s: &str) -> Option<(u32, u32)> {
    let mut it = s.trim().split('/');
    let d: u32 = it.next()?.trim().parse().ok()?;
    let m: u32 = it.next()?.trim().parse().ok()?;
    chrono::NaiveDate::from_ymd_opt(2000, m, d).map(|_| (d, m))
}

fn parse_weekday(s: &str) -> Option<u8> {
    let i = match s.trim().to_lowercase().as_str() {
        "mon" | "monday" | "t2" => 0,
        "tue" | "tuesday" | "t3" => 1,
        "wed" | "wednesday" | "t4" => 2,
        "thu" | "thursday" | "t5" => 3,
        "fri" | "friday" | "t6" => 4,
        "sat" | "saturday" | "t7" => 5,
        "sun" | "sunday" | "cn" => 6,
        _ => return None,
    };
    Some(1 << i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_clocks() {
        assert_eq!(parse_duration("30m"), Some(30 * MINUTE));
        assert_eq!(parse_duration("2h"), Some(2 * HOUR));
        assert_eq!(parse_duration("1h30m"), Some(90 * MINUTE));
        assert_eq!(parse_duration("1d"), Some(DAY));
        assert_eq!(parse_duration("2x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_clock("05:00"), Some(300));
        assert_eq!(parse_clock("23:59"), Some(1439));
        assert_eq!(parse_clock("24:00"), None);
        assert_eq!(parse_clock("5:7"), None);
        assert_eq!(parse_weekday("T2"), Some(1));
        assert_eq!(parse_weekday("sun"), Some(64));
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("mesage", TRIGGERS), Some("message"));
        assert_eq!(
            suggest("contians", &["contains", "equals"]),
            Some("contains")
        );
        assert_eq!(suggest("zzzzzz", TRIGGERS), None);
    }
}

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
use crate::i18n::Lang;

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

impl Diagnostic {
    /// The problem as staff read it in `lang`: `path:line:col: message` in English,
    /// `path, dòng L, cột C: message` in Vietnamese.
    pub fn render(&self, lang: Lang) -> String {
        format!("{}: {}", at(lang, &self.path, self.pos), self.message)
    }
}

/// Where something is written, in `lang`: `path:line:col`, or `path, dòng L, cột C`.
pub fn at(lang: Lang, path: &Path, pos: Pos) -> String {
    msg!(
        lang,
        "rules.check.at",
        path = path.display(),
        line = pos.line,
        col = pos.col
    )
}

/// Names known outside the rule files (e.g. chat channels configured for the deployment).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    pub extra_chat_channels: Vec<String>,
    pub extra_lists: Vec<String>,
    /// URLs in rules (email links, buttons, images) may name internal hosts
    /// (`ZALOFLOW_ALLOW_PRIVATE_URLS=true`; default false: the SSRF guard refuses them).
    pub allow_private_urls: bool,
    /// The language of the messages staff read (problems, hints, warnings; `ZALOFLOW_LANG`).
    pub lang: crate::i18n::Lang,
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
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![at_dir(msg!(
            opts.lang,
            "rules.load.cannot_read_dir",
            error = e
        ))]
    })?;
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
                    message: msg!(opts.lang, "rules.load.not_utf8", error = e),
                }),
            },
            Err(e) => diags.push(Diagnostic {
                path: p,
                pos: Pos { line: 1, col: 1 },
                message: msg!(opts.lang, "rules.load.cannot_read", error = e),
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
fn syntax_hint(lang: Lang, line: &str, message: &str) -> Option<String> {
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
        return Some(msg!(lang, "rules.yaml.hint_braces"));
    }
    if message.contains("mapping values are not allowed") {
        let fixed = quoted(line, false)?;
        return Some(msg!(
            lang,
            "rules.yaml.hint_colon",
            fixed = fixed.trim_start()
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
        return Some(msg!(
            lang,
            "rules.yaml.hint_quote",
            fixed = fixed.trim_start()
        ));
    }
    None
}

/// Loads rule files given as (path, text), in this order.
pub fn load_sources(
    files: &[(PathBuf, String)],
    opts: &LoadOptions,
) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut f = read_files(files, opts);
    crossref::unknown_tags(&mut f);
    crossref::unknown_names(&mut f);
    crossref::unique_ids(&mut f);
    crossref::resolve_steps(&mut f);
    let Folder {
        mut diags,
        decl,
        mut rules,
        campaigns,
        load_warnings,
        ..
    } = f;
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
    .with_forms(decl.forms.into_keys().collect())
    .with_lang(opts.lang))
}

/// What the folder's files hold, before the checks across files.
struct Folder {
    diags: Vec<Diagnostic>,
    refs: Vec<Ref>,
    decl: Declared,
    /// (file index, position in the file, rule)
    rules: Vec<(usize, usize, Rule)>,
    step_refs: Vec<StepRef>,
    campaigns: Vec<Campaign>,
    load_warnings: Vec<super::Warning>,
    lang: Lang,
}

/// Reads each file: its YAML, then its sections (an empty file is an error: it would take
/// its rules away).
fn read_files(files: &[(PathBuf, String)], opts: &LoadOptions) -> Folder {
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
            lang: opts.lang,
        };
        let docs = match yaml::parse(src) {
            Ok(d) => d,
            Err(e) => {
                let line = src.lines().nth(e.pos.line.saturating_sub(1) as usize);
                let hint = line
                    .and_then(|l| syntax_hint(opts.lang, l, &e.message))
                    .unwrap_or_default();
                let what = yaml::explain(opts.lang, &e.message);
                cx.diags.push(Diagnostic {
                    path: path.to_path_buf(),
                    pos: e.pos,
                    message: msg!(opts.lang, "rules.yaml.syntax", what = what, hint = hint),
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
                message: msg!(opts.lang, "rules.load.empty_file"),
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
    Folder {
        diags,
        refs,
        decl,
        rules,
        step_refs,
        campaigns,
        load_warnings,
        lang: opts.lang,
    }
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
    /// Campaigns written with mistakes (reported where they are): the rules that name them
    /// are not told "unknown campaign" on top.
    broken_campaigns: std::collections::BTreeSet<String>,
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
    /// The language of the messages.
    lang: crate::i18n::Lang,
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
    /// The link an `email_clicked` names (it must be a link of that email).
    link: Option<String>,
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

/// "did you mean `x`? " when a known word is close to `word`, else nothing.
fn did_you_mean(lang: Lang, word: &str, known: &[&str]) -> String {
    suggest(word, known)
        .map(|s| msg!(lang, "rules.load.did_you_mean", word = s))
        .unwrap_or_default()
}

/// "; did you mean `x`?" after a name, when a known name is close to it, else nothing.
fn did_you_mean_after(lang: Lang, word: &str, known: &[&str]) -> String {
    suggest(word, known)
        .map(|s| msg!(lang, "rules.load.did_you_mean_after", word = s))
        .unwrap_or_default()
}

fn one_of(known: &[&str]) -> String {
    known.join(", ")
}

mod action;
mod campaign;
mod condition;
mod crossref;
mod ctx;
mod file;
mod trigger;

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

    /// The word lists (which feed the JSON Schema and the names staff are offered) and the
    /// parser cannot drift: every listed word reaches its parser (a wrong value gets that
    /// word's own error, never "unknown …"), and a word the lists lack is unknown.
    #[test]
    fn every_listed_word_has_its_parser() {
        let load = |yaml: String| -> Vec<String> {
            let en = LoadOptions {
                lang: Lang::En,
                ..LoadOptions::default()
            };
            match load_sources(&[("t.yaml".into(), yaml)], &en) {
                Ok(_) => Vec::new(),
                Err(d) => d.into_iter().map(|d| d.message).collect(),
            }
        };
        for t in TRIGGERS {
            let errs = load(format!(
                "rules:\n  - id: r\n    when: {{{t}: [1, 2]}}\n    do: [stop]\n"
            ));
            assert!(
                errs.iter().all(|e| !e.contains("unknown trigger")),
                "{t}: {errs:?}"
            );
        }
        for c in CONDITIONS {
            let errs = load(format!(
                "rules:\n  - id: r\n    when: follow\n    if: {{{c}: [[1]]}}\n    do: [stop]\n"
            ));
            assert!(
                errs.iter().all(|e| !e.contains("unknown condition")),
                "{c}: {errs:?}"
            );
        }
        for a in ACTIONS {
            let errs = load(format!(
                "rules:\n  - id: r\n    when: follow\n    do: [{{{a}: [[1]]}}]\n"
            ));
            assert!(
                errs.iter().all(|e| !e.contains("unknown action")),
                "{a}: {errs:?}"
            );
        }
        let errs = load("rules:\n  - id: r\n    when: follow\n    do: [{sendd: hi}]\n".into());
        assert!(errs[0].contains("unknown action `sendd`"), "{errs:?}");
    }
}

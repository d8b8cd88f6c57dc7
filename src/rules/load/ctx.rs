//! The loader's reading helpers: errors at a position, keys, names, numbers, durations,
//! clock times, templates and references to check across the folder.

use super::*;

impl<'a> Ctx<'a> {
    pub(super) fn err_at(&mut self, pos: Pos, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            path: self.path.to_path_buf(),
            pos,
            message: message.into(),
        });
    }

    pub(super) fn err(&mut self, node: &Node, message: impl Into<String>) {
        self.err_at(node.pos, message)
    }

    /// A phrase naming what is being read (`rules.what.KEY`: "a rule", "a tag"…), in the
    /// language of the messages.
    pub(super) fn what(&self, key: &str) -> String {
        crate::i18n::tr(self.lang, &format!("rules.what.{key}")).into_owned()
    }

    /// " did you mean `x`? " when a known word is close to `word`, else nothing.
    pub(super) fn did_you_mean(&self, word: &str, known: &[&str]) -> String {
        did_you_mean(self.lang, word, known)
    }

    pub(super) fn origin(&self, node: &Node) -> Origin {
        Origin {
            file: self.path.clone(),
            pos: node.pos,
        }
    }

    pub(super) fn refer(&mut self, kind: RefKind, name: &str, node: &Node) {
        self.refs.push(Ref {
            kind,
            name: name.to_string(),
            path: self.path.clone(),
            pos: node.pos,
        });
    }

    /// Checks that `node` is a mapping whose keys are all in `allowed` and not repeated.
    pub(super) fn keys<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Keys<'n>> {
        let Some(map) = node.as_map() else {
            self.err(
                node,
                msg!(
                    self.lang,
                    "rules.load.not_mapping",
                    what = what,
                    keys = one_of(allowed),
                    found = node.describe(self.lang)
                ),
            );
            return None;
        };
        let mut entries: Vec<(&'n str, &'n Node, &'n Node)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            let Some(name) = k.as_str() else {
                self.err(k, msg!(self.lang, "rules.load.key_not_word", what = what));
                continue;
            };
            if !allowed.contains(&name) {
                let hint = self.did_you_mean(name, allowed);
                self.err(
                    k,
                    msg!(
                        self.lang,
                        "rules.load.unknown_key",
                        name = name,
                        what = what,
                        hint = hint,
                        keys = one_of(allowed)
                    ),
                );
                continue;
            }
            if entries.iter().any(|(n, _, _)| *n == name) {
                self.err(
                    k,
                    msg!(self.lang, "rules.load.key_twice", name = name, what = what),
                );
                continue;
            }
            entries.push((name, k, v));
        }
        Some(Keys { entries, at: node })
    }

    pub(super) fn require<'n>(
        &mut self,
        keys: &Keys<'n>,
        key: &str,
        what: &str,
    ) -> Option<&'n Node> {
        let v = keys.get(key);
        if v.is_none() {
            self.err(
                keys.at,
                msg!(self.lang, "rules.load.needs_key", what = what, key = key),
            );
        }
        v
    }

    /// The SSRF guard on a URL written in a rule (its `{{…}}` parts stand for a word): an
    /// internal host is a warning at the URL's position. The service never fetches these
    /// URLs (customers' phones do), and rule files that loaded before must still load.
    pub(super) fn guard_url(&mut self, node: &Node, what: &str) {
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
                self.warnings.push(crate::rules::Warning {
                    path: self.path.to_path_buf(),
                    pos: node.pos,
                    message: msg!(
                        self.lang,
                        "rules.load.internal_url",
                        what = what,
                        url = raw.trim()
                    ),
                    lang: self.lang,
                });
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match node.as_str() {
            Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => {
                let found = node.describe(self.lang);
                self.err(
                    node,
                    msg!(
                        self.lang,
                        "rules.load.not_text_or_name",
                        what = what,
                        found = found
                    ),
                );
                None
            }
        }
    }

    /// A name (tag, list, channel, field): one word without spaces.
    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if s.chars().any(char::is_whitespace) {
            self.err(
                node,
                msg!(self.lang, "rules.load.name_spaces", what = what, name = s),
            );
            return None;
        }
        if what == self.what("tag") {
            self.refer(RefKind::Tag, &s, node);
        }
        Some(s)
    }

    pub(super) fn names(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
        match &node.kind {
            NodeKind::Seq(items) if !items.is_empty() => {
                let v: Vec<_> = items.iter().filter_map(|i| self.name(i, what)).collect();
                (v.len() == items.len()).then_some(v)
            }
            NodeKind::Seq(_) => {
                self.err(node, msg!(self.lang, "rules.load.list_empty", what = what));
                None
            }
            _ => self.name(node, what).map(|n| vec![n]),
        }
    }

    pub(super) fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true" | "True" | "TRUE" | "yes" | "Yes" | "on") => Some(true),
            Some("false" | "False" | "FALSE" | "no" | "No" | "off") => Some(false),
            _ => {
                self.err(node, msg!(self.lang, "rules.load.not_bool", what = what));
                None
            }
        }
    }

    pub(super) fn int(&mut self, node: &Node, what: &str, min: i64, max: i64) -> Option<i64> {
        match node.as_str().and_then(|s| s.trim().parse::<i64>().ok()) {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.err(
                    node,
                    msg!(
                        self.lang,
                        "rules.load.not_int",
                        what = what,
                        min = min,
                        max = max
                    ),
                );
                None
            }
        }
    }

    pub(super) fn duration(&mut self, node: &Node, what: &str) -> Option<Ms> {
        match node.as_str().and_then(parse_duration) {
            Some(d) if d > 0 => Some(d),
            _ => {
                let shown = node.as_str().unwrap_or("");
                self.err(
                    node,
                    msg!(
                        self.lang,
                        "rules.load.bad_duration",
                        what = what,
                        shown = shown
                    ),
                );
                None
            }
        }
    }

    pub(super) fn clock(&mut self, node: &Node, what: &str) -> Option<u16> {
        match node.as_str().and_then(parse_clock) {
            Some(m) => Some(m),
            None => {
                let shown = node.as_str().unwrap_or("");
                self.err(
                    node,
                    msg!(
                        self.lang,
                        "rules.load.bad_clock",
                        what = what,
                        shown = shown
                    ),
                );
                None
            }
        }
    }

    pub(super) fn template(&mut self, node: &Node, what: &str) -> Option<Template> {
        self.template_as(node, what, Escape::Plain)
    }

    /// A template whose values are escaped for `escape` (see [`Escape`]).
    pub(super) fn template_as(
        &mut self,
        node: &Node,
        what: &str,
        escape: Escape,
    ) -> Option<Template> {
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
                        msg!(self.lang, "rules.load.text_starts_braces", what = what),
                    );
                } else {
                    let found = node.describe(self.lang);
                    self.err(
                        node,
                        msg!(self.lang, "rules.load.not_text", what = what, found = found),
                    );
                }
                return None;
            }
        };
        match Template::parse_in(text, escape, self.lang) {
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
    pub(super) fn zalo_text(&mut self, node: &Node, what: &str) -> Option<Template> {
        let t = self.template(node, what)?;
        self.text_sites.push(node.pos);
        Some(t)
    }

    pub(super) fn opt_template(
        &mut self,
        keys: &Keys,
        key: &str,
        what: &str,
    ) -> Option<Option<Template>> {
        match keys.get(key) {
            None => Some(None),
            Some(n) => self.template(n, what).map(Some),
        }
    }

    // --- files ---
}

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

    pub(super) fn require<'n>(
        &mut self,
        keys: &Keys<'n>,
        key: &str,
        what: &str,
    ) -> Option<&'n Node> {
        let v = keys.get(key);
        if v.is_none() {
            self.err(keys.at, format!("{what} needs `{key}:`"));
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
                    message: format!(
                        "{what}: {} — customers cannot open it",
                        e.replace(&url, raw.trim())
                    ),
                });
            }
        }
    }

    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
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
    pub(super) fn name(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn names(&mut self, node: &Node, what: &str) -> Option<Vec<String>> {
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

    pub(super) fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.as_str() {
            Some("true" | "True" | "TRUE" | "yes" | "Yes" | "on") => Some(true),
            Some("false" | "False" | "FALSE" | "no" | "No" | "off") => Some(false),
            _ => {
                self.err(node, format!("{what} must be true or false"));
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
                    format!("{what} must be a whole number from {min} to {max}"),
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
                    format!("{what}: bad duration `{shown}`: write a number and a unit (s, m, h, d, w), e.g. 30m, 2h, 1d, 1h30m"),
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
                    format!("{what}: bad time `{shown}`: write HH:MM from 00:00 to 23:59, in quotes, e.g. \"05:00\""),
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

//! A rule file's top level: its sections and what each declares.

use super::*;

impl Ctx<'_> {
    pub(super) fn file(
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
        let Some(keys) = self.keys(doc, &self.what("rule_file"), FILE_KEYS) else {
            return Vec::new();
        };
        if keys.get("tags").is_some() {
            decl.tag_vocabulary = true;
        }
        for (key, target, kind) in [
            ("tags", &mut decl.tags, "tag_name"),
            ("lists", &mut decl.lists, "list_name"),
            ("chat_channels", &mut decl.chat_channels, "chat_channel"),
            ("forms", &mut decl.forms, "form_name"),
        ] {
            let Some(node) = keys.get(key) else { continue };
            let names: Vec<&Node> = match &node.kind {
                NodeKind::Seq(items) => items.iter().collect(),
                NodeKind::Map(entries) => entries.iter().map(|(k, _)| k).collect(),
                _ if node.is_null() => Vec::new(),
                _ => {
                    self.err(node, msg!(self.lang, "rules.load.declare_list", key = key));
                    continue;
                }
            };
            for n in names {
                if let Some(name) = self.name(n, &self.what(kind)) {
                    let origin = self.origin(n);
                    target.entry(name).or_insert(Some(origin));
                }
            }
        }
        if let Some(c) = keys.get("campaigns") {
            match &c.kind {
                NodeKind::Seq(items) => {
                    for n in items {
                        match self.campaign(n) {
                            Some(c) => campaigns.push(c),
                            None => {
                                let id = n.as_map().and_then(|m| {
                                    m.iter()
                                        .find(|(k, _)| k.as_str() == Some("id"))
                                        .and_then(|(_, v)| v.as_str())
                                });
                                if let Some(id) = id {
                                    decl.broken_campaigns.insert(id.trim().to_string());
                                }
                            }
                        }
                    }
                }
                _ if c.is_null() => {}
                _ => self.err(c, msg!(self.lang, "rules.load.campaigns_not_list")),
            }
        }
        match keys.get("rules") {
            Some(r) => self.rule_list(r),
            None => Vec::new(),
        }
    }

    // --- campaigns ---

    pub(super) fn ident(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if !s
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            self.err(
                node,
                msg!(self.lang, "rules.load.bad_ident", what = what, id = s),
            );
            return None;
        }
        Some(s)
    }
}

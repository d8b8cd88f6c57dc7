//! Actions (`do:`): sends, templates, `try:`, tags, lists, handoffs, waits.

use super::*;

impl Ctx<'_> {
    /// The actions, and where each was written.
    pub(super) fn actions(&mut self, node: &Node) -> (Vec<Action>, Vec<ActionSite>) {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() || node.is_null() {
            self.err(node, msg!(self.lang, "rules.load.do_empty"));
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
                        self.err(
                            item,
                            msg!(self.lang, "rules.load.action_needs_value", name = name),
                        );
                    } else {
                        self.unknown_action(name, item);
                    }
                }
                NodeKind::Map(entries) => {
                    let Some((k, v)) = entries.first() else {
                        self.err(item, msg!(self.lang, "rules.load.empty_action"));
                        continue;
                    };
                    if let Some((extra, _)) = entries.get(1) {
                        let name = k.as_str().unwrap_or("");
                        let e = extra.as_str().unwrap_or("");
                        if ACTIONS.contains(&e) {
                            self.err(
                                extra,
                                msg!(self.lang, "rules.load.one_action_per_item", e = e),
                            );
                        } else {
                            self.err(
                                extra,
                                msg!(self.lang, "rules.load.belongs_inside", e = e, name = name),
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
                        None => self.err(k, msg!(self.lang, "rules.load.action_not_word")),
                    }
                }
                _ => self.err(
                    item,
                    msg!(
                        self.lang,
                        "rules.load.bad_action",
                        found = item.describe(self.lang)
                    ),
                ),
            }
        }
        (out, sites)
    }

    /// `zns:` (by phone, tag 1 unless said) and `template:` (a ZBS template message: by the
    /// contact's Zalo user id unless `by: phone`, and its tag must be given).
    pub(super) fn template_action(&mut self, v: &Node, word: &str) -> Option<Action> {
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
            .and_then(|n| self.string(n, &self.what("template_id")));
        let tag = match keys.get("tag") {
            Some(n) => self.template_tag(n),
            None if word == "zns" => Some(1),
            None => {
                self.err(v, msg!(self.lang, "rules.load.template_needs_tag"));
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
                        msg!(
                            self.lang,
                            "rules.load.bad_by",
                            found = n.describe(self.lang)
                        ),
                    );
                    None?
                }
            },
        };
        let mut data = Vec::new();
        if let Some(d) = keys.get("data") {
            let Some(entries) = d.as_map() else {
                self.err(d, msg!(self.lang, "rules.load.bad_data"));
                return None;
            };
            for (k, val) in entries {
                let key = self.name(k, &self.what("template_param"))?;
                if val.is_null() || val.as_str().is_some_and(|s| s.trim().is_empty()) {
                    self.err(val, msg!(self.lang, "rules.load.empty_param", key = key));
                    continue;
                }
                data.push((key, self.template(val, &self.what("data_value"))?));
            }
        }
        let phone = self.opt_template(&keys, "phone", "`phone`");
        if by_user && keys.has("phone") {
            self.err(v, msg!(self.lang, "rules.load.phone_by_user"));
        }
        Some(Action::Zns {
            template_id: template_id?,
            data,
            phone: phone?,
            by_user,
            tag: tag?,
        })
    }

    pub(super) fn template_tag(&mut self, n: &Node) -> Option<u8> {
        match n.as_str().map(str::trim) {
            Some("1" | "transaction") => Some(1),
            Some("2" | "customer_care" | "care") => Some(2),
            Some("3" | "promotion") => Some(3),
            _ => {
                let hint = n
                    .as_str()
                    .and_then(|s| suggest(s.trim(), &["transaction", "customer_care", "promotion"]))
                    .map(|s| msg!(self.lang, "rules.load.did_you_mean_paren", word = s))
                    .unwrap_or_default();
                let found = n.as_str().map_or_else(
                    || n.describe(self.lang).to_string(),
                    |s| format!("`{}`", s.trim()),
                );
                self.err(
                    n,
                    msg!(
                        self.lang,
                        "rules.load.unknown_template_tag",
                        found = found,
                        hint = hint
                    ),
                );
                None
            }
        }
    }

    /// `try:` — a list of sends, the first Zalo will accept is made.
    pub(super) fn first_of(&mut self, v: &Node) -> Option<Action> {
        const SENDS: &[&str] = &["send", "template", "zns", "sms", "email"];
        let Some(items) = v.as_seq() else {
            self.err(
                v,
                msg!(
                    self.lang,
                    "rules.load.try_not_list",
                    found = v.describe(self.lang)
                ),
            );
            return None;
        };
        let mut alts = Vec::new();
        for item in items {
            let Some((k, val)) = item.as_map().and_then(|m| m.first().map(|(k, v)| (k, v))) else {
                self.err(item, msg!(self.lang, "rules.load.try_choice"));
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
                    msg!(
                        self.lang,
                        "rules.load.try_not_send",
                        name = name,
                        sends = one_of(SENDS)
                    ),
                ),
                None => self.err(k, msg!(self.lang, "rules.load.action_not_word")),
            }
        }
        if alts.len() < 2 && items.len() >= 2 {
            return None;
        }
        if items.len() < 2 {
            self.err(v, msg!(self.lang, "rules.load.try_two"));
            return None;
        }
        Some(Action::FirstOf(alts))
    }

    pub(super) fn unknown_action(&mut self, name: &str, at: &Node) {
        let hint = self.did_you_mean(name, ACTIONS);
        self.err(
            at,
            msg!(
                self.lang,
                "rules.load.unknown_action",
                name = name,
                hint = hint,
                known = one_of(ACTIONS)
            ),
        );
    }

    fn send_action(&mut self, v: &Node) -> Option<Action> {
        let a = {
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
                        self.err(v, msg!(self.lang, "rules.load.text_and_variants"));
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
                        self.err(n, msg!(self.lang, "rules.load.bad_via"));
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
        };
        Some(a)
    }

    fn email_action(&mut self, v: &Node) -> Option<Action> {
        let a = {
            let keys = self.keys(v, "`email`", &["subject", "html", "text", "to", "links"])?;
            let subject = self
                .require(&keys, "subject", "`email`")
                .and_then(|n| self.template(n, "`subject`"));
            if !keys.has("html") && !keys.has("text") {
                self.err(v, msg!(self.lang, "rules.load.email_needs_body"));
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
                    self.err(l, msg!(self.lang, "rules.load.bad_links"));
                    return None;
                };
                for (k, val) in entries {
                    let name = self.name(k, &self.what("link_name"))?;
                    let url = self.string(val, &self.what("link_url"))?;
                    if !crate::tracking::is_http_url(&url) {
                        self.err(
                            val,
                            msg!(
                                self.lang,
                                "rules.load.link_not_http",
                                name = name,
                                url = url
                            ),
                        );
                        return None;
                    }
                    self.guard_url(val, &msg!(self.lang, "rules.what.link", name = name));
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
        };
        Some(a)
    }

    fn list_action(&mut self, v: &Node) -> Option<Action> {
        let a = {
            let keys = self.keys(v, "`list`", &["add", "remove", "copy", "move", "from"])?;
            let ops: Vec<_> = ["add", "remove", "copy", "move"]
                .into_iter()
                .filter(|k| keys.has(k))
                .collect();
            if ops.len() != 1 {
                self.err(v, msg!(self.lang, "rules.load.list_op"));
                return None;
            }
            let n = keys.get(ops[0])?;
            let list = self.name(n, &self.what("list_name"))?;
            self.refer(RefKind::List, &list, n);
            let op = match ops[0] {
                "add" => ListOp::Add,
                "remove" => ListOp::Remove,
                "copy" => ListOp::Copy,
                _ => ListOp::Move,
            };
            let from = match keys.get("from") {
                Some(f) => {
                    let from = self.name(f, &self.what("list_name"))?;
                    self.refer(RefKind::List, &from, f);
                    Some(from)
                }
                None => None,
            };
            if op == ListOp::Move && from.is_none() {
                self.err(v, msg!(self.lang, "rules.load.move_needs_from"));
                return None;
            }
            Action::List { op, list, from }
        };
        Some(a)
    }

    fn handoff_action(&mut self, v: &Node) -> Option<Action> {
        let a = {
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
                    let t = self.name(n, &self.what("team"))?;
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
                    self.err(n, msg!(self.lang, "rules.load.bad_priority"));
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
        };
        Some(a)
    }

    pub(super) fn action(&mut self, name: &str, key: &Node, v: &Node) -> Option<Action> {
        let braced_text = v
            .as_map()
            .and_then(|m| m.first())
            .is_some_and(|(k, _)| k.as_map().is_some());
        if braced_text {
            // `send: {{display_name}} ơi` — explain instead of "unknown key".
            self.template(v, &format!("`{name}`"));
            return None;
        }
        if v.is_null() && name != "stop" && ACTIONS.contains(&name) {
            // `- send:` with nothing after it (a text not written yet, or cut off).
            self.err(
                v,
                msg!(self.lang, "rules.load.action_needs_value", name = name),
            );
            return None;
        }
        let a = match name {
            "send" => self.send_action(v)?,
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
            "email" => self.email_action(v)?,
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
                        let c = self.name(n, &self.what("chat_channel"))?;
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
            "tag" => Action::Tag(self.names(v, &self.what("tag"))?),
            "untag" => Action::Untag(self.names(v, &self.what("tag"))?),
            "set_field" => {
                let keys = self.keys(v, "`set_field`", &["name", "value"])?;
                let name = self
                    .require(&keys, "name", "`set_field`")
                    .and_then(|n| self.name(n, &self.what("field_name")));
                let value = self
                    .require(&keys, "value", "`set_field`")
                    .and_then(|n| self.template(n, "`value`"));
                Action::SetField {
                    name: name?,
                    value: value?,
                }
            }
            "list" => self.list_action(v)?,
            "handoff" => self.handoff_action(v)?,
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
    pub(super) fn variants(&mut self, node: &Node) -> Option<Vec<Variant>> {
        let Some(items) = node.as_seq() else {
            self.err(node, msg!(self.lang, "rules.load.bad_variants"));
            return None;
        };
        if items.len() < 2 {
            self.err(node, msg!(self.lang, "rules.load.variants_two"));
        }
        if items.len() > 26 {
            self.err(node, msg!(self.lang, "rules.load.variants_max"));
            return None;
        }
        let mut out: Vec<Variant> = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let Some(keys) = self.keys(item, &self.what("variant"), &["id", "weight", "text"])
            else {
                ok = false;
                continue;
            };
            let text = self
                .require(&keys, "text", &self.what("variant"))
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
                            self.err(n, msg!(self.lang, "rules.load.variant_twice", id = s));
                            None
                        } else {
                            Some(s.to_string())
                        }
                    }
                    _ => {
                        self.err(n, msg!(self.lang, "rules.load.bad_variant_id"));
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
            self.err(node, msg!(self.lang, "rules.load.variants_weight"));
            return None;
        }
        ok.then_some(out)
    }

    pub(super) fn buttons(&mut self, node: &Node) -> Option<Vec<Button>> {
        let Some(items) = node.as_seq() else {
            self.err(node, msg!(self.lang, "rules.load.bad_buttons"));
            return None;
        };
        if items.len() > 5 {
            self.err(node, msg!(self.lang, "rules.load.buttons_max"));
        }
        let mut out = Vec::new();
        for item in items {
            let keys = self.keys(
                item,
                &self.what("button"),
                &["title", "url", "phone", "query"],
            )?;
            let title = self
                .require(&keys, "title", &self.what("button"))
                .and_then(|n| self.template(n, "`title`"));
            let kinds: Vec<_> = ["url", "phone", "query"]
                .into_iter()
                .filter(|k| keys.has(k))
                .collect();
            if kinds.len() != 1 {
                self.err(item, msg!(self.lang, "rules.load.button_kind"));
                return None;
            }
            if kinds[0] == "url" {
                if let Some(n) = keys.get("url") {
                    self.guard_url(n, &self.what("button_url"));
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

//! Rules and their triggers (`when:`).

use super::*;

impl Ctx<'_> {
    pub(super) fn rule_list(&mut self, node: &Node) -> Vec<Rule> {
        match &node.kind {
            NodeKind::Seq(items) => items.iter().filter_map(|r| self.rule(r)).collect(),
            _ if node.is_null() => Vec::new(),
            _ => {
                self.err(node, msg!(self.lang, "rules.load.rules_not_list"));
                Vec::new()
            }
        }
    }

    pub(super) fn rule(&mut self, node: &Node) -> Option<Rule> {
        let keys = self.keys(node, &self.what("rule"), RULE_KEYS)?;
        let errors_before = self.diags.len();
        let refs_before = self.step_refs.len();
        let id_node = self.require(&keys, "id", &self.what("rule"));
        let id = id_node.and_then(|n| {
            let s = self.string(n, "`id`")?;
            if !s
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                self.err(n, msg!(self.lang, "rules.load.bad_rule_id", id = s));
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
                self.err(node, msg!(self.lang, "rules.load.rule_needs_when"));
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
                self.err(node, msg!(self.lang, "rules.load.rule_needs_do"));
                Default::default()
            }
        };
        let once_per = keys.get("once_per").and_then(|n| match n.as_str() {
            Some("day") => Some(OncePer::Day),
            Some("period") => Some(OncePer::Period),
            Some("silence") => Some(OncePer::Silence),
            Some("ever") => Some(OncePer::Ever),
            _ => {
                self.err(n, msg!(self.lang, "rules.load.bad_once_per"));
                None
            }
        });
        if once_per == Some(OncePer::Period) && !conditions.iter().any(has_time_between) {
            let n = keys.get("once_per").unwrap_or(node);
            self.err(n, msg!(self.lang, "rules.load.period_needs_time"));
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

    pub(super) fn when(&mut self, node: &Node) -> Vec<Trigger> {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() {
            self.err(node, msg!(self.lang, "rules.load.when_empty"));
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
                            None => self.err(k, msg!(self.lang, "rules.load.trigger_not_word")),
                        }
                    }
                }
                _ => self.err(
                    item,
                    msg!(
                        self.lang,
                        "rules.load.bad_trigger",
                        found = item.describe(self.lang)
                    ),
                ),
            }
        }
        out
    }

    pub(super) fn no_value(&mut self, name: &str, value: Option<&Node>) -> bool {
        match value {
            Some(v) if !v.is_null() => {
                self.err(v, msg!(self.lang, "rules.load.no_options", name = name));
                false
            }
            _ => true,
        }
    }

    fn message_trigger(&mut self, value: Option<&Node>) -> Option<Trigger> {
        let a = {
            let Some(v) = value.filter(|v| !v.is_null()) else {
                return Some(Trigger::Message(MessageFilter::default()));
            };
            if v.as_str().is_some() {
                self.err(v, msg!(self.lang, "rules.load.message_text"));
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
                        self.err(n, msg!(self.lang, "rules.load.bad_accents"));
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
                                self.err(i, msg!(self.lang, "rules.load.empty_word", key = key));
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
                        self.err(
                            n,
                            msg!(self.lang, "rules.load.bad_regex", src = src, detail = last),
                        );
                        ok = false;
                    }
                }
            }
            if let Some(n) = keys.get("attachment") {
                const KINDS: &[&str] = &[
                    "image", "sticker", "file", "link", "gif", "audio", "video", "location", "any",
                ];
                match n.as_str() {
                    Some(k) if KINDS.contains(&k) => f.attachment = Some(k.to_string()),
                    _ => {
                        self.err(
                            n,
                            msg!(
                                self.lang,
                                "rules.load.bad_attachment",
                                kinds = one_of(KINDS)
                            ),
                        );
                        ok = false;
                    }
                }
            }
            if !ok {
                return None;
            }
            Trigger::Message(f)
        };
        Some(a)
    }

    fn special_day_trigger(&mut self, v: &Node) -> Option<Trigger> {
        let a = {
            let keys = self.keys(v, "`special_day`", &["field", "date", "days_before"])?;
            let on = match (keys.get("field"), keys.get("date")) {
                (Some(f), None) => SpecialDate::Field(self.name(f, "`field`")?),
                (None, Some(d)) => {
                    let text = d.as_str().unwrap_or_default();
                    match parse_day_month(text) {
                        Some((day, month)) => SpecialDate::Date { day, month },
                        None => {
                            self.err(d, msg!(self.lang, "rules.load.bad_date", text = text));
                            return None;
                        }
                    }
                }
                _ => {
                    self.err(v, msg!(self.lang, "rules.load.special_day_needs"));
                    return None;
                }
            };
            let days_before = match keys.get("days_before") {
                Some(n) => self.int(n, "`days_before`", 0, 365)? as u32,
                None => 0,
            };
            Trigger::SpecialDay { on, days_before }
        };
        Some(a)
    }

    fn email_not_opened_trigger(&mut self, v: &Node) -> Option<Trigger> {
        let a = {
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
                    self.refer_email(&e, None, n);
                    Some(e)
                }
                None => None,
            };
            Trigger::EmailNotOpened {
                within_hours: hours as u32,
                email,
                machine_opens,
            }
        };
        Some(a)
    }

    fn after_step_trigger(&mut self, v: &Node) -> Option<Trigger> {
        let a = {
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
                    link: None,
                    path: self.path.clone(),
                    pos: n.pos,
                    campaign_pos: cn.pos,
                });
            }
            Trigger::AfterStep {
                campaign: campaign?,
                step: step?,
            }
        };
        Some(a)
    }

    pub(super) fn trigger(
        &mut self,
        name: &str,
        at: &Node,
        value: Option<&Node>,
    ) -> Option<Trigger> {
        let value_or_err = |cx: &mut Self, what: &str| -> Option<&Node> {
            match value {
                Some(v) if !v.is_null() => Some(v),
                _ => {
                    let m = msg!(cx.lang, "rules.load.needs_value", name = name, what = what);
                    cx.err(at, m);
                    None
                }
            }
        };
        let t = match name {
            "message" => self.message_trigger(value)?,
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
                let v = value_or_err(self, &msg!(self.lang, "rules.needs.tag"))?;
                let tag = self.name(v, &self.what("tag"))?;
                if name == "tag_added" {
                    Trigger::TagAdded(tag)
                } else {
                    Trigger::TagRemoved(tag)
                }
            }
            "schedule" => {
                let v = value_or_err(self, &msg!(self.lang, "rules.needs.cron"))?;
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
                        self.err(n, msg!(self.lang, "rules.load.max_below_min"));
                        return None;
                    }
                }
                Trigger::Inactive {
                    min_days: min as u32,
                    max_days: max.map(|m| m as u32),
                }
            }
            "special_day" => {
                let v = value_or_err(self, &msg!(self.lang, "rules.needs.special_day"))?;
                self.special_day_trigger(v)?
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
                let v = value_or_err(self, &msg!(self.lang, "rules.needs.form"))?;
                Trigger::FormSubmitted(self.name(v, &self.what("form_name"))?)
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
                self.email_not_opened_trigger(v)?
            }
            "after_step" => {
                let v = value_or_err(self, "`{campaign: NAME, step: N}`")?;
                self.after_step_trigger(v)?
            }
            _ => {
                let hint = self.did_you_mean(name, TRIGGERS);
                self.err(
                    at,
                    msg!(
                        self.lang,
                        "rules.load.unknown_trigger",
                        name = name,
                        hint = hint,
                        known = one_of(TRIGGERS)
                    ),
                );
                return None;
            }
        };
        Some(t)
    }

    pub(super) fn email_ref(
        &mut self,
        value: Option<&Node>,
        allowed: &[&str],
    ) -> Option<(Option<String>, Option<String>)> {
        let Some(v) = value.filter(|v| !v.is_null()) else {
            return Some((None, None));
        };
        let keys = self.keys(v, &self.what("email_trigger"), allowed)?;
        let get = |cx: &mut Self, k: &str| match keys.get(k) {
            Some(n) => cx.string(n, &format!("`{k}`")).map(Some),
            None => Some(None),
        };
        let email = get(self, "email")?;
        let link = get(self, "link")?;
        if let (Some(e), Some(n)) = (&email, keys.get("email")) {
            self.refer_email(e, link.clone(), n);
        }
        Some((email, link))
    }

    /// `machine_opens: true|false` of an email trigger (default false).
    pub(super) fn machine_opens(&mut self, value: Option<&Node>) -> Option<bool> {
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
    pub(super) fn refer_email(&mut self, email: &str, link: Option<String>, node: &Node) {
        let (campaign, step) = match email.split_once('/') {
            Some((c, s)) => (c.to_string(), Some(s.to_string())),
            None => (email.to_string(), None),
        };
        self.step_refs.push(StepRef {
            kind: StepRefKind::Email,
            campaign,
            step,
            rule_id: None,
            link,
            path: self.path.clone(),
            pos: node.pos,
            campaign_pos: node.pos,
        });
    }

    pub(super) fn cron(&mut self, node: &Node, pattern: &str) -> Option<Cron> {
        let fields = pattern.split_whitespace().count();
        if !pattern.starts_with('@') && fields != 5 {
            self.err(
                node,
                msg!(
                    self.lang,
                    "rules.load.cron_fields",
                    pattern = pattern,
                    fields = fields
                ),
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
                self.err(
                    node,
                    msg!(
                        self.lang,
                        "rules.load.bad_cron",
                        pattern = pattern,
                        error = e
                    ),
                );
                None
            }
        }
    }

    // --- if ---
}

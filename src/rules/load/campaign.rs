//! Campaigns (`campaigns:`): entry triggers, weekdays, steps.

use super::*;

impl Ctx<'_> {
    pub(super) fn campaign(&mut self, node: &Node) -> Option<Campaign> {
        let keys = self.keys(node, &self.what("campaign"), CAMPAIGN_KEYS)?;
        let errors_before = self.diags.len();
        let id = self
            .require(&keys, "id", &self.what("campaign"))
            .and_then(|n| self.ident(n, &self.what("campaign_id")));
        let description = keys
            .get("description")
            .and_then(|n| self.string(n, "`description`"));
        let enabled = keys
            .get("enabled")
            .and_then(|n| self.boolean(n, "`enabled`"))
            .unwrap_or(true);
        let enter_on = match self.require(&keys, "enter_on", &self.what("campaign")) {
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
        let steps_node = self.require(&keys, "steps", &self.what("campaign"));
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
                            let o = &first.rule.origin;
                            let first = at(self.lang, &o.file, o.pos);
                            self.err(
                                item,
                                msg!(
                                    self.lang,
                                    "rules.load.duplicate_step",
                                    id = st.id,
                                    first = first
                                ),
                            );
                        } else {
                            steps.push(st);
                        }
                    }
                }
            }
            Some((n, _)) => self.err(n, msg!(self.lang, "rules.load.steps_not_list")),
            None => {}
        }
        if self.diags.len() > errors_before {
            return None;
        }
        crate::rules::campaign::unique_step_ids(&mut steps, &cid);
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

    pub(super) fn entry_triggers(&mut self, node: &Node) -> Vec<EntryTrigger> {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        if items.is_empty() || node.is_null() {
            self.err(node, msg!(self.lang, "rules.load.enter_on_empty"));
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
                        msg!(
                            self.lang,
                            "rules.load.bad_entry",
                            known = one_of(ENTRY_TRIGGERS),
                            found = item.describe(self.lang)
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
                        self.err(v, msg!(self.lang, "rules.load.no_options", name = "follow"));
                        None
                    }
                    ("form_submitted" | "tag_added" | "list_joined", None) => {
                        self.err(
                            k,
                            msg!(self.lang, "rules.load.entry_needs_name", name = name),
                        );
                        None
                    }
                    ("form_submitted", Some(v)) => {
                        let what = self.what("form_name");
                        self.name(v, &what).map(EntryTrigger::FormSubmitted)
                    }
                    ("tag_added", Some(v)) => {
                        let what = self.what("tag");
                        self.name(v, &what).map(EntryTrigger::TagAdded)
                    }
                    ("list_joined", Some(v)) => self.name(v, &self.what("list_name")).map(|l| {
                        self.refer(RefKind::List, &l, v);
                        EntryTrigger::ListJoined(l)
                    }),
                    _ => {
                        let hint = self.did_you_mean(name, ENTRY_TRIGGERS);
                        self.err(
                            k,
                            msg!(
                                self.lang,
                                "rules.load.unknown_entry",
                                name = name,
                                hint = hint,
                                known = one_of(ENTRY_TRIGGERS)
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

    pub(super) fn weekday_mask(&mut self, v: &Node) -> Option<u8> {
        let items: Vec<&Node> = match &v.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        if items.is_empty() {
            self.err(v, msg!(self.lang, "rules.load.weekdays_empty"));
            return None;
        }
        let mut mask = 0u8;
        for i in items {
            match i.as_str().and_then(parse_weekday) {
                Some(b) => mask |= b,
                None => {
                    self.err(i, msg!(self.lang, "rules.load.bad_weekday"));
                    return None;
                }
            }
        }
        Some(mask)
    }

    pub(super) fn step(&mut self, node: &Node, campaign: &str, number: usize) -> Option<Step> {
        let keys = self.keys(node, &self.what("campaign_step"), STEP_KEYS)?;
        let errors_before = self.diags.len();
        let written_id = keys.get("id").map(|n| self.ident(n, &self.what("step_id")));
        let day = match keys.get("day") {
            Some(n) => self.int(n, "`day`", 0, 3650).map(|d| d as u32),
            None => Some(0),
        };
        let send = match (keys.get("at"), keys.get("after")) {
            (Some(a), Some(_)) => {
                self.err(a, msg!(self.lang, "rules.load.at_and_after"));
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
                self.err(node, msg!(self.lang, "rules.load.step_needs_do"));
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
            None => crate::rules::campaign::derived_step_id(day, send),
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
}

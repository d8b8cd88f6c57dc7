//! Conditions (`if:`).

use super::*;

impl Ctx<'_> {
    pub(super) fn conditions(&mut self, node: &Node) -> Vec<Condition> {
        match &node.kind {
            NodeKind::Map(entries) => {
                let mut seen: Vec<&str> = Vec::new();
                let mut out = Vec::new();
                for (k, v) in entries {
                    let Some(name) = k.as_str() else {
                        self.err(k, msg!(self.lang, "rules.load.condition_not_word"));
                        continue;
                    };
                    if seen.contains(&name) {
                        self.err(
                            k,
                            msg!(self.lang, "rules.load.condition_twice", name = name),
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
                    msg!(
                        self.lang,
                        "rules.load.bad_conditions",
                        found = node.describe(self.lang)
                    ),
                );
                Vec::new()
            }
        }
    }

    pub(super) fn group(&mut self, node: &Node) -> Condition {
        let mut c = self.conditions(node);
        if c.len() == 1 {
            c.pop().unwrap_or(Condition::All(Vec::new()))
        } else {
            Condition::All(c)
        }
    }

    pub(super) fn condition(&mut self, name: &str, key: &Node, v: &Node) -> Option<Condition> {
        let c = match name {
            "all" => Condition::All(self.conditions(v)),
            "any" => match &v.kind {
                NodeKind::Seq(items) if !items.is_empty() => {
                    Condition::Any(items.iter().map(|i| self.group(i)).collect())
                }
                _ => {
                    self.err(v, msg!(self.lang, "rules.load.any_needs_list"));
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
                        self.err(v, msg!(self.lang, "rules.load.time_between_two"));
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
                            self.err(i, msg!(self.lang, "rules.load.bad_weekday"));
                            return None;
                        }
                    }
                }
                Condition::Weekdays(mask)
            }
            "silent_for" => {
                let keys = self.keys(v, "`silent_for`", &["min_days", "max_days"])?;
                if !keys.has("min_days") && !keys.has("max_days") {
                    self.err(v, msg!(self.lang, "rules.load.silent_for_needs"));
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
                        self.err(v, msg!(self.lang, "rules.load.max_below_min"));
                        return None;
                    }
                }
                Condition::SilentFor { min_days, max_days }
            }
            "last_interaction_within" => {
                Condition::LastInteractionWithin(self.duration(v, "`last_interaction_within`")?)
            }
            "has_tag" => Condition::HasTag(self.names(v, &self.what("tag"))?),
            "lacks_tag" => Condition::LacksTag(self.names(v, &self.what("tag"))?),
            "follows" => Condition::Follows(self.boolean(v, "`follows`")?),
            "in_list" | "group" => {
                let list = self.name(v, &self.what("list_name"))?;
                self.refer(RefKind::List, &list, v);
                Condition::InList(list)
            }
            "field" => {
                let keys = self.keys(v, "`field`", &["name", "equals", "contains", "is_set"])?;
                let name = self
                    .require(&keys, "name", "`field`")
                    .and_then(|n| self.name(n, &self.what("field_name")))?;
                let tests: Vec<_> = ["equals", "contains", "is_set"]
                    .into_iter()
                    .filter(|k| keys.has(k))
                    .collect();
                if tests.len() != 1 {
                    self.err(v, msg!(self.lang, "rules.load.field_test"));
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
                let hint = self.did_you_mean(name, CONDITIONS);
                self.err(
                    key,
                    msg!(
                        self.lang,
                        "rules.load.unknown_condition",
                        name = name,
                        hint = hint,
                        known = one_of(CONDITIONS)
                    ),
                );
                return None;
            }
        };
        Some(c)
    }

    // --- do ---
}

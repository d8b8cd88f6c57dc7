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
}

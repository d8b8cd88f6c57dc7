//! Text templates: `{{display_name}}`, `{{phone}}`, `{{email}}`, `{{tags}}`, `{{user_id}}`,
//! `{{field.NAME}}`, each with an optional fallback: `{{display_name | "bạn"}}`.
//!
//! A missing value without a fallback renders as nothing, and the space it leaves is tidied
//! ("Chào {{display_name}}!" renders "Chào!", never "Chào !" or a leftover `{{`).

use crate::store::Contact;

/// A variable a template can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    DisplayName,
    Phone,
    Email,
    Tags,
    UserId,
    Field(String),
}

/// The variables, for messages and the guide.
pub const VARIABLES: &str =
    "display_name, phone, email, tags, user_id, field.NAME (a contact field)";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Var { var: Var, fallback: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    segs: Vec<Seg>,
    source: String,
}

/// A template that cannot be read: where in the text (character offset) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Character offset of the `{{` in the text.
    pub offset: usize,
    /// Which `{{` of the text it is (0-based), to find it in the file.
    pub nth: usize,
    pub message: String,
}

impl Template {
    /// A template without variables.
    pub fn literal(s: &str) -> Template {
        Template {
            segs: vec![Seg::Lit(s.to_string())],
            source: s.to_string(),
        }
    }

    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        let mut segs = Vec::new();
        let mut rest = s;
        let mut consumed_chars = 0;
        let mut nth = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                segs.push(Seg::Lit(rest[..open].to_string()));
            }
            let offset = consumed_chars + rest[..open].chars().count();
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError {
                    offset,
                    nth,
                    message: "`{{` is not closed with `}}`".into(),
                });
            };
            let inner = &after[..close];
            let (name, fallback) = match inner.split_once('|') {
                Some((n, f)) => (n.trim(), Some(parse_fallback(f.trim(), offset, nth)?)),
                None => (inner.trim(), None),
            };
            let var = parse_var(name).ok_or_else(|| TemplateError {
                offset,
                nth,
                message: if name.is_empty() {
                    format!("empty `{{{{}}}}`: write a variable, one of {VARIABLES}")
                } else {
                    format!("unknown template variable `{name}` (known: {VARIABLES})")
                },
            })?;
            segs.push(Seg::Var { var, fallback });
            let used = &rest[..open + 2 + close + 2];
            consumed_chars += used.chars().count();
            rest = &rest[open + 2 + close + 2..];
            nth += 1;
        }
        if !rest.is_empty() {
            segs.push(Seg::Lit(rest.to_string()));
        }
        Ok(Template {
            segs,
            source: s.to_string(),
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn is_empty(&self) -> bool {
        self.source.trim().is_empty()
    }

    /// Characters of the text outside its `{{…}}` variables: the least a rendering can be.
    pub fn literal_chars(&self) -> usize {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => l.chars().count(),
                Seg::Var { .. } => 0,
            })
            .sum()
    }

    /// Whether the text uses any `{{…}}` variable.
    pub fn has_vars(&self) -> bool {
        self.segs.iter().any(|s| matches!(s, Seg::Var { .. }))
    }

    /// Renders with the contact's data.
    pub fn render(&self, contact: &Contact) -> String {
        let mut out = String::with_capacity(self.source.len() + 16);
        let mut skip_space = false;
        for (i, seg) in self.segs.iter().enumerate() {
            match seg {
                Seg::Lit(s) => {
                    let s = if skip_space {
                        s.strip_prefix(' ').unwrap_or(s)
                    } else {
                        s
                    };
                    skip_space = false;
                    out.push_str(s);
                }
                Seg::Var { var, fallback } => {
                    let v = value(var, contact)
                        .filter(|v| !v.trim().is_empty())
                        .or_else(|| fallback.clone());
                    if let Some(v) = v {
                        out.push_str(&v);
                        continue;
                    }
                    // A hole: tidy the space it leaves.
                    let next_first = match self.segs.get(i + 1) {
                        Some(Seg::Lit(n)) => n.chars().next(),
                        _ => None,
                    };
                    if out.ends_with(' ') {
                        // "Chào {{x}}!" -> "Chào!"; "Chào {{x}} bạn" -> "Chào bạn"; but
                        // "Chào {{x}}bạn" keeps its one space.
                        let glue = matches!(next_first, None | Some(' ' | '\n'))
                            || next_first.is_some_and(|c| ",.!?;:)…".contains(c));
                        if glue {
                            out.pop();
                        }
                    } else if out.is_empty() || out.ends_with('\n') {
                        skip_space = true;
                    }
                }
            }
        }
        out
    }
}

fn parse_fallback(f: &str, offset: usize, nth: usize) -> Result<String, TemplateError> {
    let quoted = |q: char| f.len() >= 2 && f.starts_with(q) && f.ends_with(q);
    if quoted('"') || quoted('\'') {
        Ok(f[1..f.len() - 1].to_string())
    } else if f.is_empty() {
        Err(TemplateError {
            offset,
            nth,
            message: "empty fallback after `|`: write e.g. {{display_name | \"bạn\"}}".into(),
        })
    } else {
        Ok(f.to_string())
    }
}

fn parse_var(name: &str) -> Option<Var> {
    Some(match name {
        "display_name" => Var::DisplayName,
        "phone" => Var::Phone,
        "email" => Var::Email,
        "tags" => Var::Tags,
        "user_id" => Var::UserId,
        _ => {
            let f = name.strip_prefix("field.")?;
            if f.is_empty()
                || !f
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            Var::Field(f.to_string())
        }
    })
}

fn value(var: &Var, c: &Contact) -> Option<String> {
    match var {
        Var::DisplayName => c.display_name.clone(),
        Var::Phone => c.phone.clone(),
        Var::Email => c.email.clone(),
        Var::UserId => Some(c.user_id.clone()).filter(|s| !s.is_empty()),
        Var::Tags => {
            (!c.tags.is_empty()).then(|| c.tags.iter().cloned().collect::<Vec<_>>().join(", "))
        }
        Var::Field(f) => c.fields.get(f).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact() -> Contact {
        Contact {
            user_id: "42".into(),
            ..Contact::default()
        }
    }

    #[test]
    fn values_and_fallbacks() {
        let mut c = contact();
        c.display_name = Some("Lan".into());
        c.fields.insert("gift".into(), "Áo thun".into());
        c.tags.insert("vip_customer".into());
        c.tags.insert("new_user".into());
        let t =
            Template::parse("Chào {{display_name | \"bạn\"}}! Quà: {{ field.gift }} ({{tags}})")
                .unwrap();
        assert_eq!(
            t.render(&c),
            "Chào Lan! Quà: Áo thun (new_user, vip_customer)"
        );
        let t = Template::parse("Chào {{display_name | \"bạn\"}}!").unwrap();
        assert_eq!(t.render(&contact()), "Chào bạn!");
        let t = Template::parse("Chào {{display_name|'bạn ơi'}}").unwrap();
        assert_eq!(t.render(&contact()), "Chào bạn ơi");
    }

    #[test]
    fn missing_values_leave_no_trace() {
        let c = contact();
        for (src, want) in [
            ("Chào {{display_name}}!", "Chào!"),
            ("Chào {{display_name}}, hẹn gặp lại", "Chào, hẹn gặp lại"),
            ("Chào {{display_name}} bạn", "Chào bạn"),
            ("{{display_name}} ơi, chào", "ơi, chào"),
            ("Số: {{phone}}", "Số:"),
            ("a {{phone}}{{email}} b", "a b"),
            ("Chào {{display_name}}\nDòng 2", "Chào\nDòng 2"),
        ] {
            let out = Template::parse(src).unwrap().render(&c);
            assert_eq!(out, want, "{src}");
            assert!(!out.contains("{{") && !out.contains("  "), "{src}: {out}");
        }
    }

    #[test]
    fn errors_point_at_the_braces() {
        let e = Template::parse("Chào {{ten}} và {{display_name}}").unwrap_err();
        assert_eq!(e.offset, 5);
        assert_eq!(e.nth, 0);
        assert!(e.message.contains("unknown template variable `ten`"));
        let e = Template::parse("Xin {{display_name}} chào {{phone").unwrap_err();
        assert_eq!((e.offset, e.nth), (26, 1));
        assert!(Template::parse("{{field.}}").is_err());
        assert!(Template::parse("{{ }}").is_err());
        assert!(Template::parse("{{phone | }}").is_err());
        assert!(Template::parse("no braces { } here").is_ok());
    }
}

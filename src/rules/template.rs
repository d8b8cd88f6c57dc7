//! Text templates: `{{display_name}}`, `{{phone}}`, `{{email}}`, `{{tags}}`, `{{user_id}}`,
//! `{{field.NAME}}`, each with an optional fallback: `{{display_name | "bạn"}}`.
//!
//! A missing value without a fallback renders as nothing, and the space it leaves is tidied
//! ("Chào {{display_name}}!" renders "Chào!", never "Chào !" or a leftover `{{`).
//!
//! **Escaping.** Every template knows where its text lands ([`Escape`], set when the rule file is
//! read), and [`Template::render`] escapes each value for that place — there is no other way
//! to render, so no channel can forget. What a customer typed is data, never markup or a link:
//! - `Plain` (Zalo and SMS texts, subjects, task titles, ZNS data): values as they are;
//! - `Html` (email `html:`): values HTML-escaped in text and quoted attribute values; inside a
//!   link (`href`, `src`…) percent-encoded, and only after the address's host — a variable
//!   that would decide where a link goes (`href="{{field.web}}"`) is refused when the file is
//!   read, as are variables inside a tag, an unquoted attribute, `style`, `on…` attributes and
//!   `<script>`/`<style>`;
//! - `Url` (button URLs, images): percent-encoded, only after the host (same check);
//! - `Chat` (team-chat notices, Slack-style markup): `&`, `<`, `>` escaped as Slack asks, so
//!   `<https://evil|Bấm vào đây>` shows as text.

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

/// Where a template's text lands, which decides how its values are escaped (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Escape {
    #[default]
    Plain,
    Html,
    Url,
    Chat,
}

/// How one value is escaped, decided from the text around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Plain,
    /// HTML text or a quoted attribute value.
    Html,
    /// Part of a URL after its host: percent-encoded (then HTML-safe as well).
    UrlPart,
    Chat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Var {
        var: Var,
        fallback: Option<String>,
        out: Out,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    segs: Vec<Seg>,
    source: String,
    escape: Escape,
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
            escape: Escape::Plain,
        }
    }

    /// A plain-text template (values rendered as they are).
    pub fn parse(s: &str) -> Result<Template, TemplateError> {
        Template::parse_as(s, Escape::Plain)
    }

    /// A template whose text lands in `escape`'s context; refuses variables in places where
    /// no escaping makes them safe (see the module docs).
    pub fn parse_as(s: &str, escape: Escape) -> Result<Template, TemplateError> {
        let mut t = Template::parse_plain(s)?;
        t.escape = escape;
        let mut html = HtmlScan::default();
        let mut url_prefix = String::new();
        let mut nth = 0;
        for seg in &mut t.segs {
            match seg {
                Seg::Lit(l) => match escape {
                    Escape::Html => html.feed(l),
                    Escape::Url => url_prefix.push_str(l),
                    _ => {}
                },
                Seg::Var { out, .. } => {
                    let offset = s
                        .match_indices("{{")
                        .nth(nth)
                        .map_or(0, |(b, _)| s[..b].chars().count());
                    let err = |message: &str| TemplateError {
                        offset,
                        nth,
                        message: message.to_string(),
                    };
                    *out = match escape {
                        Escape::Plain => Out::Plain,
                        Escape::Chat => Out::Chat,
                        Escape::Url => {
                            if !url_var_allowed(&url_prefix) {
                                return Err(err(URL_VAR_MESSAGE));
                            }
                            Out::UrlPart
                        }
                        Escape::Html => html.var_out().map_err(err)?,
                    };
                    nth += 1;
                }
            }
        }
        Ok(t)
    }

    fn parse_plain(s: &str) -> Result<Template, TemplateError> {
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
            segs.push(Seg::Var {
                var,
                fallback,
                out: Out::Plain,
            });
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
            escape: Escape::Plain,
        })
    }

    /// Where the text lands.
    pub fn escape(&self) -> Escape {
        self.escape
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

    /// Renders with the contact's data, each value escaped for where it lands.
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
                Seg::Var {
                    var,
                    fallback,
                    out: how,
                } => {
                    let v = value(var, contact)
                        .filter(|v| !v.trim().is_empty())
                        .or_else(|| fallback.clone());
                    if let Some(v) = v {
                        escape_into(&mut out, &v, *how);
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

/// Appends `v` escaped for `how`.
fn escape_into(out: &mut String, v: &str, how: Out) {
    match how {
        Out::Plain => out.push_str(v),
        Out::Html => out.push_str(&html_escape(v)),
        Out::UrlPart => out.push_str(&percent_encode(v)),
        Out::Chat => {
            for c in v.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    c => out.push(c),
                }
            }
        }
    }
}

/// Escapes text for team chat (Slack-style markup: `&`, `<`, `>`), as [`Escape::Chat`] does:
/// for chat texts built outside templates (handoff notices).
pub fn escape_chat(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    escape_into(&mut out, s, Out::Chat);
    out
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a value can add to a
/// URL's path or query, never end it, change its host or start another.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const URL_VAR_MESSAGE: &str = "a variable cannot decide where a link goes: write the address yourself and put variables after its host, e.g. https://shop.vn/p?ref={{phone}}";

/// Whether a variable may follow `prefix` (the URL written so far): only once the host is
/// fixed — after `scheme://host/`, `?` or `#`, or in a relative or `mailto:`/`tel:` address.
fn url_var_allowed(prefix: &str) -> bool {
    let p = prefix.trim_start();
    if p.is_empty() {
        return false;
    }
    let lower = p.to_ascii_lowercase();
    if ["javascript:", "data:", "vbscript:"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        return false;
    }
    let rest = if let Some(i) = p.find("://") {
        &p[i + 3..]
    } else if let Some(r) = p.strip_prefix("//") {
        r
    } else {
        return true;
    };
    rest.contains(['/', '?', '#'])
}

/// Attributes whose value is a URL.
const URL_ATTRS: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "background",
    "cite",
    "poster",
    "srcset",
    "xlink:href",
    "longdesc",
    "usemap",
];

/// Where the HTML written so far leaves off (enough of HTML's tokenizer for emails).
#[derive(Debug, Default)]
enum HtmlState {
    #[default]
    Text,
    /// Inside a tag, not in an attribute value.
    Tag {
        name: String,
    },
    AttrName {
        tag: String,
        name: String,
    },
    BeforeValue {
        tag: String,
        name: String,
    },
    Value {
        tag: String,
        name: String,
        quote: Option<char>,
        so_far: String,
    },
    Comment,
    /// Inside `<script>` or `<style>` (until its end tag).
    Raw {
        tag: String,
    },
}

#[derive(Debug, Default)]
struct HtmlScan {
    state: HtmlState,
    /// The text since the last `<`, to spot tag names and comments.
    pending: String,
}

impl HtmlScan {
    fn feed(&mut self, s: &str) {
        for c in s.chars() {
            self.step(c);
        }
    }

    fn step(&mut self, c: char) {
        use HtmlState::*;
        let state = std::mem::take(&mut self.state);
        self.state = match state {
            Text => {
                if c == '<' {
                    self.pending.clear();
                    Tag {
                        name: String::new(),
                    }
                } else {
                    Text
                }
            }
            Comment => {
                self.pending.push(c);
                if self.pending.ends_with("-->") {
                    Text
                } else {
                    Comment
                }
            }
            Raw { tag } => {
                self.pending.push(c);
                let end = format!("</{tag}");
                if self.pending.to_ascii_lowercase().ends_with(&end) {
                    Tag {
                        name: String::new(),
                    }
                } else {
                    Raw { tag }
                }
            }
            Tag { mut name } => {
                self.pending.push(c);
                if name.is_empty()
                    && self.pending.len() == 1
                    && !(c.is_ascii_alphabetic() || c == '/' || c == '!')
                {
                    // "a < b" is text, not a tag.
                    self.pending.clear();
                    self.state = if c == '<' { Tag { name } } else { Text };
                    return;
                }
                if self.pending == "!--" {
                    self.pending.clear();
                    Comment
                } else if c == '>' {
                    self.after_tag(&name)
                } else if c.is_whitespace() || c == '/' {
                    if name.is_empty() {
                        Tag { name }
                    } else {
                        AttrName {
                            tag: name,
                            name: String::new(),
                        }
                    }
                } else {
                    name.push(c.to_ascii_lowercase());
                    Tag { name }
                }
            }
            AttrName { tag, mut name } => match c {
                '>' => self.after_tag(&tag),
                '=' if !name.is_empty() => BeforeValue { tag, name },
                c if c.is_whitespace() || c == '/' => AttrName {
                    tag,
                    name: String::new(),
                },
                c => {
                    name.push(c.to_ascii_lowercase());
                    AttrName { tag, name }
                }
            },
            BeforeValue { tag, name } => match c {
                '"' | '\'' => Value {
                    tag,
                    name,
                    quote: Some(c),
                    so_far: String::new(),
                },
                c if c.is_whitespace() => BeforeValue { tag, name },
                '>' => self.after_tag(&tag),
                c => Value {
                    tag,
                    name,
                    quote: None,
                    so_far: c.to_string(),
                },
            },
            Value {
                tag,
                name,
                quote,
                mut so_far,
            } => match (quote, c) {
                (Some(q), c) if c == q => AttrName {
                    tag,
                    name: String::new(),
                },
                (None, '>') => self.after_tag(&tag),
                (None, c) if c.is_whitespace() => AttrName {
                    tag,
                    name: String::new(),
                },
                (_, c) => {
                    so_far.push(c);
                    Value {
                        tag,
                        name,
                        quote,
                        so_far,
                    }
                }
            },
        };
    }

    fn after_tag(&mut self, tag: &str) -> HtmlState {
        self.pending.clear();
        if tag == "script" || tag == "style" {
            HtmlState::Raw {
                tag: tag.to_string(),
            }
        } else {
            HtmlState::Text
        }
    }

    /// How a variable here is escaped, or why it may not be here.
    fn var_out(&self) -> Result<Out, &'static str> {
        match &self.state {
            HtmlState::Text | HtmlState::Comment => Ok(Out::Html),
            HtmlState::Value {
                name,
                quote: Some(_),
                so_far,
                ..
            } => {
                if name == "style" || name.starts_with("on") {
                    Err("a variable cannot go inside a `style` or `on…` attribute: put it in the text")
                } else if URL_ATTRS.contains(&name.as_str()) {
                    if url_var_allowed(&html_unescape(so_far)) {
                        Ok(Out::UrlPart)
                    } else {
                        Err(URL_VAR_MESSAGE)
                    }
                } else {
                    Ok(Out::Html)
                }
            }
            HtmlState::Value { quote: None, .. } => {
                Err("a variable in an attribute value needs quotes around the value: name=\"…{{x}}…\"")
            }
            HtmlState::Raw { .. } => {
                Err("a variable cannot go inside <script> or <style>: put it in the text")
            }
            _ => Err("a variable cannot go inside a tag: put it in the text or in a quoted attribute value"),
        }
    }
}

/// Decodes the entities [`html_escape`] writes, and numeric ones.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &after[..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                    .ok()
                    .and_then(char::from_u32),
                n if n.starts_with('#') => n[1..].parse().ok().and_then(char::from_u32),
                _ => None,
            }?;
            Some((c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &after[e + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod escape_tests {
    use super::*;

    const EVIL: &str = r#"<a href="https://evil.example/login">Bấm vào đây</a>"#;

    fn evil() -> Contact {
        let mut c = Contact {
            user_id: "7".into(),
            display_name: Some(EVIL.into()),
            ..Contact::default()
        };
        c.fields.insert("ref".into(), "a b&c=d/../?x#y".into());
        c
    }

    #[test]
    fn html_values_are_text_and_links_stay_the_rules() {
        let t = Template::parse_as("<p>Chào {{display_name}}</p>", Escape::Html).unwrap();
        let out = t.render(&evil());
        assert_eq!(
            out,
            "<p>Chào &lt;a href=&quot;https://evil.example/login&quot;&gt;Bấm vào đây&lt;/a&gt;</p>"
        );
        assert!(!out.contains("<a"), "{out}");
        let t = Template::parse_as(
            r#"<a title="{{display_name}}" href="https://shop.vn/p?ref={{field.ref}}">x</a>"#,
            Escape::Html,
        )
        .unwrap();
        let out = t.render(&evil());
        assert!(
            out.contains(r#"href="https://shop.vn/p?ref=a%20b%26c%3Dd%2F..%2F%3Fx%23y""#),
            "{out}"
        );
        assert!(out.contains("title=\"&lt;a href=&quot;https"), "{out}");
        // The same text as plain stays as typed (SMS, Zalo).
        let t = Template::parse("Chào {{display_name}}").unwrap();
        assert_eq!(t.render(&evil()), format!("Chào {EVIL}"));
        // Slack-style chat: the markup characters are escaped.
        let t = Template::parse_as("Đăng ký: {{display_name}}", Escape::Chat).unwrap();
        let out = t.render(&evil());
        assert!(!out.contains('<') && out.contains("&lt;a href="), "{out}");
    }

    #[test]
    fn variables_that_would_decide_a_link_are_refused() {
        for bad in [
            r#"<a href="{{field.web}}">x</a>"#,
            r#"<a href="https://{{field.host}}/p">x</a>"#,
            r#"<a href="https://shop.vn{{field.x}}">x</a>"#,
            r#"<img src='{{field.img}}'>"#,
            r#"<a href={{field.x}}>x</a>"#,
            r#"<p {{field.x}}>x</p>"#,
            r#"<p style="color: {{field.x}}">x</p>"#,
            r#"<p onclick="{{field.x}}">x</p>"#,
            r#"<style>p { color: {{field.x}} }</style>"#,
            r#"<a href="javascript:{{field.x}}">x</a>"#,
        ] {
            let e = Template::parse_as(bad, Escape::Html).unwrap_err();
            assert_eq!(e.nth, 0, "{bad}");
        }
        for good in [
            r#"<a href="https://shop.vn/p/{{field.x}}">x</a>"#,
            r#"<a href="https://shop.vn?x={{field.x}}">x</a>"#,
            r#"<a href="mailto:shop@x.vn?subject={{display_name}}">x</a>"#,
            r#"<!-- {{display_name}} --><p class="a">{{display_name}}</p>"#,
            r#"<style>p{}</style><p>{{display_name}}</p>"#,
            r#"<p>1 < 2 {{display_name}} > 0</p>"#,
        ] {
            assert!(Template::parse_as(good, Escape::Html).is_ok(), "{good}");
        }
        assert!(Template::parse_as("{{field.url}}", Escape::Url).is_err());
        assert!(Template::parse_as("https://{{field.x}}.vn/", Escape::Url).is_err());
        let t = Template::parse_as("https://shop.vn/u/{{user_id}}", Escape::Url).unwrap();
        assert_eq!(t.render(&evil()), "https://shop.vn/u/7");
        let e = Template::parse_as(
            "<p>{{display_name}}</p><a href=\"{{email}}\">",
            Escape::Html,
        )
        .unwrap_err();
        assert_eq!((e.nth, e.offset), (1, 32));
    }

    #[test]
    fn handoff_notices_show_names_and_messages_as_text() {
        let w = crate::handoff::who(
            crate::i18n::Lang::Vi,
            "42",
            Some("<https://evil.example|Bấm vào đây>"),
            None,
        );
        assert_eq!(w, "&lt;https://evil.example|Bấm vào đây&gt; (42)");
        assert_eq!(escape_chat("a & <b>"), "a &amp; &lt;b&gt;");
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            html_unescape("a &lt;b&gt; &amp;amp; &#39;&#x41; &bogus; & x"),
            "a <b> &amp; 'A &bogus; & x"
        );
    }
}

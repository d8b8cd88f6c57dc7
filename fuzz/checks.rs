//! What each fuzz target checks, written once: the targets in `fuzz_targets/` run these on the
//! fuzzer's inputs, `tests/fuzz_regressions.rs` on the seed corpus and every crash input.
#![allow(dead_code)] // each target uses one of them

use zaloflow::rules::template::Template;
use zaloflow::rules::{load_sources, yaml, LoadOptions};
use zaloflow::store::Contact;
use zaloflow::zalo::{event, signature};

/// The webhook's path from raw bytes: the signature check (header and body arbitrary), the
/// parser and normaliser, the dedupe key. Nothing may panic; a parsed event must have a name
/// and a dedupe key. The first line (if any) is the signature header, the rest the body.
pub fn webhook(data: &[u8]) {
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let _ = signature::parse_header(header);
    let _ = signature::verify("1234567890", "key", body, "1700000000000", header);
    if let Ok(ev) = event::parse(body) {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert!(!event::dedupe_key(&ev, &v).is_empty());
        let _ = ev.user_id();
        let _ = ev.kind.is_user_interaction();
        if let Some((name, internal)) = event::internal_body(&ev.kind, ev.timestamp_ms.unwrap_or(0))
        {
            assert!(event::is_internal_name(name));
            let _ = event::parse(internal.as_bytes());
        }
    }
}

/// The rule loader and checker on arbitrary text: a rule set or diagnostics, never a panic;
/// every diagnostic points inside the file.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = yaml::parse(text);
    let files = vec![("fuzz.yaml".into(), text.to_string())];
    if let Err(diags) = load_sources(&files, &LoadOptions::default()) {
        assert!(!diags.is_empty());
        // YAML's line breaks: \r\n, \n and a lone \r
        let lines = text
            .replace("\r\n", "\n")
            .split(['\n', '\r'])
            .count()
            .max(1);
        for d in &diags {
            let shown = d.to_string();
            assert!(shown.starts_with("fuzz.yaml:"), "{shown}");
            assert!(
                d.pos.line >= 1 && d.pos.line as usize <= lines + 1,
                "{shown} (of {lines} lines)"
            );
        }
    }
}

/// The template renderer: a template that parses renders for any contact without panicking,
/// and literal text renders as written. Input: the template, then NUL-separated values of the
/// contact's name, phone, email and a field / tag.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (src, values) = text.split_once('\0').unwrap_or((text, "Lan\0"));
    let mut parts = values.split('\0');
    let mut contact = Contact {
        user_id: "123".into(),
        display_name: parts.next().map(str::to_string),
        phone: parts.next().map(str::to_string),
        email: parts.next().map(str::to_string),
        ..Contact::default()
    };
    if let Some(v) = parts.next() {
        contact.fields.insert("gift".into(), v.into());
        contact.tags.insert(v.into());
    }
    if let Ok(t) = Template::parse(src) {
        let out = t.render(&contact);
        let _ = t.render(&Contact::default());
        if !src.contains("{{") {
            assert_eq!(out, src, "literal text must render as written");
        }
    }
    // In an email's HTML, values add no markup: no `<` or `"` beyond those the text has.
    if let Ok(t) = Template::parse_as(src, zaloflow::rules::template::Escape::Html) {
        let out = t.render(&contact);
        for c in ['<', '>', '"', '\''] {
            assert!(
                out.matches(c).count() <= src.matches(c).count(),
                "a value added {c:?}: {src:?} -> {out:?}"
            );
        }
    }
}

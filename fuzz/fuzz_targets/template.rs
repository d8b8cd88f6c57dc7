//! The template renderer: parse arbitrary text; a template that parses renders for any contact
//! without panicking and never leaves a `{{` it understood.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zaloflow::rules::template::Template;
use zaloflow::store::Contact;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // template, then a NUL and the values of the contact's fields
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
});

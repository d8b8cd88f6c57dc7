//! The webhook's path from raw bytes: the signature check (header and body arbitrary), the
//! parser and normaliser, the dedupe key. Nothing may panic; a parsed event must have a name
//! and a dedupe key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zaloflow::zalo::{event, signature};

fuzz_target!(|data: &[u8]| {
    // The first line (if any) is the signature header, the rest the body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    let _ = signature::parse_header(header);
    let _ = signature::verify("1234567890", "key", body, "1700000000000", header);
    if let Ok(ev) = event::parse(body) {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let key = event::dedupe_key(&ev, &v);
        assert!(!key.is_empty());
        let _ = ev.user_id();
        let _ = ev.kind.is_user_interaction();
        if let Some((name, internal)) = event::internal_body(&ev.kind, ev.timestamp_ms.unwrap_or(0))
        {
            assert!(event::is_internal_name(name));
            let _ = event::parse(internal.as_bytes());
        }
    }
});

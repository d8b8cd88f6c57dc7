//! The webhook's path from raw bytes: the signature check (header and body arbitrary), the
//! parser and normaliser, the dedupe key. Nothing may panic; a parsed event must have a name
//! and a dedupe key.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::webhook(data));

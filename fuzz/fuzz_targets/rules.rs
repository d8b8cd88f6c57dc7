//! The rule loader and checker on arbitrary text: a rule set or diagnostics, never a panic;
//! every diagnostic points inside the file.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::rules(data));

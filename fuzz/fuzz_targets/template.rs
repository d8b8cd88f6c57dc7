//! The template renderer: parse arbitrary text; a template that parses renders for any contact
//! without panicking and never leaves a `{{` it understood.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::template(data));

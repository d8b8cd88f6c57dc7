//! The rule loader and checker on arbitrary text: a rule set or diagnostics, never a panic;
//! every diagnostic points inside the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zaloflow::rules::{load_sources, yaml, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = yaml::parse(text);
    let files = vec![("fuzz.yaml".into(), text.to_string())];
    match load_sources(&files, &LoadOptions::default()) {
        Ok(_) => {}
        Err(diags) => {
            assert!(!diags.is_empty());
            // YAML's line breaks: \r\n, \n and a lone \r
            let lines = text.replace("\r\n", "\n").split(['\n', '\r']).count().max(1);
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
});

//! The staff's Vietnamese guide (`rules/HUONG_DAN.md`, issue 30: a shop's staff can write the
//! seed's three strategies and the common tags from the Vietnamese docs alone): every rule it
//! shows loads as written, beside the shipped tag list, and the words it names exist.

use std::path::{Path, PathBuf};

use zaloflow::rules::{load_sources, LoadOptions};

fn guide() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/HUONG_DAN.md"))
        .unwrap()
}

/// The guide's YAML blocks that are rules: a whole file (`rules:`, `tags:`) or rule items
/// (`  - id:`), the latter put under `rules:`.
fn rule_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("```yaml\n") {
        let body = &rest[i + 8..];
        let end = body.find("```").unwrap();
        let block = &body[..end];
        let first = block.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if first.starts_with("rules:") {
            out.push(block.to_string());
        } else if first.starts_with("  - id:") {
            out.push(format!("rules:\n{block}"));
        }
        rest = &body[end + 3..];
    }
    out
}

#[test]
fn every_rule_in_the_vietnamese_guide_loads() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let tags = std::fs::read_to_string(shipped.join("tags.yaml")).unwrap();
    let blocks = rule_blocks(&guide());
    assert!(
        blocks.len() >= 4,
        "the guide shows the greeting, both re-activation stages and VIP care: {blocks:#?}"
    );
    for (n, block) in blocks.iter().enumerate() {
        let files = vec![
            (shipped.join("tags.yaml"), tags.clone()),
            (PathBuf::from(format!("huong_dan_{n}.yaml")), block.clone()),
        ];
        let opts = LoadOptions {
            extra_chat_channels: vec!["agents".into()],
            ..Default::default()
        };
        if let Err(d) = load_sources(&files, &opts) {
            panic!("the guide's rule does not load:\n{block}\n{d:#?}");
        }
    }
}

#[test]
fn the_guide_names_only_words_the_rules_know() {
    let text = guide();
    for word in [
        "message",
        "follow",
        "chat_now",
        "tag_added",
        "inactive",
        "special_day",
        "schedule",
    ] {
        assert!(zaloflow::rules::load::TRIGGERS.contains(&word), "{word}");
        assert!(text.contains(&format!("`{word}")), "{word} is in the guide");
    }
}

//! One screen, one language (issue 30): a helper any test can call on what it rendered.
//!
//! ```ignore
//! #[path = "common/i18n.rs"]
//! mod i18n_check;
//! i18n_check::assert_one_language(&stdout, Lang::Vi);
//! ```
//!
//! A screen in `lang` must hold no fixed fragment of the other language's catalogue
//! (`locales/*.yml`): each of its texts split at the `%{…}` placeholders, the pieces of at least
//! two words. A piece the screen's own catalogue also holds (a setting's name, `ZALO_APP_ID,
//! ZALO_APP_SECRET`…) says nothing about the language and is left out.
#![allow(dead_code)]

use zaloflow::i18n::{messages, Lang};

/// The pieces of a catalogue text between its `%{…}` placeholders, trimmed.
pub fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        match rest.find("%{") {
            Some(start) => {
                out.push(rest[..start].trim().to_string());
                rest = match rest[start..].find('}') {
                    Some(end) => &rest[start + end + 1..],
                    None => "",
                };
            }
            None => {
                out.push(rest.trim().to_string());
                return out.into_iter().filter(|p| !p.is_empty()).collect();
            }
        }
    }
}

/// How many words a piece has (runs of characters holding at least one letter).
fn words(piece: &str) -> usize {
    piece
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphabetic))
        .count()
}

/// The fixed fragments of `lang`'s catalogue that tell it from the other language: every
/// piece of at least two words that no text of the other language holds.
pub fn fragments(lang: Lang) -> Vec<(String, String)> {
    let others: Vec<String> = messages(lang.other()).into_iter().map(|(_, t)| t).collect();
    let mut out: Vec<(String, String)> = messages(lang)
        .into_iter()
        .flat_map(|(key, text)| {
            pieces(&text)
                .into_iter()
                .map(move |p| (key.clone(), p))
                .collect::<Vec<_>>()
        })
        .filter(|(_, p)| words(p) >= 2 && !others.iter().any(|t| t.contains(p.as_str())))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The other language's fixed fragments found in `screen` (key, fragment).
pub fn foreign_fragments(screen: &str, lang: Lang) -> Vec<(String, String)> {
    fragments(lang.other())
        .into_iter()
        .filter(|(_, p)| screen.contains(p.as_str()))
        .collect()
}

/// Fails when `screen`, shown in `lang`, holds a fixed fragment of the other language.
#[track_caller]
pub fn assert_one_language(screen: &str, lang: Lang) {
    let found = foreign_fragments(screen, lang);
    assert!(
        found.is_empty(),
        "a screen in {lang} holds words of {}: {found:#?}\n--- the screen ---\n{screen}",
        lang.other()
    );
}

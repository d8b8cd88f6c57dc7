//! The catalogue of staff-facing words (`locales/*.yml`, issue 30): every key holds both
//! languages with the same placeholders, and the mixing check (`common/i18n.rs`) can say no.
//! The screens' own checks are with their tests (`rules check`: tests/rules_vi.rs).

#[path = "common/i18n.rs"]
mod i18n_check;

use std::collections::BTreeSet;

use zaloflow::i18n::{has, messages, Lang};

/// The names of a text's `%{…}` placeholders.
fn placeholders(text: &str) -> BTreeSet<String> {
    text.split("%{")
        .skip(1)
        .filter_map(|s| s.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn every_key_has_both_languages_with_the_same_placeholders() {
    let vi = messages(Lang::Vi);
    let en = messages(Lang::En);
    assert!(!vi.is_empty() && !en.is_empty(), "the catalogue is empty");
    let vi_keys: BTreeSet<&str> = vi.iter().map(|(k, _)| k.as_str()).collect();
    let en_keys: BTreeSet<&str> = en.iter().map(|(k, _)| k.as_str()).collect();
    let only_vi: Vec<_> = vi_keys.difference(&en_keys).collect();
    let only_en: Vec<_> = en_keys.difference(&vi_keys).collect();
    assert!(only_vi.is_empty(), "keys without `en`: {only_vi:?}");
    assert!(only_en.is_empty(), "keys without `vi`: {only_en:?}");
    // The Vietnamese names the URL where the English gives the SSRF guard's own (English)
    // reason.
    const MAY_DIFFER: &[&str] = &["rules.load.internal_url"];
    for ((key, v), (_, e)) in vi.iter().zip(&en) {
        assert!(has(Lang::Vi, key) && has(Lang::En, key), "{key}");
        assert!(
            !v.trim().is_empty() && !e.trim().is_empty(),
            "{key}: an empty text"
        );
        if MAY_DIFFER.contains(&key.as_str()) {
            continue;
        }
        assert_eq!(
            placeholders(v),
            placeholders(e),
            "{key}: the two languages fill different placeholders\n  vi: {v}\n  en: {e}"
        );
    }
}

#[test]
fn the_rules_words_are_in_the_catalogue() {
    let keys: Vec<String> = messages(Lang::Vi).into_iter().map(|(k, _)| k).collect();
    for k in [
        "rules.check.ok",
        "rules.load.unknown_trigger",
        "rules.yaml.hint_colon",
        "rules.hygiene.unlimited",
        "rules.findings.cannot_run",
    ] {
        assert!(keys.iter().any(|x| x == k), "{k} missing");
    }
}

#[test]
fn the_mixing_check_says_no() {
    // Both catalogues have fragments to look for.
    assert!(i18n_check::fragments(Lang::Vi).len() > 50);
    assert!(i18n_check::fragments(Lang::En).len() > 50);
    // A piece is what lies between placeholders.
    assert_eq!(
        i18n_check::pieces("unknown trigger `%{name}`: %{hint}(known: %{known})"),
        vec!["unknown trigger `", "`:", "(known:", ")"]
    );
    // An English sentence on a Vietnamese screen is found, and the reverse.
    let vi = "a.yaml, dòng 3, cột 11: không có sự kiện `mesage`: did you mean `message`? ";
    let found = i18n_check::foreign_fragments(vi, Lang::Vi);
    assert!(
        found.iter().any(|(k, _)| k == "rules.load.did_you_mean"),
        "{found:?}"
    );
    let en = "a.yaml:3:11: unknown trigger `mesage`: có phải ý bạn là `message`? ";
    assert!(!i18n_check::foreign_fragments(en, Lang::En).is_empty());
    // Names both languages share (settings, rule words) are not a language.
    i18n_check::assert_one_language("ZALO_APP_ID, ZALO_APP_SECRET, ZALO_ACCESS_TOKEN", Lang::Vi);
    i18n_check::assert_one_language("`once_per: period`", Lang::En);
}

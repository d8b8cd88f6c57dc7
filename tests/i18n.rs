//! The catalogue of staff-facing words (`locales/*.yml`, issue 30) and the reusable mixing
//! check (`common/i18n.rs`): it can say no. That every key holds both languages with the same
//! placeholders is tests/staff_language.rs's; the screens' own checks are with their tests
//! (`rules check`: tests/rules_vi.rs).

#[path = "common/i18n.rs"]
mod i18n_check;

use zaloflow::i18n::{messages, Lang};

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

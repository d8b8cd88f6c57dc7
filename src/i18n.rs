//! The language of staff-facing words: `rules check`, the board, the report page, tick
//! summaries, the fixed parts of chat notices (`ZALOFLOW_LANG`, Vietnamese by default).
//!
//! The words live in `locales/*.yml` (rust-i18n's format 2: each key holds its `vi` and `en`
//! side by side) and are compiled into the binary. Code asks for a key in an explicit
//! [`Lang`] — never the process-wide locale — so two shops' settings, or two tests in one
//! process, cannot see each other's language:
//!
//! ```ignore
//! let s = crate::i18n::tr(lang, "board.title");
//! let s = rust_i18n::t!("tick.sent", locale = lang.code(), n = 3);
//! ```
//!
//! `tests/i18n.rs` holds every key to both languages and checks that no screen mixes them.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

/// A language staff read zaloflow in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Lang {
    /// Tiếng Việt: the default.
    #[default]
    Vi,
    /// English.
    En,
}

impl Lang {
    /// Every language, in the order the catalogue lists them.
    pub const ALL: [Lang; 2] = [Lang::Vi, Lang::En];

    /// The locale code of the catalogue (`vi`, `en`).
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    /// The other language (for tests that check a screen does not mix the two).
    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Lang {
    type Err = String;
    fn from_str(s: &str) -> Result<Lang, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vi" | "vi-vn" | "vietnamese" | "tiếng việt" | "tieng viet" => Ok(Lang::Vi),
            "en" | "en-us" | "en-gb" | "english" => Ok(Lang::En),
            other => Err(format!(
                "{other:?} is not a language zaloflow speaks: use vi (Tiếng Việt) or en (English)"
            )),
        }
    }
}

/// The text of `key` in `lang`, without arguments (the key itself when the catalogue lacks it).
pub fn tr(lang: Lang, key: &str) -> Cow<'_, str> {
    rust_i18n::t!(key, locale = lang.code())
}

/// `key`'s text in `lang` with each `%{name}` replaced by its value (values are put in as
/// they are: escape what a customer or a provider wrote before it goes into markup).
/// Each placeholder is filled once, from the text of the catalogue: a value that holds
/// `%{…}` itself (a rule's message) is left as it is.
pub fn words(lang: Lang, key: &str, args: &[(&str, String)]) -> String {
    let text = tr(lang, key);
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(start) = rest.find("%{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match args.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 1]),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The catalogue's text of `key` in `lang` when the catalogue has it in that language (tests
/// and the completeness check; `tr` falls back to English).
pub fn has(lang: Lang, key: &str) -> bool {
    crate::_rust_i18n_try_translate(lang.code(), key).is_some()
}

/// Every key of the catalogue with its text, in `lang` (tests: completeness, mixing).
pub fn messages(lang: Lang) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = crate::_rust_i18n_backend()
        .messages_for_locale(lang.code())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    m.sort();
    m
}

/// A weekday's name (Monday = 0).
pub fn weekday(lang: Lang, monday_based: usize) -> Cow<'static, str> {
    const KEYS: [&str; 7] = [
        "common.weekday.mon",
        "common.weekday.tue",
        "common.weekday.wed",
        "common.weekday.thu",
        "common.weekday.fri",
        "common.weekday.sat",
        "common.weekday.sun",
    ];
    tr(lang, KEYS[monday_based % 7])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_defaults_to_vietnamese() {
        assert_eq!(Lang::default(), Lang::Vi);
        assert_eq!("VI".parse::<Lang>(), Ok(Lang::Vi));
        assert_eq!("en".parse::<Lang>(), Ok(Lang::En));
        assert!("fr"
            .parse::<Lang>()
            .unwrap_err()
            .contains("vi (Tiếng Việt)"));
    }

    #[test]
    fn words_fill_each_placeholder_once() {
        // A value holding a placeholder of its own (a rule's text) is not filled again.
        let s = words(
            Lang::En,
            "simulate.send_via",
            &[("text", "\"giảm %{via}\"".into()), ("via", "sms".into())],
        );
        assert_eq!(s, "send via sms: \"giảm %{via}\"");
        // A placeholder without a value is left for the reader to see.
        assert_eq!(
            words(Lang::En, "simulate.send_via", &[]),
            "send via %{via}: %{text}"
        );
    }

    #[test]
    fn weekday_names_follow_the_language() {
        assert_eq!(weekday(Lang::Vi, 0), "Thứ Hai");
        assert_eq!(weekday(Lang::En, 6), "Sunday");
    }
}

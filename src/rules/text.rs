//! How rules look for words in what customers write, made for Vietnamese.
//!
//! Both sides — the keyword in the rule file and the customer's message — are folded the same
//! way before they are compared: Unicode composed form (a phone may send `á` as one character
//! or as `a` plus a combining accent), lower case, and every run of spaces as one space. With
//! [`Accents::Optional`] the diacritics are taken off too (`giá` → `gia`, `đ` → `d`), so
//! "gia bao nhieu" and "giá bao nhiêu" are the same text.
//!
//! [`contains_word`] finds a keyword only as whole words: `giá` is found in "Giá bao nhiêu?"
//! but not in "Chúc shop Giáng sinh" (a longer word) — a keyword of several words must appear
//! as those words in a row. [`str::contains`] on folded text is the substring search of
//! `contains_text`.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Whether diacritics must match (`dấu` required, the default) or may be left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Accents {
    #[default]
    Required,
    Optional,
}

/// The folded form of `s`: composed (NFC), lower-cased, spaces collapsed, trimmed; with
/// [`Accents::Optional`] also without diacritics.
pub fn fold(s: &str, accents: Accents) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let mut push = |c: char, out: &mut String| {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else {
            if space {
                out.push(' ');
                space = false;
            }
            out.extend(c.to_lowercase());
        }
    };
    match accents {
        Accents::Required => s.nfc().for_each(|c| push(c, &mut out)),
        Accents::Optional => s
            .nfd()
            .filter(|c| !is_combining_mark(*c))
            .map(|c| match c {
                'đ' => 'd',
                'Đ' => 'D',
                c => c,
            })
            .for_each(|c| push(c, &mut out)),
    }
    out
}

/// Whether a character is part of a word (letters and digits, in any script).
fn is_word(c: char) -> bool {
    c.is_alphanumeric()
}

/// Whether folded `keyword` stands in folded `text` as whole words: not preceded or followed
/// by a letter or digit. A keyword that starts or ends with punctuation (`50%`, `?`) needs no
/// boundary on that side.
pub fn contains_word(text: &str, keyword: &str) -> bool {
    if keyword.is_empty() {
        return false;
    }
    let starts_word = keyword.chars().next().is_some_and(is_word);
    let ends_word = keyword.chars().next_back().is_some_and(is_word);
    let mut from = 0;
    while let Some(i) = text[from..].find(keyword) {
        let at = from + i;
        let end = at + keyword.len();
        let before_ok = !starts_word || !text[..at].chars().next_back().is_some_and(is_word);
        let after_ok = !ends_word || !text[end..].chars().next().is_some_and(is_word);
        if before_ok && after_ok {
            return true;
        }
        // The next candidate starts after this one's first character.
        from = at + text[at..].chars().next().map_or(1, char::len_utf8);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str, kw: &str, a: Accents) -> bool {
        contains_word(&fold(text, a), &fold(kw, a))
    }

    #[test]
    fn whole_words_only() {
        let r = Accents::Required;
        assert!(word("Giá bao nhiêu?", "giá", r));
        assert!(word("cho mình hỏi GIÁ", "giá", r));
        assert!(!word("Chúc shop Giáng sinh vui vẻ!", "giá", r));
        assert!(word("áo này giá bao nhiêu vậy", "giá bao nhiêu", r));
        assert!(!word("áo này giá rẻ bao nhiêu", "giá bao nhiêu", r));
        assert!(!word("giábao", "giá", r));
        assert!(word("giảm 50% à", "50%", r));
        assert!(!word("", "giá", r));
        assert!(!word("giá", "", r));
    }

    #[test]
    fn accents_required_tells_words_apart() {
        let r = Accents::Required;
        assert!(!word("gia bao nhieu", "giá bao nhiêu", r));
        assert!(!word("già rồi", "giá", r));
    }

    #[test]
    fn accents_optional_matches_both_spellings() {
        let o = Accents::Optional;
        assert!(word("gia bao nhieu", "giá bao nhiêu", o));
        assert!(word("Giá bao nhiêu", "gia bao nhieu", o));
        assert!(word("ĐỊA CHỈ shop ở đâu", "dia chi", o));
        assert!(!word("Giáng sinh", "gia", o));
    }

    #[test]
    fn composed_and_decomposed_are_the_same_text() {
        // "giá" typed as g, i, a + U+0301 (a phone keyboard sending decomposed accents).
        let decomposed = "gia\u{301} bao nhiêu";
        assert!(word(decomposed, "giá", Accents::Required));
        assert_eq!(fold(decomposed, Accents::Required), "giá bao nhiêu");
    }

    #[test]
    fn spaces_fold_to_one() {
        assert_eq!(
            fold("  Giá \n\t bao   nhiêu ", Accents::Required),
            "giá bao nhiêu"
        );
        assert!(word("giá    bao nhiêu", "giá bao nhiêu", Accents::Required));
    }
}

//! Staff read zaloflow in Vietnamese by default and in English with `ZALOFLOW_LANG=en` (issue
//! 30): the board, the report page and `zaloflow report`, the tick's summary and the team-chat
//! notices of a handoff (with working hours, whose weekday names follow the language). Each
//! screen is rendered by the running service over real HTTP and checked to hold none of the
//! other language's fixed words, on SQLite and PostgreSQL.

mod common;
mod sched;

use sched::*;
use zaloflow::i18n::{self, Lang};

const TOKEN: &str = "staff-language-admin-token";

const RULES: &str = r#"
rules:
  - id: chao
    when: message
    do:
      - send: Chào {{display_name | "bạn"}}, shop đã nhận tin nhắn ạ!
  - id: ho_tro
    when: message
    do:
      - handoff:
          team: agents
          deadline: 2h
          priority: high
          note: Khách hỏi giá
"#;

/// The fixed fragments of the other language's catalogue that must not appear on a screen in
/// `lang`: each text of a key whose two languages differ, split at its `%{…}` placeholders,
/// keeping the pieces of at least two words that this language's catalogue does not also use.
fn foreign_fragments(lang: Lang) -> Vec<(String, String)> {
    let mine: Vec<String> = i18n::messages(lang).into_iter().map(|(_, v)| v).collect();
    let mine_by_key: std::collections::BTreeMap<String, String> =
        i18n::messages(lang).into_iter().collect();
    let mut out = Vec::new();
    for (key, text) in i18n::messages(lang.other()) {
        if mine_by_key.get(&key) == Some(&text) {
            continue;
        }
        let mut rest = text.as_str();
        let mut pieces = Vec::new();
        while let Some(i) = rest.find("%{") {
            pieces.push(&rest[..i]);
            rest = rest[i..].split_once('}').map_or("", |(_, r)| r);
        }
        pieces.push(rest);
        for p in pieces {
            let p = p.trim_matches(|c: char| c.is_whitespace() || ",.;:()“”\"".contains(c));
            if p.split_whitespace().count() < 2 || mine.iter().any(|m| m.contains(p)) {
                continue;
            }
            out.push((key.clone(), p.to_string()));
        }
    }
    out
}

/// Fails when `screen` (in `lang`) holds a fixed fragment of the other language.
fn assert_one_language(what: &str, screen: &str, lang: Lang) {
    let text = screen.replace("&#39;", "'").replace("&quot;", "\"");
    let mixed: Vec<String> = foreign_fragments(lang)
        .into_iter()
        .filter(|(_, p)| text.contains(p.as_str()))
        .map(|(k, p)| format!("{k}: {p:?}"))
        .collect();
    assert!(
        mixed.is_empty(),
        "{what} in {lang} holds {} words:\n{}\n--- screen ---\n{screen}",
        lang.other(),
        mixed.join("\n")
    );
}

#[test]
fn every_key_has_both_languages_and_the_same_placeholders() {
    let vi = i18n::messages(Lang::Vi);
    let en = i18n::messages(Lang::En);
    let keys = |m: &[(String, String)]| m.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&vi), keys(&en), "a key lacks one language");
    assert!(vi.len() > 100, "the catalogue is loaded: {}", vi.len());
    let holes = |s: &str| {
        let mut h: Vec<String> = s
            .match_indices("%{")
            .map(|(i, _)| s[i..].split('}').next().unwrap_or("").to_string())
            .collect();
        h.sort();
        h
    };
    for ((k, v), (_, e)) in vi.iter().zip(&en) {
        assert_eq!(holes(v), holes(e), "{k}: {v:?} vs {e:?}");
        assert!(!v.trim().is_empty() && !e.trim().is_empty(), "{k} is empty");
    }
}

#[test]
fn the_checker_catches_a_mixed_screen() {
    // The check itself can fail: an English summary line on a Vietnamese screen.
    let screen = "lượt chạy lúc 2027-03-01 09:00\n  nothing was due\n";
    let caught = std::panic::catch_unwind(|| assert_one_language("x", screen, Lang::Vi));
    assert!(caught.is_err());
    assert_one_language(
        "x",
        "lượt chạy lúc 2027-03-01 09:00\n  không có gì đến hạn\n",
        Lang::Vi,
    );
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(every_staff_screen_speaks_one_language);

/// The same shop in each language: a customer writes (a greeting and a handoff with its
/// notice), the tick delivers; then the board, the report page, `zaloflow report`, the
/// tick's summary and the chat notice are each in that language only.
async fn every_staff_screen_speaks_one_language(kind: &str) {
    for lang in Lang::ALL {
        let mut settings = vec![
            ("ZALOFLOW_ADMIN_TOKEN", TOKEN),
            ("ZALOFLOW_WORKING_HOURS", "08:00-17:00 mon-fri"),
        ];
        if lang == Lang::En {
            settings.push(("ZALOFLOW_LANG", "en"));
        }
        let mut s = shop_settings(kind, Rules::Yaml(RULES), false, &settings).await;
        assert_eq!(s.config.lang, lang);
        // Monday 2027-03-01 09:00 in Hà Nội.
        let t0 = chrono::TimeZone::with_ymd_and_hms(&TZ, 2027, 3, 1, 9, 0, 0)
            .unwrap()
            .timestamp_millis();
        s.event(message("u-lan", "m1", t0)).await;

        // The tick, deciding in the shop's language (the engine of its configuration).
        let engine = std::sync::Arc::new(
            zaloflow::engine::Engine::with_rule_set(s.engine.rule_set(), TZ)
                .with_handoff_policy(s.config.handoff_policy()),
        );
        let ctx = s
            .context(t0 + MINUTE, "test/lang")
            .await
            .with_engine(engine);
        let tick = zaloflow::scheduler::tick(&ctx, t0 + MINUTE).await.unwrap();
        let summary = tick.to_string();
        let want = match lang {
            Lang::Vi => "đã giao: ",
            Lang::En => "delivered: ",
        };
        assert!(summary.contains(want), "{summary}");
        assert_one_language("the tick's summary", &summary, lang);

        // The handoff's notice in the team chat: fixed words and weekday names.
        let notices: Vec<String> = s
            .sink
            .requests()
            .into_iter()
            .filter(|r| r.path == "/chat" || r.path == "/agents")
            .map(|r| r.raw_body)
            .collect();
        let notice = notices.join("\n");
        let (head, days) = match lang {
            Lang::Vi => ("Khách cần hỗ trợ", "T2–T6"),
            Lang::En => ("Customer needs help", "Mon–Fri"),
        };
        assert!(
            notice.contains(head) && notice.contains(days),
            "{notice}\n{summary}"
        );
        assert_one_language("the chat notice", &notice, lang);

        // The board.
        let board = common::client()
            .get(format!("{}/admin/board", s.app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(board.status(), 200);
        let board = board.text().await.unwrap();
        assert!(
            board.contains(&format!("<html lang=\"{lang}\">")),
            "{board}"
        );
        let title = i18n::tr(lang, "board.title");
        assert!(board.contains(title.as_ref()), "{board}");
        assert_one_language("the board", &board, lang);

        // The report page and the CLI's report.
        let page = common::client()
            .get(format!("{}/admin/report.html", s.app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("data-series=\"came_back\""), "{page}");
        assert!(
            page.contains("id=\"columns\""),
            "the columns are explained: {page}"
        );
        assert_one_language("the report page", &page, lang);
        let text = zaloflow::report::command(&s.store, TZ, lang, None, None)
            .await
            .unwrap();
        assert!(text.contains("chao"), "{text}");
        assert_one_language("zaloflow report", &text, lang);
        s.stop().await;
    }
}

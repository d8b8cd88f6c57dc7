//! Staff read zaloflow in Vietnamese by default and in English with `ZALOFLOW_LANG=en` (issue
//! 30): the board, the report page and `zaloflow report`, the OA connect page, the tick's
//! summary and the team-chat notices of a handoff (with working hours, whose weekday names
//! follow the language). Each
//! screen is rendered by the running service over real HTTP and checked to hold none of the
//! other language's fixed words, on SQLite and PostgreSQL.

mod common;
#[path = "common/i18n.rs"]
mod i18n_check;
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

/// Fails when `screen` (in `lang`) holds a fixed fragment of the other language
/// (`tests/common/i18n.rs`; `tests/i18n.rs` shows it catches a mixed screen).
fn assert_one_language(what: &str, screen: &str, lang: Lang) {
    let text = screen.replace("&#39;", "'").replace("&quot;", "\"");
    let mixed = i18n_check::foreign_fragments(&text, lang);
    assert!(
        mixed.is_empty(),
        "{what} in {lang} holds {} words: {mixed:?}\n--- screen ---\n{screen}",
        lang.other()
    );
}

/// A staff page of the running service, read with the admin token: (status, body).
async fn staff_page(base: &str, path: &str) -> (u16, String) {
    let r = common::client()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// A staff page read without a session: its sign-in form (401), holding `key`'s words and
/// none of the other language's.
async fn signin_page(base: &str, path: &str, lang: Lang, key: &str) {
    let r = common::client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "{path}");
    let page = r.text().await.unwrap();
    assert!(page.contains(i18n::tr(lang, key).as_ref()), "{page}");
    assert_one_language(&format!("the sign-in page of {path}"), &page, lang);
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
        let (status, board) = staff_page(&s.app.base, "/admin/board").await;
        assert_eq!(status, 200);
        assert!(
            board.contains(&format!("<html lang=\"{lang}\">")),
            "{board}"
        );
        let title = i18n::tr(lang, "board.title");
        assert!(board.contains(title.as_ref()), "{board}");
        assert_one_language("the board", &board, lang);
        // The agents' sign-in page (the board without a session).
        signin_page(&s.app.base, "/admin/board", lang, "agents.signin.submit").await;

        // The board's campaigns page.
        let (_, campaigns) = staff_page(&s.app.base, "/admin/board/campaigns").await;
        let none = i18n::tr(lang, "board.campaigns.none");
        assert!(campaigns.contains(none.as_ref()), "{campaigns}");
        assert_one_language("the campaigns page", &campaigns, lang);

        // The page that connects the OA: its state, its sign-in form, and a failed callback.
        let (status, connect) = staff_page(&s.app.base, "/admin/zalo/connect").await;
        assert_eq!(status, 200, "{connect}");
        assert!(
            connect.contains(&format!("<html lang=\"{lang}\">")),
            "{connect}"
        );
        for key in [
            "connect.title",
            "connect.label_expires",
            "connect.expiry_unknown",
        ] {
            let want = i18n::tr(lang, key);
            assert!(connect.contains(want.as_ref()), "{key}: {connect}");
        }
        assert_one_language("the connect page", &connect, lang);
        signin_page(
            &s.app.base,
            "/admin/zalo/connect",
            lang,
            "connect.token_label",
        )
        .await;
        let (status, failed) = staff_page(&s.app.base, "/admin/zalo/connect/callback").await;
        assert_eq!(status, 400, "{failed}");
        assert!(
            failed.contains(i18n::tr(lang, "connect.no_state").as_ref()),
            "{failed}"
        );
        assert_one_language("the connect page's problem", &failed, lang);

        // The report page and the CLI's report.
        let (_, page) = staff_page(&s.app.base, "/admin/report.html").await;
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

/// The OA's reconnect notice, in each language, holds none of the other's words.
#[test]
fn the_reconnect_notice_follows_the_language() {
    for lang in Lang::ALL {
        let notice = zaloflow::outbox::oa::OaNotice {
            chat_channel: None,
            connect_url: "https://shop.example/admin/zalo/connect".into(),
            lang,
        };
        for reason in ["permission_revoked", "refresh_refused"] {
            let jobs = notice.jobs(reason, 1_000);
            let text = jobs[0].payload.clone();
            assert!(
                text.contains("https://shop.example/admin/zalo/connect"),
                "{text}"
            );
            assert_one_language("the reconnect notice", &text, lang);
        }
    }
}

/// `zaloflow simulate` (the real binary) in each language: its report on the shipped rules —
/// a morning message, a VIP's message with its handoff, a customer silent for ten days — and
/// a broken rule's problem hold none of the other language's words.
#[test]
fn simulate_speaks_the_staff_language() {
    let bin = env!("CARGO_BIN_EXE_zaloflow");
    let manifest = |p: &str| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
    let simulate = |lang: Lang, event: &str, rules: &std::path::Path| {
        // Re-activation goes out in the afternoon; the greetings in the morning.
        let at = if event.starts_with("silent") {
            "2024-05-01T15:00:00+07:00"
        } else {
            "2024-05-01T07:30:00+07:00"
        };
        let out = std::process::Command::new(bin)
            .arg("simulate")
            .arg(manifest(&format!("tests/fixtures/rules/events/{event}")))
            .args(["--at", at, "--rules"])
            .arg(rules)
            .env("ZALOFLOW_LANG", lang.code())
            .env("ZALOFLOW_TZ", "Asia/Ho_Chi_Minh")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let broken = tempfile::tempdir().unwrap();
    std::fs::write(
        broken.path().join("r.yaml"),
        "rules:\n  - id: chao\n    when: mesage\n    do: [{send: Chào bạn}]\n",
    )
    .unwrap();
    let quoted = regex::Regex::new(r#""[^"]*""#).unwrap();
    for lang in Lang::ALL {
        let mut screens = Vec::new();
        for event in [
            "message_morning.json",
            "vip_message.json",
            "silent_10_days.json",
        ] {
            let (code, out) = simulate(lang, event, &manifest("rules"));
            assert_eq!(code, Some(0), "{out}");
            screens.push(out);
        }
        let all = screens.join("\n");
        let (matched, dry, weekday) = match lang {
            Lang::Vi => ("2 quy tắc khớp:", "Chạy thử: không gửi", "Thứ Tư"),
            Lang::En => ("2 rules match:", "Dry run: nothing was sent", " Wed "),
        };
        assert!(screens[0].contains(matched), "{}", screens[0]);
        assert!(all.contains(dry) && all.contains(weekday), "{all}");
        let handoff = i18n::words(
            lang,
            "simulate.handoff",
            &[("team", String::new()), ("priority", String::new())],
        );
        let handoff = handoff.split(' ').next().unwrap().to_string();
        assert!(screens[1].contains(&handoff), "{}", screens[1]);
        assert!(
            screens[2].contains("kich_hoat_giai_doan_1"),
            "{}",
            screens[2]
        );
        // The shop's own message texts (quoted) are Vietnamese in either language: only the
        // report's fixed words are checked.
        let fixed = quoted.replace_all(&all, "\"…\"");
        assert_one_language("simulate's report", &fixed, lang);
        let (code, problem) = simulate(lang, "message_morning.json", broken.path());
        assert_eq!(code, Some(1), "{problem}");
        assert!(problem.contains("r.yaml"), "{problem}");
        assert_one_language("simulate's rule problem", &problem, lang);
    }
}

/// `zaloflow contacts import` (the real binary) of a shop's old customer list with mistakes a
/// spreadsheet makes, in each language: the summary, each rejected row's reason and the
/// rejected-rows file hold none of the other language's words; the good rows are imported.
#[test]
fn contacts_import_speaks_the_staff_language() {
    const FILE: &str = "name,phone,email,birthday,follows,last_interaction
Lan,0912 345 678,lan@example.vn,30/10/1999,có,2023-10-01
Số sai,12345,,,,
Thư sai,,not-an-email,,,
Ngày sai,0988000111,,31/02/2000,,
Quan tâm sai,0988000222,,,maybe,
Ngày tới,0988000333,,,,2099-01-01
Không có gì,,,,,
";
    let bin = env!("CARGO_BIN_EXE_zaloflow");
    for lang in Lang::ALL {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("khach.csv");
        std::fs::write(&file, FILE).unwrap();
        let out = std::process::Command::new(bin)
            .args(["contacts", "import"])
            .arg(&file)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("z.db").display()),
            )
            .env("ZALOFLOW_LANG", lang.code())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (summary, phone, future) = match lang {
            Lang::Vi => (
                "thêm mới 1",
                "phone \"12345\" không phải số điện thoại",
                "ở trong tương lai",
            ),
            Lang::En => (
                "imported 1",
                "phone \"12345\" is not a phone number",
                "is in the future",
            ),
        };
        assert!(stdout.contains(summary), "{stdout}");
        assert!(
            stdout.contains(phone) && stdout.contains(future),
            "{stdout}"
        );
        assert_eq!(
            stdout.matches("\n  ").count(),
            6,
            "six rows rejected: {stdout}"
        );
        // The rows' own cells (Vietnamese names) are data: only the fixed words are checked.
        let fixed = stdout.replace(&dir.path().display().to_string(), "DIR");
        assert_one_language("contacts import", &fixed, lang);
        let rejected = std::fs::read_to_string(dir.path().join("khach.csv.rejected.csv")).unwrap();
        let reasons: Vec<String> = ::csv::Reader::from_reader(rejected.as_bytes())
            .records()
            .map(|r| r.unwrap()[1].to_string())
            .collect();
        assert_eq!(reasons.len(), 6, "{rejected}");
        assert_one_language("the rejected rows' reasons", &reasons.join("\n"), lang);
    }
}

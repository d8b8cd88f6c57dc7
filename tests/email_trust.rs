//! Issue 26 (items 1, 3, 6, 7, 8): email a shop can trust, over the real service, a real SMTP
//! server and real HTTP, on both backends — a customer's name can never become markup or a
//! link; tracking links are opaque; who counts as a reader (the table of
//! docs/email-and-forms.md, each User-Agent, clicks); "not opened" never reaches someone who
//! opened or clicked, live and in a forecast of the same days (issue 28); repeat registrations (II.2) with the setting off and on; forms that
//! nobody declared, oversized bodies and the documented limits.

mod common;
mod sched;

use std::time::Duration;

use common::*;
use sched::*;
use serde_json::{json, Value};

const EVIL: &str = r#"<a href="https://evil.example/login">Bấm vào đây</a>"#;
const BROWSER: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    a_name_with_markup_stays_text_and_every_link_is_the_shops,
    readers_machines_and_clicks_decide_opened_and_not_opened,
    repeat_registration_off_answers_already_registered_and_stores_nothing,
    repeat_registration_on_runs_once_per_cooldown,
);

fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post_form(s: &Shop, form: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/forms/{form}", s.app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `n` events are stored and every one is processed.
async fn processed(s: &Shop, n: i64) {
    wait_until(Duration::from_secs(20), || async {
        let st = s.store.inbox_stats().await.unwrap();
        st.done + st.failed >= n && st.pending == 0
    })
    .await;
}

/// Every `href="…"` and `src="…"` value of an HTML text, entities decoded.
fn links_of(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            let after = &rest[i + attr.len()..];
            let end = after.find('"').unwrap();
            out.push(after[..end].replace("&amp;", "&"));
            rest = &after[end..];
        }
    }
    out
}

/// The messages of the SMTP server once there are `n`.
async fn mails(s: &Shop, n: usize) -> Vec<Value> {
    let smtp = s.smtp.as_ref().unwrap();
    wait_until(Duration::from_secs(20), || async {
        smtp.messages().len() >= n
    })
    .await;
    smtp.messages()
}

async fn a_name_with_markup_stays_text_and_every_link_is_the_shops(kind: &str) {
    let yaml = r#"
campaigns:
  - id: chao
    enter_on: {form_submitted: dang_ky}
    steps:
      - id: thu_1
        do:
          - email:
              subject: "Chào {{display_name}}"
              html: '<p>Chào {{display_name}}</p><p><a href="https://shop.example.vn/uu-dai?ref={{phone}}">Ưu đãi</a></p>'
          - notify: "Khách mới đăng ký: {{display_name}}"
          - task: "Gọi cho {{display_name}}"
"#;
    let s = shop_with(kind, Rules::Yaml(yaml), true).await;
    let (status, body) = post_form(
        &s,
        "dang_ky",
        json!({"name": EVIL, "phone": "0912345678", "email": "lan@shop.test"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    processed(&s, 1).await;
    // The step is due at once: the service's own sender delivers it.
    let m = &mails(&s, 1).await[0];
    let html = SmtpServer::html(m);
    // The name is text: escaped in the HTML part…
    assert!(
        html.contains(
            "<p>Chào &lt;a href=&quot;https://evil.example/login&quot;&gt;Bấm vào đây&lt;/a&gt;</p>"
        ),
        "{html}"
    );
    // …and as typed in the plain part (plain text stays plain).
    let text = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "text/plain")
        .map(|p| p["content"].as_str().unwrap().to_string())
        .unwrap();
    assert!(text.contains(&format!("Chào {EVIL}")), "{text}");
    // Every link of the email: the shop's tracking routes, with opaque tokens that carry no
    // personal data (no phone, no contact id, no address).
    let links = links_of(&html);
    assert_eq!(links.len(), 2, "{links:?}");
    for l in &links {
        assert!(l.starts_with("http://shop.test/t/"), "{l}");
        let token = l.rsplit('/').next().unwrap();
        let parts: Vec<&str> = token.splitn(3, '-').collect();
        assert!(
            parts[0].bytes().all(|b| b.is_ascii_digit()) && token.len() < 40,
            "{token}"
        );
        for secret in ["84912345678", "0912345678", "phone", "lan@shop", "cGhvbmU"] {
            assert!(!token.contains(secret), "{token} holds {secret}");
        }
    }
    // Follow every one: none leads to evil.example.
    let mut targets = Vec::new();
    for l in &links {
        let r = no_redirect()
            .get(l.replace("http://shop.test", &s.app.base))
            .header("user-agent", BROWSER)
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            200 => assert_eq!(r.headers()["content-type"], "image/gif"),
            302 => targets.push(r.headers()["location"].to_str().unwrap().to_string()),
            other => panic!("{l}: {other}"),
        }
    }
    assert_eq!(targets, ["https://shop.example.vn/uu-dai?ref=84912345678"]);
    assert!(!html.contains("href=\"https://evil"), "{html}");
    // A forged link number or another email's tag goes nowhere.
    let click = links.iter().find(|l| l.contains("/t/c/")).unwrap();
    let token = click.rsplit('/').next().unwrap();
    let mut p = token.splitn(3, '-');
    let (job, _n, tag) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
    for forged in [
        format!("{job}-1-{tag}"),
        format!("{}-0-{tag}", job.parse::<i64>().unwrap() + 1),
        format!("{job}-0-AAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let r = no_redirect()
            .get(format!(
                "{}/t/c/{forged}?url=https://evil.example/",
                s.app.base
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{forged}");
        assert!(r.headers().get("location").is_none());
    }
    // The team chat (Slack-style markup) shows the name as text; the task is JSON, as typed.
    s.sink.wait_for_requests(2, Duration::from_secs(20)).await;
    let chat = s.sink_on("/chat");
    let chat_text = chat[0]["text"].as_str().unwrap();
    assert!(
        chat_text.contains("&lt;a href=\"https://evil.example/login\"&gt;")
            && !chat_text.contains('<'),
        "{chat_text}"
    );
    let task = s.sink_on("/task");
    assert_eq!(task[0]["title"], format!("Gọi cho {EVIL}"));
    s.stop().await;
}

async fn readers_machines_and_clicks_decide_opened_and_not_opened(kind: &str) {
    let yaml = r#"
campaigns:
  - id: chao
    enter_on: {form_submitted: dang_ky}
    steps:
      - id: thu_1
        do:
          - email:
              subject: "Chào bạn"
              html: '<p>Xin chào!</p><p><a href="https://shop.example.vn/uu-dai">Ưu đãi</a></p>'
rules:
  - id: da_mo
    when: {email_opened: {email: chao/thu_1}}
    do: [{sms: "nguoi mo"}]
  - id: da_mo_ca_may
    when: {email_opened: {email: chao/thu_1, machine_opens: true}}
    do: [{sms: "mo ke ca may"}]
  - id: chua_mo
    when: {email_not_opened: {within_hours: 24, email: chao/thu_1}}
    do: [{sms: "chua mo"}]
  - id: chua_mo_ca_may
    when: {email_not_opened: {within_hours: 24, email: chao/thu_1, machine_opens: true}}
    do: [{sms: "chua mo ke ca may"}]
"#;
    let mut s = shop_with(kind, Rules::Yaml(yaml), true).await;
    // Who fetches each email's pixel (None: nobody), and whether they click.
    let readers: [(&str, Option<&str>, bool); 7] = [
        // a person, seconds after sending (an open within 10 s counts)
        ("84900000001", Some(BROWSER), false),
        // Gmail's image proxy fetches when a person opens: a person
        (
            "84900000002",
            Some("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"),
            false,
        ),
        // Apple Mail Privacy Protection: a machine
        ("84900000003", Some("Mozilla/5.0"), false),
        // a security scanner: a machine
        ("84900000004", Some("Barracuda Sentinel (EE)"), false),
        // no pixel (images blocked), but a click: a click is an open
        ("84900000005", None, true),
        // nothing at all
        ("84900000006", None, false),
        // a scanner follows the link: not a click, not an open
        ("84900000007", Some("python-requests/2.31"), false),
    ];
    let t0 = zaloflow::clock::system_now();
    // Jobs from before: the live emails' ids are not the ones a forecast's copy gives them.
    let earlier: Vec<zaloflow::store::NewJob> = (0..5)
        .map(|n| zaloflow::store::NewJob {
            channel: "sms".into(),
            user_id: "84900000099".into(),
            payload: "{}".into(),
            priority: 0,
            run_at: t0 - DAY,
            rule_id: Some("truoc".into()),
            source: "test".into(),
            dedupe_key: Some(format!("truoc:{n}")),
            variant: None,
            skip: Some(zaloflow::store::JobSkip {
                reason: "not_configured".into(),
                message: "before".into(),
            }),
        })
        .collect();
    s.store.enqueue_jobs(&earlier, t0 - DAY).await.unwrap();
    for (phone, _, _) in readers {
        let email = format!("{phone}@shop.test");
        s.register(
            "dang_ky",
            &format!("phone:{phone}"),
            phone,
            Some(&email),
            &[],
            t0,
            false,
        )
        .await;
    }
    let all = mails(&s, readers.len()).await;
    let html_to = |phone: &str| {
        let addr = format!("{phone}@shop.test");
        all.iter()
            .find(|m| m["rcpt_tos"][0] == addr.as_str())
            .map(SmtpServer::html)
            .unwrap()
    };
    let on_app = |u: String| u.replace("http://shop.test", &s.app.base);
    for (phone, ua, click) in readers {
        let html = html_to(phone);
        if let Some(ua) = ua {
            let pixel = on_app(tracking_url(&html, 'o').unwrap());
            let r = no_redirect()
                .get(&pixel)
                .header("user-agent", ua)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        if click || phone == "84900000007" {
            let link = on_app(tracking_url(&html, 'c').unwrap());
            let ua = ua.unwrap_or(BROWSER);
            let r = no_redirect()
                .get(&link)
                .header("user-agent", ua)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302);
            assert_eq!(r.headers()["location"], "https://shop.example.vn/uu-dai");
        }
    }
    // The opens' rules (run by the service as the events arrive).
    let expect_now: [(&str, &[&str]); 7] = [
        ("84900000001", &["mo ke ca may", "nguoi mo"]),
        ("84900000002", &["mo ke ca may", "nguoi mo"]),
        ("84900000003", &["mo ke ca may"]),
        ("84900000004", &["mo ke ca may"]),
        ("84900000005", &["mo ke ca may", "nguoi mo"]),
        ("84900000006", &[]),
        ("84900000007", &["mo ke ca may"]),
    ];
    let total: usize = expect_now.iter().map(|(_, v)| v.len()).sum();
    wait_until(Duration::from_secs(20), || async {
        s.sink_on("/sms").len() >= total
    })
    .await;
    for (phone, want) in expect_now {
        let mut got = s.sms_to(phone);
        got.sort();
        assert_eq!(got, want, "{phone}");
    }
    // A day later: "not opened" reaches only those nobody (no person) opened nor clicked; with
    // machine_opens, only those nothing fetched at all.
    let r = s.tick(t0 + 24 * HOUR + MINUTE).await;
    assert_eq!(r.not_opened["chua_mo"].fired, 4, "{r}");
    assert_eq!(r.not_opened["chua_mo_ca_may"].fired, 1, "{r}");
    let later = |phone: &str| {
        let mut v: Vec<String> = s
            .sms_to(phone)
            .into_iter()
            .filter(|t| t.starts_with("chua"))
            .collect();
        v.sort();
        v
    };
    for p in ["84900000001", "84900000002", "84900000005"] {
        assert!(later(p).is_empty(), "{p} opened or clicked: {:?}", later(p));
    }
    for p in ["84900000003", "84900000004", "84900000007"] {
        assert_eq!(later(p), ["chua mo"], "{p}");
    }
    assert_eq!(later("84900000006"), ["chua mo", "chua mo ke ca may"]);
    // A forecast of those days with the same rules (issue 28): each open and click follows
    // the copy's own email of the same step to the same address, so the opens' rules and
    // "not opened" reach the same people as they did live.
    let rules = std::sync::Arc::new(
        zaloflow::rules::load_sources(
            &[("t.yaml".into(), yaml.to_string())],
            &zaloflow::rules::LoadOptions::default(),
        )
        .unwrap(),
    );
    let mut settings = zaloflow::forecast::Settings::from_config(&s.config);
    settings.every_ms = HOUR;
    let f = zaloflow::forecast::replay_window(
        &s.store,
        rules.clone(),
        rules,
        zaloflow::forecast::Window {
            from: t0 - HOUR,
            to: t0 + 2 * DAY,
        },
        &settings,
        None,
    )
    .await
    .unwrap();
    let sent = |t: &zaloflow::forecast::tally::Tally| -> Vec<(String, i64)> {
        t.per_rule()
            .into_iter()
            .map(|(rule, c)| (rule, c.sent()))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    let want: Vec<(String, i64)> = [
        ("chao/thu_1", 7),
        ("chua_mo", 4),
        ("chua_mo_ca_may", 1),
        ("da_mo", 3),
        ("da_mo_ca_may", 6),
    ]
    .iter()
    .map(|(r, n)| (r.to_string(), *n))
    .collect();
    assert_eq!(sent(f.actual.as_ref().unwrap()), want);
    assert_eq!(sent(&f.current), want);
    s.stop().await;
}

const ONE_STEP: &str = r#"
campaigns:
  - id: chao
    enter_on: {form_submitted: dang_ky}
    repeat_registration: REPEAT
    steps:
      - id: cam_on
        do:
          - sms: "Cảm ơn {{display_name}} đã đăng ký"
          - task: "Gọi cho {{display_name}}"
          - notify: "Khách đăng ký: {{display_name}}"
"#;

async fn repeat_registration_off_answers_already_registered_and_stores_nothing(kind: &str) {
    let yaml = ONE_STEP.replace("REPEAT", "false");
    let s = shop_with(kind, Rules::Yaml(&yaml), false).await;
    let (status, first) =
        post_form(&s, "dang_ky", json!({"name": "Lan", "phone": "0912345678"})).await;
    assert_eq!(status, 201, "{first}");
    processed(&s, 1).await;
    let (status, again) = post_form(
        &s,
        "dang_ky",
        json!({"name": "Hoa", "phone": "+84 912 345 678", "email": "hoa@shop.test"}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["already_registered"], true);
    assert_eq!(again["repeat"], true);
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("đã đăng ký rồi"),
        "{again}"
    );
    // Nothing written: no event, no count, the name and email as they were.
    assert_eq!(
        inbox_bodies(&s.db, "zaloflow.form_submitted").await.len(),
        1
    );
    assert_eq!(
        s.store
            .form_submission_count("dang_ky", "phone:84912345678")
            .await
            .unwrap(),
        1
    );
    let c = s
        .store
        .get_contact("phone:84912345678")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Lan"));
    assert_eq!(c.email, None);
    // Nothing ran: one SMS, one task, one notice (the first registration's).
    s.sink.wait_for_requests(3, Duration::from_secs(20)).await;
    processed(&s, 1).await;
    assert_eq!(s.sms_to("84912345678"), ["Cảm ơn Lan đã đăng ký"]);
    assert_eq!(s.sink_on("/task").len(), 1);
    assert_eq!(s.sink_on("/chat").len(), 1);
    s.stop().await;
}

async fn repeat_registration_on_runs_once_per_cooldown(kind: &str) {
    let yaml = ONE_STEP.replace("REPEAT", "true");
    let s = shop_with(kind, Rules::Yaml(&yaml), false).await;
    // Five posts in the same second.
    let posts =
        (0..5).map(|_| post_form(&s, "dang_ky", json!({"name": "Lan", "phone": "0912345678"})));
    let answers = futures_util::future::join_all(posts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(st, _)| *st).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 201], "{answers:?}");
    processed(&s, 5).await;
    s.sink.wait_for_requests(3, Duration::from_secs(20)).await;
    // Give the sender a chance to show any extra send: wait until every job is settled.
    wait_until(Duration::from_secs(20), || async {
        s.store
            .job_counts()
            .await
            .unwrap()
            .iter()
            .all(|(_, status, _)| status == "sent" || status == "dead")
    })
    .await;
    assert_eq!(s.sms_to("84912345678"), ["Cảm ơn Lan đã đăng ký"]);
    assert_eq!(s.sink_on("/task").len(), 1);
    assert_eq!(s.sink_on("/chat").len(), 1);
    // The contact is one record, its five registrations counted.
    assert_eq!(
        s.store
            .form_submission_count("dang_ky", "phone:84912345678")
            .await
            .unwrap(),
        5
    );
    s.stop().await;
}

/// With a short `repeat_cooldown`, a repeat after it runs the first step again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_after_the_cooldown_runs_again() {
    let yaml = ONE_STEP
        .replace("REPEAT", "true")
        .replace("    steps:", "    repeat_cooldown: 2s\n    steps:");
    let s = shop_with("sqlite", Rules::Yaml(&yaml), false).await;
    let body = json!({"name": "Lan", "phone": "0912345678"});
    let start = std::time::Instant::now();
    assert_eq!(post_form(&s, "dang_ky", body.clone()).await.0, 201);
    assert_eq!(post_form(&s, "dang_ky", body.clone()).await.0, 200);
    processed(&s, 2).await;
    wait_until(Duration::from_secs(20), || async {
        start.elapsed() > Duration::from_millis(2100)
    })
    .await;
    assert_eq!(post_form(&s, "dang_ky", body).await.0, 200);
    processed(&s, 3).await;
    wait_until(Duration::from_secs(20), || async {
        s.sms_to("84912345678").len() >= 2
    })
    .await;
    assert_eq!(s.sms_to("84912345678").len(), 2);
    s.stop().await;
}

/// Unknown forms answer 404; every error is JSON, the 413 included; the documented limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_are_declared_errors_are_json_and_limits_hold() {
    let yaml = "forms: [lien_he]\nrules:\n  - id: r\n    when: {form_submitted: khao_sat}\n    do: [{tag: khao_sat}]\n";
    let s = shop_with("sqlite", Rules::Yaml(yaml), false).await;
    for form in ["nosuchform", "lien-he", "bad%20name"] {
        let (status, body) = post_form(&s, form, json!({"phone": "0912345678"})).await;
        assert_eq!(status, 404, "{form}");
        assert_eq!(body["error"]["code"], "not_found", "{form}: {body}");
    }
    // Declared by `forms:` and by a rule.
    for form in ["lien_he", "khao_sat"] {
        let (status, body) = post_form(&s, form, json!({"phone": "0912345678"})).await;
        assert_eq!(status, 201, "{form}: {body}");
    }
    // Over 64 KiB: 413, as JSON.
    let big = json!({"phone": "0912345678", "note": "x".repeat(70 * 1024)});
    let r = client()
        .post(format!("{}/forms/lien_he", s.app.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_large");
    // 51 custom fields; a value over 2,000 characters.
    let mut many = serde_json::Map::new();
    many.insert("phone".into(), json!("0912345678"));
    for i in 0..51 {
        many.insert(format!("f{i}"), json!("x"));
    }
    let (status, body) = post_form(&s, "lien_he", Value::Object(many)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["fields"]["fields"].is_string(), "{body}");
    let (status, body) = post_form(
        &s,
        "lien_he",
        json!({"phone": "0912345678", "note": "x".repeat(2001)}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["fields"]["note"].is_string(), "{body}");
    let (status, _) = post_form(
        &s,
        "lien_he",
        json!({"phone": "0912345678", "note": "x".repeat(2000)}),
    )
    .await;
    assert_eq!(status, 200);
    s.stop().await;
}

/// The reader table of docs/email-and-forms.md is the one the code uses.
#[test]
fn the_documented_reader_table_is_the_codes() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/email-and-forms.md"),
    )
    .unwrap();
    for row in zaloflow::tracking::AGENTS {
        let who = if row.machine { "machine" } else { "person" };
        let line = doc
            .lines()
            .find(|l| l.starts_with('|') && l.contains(&format!("`{}`", row.pattern)))
            .unwrap_or_else(|| panic!("`{}` is not in the table", row.pattern));
        assert!(line.contains(&format!("| {who} |")), "{line}");
    }
}

/// A variable that would decide where a link goes is refused at its line and column.
#[test]
fn a_variable_deciding_a_link_is_refused_at_line_and_col() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "rules:\n  - id: r\n    when: follow\n    do:\n      - email:\n          subject: Chào\n          html: '<p>Chào {{display_name}}</p><a href=\"{{field.web}}\">web</a>'\n      - send:\n          text: hi\n          buttons:\n            - title: Xem\n              url: \"https://{{field.host}}/x\"\n",
    )
    .unwrap();
    let (out, ok) = zaloflow::rules::check_command_in(dir.path(), false, zaloflow::i18n::Lang::En);
    assert!(!ok, "{out}");
    assert!(
        out.contains("t.yaml:7:55: `html`: a variable cannot decide where a link goes"),
        "{out}"
    );
    assert!(
        out.contains("t.yaml:12:29: `url`: a variable cannot decide where a link goes"),
        "{out}"
    );
}

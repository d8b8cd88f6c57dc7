//! Effectiveness (issue 10) end to end over real HTTP, on SQLite and PostgreSQL: receipts,
//! replies and returns after a send count for that send's rule and A/B variant and no other's;
//! variant assignment is stable and follows the weights; the `variants:` syntax and its errors;
//! the report as JSON (admin API), as a page in headless Chromium, and from the CLI.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::report::ab;
use zaloflow::rules::{load_sources, LoadOptions};
use zaloflow::store::{self, DynStore};

const TOKEN: &str = "effect-test-admin-token";
const OA: &str = "388613280878808645";

const RULES: &str = r#"rules:
  - id: welcome
    when: follow
    do:
      - send: Chào mừng bạn đến với shop!
      - tag: new_user
  - id: greet
    when: message
    do:
      - send:
          variants:
            - id: short
              text: Chào bạn!
            - id: long
              weight: 3
              text: Chào bạn, hôm nay shop có ưu đãi mới!
    once_per: ever
  - id: vip_care
    priority: 100
    when: message
    if:
      has_tag: vip_customer
    do:
      - handoff: {deadline: 2h}
      - stop
"#;

struct Shop {
    db: Db,
    app: TestApp,
    zalo: FakeZalo,
    _sink: HttpSink,
    _rules: tempfile::TempDir,
    store: DynStore,
    posted: i64,
}

async fn shop(kind: &str) -> Shop {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = HttpSink::start().await.unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("main.yaml"), RULES).unwrap();
    let mut env = fake_channels(&zalo, &sink);
    env.push((
        "ZALOFLOW_RULES".into(),
        rules.path().to_str().unwrap().into(),
    ));
    env.push(("ZALOFLOW_ADMIN_TOKEN".into(), TOKEN.into()));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn(config(db.url(), &pairs)).await;
    let store = store::open(db.url()).await.unwrap();
    Shop {
        db,
        app,
        zalo,
        _sink: sink,
        _rules: rules,
        store,
        posted: 0,
    }
}

impl Shop {
    /// Posts the event, waits until it is processed and every job it caused has gone out.
    async fn deliver(&mut self, body: String) {
        let r = self.app.post_webhook(&body).await;
        assert_eq!(r.status(), 200, "{body}");
        self.posted += 1;
        let (s, n) = (&self.store, self.posted);
        wait_until(Duration::from_secs(20), || async move {
            s.inbox_stats().await.unwrap().done >= n
        })
        .await;
        wait_until(Duration::from_secs(20), || async move {
            !s.job_counts()
                .await
                .unwrap()
                .iter()
                .any(|(_, status, c)| (status == "pending" || status == "sending") && *c > 0)
        })
        .await;
    }

    /// The message id Zalo gave the send to `user` whose text starts with `prefix`.
    fn msg_id(&self, user: &str, prefix: &str) -> String {
        self.zalo
            .messages()
            .into_iter()
            .find(|m| {
                m.user_id.as_deref() == Some(user) && m.text().unwrap_or("").starts_with(prefix)
            })
            .unwrap_or_else(|| panic!("no message {prefix:?} to {user}"))
            .message_id
    }

    async fn report(&self, query: &str) -> Value {
        let r = client()
            .get(format!("{}/admin/report{query}", self.app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }
}

/// A receipt from Zalo about the OA's messages (`sender` is the OA).
fn receipt(name: &str, user: &str, ids: &[&str], ts: i64) -> String {
    let message = if name == "user_seen_message" {
        json!({"msg_ids": ids})
    } else {
        json!({"msg_id": ids[0]})
    };
    json!({
        "app_id": APP_ID,
        "event_name": name,
        "sender": {"id": OA},
        "recipient": {"id": user},
        "message": message,
        "timestamp": ts.to_string(),
    })
    .to_string()
}

fn follow(user: &str) -> String {
    event_at(
        "follow",
        user,
        zaloflow::clock::system_now(),
        json!({"source": "oa_profile"}),
    )
}

/// Two user ids that get different variants of `greet`.
fn users_on_both_variants() -> (String, String) {
    let weights = [1, 3];
    let first = ab::pick("greet", "9100000000000000001", &weights).unwrap();
    let other = (2..1000u64)
        .map(|i| format!("91000000000000{i:05}"))
        .find(|u| ab::pick("greet", u, &weights).unwrap() != first)
        .unwrap();
    ("9100000000000000001".into(), other)
}

fn step<'a>(report: &'a Value, rule: &str) -> &'a Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .unwrap_or_else(|| panic!("no rule {rule} in {report:#}"))
        .get("steps")
        .and_then(|s| s.get(0))
        .unwrap()
}

fn variant<'a>(s: &'a Value, v: &str) -> &'a Value {
    &s["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["variant"] == v)
        .unwrap_or_else(|| panic!("no variant {v} in {s:#}"))["outcomes"]
}

/// Welcome then greeting for two users on different variants; receipts and replies after.
async fn scenario(s: &mut Shop) -> (String, String) {
    let (u1, u2) = users_on_both_variants();
    for u in [&u1, &u2] {
        s.deliver(follow(u)).await;
    }
    // Each writes once: a reply to the welcome (the latest send to them), and the greeting.
    for (u, m) in [(&u1, "m-a1"), (&u2, "m-b1")] {
        s.deliver(text_event(u, m, "Shop ơi")).await;
    }
    let greet1 = s.msg_id(&u1, "Chào bạn");
    let greet2 = s.msg_id(&u2, "Chào bạn");
    let welcome2 = s.msg_id(&u2, "Chào mừng");
    let now = zaloflow::clock::system_now();
    s.deliver(receipt("user_received_message", &u1, &[&greet1], now))
        .await;
    s.deliver(receipt("user_seen_message", &u1, &[&greet1], now + 1))
        .await;
    // A second receipt for the same message counts once.
    s.deliver(receipt(
        "user_seen_message",
        &u1,
        &[&greet1, "unknown-id"],
        now + 2,
    ))
    .await;
    s.deliver(receipt("user_received_message", &u2, &[&welcome2], now + 3))
        .await;
    // u1 answers the greeting; u2 does not.
    s.deliver(text_event(&u1, "m-a2", "Có ưu đãi gì vậy?"))
        .await;
    let _ = greet2;
    (u1, u2)
}

async fn attribution(kind: &str) {
    let mut s = shop(kind).await;
    let (u1, u2) = scenario(&mut s).await;
    let r = s.report("").await;
    let variant_of = |u: &str| ["short", "long"][ab::pick("greet", u, &[1, 3]).unwrap()];

    let welcome = step(&r, "welcome");
    assert_eq!(welcome["fired"], 2, "{welcome:#}");
    let t = &welcome["total"];
    assert_eq!(
        (
            &t["jobs"],
            &t["sent"],
            &t["failed"],
            &t["delivered"],
            &t["seen"],
            &t["replied"],
            &t["came_back"]
        ),
        (
            &json!(2),
            &json!(2),
            &json!(0),
            &json!(1),
            &json!(0),
            &json!(2),
            &json!(2)
        ),
        "{welcome:#}"
    );
    assert!(welcome["variants"].as_array().unwrap().is_empty());

    let greet = step(&r, "greet");
    assert_eq!(greet["fired"], 2, "{greet:#}");
    assert_eq!(greet["total"]["sent"], 2);
    let v1 = variant(greet, variant_of(&u1));
    let v2 = variant(greet, variant_of(&u2));
    for (k, one, two) in [
        ("sent", 1, 1),
        ("delivered", 1, 0),
        ("seen", 1, 0),
        ("replied", 1, 0),
        ("came_back", 1, 0),
        ("clicked", 0, 0),
    ] {
        assert_eq!(v1[k], one, "{k} of {}: {greet:#}", variant_of(&u1));
        assert_eq!(v2[k], two, "{k} of {}: {greet:#}", variant_of(&u2));
    }
    // Side by side: the variant is compared with the control, with too few sends to tell.
    let cmp = greet["comparisons"].as_array().unwrap();
    assert!(
        cmp.iter()
            .any(|c| c["outcome"] == "replied" && c["verdict"] == "too_few"),
        "{greet:#}"
    );

    // Each job carries its variant. (The welcome's Zalo tag calls are jobs of the rule too,
    // but no message: the report leaves them out, and replies are never credited to them.)
    let jobs = s.store.list_jobs(Some("sent"), 100).await.unwrap();
    assert_eq!(jobs.len(), 6);
    for j in &jobs {
        match j.rule_id.as_deref() {
            Some("greet") => assert_eq!(j.variant.as_deref(), Some(variant_of(&j.user_id))),
            _ => assert_eq!(j.variant, None),
        }
    }

    // A VIP's message opens a handoff; an agent answers in the OA console within the deadline.
    let vip = "9200000000000000003";
    let now = zaloflow::clock::system_now();
    s.deliver(event_at(
        "add_user_to_tag",
        vip,
        now,
        json!({"oa_id": OA, "tag": {"name": "vip_customer", "user_ids": [vip]}}),
    ))
    .await;
    s.deliver(text_event(vip, "m-v1", "Tôi cần tư vấn gấp"))
        .await;
    s.deliver(event_at(
        "oa_send_text",
        vip,
        zaloflow::clock::system_now() + 1,
        json!({"message": {"text": "Dạ em hỗ trợ anh ngay", "msg_id": "agent-1"}}),
    ))
    .await;
    let r = s.report("?rule=vip_care").await;
    let rule = &r["rules"][0];
    assert_eq!(rule["rule"], "vip_care", "{r:#}");
    assert_eq!(rule["steps"][0]["fired"], 1);
    // The agents' chat notification is no customer message.
    assert_eq!(rule["steps"][0]["total"]["jobs"], 0, "{r:#}");
    let h = &rule["handoffs"];
    assert_eq!(
        (&h["opened"], &h["deadlines_met"], &h["deadlines_missed"]),
        (&json!(1), &json!(1), &json!(0)),
        "{r:#}"
    );
    assert!(h["first_reply_p50_seconds"].as_f64().unwrap() < 60.0, "{h}");
    // --rule picks one rule; since tomorrow nothing.
    let only = s.report("?rule=greet").await;
    assert_eq!(only["rules"].as_array().unwrap().len(), 1);
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%d")
        .to_string();
    let none = s.report(&format!("?since={tomorrow}")).await;
    assert!(none["rules"].as_array().unwrap().is_empty(), "{none:#}");
    let bad = client()
        .get(format!("{}/admin/report?since=yesterday", s.app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let _ = &s.db;
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_count_for_the_send_they_follow_sqlite() {
    attribution("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_count_for_the_send_they_follow_postgres() {
    attribution("postgres").await;
}

// ---------------------------------------------------------------------------------------
// Variants: stable per contact and rule, spread by weight, written as `variants:`.

#[test]
fn variant_assignment_is_stable_and_close_to_its_weights() {
    let weights = [1u32, 3, 6];
    let n = 30_000;
    let mut counts = [0usize; 3];
    for i in 0..n {
        let user = format!("{}", 8_000_000_000_000_000_000u64 + i as u64 * 7919);
        let v = ab::pick("greet", &user, &weights).unwrap();
        // The same contact, asked again, gets the same variant.
        assert_eq!(ab::pick("greet", &user, &weights), Some(v));
        counts[v] += 1;
    }
    for (i, w) in weights.iter().enumerate() {
        let share = counts[i] as f64 / n as f64;
        let expected = *w as f64 / 10.0;
        assert!(
            (share - expected).abs() < 0.015,
            "variant {i}: {share:.3} vs {expected:.3} ({counts:?})"
        );
    }
    // Another rule reshuffles: a contact's variant is not the same in every test.
    let same = (0..2000)
        .filter(|i| {
            let u = format!("u{i}");
            ab::pick("greet", &u, &[1, 1]) == ab::pick("other", &u, &[1, 1])
        })
        .count();
    assert!((800..1200).contains(&same), "{same}");
}

#[test]
fn the_engine_records_the_contacts_variant_on_its_job() {
    let set = load_sources(
        &[(PathBuf::from("t.yaml"), RULES.to_string())],
        &LoadOptions::default(),
    )
    .unwrap();
    let engine = zaloflow::engine::Engine::with_rule_set(
        std::sync::Arc::new(set),
        chrono_tz::Asia::Ho_Chi_Minh,
    );
    let mut by_variant = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..400 {
        let user = format!("70000000000000{i:05}");
        let body = text_event(&user, "m1", "hi");
        let event = zaloflow::zalo::event::parse(body.as_bytes()).unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let mut state = zaloflow::engine::BatchState::default();
            let fx = engine.process(&event, 1_800_000_000_000, "inbox:1", &mut state);
            let job = fx
                .jobs
                .iter()
                .find(|j| j.rule_id.as_deref() == Some("greet"))
                .unwrap();
            let v = job.variant.clone().unwrap();
            let text = if v == "short" {
                "Chào bạn!"
            } else {
                "Chào bạn, hôm nay shop có ưu đãi mới!"
            };
            assert!(job.payload.contains(text), "{v}: {}", job.payload);
            seen.push(v);
        }
        assert_eq!(seen[0], seen[1], "{user}");
        *by_variant.entry(seen[0].clone()).or_default() += 1;
    }
    // Weights 1 : 3.
    let long = by_variant["long"] as f64 / 400.0;
    assert!((0.68..0.82).contains(&long), "{by_variant:?}");
}

#[test]
fn campaign_steps_count_as_fired_and_take_variants() {
    let yaml = r#"campaigns:
  - id: drip
    enter_on: [follow]
    steps:
      - id: hello
        day: 0
        do:
          - send:
              variants:
                - text: Xin chào!
                - text: Chào bạn nhé!
"#;
    let set = load_sources(
        &[(PathBuf::from("t.yaml"), yaml.to_string())],
        &LoadOptions::default(),
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let engine = zaloflow::engine::Engine::with_rule_set(
        std::sync::Arc::new(set),
        chrono_tz::Asia::Ho_Chi_Minh,
    );
    let user = "7100000000000000001";
    let body = event_at("follow", user, 1_800_000_000_000, json!({}));
    let event = zaloflow::zalo::event::parse(body.as_bytes()).unwrap();
    let fx = engine.process(
        &event,
        1_800_000_000_000,
        "inbox:1",
        &mut zaloflow::engine::BatchState::default(),
    );
    let job = fx
        .jobs
        .iter()
        .find(|j| j.rule_id.as_deref() == Some("drip/hello"))
        .unwrap_or_else(|| panic!("{fx:#?}"));
    let want = ["a", "b"][ab::pick("drip/hello", user, &[1, 1]).unwrap()];
    assert_eq!(job.variant.as_deref(), Some(want));
    assert!(fx
        .outcomes
        .contains(&zaloflow::report::OutcomeSignal::Fired {
            rule_id: "drip/hello".into(),
            at: 1_800_000_000_000
        }));
}

#[test]
fn each_variant_text_is_held_to_zalos_length_limit() {
    let long = "x".repeat(2001);
    let yaml = format!(
        "rules:\n  - id: ab\n    when: follow\n    do:\n      - send:\n          variants:\n            - text: ngắn\n            - text: \"{long}\"\n"
    );
    let set = load_sources(&[(PathBuf::from("t.yaml"), yaml)], &LoadOptions::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    let warnings: Vec<String> = zaloflow::rules::hygiene::check(&set)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("t.yaml:8:21: warning: rule `ab`: this text is 2001 characters"),
        "{warnings:?}"
    );
}

#[test]
fn variant_mistakes_have_their_line_and_column() {
    let cases: &[(&str, &str)] = &[
        (
            "rules:\n  - id: r\n    when: message\n    do:\n      - send:\n          text: hi\n          variants:\n            - text: a\n            - text: b\n",
            "t.yaml:6:11: `send` takes `text:` or `variants:`, not both",
        ),
        (
            "rules:\n  - id: r\n    when: message\n    do:\n      - send:\n          variants:\n            - text: a\n",
            "t.yaml:7:13: an A/B test needs at least 2 variants",
        ),
        (
            "rules:\n  - id: r\n    when: message\n    do:\n      - send:\n          variants:\n            - text: a\n              weight: lots\n            - text: b\n",
            "t.yaml:8:23: `weight` must be a whole number from 0 to 1000",
        ),
        (
            "rules:\n  - id: r\n    when: message\n    do:\n      - send:\n          variants:\n            - id: x\n              text: a\n            - id: x\n              text: b\n",
            "t.yaml:9:19: variant id `x` is used twice",
        ),
        (
            "rules:\n  - id: r\n    when: message\n    do:\n      - send:\n          variants:\n            - id: a\n            - text: b\n",
            "t.yaml:7:15: a variant needs `text:`",
        ),
    ];
    for (src, want) in cases {
        let diags = load_sources(
            &[(PathBuf::from("t.yaml"), src.to_string())],
            &LoadOptions::default(),
        )
        .err()
        .unwrap_or_else(|| panic!("loaded: {src}"));
        let all: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        assert!(
            all.iter().any(|d| d.starts_with(want)),
            "want {want:?}, got {all:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The report page in headless Chromium, and the CLI.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_page_in_chromium() {
    let mut s = shop("sqlite").await;
    let (u1, _) = scenario(&mut s).await;
    // Without a session: a sign-in hint, no data.
    let anon = client()
        .get(format!("{}/admin/report.html", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    assert!(!anon.text().await.unwrap().contains("greet"));

    let b = webdriver::Browser::start().await;
    b.goto(&format!("{}/admin/report.html?token={TOKEN}", s.app.base))
        .await;
    // The token leaves the address bar; the cookie keeps the session.
    assert_eq!(b.url().await, format!("{}/admin/report.html", s.app.base));
    // In the staff's language: Vietnamese by default (ZALOFLOW_LANG unset).
    let text = b.text().await;
    for want in [
        "Hiệu quả",
        "welcome",
        "greet",
        "biến thể short",
        "biến thể long",
        "trả lời 24h",
        "quay lại 7 ngày",
        "“Lần chạy” là số lần quy tắc khớp",
    ] {
        assert!(
            text.contains(want),
            "{want:?} missing from the page:\n{text}"
        );
    }
    assert!(text.contains("quá ít tin để kết luận"), "{text}");
    // One chart per rule, with a bar per outcome rate of each row (variants for greet).
    let charts = b.find_all("svg.chart").await;
    assert_eq!(charts.len(), 2, "{}", b.source().await);
    let bars = b.find_all("#rule-greet svg.chart rect.bar").await;
    // delivered, seen, replied, came back in 7 days, clicked
    assert_eq!(bars.len(), 2 * 5);
    // u1's variant: seen by the one user it went to (100 %), the other variant 0 %.
    let v1 = ["short", "long"][ab::pick("greet", &u1, &[1, 3]).unwrap()];
    let mut widths = Vec::new();
    for bar in &bars {
        let series = b.attribute(bar, "data-series").await.unwrap();
        let w: f64 = b.attribute(bar, "width").await.unwrap().parse().unwrap();
        widths.push((series, w));
    }
    let seen_full = widths
        .iter()
        .filter(|(s, w)| s == "seen" && *w > 200.0)
        .count();
    let seen_zero = widths
        .iter()
        .filter(|(s, w)| s == "seen" && *w == 0.0)
        .count();
    assert_eq!((seen_full, seen_zero), (1, 1), "{v1}: {widths:?}");
    let shot = std::env::temp_dir().join("zaloflow-report.png");
    b.screenshot(&shot).await;
    b.quit().await;
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_report() {
    let mut s = shop("sqlite").await;
    scenario(&mut s).await;
    let url = s.db.url().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_zaloflow"))
            .args(args)
            .env("DATABASE_URL", &url)
            .env("ZALOFLOW_RULES", "/nonexistent-rules")
            .env("ZALOFLOW_LANG", "en")
            .env_remove("ZALOFLOW_ADMIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&["report"]);
    assert!(ok, "{err}");
    println!("{out}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line {name:?} in\n{out}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // welcome: fired 2, jobs 2, sent 2, failed 0, delivered 1 (50%), seen 0, replied 2 (100%)…
    assert_eq!(
        line("welcome")[..9],
        ["welcome", "2", "2", "2", "0", "1", "(50%)", "0", "(0%)"]
    );
    assert!(
        out.contains("variant short") && out.contains("variant long"),
        "{out}"
    );
    assert!(out.contains("greet: A/B"), "{out}");

    let (ok, only, _) = run(&["report", "--rule", "welcome", "--since", "2020-01-01"]);
    assert!(ok);
    assert!(
        only.contains("welcome") && !only.contains("greet"),
        "{only}"
    );
    let (ok, _, err) = run(&["report", "--since", "soon"]);
    assert!(!ok);
    assert!(err.contains("--since \"soon\""), "{err}");
    s.app.shutdown().await;
}

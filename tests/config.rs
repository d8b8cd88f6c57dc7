//! Issue 29, items 3-5: the configuration checked whole. Rule actions whose channel is not
//! configured are findings (file:line:col, the variable to set) — logged at start and reload,
//! listed by `/readyz`, printed by `rules check`, refusing the start and the reload under
//! `ZALOFLOW_STRICT_CONFIG=true` — and, when they would run, outbox rows with status `skipped`
//! (admin outbox filter, contact timeline, metrics). Operator URLs are trusted, rule and admin
//! URLs guarded; behind Fly the client IP comes from `Fly-Client-IP`; an event stamped ahead of
//! our clock is answered at once.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};

use common::*;

const TOKEN: &str = "admin-token-for-config-tests";
const WAIT: Duration = Duration::from_secs(15);

/// A rule file that needs SMS, a task tool and the agents' chat channel.
const CONTACT_RULES: &str = r#"chat_channels:
  agents: the agents
rules:
  - id: lien_he
    when: follow
    do:
      - sms:
          text: "Chào bạn, shop đây!"
          to: "0912345678"
      - task: "Gọi lại khách {{user_id}}"
      - notify:
          channel: agents
          text: "Khách mới theo dõi: {{user_id}}"
"#;

/// The shipped rules plus `lien_he.yaml`, in a folder of their own.
fn rules_dir(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for e in std::fs::read_dir(shipped).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = client().get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The contract's variables only: the OA's tokens (here the fake's) and the default team chat.
/// The sink listens on 127.0.0.1 and ZALOFLOW_ALLOW_PRIVATE_URLS is not set: operator URLs are
/// trusted wherever they point.
fn contract_only(zalo: &FakeZalo, sink: &HttpSink, rules: &Path) -> Vec<(String, String)> {
    let o = FakeZaloOptions::default();
    vec![
        ("ZALO_API_BASE".into(), zalo.base_url().to_string()),
        ("ZALO_OAUTH_BASE".into(), zalo.base_url().to_string()),
        ("ZALO_ZNS_BASE".into(), zalo.base_url().to_string()),
        ("ZALO_APP_SECRET".into(), o.app_secret),
        ("ZALO_ACCESS_TOKEN".into(), o.access_token),
        ("ZALO_REFRESH_TOKEN".into(), o.refresh_token),
        ("ZALOFLOW_CHAT_WEBHOOK_URL".into(), sink.url("/chat")),
        ("ZALOFLOW_ADMIN_TOKEN".into(), TOKEN.into()),
        ("ZALOFLOW_RULES".into(), rules.display().to_string()),
        // The findings asserted in this file are the English ones (the default is Vietnamese).
        ("ZALOFLOW_LANG".into(), "en".into()),
    ]
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    degraded_start_lists_findings_and_records_skipped_sends,
    a_future_stamped_event_is_answered_at_once,
    an_oa_send_without_tokens_is_skipped_by_the_sender,
);

/// Without the OA's tokens (none in the environment, none connected) a Zalo send is a finding
/// at start, and when it runs the sender records it as skipped with what to do — not a dead
/// letter; `serve`'s check counts a pair kept in the database as configured.
async fn an_oa_send_without_tokens_is_skipped_by_the_sender(kind: &str) {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("chao.yaml"),
        "rules:\n  - id: chao\n    when: follow\n    do:\n      - send: Chào bạn!\n",
    )
    .unwrap();
    let rules = dir.path().display().to_string();
    let api = zalo.base_url().to_string();
    let app = TestApp::spawn(config(
        db.url(),
        &[
            ("ZALO_API_BASE", api.as_str()),
            ("ZALO_OAUTH_BASE", api.as_str()),
            ("ZALOFLOW_ADMIN_TOKEN", TOKEN),
            ("ZALOFLOW_RULES", rules.as_str()),
            ("ZALOFLOW_LANG", "en"),
        ],
    ))
    .await;
    let ready: Value = client()
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let findings = strings(&ready["findings"]);
    assert_eq!(findings.len(), 1, "{ready}");
    assert!(
        findings[0].ends_with("chao.yaml:5:9: rule chao: `send` cannot run: the OA's connection (its tokens) is not configured: connect the OA at /admin/zalo/connect, or set ZALO_APP_ID, ZALO_APP_SECRET, ZALO_ACCESS_TOKEN and ZALO_REFRESH_TOKEN"),
        "{findings:?}"
    );
    let now = zaloflow::clock::system_now();
    let r = app
        .post_webhook(&event_at(
            "follow",
            "7301",
            now - 1_000,
            json!({"source": "oa_profile"}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let url = format!("{}/admin/outbox?status=skipped", app.base);
    let deadline = Instant::now() + WAIT;
    let jobs = loop {
        let (_, page) = get_json(&url).await;
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        if !jobs.is_empty() || Instant::now() > deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["channel"], "zalo");
    assert_eq!(jobs[0]["skip_reason"], "not_configured");
    assert!(
        jobs[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("skipped: the OA's connection (its tokens) is not configured"),
        "{}",
        jobs[0]
    );
    let (_, dead) = get_json(&format!("{}/admin/outbox?status=dead", app.base)).await;
    assert_eq!(dead["jobs"].as_array().map(Vec::len), Some(0), "{dead}");
    assert!(zalo.messages().is_empty());
    app.shutdown().await;
}

/// A fresh install with the contract's variables: the VIP notice goes to the default chat
/// webhook; SMS, task and email actions are findings, and when they run they are skipped rows
/// where staff look.
async fn degraded_start_lists_findings_and_records_skipped_sends(kind: &str) {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = HttpSink::start().await.unwrap();
    let rules = rules_dir(&[("lien_he.yaml", CONTACT_RULES)]);
    let env = contract_only(&zalo, &sink, rules.path());
    let cfg = config(db.url(), &as_refs(&env));
    assert!(!cfg.allow_private_urls);
    let app = TestApp::spawn(cfg).await;

    // /readyz: ready (200) but degraded, each finding with where and what to set.
    let r = client()
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["degraded"], true, "{ready}");
    let findings = strings(&ready["findings"]);
    let sms = findings
        .iter()
        .find(|f| f.contains("rule lien_he: `sms`"))
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(
        sms.contains("lien_he.yaml:7:9: rule lien_he: `sms` cannot run: SMS is not configured: set ZALOFLOW_SMS_URL"),
        "{sms}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.contains("lien_he.yaml:10:9:") && f.contains("ZALOFLOW_TASK_WEBHOOK_URL")),
        "{findings:#?}"
    );
    // The shipped campaign's emails: SMTP and the public URL of their tracking links.
    assert!(
        findings
            .iter()
            .any(|f| f.contains("campaigns.yaml:") && f.contains("ZALOFLOW_SMTP_URL")),
        "{findings:#?}"
    );
    assert!(
        findings.iter().any(|f| f.contains("ZALOFLOW_PUBLIC_URL")),
        "{findings:#?}"
    );
    // Named chat channels use the default webhook: `agents` is no finding.
    assert!(
        !findings.iter().any(|f| f.contains("\"agents\"")),
        "{findings:#?}"
    );

    // The new-VIP notice reaches the default chat webhook (it was dead-lettered).
    let now = zaloflow::clock::system_now();
    let vip = "7101";
    let r = app
        .post_webhook(&event_at(
            "add_user_to_tag",
            "",
            now - 2_000,
            json!({"tag": {"name": "vip_customer", "user_ids": [vip]}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let chat = sink.wait_for_requests(1, WAIT).await;
    assert_eq!(chat[0].path, "/chat");
    assert!(
        chat[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Khách VIP mới"),
        "{:?}",
        chat[0].body
    );

    // A follower: SMS and task are recorded as skipped with their reason, never sent.
    let user = "7102";
    let r = app
        .post_webhook(&event_at(
            "follow",
            user,
            now - 1_000,
            json!({"source": "oa_profile"}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    let url = format!("{}/admin/outbox?status=skipped", app.base);
    let deadline = Instant::now() + WAIT;
    let jobs = loop {
        let (status, page) = get_json(&url).await;
        assert_eq!(status, 200, "{page}");
        let jobs = page["jobs"].as_array().cloned().unwrap_or_default();
        if jobs.len() >= 3 || Instant::now() > deadline {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The new VIP never wrote to the OA: the welcome Zalo would refuse (-230) is a skipped
    // record with its reason, not a send.
    let (vip_jobs, jobs): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|j| j["user_id"] == vip);
    assert_eq!(vip_jobs.len(), 1, "{vip_jobs:#?}");
    assert_eq!(vip_jobs[0]["channel"], "zalo");
    assert_eq!(vip_jobs[0]["skip_reason"], "window_closed");
    let mut channels: Vec<&str> = jobs
        .iter()
        .map(|j| j["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["sms", "task"], "{jobs:#?}");
    for j in &jobs {
        assert_eq!(j["status"], "skipped");
        assert_eq!(j["skip_reason"], "not_configured");
        assert_eq!(j["attempts"], 0, "never claimed: {j}");
        assert_eq!(j["user_id"], user);
        assert_eq!(j["rule_id"], "lien_he");
    }
    let sms_job = jobs.iter().find(|j| j["channel"] == "sms").unwrap();
    assert_eq!(
        sms_job["last_error"],
        "skipped: SMS is not configured: set ZALOFLOW_SMS_URL to your SMS gateway's URL"
    );
    // The notify to `agents` went to the default webhook; nothing is dead.
    let (_, dead) = get_json(&format!("{}/admin/outbox?status=dead", app.base)).await;
    assert_eq!(dead["jobs"].as_array().map(Vec::len), Some(0), "{dead}");
    wait_until(WAIT, || async {
        sink.requests()
            .iter()
            .any(|r| r.body["text"].as_str().unwrap_or("").contains(user))
    })
    .await;
    assert!(sink.requests().iter().all(|r| r.path == "/chat"));
    // The contact's timeline shows them.
    let (status, detail) = get_json(&format!("{}/admin/contacts/{user}", app.base)).await;
    assert_eq!(status, 200, "{detail}");
    let skipped: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["job"]["status"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 2, "{detail:#}");
    // /metrics counts them apart.
    let metrics = client()
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("zaloflow_jobs_skipped_total{channel=\"sms\",reason=\"not_configured\"}"),
        "{metrics}"
    );
    app.shutdown().await;
}

/// Zalo's clock runs ahead: a message stamped three hours ahead is answered at once, planned
/// as of when it arrived.
async fn a_future_stamped_event_is_answered_at_once(kind: &str) {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = HttpSink::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tra_loi.yaml"),
        "rules:\n  - id: tra_loi\n    when: message\n    do:\n      - send: Dạ shop nghe!\n",
    )
    .unwrap();
    let env = contract_only(&zalo, &sink, dir.path());
    let app = TestApp::spawn(config(db.url(), &as_refs(&env))).await;
    let posted = zaloflow::clock::system_now();
    let ahead = posted + 3 * 3_600_000;
    let r = app
        .post_webhook(&event_at(
            "user_send_text",
            "7201",
            ahead,
            json!({"message": {"text": "shop ơi", "msg_id": "m-ahead"}}),
        ))
        .await;
    assert_eq!(r.status(), 200);
    wait_until(WAIT, || async {
        zalo.messages()
            .iter()
            .any(|m| m.user_id.as_deref() == Some("7201"))
    })
    .await;
    // The job as stored (its outcome may still be on its way: any status).
    let (_, page) = get_json(&format!("{}/admin/outbox", app.base)).await;
    let job = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["channel"] == "zalo")
        .unwrap_or_else(|| panic!("{page}"));
    assert!(
        job["run_at"].as_i64().unwrap() < ahead - 3_000_000,
        "planned at the future stamp: {job}"
    );
    app.shutdown().await;
}

/// A reload: a new finding shows in `/readyz`; in strict mode the reload is refused, the last
/// good rules keep running and `/readyz` says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_are_checked_and_strict_mode_refuses_them() {
    for strict in [false, true] {
        let db = Db::new("sqlite").await;
        let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
        let sink = HttpSink::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "rules:\n  - id: chao\n    when: follow\n    do:\n      - send: Chào!\n",
        )
        .unwrap();
        let mut env = contract_only(&zalo, &sink, dir.path());
        env.push(("ZALOFLOW_STRICT_CONFIG".into(), strict.to_string()));
        let app = TestApp::spawn(config(db.url(), &as_refs(&env))).await;
        let ready = || async {
            client()
                .get(format!("{}/readyz", app.base))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        };
        assert_eq!(ready().await["degraded"], false);
        std::fs::write(
            dir.path().join("b.yaml"),
            "rules:\n  - id: sms_moi\n    when: follow\n    do:\n      - sms: {text: Chào, to: \"0912345678\"}\n",
        )
        .unwrap();
        let deadline = Instant::now() + WAIT;
        let v = loop {
            let v = ready().await;
            let changed = if strict {
                !strings(&v["rules"]["pending_errors"]).is_empty()
            } else {
                v["degraded"] == true
            };
            if changed || Instant::now() > deadline {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if strict {
            let errors = strings(&v["rules"]["pending_errors"]);
            assert_eq!(errors.len(), 1, "{v:#}");
            assert!(errors[0].contains("b.yaml:5:9: rule sms_moi: `sms` cannot run: SMS is not configured: set ZALOFLOW_SMS_URL"), "{errors:?}");
            assert!(
                errors[0].contains("ZALOFLOW_STRICT_CONFIG=true"),
                "{errors:?}"
            );
            assert_eq!(v["rules"]["rules"], 1, "the last good rules keep running");
            assert_eq!(v["degraded"], false);
        } else {
            assert_eq!(v["rules"]["rules"], 2, "{v:#}");
            let f = strings(&v["findings"]);
            assert!(
                f[0].starts_with(&format!(
                    "{}:5:9: rule sms_moi",
                    dir.path().join("b.yaml").display()
                )),
                "{f:?}"
            );
        }
        app.shutdown().await;
    }
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zaloflow"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ZALOFLOW_LANG", "en")
        .current_dir(std::env::temp_dir());
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `serve` names the findings at start (and starts); with ZALOFLOW_STRICT_CONFIG=true the same
/// findings refuse the start: exit non-zero, each finding printed.
#[test]
fn serve_logs_findings_at_start_and_strict_mode_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_dir(&[("lien_he.yaml", CONTACT_RULES)]);
    let db = format!("sqlite://{}", dir.path().join("z.db").display());
    let common = |c: &mut Command| {
        c.env("DATABASE_URL", &db)
            .env("PORT", free_port().to_string())
            .env("ZALOFLOW_RULES", rules.path())
            .env("ZALOFLOW_TICK", "off")
            .env("ZALOFLOW_CHAT_WEBHOOK_URL", "http://127.0.0.1:9/chat")
            .env("ZALO_ACCESS_TOKEN", "a")
            .env("ZALO_REFRESH_TOKEN", "r");
    };
    let mut strict = bin();
    common(&mut strict);
    let out = strict
        .env("ZALOFLOW_STRICT_CONFIG", "true")
        .args(["serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lien_he.yaml:7:9: rule lien_he: `sms` cannot run: SMS is not configured: set ZALOFLOW_SMS_URL"), "{err}");
    assert!(err.contains("ZALOFLOW_STRICT_CONFIG=true: "), "{err}");
    assert!(err.contains("cannot run with this configuration"), "{err}");

    let mut degraded = bin();
    common(&mut degraded);
    let mut child = degraded
        .args(["serve"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut finding, mut listening, mut target) = (false, false, false);
    while !(finding && listening && target) && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            finding |= line.contains("lien_he.yaml:7:9") && line.contains("ZALOFLOW_SMS_URL");
            target |=
                line.contains("ZALOFLOW_CHAT_WEBHOOK_URL") && line.contains("http://127.0.0.1:9/…");
            listening |= line.contains("zaloflow listening");
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(finding && listening && target, "{seen:#?}");
}

/// `rules check` reports the findings as warnings with the deployment's environment, and says
/// plainly when no deployment configuration was found.
#[test]
fn rules_check_reports_findings_with_the_deployment_environment() {
    let rules = rules_dir(&[("lien_he.yaml", CONTACT_RULES)]);
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let mut c = bin();
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c
            .args(["rules", "check", "--rules"])
            .arg(rules.path())
            .args(extra)
            .output()
            .unwrap();
        // Findings are warnings on stdout; whether the channels were checked is said on stderr.
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, out) = run(&[], &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("channel settings NOT checked: no deployment configuration found"),
        "{out}"
    );
    assert!(!out.contains("ZALOFLOW_SMS_URL"), "{out}");

    let env = [("ZALOFLOW_CHAT_WEBHOOK_URL", "http://127.0.0.1:9/chat")];
    let (code, out) = run(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    let sms = format!(
        "{}:7:9: warning: rule lien_he: `sms` cannot run: SMS is not configured: set ZALOFLOW_SMS_URL to your SMS gateway's URL; until then it is recorded as skipped",
        rules.path().join("lien_he.yaml").display()
    );
    assert!(out.lines().any(|l| l == sms), "{out}");
    assert!(out.contains("ZALOFLOW_TASK_WEBHOOK_URL"), "{out}");
    assert!(!out.contains("\"agents\""), "{out}");
    assert!(
        out.contains("channels checked against this deployment's configuration"),
        "{out}"
    );
    let (code, _) = run(&env, &["--deny-warnings"]);
    assert_eq!(code, Some(1));
}

/// A URL in a rule file or a draft sent to the admin API that names an internal host is a
/// warning with where it was written (customers' phones could not open it; the service never
/// fetches it, and a rule file that loaded before still loads); ZALOFLOW_ALLOW_PRIVATE_URLS=true
/// allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_and_admin_urls_to_private_addresses_are_warned_about() {
    let draft = "rules:\n  - id: thu\n    when: follow\n    do:\n      - send:\n          text: Xem ưu đãi\n          via: zalo_promotion\n          buttons:\n            - title: Xem\n              url: http://192.168.1.10/admin\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("thu.yaml"), draft).unwrap();
    let set = zaloflow::rules::load_dir(dir.path(), &english()).unwrap();
    let warn = zaloflow::rules::hygiene::check(&set);
    assert_eq!((warn[0].pos.line, warn[0].pos.col), (10, 20), "{warn:?}");
    assert!(
        warn[0]
            .message
            .contains("button `url`: `http://192.168.1.10/admin` points to an internal address"),
        "{warn:?}"
    );
    let allowed = zaloflow::rules::LoadOptions {
        allow_private_urls: true,
        ..Default::default()
    };
    let set = zaloflow::rules::load_dir(dir.path(), &allowed).unwrap();
    assert!(zaloflow::rules::hygiene::check(&set).is_empty());

    let db = Db::new("sqlite").await;
    let empty = tempfile::tempdir().unwrap();
    let app = TestApp::spawn(config(
        db.url(),
        &[
            ("ZALOFLOW_ADMIN_TOKEN", TOKEN),
            ("ZALOFLOW_RULES", empty.path().to_str().unwrap()),
            // The warning asserted below is the English one (the default is Vietnamese).
            ("ZALOFLOW_LANG", "en"),
        ],
    ))
    .await;
    let link = "rules:\n  - id: mail\n    when: follow\n    do:\n      - email:\n          subject: Hi\n          text: Hi\n          links: {ua: \"http://metadata.internal/latest\"}\n";
    let r: Value = client()
        .post(format!("{}/admin/rules/check", app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"files": {"mail.yaml": link}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ok"], true, "{r}");
    assert!(
        r["warnings"][0]["message"]
            .as_str()
            .unwrap()
            .contains("link `ua`: `http://metadata.internal/latest` points to an internal address"),
        "{r}"
    );
    app.shutdown().await;
}

/// Behind Fly's proxy (FLY_APP_NAME set) the per-IP limit of the public routes counts the
/// client of `Fly-Client-IP`, not the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_fly_per_ip_limits_use_fly_client_ip() {
    let db = Db::new("sqlite").await;
    let rules = rules_dir(&[("forms.yaml", "forms:\n  - dang_ky\nrules: []\n")]);
    let app = TestApp::spawn(config(
        db.url(),
        &[
            ("ZALOFLOW_RULES", rules.path().to_str().unwrap()),
            ("FLY_APP_NAME", "shop"),
            ("ZALOFLOW_PUBLIC_RATE_PER_MINUTE", "2"),
        ],
    ))
    .await;
    let post = |ip: &'static str, n: u32| {
        let base = app.base.clone();
        async move {
            client()
                .post(format!("{base}/forms/dang_ky"))
                .header("Fly-Client-IP", ip)
                .json(&json!({"phone": format!("09123456{n:02}")}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post("203.0.113.7", 1).await, 201);
    assert_eq!(post("203.0.113.7", 2).await, 201);
    assert_eq!(post("203.0.113.7", 3).await, 429);
    // Another customer behind the same proxy is not held back.
    assert_eq!(post("198.51.100.20", 4).await, 201);
    app.shutdown().await;
}

/// Load options whose messages are in English (the product's default is Vietnamese): the
/// assertions of this file name English words.
fn english() -> zaloflow::rules::LoadOptions {
    zaloflow::rules::LoadOptions {
        lang: zaloflow::i18n::Lang::En,
        ..Default::default()
    }
}

/// A command that fails says why once, on stderr, to whoever ran it: not again as a log line,
/// and a database error not three times over (the driver's message repeated by each error
/// wrapping it).
#[test]
fn a_commands_failure_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("no-such-folder").join("z.db").display()
    );
    let csv = dir.path().join("c.csv");
    std::fs::write(&csv, "user_id,name\n123,An\n").unwrap();
    for (args, why) in [
        (
            vec!["contacts", "import", csv.to_str().unwrap()],
            "unable to open database file",
        ),
        (vec!["tick", "--at", "garbage"], "is not an RFC 3339 time"),
    ] {
        let out = bin()
            .env("DATABASE_URL", &url)
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.matches(why).count(), 1, "{args:?}:\n{err}");
        let line = err.lines().find(|l| l.contains(why)).unwrap();
        assert!(line.starts_with("zaloflow: "), "{line}");
        assert!(!err.contains("ERROR"), "{err}");
    }
    // In the staff's language, with what was typed.
    let out = bin()
        .env("DATABASE_URL", &url)
        .env("ZALOFLOW_LANG", "vi")
        .args(["tick", "--at", "sáng mai"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zaloflow: --at “sáng mai” không phải một thời điểm RFC 3339"),
        "{err}"
    );
}

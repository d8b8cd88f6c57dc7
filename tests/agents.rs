//! Agents are people (issue 30), over real HTTP on SQLite and PostgreSQL: an admin creates
//! agents with the CLI and the admin API; an agent signs in to the board with a name and a
//! password, works the board (its handoff actions and live events) under their own name and
//! reaches nothing else of `/admin` (403); a wrong password and an unknown name get the same
//! answer; sessions expire on the service's clock, and a revoked or disabled agent is out at
//! once; the admin token still does everything.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use zaloflow::clock::Clock;
use zaloflow::store::{self, DynStore, Effects};

const TOKEN: &str = "agents-admin-token-1234";
const HOUR: i64 = 3_600_000;
const MINH_PW: &str = "minh-mat-khau-dai";
const LAN_PW: &str = "lan-mat-khau-dai";

struct Shop {
    db: Db,
    app: TestApp,
    store: DynStore,
    clock: Clock,
}

async fn shop(kind: &str, extra: &[(&str, &str)]) -> Shop {
    let db = Db::new(kind).await;
    let mut vars = vec![
        ("ZALOFLOW_ADMIN_TOKEN", TOKEN),
        ("ZALOFLOW_AGENT_SESSION_HOURS", "8"),
    ];
    vars.extend_from_slice(extra);
    let config = config(db.url(), &vars);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let clock = Clock::fixed(zaloflow::clock::system_now());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(zaloflow::run_with_clock(
        config,
        listener,
        async move {
            let _ = rx.await;
        },
        clock.clone(),
    ));
    let app = TestApp {
        base,
        stop: Some(tx),
        handle,
    };
    wait_until(Duration::from_secs(20), || async {
        reqwest::get(format!("{}/healthz", app.base)).await.is_ok()
    })
    .await;
    let store = store::open(db.url()).await.unwrap();
    Shop {
        db,
        app,
        store,
        clock,
    }
}

/// The answers as they are: redirects not followed.
fn http() -> reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    })
    .clone()
}

/// The language a CLI call is made in: English, but for `--vi` calls (the test of the
/// Vietnamese words), which pass the flag here, not to the command.
fn lang_of(args: &[&str]) -> &'static str {
    if args.first() == Some(&"--vi") {
        "vi"
    } else {
        "en"
    }
}

/// `zaloflow agents ARGS` on the shop's database, `stdin` on its standard input; a first
/// argument `--vi` asks for Vietnamese (`lang_of`) and is not passed on.
fn cli(db_url: &str, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .arg("agents")
        .args(args.iter().filter(|a| **a != "--vi"))
        .env("DATABASE_URL", db_url)
        .env("ZALOFLOW_CONFIG", "/nonexistent/zaloflow.toml")
        .env("ZALOFLOW_LANG", lang_of(args))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A sign-in: the status, the page (on a refusal) and the session cookie (`zf_session=…`).
async fn sign_in(base: &str, name: &str, password: &str) -> (u16, String, Option<String>) {
    let r = http()
        .post(format!("{base}/admin/board/signin"))
        .form(&[
            ("name", name),
            ("password", password),
            ("next", "/admin/board"),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("zf_session=") && !c.starts_with("zf_session=;"))
        .map(str::to_string);
    (status, r.text().await.unwrap(), cookie)
}

/// The `name=value` part of a Set-Cookie header.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_string()
}

async fn get_with(base: &str, path: &str, cookie: &str) -> reqwest::Response {
    http()
        .get(format!("{base}{path}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn board_status(base: &str, cookie: &str) -> u16 {
    get_with(base, "/admin/board", cookie)
        .await
        .status()
        .as_u16()
}

async fn api(method: reqwest::Method, base: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut rb = http()
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Opens a handoff for `user` straight in the store (as the inbox would); its id.
async fn open_handoff(store: &DynStore, user: &str, at: i64) -> i64 {
    use zaloflow::handoff;
    let c = store::Contact {
        user_id: user.into(),
        display_name: Some(format!("Khách {user}")),
        ..Default::default()
    };
    let mut e = Effects::default();
    let plan = handoff::plan(
        &handoff::HandoffPolicy::default(),
        handoff::HandoffRequest {
            user_id: user,
            contact: &c,
            rule_id: "manual",
            team: Some("agents"),
            advisor: None,
            opened_at: at,
            response_ms: 2 * HOUR,
            priority: zaloflow::rules::model::Priority::Normal,
            note: None,
            message: None,
            source: "test",
            job_priority: 0,
        },
    );
    e.handoffs
        .push(handoff::HandoffChange::Open(Box::new(plan)));
    store.apply_effects(&e, at).await.unwrap();
    store
        .list_handoffs(&[], 100)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.user_id == user)
        .unwrap()
        .id
}

async fn board_post(base: &str, cookie: &str, id: i64, action: &str, typed: &str) -> u16 {
    http()
        .post(format!("{base}/admin/board/handoffs/{id}/{action}"))
        .header("cookie", cookie)
        .form(&[("agent", typed)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    an_agent_works_the_board_under_their_name_and_nothing_else,
    sessions_expire_and_revoked_or_disabled_agents_are_out_at_once,
);

async fn an_agent_works_the_board_under_their_name_and_nothing_else(kind: &str) {
    let s = shop(kind, &[]).await;
    let base = s.app.base.clone();

    // Created by the CLI (password on standard input) and by the admin API.
    let out = cli(s.db.url(), &["add", "Minh"], &format!("{MINH_PW}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\"Minh\" created"),
        "{}",
        text(&out.stdout)
    );
    let out = cli(s.db.url(), &["add", "Bảo"], "ngan\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("at least 10 characters"),
        "{}",
        text(&out.stderr)
    );
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents",
        Some(json!({"name": "Lan", "password": LAN_PW})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["sessions"].as_i64()),
        (Some("Lan"), Some(0))
    );
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents",
        Some(json!({"name": "Hoa", "password": "ngan"})),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("weak_password"))
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at least 10"));
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents",
        Some(json!({"name": "Minh", "password": LAN_PW})),
    )
    .await;
    assert_eq!((st, v["error"]["code"].as_str()), (409, Some("name_taken")));
    // The store holds an Argon2id hash, never the password.
    let creds = s.store.agent_credentials("Minh").await.unwrap().unwrap();
    assert!(
        creds.password_hash.starts_with("$argon2id$"),
        "{}",
        creds.password_hash
    );
    assert!(!creds.password_hash.contains(MINH_PW));

    // Without a session: the sign-in form.
    let r = http()
        .get(format!("{base}/admin/board"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("name=\"password\"") && page.contains("Đăng nhập"),
        "{page}"
    );

    // A wrong password and an unknown name: the same answer, no session.
    let wrong = sign_in(&base, "Minh", "not-the-password").await;
    let unknown = sign_in(&base, "Mallory", MINH_PW).await;
    assert_eq!(wrong.0, 401);
    assert!(
        wrong.1.contains("Tên hoặc mật khẩu không đúng"),
        "{}",
        wrong.1
    );
    assert_eq!((wrong.0, &wrong.1), (unknown.0, &unknown.1));
    assert!(wrong.2.is_none() && unknown.2.is_none());

    let (st, _, set) = sign_in(&base, "Minh", MINH_PW).await;
    assert_eq!(st, 303);
    let set = set.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/admin", "Max-Age=28800"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("Secure"), "http: no Secure flag: {set}");
    let cookie = pair(&set);
    // The store keeps the token's SHA-256, not the token.
    let token = cookie.trim_start_matches("zf_session=");
    let sha = zaloflow::agents::token_sha256(token);
    let now = s.clock.now();
    assert!(s.store.session_agent(&sha, now).await.unwrap().is_some());
    assert!(s.store.session_agent(token, now).await.unwrap().is_none());

    // The board, with who is signed in and the sign-out button.
    let r = get_with(&base, "/admin/board", &cookie).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Đang đăng nhập: Minh"), "{page}");
    assert!(page.contains("action=\"/admin/board/logout\""), "{page}");
    // No link to a page the agent may not open.
    assert!(!page.contains("href=\"/admin/board/campaigns\""), "{page}");
    // Its live events.
    let r = get_with(&base, "/admin/board/events", &cookie).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(r);

    // Nothing else of /admin: 403, and nothing done.
    for path in [
        "/admin/contacts",
        "/admin/handoffs",
        "/admin/agents",
        "/admin/outbox",
        "/admin/rules",
        "/admin/report",
        "/admin/report.html",
        "/admin/zalo/connect",
        "/admin/board/campaigns",
    ] {
        let r = get_with(&base, path, &cookie).await;
        assert_eq!(r.status(), 403, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "agent_forbidden", "{path}");
    }
    let r = http()
        .post(format!("{base}/admin/agents"))
        .header("cookie", &cookie)
        .json(&json!({"name": "Mallory", "password": "mallory-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(s.store.get_agent("Mallory", now).await.unwrap().is_none());

    // Claims and resolutions go under the account's name, whatever name is typed.
    let id = open_handoff(&s.store, "7001", now - HOUR).await;
    assert_eq!(
        board_post(&base, &cookie, id, "claim", "Mallory").await,
        303
    );
    let h = s.store.get_handoff(id).await.unwrap().unwrap();
    assert_eq!(h.claimed_by.as_deref(), Some("Minh"));
    assert_eq!(h.responded_by.as_deref(), Some("Minh"));
    assert_eq!(board_post(&base, &cookie, id, "resolve", "").await, 303);
    let h = s.store.get_handoff(id).await.unwrap().unwrap();
    assert_eq!(
        (h.status.as_str(), h.resolved_by.as_deref()),
        ("resolved", Some("Minh"))
    );

    // The admin token still does everything, the board included, under a typed name.
    let (st, v) = api(reqwest::Method::GET, &base, "/admin/agents", None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lan", "Minh"]);
    assert_eq!(v["agents"][1]["sessions"], 1);
    let out = cli(s.db.url(), &["list"], "");
    assert!(out.status.success());
    let listed = text(&out.stdout);
    assert!(
        listed.contains("Lan") && listed.contains("Minh"),
        "{listed}"
    );
    // The same in Vietnamese, the shop's default: the table, a refusal and its reason.
    let out = cli(s.db.url(), &["--vi", "list"], "");
    let listed = text(&out.stdout);
    assert!(
        listed.starts_with("tên") && listed.contains("đang dùng"),
        "{listed}"
    );
    let out = cli(s.db.url(), &["--vi", "add", "Bảo"], "ngan\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("mật khẩu quá ngắn: dùng ít nhất 10 ký tự"),
        "{}",
        text(&out.stderr)
    );
    let out = cli(s.db.url(), &["--vi", "disable", "Nobody"], "");
    assert!(
        text(&out.stderr).contains("không có nhân viên nào tên \"Nobody\""),
        "{}",
        text(&out.stderr)
    );
    let (st, _) = api(reqwest::Method::GET, &base, "/admin/contacts", None).await;
    assert_eq!(st, 200);
    let admin_cookie = format!(
        "{}={}",
        zaloflow::http::board::SESSION_COOKIE,
        zaloflow::http::board::session_value(TOKEN)
    );
    let id2 = open_handoff(&s.store, "7002", now - HOUR).await;
    assert_eq!(board_status(&base, &admin_cookie).await, 200);
    assert_eq!(
        board_post(&base, &admin_cookie, id2, "claim", "Admin Hoa").await,
        303
    );
    let h = s.store.get_handoff(id2).await.unwrap().unwrap();
    assert_eq!(h.claimed_by.as_deref(), Some("Admin Hoa"));
    // Bearer and agent cookie together: the admin's request.
    let r = http()
        .get(format!("{base}/admin/contacts"))
        .bearer_auth(TOKEN)
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Signing out ends the session in the store, not only in the browser.
    let r = http()
        .post(format!("{base}/admin/board/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("zf_session=;")));
    assert_eq!(board_status(&base, &cookie).await, 401);
    assert!(s.store.session_agent(&sha, now).await.unwrap().is_none());
    s.app.shutdown().await;
}

async fn sessions_expire_and_revoked_or_disabled_agents_are_out_at_once(kind: &str) {
    let s = shop(kind, &[]).await;
    let base = s.app.base.clone();
    let (st, _) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents",
        Some(json!({"name": "Minh", "password": MINH_PW})),
    )
    .await;
    assert_eq!(st, 201);
    let signed = || {
        let base = base.clone();
        async move { pair(&sign_in(&base, "Minh", MINH_PW).await.2.unwrap()) }
    };

    // Expiry: 8 hours here (ZALOFLOW_AGENT_SESSION_HOURS), on the service's clock.
    let t0 = s.clock.now();
    let cookie = signed().await;
    s.clock.set(t0 + 8 * HOUR - 1);
    assert_eq!(board_status(&base, &cookie).await, 200);
    s.clock.set(t0 + 8 * HOUR);
    let r = get_with(&base, "/admin/board", &cookie).await;
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(page.contains("đã hết hạn"), "{page}");
    assert_eq!(
        get_with(&base, "/admin/board/events", &cookie)
            .await
            .status(),
        401
    );

    // Revoked from the CLI: out at once, every session.
    let (a, b) = (signed().await, signed().await);
    assert_eq!(board_status(&base, &a).await, 200);
    let out = cli(s.db.url(), &["revoke", "Minh"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 session(s) ended"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(board_status(&base, &a).await, 401);
    assert_eq!(board_status(&base, &b).await, 401);
    let out = cli(s.db.url(), &["revoke", "Nobody"], "");
    assert!(!out.status.success());

    // Revoked by the admin API.
    let c = signed().await;
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/revoke",
        None,
    )
    .await;
    assert_eq!((st, v["sessions_ended"].as_u64()), (200, Some(1)));
    assert_eq!(board_status(&base, &c).await, 401);

    // Disabled by the admin API: the session stops, and signing in is refused like a wrong
    // password.
    let d = signed().await;
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/disable",
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert!(v["disabled_at"].is_i64(), "{v}");
    assert_eq!(board_status(&base, &d).await, 401);
    let refused = sign_in(&base, "Minh", MINH_PW).await;
    let wrong = sign_in(&base, "Minh", "not-the-password").await;
    assert_eq!((refused.0, &refused.1), (wrong.0, &wrong.1));
    assert!(refused.2.is_none());
    let (st, _) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Nobody/disable",
        None,
    )
    .await;
    assert_eq!(st, 404);

    // Enabled by the admin API, a new password by the admin API: the old one no longer works.
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/enable",
        None,
    )
    .await;
    assert_eq!((st, v["disabled_at"].is_null()), (200, true), "{v}");
    let f = signed().await;
    let (st, v) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/password",
        Some(json!({"password": "short"})),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("weak_password"))
    );
    assert_eq!(
        board_status(&base, &f).await,
        200,
        "a refused change changes nothing"
    );
    let (st, _) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/password",
        Some(json!({"password": LAN_PW})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        board_status(&base, &f).await,
        401,
        "a new password ends the sessions"
    );
    assert_eq!(sign_in(&base, "Minh", MINH_PW).await.0, 401);
    assert_eq!(sign_in(&base, "Minh", LAN_PW).await.0, 303);
    let (st, _) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/password",
        Some(json!({"password": MINH_PW})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents/Minh/disable",
        None,
    )
    .await;
    assert_eq!(st, 200);

    // Enabled again from the CLI, then disabled from the CLI: out at once.
    let out = cli(s.db.url(), &["enable", "Minh"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let e = signed().await;
    assert_eq!(board_status(&base, &e).await, 200);
    let out = cli(s.db.url(), &["disable", "Minh"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(board_status(&base, &e).await, 401);
    s.app.shutdown().await;
}

/// The sign-in page and the board's bar speak the shop's language; the cookie is Secure
/// behind https; an agent's name is shown as text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_page_speaks_english_when_asked_and_escapes_names() {
    let s = shop(
        "sqlite",
        &[
            ("ZALOFLOW_LANG", "en"),
            ("ZALOFLOW_PUBLIC_URL", "https://shop.example"),
        ],
    )
    .await;
    let base = s.app.base.clone();
    let name = "<i>Hoa</i> & co";
    let (st, _) = api(
        reqwest::Method::POST,
        &base,
        "/admin/agents",
        Some(json!({"name": name, "password": LAN_PW})),
    )
    .await;
    assert_eq!(st, 201);
    let r = http()
        .get(format!("{base}/admin/board/signin"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Sign in") && page.contains("Password"),
        "{page}"
    );
    assert!(
        !page.contains("Đăng nhập") && !page.contains("Mật khẩu"),
        "{page}"
    );
    let (st, page, _) = sign_in(&base, name, "wrong-password-1").await;
    assert_eq!(st, 401);
    assert!(page.contains("Wrong name or password."), "{page}");
    let (_, _, set) = sign_in(&base, name, LAN_PW).await;
    let set = set.unwrap();
    assert!(set.contains("; Secure"), "{set}");
    let page = get_with(&base, "/admin/board", &pair(&set))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Signed in as &lt;i&gt;Hoa&lt;/i&gt; &amp; co"),
        "{page}"
    );
    assert!(!page.contains("<i>Hoa</i>"), "{page}");
    s.app.shutdown().await;
}

#[path = "common/webdriver.rs"]
mod webdriver;

/// In a real browser: an agent signs in through the form, sees who is signed in and no name
/// field, claims with the card's button under their own name, and signs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_signs_in_and_claims_in_chromium() {
    let s = shop("sqlite", &[]).await;
    let base = s.app.base.clone();
    let out = cli(
        s.db.url(),
        &["add", "Nguyễn Văn Minh"],
        &format!("{MINH_PW}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = open_handoff(&s.store, "7001", s.clock.now() - HOUR).await;

    let b = webdriver::Browser::start().await;
    // A chat link: the sign-in page, then back to the link's page once signed in.
    b.goto(&format!("{base}/admin/board/handoffs/{id}/claim"))
        .await;
    let name = b.find("input[name=name]").await;
    b.type_into(&name, "Nguyễn Văn Minh").await;
    let password = b.find("input[name=password]").await;
    b.type_into(&password, MINH_PW).await;
    let submit = b.find("form[action='/admin/board/signin'] button").await;
    b.click(&submit).await;
    // The sign-in page was served at the link's address: wait for the link's own page (no
    // password field), not just the address, or the next page races the sign-in.
    wait_until(Duration::from_secs(10), || async {
        b.url().await == format!("{base}/admin/board/handoffs/{id}/claim")
            && !b.source().await.contains("name=\"password\"")
    })
    .await;
    b.goto(&format!("{base}/admin/board")).await;
    let page = b.text().await;
    assert!(page.contains("Đang đăng nhập: Nguyễn Văn Minh"), "{page}");
    // The live list may be swapped in between two commands, the card missing for a moment:
    // the field is found and read in one script, until the card is there.
    let script = format!(
        "const e = document.querySelector('#h{id} input[name=agent]'); \
         return e ? getComputedStyle(e).display : null"
    );
    let mut shown = b.execute(&script).await;
    let start = std::time::Instant::now();
    while shown.is_null() && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        shown = b.execute(&script).await;
    }
    assert_eq!(shown, "none", "no name to type: the account's name is used");
    // Clicked from the page's script: the live list may be swapped in under a found element.
    let click = format!(
        "const e = document.querySelector('#h{id} button.claim'); if (e) e.click(); return !!e"
    );
    let start = std::time::Instant::now();
    while b.execute(&click).await != true && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_until(Duration::from_secs(10), || async {
        b.text().await.contains("Đang xử lý: Nguyễn Văn Minh")
    })
    .await;
    let h = s.store.get_handoff(id).await.unwrap().unwrap();
    assert_eq!(h.claimed_by.as_deref(), Some("Nguyễn Văn Minh"));

    // Signing out: the sign-in page again, and the board stays closed.
    b.execute("document.querySelector(\"form[action='/admin/board/logout'] button\").click()")
        .await;
    wait_until(Duration::from_secs(10), || async {
        b.source().await.contains("name=\"password\"")
    })
    .await;
    b.goto(&format!("{base}/admin/board")).await;
    assert!(b.source().await.contains("name=\"password\""));
    b.quit().await;
    s.app.shutdown().await;
}

/// Online guessing: after 10 wrong passwords for one name from one address, that name waits
/// (429), even with the right password; other names do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_wait() {
    let s = shop("sqlite", &[]).await;
    let base = s.app.base.clone();
    for (name, pw) in [("Trang", MINH_PW), ("Vy", LAN_PW)] {
        let (st, _) = api(
            reqwest::Method::POST,
            &base,
            "/admin/agents",
            Some(json!({"name": name, "password": pw})),
        )
        .await;
        assert_eq!(st, 201);
    }
    for _ in 0..10 {
        assert_eq!(sign_in(&base, "Trang", "guess-guess-guess").await.0, 401);
    }
    let (st, page, cookie) = sign_in(&base, "Trang", MINH_PW).await;
    assert_eq!(st, 429);
    assert!(page.contains("Đăng nhập sai quá nhiều lần"), "{page}");
    assert!(cookie.is_none());
    assert_eq!(sign_in(&base, "Vy", LAN_PW).await.0, 303);
    s.app.shutdown().await;
}

/// Without ZALOFLOW_ADMIN_TOKEN the admin API stays off, but agents still sign in to the board.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_sign_in_without_an_admin_token() {
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    let r = http()
        .get(format!("{}/admin/board", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let page = r.text().await.unwrap();
    assert!(page.contains("name=\"password\""), "{page}");
    assert!(
        !page.contains("name=\"token\""),
        "no admin form without a token: {page}"
    );
    let out = cli(db.url(), &["add", "Minh"], &format!("{MINH_PW}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (st, _, set) = sign_in(&app.base, "Minh", MINH_PW).await;
    assert_eq!(st, 303);
    let cookie = pair(&set.unwrap());
    assert_eq!(board_status(&app.base, &cookie).await, 200);
    let r = get_with(&app.base, "/admin/contacts", &cookie).await;
    assert_eq!(r.status(), 403);
    let r = http()
        .get(format!("{}/admin/contacts", app.base))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "admin_disabled");
    app.shutdown().await;
}

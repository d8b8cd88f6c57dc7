//! Connecting the OA from the browser (`/admin/zalo/connect`, OAuth v4 with PKCE against the
//! fake Zalo) and what `permission_revoked` does: OA jobs wait (never attempted, never dead),
//! staff are told once, `/readyz` says why, and connecting again sends the waiting jobs. The
//! storage parts run on SQLite and PostgreSQL; the whole flow once in headless Chromium.

mod common;

#[path = "common/webdriver.rs"]
mod webdriver;

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use common::*;
use serde_json::Value;
use zaloflow::channels::Payload;
use zaloflow::clock::Clock;
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeUser, FakeZalo, FakeZaloOptions};
use zaloflow::store::{self, DynStore};
use zaloflow::zalo::connect as oauth;
use zaloflow::zalo::token::{TokenConfig, TokenError};

const TOKEN: &str = "connect-test-admin-token";
const USER: &str = "5512345678901234567";
const WAIT: Duration = Duration::from_secs(20);

struct Shop {
    app: TestApp,
    store: DynStore,
    fake: FakeZalo,
    chat: HttpSink,
    _db: Db,
}

async fn fake() -> FakeZalo {
    let fake = FakeZalo::start(FakeZaloOptions {
        app_id: APP_ID.into(),
        ..FakeZaloOptions::default()
    })
    .await
    .unwrap();
    fake.add_user(FakeUser::new(USER, "Lan", Utc::now()));
    fake
}

/// The service on a port known before it starts (its public URL is the callback's base).
async fn shop_with(kind: &str, extra: &[(&str, &str)], clock: Clock) -> Shop {
    let db = Db::new(kind).await;
    let fake = fake().await;
    let chat = HttpSink::start().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let chat_url = chat.url("/chat");
    let mut vars: Vec<(&str, &str)> = vec![
        ("ZALO_APP_SECRET", "fake-app-secret"),
        ("ZALO_API_BASE", fake.base_url()),
        ("ZALO_OAUTH_BASE", fake.base_url()),
        ("ZALO_ZNS_BASE", fake.base_url()),
        ("ZALOFLOW_ADMIN_TOKEN", TOKEN),
        ("ZALOFLOW_PUBLIC_URL", &base),
        ("ZALOFLOW_CHAT_WEBHOOK_URL", &chat_url),
    ];
    vars.extend_from_slice(extra);
    let config = config(db.url(), &vars);
    let store = zaloflow::open_store(&config).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(zaloflow::run_with_clock(
        config,
        listener,
        async move {
            let _ = rx.await;
        },
        clock,
    ));
    let app = TestApp {
        base,
        stop: Some(tx),
        handle,
    };
    wait_until(WAIT, || async {
        reqwest::get(format!("{}/healthz", app.base)).await.is_ok()
    })
    .await;
    Shop {
        app,
        store,
        fake,
        chat,
        _db: db,
    }
}

async fn shop(kind: &str) -> Shop {
    shop_with(kind, &[], Clock::system()).await
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn set_cookies(r: &reqwest::Response) -> HashMap<String, String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cookie_header(c: &HashMap<String, String>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location in {}", r.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// A browser without the browser: the page's session, then "Kết nối" — answers the cookies
/// and Zalo's permission URL.
async fn start_flow(s: &Shop) -> (HashMap<String, String>, String) {
    let http = no_redirects();
    let r = http
        .get(format!("{}/admin/zalo/connect?token={TOKEN}", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let mut jar = set_cookies(&r);
    let r = http
        .post(format!("{}/admin/zalo/connect/start", s.app.base))
        .header("cookie", cookie_header(&jar))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    jar.extend(set_cookies(&r));
    let to = location(&r);
    assert!(
        to.starts_with(&format!("{}/v4/oa/permission?", s.fake.base_url())),
        "{to}"
    );
    (jar, to)
}

/// Zalo's approval (auto-approve): the callback URL Zalo sends the browser to.
async fn approve(s: &Shop, permission_url: &str) -> String {
    s.fake.connect(|c| c.auto_approve = true);
    let r = no_redirects().get(permission_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    location(&r)
}

async fn callback(jar: &HashMap<String, String>, url: &str) -> (u16, String, String) {
    let r = no_redirects()
        .get(url)
        .header("cookie", cookie_header(jar))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let to = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, to, r.text().await.unwrap())
}

async fn connect(s: &Shop) {
    let (jar, to) = start_flow(s).await;
    let back = approve(s, &to).await;
    let (status, to, body) = callback(&jar, &back).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(to, "/admin/zalo/connect?msg=connected");
}

async fn send_text(store: &DynStore, text: &str) -> i64 {
    let p = Payload::Zalo {
        user_id: USER.into(),
        kind: Default::default(),
        text: Some(text.into()),
        attachment: None,
    };
    let now = zaloflow::clock::system_now();
    store
        .enqueue_jobs(&[zaloflow::outbox::job(&p, now, "test")], now)
        .await
        .unwrap();
    let payload = serde_json::to_string(&p).unwrap();
    store
        .list_jobs(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.payload == payload)
        .map(|j| j.id)
        .max()
        .unwrap()
}

async fn readyz(s: &Shop) -> (u16, Value) {
    let r = client()
        .get(format!("{}/readyz", s.app.base))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn notices(chat: &HttpSink) -> Vec<String> {
    chat.requests()
        .into_iter()
        .filter_map(|r| r.body["text"].as_str().map(str::to_string))
        .filter(|t| t.contains("/admin/zalo/connect"))
        .collect()
}

// --- the whole flow in headless Chromium ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_in_chromium_then_send_with_the_new_token() {
    let s = shop("sqlite").await;
    let b = webdriver::Browser::start().await;
    b.goto(&format!("{}/admin/zalo/connect?token={TOKEN}", s.app.base))
        .await;
    assert_eq!(b.url().await, format!("{}/admin/zalo/connect", s.app.base));
    let text = b.text().await;
    assert!(text.contains("Chưa kết nối"), "{text}");
    assert!(text.contains("chưa có mã truy cập"), "no token yet: {text}");
    let connect = b.find("#connect").await;
    b.click(&connect).await;
    // Zalo's permission page (the fake's), then back.
    let approve = b.find("#approve").await;
    assert!(b.url().await.starts_with(s.fake.base_url()));
    b.click(&approve).await;
    let start = std::time::Instant::now();
    let text = loop {
        let t = b.text().await;
        if t.contains("Đã kết nối OA") {
            break t;
        }
        assert!(start.elapsed() < WAIT, "{} {t}", b.url().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        b.url().await,
        format!("{}/admin/zalo/connect?msg=connected", s.app.base)
    );
    let oa_id = s.fake.connect(|c| c.oa_id.clone());
    assert!(text.contains(&oa_id), "{text}");
    assert!(text.contains("✅ Đã kết nối"), "{text}");
    assert!(text.contains("(còn 1 ngày"), "expiry shown: {text}");
    assert!(text.contains("chưa gia hạn lần nào"), "{text}");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    b.screenshot(&shots.join("connect-oa.png")).await;
    b.quit().await;

    // The pair Zalo issued is the one stored, with the OA.
    let (access, refresh) = s.fake.current_tokens();
    let stored = s.store.load_tokens().await.unwrap().unwrap();
    assert_eq!(Some(stored.access_token.clone()), access);
    assert_eq!(Some(stored.refresh_token), refresh);
    let conn = s.store.oa_connection().await.unwrap();
    assert_eq!(conn.oa_id.as_deref(), Some(oa_id.as_str()));
    assert!(!conn.needs_reconnect());

    // An OA send now goes out with the new token.
    send_text(&s.store, "Chào Lan").await;
    let sent = s.fake.wait_for_messages(1, WAIT).await;
    assert_eq!(sent.len(), 1);
    let arrival = s.fake.arrivals_on(zaloflow::fakes::zalo::CS_PATH);
    assert_eq!(
        arrival.last().unwrap().access_token.as_deref(),
        Some(stored.access_token.as_str())
    );
    s.app.shutdown().await;
}

// --- permission_revoked, both backends ---

async fn revoked_pauses_then_reconnect_resumes(kind: &str) {
    let s = shop(kind).await;
    connect(&s).await;
    send_text(&s.store, "trước").await;
    s.fake.wait_for_messages(1, WAIT).await;
    let (status, r) = readyz(&s).await;
    assert_eq!(
        (status, r["zalo_oa"]["state"].as_str()),
        (200, Some("connected"))
    );

    // The shop takes the permission back: Zalo tells us.
    let webhook = format!("{}/webhooks/zalo", s.app.base);
    let answered = s
        .fake
        .revoke_permission(&webhook, APP_ID, OA_KEY)
        .await
        .unwrap();
    assert_eq!(answered, 200);
    wait_until(WAIT, || async {
        s.store.oa_connection().await.unwrap().needs_reconnect()
    })
    .await;
    let conn = s.store.oa_connection().await.unwrap();
    assert_eq!(conn.revoked_reason.as_deref(), Some("permission_revoked"));

    // Staff hear it once, with the page to fix it.
    s.chat.wait_for_requests(1, WAIT).await;
    let told = notices(&s.chat);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("thu hồi quyền"), "{}", told[0]);
    assert!(
        told[0].contains(&format!("{}/admin/zalo/connect", s.app.base)),
        "{}",
        told[0]
    );

    // /readyz: still ready (webhooks are stored), and says why OA calls wait.
    let (status, r) = readyz(&s).await;
    assert_eq!(status, 200);
    assert_eq!(r["ready"], true);
    assert_eq!(r["zalo_oa"]["state"], "needs_reconnect");
    assert_eq!(r["zalo_oa"]["reason"], "permission_revoked");
    assert!(r["zalo_oa"]["fix"]
        .as_str()
        .unwrap()
        .contains("/admin/zalo/connect"));

    // OA jobs wait: not attempted, not dead; other channels go on (a chat job is sent after
    // them, so the sender has passed over them).
    let arrivals_before = s.fake.arrivals().len();
    let mut waiting = Vec::new();
    for n in 0..3 {
        waiting.push(send_text(&s.store, &format!("chờ {n}")).await);
    }
    let chat = Payload::Chat {
        channel: None,
        text: "ping".into(),
        data: Value::Null,
    };
    let now = zaloflow::clock::system_now();
    s.store
        .enqueue_jobs(&[zaloflow::outbox::job(&chat, now, "test")], now)
        .await
        .unwrap();
    s.chat.wait_for_requests(2, WAIT).await;
    // A second delivery of the revocation (Zalo retries) tells nobody again.
    s.fake
        .revoke_permission(&webhook, APP_ID, OA_KEY)
        .await
        .unwrap();
    wait_until(WAIT, || async {
        s.store.inbox_stats().await.unwrap().pending == 0
    })
    .await;
    for id in &waiting {
        let j = s.store.get_job(*id).await.unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.attempts), ("pending", 0), "{j:?}");
    }
    assert_eq!(s.fake.arrivals().len(), arrivals_before, "no OA call");
    assert_eq!(notices(&s.chat).len(), 1);

    // The page says it in words.
    let page = client()
        .get(format!("{}/admin/zalo/connect", s.app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Cần kết nối lại"), "{page}");
    assert!(page.contains("3 tin đang chờ"), "{page}");

    // Connected again: the waiting jobs go, with the new token; nothing was dead-lettered.
    connect(&s).await;
    let sent = s.fake.wait_for_messages(4, WAIT).await;
    assert_eq!(sent.len(), 4);
    for id in &waiting {
        wait_until(WAIT, || async {
            s.store.get_job(*id).await.unwrap().unwrap().status == "sent"
        })
        .await;
    }
    let dead = s.store.list_jobs(Some("dead"), 100).await.unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    let (access, _) = s.fake.current_tokens();
    assert!(s
        .fake
        .arrivals_on(zaloflow::fakes::zalo::CS_PATH)
        .iter()
        .rev()
        .take(3)
        .all(|a| a.access_token == access));
    let (_, r) = readyz(&s).await;
    assert_eq!(r["zalo_oa"]["state"], "connected");
    // An old revocation delivered late (stamped before the new connection) does not undo it.
    let late = serde_json::json!({
        "app_id": APP_ID,
        "oa_id": "388613280878808645",
        "event_name": "permission_revoked",
        "timestamp": (now - 60_000).to_string(),
    })
    .to_string();
    assert_eq!(s.app.post_webhook(&late).await.status(), 200);
    wait_until(WAIT, || async {
        s.store.inbox_stats().await.unwrap().pending == 0
    })
    .await;
    assert!(!s.store.oa_connection().await.unwrap().needs_reconnect());
    assert_eq!(notices(&s.chat).len(), 1);
    assert!(!s
        .store
        .revoke_oa(
            now,
            "permission_revoked",
            &[],
            zaloflow::clock::system_now()
        )
        .await
        .unwrap());
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_pauses_then_reconnect_resumes_sqlite() {
    revoked_pauses_then_reconnect_resumes("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_pauses_then_reconnect_resumes_postgres() {
    revoked_pauses_then_reconnect_resumes("postgres").await
}

// --- a refresh Zalo refuses is treated the same way ---

async fn refused_refresh_needs_reconnect(kind: &str) {
    let s = shop_with(
        kind,
        &[
            ("ZALO_ACCESS_TOKEN", "stale-access"),
            ("ZALO_REFRESH_TOKEN", "stale-refresh"),
        ],
        Clock::system(),
    )
    .await;
    let (_, r) = readyz(&s).await;
    assert_eq!(r["zalo_oa"]["state"], "env_tokens");
    let id = send_text(&s.store, "xin chào").await;
    wait_until(WAIT, || async {
        s.store.oa_connection().await.unwrap().needs_reconnect()
    })
    .await;
    let conn = s.store.oa_connection().await.unwrap();
    assert_eq!(conn.revoked_reason.as_deref(), Some("refresh_refused"));
    assert!(conn.last_refresh_at.is_some());
    assert!(
        conn.last_refresh_error
            .as_deref()
            .is_some_and(|e| e.contains("Invalid refresh token")),
        "{conn:?}"
    );
    s.chat.wait_for_requests(1, WAIT).await;
    let told = notices(&s.chat);
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(told[0].contains("từ chối gia hạn"), "{}", told[0]);
    // The job waits for a person; it is not dead.
    let j = s.store.get_job(id).await.unwrap().unwrap();
    assert_eq!(j.status, "pending", "{j:?}");
    let page = client()
        .get(format!("{}/admin/zalo/connect", s.app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Zalo từ chối gia hạn mã truy cập"), "{page}");
    assert!(
        page.contains("thất bại</span>: Zalo refused the token refresh"),
        "{page}"
    );
    assert!(page.contains("1 tin đang chờ"), "{page}");
    connect(&s).await;
    assert!(!s.store.oa_connection().await.unwrap().needs_reconnect());
    // The waiting job goes with the new pair.
    wait_until(WAIT, || async {
        s.store.get_job(id).await.unwrap().unwrap().status == "sent"
    })
    .await;
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_refresh_needs_reconnect_sqlite() {
    refused_refresh_needs_reconnect("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_refresh_needs_reconnect_postgres() {
    refused_refresh_needs_reconnect("postgres").await
}

// --- refusals: state, session, expiry, the exchange ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_replayed_state_and_refused_exchange_store_nothing() {
    let clock = Clock::fixed(zaloflow::clock::system_now());
    let s = shop_with("sqlite", &[], clock.clone()).await;
    let nothing_stored = || async {
        assert_eq!(s.store.load_tokens().await.unwrap(), None);
        assert_eq!(s.store.oa_connection().await.unwrap().connected_at, None);
    };

    // A state we never issued.
    let (jar, to) = start_flow(&s).await;
    let back = approve(&s, &to).await;
    let forged = back.replace("state=", "state=x");
    let (status, _, body) = callback(&jar, &forged).await;
    assert_eq!(status, 400);
    assert!(body.contains("không hợp lệ hoặc đã được dùng"), "{body}");
    nothing_stored().await;

    // The right state from another browser (no binding cookie), then replayed: refused twice.
    let mut other = jar.clone();
    other.remove("zf_oauth");
    let (status, _, body) = callback(&other, &back).await;
    assert_eq!(status, 400);
    assert!(
        body.contains("không được bắt đầu từ trình duyệt này"),
        "{body}"
    );
    let (status, _, _) = callback(&jar, &back).await;
    assert_eq!(status, 400, "a state is used once");
    nothing_stored().await;

    // Zalo refuses the exchange (an unknown code): a clear page, nothing stored.
    let (jar, to) = start_flow(&s).await;
    let back = approve(&s, &to).await;
    let url = reqwest::Url::parse(&back).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let bogus = format!(
        "{}{}?code=bogus&oa_id={}&state={}",
        s.app.base,
        url.path(),
        q["oa_id"],
        q["state"]
    );
    let (status, _, body) = callback(&jar, &bogus).await;
    assert_eq!(status, 502);
    assert!(body.contains("Zalo từ chối cấp mã truy cập"), "{body}");
    assert!(body.contains("-14019"), "{body}");
    nothing_stored().await;

    // A flow older than 10 minutes.
    let (jar, to) = start_flow(&s).await;
    let back = approve(&s, &to).await;
    clock.set(clock.now() + 11 * 60 * 1000);
    let (status, _, body) = callback(&jar, &back).await;
    assert_eq!(status, 400);
    assert!(body.contains("đã hết hạn"), "{body}");
    nothing_stored().await;

    // Markup in what comes back is shown as text.
    let (jar, to) = start_flow(&s).await;
    let back = approve(&s, &to).await;
    let (status, _, body) = callback(&jar, &format!("{back}&error=%3Cb%3Eno%3C/b%3E")).await;
    assert_eq!(status, 400);
    assert!(body.contains("&lt;b&gt;no&lt;/b&gt;"), "{body}");
    nothing_stored().await;

    // Without the admin session: the login page, and the page itself refuses.
    let r = client()
        .get(format!("{}/admin/zalo/connect", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = no_redirects()
        .post(format!("{}/admin/zalo/connect/start", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // And a good flow still works after all that.
    clock.set(zaloflow::clock::system_now());
    connect(&s).await;
    assert!(s.store.load_tokens().await.unwrap().is_some());
    s.app.shutdown().await;
}

#[tokio::test]
async fn the_fake_checks_pkce_and_codes_are_single_use() {
    let fake = fake().await;
    let cfg = TokenConfig {
        oauth_base: fake.base_url().into(),
        app_id: Some(APP_ID.into()),
        app_secret: Some("fake-app-secret".into()),
        env_pair: None,
    };
    let http = reqwest::Client::new();
    let now = zaloflow::clock::system_now();
    let verifier = oauth::random_token();
    let code = fake.connect(|c| c.issue_code(&oauth::code_challenge(&verifier), Utc::now()));
    // A wrong verifier is refused with Zalo's error shape, and the code is then spent.
    let wrong = oauth::exchange_code(&http, &cfg, &code, &oauth::random_token(), now).await;
    match wrong {
        Err(TokenError::Rejected { code, message }) => {
            assert_eq!(code, Some(-14021));
            assert!(message.contains("code_verifier"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let again = oauth::exchange_code(&http, &cfg, &code, &verifier, now).await;
    assert!(
        matches!(
            again,
            Err(TokenError::Rejected {
                code: Some(-14019),
                ..
            })
        ),
        "{again:?}"
    );
    // The right verifier on a fresh code: a pair, once.
    let code = fake.connect(|c| c.issue_code(&oauth::code_challenge(&verifier), Utc::now()));
    let pair = oauth::exchange_code(&http, &cfg, &code, &verifier, now)
        .await
        .unwrap();
    assert_eq!(
        fake.current_tokens().0.as_deref(),
        Some(pair.access_token.as_str())
    );
    assert!(pair.expires_at_ms > now + 24 * 3600 * 1000);
    let replay = oauth::exchange_code(&http, &cfg, &code, &verifier, now).await;
    assert!(replay.is_err());
    // Codes expire after about 10 minutes.
    let code = fake.connect(|c| c.issue_code(&oauth::code_challenge(&verifier), Utc::now()));
    fake.set_now(Some(Utc::now() + chrono::Duration::minutes(11)));
    let late = oauth::exchange_code(&http, &cfg, &code, &verifier, now).await;
    assert!(
        matches!(
            late,
            Err(TokenError::Rejected {
                code: Some(-14020),
                ..
            })
        ),
        "{late:?}"
    );
}

// --- the connection's storage, both backends ---

async fn connection_storage(kind: &str) {
    let db = Db::new(kind).await;
    let store = store::open(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.oa_connection().await.unwrap(), Default::default());
    let notice = zaloflow::outbox::oa::OaNotice {
        chat_channel: None,
        connect_url: "https://shop.example/admin/zalo/connect".into(),
        lang: zaloflow::i18n::Lang::Vi,
    }
    .jobs("permission_revoked", 1_000);
    // Revoked once: one notice, whatever repeats.
    assert!(store
        .revoke_oa(1_000, "permission_revoked", &notice, 1_000)
        .await
        .unwrap());
    assert!(!store
        .revoke_oa(1_001, "permission_revoked", &notice, 1_001)
        .await
        .unwrap());
    assert_eq!(store.list_jobs(None, 10).await.unwrap().len(), 1);
    let c = store.oa_connection().await.unwrap();
    assert_eq!(
        (c.revoked_at, c.revoked_reason.as_deref()),
        (Some(1_000), Some("permission_revoked"))
    );
    // Connected again: tokens and the connection in one go; an older revocation is ignored.
    let pair = zaloflow::zalo::token::TokenPair {
        access_token: "a".into(),
        refresh_token: "r".into(),
        expires_at_ms: 99_000,
    };
    store
        .save_connected_tokens(&pair, "42", 2_000)
        .await
        .unwrap();
    assert_eq!(store.load_tokens().await.unwrap(), Some(pair));
    let c = store.oa_connection().await.unwrap();
    assert_eq!(
        (c.oa_id.as_deref(), c.connected_at, c.revoked_at),
        (Some("42"), Some(2_000), None)
    );
    assert!(!store
        .revoke_oa(1_500, "permission_revoked", &notice, 2_100)
        .await
        .unwrap());
    store
        .record_token_refresh(3_000, Some("boom"))
        .await
        .unwrap();
    store.record_token_refresh(3_100, None).await.unwrap();
    let c = store.oa_connection().await.unwrap();
    assert_eq!(
        (c.last_refresh_at, c.last_refresh_error),
        (Some(3_100), None)
    );
    // OAuth flows: taken once.
    let flow = store::OauthState {
        state_hash: "s".into(),
        session_hash: "b".into(),
        code_verifier: "v".into(),
        expires_at: 5_000,
    };
    store.put_oauth_state(&flow, 4_000).await.unwrap();
    assert_eq!(store.take_oauth_state("s").await.unwrap(), Some(flow));
    assert_eq!(store.take_oauth_state("s").await.unwrap(), None);
}

#[tokio::test]
async fn connection_storage_sqlite() {
    connection_storage("sqlite").await
}

#[tokio::test]
async fn connection_storage_postgres() {
    connection_storage("postgres").await
}

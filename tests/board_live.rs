//! The agents' board updates live (issue 30): `GET /admin/board/events` streams server-sent
//! events when a handoff opens, is claimed, resolved or breached, whichever instance made the
//! change (two instances on one database, SQLite and PostgreSQL, over real HTTP); and the
//! board page in headless Chromium shows a new handoff without a reload, what the customer
//! typed still shown as text.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use zaloflow::config::Config;
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::handoff::{self, escalate_due};
use zaloflow::store::{self, DynStore, Effects};

const TOKEN: &str = "live-board-admin-token-1234";
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

struct Shop {
    _db: Db,
    _zalo: FakeZalo,
    _sink: HttpSink,
    config: Config,
    store: DynStore,
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
    let mut e = fake_channels(&zalo, &sink);
    e.push(("ZALOFLOW_RULES".into(), "rules".into()));
    e.push(("ZALOFLOW_ADMIN_TOKEN".into(), TOKEN.into()));
    e.push(("ZALOFLOW_PUBLIC_URL".into(), "https://shop.example".into()));
    e.push(("ZALOFLOW_ESCALATION_INTERVAL".into(), "0".into()));
    let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = config(db.url(), &pairs);
    let store = store::open(db.url()).await.unwrap();
    Shop {
        _db: db,
        _zalo: zalo,
        _sink: sink,
        config,
        store,
    }
}

/// Opens a handoff for `user` straight in the store (as another instance's inbox would).
async fn open_handoff(store: &DynStore, user: &str, name: &str, text: &str, opened_at: i64) -> i64 {
    let c = store::Contact {
        user_id: user.into(),
        display_name: Some(name.into()),
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
            opened_at,
            response_ms: 2 * HOUR,
            priority: zaloflow::rules::model::Priority::Normal,
            note: None,
            message: Some(handoff::HandoffMessage {
                msg_id: Some(format!("m-{user}")),
                text: Some(text.into()),
                at: opened_at,
            }),
            source: "test",
            job_priority: 0,
        },
    );
    e.handoffs
        .push(handoff::HandoffChange::Open(Box::new(plan)));
    store.apply_effects(&e, opened_at).await.unwrap();
    store
        .list_handoffs(&[], 100)
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.user_id == user)
        .unwrap()
        .id
}

/// A server-sent event stream read over HTTP.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn connect(base: &str) -> Events {
        let resp = client()
            .get(format!("{base}/admin/board/events"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Events {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (name, data), comments skipped; None when the stream ends.
    async fn next(&mut self, limit: Duration) -> Option<(String, String)> {
        let start = Instant::now();
        loop {
            if let Some(at) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..at + 2).collect();
                let (mut name, mut data) = (String::new(), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.trim_start().to_string());
                    }
                }
                if name.is_empty() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, data.join("\n")));
            }
            let left = limit
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("no event within {limit:?}; read: {:?}", self.buf));
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => return None,
                Ok(Err(e)) => panic!("stream error: {e}"),
                Err(_) => panic!("no event within {limit:?}; read: {:?}", self.buf),
            }
        }
    }

    /// The next `handoff` event, as JSON.
    async fn handoff(&mut self) -> Value {
        let (name, data) = self
            .next(Duration::from_secs(15))
            .await
            .expect("the stream is open");
        assert_eq!(name, "handoff", "{data}");
        serde_json::from_str(&data).unwrap()
    }
}

async fn take(base: &str, id: i64, action: &str, agent: &str) {
    let r = client()
        .post(format!("{base}/admin/handoffs/{id}/{action}"))
        .bearer_auth(TOKEN)
        .json(&json!({ "agent": agent }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    the_board_streams_every_change_from_any_instance,
    a_deadline_passing_unanswered_is_an_event_without_escalation,
);

/// No escalation runs (none configured, no tick): the deadline passing unanswered is still a
/// `breached` event, once, so every open board turns the card red without a reload.
async fn a_deadline_passing_unanswered_is_an_event_without_escalation(kind: &str) {
    let s = shop(kind).await;
    let a = TestApp::spawn(s.config.clone()).await;
    let mut events = Events::connect(&a.base).await;
    let (name, _) = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "ready");
    // Its 2-hour deadline passes 3 seconds from now.
    let now = zaloflow::clock::system_now();
    let id = open_handoff(
        &s.store,
        "7500",
        "Lê Thị Hoa",
        "còn hàng không?",
        now - 2 * HOUR + 3_000,
    )
    .await;
    let ev = events.handoff().await;
    assert_eq!(ev, json!({"kind": "opened", "id": id, "status": "open"}));
    let ev = events.handoff().await;
    assert_eq!(ev, json!({"kind": "breached", "id": id, "status": "open"}));
    assert!(
        zaloflow::clock::system_now() >= now + 3_000,
        "not before the deadline"
    );
    let h = s.store.get_handoff(id).await.unwrap().unwrap();
    assert_eq!(h.escalation_level, 0, "nothing escalated it");
    // Once: the next polls see nothing new.
    let quiet = tokio::time::timeout(Duration::from_secs(3), events.handoff()).await;
    assert!(quiet.is_err(), "a second event: {quiet:?}");
    a.shutdown().await;
}

/// Two instances on one database: the board listens to instance A; handoffs are opened in the
/// store (a third party: another instance's inbox), claimed and resolved through instance B's
/// API, and escalated by a tick's pass — A's stream names each change, in order, and carries no
/// customer text. Stopping A ends the stream (the shutdown does not wait on it).
async fn the_board_streams_every_change_from_any_instance(kind: &str) {
    let s = shop(kind).await;
    let a = TestApp::spawn(s.config.clone()).await;
    let b = TestApp::spawn(s.config.clone()).await;

    // Without the token: refused.
    let r = client()
        .get(format!("{}/admin/board/events", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let mut events = Events::connect(&a.base).await;
    let (name, _) = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "ready");

    let now = zaloflow::clock::system_now();
    let lan = open_handoff(
        &s.store,
        "7001",
        "Nguyễn Thị Lan",
        "<b>giá</b> bao nhiêu?",
        now - 10 * MIN,
    )
    .await;
    let ev = events.handoff().await;
    assert_eq!(ev, json!({"kind": "opened", "id": lan, "status": "open"}));

    take(&b.base, lan, "claim", "Minh").await;
    let ev = events.handoff().await;
    assert_eq!(
        ev,
        json!({"kind": "claimed", "id": lan, "status": "claimed"})
    );

    take(&b.base, lan, "resolve", "Minh").await;
    let ev = events.handoff().await;
    assert_eq!(
        ev,
        json!({"kind": "resolved", "id": lan, "status": "resolved"})
    );

    // A handoff whose deadline passed, then the tick's escalation.
    let binh = open_handoff(&s.store, "7400", "Trần Văn Bình", "alo", now - 3 * HOUR).await;
    let ev = events.handoff().await;
    assert_eq!(ev, json!({"kind": "opened", "id": binh, "status": "open"}));
    let esc = escalate_due(
        &*s.store,
        now,
        &s.config.handoffs,
        &s.config.handoff_policy(),
    )
    .await
    .unwrap();
    assert_eq!(esc.escalated, 1);
    let ev = events.handoff().await;
    assert_eq!(
        ev,
        json!({"kind": "breached", "id": binh, "status": "open"})
    );
    assert!(
        !events.buf.contains("giá") && !events.buf.contains("alo"),
        "no customer text in the stream"
    );

    // A stops while the stream is open: the stream ends and the shutdown completes.
    tokio::time::timeout(Duration::from_secs(15), a.shutdown())
        .await
        .expect("the shutdown does not wait on the board's stream");
    let end = tokio::time::timeout(Duration::from_secs(5), events.next(Duration::from_secs(5)))
        .await
        .expect("the stream ends");
    assert!(end.is_none(), "{end:?}");
    b.shutdown().await;
}

#[path = "common/webdriver.rs"]
mod webdriver;

/// The board open in headless Chromium: a handoff opened elsewhere appears on it without a
/// reload (a value set on the page's `window` survives), its customer's text shown as text;
/// a claim made through the API shows who took it; a resolve takes it off the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_in_chromium_shows_a_new_handoff_without_a_reload() {
    let s = shop("sqlite").await;
    let app = TestApp::spawn(s.config.clone()).await;
    let b = webdriver::Browser::start().await;
    b.goto(&format!("{}/admin/board?token={TOKEN}", app.base))
        .await;
    assert_eq!(b.url().await, format!("{}/admin/board", app.base));
    let text = b.text().await;
    assert!(text.contains("Không có yêu cầu nào đang chờ"), "{text}");
    // The page is live (its script connected), and marked: a reload would lose the mark.
    wait_for(&b, "the event stream", |b| async move {
        b.execute("return document.body.dataset.live").await == "on"
    })
    .await;
    b.execute("window.notReloaded = 42; return null").await;

    let now = zaloflow::clock::system_now();
    let typed = "Cho mình hỏi <script>alert(1)</script> & <b>giá</b>?";
    let id = open_handoff(&s.store, "7001", "Nguyễn Thị Lan", typed, now - 5 * MIN).await;
    wait_for(&b, "the new handoff", |b| async move {
        b.text().await.contains("Nguyễn Thị Lan")
    })
    .await;
    let text = b.text().await;
    assert!(text.contains(typed), "the customer's text as text: {text}");
    assert!(text.contains("Chưa ai nhận"), "{text}");
    assert!(b.find_all("main script, main b").await.is_empty());
    assert_eq!(b.execute("return window.notReloaded").await, 42);

    // Claimed through the API (a phone, another agent): the board shows who.
    take(&app.base, id, "claim", "Minh").await;
    wait_for(&b, "the claim", |b| async move {
        b.text().await.contains("Đang xử lý: Minh")
    })
    .await;
    // Resolved: off the list, among the ones done.
    take(&app.base, id, "resolve", "Minh").await;
    wait_for(&b, "the resolve", |b| async move {
        b.text().await.contains("Không có yêu cầu nào đang chờ")
    })
    .await;
    assert_eq!(b.execute("return window.notReloaded").await, 42);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    b.screenshot(&shots.join("board-live.png")).await;
    b.quit().await;
    app.shutdown().await;
}

async fn wait_for<'a, F, Fut>(b: &'a webdriver::Browser, what: &str, cond: F)
where
    F: Fn(&'a webdriver::Browser) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond(b).await {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the board did not show {what}: {}",
            b.text().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

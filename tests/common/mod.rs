//! Test helpers: fresh databases (real SQLite files, real PostgreSQL databases), the app on
//! port 0, signed webhooks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use zaloflow::config::Config;
use zaloflow::zalo::signature;

pub const APP_ID: &str = "1234567890123456789";
pub const OA_KEY: &str = "TEST_OA_SECRET_KEY";

/// The server the tests use (`.ci/run` starts it): trust auth on 127.0.0.1.
pub fn pg_admin_url() -> String {
    std::env::var("ZALOFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new, empty PostgreSQL database; its URL.
pub async fn fresh_pg() -> String {
    use sqlx::Connection;
    let name = format!("zf_test_{}_{}", std::process::id(), rand::random::<u32>());
    let mut conn = sqlx::PgConnection::connect(&pg_admin_url())
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 (see .ci/run)");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = pg_admin_url();
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{name}")
}

/// A new SQLite file in a temporary folder (kept alive by the returned guard).
pub fn fresh_sqlite() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("zaloflow.db").display());
    (dir, url)
}

pub enum Db {
    Sqlite(tempfile::TempDir, String),
    Pg(String),
}

impl Db {
    pub async fn new(kind: &str) -> Db {
        match kind {
            "sqlite" => {
                let (d, u) = fresh_sqlite();
                Db::Sqlite(d, u)
            }
            _ => Db::Pg(fresh_pg().await),
        }
    }
    pub fn url(&self) -> &str {
        match self {
            Db::Sqlite(_, u) | Db::Pg(u) => u,
        }
    }
}

pub fn config(db_url: &str, extra: &[(&str, &str)]) -> Config {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    m.insert("DATABASE_URL".into(), db_url.into());
    m.insert("ZALO_APP_ID".into(), APP_ID.into());
    m.insert("ZALO_OA_SECRET_KEY".into(), OA_KEY.into());
    // No rules unless a test asks for them (the shipped folder is `rules`).
    m.insert("ZALOFLOW_RULES".into(), "/nonexistent-rules".into());
    // No wall-clock ticks: tests run the scheduler with `scheduler::tick` at chosen instants.
    m.insert("ZALOFLOW_TICK".into(), "off".into());
    // The fakes listen on 127.0.0.1: URLs the operator sets are trusted wherever they point.
    // No follower sync at start and no first-sight profile lookups (extra OA calls) unless a
    // test asks for them (tests/contacts_sync.rs).
    m.insert("ZALOFLOW_CONTACTS_SYNC".into(), "off".into());
    m.insert("ZALOFLOW_CONTACTS_LOOKUP".into(), "false".into());
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    Config::from_map(&m).unwrap()
}

/// The service running in this process on a free port.
pub struct TestApp {
    pub base: String,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(config: Config) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(zaloflow::run(config, listener, async move {
            let _ = rx.await;
        }));
        let app = TestApp {
            base,
            stop: Some(tx),
            handle,
        };
        wait_until(Duration::from_secs(20), || async {
            reqwest::get(format!("{}/healthz", app.base)).await.is_ok()
        })
        .await;
        app
    }

    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.await.unwrap().unwrap();
    }

    pub async fn post_webhook(&self, body: &str) -> reqwest::Response {
        post_signed(&self.base, body).await
    }
}

pub fn sign(body: &str) -> String {
    let ts = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("timestamp")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    signature::header_value(APP_ID, body.as_bytes(), &ts, OA_KEY)
}

pub fn client() -> reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    })
    .clone()
}

pub async fn post_signed(base: &str, body: &str) -> reqwest::Response {
    client()
        .post(format!("{base}/webhooks/zalo"))
        .header("X-ZEvent-Signature", sign(body))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A user's text message with its own msg id, timestamped now.
pub fn text_event(user: &str, msg_id: &str, text: &str) -> String {
    serde_json::json!({
        "app_id": APP_ID,
        "sender": {"id": user},
        "user_id_by_app": "552177279717587730",
        "recipient": {"id": "388613280878808645"},
        "event_name": "user_send_text",
        "message": {"text": text, "msg_id": msg_id},
        "timestamp": zaloflow::clock::system_now().to_string(),
    })
    .to_string()
}

/// Polls `cond` until it holds; panics after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A signed-webhook body for `event_name` about `user` at `ts` (ms), with extra fields.
pub fn event_at(event_name: &str, user: &str, ts: i64, extra: serde_json::Value) -> String {
    let mut v = serde_json::json!({
        "app_id": APP_ID,
        "event_name": event_name,
        "timestamp": ts.to_string(),
    });
    match event_name {
        "follow" | "unfollow" => {
            v["follower"] = serde_json::json!({"id": user});
            v["oa_id"] = "388613280878808645".into();
        }
        "user_click_chatnow" => {
            v["user_id"] = user.into();
            v["oa_id"] = "388613280878808645".into();
        }
        n if n.starts_with("oa_send_") => {
            v["sender"] = serde_json::json!({"id": "388613280878808645", "admin_id": "99"});
            v["recipient"] = serde_json::json!({"id": user});
        }
        _ => {
            v["sender"] = serde_json::json!({"id": user});
            v["recipient"] = serde_json::json!({"id": "388613280878808645"});
        }
    }
    if let (Some(obj), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            obj.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

/// Milliseconds of a local time in Hồ Chí Minh City (UTC+7, no DST).
pub fn hcm(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    use chrono::TimeZone;
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

/// Configuration pointing every outbound channel at in-process fakes.
pub fn fake_channels(
    zalo: &zaloflow::fakes::zalo::FakeZalo,
    sink: &zaloflow::fakes::http_sink::HttpSink,
) -> Vec<(String, String)> {
    let o = zaloflow::fakes::zalo::FakeZaloOptions::default();
    vec![
        ("ZALO_API_BASE".into(), zalo.base_url().to_string()),
        ("ZALO_OAUTH_BASE".into(), zalo.base_url().to_string()),
        ("ZALO_ZNS_BASE".into(), zalo.base_url().to_string()),
        ("ZALO_APP_SECRET".into(), o.app_secret),
        ("ZALO_ACCESS_TOKEN".into(), o.access_token),
        ("ZALO_REFRESH_TOKEN".into(), o.refresh_token),
        ("ZALOFLOW_ZALO_RATE".into(), "0".into()),
        ("ZALOFLOW_ZALO_RATE_PER_MINUTE".into(), "0".into()),
        ("ZALOFLOW_CHAT_WEBHOOK_URL".into(), sink.url("/chat")),
        (
            "ZALOFLOW_CHAT_CHANNELS".into(),
            format!(
                "agents={},supervisors={}",
                sink.url("/agents"),
                sink.url("/supervisors")
            ),
        ),
        ("ZALOFLOW_SMS_URL".into(), sink.url("/sms")),
        ("ZALOFLOW_TASK_WEBHOOK_URL".into(), sink.url("/task")),
    ]
}

/// Stored bodies of inbox events named `name`, oldest first.
pub async fn inbox_bodies(db: &Db, name: &str) -> Vec<serde_json::Value> {
    let rows: Vec<(String,)> = match db {
        Db::Sqlite(_, url) => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_as("SELECT body FROM inbox WHERE event_name = ?1 ORDER BY id")
                .bind(name)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Db::Pg(url) => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_as("SELECT body FROM inbox WHERE event_name = $1 ORDER BY id")
                .bind(name)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    rows.into_iter()
        .map(|(b,)| serde_json::from_str(&b).unwrap())
        .collect()
}

/// Waits until at least `n` inbox events are processed.
pub async fn wait_done(store: &zaloflow::store::DynStore, n: i64) {
    wait_until(Duration::from_secs(20), || async {
        store.inbox_stats().await.unwrap().done >= n
    })
    .await;
}

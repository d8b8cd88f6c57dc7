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

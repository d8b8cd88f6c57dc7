//! Crash safety with the real binary: webhooks from several tasks, SIGKILL mid-stream, restart;
//! every delivery that got a 200 is stored and processed exactly once. And: storage that is
//! unavailable answers 503, never a false 200.

mod common;

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use sqlx::Connection;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_binary(db_url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("DATABASE_URL", db_url)
        .env("ZALO_APP_ID", APP_ID)
        .env("ZALO_OA_SECRET_KEY", OA_KEY)
        .env("ZALOFLOW_RULES", "/nonexistent")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start zaloflow")
}

async fn wait_ready(base: &str) {
    wait_until(Duration::from_secs(30), || async {
        matches!(reqwest::get(format!("{base}/readyz")).await, Ok(r) if r.status() == 200)
    })
    .await;
}

/// Sends unique signed messages from `tasks` senders until `stop`; returns the acked msg ids.
fn start_senders(
    base: String,
    tasks: usize,
    round: usize,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (base, acked, stop) = (base.clone(), acked.clone(), stop.clone());
        set.spawn(async move {
            let c = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let msg_id = format!("r{round}-t{t}-{i}");
                let body = text_event(&format!("user-{}", i % 17), &msg_id, "xin chào");
                let r = c
                    .post(format!("{base}/webhooks/zalo"))
                    .header("X-ZEvent-Signature", sign(&body))
                    .body(body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        acked.lock().unwrap().insert(msg_id);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
    }
    set
}

async fn crash_and_recover(db_url: String) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let acked = Arc::new(Mutex::new(HashSet::new()));
    for round in 0..2 {
        let mut child = start_binary(&db_url, port);
        wait_ready(&base).await;
        let stop = Arc::new(AtomicBool::new(false));
        let before = acked.lock().unwrap().len();
        let mut senders = start_senders(base.clone(), 6, round, acked.clone(), stop.clone());
        wait_until(Duration::from_secs(60), || async {
            acked.lock().unwrap().len() >= before + 400
        })
        .await;
        child.kill().unwrap(); // SIGKILL, mid-stream
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        while senders.join_next().await.is_some() {}
    }
    // Restart and let it finish what the crashes left.
    let mut child = start_binary(&db_url, port);
    wait_ready(&base).await;
    let s = zaloflow::store::open(&db_url).await.unwrap();
    wait_until(Duration::from_secs(60), || async {
        let st = s.inbox_stats().await.unwrap();
        st.pending == 0
    })
    .await;
    let st = s.inbox_stats().await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    let acked = acked.lock().unwrap().clone();
    let (keys, interactions) = read_back(&db_url).await;
    let stored: HashSet<String> = keys
        .iter()
        .map(|k| k.trim_start_matches("user_send_text:").to_string())
        .collect();
    let missing: Vec<_> = acked.difference(&stored).collect();
    println!(
        "acked {} / stored {} / processed {} / failed {} / interactions counted {}",
        acked.len(),
        keys.len(),
        st.done,
        st.failed,
        interactions
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert_eq!(st.failed, 0);
    assert_eq!(st.done as usize, keys.len(), "every stored event processed");
    assert_eq!(
        interactions as usize,
        keys.len(),
        "each stored event counted on its contact exactly once"
    );
}

async fn read_back(db_url: &str) -> (Vec<String>, i64) {
    if db_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
        let keys: Vec<(String,)> = sqlx::query_as("SELECT dedupe_key FROM inbox")
            .fetch_all(&mut c)
            .await
            .unwrap();
        let (n,): (i64,) =
            sqlx::query_as("SELECT COALESCE(SUM(interaction_count), 0) FROM contacts")
                .fetch_one(&mut c)
                .await
                .unwrap();
        (keys.into_iter().map(|k| k.0).collect(), n)
    } else {
        let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
        let keys: Vec<(String,)> = sqlx::query_as("SELECT dedupe_key FROM inbox")
            .fetch_all(&mut c)
            .await
            .unwrap();
        let (n,): (i64,) =
            sqlx::query_as("SELECT COALESCE(SUM(interaction_count), 0)::BIGINT FROM contacts")
                .fetch_one(&mut c)
                .await
                .unwrap();
        (keys.into_iter().map(|k| k.0).collect(), n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_sqlite() {
    let (_dir, url) = fresh_sqlite();
    crash_and_recover(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_nothing_postgres() {
    crash_and_recover(fresh_pg().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unavailable_answers_503_then_recovers() {
    let url = fresh_pg().await;
    let name = url.rsplit('/').next().unwrap().to_string();
    let app = TestApp::spawn(config(&url, &[])).await;
    assert_eq!(
        app.post_webhook(&text_event("1", "before", "a"))
            .await
            .status(),
        200
    );

    let mut admin = sqlx::PgConnection::connect(&pg_admin_url()).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&mut admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&name)
        .execute(&mut admin)
        .await
        .unwrap();
    let during = app
        .post_webhook(&text_event("1", "during", "b"))
        .await
        .status();
    assert_eq!(during, 503, "storage down must not be acknowledged");
    let ready = reqwest::get(format!("{}/readyz", app.base))
        .await
        .unwrap()
        .status();
    assert_eq!(ready, 503);

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&mut admin)
        .await
        .unwrap();
    // Zalo retries; once the database is back the same delivery is stored.
    let ok = Arc::new(AtomicUsize::new(0));
    wait_until(Duration::from_secs(30), || {
        let (app_base, ok) = (app.base.clone(), ok.clone());
        async move {
            let r = post_signed(&app_base, &text_event("1", "during", "b")).await;
            if r.status() == 200 {
                ok.fetch_add(1, Ordering::Relaxed);
            }
            ok.load(Ordering::Relaxed) > 0
        }
    })
    .await;
    let s = zaloflow::store::open(&url).await.unwrap();
    wait_until(Duration::from_secs(20), || async {
        s.inbox_stats().await.map(|s| s.done == 2).unwrap_or(false)
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_answers_503_not_200() {
    let (_dir, url) = fresh_sqlite();
    let app = TestApp::spawn(config(&url, &[])).await;
    assert_eq!(
        app.post_webhook(&text_event("1", "first", "a"))
            .await
            .status(),
        200
    );
    // Another process holds the write lock longer than Zalo waits.
    let mut other = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let r = app.post_webhook(&text_event("1", "locked", "b")).await;
    assert_eq!(r.status(), 503);
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    wait_until(Duration::from_secs(20), || {
        let base = app.base.clone();
        async move {
            post_signed(&base, &text_event("1", "locked", "b"))
                .await
                .status()
                == 200
        }
    })
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let (_dir, url) = fresh_sqlite();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = start_binary(&url, port);
    wait_ready(&base).await;
    for i in 0..20 {
        let r = post_signed(&base, &text_event("7", &format!("t-{i}"), "hi")).await;
        assert_eq!(r.status(), 200);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let code = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(code.success(), "exit status {code:?}");
    // Everything acknowledged is there; nothing is left leased by the stopped instance.
    let s = zaloflow::store::open(&url).await.unwrap();
    let st = s.inbox_stats().await.unwrap();
    assert_eq!(st.pending + st.done, 20);
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (leased,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM inbox WHERE lease_owner IS NOT NULL")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(leased, 0);
}

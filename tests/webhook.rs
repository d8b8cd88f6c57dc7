//! `POST /webhooks/zalo` over real HTTP against the running service, on both backends.

mod common;

use std::time::Duration;

use common::*;
use zaloflow::store;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    refusals_store_nothing,
    valid_delivery_is_stored_then_processed,
    every_fixture_is_accepted_and_processed,
    duplicates_concurrently_processed_once,
);

async fn store_of(db: &Db) -> store::DynStore {
    store::open(db.url()).await.unwrap()
}

async fn refusals_store_nothing(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    let url = format!("{}/webhooks/zalo", app.base);
    let body = text_event("100", "m-1", "hello");
    let c = client();

    // Missing signature.
    let r = c.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Wrong mac.
    let bad = format!("mac={}", "0".repeat(64));
    let r = c
        .post(&url)
        .header("X-ZEvent-Signature", bad)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Tampered body with the original's signature.
    let r = c
        .post(&url)
        .header("X-ZEvent-Signature", sign(&body))
        .body(body.replace("hello", "HELLO"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Not JSON.
    let r = c
        .post(&url)
        .header("X-ZEvent-Signature", sign("nope"))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Over 1 MiB.
    let huge = format!(
        r#"{{"event_name":"user_send_text","pad":"{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    let r = c
        .post(&url)
        .header("X-ZEvent-Signature", sign(&huge))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    let st = store_of(&db).await.inbox_stats().await.unwrap();
    assert_eq!(st, store::InboxStats::default(), "nothing stored");
    app.shutdown().await;

    // Without the app id / OA secret key the service refuses with 503 so that Zalo retries.
    let unconfigured = {
        let mut c = config(db.url(), &[]);
        c.zalo_oa_secret_key = None;
        c
    };
    let app = TestApp::spawn(unconfigured).await;
    let r = app.post_webhook(&body).await;
    assert_eq!(r.status(), 503);
    app.shutdown().await;
}

async fn valid_delivery_is_stored_then_processed(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    // Spaces and \u escapes: the mac is over these exact bytes.
    let ts = zaloflow::clock::system_now().to_string();
    let body = format!(
        r#"{{ "app_id": "{APP_ID}", "event_name": "user_send_text", "sender": {{"id": "200"}}, "recipient": {{"id": "9"}}, "message": {{"text": "Ch\u00e0o shop", "msg_id": "m-200"}}, "timestamp": "{ts}" }}"#
    );
    let r = app.post_webhook(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "stored"
    );
    let s = store_of(&db).await;
    wait_until(Duration::from_secs(10), || async {
        s.inbox_stats().await.unwrap().done == 1
    })
    .await;
    let c = s.get_contact("200").await.unwrap().unwrap();
    assert_eq!(c.interaction_count, 1);
    assert_eq!(c.last_interaction, Some(ts.parse().unwrap()));

    // An old timestamp is not refused (Zalo's retries keep the original one).
    let old = text_event("201", "m-201", "cũ").replace(&ts[..6], "150000");
    let r = app.post_webhook(&old).await;
    assert_eq!(r.status(), 200);

    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("zaloflow_webhooks_total{outcome=\"stored\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("zaloflow_inbox_depth"), "{metrics}");
    let ready = reqwest::get(format!("{}/readyz", app.base)).await.unwrap();
    assert_eq!(ready.status(), 200);
    app.shutdown().await;
}

async fn every_fixture_is_accepted_and_processed(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/zalo");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let body = std::fs::read_to_string(&path).unwrap();
        let r = app.post_webhook(body.trim_end()).await;
        assert_eq!(r.status(), 200, "{}", path.display());
        n += 1;
    }
    // An event name nobody knows is stored and processed, not dropped.
    let r = app
        .post_webhook(r#"{"event_name":"something_new_from_zalo","user_id":"42","timestamp":"1700000000001"}"#)
        .await;
    assert_eq!(r.status(), 200);
    n += 1;
    let s = store_of(&db).await;
    wait_until(Duration::from_secs(10), || async {
        s.inbox_stats().await.unwrap().done as usize == n
    })
    .await;
    let follower = s.get_contact("8958041078911298472").await.unwrap().unwrap();
    assert_eq!(follower.follows, Some(true));
    let tagged = s.get_contact("246845883296197922").await.unwrap().unwrap();
    assert!(tagged.tags.contains("example"));
    let info = s.get_contact("246845883529697922").await.unwrap().unwrap();
    assert_eq!(info.phone.as_deref(), Some("84912345678"));
    assert_eq!(info.display_name.as_deref(), Some("Name Example"));
    assert!(s.get_contact("42").await.unwrap().is_some());
    app.shutdown().await;
}

async fn duplicates_concurrently_processed_once(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    let body = text_event("300", "m-dup", "một lần thôi");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (base, body) = (app.base.clone(), body.clone());
        tasks.spawn(async move {
            post_signed(&base, &body)
                .await
                .json::<serde_json::Value>()
                .await
                .unwrap()
        });
    }
    let mut stored = 0;
    while let Some(r) = tasks.join_next().await {
        if r.unwrap()["outcome"] == "stored" {
            stored += 1;
        }
    }
    assert_eq!(stored, 1, "exactly one delivery stored");
    // And once more later, after processing.
    let s = store_of(&db).await;
    wait_until(Duration::from_secs(10), || async {
        s.inbox_stats().await.unwrap().done == 1
    })
    .await;
    let r = app.post_webhook(&body).await;
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["outcome"],
        "duplicate"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = s.inbox_stats().await.unwrap();
    assert_eq!((st.done, st.pending), (1, 0));
    assert_eq!(
        s.get_contact("300")
            .await
            .unwrap()
            .unwrap()
            .interaction_count,
        1
    );
    app.shutdown().await;
}

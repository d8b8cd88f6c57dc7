//! Email tracking over real HTTP against the running service, on both backends, with the old
//! (v1) self-contained tokens that emails sent before opaque tokens carry — they keep working:
//! the open pixel (people and machines told apart, bad tokens record nothing), the click
//! redirect (only to the signed URL: no open redirect), and the key kept in the database.
//! Opaque (v2) tokens, made by the real sender, are tested in tests/email_trust.rs.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;
use zaloflow::http::tracking::PIXEL_GIF;
use zaloflow::store;
use zaloflow::tracking::{self, TrackingKey};

const KEY: &str = "integration-test-tracking-key";
const BROWSER: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    old_open_tokens_record_people_and_machines_apart,
    bad_open_tokens_get_the_gif_and_record_nothing,
    click_redirects_only_to_the_signed_url,
    generated_key_is_kept_in_the_database,
);

fn key() -> TrackingKey {
    TrackingKey::new(KEY.as_bytes().to_vec())
}

fn hour_ago() -> i64 {
    zaloflow::clock::system_now() - 3_600_000
}

/// A client that never follows redirects.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn store_of(db: &Db) -> store::DynStore {
    store::open(db.url()).await.unwrap()
}

/// Fetches the pixel and checks that the answer is the GIF, uncached.
async fn fetch_pixel(url: &str, ua: Option<&str>) {
    let mut req = raw_client().get(url);
    if let Some(ua) = ua {
        req = req.header("user-agent", ua);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    assert_eq!(r.headers()["content-type"], "image/gif");
    assert!(r.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("no-store"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), PIXEL_GIF);
}

/// Writes one known event (a valid human open of job 999) and waits for the inbox to hold
/// `expected_done` processed events: nothing else may have been stored in between.
async fn sentinel_then_count(app: &TestApp, store: &store::DynStore, expected_done: i64) {
    let url = tracking::v1_open_pixel_url(&key(), &app.base, 999, "sentinel", hour_ago());
    fetch_pixel(&url, Some(BROWSER)).await;
    wait_done(store, expected_done).await;
    let st = store.inbox_stats().await.unwrap();
    assert_eq!(st.done + st.pending + st.failed, expected_done, "{st:?}");
}

async fn old_open_tokens_record_people_and_machines_apart(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[("ZALOFLOW_TRACKING_KEY", KEY)])).await;
    let store = store_of(&db).await;
    let url = tracking::v1_open_pixel_url(&key(), &app.base, 42, "phone:84912345678", hour_ago());

    fetch_pixel(&url, Some(BROWSER)).await;
    // Gmail's proxy fetches when a person opens: the same person, not a new event.
    fetch_pixel(&url, Some("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)")).await;
    // The same person opening again is not a new event.
    fetch_pixel(&url, Some(BROWSER)).await;
    // Apple Mail Privacy Protection is a machine.
    fetch_pixel(&url, Some("Mozilla/5.0")).await;
    wait_done(&store, 2).await;

    let opens = inbox_bodies(&db, "zaloflow.email_opened").await;
    assert_eq!(opens.len(), 2, "{opens:?}");
    let flags: Vec<(i64, &str, bool)> = opens
        .iter()
        .map(|e| {
            (
                e["data"]["job_id"].as_i64().unwrap(),
                e["data"]["contact_id"].as_str().unwrap(),
                e["data"]["prefetch"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            (42, "phone:84912345678", false),
            (42, "phone:84912345678", true)
        ]
    );

    // A pixel fetched seconds after the email was sent is a person's open (timing is no
    // evidence: people with their mail open read at once).
    let fresh =
        tracking::v1_open_pixel_url(&key(), &app.base, 43, "u2", zaloflow::clock::system_now());
    fetch_pixel(&fresh, Some(BROWSER)).await;
    // HEAD is never a mail client showing an image.
    let head = tracking::v1_open_pixel_url(&key(), &app.base, 44, "u3", hour_ago());
    let r = raw_client()
        .head(&head)
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_done(&store, 4).await;
    let opens = inbox_bodies(&db, "zaloflow.email_opened").await;
    let later: Vec<(i64, bool)> = opens[2..]
        .iter()
        .map(|e| {
            (
                e["data"]["job_id"].as_i64().unwrap(),
                e["data"]["prefetch"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(later, vec![(43, false), (44, true)]);
    // Opens do not touch the contact's Zalo interaction time (nor create a contact).
    assert!(store
        .get_contact("phone:84912345678")
        .await
        .unwrap()
        .is_none());
    app.shutdown().await;
}

/// The same text with its 6th character changed.
fn tamper(s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    c[5] = if c[5] == 'Q' { 'R' } else { 'Q' };
    c.into_iter().collect()
}

async fn bad_open_tokens_get_the_gif_and_record_nothing(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[("ZALOFLOW_TRACKING_KEY", KEY)])).await;
    let store = store_of(&db).await;
    let good = tracking::v1_open_pixel_url(&key(), &app.base, 42, "u1", hour_ago());
    let token = good.rsplit('/').next().unwrap();
    let (payload, sig) = token.split_once('.').unwrap();
    let other_key = tracking::v1_open_pixel_url(
        &TrackingKey::new(b"some-other-key-0123456".to_vec()),
        &app.base,
        42,
        "u1",
        hour_ago(),
    );
    let click_token = tracking::v1_click_url(
        &key(),
        &app.base,
        42,
        "u1",
        "https://shop.example/",
        None,
        hour_ago(),
    )
    .unwrap();
    let bad = [
        format!("{}/t/o/garbage", app.base),
        format!("{}/t/o/{payload}", app.base),
        format!("{}/t/o/{payload}.{}", app.base, tamper(sig)),
        format!("{}/t/o/{}", app.base, &sig[..10]),
        other_key,
        // A click token is not an open token.
        click_token.replace("/t/c/", "/t/o/"),
        format!("{}/t/o/{}", app.base, "x".repeat(5000)),
    ];
    for url in &bad {
        fetch_pixel(url, Some(BROWSER)).await;
    }
    sentinel_then_count(&app, &store, 1).await;
    app.shutdown().await;
}

async fn click_redirects_only_to_the_signed_url(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(config(db.url(), &[("ZALOFLOW_TRACKING_KEY", KEY)])).await;
    let store = store_of(&db).await;
    let target = "https://shop.example/sale?utm=mail&q=%C3%A1o%20thun#top";
    let url = tracking::v1_click_url(
        &key(),
        &app.base,
        42,
        "u1",
        target,
        Some("sale"),
        hour_ago(),
    )
    .unwrap();
    let c = raw_client();
    let go = |u: String, ua: &'static str| {
        let c = c.clone();
        async move { c.get(u).header("user-agent", ua).send().await.unwrap() }
    };

    let r = go(url.clone(), BROWSER).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], target);
    // A url parameter is never read.
    let r = go(format!("{url}?url=https://evil.example/"), BROWSER).await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], target);

    // Nothing else redirects anywhere.
    let token = url.rsplit('/').next().unwrap();
    let (payload, sig) = token.split_once('.').unwrap();
    let forged_payload = {
        use base64::Engine as _;
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&e.decode(payload).unwrap()).unwrap();
        claims["u"] = "https://evil.example/".into();
        e.encode(serde_json::to_vec(&claims).unwrap())
    };
    let open_token = tracking::v1_open_pixel_url(&key(), &app.base, 42, "u1", hour_ago());
    let refused = [
        format!("{}/t/c/{forged_payload}.{sig}", app.base),
        format!("{}/t/c/{payload}", app.base),
        format!("{}/t/c/{payload}.{}", app.base, tamper(sig)),
        format!("{}/t/c/garbage?url=https://evil.example/", app.base),
        format!("{}/t/c/https%3A%2F%2Fevil.example%2F", app.base),
        format!("{}/t/c/?url=https://evil.example/", app.base),
        open_token.replace("/t/o/", "/t/c/"),
        tracking::v1_click_url(
            &TrackingKey::new(b"some-other-key-0123456".to_vec()),
            &app.base,
            42,
            "u1",
            "https://evil.example/",
            None,
            hour_ago(),
        )
        .unwrap(),
    ];
    for u in refused {
        let r = go(u.clone(), BROWSER).await;
        assert!(
            r.status() == 404 || r.status() == 400,
            "{u}: {}",
            r.status()
        );
        assert!(r.headers().get("location").is_none(), "{u}");
    }

    // A link scanner is sent on but not counted as a click.
    let scanned = tracking::v1_click_url(
        &key(),
        &app.base,
        42,
        "u1",
        "https://shop.example/other",
        None,
        hour_ago(),
    )
    .unwrap();
    let r = go(scanned, "Mimecast URL Protect").await;
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://shop.example/other");

    // One click event (the second click on the same link is a duplicate) and the open it
    // counts as (a click is an open), then the sentinel.
    sentinel_then_count(&app, &store, 3).await;
    let opens = inbox_bodies(&db, "zaloflow.email_opened").await;
    assert_eq!(opens[0]["data"]["job_id"], 42);
    assert_eq!(opens[0]["data"]["prefetch"], false);
    let clicks = inbox_bodies(&db, "zaloflow.email_clicked").await;
    assert_eq!(clicks.len(), 1);
    assert_eq!(clicks[0]["data"]["url"], target);
    assert_eq!(clicks[0]["data"]["link"], "sale");
    assert_eq!(clicks[0]["data"]["job_id"], 42);
    assert_eq!(clicks[0]["data"]["contact_id"], "u1");
    app.shutdown().await;
}

async fn generated_key_is_kept_in_the_database(kind: &str) {
    let db = Db::new(kind).await;
    let cfg = config(db.url(), &[]);
    assert!(cfg.tracking_key.is_none());
    let app = TestApp::spawn(cfg.clone()).await;
    let store = store_of(&db).await;
    // What the email sender (another process, or another instance) would load.
    let k1 = TrackingKey::load(cfg.tracking_key(), &store, 1)
        .await
        .unwrap();
    let k2 = TrackingKey::load(cfg.tracking_key(), &store, 2)
        .await
        .unwrap();
    assert_eq!(k1, k2);
    let html = r#"<p><a href="https://shop.example/">Shop</a></p>"#;
    let _ = html;
    let tracked =
        tracking::v1_click_url(&k1, &app.base, 7, "u1", "https://shop.example/", None, 1).unwrap();
    let tracked = format!("\"{tracked}\"");
    let start = tracked.find("/t/c/").unwrap();
    let end = start + tracked[start..].find('"').unwrap();
    let r = raw_client()
        .get(format!("{}{}", app.base, &tracked[start..end]))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "https://shop.example/");
    // The service restarted on the same database keeps honouring the links.
    app.shutdown().await;
    let app = TestApp::spawn(cfg).await;
    let r = raw_client()
        .get(format!("{}{}", app.base, &tracked[start..end]))
        .header("user-agent", BROWSER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_routes_are_rate_limited_per_ip() {
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(config(
        db.url(),
        &[
            ("ZALOFLOW_TRACKING_KEY", KEY),
            ("ZALOFLOW_PUBLIC_RATE_PER_MINUTE", "2"),
        ],
    ))
    .await;
    let url = tracking::v1_click_url(
        &key(),
        &app.base,
        1,
        "u1",
        "https://shop.example/",
        None,
        hour_ago(),
    )
    .unwrap();
    for _ in 0..2 {
        assert_eq!(raw_client().get(&url).send().await.unwrap().status(), 302);
    }
    let r = raw_client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("location").is_none());
    // The pixel over the limit is still an image (no broken-image icon in the email).
    let pixel = tracking::v1_open_pixel_url(&key(), &app.base, 1, "u1", hour_ago());
    let r = raw_client().get(&pixel).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "image/gif");
    // Forms have their own bucket (an unknown form answers 404, not 429).
    let r = client()
        .post(format!("{}/forms/f", app.base))
        .json(&serde_json::json!({"phone": "0912345678"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.shutdown().await;
}

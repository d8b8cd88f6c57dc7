//! End to end: signed webhook in → greeting received by the fake Zalo, at a steady rate.
//! The real service (`zaloflow::run`, shipped rules, SQLite or PostgreSQL) and the fake run in
//! this process over real HTTP on loopback.
//!
//!   cargo bench --bench e2e                       # 1,000 events/s for 10 s, SQLite
//!   E2E_RATE=1000 E2E_SECS=10 E2E_DB=postgres cargo bench --bench e2e
//!
//! Prints `RESULT figure=e2e_greeting …` with p50/p99 of (receipt at the fake − request sent).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use zaloflow::config::Config;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::zalo::signature;

const APP_ID: &str = "1234567890123456789";
const KEY: &str = "BENCH_KEY";

fn pct(v: &[f64], p: f64) -> f64 {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rate: u64 = std::env::var("E2E_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let secs: u64 = std::env::var("E2E_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let backend = std::env::var("E2E_DB").unwrap_or_else(|_| "sqlite".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let db_url = if backend == "postgres" {
            let admin = "postgres://postgres@127.0.0.1:5432/postgres";
            let pool = sqlx::PgPool::connect(admin).await.unwrap();
            let name = format!("zf_bench_e2e_{}", std::process::id());
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&pool).await.unwrap();
            format!("postgres://postgres@127.0.0.1:5432/{name}")
        } else {
            format!("sqlite://{}", dir.path().join("e2e.db").display())
        };
        let zalo = FakeZalo::start(FakeZaloOptions { accept_unknown_users: true, ..Default::default() }).await.unwrap();
        let o = FakeZaloOptions::default();
        let mut m = BTreeMap::new();
        for (k, v) in [
            ("DATABASE_URL", db_url.as_str()),
            ("ZALO_APP_ID", APP_ID),
            ("ZALO_OA_SECRET_KEY", KEY),
            ("ZALOFLOW_RULES", concat!(env!("CARGO_MANIFEST_DIR"), "/rules")),
            ("ZALO_API_BASE", zalo.base_url()),
            ("ZALO_OAUTH_BASE", zalo.base_url()),
            ("ZALO_APP_SECRET", o.app_secret.as_str()),
            ("ZALO_ACCESS_TOKEN", o.access_token.as_str()),
            ("ZALO_REFRESH_TOKEN", o.refresh_token.as_str()),
            ("ZALOFLOW_ZALO_RATE", "0"),
            ("ZALOFLOW_ZALO_RATE_PER_MINUTE", "0"),
        ] {
            m.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_map(&m).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(zaloflow::run(config, listener, async move {
            let _ = stop_rx.await;
        }));
        let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Each event a new user at 08:00 local yesterday: each gets the morning greeting.
        let yesterday_8 = {
            use chrono::TimeZone;
            let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Ho_Chi_Minh);
            let d = now.date_naive() - chrono::Duration::days(1);
            chrono_tz::Asia::Ho_Chi_Minh
                .from_local_datetime(&d.and_hms_opt(8, 0, 0).unwrap())
                .unwrap()
                .timestamp_millis()
        };
        let n = rate * secs;
        let started = Instant::now();
        let mut sent_at: HashMap<String, Duration> = HashMap::with_capacity(n as usize);
        let mut tasks = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for i in 0..n {
            tick.tick().await;
            let user = format!("{}", 8_000_000_000_000_000u64 + i);
            let ts = (yesterday_8 + i as i64 % 60_000).to_string();
            let body = serde_json::json!({
                "app_id": APP_ID, "event_name": "user_send_text", "timestamp": ts,
                "sender": {"id": user}, "recipient": {"id": "1"},
                "message": {"text": "Chào shop", "msg_id": format!("e2e{i}")},
            })
            .to_string();
            let sig = signature::header_value(APP_ID, body.as_bytes(), &ts, KEY);
            sent_at.insert(user, zalo_elapsed_offset(&zalo, started));
            let (c, url) = (client.clone(), format!("{base}/webhooks/zalo"));
            tasks.spawn(async move {
                let r = c.post(url).header("X-ZEvent-Signature", sig).body(body).send().await;
                matches!(r, Ok(r) if r.status() == 200)
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            ok += usize::from(r.unwrap());
        }
        let got = zalo.wait_for_messages(n as usize, Duration::from_secs(120)).await.len();
        let mut lat: Vec<f64> = zalo
            .arrivals()
            .iter()
            .filter(|a| a.path.ends_with("/message/cs"))
            .filter_map(|a| {
                let s = sent_at.get(a.user_id.as_ref()?)?;
                Some((a.elapsed.saturating_sub(*s)).as_secs_f64() * 1000.0)
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "RESULT figure=e2e_greeting backend={backend} rate={rate} secs={secs} accepted={ok} greeted={got} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1}",
            pct(&lat, 0.5), pct(&lat, 0.9), pct(&lat, 0.99), lat.last().copied().unwrap_or(0.0)
        );
        let _ = stop_tx.send(());
        let _ = server.await;
    });
}

/// "Now" on the fake's elapsed clock (it counts from its own start).
fn zalo_elapsed_offset(zalo: &FakeZalo, _started: Instant) -> Duration {
    zalo.elapsed()
}

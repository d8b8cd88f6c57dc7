//! A forecast of a month of stored events (issue 28): FORECAST_EVENTS (default 1,000,000)
//! customer messages from FORECAST_USERS (default 50,000) followers spread over 28 days in a
//! SQLite database, replayed against the running rules and a draft with one more rule. Prints
//! the time, the events per second and the peak memory (VmHWM) — which must not grow with the
//! number of events (the live store is read a page at a time).
//!
//!   cargo bench --bench forecast
//!   FORECAST_EVENTS=100000 cargo bench --bench forecast
//!   FORECAST_TRACE=1 …   # every SQL statement on stderr, with its time (sqlx's debug log)
//!   FORECAST_SQL_SENDS=1 … # the copy's sends through its outbox table, as before 2026-12-05
//!   FORECAST_SQL_STATES=1 … # contacts' state read back from the copy every batch (before 2026-12-05's second session)
//!
//! Prints one `RESULT` line.

use std::sync::Arc;
use std::time::Instant;

use zaloflow::forecast::{self, Settings, Window};
use zaloflow::rules::{load_sources, LoadOptions};
use zaloflow::store::{self, NewInboxEvent};

const DAY: i64 = 86_400_000;
const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;

const RULES: &str = "rules:
  - id: tra_loi
    when: message
    once_per: day
    do:
      - send: Dạ shop nhận được rồi ạ!
  - id: nhac_lai
    when:
      inactive: {min_days: 7, max_days: 14}
    do:
      - send: Lâu rồi không thấy bạn!
";

const EXTRA: &str = "  - id: cam_on
    when: message
    once_per: ever
    do:
      - send: Cảm ơn bạn đã nhắn!
";

fn env_num(k: &str, d: i64) -> i64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Peak resident memory of this process, in MiB.
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn rules(yaml: &str) -> Arc<zaloflow::rules::RuleSet> {
    Arc::new(
        load_sources(
            &[("t.yaml".into(), yaml.to_string())],
            &LoadOptions::default(),
        )
        .unwrap_or_else(|d| panic!("{d:?}")),
    )
}

fn message(user: &str, n: i64, ts: i64) -> String {
    serde_json::json!({
        "app_id": "bench",
        "event_name": "user_send_text",
        "timestamp": ts.to_string(),
        "sender": {"id": user},
        "recipient": {"id": "oa"},
        "message": {"text": "shop ơi", "msg_id": format!("m{n}")},
    })
    .to_string()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("FORECAST_TRACE").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("sqlx::query=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let events = env_num("FORECAST_EVENTS", 1_000_000);
    let users = env_num("FORECAST_USERS", 50_000);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("live.db").display());
    let live = store::open(&url).await.unwrap();
    live.migrate().await.unwrap();
    let from = chrono::TimeZone::with_ymd_and_hms(&TZ, 2027, 3, 1, 0, 0, 0)
        .unwrap()
        .timestamp_millis();
    let window = Window {
        from,
        to: from + 28 * DAY,
    };
    let t0 = Instant::now();
    let step = (28 * DAY) / events.max(1);
    let mut batch = Vec::with_capacity(5000);
    for n in 0..events {
        let ts = from + n * step;
        let user = (7_000_000_000_000_i64 + (n * 7919) % users).to_string();
        batch.push(NewInboxEvent {
            dedupe_key: format!("m{n}"),
            event_name: "user_send_text".into(),
            user_id: user.clone(),
            priority: 0,
            body: message(&user, n, ts),
            event_ts: Some(ts),
            received_at: ts,
        });
        if batch.len() == 5000 {
            live.insert_inbox(&batch).await.unwrap();
            batch.clear();
        }
    }
    live.insert_inbox(&batch).await.unwrap();
    drop(batch);
    let stored = t0.elapsed();
    let before = peak_mib();
    eprintln!(
        "stored {events} events in {:.1} s (peak {before:.0} MiB)",
        stored.as_secs_f64()
    );
    let settings = Settings {
        tz: TZ,
        lang: zaloflow::i18n::Lang::En,
        every_ms: env_num("FORECAST_EVERY_MIN", 10) * 60_000,
        handoff_policy: Default::default(),
        handoffs: Default::default(),
        promotion_hours: zaloflow_core::job::PROMOTION_HOURS,
        channels: zaloflow::channels::configured::Configured::all(),
        cost: Default::default(),
        scratch_dir: None,
        page: 2000,
        keep_sends: false,
        sends_in_memory: std::env::var_os("FORECAST_SQL_SENDS").is_none(),
        states_in_memory: if std::env::var_os("FORECAST_SQL_STATES").is_some() {
            0
        } else {
            forecast::STATES_IN_MEMORY
        },
    };
    let progress: forecast::Progress = Arc::new(|step: forecast::Step| {
        eprintln!(
            "  {}: {} events ({:.0}%), peak {:.0} MiB",
            step.run,
            step.events,
            step.share * 100.0,
            peak_mib()
        );
    });
    let t1 = Instant::now();
    let f = forecast::replay_window(
        &live,
        rules(RULES),
        rules(&format!("{RULES}{EXTRA}")),
        window,
        &settings,
        Some(progress),
    )
    .await
    .unwrap();
    let took = t1.elapsed().as_secs_f64();
    assert_eq!(f.events, events as u64);
    if std::env::var_os("FORECAST_DEBUG").is_some() {
        eprintln!("{:#?}", f.current.total());
    }
    let peak = peak_mib();
    println!(
        "RESULT forecast events={events} users={users} seconds={took:.1} events_per_s={:.0} (both runs) peak_mib={peak:.0} (before the forecast {before:.0}) sends_current={} sends_draft={}",
        2.0 * events as f64 / took,
        f.current.total().sent(),
        f.draft.total().sent(),
    );
}

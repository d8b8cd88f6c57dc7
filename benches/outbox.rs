//! Outbox throughput and limiter accuracy against the in-process fake Zalo over real HTTP.
//!
//!   cargo bench --bench outbox                 # SQLite and PostgreSQL (if reachable)
//!   OUTBOX_JOBS=20000 LIMIT_RATE=50 cargo bench --bench outbox
//!
//! Prints one `RESULT` line per figure (read by scripts/bench).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use zaloflow::channels::{Channels, ChannelsConfig, Payload, ZaloKind};
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::outbox::{self, Limiter, Sender, SenderOptions};
use zaloflow::store::{self, DynStore, JobLane};
use zaloflow::zalo::token::MemoryTokenStore;

fn env_num(k: &str, d: usize) -> usize {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

async fn sender(store: DynStore, zalo: &FakeZalo, limiter: Limiter, owner: &str) -> Sender {
    let o = FakeZaloOptions::default();
    let cfg = ChannelsConfig {
        zalo_api_base: zalo.base_url().into(),
        zalo_oauth_base: zalo.base_url().into(),
        zalo_zns_base: zalo.base_url().into(),
        app_id: Some(o.app_id),
        app_secret: Some(o.app_secret),
        access_token: Some(o.access_token),
        refresh_token: Some(o.refresh_token),
        ..ChannelsConfig::default()
    };
    let channels = Channels::new(&cfg, Arc::new(MemoryTokenStore::new(None))).unwrap();
    Sender::new(store, Arc::new(channels), owner)
        .with_limiter(limiter)
        .with_options(SenderOptions {
            batch: 500,
            concurrency: 64,
            ..SenderOptions::default()
        })
}

async fn enqueue(store: &DynStore, n: usize, prefix: &str) {
    let now = zaloflow::clock::system_now();
    let jobs: Vec<_> = (0..n)
        .map(|i| {
            let p = Payload::Zalo {
                user_id: format!("{prefix}{i}"),
                kind: ZaloKind::Cs,
                text: Some(
                    "Chào bạn! Bắt đầu ngày mới với ưu đãi 20% cho đơn hàng sáng nay.".into(),
                ),
                attachment: None,
            };
            outbox::job(&p, now, "bench")
        })
        .collect();
    for chunk in jobs.chunks(5000) {
        store.enqueue_jobs(chunk, now).await.unwrap();
    }
}

async fn throughput(backend: &str, url: &str, n: usize) {
    let store = store::open(url).await.unwrap();
    store.migrate().await.unwrap();
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..FakeZaloOptions::default()
    })
    .await
    .unwrap();
    enqueue(&store, n, "t").await;
    let s = sender(store.clone(), &zalo, Limiter::unlimited(), "bench").await;
    let started = Instant::now();
    let summary = s
        .pass(JobLane::All, &CancellationToken::new())
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(summary.sent, n, "{summary:?}");
    assert_eq!(zalo.messages().len(), n);
    println!(
        "RESULT figure=outbox_jobs_per_s backend={backend} value={:.0} jobs={n} secs={secs:.2}",
        n as f64 / secs
    );
}

/// `instances` senders, each with its own connection pool and lease owner (as separate
/// `serve` processes would be), drain one queue on one database together; every job is sent
/// exactly once.
async fn throughput_instances(backend: &str, url: &str, n: usize, instances: usize) {
    let first = store::open(url).await.unwrap();
    first.migrate().await.unwrap();
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..FakeZaloOptions::default()
    })
    .await
    .unwrap();
    enqueue(&first, n, "m").await;
    let mut senders = Vec::new();
    for k in 0..instances {
        let store = if k == 0 {
            first.clone()
        } else {
            store::open(url).await.unwrap()
        };
        let s = sender(store, &zalo, Limiter::unlimited(), &format!("bench-{k}")).await;
        senders.push(s);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for s in senders {
        tasks.spawn(async move {
            s.pass(JobLane::All, &CancellationToken::new())
                .await
                .unwrap()
                .sent
        });
    }
    let mut sent = 0;
    while let Some(r) = tasks.join_next().await {
        sent += r.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(sent, n);
    assert_eq!(zalo.messages().len(), n, "each job sent once");
    println!(
        "RESULT figure=outbox_jobs_per_s backend={backend} instances={instances} value={:.0} jobs={n} secs={secs:.2}",
        n as f64 / secs
    );
}

async fn limiter(backend: &str, url: &str, rate: u32, secs: u32) {
    let store = store::open(url).await.unwrap();
    store.migrate().await.unwrap();
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..FakeZaloOptions::default()
    })
    .await
    .unwrap();
    let n = (rate * secs) as usize;
    enqueue(&store, n, "l").await;
    let s = sender(store.clone(), &zalo, Limiter::new(rate, 0), "bench").await;
    let started = Instant::now();
    s.pass(JobLane::All, &CancellationToken::new())
        .await
        .unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let arrivals = zalo.arrivals();
    let first = arrivals.first().unwrap().elapsed;
    let last = arrivals.last().unwrap().elapsed;
    let measured = (arrivals.len() - 1) as f64 / (last - first).as_secs_f64();
    let deviation = (measured - rate as f64).abs() / rate as f64 * 100.0;
    let max = zalo.max_calls_in_one_second();
    println!(
        "RESULT figure=limiter backend={backend} rate={rate} measured={measured:.2} deviation_pct={deviation:.2} max_in_1s={max} secs={elapsed:.1}"
    );
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = env_num("OUTBOX_JOBS", 20_000);
    let rate = env_num("LIMIT_RATE", 50) as u32;
    let secs = env_num("LIMIT_SECS", 10) as u32;
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("b.db").display());
        throughput("sqlite", &sqlite, n).await;
        let lim = format!("sqlite://{}", dir.path().join("l.db").display());
        limiter("sqlite", &lim, rate, secs).await;
        let admin = std::env::var("ZALOFLOW_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
            let db = format!("zf_bench_{}", std::process::id());
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&pool)
                .await
                .unwrap();
            let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
            throughput("postgres", &url, n).await;
            let db2 = format!("{db}_2");
            sqlx::query(&format!("CREATE DATABASE {db2}"))
                .execute(&pool)
                .await
                .unwrap();
            let url2 = format!("{}/{db2}", admin.rsplit_once('/').unwrap().0);
            throughput_instances("postgres", &url2, n, 2).await;
            sqlx::query(&format!("DROP DATABASE {db2} WITH (FORCE)"))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
                .execute(&pool)
                .await
                .unwrap();
        } else {
            println!("(PostgreSQL not reachable: skipped)");
        }
    });
    let _ = Duration::from_secs(0);
}

//! The scheduler at scale: a re-activation pass over 1,000,000 generated contacts with the
//! shipped `rules/reactivation.yaml`, and a campaign step due for 100,000 members — on SQLite
//! and PostgreSQL (when reachable). Each figure is checked: exactly the right contacts get a
//! job (right window, following, not already reached in this silence), and a second tick at
//! the same instant enqueues nothing.
//!
//!   cargo bench --bench reactivation
//!   REACTIVATION_CONTACTS=200000 DRIP_MEMBERS=20000 cargo bench --bench reactivation
//!   SCHED_BACKENDS=sqlite SCHED_PARTS=drip cargo bench --bench reactivation
//!
//! Prints one `RESULT` line per figure.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::TimeZone;
use sqlx::Connection;
use zaloflow::engine::Engine;
use zaloflow::rules::{load_sources, LoadOptions};
use zaloflow::scheduler::{tick, TickContext};
use zaloflow::store::{self, DynStore};

const DAY: i64 = 86_400_000;
const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;
const STAGE_1: &str = "kich_hoat_giai_doan_1";
const STAGE_2: &str = "kich_hoat_giai_doan_2";

fn env_num(k: &str, d: i64) -> i64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn pg_admin_url() -> String {
    std::env::var("ZALOFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

enum Db {
    /// The folder is removed when dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir, String),
    Pg(String),
}

impl Db {
    fn url(&self) -> &str {
        match self {
            Db::Sqlite(_, u) | Db::Pg(u) => u,
        }
    }
}

async fn fresh(kind: &str) -> Option<Db> {
    match kind {
        "sqlite" => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            Some(Db::Sqlite(dir, url))
        }
        _ => {
            let mut conn = sqlx::PgConnection::connect(&pg_admin_url()).await.ok()?;
            let name = format!("zf_bench_{}_{}", std::process::id(), rand::random::<u32>());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .ok()?;
            let base = pg_admin_url();
            let (prefix, _) = base.rsplit_once('/').unwrap();
            Some(Db::Pg(format!("{prefix}/{name}")))
        }
    }
}

async fn drop_db(db: &Db) {
    if let Db::Pg(url) = db {
        let name = url.rsplit_once('/').unwrap().1.to_string();
        if let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Runs `sql` with binds through a plain connection to the bench database.
async fn exec(db: &Db, sql: &str, binds: &[i64]) {
    match db {
        Db::Sqlite(_, url) => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.execute(&mut c).await.unwrap();
        }
        Db::Pg(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let mut q = sqlx::query(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.execute(&mut c).await.unwrap();
        }
    }
}

async fn count(db: &Db, sql: &str, binds: &[i64]) -> i64 {
    match db {
        Db::Sqlite(_, url) => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            let mut q = sqlx::query_as::<_, (i64,)>(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(&mut c).await.unwrap().0
        }
        Db::Pg(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            let mut q = sqlx::query_as::<_, (i64,)>(sql);
            for b in binds {
                q = q.bind(*b);
            }
            q.fetch_one(&mut c).await.unwrap().0
        }
    }
}

/// What a live database keeps up to date: the tables' statistics (plans made for their real
/// sizes) and PostgreSQL's visibility map (index-only scans) — autovacuum on PostgreSQL, the
/// service's `PRAGMA optimize` at start and hourly on SQLite (`src/store/sqlite.rs`).
async fn analyze(kind: &str, db: &Db) {
    let sql = if kind == "postgres" {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    };
    exec(db, sql, &[]).await;
}

fn engine(files: &[(&str, String)]) -> Arc<Engine> {
    let files: Vec<(PathBuf, String)> = files
        .iter()
        .map(|(n, s)| (PathBuf::from(n), s.clone()))
        .collect();
    let set = load_sources(&files, &LoadOptions::default()).unwrap_or_else(|d| panic!("{d:?}"));
    Arc::new(Engine::with_rule_set(Arc::new(set), TZ))
}

async fn reactivation(kind: &str, db: &Db, store: &DynStore, n: i64, now: i64) {
    // 1M contacts: silent 0–364 days (spread evenly), every 10th unfollowed.
    let started = Instant::now();
    let generate = match kind {
        "sqlite" => {
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
             INSERT INTO contacts (user_id, display_name, follows, first_seen, last_interaction,
                 interaction_count, updated_at)
             SELECT CAST(1000000000 + i AS TEXT), 'Khách ' || i, CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END,
                    ?2 - 400 * 86400000, ?2 - ((i * 2654435761) % (365 * 86400000)), 1, ?2
             FROM n"
        }
        _ => {
            "INSERT INTO contacts (user_id, display_name, follows, first_seen, last_interaction,
                 interaction_count, updated_at)
             SELECT (1000000000 + i)::text, 'Khách ' || i, i % 10 <> 0,
                    $2 - 400 * 86400000::bigint,
                    $2 - ((i::bigint * 2654435761) % (365 * 86400000::bigint)), 1, $2
             FROM generate_series(0, $1 - 1) AS i"
        }
    };
    exec(db, generate, &[n, now]).await;
    // A seventh of stage 1's contacts heard from us already in this silence.
    let (s1_from, s1_to) = (now - 15 * DAY, now - 7 * DAY);
    let (s2_from, s2_to) = (now - 31 * DAY, now - 15 * DAY);
    let prefire = match kind {
        "sqlite" => {
            "INSERT INTO rule_state (user_id, rule_id, period_key, fired_at)
             SELECT user_id, 'kich_hoat_giai_doan_1', 'silence:' || last_interaction, ?3
             FROM contacts WHERE last_interaction > ?1 AND last_interaction <= ?2
               AND CAST(user_id AS INTEGER) % 7 = 0"
        }
        _ => {
            "INSERT INTO rule_state (user_id, rule_id, period_key, fired_at)
             SELECT user_id, 'kich_hoat_giai_doan_1', 'silence:' || last_interaction::text, $3
             FROM contacts WHERE last_interaction > $1 AND last_interaction <= $2
               AND user_id::bigint % 7 = 0"
        }
    };
    exec(db, prefire, &[s1_from, s1_to, now - DAY]).await;
    analyze(kind, db).await;
    let generated_in = started.elapsed();
    let following = match kind {
        "sqlite" => "follows = 1",
        _ => "follows",
    };
    let want_1 = count(
        db,
        &format!(
            "SELECT COUNT(*) FROM contacts WHERE {following} AND last_interaction > {s1_from}
             AND last_interaction <= {s1_to} AND NOT EXISTS (SELECT 1 FROM rule_state r
             WHERE r.user_id = contacts.user_id AND r.rule_id = 'kich_hoat_giai_doan_1')"
        ),
        &[],
    )
    .await;
    let want_2 = count(
        db,
        &format!(
            "SELECT COUNT(*) FROM contacts WHERE {following} AND last_interaction > {s2_from}
             AND last_interaction <= {s2_to}"
        ),
        &[],
    )
    .await;

    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules/reactivation.yaml"
    ))
    .unwrap();
    let ctx = TickContext::new(
        store.clone(),
        engine(&[("reactivation.yaml", rules)]),
        "bench",
    );
    let t = Instant::now();
    let report = tick(&ctx, now).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let got_1 = report.reactivation.get(STAGE_1).map_or(0, |r| r.fired) as i64;
    let got_2 = report.reactivation.get(STAGE_2).map_or(0, |r| r.fired) as i64;
    let jobs_1 = count(
        db,
        "SELECT COUNT(DISTINCT user_id) FROM outbox WHERE rule_id = 'kich_hoat_giai_doan_1'",
        &[],
    )
    .await;
    let jobs_2 = count(
        db,
        "SELECT COUNT(DISTINCT user_id) FROM outbox WHERE rule_id = 'kich_hoat_giai_doan_2'",
        &[],
    )
    .await;
    let to_unfollowed = count(
        db,
        &format!(
            "SELECT COUNT(*) FROM outbox o JOIN contacts c ON c.user_id = o.user_id
             WHERE NOT ({})",
            following.replace("follows", "c.follows")
        ),
        &[],
    )
    .await;
    assert_eq!(
        (got_1, got_2),
        (want_1, want_2),
        "fired for the right contacts"
    );
    assert_eq!((jobs_1, jobs_2), (want_1, want_2), "one job per contact");
    assert_eq!(to_unfollowed, 0);
    println!(
        "RESULT figure=reactivation_1m backend={kind} contacts={n} enqueued={} stage1={want_1} stage2={want_2} seconds={secs:.3} (generated in {:.1} s)",
        want_1 + want_2,
        generated_in.as_secs_f64()
    );
    let t = Instant::now();
    let again = tick(&ctx, now).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(again.jobs, 0);
    println!(
        "RESULT figure=reactivation_1m_repeat backend={kind} contacts={n} enqueued=0 seconds={secs:.3}"
    );
}

async fn drip(kind: &str, db: &Db, store: &DynStore, n: i64, now: i64) {
    let generate = match kind {
        "sqlite" => {
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1)
             INSERT INTO contacts (user_id, display_name, phone, follows, first_seen,
                 last_interaction, interaction_count, updated_at)
             SELECT 'phone:849' || (10000000 + i), 'Lan ' || i, '849' || (10000000 + i), 1,
                    ?2 - 86400000, ?2 - 3600000, 1, ?2
             FROM n"
        }
        _ => {
            "INSERT INTO contacts (user_id, display_name, phone, follows, first_seen,
                 last_interaction, interaction_count, updated_at)
             SELECT 'phone:849' || (10000000 + i), 'Lan ' || i, '849' || (10000000 + i), true,
                    $2 - 86400000, $2 - 3600000, 1, $2
             FROM generate_series(0, $1 - 1) AS i"
        }
    };
    exec(db, generate, &[n, now]).await;
    let members = match kind {
        "sqlite" => {
            "INSERT INTO campaign_members (campaign, contact_id, entered_at, step, next_at, status,
                 entries, updated_at)
             SELECT 'drip', user_id, ?1 - 86400000, 1, ?1 - 60000, 'active', 1, ?1
             FROM contacts WHERE user_id LIKE 'phone:%'"
        }
        _ => {
            "INSERT INTO campaign_members (campaign, contact_id, entered_at, step, next_at, status,
                 entries, updated_at)
             SELECT 'drip', user_id, $1 - 86400000, 1, $1 - 60000, 'active', 1, $1
             FROM contacts WHERE user_id LIKE 'phone:%'"
        }
    };
    exec(db, members, &[now]).await;
    // The members entered a day ago: autovacuum has analysed the tables since.
    analyze(kind, db).await;
    let yaml = r#"
campaigns:
  - id: drip
    enter_on: {form_submitted: dang_ky}
    steps:
      - do: [{sms: "Chào {{display_name}}, cảm ơn bạn đã đăng ký!"}]
      - day: 1
        do: [{sms: "Ngày 1: ưu đãi 10% dành cho {{display_name}}"}]
      - day: 3
        at: "09:00"
        do: [{sms: "Ngày 3: ưu đãi sắp hết hạn"}]
"#;
    let ctx = TickContext::new(
        store.clone(),
        engine(&[("drip.yaml", yaml.to_string())]),
        "bench",
    );
    let t = Instant::now();
    let report = tick(&ctx, now).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let ran = report
        .campaigns
        .get("drip")
        .map_or(0, |c| c.steps.values().sum::<usize>()) as i64;
    let jobs = count(
        db,
        "SELECT COUNT(*) FROM outbox WHERE channel = 'sms' AND rule_id = 'drip/2'",
        &[],
    )
    .await;
    let waiting = count(
        db,
        "SELECT COUNT(*) FROM campaign_members WHERE campaign = 'drip' AND step = 2 AND status = 'active'",
        &[],
    )
    .await;
    assert_eq!((ran, jobs, waiting), (n, n, n));
    println!(
        "RESULT figure=drip_100k backend={kind} members={n} enqueued={jobs} seconds={secs:.3}"
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = env_num("REACTIVATION_CONTACTS", 1_000_000);
    let members = env_num("DRIP_MEMBERS", 100_000);
    // Monday 1 March 2027, 10:00 in Hồ Chí Minh City (inside the rules' 08:00–20:59).
    let now = TZ
        .with_ymd_and_hms(2027, 3, 1, 10, 0, 0)
        .unwrap()
        .timestamp_millis();
    // SCHED_BACKENDS=sqlite,postgres and SCHED_PARTS=reactivation,drip pick what runs.
    let pick = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.into());
    let backends = pick("SCHED_BACKENDS", "sqlite,postgres");
    let parts = pick("SCHED_PARTS", "reactivation,drip");
    rt.block_on(async {
        for kind in ["sqlite", "postgres"] {
            if !backends.split(',').any(|b| b == kind) {
                continue;
            }
            let Some(db) = fresh(kind).await else {
                println!(
                    "SKIP backend={kind}: PostgreSQL not reachable at {}",
                    pg_admin_url()
                );
                continue;
            };
            let store = store::open(db.url()).await.unwrap();
            store.migrate().await.unwrap();
            if parts.split(',').any(|p| p == "reactivation") {
                reactivation(kind, &db, &store, n, now).await;
            }
            if parts.split(',').any(|p| p == "drip") {
                drip(kind, &db, &store, members, now).await;
            }
            drop(store);
            drop_db(&db).await;
        }
    });
}

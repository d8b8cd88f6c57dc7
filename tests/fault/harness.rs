//! What the fault-injection tests share: the real `zaloflow serve` binary as a child process
//! (SIGKILLed at will), the fake Zalo over real HTTP, a rule that answers every message, signed
//! webhook load from several tasks, and the counts read back from the database and the fake.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::Connection;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};

use crate::common::*;

/// Every user message gets one answer: one outbox job per event, one message at the fake.
pub const ANSWER_RULE: &str = r#"
rules:
  - id: tra_loi
    when: message
    do:
      - send: "Shop đã nhận tin nhắn của bạn."
"#;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How to start `zaloflow serve`: the database, the rules, the fake Zalo, extra settings.
pub struct Setup {
    pub db_url: String,
    pub rules: tempfile::TempDir,
    pub zalo_base: Option<String>,
    pub env: BTreeMap<String, String>,
}

impl Setup {
    /// Short leases (so a restart takes over quickly), a 1 s send timeout, quick retries,
    /// no wall-clock ticks, and the answer rule.
    pub fn new(db_url: &str, zalo: Option<&FakeZalo>) -> Setup {
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(rules.path().join("answer.yaml"), ANSWER_RULE).unwrap();
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("ZALOFLOW_OUTBOX_LEASE", "4s"),
            ("ZALOFLOW_INBOX_LEASE", "3s"),
            ("ZALOFLOW_SEND_TIMEOUT", "1s"),
            (
                "ZALOFLOW_OUTBOX_RETRY",
                "300ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s",
            ),
            ("ZALOFLOW_ZALO_RATE", "0"),
            ("ZALOFLOW_ZALO_RATE_PER_MINUTE", "0"),
            ("ZALOFLOW_TICK", "off"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        Setup {
            db_url: db_url.to_string(),
            rules,
            zalo_base: zalo.map(|z| z.base_url().to_string()),
            env,
        }
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Starts one instance on `port` (does not wait for it).
    pub fn spawn(&self, port: u16) -> Service {
        let mut cmd = zaloflow_command(
            &["serve"],
            &self.db_url,
            self.rules.path(),
            self.zalo_base.as_deref(),
        );
        cmd.env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Service {
            child: Some(cmd.spawn().expect("start zaloflow serve")),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Starts one instance and waits until it is ready.
    pub async fn start(&self, port: u16) -> Service {
        let s = self.spawn(port);
        s.wait_ready().await;
        s
    }
}

/// A `zaloflow` process of these tests: nothing inherited but `PATH`, no config file, the
/// webhook keys, `rules`, and with a fake Zalo at `zalo_base` its addresses and tokens.
pub fn zaloflow_command(
    args: &[&str],
    db_url: &str,
    rules: &std::path::Path,
    zalo_base: Option<&str>,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zaloflow"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("ZALO_APP_ID", APP_ID)
        .env("ZALO_OA_SECRET_KEY", OA_KEY)
        .env("ZALOFLOW_RULES", rules)
        .env("ZALOFLOW_CONFIG", "/nonexistent.toml")
        .env("ZALOFLOW_CONTACTS_SYNC", "off")
        .env("ZALOFLOW_CONTACTS_LOOKUP", "false")
        .env("RUST_LOG", "error");
    if let Some(base) = zalo_base {
        let o = FakeZaloOptions::default();
        cmd.env("ZALO_API_BASE", base)
            .env("ZALO_OAUTH_BASE", base)
            .env("ZALO_ZNS_BASE", base)
            .env("ZALO_APP_SECRET", o.app_secret)
            .env("ZALO_ACCESS_TOKEN", o.access_token)
            .env("ZALO_REFRESH_TOKEN", o.refresh_token);
    }
    cmd
}

/// `zaloflow tick --at AT` against the fake Zalo, pacing OA calls at `rate` per second.
pub fn tick_command(
    at: &str,
    db_url: &str,
    rules: &std::path::Path,
    zalo: &FakeZalo,
    rate: u32,
) -> Command {
    let mut cmd = zaloflow_command(&["tick", "--at", at], db_url, rules, Some(zalo.base_url()));
    cmd.env("ZALOFLOW_ZALO_RATE", rate.to_string());
    cmd
}

/// A running `zaloflow serve`; killed (SIGKILL) when dropped.
pub struct Service {
    child: Option<Child>,
    pub base: String,
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.base);
        wait_until(Duration::from_secs(30), || async {
            matches!(client().get(&url).send().await, Ok(r) if r.status() == 200)
        })
        .await;
    }

    /// SIGKILL: no drain, no lease given back, whatever was in flight is cut.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The fake Zalo as the fault tests use it: every user known (a user's first message makes
/// them a follower who just interacted).
pub async fn fake_zalo() -> FakeZalo {
    FakeZalo::start(FakeZaloOptions {
        app_id: APP_ID.into(), // the service's ZALO_APP_ID (webhooks and token refresh)
        accept_unknown_users: true,
        ..FakeZaloOptions::default()
    })
    .await
    .unwrap()
}

/// What a load run saw.
#[derive(Default)]
pub struct Seen {
    /// msg ids (= user ids) answered 200
    pub acked: Mutex<HashSet<String>>,
    /// answers by status (0: no answer: connection refused or reset)
    pub statuses: Mutex<BTreeMap<u16, usize>>,
    pub sent: AtomicUsize,
}

impl Seen {
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
    pub fn count(&self, status: u16) -> usize {
        self.statuses
            .lock()
            .unwrap()
            .get(&status)
            .copied()
            .unwrap_or(0)
    }
}

/// Signed webhook load: `tasks` senders, each posting new messages (a new user per message, so
/// each answer at the fake belongs to one event) to the bases in turn until `stop`.
pub struct Load {
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    set: tokio::task::JoinSet<()>,
}

impl Load {
    pub fn start(bases: Vec<String>, tasks: usize, tag: &str, seen: Arc<Seen>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        for t in 0..tasks {
            let (bases, seen, stop, tag) =
                (bases.clone(), seen.clone(), stop.clone(), tag.to_string());
            set.spawn(async move {
                let c = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .pool_max_idle_per_host(1)
                    .build()
                    .unwrap();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let base = &bases[(i + t) % bases.len()];
                    // decimal ids, like Zalo's
                    let id = format!("{tag}{t:02}{i:07}");
                    let body = text_event(&id, &id, "xin chào shop");
                    seen.sent.fetch_add(1, Ordering::Relaxed);
                    let r = c
                        .post(format!("{base}/webhooks/zalo"))
                        .header("X-ZEvent-Signature", sign(&body))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    let status = match r {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    *seen.statuses.lock().unwrap().entry(status).or_default() += 1;
                    if status == 200 {
                        seen.acked.lock().unwrap().insert(id);
                    } else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            });
        }
        Load { seen, stop, set }
    }

    pub async fn until_acked(&self, n: usize, limit: Duration) {
        wait_until(limit, || async { self.seen.acked() >= n }).await;
    }

    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.set.join_next().await.is_some() {}
    }
}

/// One outbox job as the database holds it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub user_id: String,
    pub status: String,
    pub attempts: i64,
    /// Zalo's code (or the HTTP status) of the last failed attempt
    pub last_code: Option<i64>,
    pub last_error: Option<String>,
}

/// What the database holds after a run.
pub struct Stored {
    /// msg ids of the stored user_send_text events
    pub events: HashSet<String>,
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
    /// sum of the contacts' interaction counts (each processed event counts once)
    pub interactions: i64,
    pub jobs: Vec<JobRow>,
}

pub async fn read_stored(db_url: &str) -> Stored {
    let store = zaloflow::store::open(db_url).await.unwrap();
    let st = store.inbox_stats().await.unwrap();
    type Rows = (
        Vec<(String,)>,
        (i64,),
        Vec<(String, String, i64, Option<i64>, Option<String>)>,
    );
    let (keys, (interactions,), jobs): Rows = if db_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(db_url).await.unwrap();
        (
            sqlx::query_as("SELECT dedupe_key FROM inbox")
                .fetch_all(&mut c)
                .await
                .unwrap(),
            sqlx::query_as("SELECT COALESCE(SUM(interaction_count), 0) FROM contacts")
                .fetch_one(&mut c)
                .await
                .unwrap(),
            sqlx::query_as("SELECT user_id, status, CAST(attempts AS BIGINT), last_code, last_error FROM outbox")
                .fetch_all(&mut c)
                .await
                .unwrap(),
        )
    } else {
        let mut c = sqlx::PgConnection::connect(db_url).await.unwrap();
        (
            sqlx::query_as("SELECT dedupe_key FROM inbox")
                .fetch_all(&mut c)
                .await
                .unwrap(),
            sqlx::query_as("SELECT COALESCE(SUM(interaction_count), 0)::BIGINT FROM contacts")
                .fetch_one(&mut c)
                .await
                .unwrap(),
            sqlx::query_as("SELECT user_id, status, attempts::BIGINT, last_code::BIGINT, last_error FROM outbox")
                .fetch_all(&mut c)
                .await
                .unwrap(),
        )
    };
    Stored {
        events: keys
            .into_iter()
            .map(|(k,)| k.trim_start_matches("user_send_text:").to_string())
            .collect(),
        pending: st.pending,
        done: st.done,
        failed: st.failed,
        interactions,
        jobs: jobs
            .into_iter()
            .map(
                |(user_id, status, attempts, last_code, last_error)| JobRow {
                    user_id,
                    status,
                    attempts,
                    last_code,
                    last_error,
                },
            )
            .collect(),
    }
}

/// Waits until every stored event is processed and every job has its outcome.
pub async fn wait_settled(db_url: &str, limit: Duration) -> Stored {
    wait_settled_but(db_url, limit, |_| false).await
}

/// Waits until every stored event is processed and every job has its outcome or is pending
/// for a reason `later` accepts.
pub async fn wait_settled_but(
    db_url: &str,
    limit: Duration,
    later: impl Fn(&JobRow) -> bool,
) -> Stored {
    let start = std::time::Instant::now();
    loop {
        let s = read_stored(db_url).await;
        let open = s
            .jobs
            .iter()
            .filter(|j| j.status == "sending" || (j.status == "pending" && !later(j)))
            .count();
        if s.pending == 0 && open == 0 {
            return s;
        }
        assert!(
            start.elapsed() < limit,
            "not settled within {limit:?}: {} events pending, {open} jobs open: {:?}",
            s.pending,
            s.jobs
                .iter()
                .filter(|j| j.status == "sending" || (j.status == "pending" && !later(j)))
                .take(5)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Answers the fake accepted, by recipient.
pub fn messages_by_user(zalo: &FakeZalo) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for msg in zalo.messages() {
        if let Some(u) = msg.user_id {
            *m.entry(u).or_default() += 1;
        }
    }
    m
}

/// The exactly-once check of a run: every acknowledged event stored, every stored event
/// processed once, one job per event, every job sent, and every event's answer received by the
/// fake once — except jobs whose call was in flight when a process died or timed out, which
/// may arrive twice (never more than their attempts). Answers the number of duplicates.
pub fn assert_exactly_once(
    label: &str,
    acked: &HashSet<String>,
    s: &Stored,
    zalo: &FakeZalo,
) -> usize {
    let lost: Vec<_> = acked.difference(&s.events).take(5).collect();
    assert!(
        lost.is_empty(),
        "{label}: acknowledged but not stored: {lost:?}"
    );
    assert_eq!(s.failed, 0, "{label}: failed events");
    assert_eq!(
        s.done as usize,
        s.events.len(),
        "{label}: every stored event processed"
    );
    assert_eq!(
        s.interactions as usize,
        s.events.len(),
        "{label}: each event counted on its contact exactly once"
    );
    assert_eq!(
        s.jobs.len(),
        s.events.len(),
        "{label}: one answer job per event"
    );
    let not_sent: Vec<_> = s
        .jobs
        .iter()
        .filter(|j| j.status != "sent")
        .take(5)
        .collect();
    assert!(not_sent.is_empty(), "{label}: jobs not sent: {not_sent:?}");
    let got = messages_by_user(zalo);
    let attempts: BTreeMap<&str, i64> = s
        .jobs
        .iter()
        .map(|j| (j.user_id.as_str(), j.attempts))
        .collect();
    let mut dups = 0;
    for e in &s.events {
        let n = got.get(e).copied().unwrap_or(0);
        assert!(n >= 1, "{label}: the answer to {e} never reached Zalo");
        if n > 1 {
            dups += n - 1;
            let a = attempts.get(e.as_str()).copied().unwrap_or(0);
            assert!(
                a >= n as i64,
                "{label}: {e} received {n} times but attempted {a} times: a duplicate outside an in-flight call"
            );
        }
    }
    let extra: Vec<_> = got
        .keys()
        .filter(|u| !s.events.contains(*u))
        .take(5)
        .collect();
    assert!(
        extra.is_empty(),
        "{label}: answers to events never stored: {extra:?}"
    );
    dups
}

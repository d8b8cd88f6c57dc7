//! The outbox over real HTTP against the fake Zalo and an HTTP sink, on real databases:
//! delivery, retries, dead letters, tokens across restarts, the rate limit (also with two
//! instances on one PostgreSQL), a worker that dies mid-job, the admin API.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;
use zaloflow::channels::{Channels, ChannelsConfig, Payload, ZaloKind};
use zaloflow::clock::Clock;
use zaloflow::fakes::http_sink::{HttpSink, SinkResponse};
use zaloflow::fakes::zalo::{Failure, FakeUser, FakeZalo, FakeZaloOptions};
use zaloflow::outbox::{self, Limiter, RetryPolicy, Sender, SenderOptions};
use zaloflow::store::{self, DynStore, JobLane};
use zaloflow::zalo::token::TokenStore;

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z (07:00 in Hồ Chí Minh)

struct Rig {
    _db: Db,
    store: DynStore,
    zalo: FakeZalo,
    sink: HttpSink,
    clock: Clock,
}

async fn rig(kind: &str) -> Rig {
    let db = Db::new(kind).await;
    let store = store::open(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    let now = chrono::DateTime::from_timestamp_millis(T0).unwrap();
    zalo.set_now(Some(now));
    for u in ["u1", "u2", "u3"] {
        zalo.add_user(FakeUser::new(u, u, now));
    }
    let sink = HttpSink::start().await.unwrap();
    Rig {
        _db: db,
        store,
        zalo,
        sink,
        clock: Clock::fixed(T0),
    }
}

impl Rig {
    fn channels_config(&self) -> ChannelsConfig {
        ChannelsConfig {
            zalo_api_base: self.zalo.base_url().into(),
            zalo_oauth_base: self.zalo.base_url().into(),
            zalo_zns_base: self.zalo.base_url().into(),
            app_id: Some(FakeZaloOptions::default().app_id),
            app_secret: Some(FakeZaloOptions::default().app_secret),
            access_token: Some(FakeZaloOptions::default().access_token),
            refresh_token: Some(FakeZaloOptions::default().refresh_token),
            chat_webhook_url: Some(self.sink.url("/chat")),
            sms_url: Some(self.sink.url("/sms")),
            timeout: Duration::from_secs(2),
            allow_private_urls: true, // the sink listens on 127.0.0.1
            ..ChannelsConfig::default()
        }
    }

    fn sender(&self, owner: &str, limiter: Limiter) -> Sender {
        let tokens = zaloflow::zalo::stored_tokens::DbTokenStore::new(
            self.store.clone(),
            owner.into(),
            self.clock.clone(),
        );
        let channels = Channels::new(&self.channels_config(), tokens)
            .unwrap()
            .with_clock(self.clock.clone());
        Sender::new(self.store.clone(), Arc::new(channels), owner)
            .with_limiter(limiter)
            .with_retry(RetryPolicy {
                jitter: 0.0,
                ..RetryPolicy::parse("10s,1m,5m").unwrap()
            })
            .with_clock(self.clock.clone())
            .with_options(SenderOptions {
                lease: Duration::from_secs(30),
                ..SenderOptions::default()
            })
    }

    async fn enqueue(&self, payloads: &[Payload]) {
        let jobs: Vec<_> = payloads
            .iter()
            .map(|p| outbox::job(p, self.clock.now(), "test"))
            .collect();
        self.store
            .enqueue_jobs(&jobs, self.clock.now())
            .await
            .unwrap();
    }

    async fn status_counts(&self) -> (i64, i64, i64) {
        let mut c = (0, 0, 0);
        for (_, status, n) in self.store.job_counts().await.unwrap() {
            match status.as_str() {
                "sent" => c.0 += n,
                "pending" | "sending" => c.1 += n,
                "dead" => c.2 += n,
                _ => {}
            }
        }
        c
    }
}

fn text(user: &str, t: &str) -> Payload {
    Payload::Zalo {
        user_id: user.into(),
        kind: ZaloKind::Cs,
        text: Some(t.into()),
        attachment: None,
    }
}

async fn pass(s: &Sender) -> outbox::Summary {
    s.pass(JobLane::All, &CancellationToken::new())
        .await
        .unwrap()
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    delivers_in_order_per_user,
    transient_errors_retry_then_deliver_once,
    permanent_errors_dead_letter_with_reason,
    night_refusal_waits_for_six_in_the_morning,
    refreshed_tokens_survive_a_restart,
    a_dead_worker_s_job_is_reclaimed_and_sent_once,
    staff_channels_retry_and_dead_letter,
    an_idle_sender_writes_its_lease_only_when_a_third_has_gone,
);

/// The `zalo-sender` lease as stored: (owner, until).
async fn sender_lease(r: &Rig) -> Option<(String, i64)> {
    use sqlx::Connection;
    let sql = "SELECT owner, until FROM leases WHERE name = 'zalo-sender'";
    match &r._db {
        Db::Sqlite(_, url) => {
            let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_optional(&mut c).await.unwrap()
        }
        Db::Pg(url) => {
            let mut c = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_as(sql).fetch_optional(&mut c).await.unwrap()
        }
    }
}

async fn delivers_in_order_per_user(kind: &str) {
    let r = rig(kind).await;
    r.enqueue(&[
        text("u1", "một"),
        text("u2", "hai"),
        text("u1", "ba"),
        text("u1", "bốn"),
    ])
    .await;
    let s = pass(&r.sender("a", Limiter::unlimited())).await;
    assert_eq!(s.sent, 4);
    let u1: Vec<String> = r
        .zalo
        .messages()
        .iter()
        .filter(|m| m.user_id.as_deref() == Some("u1"))
        .filter_map(|m| m.text().map(str::to_string))
        .collect();
    assert_eq!(u1, ["một", "ba", "bốn"]);
    assert_eq!(r.status_counts().await, (4, 0, 0));
    // Nothing is sent twice: another pass finds nothing.
    assert_eq!(
        pass(&r.sender("a", Limiter::unlimited())).await,
        outbox::Summary::default()
    );
    assert_eq!(r.zalo.messages().len(), 4);
}

async fn transient_errors_retry_then_deliver_once(kind: &str) {
    let r = rig(kind).await;
    let sender = r.sender("a", Limiter::unlimited());
    for (i, failure) in [
        Failure::Zalo {
            code: -32,
            message: "rate limit".into(),
        },
        Failure::Zalo {
            code: -211,
            message: "out of quota".into(),
        },
        Failure::Zalo {
            code: -218,
            message: "out of quota".into(),
        },
        Failure::Zalo {
            code: -100,
            message: "attachment expired".into(),
        },
        Failure::Http(503),
    ]
    .into_iter()
    .enumerate()
    {
        let before = r.zalo.messages().len();
        r.zalo.fail_next(1, failure.clone());
        r.enqueue(&[text("u1", &format!("thử {i}"))]).await;
        let first = pass(&sender).await;
        assert_eq!((first.sent, first.retried), (0, 1), "{failure:?}");
        let job = r
            .store
            .list_jobs(Some("pending"), 1)
            .await
            .unwrap()
            .remove(0);
        assert!(
            job.last_error.is_some() && job.run_at > r.clock.now(),
            "{failure:?}: {job:?}"
        );
        // Not before its time…
        assert_eq!(pass(&sender).await, outbox::Summary::default());
        // …and then delivered, once.
        r.clock.set(job.run_at);
        assert_eq!(pass(&sender).await.sent, 1, "{failure:?}");
        assert_eq!(r.zalo.messages().len(), before + 1);
    }
    assert_eq!(r.status_counts().await, (5, 0, 0));
}

async fn permanent_errors_dead_letter_with_reason(kind: &str) {
    let r = rig(kind).await;
    let sender = r.sender("a", Limiter::unlimited());
    for code in [-201, -213, -217, -227, -230, -232] {
        r.zalo.fail_next(
            1,
            Failure::Zalo {
                code,
                message: format!("zalo says {code}"),
            },
        );
        r.enqueue(&[text("u2", "xin chào")]).await;
        let s = pass(&sender).await;
        assert_eq!(s.dead, 1, "code {code}");
    }
    // -244 (the user refused this type of message) is not a failure: the send is skipped with
    // its reason, never retried, and the contact remembers the opt-out.
    r.zalo.fail_next(
        1,
        Failure::Zalo {
            code: -244,
            message: "zalo says -244".into(),
        },
    );
    r.enqueue(&[text("u4", "xin chào")]).await;
    let s = pass(&sender).await;
    assert_eq!((s.dead, s.skipped), (0, 1));
    let skipped = r.store.list_jobs(Some("skipped"), 10).await.unwrap();
    assert_eq!(skipped[0].skip_reason.as_deref(), Some("opted_out"));
    assert_eq!(skipped[0].attempts, 1);
    let c = r.store.get_contact("u4").await.unwrap().unwrap();
    assert_eq!(
        c.fields.get("zalo_optout_cs").map(String::as_str),
        Some("yes")
    );
    let dead = r.store.list_jobs(Some("dead"), 100).await.unwrap();
    assert_eq!(dead.len(), 6);
    for j in &dead {
        let code = j.last_code.unwrap();
        assert!(
            j.last_error
                .as_deref()
                .unwrap()
                .contains(&format!("zalo says {code}")),
            "{j:?}"
        );
        assert_eq!(j.attempts, 1, "permanent failures are not retried");
    }
    // -213 taught us the user does not follow the OA.
    let c = r.store.get_contact("u2").await.unwrap().unwrap();
    assert_eq!(c.follows, Some(false));
    // An operator may send a dead letter back.
    let id = dead[0].id;
    assert!(r.store.retry_dead_job(id, r.clock.now()).await.unwrap());
    assert_eq!(pass(&sender).await.sent, 1);
    // Retries are bounded: a job failing every time ends dead after the schedule.
    r.zalo.fail_next(10, Failure::Http(500));
    r.enqueue(&[text("u3", "luôn lỗi")]).await;
    for _ in 0..4 {
        pass(&sender).await;
        r.clock.set(r.clock.now() + 600_000);
    }
    let j = r
        .store
        .list_jobs(Some("dead"), 100)
        .await
        .unwrap()
        .into_iter()
        .find(|j| j.user_id == "u3")
        .unwrap();
    assert_eq!(j.attempts, 4);
    assert!(j.last_error.unwrap().contains("gave up after 4 attempts"));
}

async fn night_refusal_waits_for_six_in_the_morning(kind: &str) {
    let r = rig(kind).await;
    // 23:00 in Hồ Chí Minh.
    let night = T0 + 16 * 3_600_000;
    r.clock.set(night);
    r.zalo.fail_next(
        1,
        Failure::Zalo {
            code: -234,
            message: "cannot send at night".into(),
        },
    );
    r.enqueue(&[text("u1", "khuya")]).await;
    let sender = r.sender("a", Limiter::unlimited());
    assert_eq!(pass(&sender).await.retried, 1);
    let job = r
        .store
        .list_jobs(Some("pending"), 1)
        .await
        .unwrap()
        .remove(0);
    let six = T0 + 23 * 3_600_000; // 06:00 local the next day
    assert!(
        job.run_at >= six && job.run_at < six + 61_000,
        "{} vs {six}",
        job.run_at
    );
}

async fn refreshed_tokens_survive_a_restart(kind: &str) {
    let r = rig(kind).await;
    r.zalo.expire_access_tokens();
    r.enqueue(&[text("u1", "một")]).await;
    assert_eq!(pass(&r.sender("first", Limiter::unlimited())).await.sent, 1);
    assert_eq!(r.zalo.refresh_count(), 1);
    let stored = r.store.load_tokens().await.unwrap().unwrap();
    assert_ne!(
        stored.refresh_token,
        FakeZaloOptions::default().refresh_token,
        "the new pair is persisted"
    );
    // "Restart": a new sender built from the same (stale) environment uses the stored pair and
    // never spends the old refresh token again.
    r.enqueue(&[text("u1", "hai")]).await;
    assert_eq!(
        pass(&r.sender("second", Limiter::unlimited())).await.sent,
        1
    );
    assert_eq!(r.zalo.refresh_count(), 1);
    let db_tokens = zaloflow::zalo::stored_tokens::DbTokenStore::new(
        r.store.clone(),
        "x".into(),
        r.clock.clone(),
    );
    assert_eq!(db_tokens.load().await.unwrap().unwrap(), stored);
}

async fn a_dead_worker_s_job_is_reclaimed_and_sent_once(kind: &str) {
    let r = rig(kind).await;
    r.enqueue(&[text("u1", "một lần")]).await;
    // A worker claims the job (the attempt is marked) and dies before calling out. Leases
    // run on the wall clock (not the rig's fixed one): this one lasts 1.5 s.
    let lease_ms = 1_500;
    let claimed = r
        .store
        .claim_jobs(
            "dying",
            r.clock.now(),
            zaloflow::clock::system_now(),
            lease_ms,
            10,
            JobLane::All,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let other = r.sender("b", Limiter::unlimited());
    assert_eq!(
        pass(&other).await,
        outbox::Summary::default(),
        "leased: not taken while the lease runs"
    );
    // However far the rig's clock moves, the lease holds until its wall-clock end.
    r.clock.set(r.clock.now() + 365 * 86_400_000);
    assert_eq!(pass(&other).await, outbox::Summary::default());
    tokio::time::sleep(std::time::Duration::from_millis(lease_ms as u64 + 100)).await;
    assert_eq!(pass(&other).await.sent, 1);
    assert_eq!(r.zalo.messages().len(), 1);
    let job = r.store.list_jobs(Some("sent"), 1).await.unwrap().remove(0);
    assert_eq!(job.attempts, 2);
    // The dead worker's late outcome is not recorded over the new owner's.
    let lost = r
        .store
        .finish_jobs(
            "dying",
            &[zaloflow::store::JobOutcome {
                id: job.id,
                result: zaloflow::store::JobResult::Dead {
                    error: "late".into(),
                    code: None,
                },
                contact: None,
            }],
            r.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(lost, 1);
    assert_eq!(r.status_counts().await, (1, 0, 0));
}

async fn staff_channels_retry_and_dead_letter(kind: &str) {
    let r = rig(kind).await;
    let sender = r.sender("a", Limiter::unlimited());
    r.sink.respond_next(1, SinkResponse::status(500, "boom"));
    r.enqueue(&[Payload::Chat {
        channel: None,
        text: "Khách VIP cần hỗ trợ".into(),
        data: serde_json::Value::Null,
    }])
    .await;
    assert_eq!(pass(&sender).await.retried, 1);
    r.clock.set(r.clock.now() + 11_000);
    assert_eq!(pass(&sender).await.sent, 1);
    r.sink
        .respond_next(1, SinkResponse::status(400, "bad number"));
    r.enqueue(&[Payload::Sms {
        to: "84912345678".into(),
        text: "Mã giảm giá".into(),
    }])
    .await;
    assert_eq!(pass(&sender).await.dead, 1);
    let dead = r.store.list_jobs(Some("dead"), 1).await.unwrap().remove(0);
    assert!(dead.last_error.unwrap().contains("bad number"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limiter_holds_the_rate() {
    let r = rig("sqlite").await;
    let clock = Clock::system();
    let r = Rig {
        clock: clock.clone(),
        ..r
    };
    r.zalo.set_now(None);
    let users: Vec<String> = (0..60).map(|i| format!("l{i}")).collect();
    for u in &users {
        r.zalo.add_user(FakeUser::new(u, u, chrono::Utc::now()));
    }
    let payloads: Vec<Payload> = users.iter().map(|u| text(u, "nhịp")).collect();
    r.enqueue(&payloads).await;
    let started = std::time::Instant::now();
    let s = pass(&r.sender("a", Limiter::new(20, 0))).await;
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(s.sent, 60);
    let max = r.zalo.max_calls_in_one_second();
    println!("60 sends at 20/s took {secs:.2}s; at most {max} in any one second");
    assert!(max <= 20, "{max} calls in one second");
    // 60 calls spaced 1/20 s apart need at least 2.95 s.
    assert!(secs >= 2.9, "{secs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_send_each_job_once_at_one_global_rate() {
    let r = rig("postgres").await;
    let r = Rig {
        clock: Clock::system(),
        ..r
    };
    r.zalo.set_now(None);
    let users: Vec<String> = (0..45).map(|i| format!("p{i}")).collect();
    for u in &users {
        r.zalo.add_user(FakeUser::new(u, u, chrono::Utc::now()));
    }
    let payloads: Vec<Payload> = users.iter().map(|u| text(u, "một lần thôi")).collect();
    r.enqueue(&payloads).await;
    let stop = CancellationToken::new();
    let wake = Arc::new(tokio::sync::Notify::new());
    let a = tokio::spawn(
        r.sender("instance-a", Limiter::new(15, 0))
            .run(wake.clone(), stop.clone()),
    );
    let b = tokio::spawn(
        r.sender("instance-b", Limiter::new(15, 0))
            .run(wake.clone(), stop.clone()),
    );
    r.zalo.wait_for_messages(45, Duration::from_secs(30)).await;
    // Give a second instance every chance to send something twice.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    a.await.unwrap();
    b.await.unwrap();
    let msgs = r.zalo.messages();
    let mut per_user = std::collections::HashMap::new();
    for m in &msgs {
        *per_user.entry(m.user_id.clone().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(msgs.len(), 45);
    assert!(per_user.values().all(|&n| n == 1));
    let max = r.zalo.max_calls_in_one_second();
    println!("two instances: 45 jobs sent once each; at most {max} OA calls in any one second (limit 15)");
    assert!(max <= 15, "{max}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_and_retries_dead_letters() {
    let db = Db::new("sqlite").await;
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    let cfg = config(
        db.url(),
        &[
            ("ZALOFLOW_ADMIN_TOKEN", "s3cret-admin"),
            ("ZALO_API_BASE", zalo.base_url()),
            ("ZALO_OAUTH_BASE", zalo.base_url()),
            ("ZALO_ACCESS_TOKEN", "fake-access-0"),
            ("ZALO_REFRESH_TOKEN", "fake-refresh-0"),
            ("ZALO_APP_SECRET", "fake-app-secret"),
        ],
    );
    let app = TestApp::spawn(cfg).await;
    let s = store::open(db.url()).await.unwrap();
    // u9 is unknown to the fake: -201, dead letter.
    let now = zaloflow::clock::system_now();
    s.enqueue_jobs(&[outbox::job(&text("u9", "ai đây?"), now, "test")], now)
        .await
        .unwrap();
    let c = client();
    let url = format!("{}/admin/outbox?status=dead", app.base);
    wait_until(Duration::from_secs(10), || async {
        s.list_jobs(Some("dead"), 1).await.unwrap().len() == 1
    })
    .await;
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(
        c.get(&url)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let body: serde_json::Value = c
        .get(&url)
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = &body["jobs"][0];
    assert_eq!(job["status"], "dead");
    assert_eq!(job["payload"]["user_id"], "u9");
    assert_eq!(job["last_code"], -201);
    let id = job["id"].as_i64().unwrap();
    let err: serde_json::Value = c
        .get(format!("{}/admin/outbox?status=bogus", app.base))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(err["error"]["code"], "bad_status");
    zalo.add_user(FakeUser::new("u9", "u9", chrono::Utc::now()));
    let r = c
        .post(format!("{}/admin/outbox/{id}/retry", app.base))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    zalo.wait_for_messages(1, Duration::from_secs(10)).await;
    let again = c
        .post(format!("{}/admin/outbox/{id}/retry", app.base))
        .bearer_auth("s3cret-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("zaloflow_outbox_dead_total{channel=\"zalo\",code=\"-201\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("zaloflow_outbox_sent_total{channel=\"zalo\"}"),
        "{metrics}"
    );
    app.shutdown().await;
}

/// An idle sender writes its `zalo-sender` lease again only once a third of the lease's time
/// has gone, not on every poll (an idle `serve` committed it four times a second), and it
/// goes on sending OA messages meanwhile: a batch takes at most a third of the lease, so it
/// ends with the lease still held.
async fn an_idle_sender_writes_its_lease_only_when_a_third_has_gone(kind: &str) {
    let r = rig(kind).await;
    let s = r
        .sender("a", Limiter::unlimited())
        .with_options(SenderOptions {
            lease: Duration::from_secs(6), // written again once 2 s have gone
            poll: Duration::from_millis(20),
            ..SenderOptions::default()
        });
    let stop = CancellationToken::new();
    let run = tokio::spawn(
        s.clone()
            .run(Arc::new(tokio::sync::Notify::new()), stop.clone()),
    );
    wait_until(Duration::from_secs(5), || async {
        sender_lease(&r).await.is_some()
    })
    .await;
    let taken = std::time::Instant::now();
    let first = sender_lease(&r).await.unwrap();
    assert_eq!(first.0, "a");
    tokio::time::sleep(Duration::from_millis(800)).await; // ~40 polls
    assert_eq!(
        sender_lease(&r).await,
        Some(first.clone()),
        "written again while two thirds of it were left"
    );
    r.enqueue(&[text("u1", "vẫn gửi được")]).await;
    // Sent before the lease's first third is over (2 s), so on the lease as first written.
    let by = Duration::from_millis(1800).saturating_sub(taken.elapsed());
    wait_until(by, || async { !r.zalo.messages().is_empty() }).await;
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(taken.elapsed())).await;
    let later = sender_lease(&r).await.expect("still held");
    assert!(
        later.0 == "a" && later.1 > first.1,
        "not renewed after a third of it had gone: {later:?} after {first:?}"
    );
    stop.cancel();
    run.await.unwrap();
    assert_eq!(
        sender_lease(&r).await,
        None,
        "released when the sender stops"
    );
}

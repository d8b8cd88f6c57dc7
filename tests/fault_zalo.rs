//! Fault injection at Zalo, with the real service: answers slower than the client timeout,
//! bursts of HTTP 5xx, `-32` (rate limit) and `-216` (token invalid), while webhooks keep coming
//! and the service's rate limit is set to exactly what the fake Zalo tolerates.
//!
//! Proves: every job is retried until sent (none lost, none dead); a job is duplicated only
//! when a call timed out after Zalo had taken it (an unknown outcome, retried — the README's
//! window), never for 5xx/-32/-216; the limiter holds (the fake never had to answer -32 on its
//! own, and no one-second window held more than the limit — give or take one call in a second
//! with token refreshes, whose repeated calls are paced but hold no place in the window).
//! (`tests/outbox.rs` covers each transient code once against the sender in process.)

mod common;
#[path = "fault/harness.rs"]
mod harness;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use harness::*;
use zaloflow::fakes::zalo::{Failure, CS_PATH};

const RATE: u32 = 20;

async fn post_batch(base: &str, prefix: &str, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for i in 0..n {
        let id = format!("{prefix}{i:04}");
        let r = post_signed(base, &text_event(&id, &id, "alo")).await;
        assert_eq!(r.status(), 200);
        ids.insert(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zalo_slow_5xx_rate_limited_and_token_bursts() {
    let db = Db::new("sqlite").await;
    let zalo = fake_zalo().await;
    zalo.set_rate_limits(Some(RATE), None);
    let mut setup = Setup::new(db.url(), Some(&zalo));
    setup.set("ZALOFLOW_ZALO_RATE", &RATE.to_string());
    let svc = setup.start(free_port()).await;
    let mut acked = HashSet::new();

    // 1. Slow: Zalo takes each message but answers after 1.5 s; the client gives up at 1 s.
    zalo.set_delay(Duration::from_millis(1500));
    let slow = post_batch(&svc.base, "61", 10).await;
    acked.extend(slow.iter().cloned());
    zalo.wait_until(Duration::from_secs(20), |z| {
        z.arrivals_on(CS_PATH).len() >= 20
    })
    .await;
    zalo.set_delay(Duration::ZERO);
    let slow_calls = zalo.arrivals_on(CS_PATH).len();

    // 2. Bursts of 5xx, -32 and -216 while 60 more events arrive.
    zalo.fail_next(15, Failure::Http(502));
    zalo.fail_next_with_code(15, -32);
    zalo.fail_next_with_code(5, -216);
    zalo.fail_next(5, Failure::Http(500));
    acked.extend(post_batch(&svc.base, "62", 60).await);
    // 3. A burst bigger than the rate: 100 events at once.
    acked.extend(post_batch(&svc.base, "63", 100).await);

    // Zalo's -32 is a per-minute limit: those jobs wait 60 s. Rather than wait, once nothing
    // else is open the service stops and `zaloflow tick` two minutes ahead delivers them.
    let waiting = wait_settled_but(db.url(), Duration::from_secs(60), |j| {
        j.last_code == Some(-32)
    })
    .await
    .jobs
    .iter()
    .filter(|j| j.status == "pending")
    .count();
    drop(svc);
    // `tick` paces its calls with its own limiter (README: "tick beside serve"): start it once
    // serve's last calls are a second old, so the two never share a one-second window.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let at = (chrono::Utc::now() + chrono::Duration::minutes(2)).to_rfc3339();
    let out = tick_command(&at, db.url(), setup.rules.path(), &zalo, RATE)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = wait_settled(db.url(), Duration::from_secs(10)).await;
    let dups = assert_exactly_once("zalo-faults", &acked, &stored, &zalo);
    let got = messages_by_user(&zalo);
    let dup_users: Vec<&String> = got
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(u, _)| u)
        .collect();
    let arrivals = zalo.arrivals_on(CS_PATH);
    let own_32 = arrivals.iter().filter(|a| a.error == -32).count();
    let max_1s = zalo.max_calls_in_one_second();
    let dead = stored.jobs.iter().filter(|j| j.status == "dead").count();
    println!(
        "fault_zalo: {} events; {waiting} deferred a minute by -32 (sent by a tick); {} calls to Zalo ({slow_calls} during the slow phase); scripted 20 x 5xx, 15 x -32, 5 x -216; -32 answered {own_32} (15 scripted); refreshes {}; sent {} / dead {dead}; duplicates {dups} (all after a timeout: {:?}); most calls in one second {max_1s} (limit {RATE})",
        acked.len(),
        arrivals.len(),
        zalo.refresh_count(),
        stored.jobs.iter().filter(|j| j.status == "sent").count(),
        dup_users,
    );
    assert_eq!(dead, 0);
    assert!(
        dup_users.iter().all(|u| slow.contains(*u)),
        "duplicates only where a call timed out: {dup_users:?}"
    );
    assert!(zalo.refresh_count() >= 1, "-216 refreshes the token");
    assert_eq!(
        own_32, 15,
        "the fake never had to refuse a call for the rate"
    );
    // The call repeated after a -216 refresh is paced at the rate but holds no place in the
    // limiter's window (README, "Not promised"): a second with refreshes may carry one more
    // per refresh.
    let refreshes = zalo.refresh_count() as usize;
    assert!(
        max_1s <= RATE as usize + refreshes,
        "{max_1s} calls in one second ({refreshes} refreshes)"
    );
}

//! Fault injection: PostgreSQL unreachable for a while under webhook load, then back.
//!
//! The machine's PostgreSQL server is shared with other tests, so it is not stopped: the service
//! reaches it through a TCP proxy in this test, which is cut (every open connection reset, new
//! ones refused) and restored. Proves: webhooks answer 503 while it is down (Zalo retries),
//! never a 200 for an event that was not stored, nothing acknowledged is lost, and the service
//! recovers by itself.

mod common;
#[path = "fault/harness.rs"]
mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use harness::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to 127.0.0.1:5432 that can be cut and restored.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0u64);
        let task = tokio::spawn({
            let up = up.clone();
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // refused: the server is "down"
                        continue;
                    }
                    let mut cuts = cuts.clone();
                    cuts.mark_unchanged();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cuts.changed() => {} // cut: both sides dropped
                        }
                    });
                }
            }
        });
        Proxy {
            port,
            up,
            cut,
            task,
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cut_under_load_answers_503_loses_nothing_and_recovers() {
    let direct = fresh_pg().await;
    let proxy = Proxy::start().await;
    let via_proxy = direct.replace(":5432/", &format!(":{}/", proxy.port));
    assert_ne!(via_proxy, direct);
    let zalo = fake_zalo().await;
    let setup = Setup::new(&via_proxy, Some(&zalo));
    let svc = setup.start(free_port()).await;
    let seen = Arc::new(Seen::default());
    let load = Load::start(vec![svc.base.clone()], 4, "8", seen.clone());
    load.until_acked(150, Duration::from_secs(60)).await;

    proxy.down();
    let acked_at_cut = seen.acked();
    let refused_before = seen.count(503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let acked_during = seen.acked() - acked_at_cut;
    let refused_during = seen.count(503) - refused_before;
    let ready = client()
        .get(format!("{}/readyz", svc.base))
        .send()
        .await
        .unwrap()
        .status();
    proxy.restore();
    let back = std::time::Instant::now();
    // recovers by itself: new deliveries are acknowledged again
    load.until_acked(seen.acked() + 150, Duration::from_secs(60))
        .await;
    let recovered_in = back.elapsed();
    load.stop().await;

    let stored = wait_settled(&direct, Duration::from_secs(60)).await;
    drop(svc);
    let acked = seen.acked.lock().unwrap().clone();
    let dups = assert_exactly_once("postgres-cut", &acked, &stored, &zalo);
    let statuses = seen.statuses.lock().unwrap().clone();
    println!(
        "fault_postgres: cut 3 s under load; acked {} / stored {} / processed {} / answers at the fake {} / duplicates {dups}; during the cut: {refused_during} answered 503, {acked_during} answered 200 (requests already past their commit), readyz {ready}; recovered (150 more acked) {recovered_in:?} after restore; all statuses {statuses:?}",
        acked.len(),
        stored.events.len(),
        stored.done,
        zalo.messages().len(),
    );
    assert!(refused_during > 0, "no 503 while the database was cut");
    assert_eq!(ready, 503, "readyz must say the database is gone");
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 503),
        "only 200 and 503: {statuses:?}"
    );
}

//! Fault injection on SQLite with the real service under webhook load:
//! - the database locked by another process (`BEGIN EXCLUSIVE` held longer than a webhook may
//!   wait);
//! - the disk full (the database on a small tmpfs that fills up, then grown again).
//!
//! Proves: 503 (Zalo retries), never a 200 for an event that was not stored; nothing
//! acknowledged is lost; the service recovers by itself once the lock is gone or space is back.

mod common;
#[path = "fault/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use harness::*;
use sqlx::Connection;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_locked_under_load_answers_503_and_loses_nothing() {
    let db = Db::new("sqlite").await;
    let zalo = fake_zalo().await;
    let setup = Setup::new(db.url(), Some(&zalo));
    let svc = setup.start(free_port()).await;
    let seen = Arc::new(Seen::default());
    let load = Load::start(vec![svc.base.clone()], 4, "7", seen.clone());
    load.until_acked(150, Duration::from_secs(60)).await;

    let mut other = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    // requests committed just before the lock may still be answering: count from a moment on
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (acked_at_lock, refused_before) = (seen.acked(), seen.count(503));
    tokio::time::sleep(Duration::from_millis(3700)).await;
    let acked_during = seen.acked() - acked_at_lock;
    let refused_during = seen.count(503) - refused_before;
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    drop(other);
    load.until_acked(seen.acked() + 150, Duration::from_secs(60))
        .await;
    load.stop().await;

    let stored = wait_settled(db.url(), Duration::from_secs(60)).await;
    drop(svc);
    let acked = seen.acked.lock().unwrap().clone();
    let dups = assert_exactly_once("sqlite-locked", &acked, &stored, &zalo);
    let statuses = seen.statuses.lock().unwrap().clone();
    println!(
        "fault_sqlite_locked: lock held 4 s under load; acked {} / stored {} / processed {} / answers at the fake {} / duplicates {dups}; during the lock {refused_during} answered 503, {acked_during} answered 200; all statuses {statuses:?}",
        acked.len(),
        stored.events.len(),
        stored.done,
        zalo.messages().len(),
    );
    assert!(refused_during > 0, "no 503 while the database was locked");
    assert_eq!(acked_during, 0, "a 200 while another process held the lock");
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}

/// A tmpfs mount of `size`, removed when dropped; None when this process may not mount
/// (not root, or no CAP_SYS_ADMIN).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallDisk { dir })
    }

    /// KiB in use on the mount.
    fn used_kib(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["--output=used", "-k"])
            .arg(self.dir.path())
            .output()
            .expect("df");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("df printed {text:?}"))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {size}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_disk_full_answers_503_and_recovers_when_space_is_back() {
    // Room to start: migrating writes the schema to the WAL, and a checkpoint then copies it
    // into the database file (about 1.8 MB at once with today's migrations). The disk shrinks
    // to what the ready service uses plus a little once it answers.
    let Some(disk) = SmallDisk::mount("16m") else {
        // CI runs as root and mounts; a developer's unprivileged run cannot.
        println!("fault_sqlite_disk_full: SKIPPED — cannot mount a tmpfs here (needs root)");
        return;
    };
    let url = format!("sqlite://{}", disk.dir.path().join("zaloflow.db").display());
    // No rules: only intake and processing write; the disk fills with events.
    let mut setup = Setup::new(&url, None);
    setup.set("ZALOFLOW_RULES", "/nonexistent");
    let svc = setup.start(free_port()).await;
    let room = disk.used_kib() + 400;
    disk.resize(&format!("{room}k"));
    let seen = Arc::new(Seen::default());
    let load = Load::start(vec![svc.base.clone()], 4, "6", seen.clone());
    // fill the disk until deliveries are refused
    wait_until(Duration::from_secs(90), || async { seen.count(503) >= 50 }).await;
    let acked_when_full = seen.acked();
    let refused_when_full = seen.count(503);
    disk.resize("64m");
    load.until_acked(acked_when_full + 150, Duration::from_secs(60))
        .await;
    load.stop().await;
    let stored = wait_settled(&url, Duration::from_secs(60)).await;
    drop(svc);
    let acked = seen.acked.lock().unwrap().clone();
    let lost: Vec<_> = acked.difference(&stored.events).take(5).collect();
    let statuses = seen.statuses.lock().unwrap().clone();
    println!(
        "fault_sqlite_disk_full: {room} KiB disk; acked {acked_when_full} before it was full, then {refused_when_full} answered 503; grown to 64 MB: acked {} in all / stored {} / processed {} / failed {}; all statuses {statuses:?}",
        acked.len(),
        stored.events.len(),
        stored.done,
        stored.failed,
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert_eq!(stored.failed, 0);
    assert_eq!(stored.done as usize, stored.events.len());
    assert!(
        statuses.keys().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
}

/// The writer never checkpoints inside a commit (a webhook would wait on it); the background
/// checkpointer must still keep the WAL bounded under a steady stream of commits, restarting it
/// once it passes 65,536 frames (256 MiB). 10,000 commits of a 32 KiB body each write ~600 MiB
/// of log (3,000 of them wrote 182 MiB with the checkpointer switched off, when this test was
/// first written): with it, the file stays near the threshold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_under_steady_commits() {
    let db = Db::new("sqlite").await;
    let store = zaloflow::store::open(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let body = "x".repeat(32 * 1024);
    for i in 0..10_000 {
        let event = zaloflow::store::NewInboxEvent {
            dedupe_key: format!("wal{i}"),
            event_name: "user_send_text".into(),
            user_id: String::new(),
            priority: 0,
            body: body.clone(),
            event_ts: None,
            received_at: i,
        };
        store.insert_inbox(&[event]).await.unwrap();
    }
    let wal = format!(
        "{}-wal",
        db.url()
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
    );
    let size = std::fs::metadata(&wal).unwrap().len();
    println!(
        "wal_bounded: WAL {} MiB after 10,000 commits of 32 KiB",
        size >> 20
    );
    assert!(size < 320 << 20, "WAL grew to {size} bytes");
}

//! The embedded default: one SQLite file in WAL mode. Writes go through a single connection
//! behind a lock (`writer`: SQLite has one writer), the webhook intake's inserts through a
//! connection of their own in the writer's turn (`intake`), reads through a small pool;
//! `BEGIN IMMEDIATE` so another process (`zaloflow tick`) waits on the busy timeout instead of
//! failing.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};

use super::*;

mod campaigns;
mod contact_sync;
mod contacts;
mod filesync;
mod handoffs;
mod inbox;
mod intake;
mod jobs;
mod lists;
mod oa;
mod outcomes;
mod writer;

use campaigns::apply_campaign_changes;
use lists::apply_list_changes;
use writer::Writer;

pub struct SqliteStore {
    writer: Arc<Writer>,
    /// The webhook intake's inserts, through a connection of their own used in the writer's
    /// turn (`intake`).
    inbox: Arc<intake::NativeInbox>,
    pub(crate) reader: SqlitePool,
    /// Stops the checkpointer when the store goes.
    _checkpointer: tokio_util::sync::DropGuard,
}

/// How often the checkpointer moves committed WAL frames into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// A WAL this long (frames of 4 KiB: 256 MiB) is restarted from its beginning. Each restart
/// pauses the writer for the database file's sync of what is left to copy (random pages:
/// ~7 ms for ~250 of them, where a commit's sequential WAL sync takes ~0.3 ms), so the longer
/// the log may grow, the rarer the pause: at 25,000 webhooks/s the log gains ~28,000 frames a
/// second, and 8,192 frames meant three pauses a second and an intake p99 of 13–14 ms in 8 s
/// runs, 65,536 frames one every two seconds and 7.2 ms. Over 30 s the pauses grew with the
/// file (20–50 ms, a p99 of 24–31 ms) until the PASSIVE checkpoints' pages were synced beside
/// the writer (`checkpointer`).
const RESTART_WAL_AT: i64 = 65_536;
/// At most this many frames are left for the RESTART to copy, as far as `CATCH_UP_TRIES`
/// PASSIVE checkpoints before it can get there.
const RESTART_LEFT: i64 = 256;
const CATCH_UP_TRIES: usize = 8;
/// How often the query planner's statistics are refreshed (`PRAGMA optimize`: ANALYZE of the
/// tables whose statistics are missing or stale), as PostgreSQL's autovacuum does on its side.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(3600);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

/// How many of this version's migrations the SQLite file at `path` has not applied, read
/// through a connection of its own that changes nothing (no journal mode set, nothing
/// created; a file that is not a database answers an error).
pub(crate) fn pending_in_file(path: &std::path::Path) -> Result<usize> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        [],
        |r| r.get(0),
    )?;
    let applied: Vec<i64> = if has_table {
        let mut stmt = conn.prepare(crate::APPLIED_MIGRATIONS)?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    } else {
        Vec::new()
    };
    crate::pending_of(&MIGRATOR, Ok(applied))
}

impl SqliteStore {
    /// The one writer connection, in turn (for the area modules that write).
    pub(crate) async fn write_lock(&self) -> Result<writer::WriterGuard<'_>> {
        self.writer.lock().await
    }
}

impl SqliteStore {
    /// Which of `keys` `select` (`SELECT col FROM table`) finds in `col`, 500 at a time.
    async fn existing_keys(&self, select: &str, col: &str, keys: &[String]) -> Result<Vec<String>> {
        let sql = format!("{select} WHERE {col} IN (SELECT value FROM json_each(?1))");
        let mut out = Vec::new();
        for chunk in keys.chunks(500) {
            let rows: Vec<(String,)> = sqlx::query_as(&sql)
                .bind(serde_json::to_string(chunk).expect("strings serialise"))
                .fetch_all(&self.reader)
                .await?;
            out.extend(rows.into_iter().map(|(k,)| k));
        }
        Ok(out)
    }

    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, true).await
    }

    /// A store whose data may be lost with the process (a forecast's scratch copy): its
    /// commits never wait for the disk (`synchronous = OFF`), so the writer is never switched
    /// between durabilities.
    pub async fn open_throwaway(url: &str) -> Result<Self> {
        Self::open_with(url, false).await
    }

    async fn open_with(url: &str, durable: bool) -> Result<Self> {
        let synchronous = if durable {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Off
        };
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before a webhook is answered 200.
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000")
            // A throwaway store (a forecast's copy) shares one page cache among its
            // connections: in WAL mode a connection drops its whole cache whenever another
            // one has written, and the copy reads right after each write (1,000,000 events:
            // 89.3 s, now 76.6 s; system time 39 s, now 30 s).
            .shared_cache(!durable);
        // The writer never checkpoints: SQLite's automatic checkpoint runs inside the COMMIT
        // that crosses 1,000 WAL pages, copying them into the database file and syncing it,
        // while every webhook waiting on that group commit waits too (a p99 of hundreds of ms
        // under load). A PASSIVE checkpoint on a reader connection does it beside the writer.
        let writer = Arc::new(
            Writer::open(
                opts.clone().pragma("wal_autocheckpoint", "0"),
                Duration::from_secs(10),
                durable,
            )
            .await?,
        );
        let reader = SqlitePoolOptions::new()
            .after_release(out_of_transaction)
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone().read_only(false))
            .await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let file_sync = filesync::FileSync::open(opts.get_filename())?;
        tokio::spawn(checkpointer(
            writer.clone(),
            reader.clone(),
            file_sync,
            stop.clone(),
        ));
        let inbox = Arc::new(intake::NativeInbox::open(
            opts.get_filename(),
            writer.clone(),
        )?);
        Ok(SqliteStore {
            writer,
            inbox,
            reader,
            _checkpointer: stop.drop_guard(),
        })
    }

    /// Whether the customer messages among `done` have sends to credit (`outcomes::any_to_credit`).
    async fn any_to_credit(&self, done: &[Completion]) -> Result<bool> {
        outcomes::any_to_credit(&self.reader, done.iter().map(|c| &c.effects)).await
    }
}

/// Moves committed WAL frames into the database file every `CHECKPOINT_EVERY` without
/// blocking the writer (PASSIVE). Under a steady stream of commits the log never gets fully
/// copied between two of them, so it would never start over: past `RESTART_WAL_AT` frames the
/// checkpoint runs once on the writer connection (RESTART), in turn with the commits, and the
/// next commit starts the log over. That RESTART stops every commit while it copies what the
/// PASSIVE ones left and syncs the file, so first PASSIVE checkpoints run again (up to
/// `CATCH_UP_TRIES`) until at most `RESTART_LEFT` frames are left to copy, and each PASSIVE
/// one that copied frames is followed by an fsync of the database file off the writer's
/// path. Without that fsync the RESTART's sync flushed every page the PASSIVE checkpoints had
/// copied since the last one (20–50 ms in 30 s runs at 20,000 webhooks/s); with it the
/// RESTART takes 5–9 ms and the 30 s p99 went from 31.3 and 31.0 ms to 14.9 and 12.5 ms in
/// interleaved runs (README, benchmarks).
async fn checkpointer(
    writer: Arc<Writer>,
    reader: SqlitePool,
    file_sync: filesync::FileSync,
    stop: tokio_util::sync::CancellationToken,
) {
    /// Frames in the log and frames copied, after a checkpoint in `mode`.
    async fn checkpoint<'c>(
        conn: impl sqlx::Executor<'c, Database = Sqlite>,
        mode: &str,
    ) -> Result<(i64, i64)> {
        let started = std::time::Instant::now();
        let (_, wal_frames, copied): (i64, i64, i64) =
            sqlx::query_as(&format!("PRAGMA wal_checkpoint({mode})"))
                .fetch_one(conn)
                .await?;
        metrics::gauge!("zaloflow_sqlite_wal_frames").set(wal_frames as f64);
        if copied > 0 {
            metrics::histogram!("zaloflow_sqlite_checkpoint_seconds", "mode" => mode.to_string())
                .record(started.elapsed());
        }
        Ok((wal_frames, copied))
    }
    /// A PASSIVE checkpoint, then, if it copied frames, an fsync of the database file from a
    /// blocking thread while the writer goes on: a PASSIVE checkpoint that does not reach the
    /// end of the log leaves the pages it copied unsynced, and without this the RESTART's own
    /// sync would flush all of them while every commit waits. `last` is the log's state after
    /// the previous one: the same state means nothing new was copied (an idle log reports its
    /// frames as copied every time), so no sync. The sync goes through SQLite's own
    /// descriptor (`filesync`: closing one of ours would drop the process's locks on the file).
    async fn passive(
        reader: &SqlitePool,
        file_sync: &filesync::FileSync,
        last: &mut (i64, i64),
    ) -> Result<(i64, i64)> {
        let now = checkpoint(reader, "PASSIVE").await?;
        if now.1 > 0 && now != *last {
            let file_sync = file_sync.clone();
            let synced = tokio::task::spawn_blocking(move || file_sync.sync()).await;
            if let Ok(Err(e)) = synced {
                tracing::debug!(error = %e, "database file sync skipped");
            }
        }
        *last = now;
        Ok(now)
    }
    async fn round(
        writer: &Writer,
        reader: &SqlitePool,
        file_sync: &filesync::FileSync,
        last: &mut (i64, i64),
    ) -> Result<()> {
        let (mut frames, mut copied) = passive(reader, file_sync, last).await?;
        if frames < RESTART_WAL_AT {
            return Ok(());
        }
        for _ in 0..CATCH_UP_TRIES {
            if frames - copied <= RESTART_LEFT {
                break;
            }
            (frames, copied) = passive(reader, file_sync, last).await?;
        }
        checkpoint(&mut *writer.lock().await?, "RESTART").await?;
        Ok(())
    }
    async fn run_optimize(writer: &Writer, sql: &str) -> Result<()> {
        sqlx::query(sql).execute(&mut *writer.lock().await?).await?;
        Ok(())
    }
    // At start (0x10002: also tables never analysed, with a row limit that keeps it quick on
    // a large file), then every OPTIMIZE_EVERY.
    let mut optimize = Some("PRAGMA optimize=0x10002");
    let mut optimized = std::time::Instant::now();
    let mut last = (0, 0);
    loop {
        if let Some(sql) = optimize.take() {
            if let Err(e) = run_optimize(&writer, sql).await {
                tracing::debug!(error = %e, "PRAGMA optimize skipped");
            }
            optimized = std::time::Instant::now();
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
        }
        if optimized.elapsed() >= OPTIMIZE_EVERY {
            optimize = Some("PRAGMA optimize");
        }
        if let Err(e) = round(&writer, &reader, &file_sync, &mut last).await {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
}

/// A connection goes back to its pool only outside any transaction. A COMMIT that failed (disk
/// full, I/O error) leaves sqlx counting the connection as inside its transaction; reused, it
/// would refuse every later write ("non-zero transaction depth") until a restart. Closed
/// instead, it is replaced by a fresh one (found by `tests/fault_sqlite.rs`, disk full).
fn out_of_transaction(
    conn: &mut sqlx::SqliteConnection,
    _: sqlx::pool::PoolConnectionMetadata,
) -> futures_util::future::BoxFuture<'_, std::result::Result<bool, sqlx::Error>> {
    let out = !in_transaction(conn);
    Box::pin(async move { Ok(out) })
}

fn in_transaction(conn: &mut sqlx::SqliteConnection) -> bool {
    transaction_depth(conn) != 0
}

/// How deep in transactions sqlx counts the connection.
fn transaction_depth(conn: &mut sqlx::SqliteConnection) -> usize {
    use sqlx::TransactionManager;
    sqlx::sqlite::SqliteTransactionManager::get_transaction_depth(conn)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run_direct(&mut *self.writer.lock().await?).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<usize> {
        let applied = sqlx::query_scalar::<_, i64>(crate::APPLIED_MIGRATIONS)
            .fetch_all(&self.reader)
            .await;
        crate::pending_of(&MIGRATOR, applied)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}
crate::contacts::contact_rows_fn!(sqlite, Sqlite, '_);

async fn apply_contact_changes(
    tx: &mut Transaction<'_, Sqlite>,
    changes: &[ContactChange],
    now: i64,
) -> Result<()> {
    upsert_contact_rows(tx, changes, now).await?;
    let adds: Vec<(&str, &str)> = changes
        .iter()
        .flat_map(|c| {
            c.tags_add
                .iter()
                .map(move |t| (c.user_id.as_str(), t.as_str()))
        })
        .collect();
    for chunk in adds.chunks(300) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO contact_tags (user_id, tag, added_at) ");
        qb.push_values(chunk, |mut b, (u, t)| {
            b.push_bind(*u).push_bind(*t).push_bind(now);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    for ch in changes {
        for t in &ch.tags_remove {
            sqlx::query("DELETE FROM contact_tags WHERE user_id = ?1 AND tag = ?2")
                .bind(&ch.user_id)
                .bind(t)
                .execute(&mut **tx)
                .await?;
        }
    }
    let fields: Vec<(&str, &str, &str)> = changes
        .iter()
        .flat_map(|c| {
            c.fields_set
                .iter()
                .map(move |(k, v)| (c.user_id.as_str(), k.as_str(), v.as_str()))
        })
        .collect();
    for chunk in fields.chunks(200) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO contact_fields (user_id, name, value, updated_at) ");
        qb.push_values(chunk, |mut b, (u, k, v)| {
            b.push_bind(*u).push_bind(*k).push_bind(*v).push_bind(now);
        });
        // `updated_at` moves only when the value changes (field_changed scans read it).
        qb.push(
            " ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
              WHERE contact_fields.value <> excluded.value",
        );
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

crate::jobs::insert_jobs_fn!(sqlite, Sqlite, '_, SqliteStore, SqlitePool);

crate::inbox::fires_fn!(Sqlite, '_);

/// Everything a batch of effects changes, in one transaction: contacts (merged per contact),
/// outbox jobs, list operations, rule firings.
async fn apply_effects<'e>(
    tx: &mut Transaction<'_, Sqlite>,
    effects: impl Iterator<Item = &'e Effects> + Clone,
    now: i64,
    writings: bool,
) -> Result<crate::handoff::HandoffOutcomes> {
    let merged = merge_changes(effects.clone().flat_map(|e| &e.contacts));
    apply_contact_changes(tx, &merged, now).await?;
    let jobs: Vec<&NewJob> = effects.clone().flat_map(|e| &e.jobs).collect();
    insert_jobs(tx, &jobs, now).await?;
    apply_list_changes(tx, effects.clone().flat_map(|e| &e.lists), now).await?;
    let handoff_changes = effects.clone().flat_map(|e| &e.handoffs).collect();
    upsert_fires(tx, effects.clone().flat_map(|e| &e.fires)).await?;
    outcomes::apply(tx, effects.clone(), writings).await?;
    apply_campaign_changes(tx, effects.flat_map(|e| &e.campaigns), now).await?;
    handoffs::apply(tx, handoff_changes, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated store in a new temporary folder (kept while the folder guard lives): a
    /// throwaway one or not.
    async fn temp_store(throwaway: bool) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = if throwaway {
            SqliteStore::open_throwaway(&url).await
        } else {
            SqliteStore::open(&url).await
        }
        .unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    /// The writer's `synchronous` as a caller that asks for durable commits gets it.
    async fn synchronous(store: &SqliteStore) -> i64 {
        synchronous_as(store, false).await
    }

    /// The writer's `synchronous` as a caller gets it that asks for relaxed commits or not.
    async fn synchronous_as(store: &SqliteStore, relaxed: bool) -> i64 {
        let mut w = if relaxed {
            store.writer.lock_relaxed().await.unwrap()
        } else {
            store.writer.lock().await.unwrap()
        };
        let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
            .fetch_one(&mut *w)
            .await
            .unwrap();
        level
    }

    fn event(key: &str) -> NewInboxEvent {
        NewInboxEvent {
            dedupe_key: key.into(),
            event_name: "user_send_text".into(),
            user_id: "u1".into(),
            priority: 0,
            body: "{}".into(),
            event_ts: None,
            received_at: 1,
        }
    }

    /// The processor's completions commit without waiting for the disk (1 = NORMAL); whatever
    /// way they end, the next caller that asks for durable commits gets the writer waiting for
    /// the disk again (2 = FULL).
    #[tokio::test]
    async fn completions_give_the_writer_back_synced() {
        let (_dir, store) = temp_store(false).await;
        assert_eq!(synchronous(&store).await, 2);
        store.insert_inbox(&[event("a")]).await.unwrap();
        let claimed = store.claim_inbox("w", 10, 60_000, 10).await.unwrap();
        let done = |id| Completion {
            inbox_id: id,
            effects: Effects::default(),
        };
        assert_eq!(synchronous_as(&store, true).await, 1);
        // A lost lease: the completion fails inside its transaction.
        let lost = store
            .complete_inbox("other", &[done(claimed[0].id)], 20)
            .await;
        assert!(matches!(lost, Err(StoreError::LeaseLost(_))));
        assert_eq!(synchronous(&store).await, 2);
        store
            .complete_inbox("w", &[done(claimed[0].id)], 20)
            .await
            .unwrap();
        assert_eq!(synchronous(&store).await, 2);
        assert_eq!(store.inbox_stats().await.unwrap().done, 1);
    }

    /// A throwaway store's writer never waits for the disk (0 = OFF), whatever durability a
    /// caller asks for: it is not switched between them.
    #[tokio::test]
    async fn a_throwaway_store_never_waits_for_the_disk() {
        let (_dir, store) = temp_store(true).await;
        assert_eq!(synchronous(&store).await, 0);
        assert_eq!(synchronous_as(&store, true).await, 0);
        assert_eq!(synchronous(&store).await, 0);
    }

    /// The intake's connection writes only in the writer's turn: while another caller holds
    /// the writer, a batch waits, and it is stored once the writer is given back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn intake_inserts_wait_for_the_writers_turn() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let (_dir, store) = temp_store(false).await;
        let released = Arc::new(AtomicBool::new(false));
        let held = store.writer.lock().await.unwrap();
        let (inbox, seen) = (store.inbox.clone(), released.clone());
        let insert = tokio::task::spawn_blocking(move || {
            let ids = inbox.store_inbox(&[event("a"), event("b"), event("a")], None);
            (ids.unwrap(), seen.load(Ordering::SeqCst))
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        released.store(true, Ordering::SeqCst);
        drop(held);
        let (ids, after_release) = insert.await.unwrap();
        assert!(
            after_release,
            "the batch was stored while the writer was held"
        );
        assert!(ids[0].is_some() && ids[1].is_some() && ids[2].is_none());
        assert_eq!(store.inbox_stats().await.unwrap().pending, 2);
    }

    /// Whether some lock on `file`'s bytes `[start, start + len)` would stop a write lock:
    /// an open-file-description lock conflicts with the POSIX locks of this process too.
    fn locked(file: &std::fs::File, start: i64, len: i64) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: a zeroed `flock` is a valid value; F_OFD_GETLK only reads and writes it.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = start;
        fl.l_len = len;
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
        assert_eq!(rc, 0, "F_OFD_GETLK: {}", std::io::Error::last_os_error());
        fl.l_type != libc::F_UNLCK as libc::c_short
    }

    /// The checkpointer's syncs of the database file keep SQLite's locks on it. Synced
    /// through a descriptor of its own, closing that descriptor dropped every lock of the
    /// process on the file: another process then took the EXCLUSIVE lock at its close,
    /// thought itself the last user and deleted the WAL in use (tests/fault_sigkill.rs saw
    /// "database disk image is malformed").
    #[tokio::test]
    async fn checkpoint_syncs_keep_the_locks_on_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // SQLite's SHARED lock on Unix: a read lock on 510 bytes past the pending byte.
        let (shared_first, shared_size) = (0x4000_0000 + 2, 510);
        let probe = std::fs::File::open(&path).unwrap();
        for round in 0..5 {
            let inbox = store.inbox.clone();
            let batch: Vec<NewInboxEvent> =
                (0..50).map(|i| event(&format!("{round}-{i}"))).collect();
            tokio::task::spawn_blocking(move || inbox.store_inbox(&batch, None).unwrap())
                .await
                .unwrap();
            // A read holds the SHARED lock, as the service's readers do.
            let mut reader = store.reader.acquire().await.unwrap();
            let mut tx = sqlx::Connection::begin(&mut *reader).await.unwrap();
            sqlx::query("SELECT count(*) FROM inbox")
                .execute(&mut *tx)
                .await
                .unwrap();
            assert!(
                locked(&probe, shared_first, shared_size),
                "no SHARED lock while reading"
            );
            // Checkpoint rounds run (every 100 ms), each PASSIVE one copying and syncing.
            tokio::time::sleep(CHECKPOINT_EVERY * 3).await;
            assert!(
                locked(&probe, shared_first, shared_size),
                "round {round}: the process lost its SHARED lock on the database file"
            );
            tx.rollback().await.unwrap();
        }
    }

    /// The plan SQLite makes of `sql`, one line a step.
    async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {}", crate::dialect::sqlite(sql));
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&sql).fetch_all(&store.reader).await.unwrap();
        rows.into_iter().map(|r| r.3).collect()
    }

    /// The cost guard reads a claimed user's sends since a time through `outbox_user_sent`
    /// (their sent jobs by time, with their class), not every job they ever had (`outbox_user`).
    #[tokio::test]
    async fn a_users_sends_are_read_from_a_time_on() {
        let (_dir, store) = temp_store(false).await;
        for sql in [
            crate::spend::claimed_sends(),
            crate::spend::CONSULTATION_SENDS.to_string(),
            crate::spend::CLASS_SEND_IDS.to_string(),
        ] {
            // Found in the index alone: nothing read from the rows themselves.
            let plan = plan(&store, &sql).await;
            assert!(
                plan.iter().any(|p| p
                    .contains("USING COVERING INDEX outbox_user_sent (user_id=? AND sent_at>?)")),
                "{sql}\n{plan:#?}"
            );
        }
    }

    /// An echo during a handoff reads the user's jobs in flight among the unsent jobs only.
    #[tokio::test]
    async fn in_flight_sends_are_read_from_the_unsent_jobs() {
        let (_dir, store) = temp_store(false).await;
        let sql = crate::handoff::in_flight_payloads("INDEXED BY outbox_lane");
        let plan = plan(&store, &sql).await;
        assert!(
            plan.iter()
                .any(|p| p.contains("SEARCH outbox USING INDEX outbox_lane (user_id=?)")),
            "{plan:#?}"
        );
        // Unhinted, SQLite reads every job the user ever had.
        let plan = self::plan(&store, &crate::handoff::in_flight_payloads("")).await;
        assert!(plan.iter().any(|p| p.contains("outbox_user")), "{plan:#?}");
    }

    /// A claim looks for an earlier unsent job of the same user among the unsent jobs only
    /// (`outbox_lane`), not through everything the user was ever sent (`outbox_user`): a
    /// customer's long history must not slow every claim that involves them.
    #[tokio::test]
    async fn the_claim_looks_at_unsent_jobs_only() {
        let (_dir, store) = temp_store(false).await;
        for lane in [JobLane::All, JobLane::ZaloOa, JobLane::NotZaloOa] {
            let plan = plan(&store, &crate::jobs::claim_sql(lane)).await;
            assert!(
                plan.iter()
                    .any(|p| p.contains("SEARCH k USING INDEX outbox_lane")),
                "{plan:#?}"
            );
            assert!(
                !plan.iter().any(|p| p.contains("outbox_user ")),
                "{plan:#?}"
            );
        }
    }
}

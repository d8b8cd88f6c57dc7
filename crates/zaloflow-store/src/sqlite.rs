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

mod contact_sync;
mod filesync;
mod handoffs;
mod intake;
mod oa;
mod outcomes;
mod writer;

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
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before a webhook is answered 200.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000");
        // The writer never checkpoints: SQLite's automatic checkpoint runs inside the COMMIT
        // that crosses 1,000 WAL pages, copying them into the database file and syncing it,
        // while every webhook waiting on that group commit waits too (a p99 of hundreds of ms
        // under load). A PASSIVE checkpoint on a reader connection does it beside the writer.
        let writer = Arc::new(
            Writer::open(
                opts.clone().pragma("wal_autocheckpoint", "0"),
                Duration::from_secs(10),
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

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn store_inbox(
        &self,
        events: &[NewInboxEvent],
        lease: Option<IntakeLease<'_>>,
    ) -> Result<Vec<Option<i64>>> {
        // The intake itself stores from its own thread (`sync_inbox`); this path (tests,
        // tools) runs the same code on tokio's blocking threads.
        let inbox = self.inbox.clone();
        let events = events.to_vec();
        let lease = lease.map(|l| (l.owner.to_string(), l.until));
        tokio::task::spawn_blocking(move || {
            let lease = lease.as_ref().map(|(owner, until)| IntakeLease {
                owner,
                until: *until,
            });
            inbox.store_inbox(&events, lease)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("inbox insert did not finish: {e}")))?
    }

    fn sync_inbox(&self) -> Option<Arc<dyn SyncInbox>> {
        Some(self.inbox.clone())
    }

    async fn inbox_pending_before(
        &self,
        users: &[String],
        below: i64,
        ids: &[i64],
    ) -> Result<Vec<(String, i64)>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(
            "SELECT user_id, id FROM inbox
             WHERE status = 'pending' AND user_id IN (SELECT value FROM json_each(?1)) AND id < ?2
               AND id NOT IN (SELECT value FROM json_each(?3))",
        )
        .bind(serde_json::to_string(users).expect("strings serialise"))
        .bind(below)
        .bind(serde_json::to_string(ids).expect("ids serialise"))
        .fetch_all(&self.reader)
        .await?)
    }

    async fn release_inbox_events(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE inbox SET lease_owner = NULL, lease_until = 0, attempts = MAX(attempts - 1, 0)
             WHERE lease_owner = ?1 AND status = 'pending' AND id IN (SELECT value FROM json_each(?2))",
        )
        .bind(owner)
        .bind(serde_json::to_string(ids).expect("ids serialise"))
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(r.rows_affected())
    }

    async fn claim_inbox(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<InboxEvent>> {
        let mut conn = self.writer.lock().await?;
        let next = ClaimNext {
            now,
            lease_ms,
            limit,
        };
        claim_inbox(&mut conn, owner, next).await
    }

    /// The processor's completions commit without waiting for the disk (`Writer::lock_relaxed`,
    /// `synchronous = NORMAL`). Such a commit survives a crash of the process (it is in the
    /// operating system's hands) and is on disk once any later commit is, since every commit
    /// syncs the whole log; all that a power cut in between can lose is a completion nothing has
    /// acted on yet. A webhook is answered after its own commit, synced; an outbox job is sent
    /// only after its claim, a later synced commit that makes its completion durable first. A
    /// lost completion leaves its events pending, to be processed again with the same effects.
    async fn complete_inbox(&self, owner: &str, done: &[Completion], now: i64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let writings = self.any_to_credit(done).await?;
        let mut w = self.writer.lock_relaxed().await?;
        let mut tx = w.begin().await?;
        let handoffs = complete_inbox(&mut tx, owner, done, now, writings).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
    }

    async fn complete_and_claim(
        &self,
        owner: &str,
        done: &[Completion],
        now: i64,
        next: ClaimNext,
    ) -> Result<Vec<InboxEvent>> {
        let writings = self.any_to_credit(done).await?;
        let mut w = self.writer.lock_relaxed().await?;
        let mut tx = w.begin().await?;
        let handoffs = complete_inbox(&mut tx, owner, done, now, writings).await?;
        let claimed = claim_inbox(&mut tx, owner, next).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(claimed)
    }

    async fn apply_effects(&self, effects: &Effects, now: i64) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let handoffs = apply_effects(&mut tx, std::iter::once(effects), now, true).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
    }

    async fn load_rule_state(&self, user_ids: &[String]) -> Result<Vec<RuleFire>> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(500) {
            let ids = serde_json::to_string(chunk).expect("strings serialise");
            out.extend(
                sqlx::query_as::<_, RuleFire>(
                    "SELECT user_id, rule_id, period_key, fired_at FROM rule_state
                     WHERE user_id IN (SELECT value FROM json_each(?1))",
                )
                .bind(ids)
                .fetch_all(&self.reader)
                .await?,
            );
        }
        Ok(out)
    }

    async fn fail_inbox(
        &self,
        owner: &str,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        match retry_at {
            Some(at) => sqlx::query(
                "UPDATE inbox SET lease_owner = NULL, lease_until = ?1, error = ?2
                 WHERE id = ?3 AND lease_owner = ?4",
            )
            .bind(at)
            .bind(error)
            .bind(id)
            .bind(owner),
            None => sqlx::query(
                "UPDATE inbox SET status = 'failed', processed_at = ?1, lease_owner = NULL, error = ?2,
                    prev_id = (SELECT h.last_id FROM inbox_heads h
                               WHERE h.user_id = inbox.user_id AND inbox.user_id <> '')
                 WHERE id = ?3 AND lease_owner = ?4",
            )
            .bind(now)
            .bind(error)
            .bind(id)
            .bind(owner),
        }
        .execute(&mut *tx)
        .await?;
        if retry_at.is_none() {
            move_heads(&mut tx, &format!("[{id}]")).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_inbox(&self, owner: &str) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE inbox SET lease_owner = NULL, lease_until = 0, attempts = MAX(attempts - 1, 0)
             WHERE lease_owner = ?1 AND status = 'pending'",
        )
        .bind(owner)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(r.rows_affected())
    }

    async fn inbox_stats(&self) -> Result<InboxStats> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM inbox GROUP BY status")
                .fetch_all(&self.reader)
                .await?;
        Ok(stats_from_rows(rows))
    }

    async fn load_contacts(&self, user_ids: &[String]) -> Result<HashMap<String, Contact>> {
        let mut out = HashMap::with_capacity(user_ids.len());
        for chunk in user_ids.chunks(500) {
            let ids = serde_json::to_string(chunk).expect("strings serialise");
            let rows: Vec<ContactRow> = sqlx::query_as(
                "SELECT user_id, display_name, phone, email, follows, first_seen, last_interaction,
                        interaction_count, followed_at, unfollowed_at
                 FROM contacts WHERE user_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&self.reader)
            .await?;
            let tags: Vec<(String, String)> = sqlx::query_as(
                "SELECT user_id, tag FROM contact_tags WHERE user_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&self.reader)
            .await?;
            let fields: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT user_id, name, value FROM contact_fields WHERE user_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&self.reader)
            .await?;
            let mut part: HashMap<String, Contact> = rows
                .into_iter()
                .map(|r| (r.user_id.clone(), r.into()))
                .collect();
            attach_tags_fields(&mut part, tags, fields);
            out.extend(part);
        }
        Ok(out)
    }

    async fn enqueue_jobs(&self, jobs: &[NewJob], now: i64) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let refs: Vec<&NewJob> = jobs.iter().collect();
        insert_jobs(&mut tx, &refs, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        due_by: i64,
        wall_now: i64,
        lease_ms: i64,
        limit: i64,
        lane: JobLane,
    ) -> Result<Vec<Job>> {
        let lane_sql = match lane {
            JobLane::All => "",
            JobLane::ZaloOa => "AND j.channel = 'zalo'",
            JobLane::NotZaloOa => "AND j.channel <> 'zalo'",
        };
        let sql = format!(
            "UPDATE outbox SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1,
                    status = 'sending', updated_at = ?3
             WHERE id IN (
                SELECT j.id FROM outbox j
                WHERE ((j.status = 'pending' AND j.run_at <= ?3)
                       OR (j.status = 'sending' AND j.lease_until < ?5)) {lane_sql}
                  AND NOT EXISTS (
                    SELECT 1 FROM outbox k
                    WHERE j.user_id <> '' AND k.user_id = j.user_id AND k.id <> j.id
                      AND k.status IN ('pending', 'sending')
                      AND (k.first_due < j.first_due OR (k.first_due = j.first_due AND k.id < j.id))
                      AND ((k.status = 'sending' AND k.lease_until >= ?5)
                           OR (k.status = 'pending' AND k.run_at > ?3)))
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT ?4)
             RETURNING {JOB_COLUMNS}"
        );
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let mut rows: Vec<Job> = sqlx::query_as(&sql)
            .bind(owner)
            .bind(wall_now + lease_ms)
            .bind(due_by)
            .bind(limit)
            .bind(wall_now)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.first_due, j.id));
        Ok(rows)
    }

    async fn finish_jobs(&self, owner: &str, outcomes: &[JobOutcome], now: i64) -> Result<u64> {
        let mut lost = 0;
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let mut contacts = Vec::new();
        for o in outcomes {
            let (status, run_at, sent_at, provider_id, error, code) = outcome_columns(o, now);
            let r = sqlx::query(
                "UPDATE outbox SET status = ?1, run_at = COALESCE(?2, run_at), sent_at = ?3,
                    provider_id = COALESCE(?4, provider_id), last_error = ?5, last_code = ?6,
                    lease_owner = NULL, lease_until = 0, updated_at = ?7, skip_reason = ?10,
                    send_class = COALESCE(?11, send_class), cost_vnd = COALESCE(?12, cost_vnd)
                 WHERE id = ?8 AND lease_owner = ?9 AND status = 'sending'",
            )
            .bind(status)
            .bind(run_at)
            .bind(sent_at)
            .bind(provider_id)
            .bind(error)
            .bind(code)
            .bind(now)
            .bind(o.id)
            .bind(owner)
            .bind(o.result.skip_reason())
            .bind(o.result.cost_columns().0)
            .bind(o.result.cost_columns().1)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() == 0 {
                lost += 1;
                continue;
            }
            if let Some(c) = &o.contact {
                contacts.push(c.clone());
            }
        }
        let merged = merge_changes(&contacts);
        apply_contact_changes(&mut tx, &merged, now).await?;
        tx.commit().await?;
        Ok(lost)
    }

    async fn list_jobs(&self, status: Option<&str>, limit: i64) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM outbox WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        Ok(
            sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM outbox WHERE id = ?1"))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn retry_dead_job(&self, id: i64, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, run_at = ?1, updated_at = ?1
             WHERE id = ?2 AND status = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status ORDER BY 1, 2",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    async fn next_job_due(&self) -> Result<Option<i64>> {
        let (v,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(run_at) FROM outbox WHERE status = 'pending'")
                .fetch_one(&self.reader)
                .await?;
        Ok(v)
    }

    async fn try_lease(&self, name: &str, owner: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO leases (name, owner, until) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE leases.owner = excluded.owner OR leases.until < ?4",
        )
        .bind(name)
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = ?1 AND owner = ?2")
            .bind(name)
            .bind(owner)
            .execute(&mut *self.writer.lock().await?)
            .await?;
        Ok(())
    }

    async fn load_tokens(&self) -> Result<Option<zaloflow_core::token::TokenPair>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT access_token, refresh_token, expires_at FROM oa_tokens WHERE id = 1",
        )
        .fetch_optional(&mut *self.writer.lock().await?)
        .await?;
        Ok(row.map(token_pair))
    }

    async fn save_tokens(&self, pair: &zaloflow_core::token::TokenPair, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO oa_tokens (id, access_token, refresh_token, expires_at, updated_at)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,
                refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                updated_at = excluded.updated_at",
        )
        .bind(&pair.access_token)
        .bind(&pair.refresh_token)
        .bind(pair.expires_at_ms)
        .bind(now)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(())
    }

    async fn oa_connection(&self) -> Result<OaConnection> {
        self.oa_connection_row().await
    }
    async fn save_connected_tokens(
        &self,
        pair: &zaloflow_core::token::TokenPair,
        oa_id: &str,
        now: i64,
    ) -> Result<()> {
        self.save_connected(pair, oa_id, now).await
    }
    async fn record_token_refresh(&self, at: i64, error: Option<&str>) -> Result<()> {
        self.record_refresh(at, error).await
    }
    async fn revoke_oa(
        &self,
        seen_at: i64,
        reason: &str,
        notice: &[NewJob],
        now: i64,
    ) -> Result<bool> {
        self.revoke(seen_at, reason, notice, now).await
    }
    async fn put_oauth_state(&self, state: &OauthState, now: i64) -> Result<()> {
        self.put_state(state, now).await
    }
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OauthState>> {
        self.take_state(state_hash).await
    }

    async fn apply_list_changes(&self, changes: &[ListChange], now: i64) -> Result<()> {
        check_list_changes(changes)?;
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        apply_list_changes(&mut tx, changes, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_members(
        &self,
        list: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ListMember>> {
        Ok(sqlx::query_as(
            "SELECT user_id, added_at FROM list_members
             WHERE list = ?1 AND (?2 IS NULL OR user_id > ?2) ORDER BY user_id LIMIT ?3",
        )
        .bind(list)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn lists_of_contact(&self, user_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT list FROM list_members WHERE user_id = ?1 ORDER BY list")
                .bind(user_id)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(l,)| l).collect())
    }

    async fn contact_lists(&self) -> Result<Vec<ContactList>> {
        Ok(sqlx::query_as(
            "SELECT l.name, l.description, l.created_at, COUNT(m.user_id) AS members
             FROM contact_lists l LEFT JOIN list_members m ON m.list = l.name
             GROUP BY l.name, l.description, l.created_at ORDER BY l.name",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    async fn find_contact_keys(&self, phones: &[String], emails: &[String]) -> Result<ContactKeys> {
        let phone_rows: Vec<(String, String, i64)> = if phones.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT phone, user_id, first_seen FROM contacts
                 WHERE phone IN (SELECT value FROM json_each(?1))",
            )
            .bind(serde_json::to_string(phones).expect("strings serialise"))
            .fetch_all(&self.reader)
            .await?
        };
        let emails: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
        let email_rows: Vec<(String, String, i64)> = if emails.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT lower(email), user_id, first_seen FROM contacts
                 WHERE lower(email) IN (SELECT value FROM json_each(?1))",
            )
            .bind(serde_json::to_string(&emails).expect("strings serialise"))
            .fetch_all(&self.reader)
            .await?
        };
        Ok(pick_contact_keys(phone_rows, email_rows))
    }

    async fn existing_contact_ids(&self, user_ids: &[String]) -> Result<Vec<String>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT user_id FROM contacts WHERE user_id IN (SELECT value FROM json_each(?1))",
        )
        .bind(serde_json::to_string(user_ids).expect("strings serialise"))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn record_form_submission(&self, form: &str, contact_id: &str, now: i64) -> Result<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "INSERT INTO form_submissions (form, contact_id, first_at, last_at, count)
             VALUES (?1, ?2, ?3, ?3, 1)
             ON CONFLICT (form, contact_id) DO UPDATE
                SET count = form_submissions.count + 1, last_at = excluded.last_at
             RETURNING count",
        )
        .bind(form)
        .bind(contact_id)
        .bind(now)
        .fetch_one(&mut *self.writer.lock().await?)
        .await?;
        Ok(count)
    }

    async fn form_submission_count(&self, form: &str, contact_id: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT count FROM form_submissions WHERE form = ?1 AND contact_id = ?2",
        )
        .bind(form)
        .bind(contact_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map_or(0, |(n,)| n))
    }

    async fn undo_form_submission(&self, form: &str, contact_id: &str) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        sqlx::query(
            "UPDATE form_submissions SET count = count - 1 WHERE form = ?1 AND contact_id = ?2",
        )
        .bind(form)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM form_submissions WHERE form = ?1 AND contact_id = ?2 AND count <= 0",
        )
        .bind(form)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn import_contacts(
        &self,
        changes: &[ContactChange],
        lists: &[ListChange],
        now: i64,
    ) -> Result<()> {
        check_list_changes(lists)?;
        let merged = merge_changes(changes);
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        apply_contact_changes(&mut tx, &merged, now).await?;
        apply_list_changes(&mut tx, lists, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn contact_ids_page(
        &self,
        list: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            match list {
                None => {
                    sqlx::query_as(
                        "SELECT user_id FROM contacts WHERE (?1 IS NULL OR user_id > ?1)
                 ORDER BY user_id LIMIT ?2",
                    )
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.reader)
                    .await?
                }
                Some(list) => sqlx::query_as(
                    "SELECT m.user_id FROM list_members m JOIN contacts c ON c.user_id = m.user_id
                 WHERE m.list = ?3 AND (?1 IS NULL OR m.user_id > ?1)
                 ORDER BY m.user_id LIMIT ?2",
                )
                .bind(after)
                .bind(limit)
                .bind(list)
                .fetch_all(&self.reader)
                .await?,
            };
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn contact_field_names(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT name FROM contact_fields ORDER BY name")
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    async fn get_or_create_secret(&self, name: &str, candidate: &str, now: i64) -> Result<String> {
        sqlx::query(
            "INSERT INTO app_secrets (name, value, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        let (v,): (String,) = sqlx::query_as("SELECT value FROM app_secrets WHERE name = ?1")
            .bind(name)
            .fetch_one(&mut *self.writer.lock().await?)
            .await?;
        Ok(v)
    }

    async fn users_with_tag(&self, tag: &str) -> Result<Vec<String>> {
        self.h_users_with_tag(tag).await
    }

    async fn list_handoffs(
        &self,
        statuses: &[&str],
        limit: i64,
    ) -> Result<Vec<crate::handoff::Handoff>> {
        self.h_list(statuses, limit).await
    }

    async fn get_handoff(&self, id: i64) -> Result<Option<crate::handoff::Handoff>> {
        self.h_get(id).await
    }

    async fn handoff_messages(&self, id: i64) -> Result<Vec<crate::handoff::HandoffMessageRow>> {
        self.h_messages(id).await
    }

    async fn handoff_breaches(&self, id: i64) -> Result<Vec<crate::handoff::Breach>> {
        self.h_breaches(id).await
    }

    async fn claim_handoff(
        &self,
        id: i64,
        agent: &str,
        now: i64,
    ) -> Result<crate::handoff::HandoffUpdate> {
        self.h_take(id, agent, now, false).await
    }

    async fn resolve_handoff(
        &self,
        id: i64,
        agent: &str,
        now: i64,
    ) -> Result<crate::handoff::HandoffUpdate> {
        self.h_take(id, agent, now, true).await
    }

    async fn handoffs_past_deadline(
        &self,
        now: i64,
        below_level: i32,
        limit: i64,
    ) -> Result<Vec<crate::handoff::Handoff>> {
        self.h_past_deadline(now, below_level, limit).await
    }

    async fn record_breach(
        &self,
        breach: &crate::handoff::Breach,
        job: &NewJob,
        now: i64,
    ) -> Result<bool> {
        self.h_record_breach(breach, job, now).await
    }

    async fn handoff_timings(&self, since: i64) -> Result<Vec<crate::handoff::HandoffTiming>> {
        self.h_timings(since).await
    }

    async fn search_contacts(&self, q: &ContactSearch) -> Result<Vec<String>> {
        let name = q.name.as_deref().map(|n| format!("%{}%", like_escape(n)));
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT c.user_id FROM contacts c
             WHERE (?1 IS NULL OR c.user_id > ?1)
               AND (?2 IS NULL OR c.display_name LIKE ?2 ESCAPE '\\')
               AND (?3 IS NULL OR c.phone = ?3)
               AND (?4 IS NULL OR EXISTS (SELECT 1 FROM contact_tags t
                                          WHERE t.user_id = c.user_id AND t.tag = ?4))
             ORDER BY c.user_id LIMIT ?5",
        )
        .bind(q.after.as_deref())
        .bind(name)
        .bind(q.phone.as_deref())
        .bind(q.tag.as_deref())
        .bind(q.limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn scan_contact_ids(
        &self,
        scan: &ContactScan,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let (sql, arg) = match scan {
            ContactScan::Followers => (
                "SELECT user_id FROM contacts WHERE follows = 1 AND (?1 IS NULL OR user_id > ?1)
                 AND ?3 IS NULL ORDER BY user_id LIMIT ?2",
                None,
            ),
            ContactScan::Tagged(t) => (
                "SELECT user_id FROM contact_tags WHERE tag = ?3 AND (?1 IS NULL OR user_id > ?1)
                 ORDER BY user_id LIMIT ?2",
                Some(t.as_str()),
            ),
            ContactScan::InList(l) => (
                "SELECT user_id FROM list_members WHERE list = ?3 AND (?1 IS NULL OR user_id > ?1)
                 ORDER BY user_id LIMIT ?2",
                Some(l.as_str()),
            ),
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(after)
            .bind(limit)
            .bind(arg)
            .fetch_all(&self.reader)
            .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn inactive_contact_ids(
        &self,
        from: i64,
        to: i64,
        follows: Option<bool>,
        skip_fired_in_silence: Option<&str>,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT c.user_id FROM contacts c INDEXED BY contacts_inactivity
             WHERE c.last_interaction >= ?1 AND c.last_interaction < ?2
               AND (CASE WHEN ?3 IS NULL THEN c.follows IS NOT 0 ELSE c.follows = ?3 END)
               AND (?4 IS NULL OR NOT EXISTS (
                    SELECT 1 FROM rule_state r
                    WHERE r.user_id = c.user_id AND r.rule_id = ?4
                      AND r.period_key = 'silence:' || c.last_interaction))",
        )
        .bind(from)
        .bind(to)
        .bind(follows)
        .bind(skip_fired_in_silence)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn contact_inbox(&self, user_id: &str, limit: i64) -> Result<Vec<InboxRecord>> {
        const INBOX_RECORD: &str = "id, event_name, user_id, body, event_ts, received_at, \
            status, attempts, processed_at, error";
        Ok(sqlx::query_as(&format!(
            "WITH RECURSIVE chain(id, n) AS (
                SELECT last_id, 1 FROM inbox_heads WHERE user_id = ?1
                UNION ALL
                SELECT i.prev_id, chain.n + 1 FROM chain JOIN inbox i ON i.id = chain.id
                WHERE i.prev_id < i.id AND chain.n < ?2
             )
             SELECT {INBOX_RECORD} FROM inbox WHERE id IN (SELECT id FROM chain) AND user_id = ?1
             UNION
             SELECT {INBOX_RECORD} FROM inbox WHERE status = 'pending' AND user_id = ?1
             ORDER BY id DESC LIMIT ?2"
        ))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn contact_jobs(&self, keys: &[String], limit: i64) -> Result<Vec<Job>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM outbox
             WHERE user_id IN (SELECT value FROM json_each(?1)) ORDER BY id DESC LIMIT ?2"
        ))
        .bind(serde_json::to_string(keys).expect("strings serialise"))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn erase_contact(&self, user_id: &str, now: i64) -> Result<Erased> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let mut out = Erased::default();
        // The events of its lane first: an inbox worker finishing one of them now loses its
        // lease (and changes nothing) or has committed before this statement, so what it
        // wrote about the contact is seen, and removed, below. (A scan of the inbox, as the
        // needle scans below are: no per-user index is kept on it, see migration 0011.)
        const REDACT: &str = "UPDATE inbox SET body = ?1, user_id = '', error = NULL,
                lease_owner = NULL, lease_until = 0,
                processed_at = COALESCE(processed_at, ?2),
                status = CASE status WHEN 'pending' THEN 'done' ELSE status END";
        out.inbox_redacted += sqlx::query(&format!("{REDACT} WHERE user_id = ?3"))
            .bind(REDACTED_BODY)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT phone, email FROM contacts WHERE user_id = ?1")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (phone, email) = row.unwrap_or_default();
        for needle in erase_needles(user_id, phone.as_deref(), email.as_deref()) {
            out.inbox_redacted += sqlx::query(&format!("{REDACT} WHERE instr(body, ?3) > 0"))
                .bind(REDACTED_BODY)
                .bind(now)
                .bind(&needle)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.jobs_deleted += sqlx::query("DELETE FROM outbox WHERE instr(payload, ?1) > 0")
                .bind(&needle)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let mut keys = vec![user_id.to_string()];
        keys.extend(phone.iter().chain(email.iter()).cloned());
        out.jobs_deleted +=
            sqlx::query("DELETE FROM outbox WHERE user_id IN (SELECT value FROM json_each(?1))")
                .bind(serde_json::to_string(&keys).expect("strings serialise"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        // Handoffs hold the customer's messages: they go too (messages first, then the rows).
        let Erased {
            contact,
            tags,
            fields,
            list_memberships,
            rule_state,
            form_submissions,
            ..
        } = &mut out;
        let mut steps: [(&str, Option<&mut u64>); 11] = [
            ("DELETE FROM contact_tags WHERE user_id = ?1", Some(tags)),
            ("DELETE FROM contact_fields WHERE user_id = ?1", Some(fields)),
            ("DELETE FROM list_members WHERE user_id = ?1", Some(list_memberships)),
            ("DELETE FROM rule_state WHERE user_id = ?1", Some(rule_state)),
            ("DELETE FROM form_submissions WHERE contact_id = ?1", Some(form_submissions)),
            ("DELETE FROM handoff_messages WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = ?1)", None),
            ("DELETE FROM handoff_breaches WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = ?1)", None),
            ("DELETE FROM handoffs WHERE user_id = ?1", None),
            ("DELETE FROM campaign_members WHERE contact_id = ?1", None),
            ("DELETE FROM inbox_heads WHERE user_id = ?1", None),
            ("DELETE FROM contacts WHERE user_id = ?1", Some(contact)),
        ];
        for (sql, counter) in &mut steps {
            let n = sqlx::query(sql)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if let Some(c) = counter {
                **c = n;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn contacts_with_field_like(
        &self,
        name: &str,
        patterns: &[String],
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT f.user_id FROM contact_fields f
             WHERE f.name = ?1 AND EXISTS (SELECT 1 FROM json_each(?2) p WHERE f.value LIKE p.value)
             ORDER BY f.user_id",
        )
        .bind(name)
        .bind(serde_json::to_string(patterns).expect("strings serialise"))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn apply_decisions(&self, decisions: &[Decision], now: i64) -> Result<usize> {
        if decisions.is_empty() {
            return Ok(0);
        }
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let keys: Vec<&str> = decisions.iter().filter_map(|d| d.key.as_deref()).collect();
        let mut fresh = std::collections::HashSet::with_capacity(keys.len());
        for chunk in keys.chunks(400) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO scheduler_marks (key, at) ");
            qb.push_values(chunk, |mut b, k| {
                b.push_bind(*k).push_bind(now);
            });
            qb.push(" ON CONFLICT (key) DO NOTHING RETURNING key");
            let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            fresh.extend(rows.into_iter().map(|(k,)| k));
        }
        let chosen: Vec<&Effects> = decisions
            .iter()
            .filter(|d| d.key.as_ref().is_none_or(|k| fresh.contains(k)))
            .map(|d| &d.effects)
            .collect();
        apply_effects(&mut tx, chosen.iter().copied(), now, true).await?;
        tx.commit().await?;
        Ok(chosen.len())
    }

    async fn load_campaign_members(&self, user_ids: &[String]) -> Result<Vec<CampaignMember>> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(500) {
            out.extend(
                sqlx::query_as::<_, CampaignMember>(&format!(
                    "SELECT {MEMBER_COLUMNS} FROM campaign_members
                     WHERE contact_id IN (SELECT value FROM json_each(?1))"
                ))
                .bind(serde_json::to_string(chunk).expect("strings serialise"))
                .fetch_all(&self.reader)
                .await?,
            );
        }
        Ok(out)
    }

    async fn due_campaign_members(
        &self,
        campaigns: Option<&[String]>,
        now: i64,
        limit: i64,
    ) -> Result<Vec<CampaignMember>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM campaign_members
             WHERE status = 'active' AND next_at <= ?1
               AND (?3 IS NULL OR campaign IN (SELECT value FROM json_each(?3)))
             ORDER BY next_at LIMIT ?2"
        ))
        .bind(now)
        .bind(limit)
        .bind(campaigns.map(|c| serde_json::to_string(c).expect("strings serialise")))
        .fetch_all(&self.reader)
        .await?)
    }

    async fn campaign_members(&self, campaign: &str) -> Result<Vec<CampaignMember>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM campaign_members WHERE campaign = ?1 ORDER BY contact_id"
        ))
        .bind(campaign)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn campaign_steps(&self, campaign: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT step_id FROM campaign_steps WHERE campaign = ?1 ORDER BY position",
        )
        .bind(campaign)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    async fn set_campaign_steps(&self, campaign: &str, steps: &[String], now: i64) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        sqlx::query("DELETE FROM campaign_steps WHERE campaign = ?1")
            .bind(campaign)
            .execute(&mut *tx)
            .await?;
        for (i, id) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO campaign_steps (campaign, position, step_id, updated_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(campaign)
            .bind(i as i64)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn map_member_positions(
        &self,
        campaign: &str,
        steps: &[String],
        now: i64,
    ) -> Result<u64> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let mut n = 0;
        for (i, id) in steps.iter().enumerate() {
            n += sqlx::query(
                "UPDATE campaign_members SET step_id = ?3, updated_at = ?4
                 WHERE campaign = ?1 AND step = ?2 AND status = 'active' AND step_id IS NULL",
            )
            .bind(campaign)
            .bind(i as i64)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        n += sqlx::query(
            "UPDATE campaign_members SET status = 'done', next_at = NULL, updated_at = ?3
             WHERE campaign = ?1 AND step >= ?2 AND status = 'active' AND step_id IS NULL",
        )
        .bind(campaign)
        .bind(steps.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    async fn member_counts(&self) -> Result<Vec<MemberCount>> {
        Ok(sqlx::query_as(
            "SELECT campaign, step_id, CASE WHEN step_id IS NULL THEN step ELSE -1 END AS position,
                    COUNT(*) AS members
             FROM campaign_members WHERE status = 'active'
             GROUP BY 1, 2, 3 ORDER BY 1, 3",
        )
        .fetch_all(&self.reader)
        .await?)
    }

    async fn scheduler_value(&self, name: &str) -> Result<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT value FROM scheduler_state WHERE name = ?1")
                .bind(name)
                .fetch_optional(&mut *self.writer.lock().await?)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    async fn set_scheduler_value(&self, name: &str, value: i64, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_state (name, value, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&mut *self.writer.lock().await?)
        .await?;
        Ok(())
    }

    async fn list_joins(&self, list: &str, from: i64, to: i64) -> Result<Vec<ListMember>> {
        Ok(sqlx::query_as(
            "SELECT user_id, added_at FROM list_members
             WHERE list = ?1 AND added_at >= ?2 AND added_at < ?3 ORDER BY added_at, user_id",
        )
        .bind(list)
        .bind(from)
        .bind(to)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn field_updates(
        &self,
        names: &[String],
        from: i64,
        to: i64,
    ) -> Result<Vec<FieldUpdate>> {
        Ok(sqlx::query_as(
            "SELECT user_id, name, value, updated_at FROM contact_fields
             WHERE name IN (SELECT value FROM json_each(?1)) AND updated_at >= ?2 AND updated_at < ?3
             ORDER BY updated_at, user_id",
        )
        .bind(serde_json::to_string(names).expect("strings serialise"))
        .bind(from)
        .bind(to)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn sent_emails(&self, rule_id: Option<&str>, from: i64, to: i64) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM outbox
             WHERE channel = 'email' AND status = 'sent' AND sent_at >= ?1 AND sent_at < ?2
               AND (?3 IS NULL OR rule_id = ?3)
             ORDER BY sent_at, id"
        ))
        .bind(from)
        .bind(to)
        .bind(rule_id)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn existing_inbox_keys(&self, keys: &[String]) -> Result<Vec<String>> {
        self.existing_keys("SELECT dedupe_key FROM inbox", "dedupe_key", keys)
            .await
    }

    async fn existing_marks(&self, keys: &[String]) -> Result<Vec<String>> {
        self.existing_keys("SELECT key FROM scheduler_marks", "key", keys)
            .await
    }

    async fn report_counts(&self, since: i64, rule: Option<&str>) -> Result<crate::report::Counts> {
        outcomes::counts(&self.reader, since, rule).await
    }

    async fn apply_zalo_profiles(
        &self,
        profiles: &[ZaloProfile],
        page: Option<&SyncPage>,
        now: i64,
    ) -> Result<ProfileCounts> {
        contact_sync::apply_profiles(self, profiles, page, now).await
    }

    async fn start_contact_sync(&self, by: &str, now: i64) -> Result<(ContactSync, bool)> {
        contact_sync::start(self, by, now).await
    }

    async fn contact_sync(&self) -> Result<Option<ContactSync>> {
        contact_sync::latest(self).await
    }

    async fn end_contact_sync(
        &self,
        id: i64,
        done: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        contact_sync::end(self, id, done, error, now).await
    }

    async fn profiles_due(&self, now: i64, limit: i64) -> Result<Vec<String>> {
        contact_sync::profiles_due(self, now, limit).await
    }

    async fn profile_lookup_failed(&self, user_id: &str, retry_at: Option<i64>) -> Result<()> {
        contact_sync::lookup_failed(self, user_id, retry_at).await
    }
}

/// Claims the next events (see `Store::claim_inbox`); a single UPDATE … RETURNING is atomic
/// by itself.
async fn claim_inbox(
    conn: &mut sqlx::SqliteConnection,
    owner: &str,
    next: ClaimNext,
) -> Result<Vec<InboxEvent>> {
    let mut rows: Vec<InboxEvent> = sqlx::query_as(
        "UPDATE inbox SET lease_owner = ?1, lease_until = ?2, attempts = attempts + 1
         WHERE id IN (
            SELECT i.id FROM inbox i
            WHERE i.status = 'pending' AND i.lease_until < ?3
              AND NOT EXISTS (
                SELECT 1 FROM inbox e
                WHERE e.status = 'pending' AND e.user_id = i.user_id AND i.user_id <> ''
                  AND e.id < i.id
                  -- held by another worker, or behind in the priority order (the user
                  -- became a VIP meanwhile): the earlier event goes first.
                  AND (e.lease_until >= ?3 OR e.priority < i.priority))
            ORDER BY i.priority DESC, i.id
            LIMIT ?4)
         RETURNING id, dedupe_key, event_name, user_id, body, event_ts, received_at, attempts",
    )
    .bind(owner)
    .bind(next.now + next.lease_ms)
    .bind(next.now)
    .bind(next.limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Marks the events done and applies their effects inside `tx`; `LeaseLost` if any lease is
/// no longer `owner`'s.
async fn complete_inbox(
    tx: &mut Transaction<'_, Sqlite>,
    owner: &str,
    done: &[Completion],
    now: i64,
    writings: bool,
) -> Result<crate::handoff::HandoffOutcomes> {
    if done.is_empty() {
        return Ok(crate::handoff::HandoffOutcomes::default());
    }
    let ids: Vec<i64> = done.iter().map(|c| c.inbox_id).collect();
    let ids_json = serde_json::to_string(&ids).expect("ids serialise");
    // Each event is linked to its user's previous finished one: the one before it in this
    // batch, or the user's head (migration 0011).
    let r = sqlx::query(
        "UPDATE inbox SET status = 'done', processed_at = ?1, lease_owner = NULL, error = NULL,
            prev_id = CASE WHEN inbox.user_id <> '' THEN COALESCE(b.prev, b.head) END
         FROM (
            SELECT i.id,
                   LAG(i.id) OVER (PARTITION BY i.user_id ORDER BY i.id) AS prev,
                   (SELECT h.last_id FROM inbox_heads h WHERE h.user_id = i.user_id) AS head
            FROM inbox i WHERE i.id IN (SELECT value FROM json_each(?2))
         ) AS b
         WHERE inbox.id = b.id AND inbox.lease_owner = ?3 AND inbox.status = 'pending'",
    )
    .bind(now)
    .bind(&ids_json)
    .bind(owner)
    .execute(&mut **tx)
    .await?;
    if r.rows_affected() != ids.len() as u64 {
        return Err(StoreError::LeaseLost(format!("inbox events {ids:?}")));
    }
    move_heads(tx, &ids_json).await?;
    apply_effects(tx, done.iter().map(|c| &c.effects), now, writings).await
}

/// Makes the finished events `ids_json` (a JSON array of ids) their users' heads (see
/// `complete_inbox`).
async fn move_heads(tx: &mut Transaction<'_, Sqlite>, ids_json: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO inbox_heads (user_id, last_id)
         SELECT user_id, MAX(id) FROM inbox
         WHERE id IN (SELECT value FROM json_each(?1)) AND user_id <> '' GROUP BY user_id
         ON CONFLICT (user_id) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
    )
    .bind(ids_json)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn apply_contact_changes(
    tx: &mut Transaction<'_, Sqlite>,
    changes: &[ContactChange],
    now: i64,
) -> Result<()> {
    for chunk in changes.chunks(200) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO contacts (user_id, display_name, phone, email, follows, first_seen,
                last_interaction, followed_at, unfollowed_at, updated_at, interaction_count) ",
        );
        qb.push_values(chunk, |mut b, ch| {
            b.push_bind(&ch.user_id)
                .push_bind(&ch.display_name)
                .push_bind(&ch.phone)
                .push_bind(&ch.email)
                .push_bind(ch.follows)
                .push_bind(ch.seen_at)
                .push_bind(ch.interaction_at)
                .push_bind(ch.followed_at)
                .push_bind(ch.unfollowed_at)
                .push_bind(now)
                .push_bind(ch.interactions);
        });
        qb.push(
            " ON CONFLICT (user_id) DO UPDATE SET
            display_name = COALESCE(excluded.display_name, contacts.display_name),
            phone = COALESCE(excluded.phone, contacts.phone),
            email = COALESCE(excluded.email, contacts.email),
            follows = COALESCE(excluded.follows, contacts.follows),
            followed_at = COALESCE(excluded.followed_at, contacts.followed_at),
            unfollowed_at = COALESCE(excluded.unfollowed_at, contacts.unfollowed_at),
            last_interaction = CASE
                WHEN excluded.last_interaction IS NOT NULL
                 AND (contacts.last_interaction IS NULL OR excluded.last_interaction > contacts.last_interaction)
                THEN excluded.last_interaction ELSE contacts.last_interaction END,
            interaction_count = contacts.interaction_count + excluded.interaction_count,
            updated_at = excluded.updated_at",
        );
        qb.build().execute(&mut **tx).await?;
    }
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

async fn insert_jobs(tx: &mut Transaction<'_, Sqlite>, jobs: &[&NewJob], now: i64) -> Result<()> {
    for chunk in jobs.chunks(300) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO outbox (channel, user_id, payload, priority, first_due, run_at, rule_id,
                source, dedupe_key, variant, created_at, updated_at, status, last_error,
                skip_reason) ",
        );
        qb.push_values(chunk, |mut b, j| {
            b.push_bind(&j.channel)
                .push_bind(&j.user_id)
                .push_bind(&j.payload)
                .push_bind(j.priority)
                .push_bind(j.run_at)
                .push_bind(j.run_at)
                .push_bind(&j.rule_id)
                .push_bind(&j.source)
                .push_bind(&j.dedupe_key)
                .push_bind(&j.variant)
                .push_bind(now)
                .push_bind(now)
                .push_bind(j.status())
                .push_bind(j.skip.as_ref().map(|k| k.message.as_str()))
                .push_bind(j.skip.as_ref().map(|k| k.reason.as_str()));
        });
        qb.push(" ON CONFLICT (dedupe_key) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Applies list operations in order inside `tx`; runs of additions go in multi-row inserts.
async fn apply_list_changes<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    changes: impl IntoIterator<Item = &'a ListChange>,
    now: i64,
) -> Result<()> {
    let changes: Vec<&ListChange> = changes.into_iter().collect();
    if changes.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = changes.iter().flat_map(|c| c.lists()).collect();
    names.sort_unstable();
    names.dedup();
    for chunk in names.chunks(300) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO contact_lists (name, created_at) ");
        qb.push_values(chunk, |mut b, n| {
            b.push_bind(*n).push_bind(now);
        });
        qb.push(" ON CONFLICT (name) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    let mut i = 0;
    while i < changes.len() {
        if let ListChange::Add { .. } = changes[i] {
            let run_end = changes[i..]
                .iter()
                .position(|c| !matches!(c, ListChange::Add { .. }))
                .map_or(changes.len(), |p| i + p);
            for chunk in changes[i..run_end].chunks(300) {
                let mut qb: QueryBuilder<Sqlite> =
                    QueryBuilder::new("INSERT INTO list_members (list, user_id, added_at) ");
                qb.push_values(chunk, |mut b, c| {
                    if let ListChange::Add { list, user_id } = c {
                        b.push_bind(list).push_bind(user_id).push_bind(now);
                    }
                });
                qb.push(" ON CONFLICT (list, user_id) DO NOTHING");
                qb.build().execute(&mut **tx).await?;
            }
            i = run_end;
            continue;
        }
        match changes[i] {
            ListChange::Add { .. } => unreachable!("handled above"),
            ListChange::Create { list, description } => {
                sqlx::query("UPDATE contact_lists SET description = ?1 WHERE name = ?2")
                    .bind(description)
                    .bind(list)
                    .execute(&mut **tx)
                    .await?;
            }
            ListChange::Remove { list, user_id } => {
                sqlx::query("DELETE FROM list_members WHERE list = ?1 AND user_id = ?2")
                    .bind(list)
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
            }
            ListChange::Copy { from, to, user_id } | ListChange::Move { from, to, user_id } => {
                let moving = matches!(changes[i], ListChange::Move { .. });
                if from == to {
                    i += 1;
                    continue;
                }
                match user_id {
                    Some(u) => {
                        sqlx::query(
                            "INSERT INTO list_members (list, user_id, added_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (list, user_id) DO NOTHING",
                        )
                        .bind(to)
                        .bind(u)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO list_members (list, user_id, added_at)
                             SELECT ?1, user_id, ?2 FROM list_members WHERE list = ?3
                             ON CONFLICT (list, user_id) DO NOTHING",
                        )
                        .bind(to)
                        .bind(now)
                        .bind(from)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                if moving {
                    sqlx::query(
                        "DELETE FROM list_members WHERE list = ?1 AND (?2 IS NULL OR user_id = ?2)",
                    )
                    .bind(from)
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

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
    // The latest firing per (contact, rule) wins.
    let mut fires: HashMap<(&str, &str), &RuleFire> = HashMap::new();
    for f in effects.clone().flat_map(|e| &e.fires) {
        fires.insert((f.user_id.as_str(), f.rule_id.as_str()), f);
    }
    let fires: Vec<&RuleFire> = fires.into_values().collect();
    for chunk in fires.chunks(300) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO rule_state (user_id, rule_id, period_key, fired_at) ");
        qb.push_values(chunk, |mut b, f| {
            b.push_bind(&f.user_id)
                .push_bind(&f.rule_id)
                .push_bind(&f.period_key)
                .push_bind(f.fired_at);
        });
        qb.push(
            " ON CONFLICT (user_id, rule_id) DO UPDATE SET period_key = excluded.period_key,
              fired_at = excluded.fired_at, fires = rule_state.fires + 1",
        );
        qb.build().execute(&mut **tx).await?;
    }
    outcomes::apply(tx, effects.clone(), writings).await?;
    apply_campaign_changes(tx, effects.flat_map(|e| &e.campaigns), now).await?;
    handoffs::apply(tx, handoff_changes, now).await
}

/// Campaign membership changes, in order; a run of advances (a drip step due for many members)
/// is one statement per thousand members.
async fn apply_campaign_changes<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    changes: impl Iterator<Item = &'a CampaignChange>,
    now: i64,
) -> Result<()> {
    let changes: Vec<&CampaignChange> = changes.collect();
    let mut i = 0;
    while i < changes.len() {
        if let CampaignChange::Advance { .. } = changes[i] {
            let end = changes[i..]
                .iter()
                .position(|c| !matches!(c, CampaignChange::Advance { .. }))
                .map_or(changes.len(), |p| i + p);
            for chunk in changes[i..end].chunks(1000) {
                let mut qb: QueryBuilder<Sqlite> =
                    QueryBuilder::new("WITH j (c, u, f, s, i, n) AS (");
                qb.push_values(chunk, |mut b, c| {
                    if let CampaignChange::Advance {
                        campaign,
                        contact_id,
                        from_step,
                        step,
                        step_id,
                        next_at,
                    } = c
                    {
                        b.push_bind(campaign)
                            .push_bind(contact_id)
                            .push_bind(from_step)
                            .push_bind(step)
                            .push_bind(step_id)
                            .push_bind(next_at);
                    }
                });
                // The primary key's index (SQLite names it so), or the planner may scan the
                // table for every row of the batch.
                qb.push(
                    ") UPDATE campaign_members INDEXED BY sqlite_autoindex_campaign_members_1
                        SET step = j.s, step_id = j.i, next_at = j.n,
                        status = CASE WHEN j.n IS NULL THEN 'done' ELSE 'active' END, updated_at = ",
                )
                .push_bind(now)
                .push(
                    " FROM j
                     WHERE campaign_members.campaign = j.c AND campaign_members.contact_id = j.u
                       AND campaign_members.status = 'active' AND campaign_members.step_id = j.f",
                );
                qb.build().execute(&mut **tx).await?;
            }
            i = end;
            continue;
        }
        apply_campaign_change(tx, changes[i], now).await?;
        i += 1;
    }
    Ok(())
}

async fn apply_campaign_change(
    tx: &mut Transaction<'_, Sqlite>,
    ch: &CampaignChange,
    now: i64,
) -> Result<()> {
    match ch {
        CampaignChange::Enter {
            campaign,
            contact_id,
            entered_at,
            step,
            step_id,
            next_at,
        } => {
            sqlx::query(
                    "INSERT INTO campaign_members (campaign, contact_id, entered_at, step, next_at,
                        status, entries, updated_at, step_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 IS NULL THEN 'done' ELSE 'active' END, 1, ?6, ?7)
                     ON CONFLICT (campaign, contact_id) DO NOTHING",
                )
                .bind(campaign)
                .bind(contact_id)
                .bind(entered_at)
                .bind(step)
                .bind(next_at)
                .bind(now)
                .bind(step_id)
                .execute(&mut **tx)
                .await?;
        }
        CampaignChange::Repeat {
            campaign,
            contact_id,
        } => {
            sqlx::query(
                "UPDATE campaign_members SET entries = entries + 1, updated_at = ?3
                     WHERE campaign = ?1 AND contact_id = ?2",
            )
            .bind(campaign)
            .bind(contact_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        CampaignChange::Advance {
            campaign,
            contact_id,
            from_step,
            step,
            step_id,
            next_at,
        } => {
            sqlx::query(
                "UPDATE campaign_members SET step = ?4, next_at = ?5, step_id = ?7,
                        status = CASE WHEN ?5 IS NULL THEN 'done' ELSE 'active' END, updated_at = ?6
                     WHERE campaign = ?1 AND contact_id = ?2 AND status = 'active' AND step_id = ?3",
            )
            .bind(campaign)
            .bind(contact_id)
            .bind(from_step)
            .bind(step)
            .bind(next_at)
            .bind(now)
            .bind(step_id)
            .execute(&mut **tx)
            .await?;
        }
        CampaignChange::Leave {
            campaign,
            contact_id,
            reason,
        } => {
            sqlx::query(
                "UPDATE campaign_members SET status = 'left', next_at = NULL, left_reason = ?3,
                        updated_at = ?4
                     WHERE campaign = ?1 AND contact_id = ?2 AND status = 'active'",
            )
            .bind(campaign)
            .bind(contact_id)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's `synchronous` as a caller that asks for durable commits gets it.
    async fn synchronous(store: &SqliteStore) -> i64 {
        let mut w = store.writer.lock().await.unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(synchronous(&store).await, 2);
        store.insert_inbox(&[event("a")]).await.unwrap();
        let claimed = store.claim_inbox("w", 10, 60_000, 10).await.unwrap();
        let done = |id| Completion {
            inbox_id: id,
            effects: Effects::default(),
        };
        {
            let mut w = store.writer.lock_relaxed().await.unwrap();
            let (level,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut *w)
                .await
                .unwrap();
            assert_eq!(level, 1);
        }
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

    /// The intake's connection writes only in the writer's turn: while another caller holds
    /// the writer, a batch waits, and it is stored once the writer is given back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn intake_inserts_wait_for_the_writers_turn() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        store.migrate().await.unwrap();
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
}

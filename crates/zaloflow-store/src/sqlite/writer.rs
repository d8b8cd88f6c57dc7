//! The one SQLite writer: a single connection behind a fair (first come, first served) lock.
//!
//! SQLite lets one connection write at a time, so every write of this process goes through
//! this connection, in turn. It was a pool of one connection before; a pool gives a connection
//! back through a task it spawns, which tests the connection with a round trip to SQLite's
//! thread before the next caller gets it, so under load the writer sat idle between two
//! commits for as long as that task waited for a core (README, benchmarks). Here giving it back
//! is releasing a lock.
//!
//! The connection's durability is set as each caller asks: [`Writer::lock`] hands it out
//! waiting for the disk at every commit (`synchronous = FULL`), [`Writer::lock_relaxed`] not
//! (`NORMAL`, for the inbox processor's completions only; see `SqliteStore::complete_inbox`).
//! The setting changes only when the next caller wants the other one, so a completion costs
//! no statement to set it back.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Sqlite, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::{Result, StoreError};

pub(crate) struct Writer {
    opts: SqliteConnectOptions,
    slot: Mutex<Slot>,
    /// How long a caller waits for its turn before giving up.
    wait: Duration,
    /// False for a throwaway store: the connection keeps the durability it was opened with
    /// (`synchronous = OFF`), whatever a caller asks.
    durable: bool,
}

struct Slot {
    /// `None` after a connection was given up (left inside a transaction, or could not be set
    /// to the durability asked for): the next caller opens a new one.
    conn: Option<SqliteConnection>,
    /// The connection's commits do not wait for the disk (`synchronous = NORMAL`).
    relaxed: bool,
}

/// The writer connection, this caller's until dropped.
pub(crate) struct WriterGuard<'a> {
    slot: MutexGuard<'a, Slot>,
}

impl Writer {
    pub(crate) async fn open(
        opts: SqliteConnectOptions,
        wait: Duration,
        durable: bool,
    ) -> Result<Writer> {
        let conn = SqliteConnection::connect_with(&opts).await?;
        Ok(Writer {
            opts,
            slot: Mutex::new(Slot {
                conn: Some(conn),
                relaxed: false,
            }),
            wait,
            durable,
        })
    }

    /// The connection, each commit waiting for the disk (`synchronous = FULL`).
    pub(crate) async fn lock(&self) -> Result<WriterGuard<'_>> {
        self.take(false).await
    }

    /// The connection, its commits not waiting for the disk (`synchronous = NORMAL`): they
    /// survive a crash of the process, and are on disk once any later commit is (every commit
    /// syncs the whole log).
    pub(crate) async fn lock_relaxed(&self) -> Result<WriterGuard<'_>> {
        self.take(true).await
    }

    /// The writer's turn, taken from a thread outside the async runtime (the webhook intake's,
    /// whose inserts go through a connection of their own): while it is held, nothing else
    /// writes. In the same first-come order as [`Writer::lock`].
    pub(crate) fn hold_blocking(&self) -> WriterTurn<'_> {
        WriterTurn {
            _slot: self.slot.blocking_lock(),
        }
    }

    async fn take(&self, relaxed: bool) -> Result<WriterGuard<'_>> {
        let mut slot = tokio::time::timeout(self.wait, self.slot.lock())
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))?;
        if let Some(conn) = slot.conn.as_mut() {
            if !out_of_transaction(conn).await {
                // A COMMIT that failed (disk full, I/O error) leaves sqlx counting the
                // connection as inside its transaction: reused, it would refuse every later
                // write ("non-zero transaction depth") until a restart (found by
                // tests/fault_sqlite.rs, disk full). A new connection replaces it.
                tracing::warn!("SQLite writer left inside a transaction: reconnecting");
                slot.conn = None;
            }
        }
        if slot.conn.is_none() {
            slot.conn = Some(SqliteConnection::connect_with(&self.opts).await?);
            slot.relaxed = false;
        }
        if self.durable && slot.relaxed != relaxed {
            let sql = if relaxed {
                "PRAGMA synchronous = NORMAL"
            } else {
                "PRAGMA synchronous = FULL"
            };
            let conn = slot.conn.as_mut().expect("connected above");
            if let Err(e) = sqlx::query(sql).execute(&mut *conn).await {
                // Its setting is unknown now: the next caller starts from a new connection.
                slot.conn = None;
                return Err(e.into());
            }
            slot.relaxed = relaxed;
        }
        Ok(WriterGuard { slot })
    }
}

/// The writer's turn without its connection ([`Writer::hold_blocking`]).
pub(crate) struct WriterTurn<'a> {
    _slot: MutexGuard<'a, Slot>,
}

impl WriterGuard<'_> {
    /// A write transaction (`BEGIN IMMEDIATE`: another process, `zaloflow tick`, waits on the
    /// busy timeout instead of failing halfway). Dropped without a commit, it is rolled back
    /// before the connection's next statement.
    pub(crate) async fn begin(&mut self) -> Result<Transaction<'_, Sqlite>> {
        Ok(self.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl Deref for WriterGuard<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.slot.conn.as_ref().expect("a guard holds a connection")
    }
}

impl DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.slot.conn.as_mut().expect("a guard holds a connection")
    }
}

/// Whether the connection is outside any transaction. A transaction dropped without a commit
/// queues its rollback on the connection's thread, which counts it done only once it ran: a
/// round trip behind it tells for sure.
async fn out_of_transaction(conn: &mut SqliteConnection) -> bool {
    if super::transaction_depth(conn) == 0 {
        return true;
    }
    conn.ping().await.is_ok() && super::transaction_depth(conn) == 0
}

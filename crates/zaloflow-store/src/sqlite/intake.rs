//! The webhook intake's inserts: a connection of their own, driven through rusqlite from the
//! intake's own thread ([`crate::SyncInbox`]).
//!
//! Every stored webhook is one of these inserts (a group commit of a few dozen rows, then the
//! sync its 200 waits for), so they are the SQLite writer's most frequent work by far. Through
//! sqlx, each batch was a statement built and bound anew for its size and sent to the
//! connection's thread, and the writer stayed taken until the intake's task was polled again
//! to give it back: with the cores busy serving requests, about a third of the time the
//! writer was held (README, benchmarks). Here the intake's thread runs the batch itself, one
//! cached single-row statement per row inside one transaction, while it holds the writer's
//! turn (`Writer::hold_blocking`), so the two connections never contend for SQLite's write
//! lock, and it starts the next batch as soon as this one is committed.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::writer::Writer;
use crate::{IntakeLease, NewInboxEvent, Result, SyncInbox};

const INSERT: &str = "INSERT INTO inbox (dedupe_key, event_name, user_id, priority, body, event_ts,
        received_at, lease_owner, lease_until, attempts)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (dedupe_key) DO NOTHING";

pub(crate) struct NativeInbox {
    conn: Mutex<rusqlite::Connection>,
    writer: Arc<Writer>,
}

impl NativeInbox {
    /// A connection to the database file at `path` (created and in WAL mode already), writing
    /// in turn with `writer`.
    pub(crate) fn open(path: &Path, writer: Arc<Writer>) -> Result<NativeInbox> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // FULL: a commit is on disk before a webhook is answered 200. The log is copied into
        // the file by the background checkpointer only, as for the other connection.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = memory;",
        )?;
        Ok(NativeInbox {
            conn: Mutex::new(conn),
            writer,
        })
    }
}

impl SyncInbox for NativeInbox {
    fn store_inbox(
        &self,
        events: &[NewInboxEvent],
        lease: Option<IntakeLease<'_>>,
    ) -> Result<Vec<Option<i64>>> {
        let _turn = self.writer.hold_blocking();
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(store(&mut conn, events, lease)?)
    }
}

/// Stores `events` in one transaction: the id of each new row, `None` for a key stored before
/// (or earlier in the batch). The rows are stored under `lease`, one attempt counted, as a
/// claim would leave them.
fn store(
    conn: &mut rusqlite::Connection,
    events: &[NewInboxEvent],
    lease: Option<IntakeLease<'_>>,
) -> rusqlite::Result<Vec<Option<i64>>> {
    let (owner, until, attempts) = match lease {
        Some(l) => (Some(l.owner), l.until, 1),
        None => (None, 0, 0),
    };
    // Dropped on an error, the transaction rolls back: the batch is stored whole or not at all.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(events.len());
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        for e in events {
            let added = insert.execute(rusqlite::params![
                e.dedupe_key,
                e.event_name,
                e.user_id,
                e.priority,
                e.body,
                e.event_ts,
                e.received_at,
                owner,
                until,
                attempts,
            ])?;
            out.push((added == 1).then(|| tx.last_insert_rowid()));
        }
    }
    tx.commit()?;
    Ok(out)
}

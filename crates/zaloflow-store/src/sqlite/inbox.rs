//! The webhook inbox: storing deliveries, claiming them per user lane, completing them with their effects. (SQLite).

use super::*;

crate::inbox::inbox_impl!(SqliteStore, sqlite, {
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

    async fn apply_replayed(&self, done: &[Completion], now: i64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut w = self.writer.lock_relaxed().await?;
        let mut tx = w.begin().await?;
        let handoffs = apply_effects(&mut tx, done.iter().map(|c| &c.effects), now, false).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
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

    async fn existing_inbox_keys(&self, keys: &[String]) -> Result<Vec<String>> {
        self.existing_keys("SELECT dedupe_key FROM inbox", "dedupe_key", keys)
            .await
    }
});

/// Claims the next events (see `Inbox::claim_inbox`); a single UPDATE … RETURNING is atomic
/// by itself.
pub(super) async fn claim_inbox(
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
pub(super) async fn complete_inbox(
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
pub(super) async fn move_heads(tx: &mut Transaction<'_, Sqlite>, ids_json: &str) -> Result<()> {
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

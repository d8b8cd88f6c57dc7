//! The webhook inbox: storing deliveries, claiming them per user lane, completing them with their effects. (PostgreSQL).

use super::*;

crate::inbox::inbox_impl!(PgStore, postgres, {
    async fn store_inbox(
        &self,
        events: &[NewInboxEvent],
        lease: Option<IntakeLease<'_>>,
    ) -> Result<Vec<Option<i64>>> {
        let keep = first_occurrences(events);
        let mut stored: HashMap<String, i64> = HashMap::with_capacity(keep.len());
        let (lease_owner, lease_until, attempts) = match lease {
            Some(l) => (Some(l.owner), l.until, 1i32),
            None => (None, 0, 0),
        };
        let mut tx = self.pool.begin().await?;
        for chunk in keep.chunks(1000) {
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO inbox (dedupe_key, event_name, user_id, priority, body, event_ts, received_at, lease_owner, lease_until, attempts) ",
            );
            qb.push_values(chunk, |mut b, &i| {
                let e = &events[i];
                b.push_bind(&e.dedupe_key)
                    .push_bind(&e.event_name)
                    .push_bind(&e.user_id)
                    .push_bind(e.priority)
                    .push_bind(&e.body)
                    .push_bind(e.event_ts)
                    .push_bind(e.received_at)
                    .push_bind(lease_owner)
                    .push_bind(lease_until)
                    .push_bind(attempts);
            });
            qb.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key, id");
            for row in qb.build().fetch_all(&mut *tx).await? {
                stored.insert(row.try_get(0)?, row.try_get(1)?);
            }
        }
        tx.commit().await?;
        Ok(stored_ids(events, &keep, stored))
    }

    async fn claim_inbox(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<InboxEvent>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_INBOX_CLAIM)
            .execute(&mut *tx)
            .await?;
        let mut rows: Vec<InboxEvent> = sqlx::query_as(
            "UPDATE inbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1
             WHERE id IN (
                SELECT i.id FROM inbox i
                WHERE i.status = 'pending' AND i.lease_until < $3
                  AND NOT EXISTS (
                    SELECT 1 FROM inbox e
                    WHERE e.status = 'pending' AND e.user_id = i.user_id AND i.user_id <> ''
                      AND e.id < i.id
                      -- held by another worker, or behind in the priority order (the user
                      -- became a VIP meanwhile): the earlier event goes first.
                      AND (e.lease_until >= $3 OR e.priority < i.priority))
                ORDER BY i.priority DESC, i.id
                LIMIT $4
                FOR UPDATE SKIP LOCKED)
             RETURNING id, dedupe_key, event_name, user_id, body, event_ts, received_at, attempts",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.sort_by_key(|r| r.id);
        Ok(rows)
    }

    async fn complete_inbox(&self, owner: &str, done: &[Completion], now: i64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = done.iter().map(|c| c.inbox_id).collect();
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE inbox SET status = 'done', processed_at = $1, lease_owner = NULL, error = NULL
             WHERE id = ANY($2) AND lease_owner = $3 AND status = 'pending'",
        )
        .bind(now)
        .bind(&ids)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != ids.len() as u64 {
            return Err(StoreError::LeaseLost(format!("inbox events {ids:?}")));
        }
        let handoffs = apply_effects(&mut tx, done.iter().map(|c| &c.effects), now, true).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
    }

    async fn apply_effects(&self, effects: &Effects, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let handoffs = apply_effects(&mut tx, std::iter::once(effects), now, true).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
    }

    async fn apply_replayed(&self, done: &[Completion], now: i64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
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
        match retry_at {
            Some(at) => sqlx::query(
                "UPDATE inbox SET lease_owner = NULL, lease_until = $1, error = $2
                 WHERE id = $3 AND lease_owner = $4",
            )
            .bind(at)
            .bind(error)
            .bind(id)
            .bind(owner),
            None => sqlx::query(
                "UPDATE inbox SET status = 'failed', processed_at = $1, lease_owner = NULL, error = $2
                 WHERE id = $3 AND lease_owner = $4",
            )
            .bind(now)
            .bind(error)
            .bind(id)
            .bind(owner),
        }
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn contact_inbox(&self, user_id: &str, limit: i64) -> Result<Vec<InboxRecord>> {
        Ok(sqlx::query_as(
            "SELECT id, event_name, user_id, body, event_ts, received_at, status, attempts,
                    processed_at, error
             FROM inbox WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn existing_inbox_keys(&self, keys: &[String]) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT dedupe_key FROM inbox WHERE dedupe_key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }
});

//! The webhook inbox: storing deliveries, claiming them per user lane, completing them with their effects.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait Inbox: Send + Sync {
    /// Stores deliveries in one transaction (group commit); a dedupe key seen before, in the
    /// table or earlier in the same batch, is reported as a duplicate and not stored again.
    async fn insert_inbox(&self, events: &[NewInboxEvent]) -> Result<Vec<Inserted>> {
        let ids = self.store_inbox(events, None).await?;
        Ok(ids.into_iter().map(Inserted::of).collect())
    }
    /// `insert_inbox`, answering each delivery's new id (`None`: a duplicate). With `lease`,
    /// the new rows are stored leased to `lease.owner` with one attempt counted, as a claim
    /// would leave them.
    async fn store_inbox(
        &self,
        events: &[NewInboxEvent],
        lease: Option<IntakeLease<'_>>,
    ) -> Result<Vec<Option<i64>>>;
    /// `store_inbox` for a thread outside the async runtime, where the backend has one (SQLite);
    /// `None`: the intake's writers are tasks calling `store_inbox`.
    fn sync_inbox(&self) -> Option<Arc<dyn SyncInbox>> {
        None
    }
    /// Pending events of `users` with an id below `below` that are not among `ids`, as
    /// `(user, id)`: what a batch handed over in memory must not overtake.
    async fn inbox_pending_before(
        &self,
        users: &[String],
        below: i64,
        ids: &[i64],
    ) -> Result<Vec<(String, i64)>>;
    /// Gives these of `owner`'s leased events back, the attempt not counted.
    async fn release_inbox_events(&self, owner: &str, ids: &[i64]) -> Result<u64>;
    /// Claims up to `limit` pending events, oldest first (higher priority first), skipping any
    /// event whose user has an earlier event leased by someone else: one user's events are
    /// never processed concurrently or out of order.
    async fn claim_inbox(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<InboxEvent>>;
    /// Marks the events processed and applies their effects, in one transaction. Fails with
    /// `LeaseLost` (and changes nothing) if any lease is no longer ours.
    async fn complete_inbox(&self, owner: &str, done: &[Completion], now: i64) -> Result<()>;
    /// `complete_inbox`, then `claim_inbox` for the next round. SQLite does both in one
    /// transaction: its one writer then commits once per round instead of twice, and the
    /// webhook intake's group commits wait behind half as many processor writes.
    async fn complete_and_claim(
        &self,
        owner: &str,
        done: &[Completion],
        now: i64,
        next: ClaimNext,
    ) -> Result<Vec<InboxEvent>> {
        self.complete_inbox(owner, done, now).await?;
        self.claim_inbox(owner, next.now, next.lease_ms, next.limit)
            .await
    }
    /// Records a processing failure: retried after `retry_at`, or given up (`failed`) when `None`.
    async fn fail_inbox(
        &self,
        owner: &str,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<()>;
    /// Gives claimed events back (graceful shutdown).
    async fn release_inbox(&self, owner: &str) -> Result<u64>;
    async fn inbox_stats(&self) -> Result<InboxStats>;

    /// Applies effects that no inbox event carries (the scheduler's decisions), in one
    /// transaction.
    async fn apply_effects(&self, effects: &Effects, now: i64) -> Result<()>;
    /// Applies the effects of events this inbox does not hold — a forecast's copy replaying
    /// another store's events — in one transaction, as `complete_inbox` applies a batch's
    /// (contacts, jobs, lists, firings and their hours, campaigns, handoffs), with no inbox row
    /// to mark and no reply or return credited to an earlier send: a recorded message did not
    /// answer a send that was only replayed.
    async fn apply_replayed(&self, done: &[Completion], now: i64) -> Result<()>;
    /// The latest firing of every rule for these contacts.
    async fn load_rule_state(&self, user_ids: &[String]) -> Result<Vec<RuleFire>>;

    /// The inbox events of a contact's lane, newest first.
    async fn contact_inbox(&self, user_id: &str, limit: i64) -> Result<Vec<InboxRecord>>;
    /// Which of these inbox dedupe keys are stored (e.g. a human open of an email).
    async fn existing_inbox_keys(&self, keys: &[String]) -> Result<Vec<String>>;
}

/// Implements [`Inbox`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! inbox_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Inbox for $store {
            $($own)*

            async fn inbox_pending_before(
                &self,
                users: &[String],
                below: i64,
                ids: &[i64],
            ) -> Result<Vec<(String, i64)>> {
                if users.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(sqlx::query_as(sql!(
                    $db,
                    pick!(
                        $db,
                        sqlite: "SELECT user_id, id FROM inbox
                         WHERE status = 'pending' AND user_id IN (SELECT value FROM json_each($1)) AND id < $2
                           AND id NOT IN (SELECT value FROM json_each($3))",
                        postgres: "SELECT user_id, id FROM inbox
                         WHERE status = 'pending' AND user_id = ANY($1) AND id < $2 AND NOT (id = ANY($3))",
                    )
                ))
                .bind(list!($db, users))
                .bind(below)
                .bind(list!($db, ids))
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn load_rule_state(&self, user_ids: &[String]) -> Result<Vec<RuleFire>> {
                // SQLite reads the ids from a JSON list, 500 at a time; PostgreSQL binds them all.
                let mut out = Vec::new();
                for chunk in user_ids.chunks(pick!($db, sqlite: 500, postgres: user_ids.len().max(1))) {
                    out.extend(
                        sqlx::query_as::<_, RuleFire>(sql!(
                            $db,
                            "SELECT user_id, rule_id, period_key, fired_at FROM rule_state
                             WHERE user_id = ANY($1)"
                        ))
                        .bind(list!($db, chunk))
                        .fetch_all(reader!($db, self))
                        .await?,
                    );
                }
                Ok(out)
            }

            async fn release_inbox_events(&self, owner: &str, ids: &[i64]) -> Result<u64> {
                let r = sqlx::query(
                    sql!($db, "UPDATE inbox SET lease_owner = NULL, lease_until = 0, attempts = GREATEST(attempts - 1, 0)
                     WHERE lease_owner = $1 AND status = 'pending' AND id = ANY($2)"),
                )
                .bind(owner)
                .bind(list!($db, ids))
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected())
            }

            async fn release_inbox(&self, owner: &str) -> Result<u64> {
                let r = sqlx::query(
                    sql!($db, "UPDATE inbox SET lease_owner = NULL, lease_until = 0, attempts = GREATEST(attempts - 1, 0)
                     WHERE lease_owner = $1 AND status = 'pending'"),
                )
                .bind(owner)
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected())
            }

            async fn inbox_stats(&self) -> Result<InboxStats> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as(sql!($db, "SELECT status, COUNT(*) FROM inbox GROUP BY status"))
                        .fetch_all(reader!($db, self))
                        .await?;
                Ok(stats_from_rows(rows))
            }
        }

    };
}
pub(crate) use inbox_impl;

/// Rule firings upserted into `rule_state`, the latest per (contact, rule) winning, in
/// multi-row statements: written once for both backends (`$Db` the sqlx database, `$lt` its
/// transactions' lifetime).
macro_rules! fires_fn {
    ($Db:ty, $lt:lifetime) => {
        async fn upsert_fires<'e>(
            tx: &mut Transaction<$lt, $Db>,
            fires_in: impl Iterator<Item = &'e RuleFire>,
        ) -> Result<()> {
            // The latest firing per (contact, rule) wins.
            let mut fires: HashMap<(&str, &str), &RuleFire> = HashMap::new();
            for f in fires_in {
                fires.insert((f.user_id.as_str(), f.rule_id.as_str()), f);
            }
            let fires: Vec<&RuleFire> = fires.into_values().collect();
            for chunk in fires.chunks(300) {
                let mut qb: QueryBuilder<$Db> =
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
            Ok(())
        }
    };
}
pub(crate) use fires_fn;

//! PostgreSQL: for shops that run several instances. Claims use `FOR UPDATE SKIP LOCKED`
//! under a transaction-scoped advisory lock so two instances never split one user's lane.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::*;

/// Advisory lock keys (arbitrary, stable).
pub(crate) const LOCK_INBOX_CLAIM: i64 = 0x7a6c_0001;

pub struct PgStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl PgStore {
    pub async fn open(url: &str) -> Result<Self> {
        let opts: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_inbox(&self, events: &[NewInboxEvent]) -> Result<Vec<Inserted>> {
        let keep = first_occurrences(events);
        let mut stored: std::collections::HashSet<String> =
            std::collections::HashSet::with_capacity(keep.len());
        let mut tx = self.pool.begin().await?;
        for chunk in keep.chunks(1000) {
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO inbox (dedupe_key, event_name, user_id, priority, body, event_ts, received_at) ",
            );
            qb.push_values(chunk, |mut b, &i| {
                let e = &events[i];
                b.push_bind(&e.dedupe_key)
                    .push_bind(&e.event_name)
                    .push_bind(&e.user_id)
                    .push_bind(e.priority)
                    .push_bind(&e.body)
                    .push_bind(e.event_ts)
                    .push_bind(e.received_at);
            });
            qb.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key");
            for row in qb.build().fetch_all(&mut *tx).await? {
                stored.insert(row.try_get(0)?);
            }
        }
        tx.commit().await?;
        Ok(inserted_outcomes(events, &keep, stored))
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
                      AND e.id < i.id AND e.lease_until >= $3)
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
        let merged = merge_changes(done.iter().flat_map(|c| &c.effects.contacts));
        apply_contact_changes(&mut tx, &merged, now).await?;
        tx.commit().await?;
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

    async fn release_inbox(&self, owner: &str) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE inbox SET lease_owner = NULL, lease_until = 0, attempts = GREATEST(attempts - 1, 0)
             WHERE lease_owner = $1 AND status = 'pending'",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn inbox_stats(&self) -> Result<InboxStats> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM inbox GROUP BY status")
                .fetch_all(&self.pool)
                .await?;
        Ok(stats_from_rows(rows))
    }

    async fn load_contacts(&self, user_ids: &[String]) -> Result<HashMap<String, Contact>> {
        let rows: Vec<ContactRow> = sqlx::query_as(
            "SELECT user_id, display_name, phone, email, follows, first_seen, last_interaction,
                    interaction_count, followed_at, unfollowed_at
             FROM contacts WHERE user_id = ANY($1)",
        )
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        let tags: Vec<(String, String)> =
            sqlx::query_as("SELECT user_id, tag FROM contact_tags WHERE user_id = ANY($1)")
                .bind(user_ids)
                .fetch_all(&self.pool)
                .await?;
        let fields: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT user_id, name, value FROM contact_fields WHERE user_id = ANY($1)",
        )
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Contact> = rows
            .into_iter()
            .map(|r| (r.user_id.clone(), r.into()))
            .collect();
        attach_tags_fields(&mut out, tags, fields);
        Ok(out)
    }
}

async fn apply_contact_changes(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[ContactChange],
    now: i64,
) -> Result<()> {
    // merge_changes left one change per user, so one multi-row upsert never hits a row twice.
    for chunk in changes.chunks(500) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
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
            last_interaction = GREATEST(contacts.last_interaction, excluded.last_interaction),
            interaction_count = contacts.interaction_count + excluded.interaction_count,
            updated_at = excluded.updated_at",
        );
        qb.build().execute(&mut **tx).await?;
    }
    for ch in changes {
        if !ch.tags_add.is_empty() {
            sqlx::query(
                "INSERT INTO contact_tags (user_id, tag, added_at)
                 SELECT $1, t, $3 FROM UNNEST($2::text[]) AS t ON CONFLICT DO NOTHING",
            )
            .bind(&ch.user_id)
            .bind(&ch.tags_add)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        if !ch.tags_remove.is_empty() {
            sqlx::query("DELETE FROM contact_tags WHERE user_id = $1 AND tag = ANY($2)")
                .bind(&ch.user_id)
                .bind(&ch.tags_remove)
                .execute(&mut **tx)
                .await?;
        }
        for (k, v) in &ch.fields_set {
            sqlx::query(
                "INSERT INTO contact_fields (user_id, name, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(&ch.user_id)
            .bind(k)
            .bind(v)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

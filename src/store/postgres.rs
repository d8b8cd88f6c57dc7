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
pub(crate) const LOCK_OUTBOX_CLAIM: i64 = 0x7a6c_0002;

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
        let jobs: Vec<&NewJob> = done.iter().flat_map(|c| &c.effects.jobs).collect();
        insert_jobs(&mut tx, &jobs, now).await?;
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

    async fn enqueue_jobs(&self, jobs: &[NewJob], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let refs: Vec<&NewJob> = jobs.iter().collect();
        insert_jobs(&mut tx, &refs, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        now: i64,
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
            "UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1,
                    status = 'sending', updated_at = $3
             WHERE id IN (
                SELECT j.id FROM outbox j
                WHERE ((j.status = 'pending' AND j.run_at <= $3)
                       OR (j.status = 'sending' AND j.lease_until < $3)) {lane_sql}
                  AND NOT EXISTS (
                    SELECT 1 FROM outbox k
                    WHERE j.user_id <> '' AND k.user_id = j.user_id AND k.id <> j.id
                      AND k.status IN ('pending', 'sending')
                      AND (k.first_due < j.first_due OR (k.first_due = j.first_due AND k.id < j.id))
                      AND ((k.status = 'sending' AND k.lease_until >= $3)
                           OR (k.status = 'pending' AND k.run_at > $3)))
                ORDER BY j.priority DESC, j.run_at, j.id
                LIMIT $4
                FOR UPDATE SKIP LOCKED)
             RETURNING {JOB_COLUMNS}"
        );
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_OUTBOX_CLAIM)
            .execute(&mut *tx)
            .await?;
        let mut rows: Vec<Job> = sqlx::query_as(&sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        rows.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.first_due, j.id));
        Ok(rows)
    }

    async fn finish_jobs(&self, owner: &str, outcomes: &[JobOutcome], now: i64) -> Result<u64> {
        // One statement for the whole batch (a round trip per job would dominate).
        let mut ids = Vec::with_capacity(outcomes.len());
        let mut statuses = Vec::with_capacity(outcomes.len());
        let mut run_ats = Vec::with_capacity(outcomes.len());
        let mut sent_ats = Vec::with_capacity(outcomes.len());
        let mut providers = Vec::with_capacity(outcomes.len());
        let mut errors = Vec::with_capacity(outcomes.len());
        let mut codes = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let (status, run_at, sent_at, provider_id, error, code) = outcome_columns(o, now);
            ids.push(o.id);
            statuses.push(status);
            run_ats.push(run_at);
            sent_ats.push(sent_at);
            providers.push(provider_id);
            errors.push(error);
            codes.push(code);
        }
        let mut tx = self.pool.begin().await?;
        let done: Vec<(i64,)> = sqlx::query_as(
            "UPDATE outbox o SET status = v.status, run_at = COALESCE(v.run_at, o.run_at),
                sent_at = v.sent_at, provider_id = COALESCE(v.provider_id, o.provider_id),
                last_error = v.error, last_code = v.code, lease_owner = NULL, lease_until = 0,
                updated_at = $8
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[])
                AS v(id, status, run_at, sent_at, provider_id, error, code)
             WHERE o.id = v.id AND o.lease_owner = $9 AND o.status = 'sending'
             RETURNING o.id",
        )
        .bind(&ids)
        .bind(&statuses)
        .bind(&run_ats)
        .bind(&sent_ats)
        .bind(&providers)
        .bind(&errors)
        .bind(&codes)
        .bind(now)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let done: std::collections::HashSet<i64> = done.into_iter().map(|(id,)| id).collect();
        let contacts: Vec<ContactChange> = outcomes
            .iter()
            .filter(|o| done.contains(&o.id))
            .filter_map(|o| o.contact.clone())
            .collect();
        let merged = merge_changes(&contacts);
        apply_contact_changes(&mut tx, &merged, now).await?;
        tx.commit().await?;
        Ok((outcomes.len() - done.len()) as u64)
    }

    async fn list_jobs(&self, status: Option<&str>, limit: i64) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM outbox WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(status)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        Ok(
            sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM outbox WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn retry_dead_job(&self, id: i64, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, run_at = $1, updated_at = $1
             WHERE id = $2 AND status = 'dead'",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn job_counts(&self) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status ORDER BY 1, 2",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn next_job_due(&self) -> Result<Option<i64>> {
        let (v,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(run_at) FROM outbox WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(v)
    }

    async fn try_lease(&self, name: &str, owner: &str, now: i64, ttl_ms: i64) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
             WHERE leases.owner = excluded.owner OR leases.until < $4",
        )
        .bind(name)
        .bind(owner)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_tokens(&self) -> Result<Option<crate::zalo::token::TokenPair>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT access_token, refresh_token, expires_at FROM oa_tokens WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(token_pair))
    }

    async fn save_tokens(&self, pair: &crate::zalo::token::TokenPair, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO oa_tokens (id, access_token, refresh_token, expires_at, updated_at)
             VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,
                refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                updated_at = excluded.updated_at",
        )
        .bind(&pair.access_token)
        .bind(&pair.refresh_token)
        .bind(pair.expires_at_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
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

async fn insert_jobs(
    tx: &mut Transaction<'static, Postgres>,
    jobs: &[&NewJob],
    now: i64,
) -> Result<()> {
    for chunk in jobs.chunks(500) {
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO outbox (channel, user_id, payload, priority, first_due, run_at, rule_id,
                source, dedupe_key, created_at, updated_at) ",
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
                .push_bind(now)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (dedupe_key) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

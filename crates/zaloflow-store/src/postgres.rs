//! PostgreSQL: for shops that run several instances. Claims use `FOR UPDATE SKIP LOCKED`
//! under a transaction-scoped advisory lock so two instances never split one user's lane.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::*;

mod contact_sync;
mod handoffs;
mod oa;
mod outcomes;

/// Advisory lock keys (arbitrary, stable).
pub(crate) const LOCK_INBOX_CLAIM: i64 = 0x7a6c_0001;
pub(crate) const LOCK_OUTBOX_CLAIM: i64 = 0x7a6c_0002;

pub struct PgStore {
    pub(crate) pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

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
             WHERE status = 'pending' AND user_id = ANY($1) AND id < $2 AND NOT (id = ANY($3))",
        )
        .bind(users)
        .bind(below)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn release_inbox_events(&self, owner: &str, ids: &[i64]) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE inbox SET lease_owner = NULL, lease_until = 0, attempts = GREATEST(attempts - 1, 0)
             WHERE lease_owner = $1 AND status = 'pending' AND id = ANY($2)",
        )
        .bind(owner)
        .bind(ids)
        .execute(&self.pool)
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
        let handoffs = apply_effects(&mut tx, done.iter().map(|c| &c.effects), now).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
    }

    async fn apply_effects(&self, effects: &Effects, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let handoffs = apply_effects(&mut tx, std::iter::once(effects), now).await?;
        tx.commit().await?;
        handoffs.record();
        Ok(())
    }

    async fn load_rule_state(&self, user_ids: &[String]) -> Result<Vec<RuleFire>> {
        Ok(sqlx::query_as(
            "SELECT user_id, rule_id, period_key, fired_at FROM rule_state WHERE user_id = ANY($1)",
        )
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?)
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
            "UPDATE outbox SET lease_owner = $1, lease_until = $2, attempts = attempts + 1,
                    status = 'sending', updated_at = $3
             WHERE id IN (
                SELECT j.id FROM outbox j
                WHERE ((j.status = 'pending' AND j.run_at <= $3)
                       OR (j.status = 'sending' AND j.lease_until < $5)) {lane_sql}
                  AND NOT EXISTS (
                    SELECT 1 FROM outbox k
                    WHERE j.user_id <> '' AND k.user_id = j.user_id AND k.id <> j.id
                      AND k.status IN ('pending', 'sending')
                      AND (k.first_due < j.first_due OR (k.first_due = j.first_due AND k.id < j.id))
                      AND ((k.status = 'sending' AND k.lease_until >= $5)
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
                updated_at = $8, skip_reason = v.skip_reason,
                send_class = COALESCE(v.send_class, o.send_class),
                cost_vnd = COALESCE(v.cost_vnd, o.cost_vnd)
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::bigint[], $10::text[], $11::text[], $12::bigint[])
                AS v(id, status, run_at, sent_at, provider_id, error, code, skip_reason, send_class, cost_vnd)
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
        .bind(
            outcomes
                .iter()
                .map(|o| o.result.skip_reason())
                .collect::<Vec<_>>(),
        )
        .bind(
            outcomes
                .iter()
                .map(|o| o.result.cost_columns().0)
                .collect::<Vec<_>>(),
        )
        .bind(
            outcomes
                .iter()
                .map(|o| o.result.cost_columns().1)
                .collect::<Vec<_>>(),
        )
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

    async fn load_tokens(&self) -> Result<Option<zaloflow_core::token::TokenPair>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT access_token, refresh_token, expires_at FROM oa_tokens WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(token_pair))
    }

    async fn save_tokens(&self, pair: &zaloflow_core::token::TokenPair, now: i64) -> Result<()> {
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
        let mut tx = self.pool.begin().await?;
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
             WHERE list = $1 AND ($2::text IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
        )
        .bind(list)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn lists_of_contact(&self, user_id: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT list FROM list_members WHERE user_id = $1 ORDER BY list")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(l,)| l).collect())
    }

    async fn contact_lists(&self) -> Result<Vec<ContactList>> {
        Ok(sqlx::query_as(
            "SELECT l.name, l.description, l.created_at, COUNT(m.user_id) AS members
             FROM contact_lists l LEFT JOIN list_members m ON m.list = l.name
             GROUP BY l.name, l.description, l.created_at ORDER BY l.name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    async fn find_contact_keys(&self, phones: &[String], emails: &[String]) -> Result<ContactKeys> {
        let phone_rows: Vec<(String, String, i64)> = if phones.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as("SELECT phone, user_id, first_seen FROM contacts WHERE phone = ANY($1)")
                .bind(phones)
                .fetch_all(&self.pool)
                .await?
        };
        let emails: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
        let email_rows: Vec<(String, String, i64)> = if emails.is_empty() {
            Vec::new()
        } else {
            sqlx::query_as(
                "SELECT lower(email), user_id, first_seen FROM contacts WHERE lower(email) = ANY($1)",
            )
            .bind(&emails)
            .fetch_all(&self.pool)
            .await?
        };
        Ok(pick_contact_keys(phone_rows, email_rows))
    }

    async fn existing_contact_ids(&self, user_ids: &[String]) -> Result<Vec<String>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT user_id FROM contacts WHERE user_id = ANY($1)")
                .bind(user_ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn record_form_submission(&self, form: &str, contact_id: &str, now: i64) -> Result<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "INSERT INTO form_submissions (form, contact_id, first_at, last_at, count)
             VALUES ($1, $2, $3, $3, 1)
             ON CONFLICT (form, contact_id) DO UPDATE
                SET count = form_submissions.count + 1, last_at = excluded.last_at
             RETURNING count",
        )
        .bind(form)
        .bind(contact_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(count)
    }

    async fn form_submission_count(&self, form: &str, contact_id: &str) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT count FROM form_submissions WHERE form = $1 AND contact_id = $2",
        )
        .bind(form)
        .bind(contact_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map_or(0, |(n,)| n))
    }

    async fn undo_form_submission(&self, form: &str, contact_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE form_submissions SET count = count - 1 WHERE form = $1 AND contact_id = $2",
        )
        .bind(form)
        .bind(contact_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM form_submissions WHERE form = $1 AND contact_id = $2 AND count <= 0",
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
        let mut tx = self.pool.begin().await?;
        bulk_upsert_contacts(&mut tx, &merged, now).await?;
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
                        "SELECT user_id FROM contacts WHERE ($1::text IS NULL OR user_id > $1)
                 ORDER BY user_id LIMIT $2",
                    )
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
                }
                Some(list) => sqlx::query_as(
                    "SELECT m.user_id FROM list_members m JOIN contacts c ON c.user_id = m.user_id
                 WHERE m.list = $3 AND ($1::text IS NULL OR m.user_id > $1)
                 ORDER BY m.user_id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .bind(list)
                .fetch_all(&self.pool)
                .await?,
            };
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn contact_field_names(&self) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT name FROM contact_fields ORDER BY name")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    async fn get_or_create_secret(&self, name: &str, candidate: &str, now: i64) -> Result<String> {
        sqlx::query(
            "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let (v,): (String,) = sqlx::query_as("SELECT value FROM app_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
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
             WHERE ($1::text IS NULL OR c.user_id > $1)
               AND ($2::text IS NULL OR c.display_name ILIKE $2 ESCAPE '\\')
               AND ($3::text IS NULL OR c.phone = $3)
               AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM contact_tags t
                                                WHERE t.user_id = c.user_id AND t.tag = $4))
             ORDER BY c.user_id LIMIT $5",
        )
        .bind(q.after.as_deref())
        .bind(name)
        .bind(q.phone.as_deref())
        .bind(q.tag.as_deref())
        .bind(q.limit)
        .fetch_all(&self.pool)
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
                "SELECT user_id FROM contacts WHERE follows AND ($1::text IS NULL OR user_id > $1)
                 AND $3::text IS NULL ORDER BY user_id LIMIT $2",
                None,
            ),
            ContactScan::Tagged(t) => (
                "SELECT user_id FROM contact_tags WHERE tag = $3 AND ($1::text IS NULL OR user_id > $1)
                 ORDER BY user_id LIMIT $2",
                Some(t.as_str()),
            ),
            ContactScan::InList(l) => (
                "SELECT user_id FROM list_members WHERE list = $3 AND ($1::text IS NULL OR user_id > $1)
                 ORDER BY user_id LIMIT $2",
                Some(l.as_str()),
            ),
        };
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(after)
            .bind(limit)
            .bind(arg)
            .fetch_all(&self.pool)
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
            "SELECT c.user_id FROM contacts c
             WHERE c.last_interaction >= $1 AND c.last_interaction < $2
               AND (CASE WHEN $3::bool IS NULL THEN c.follows IS DISTINCT FROM false
                         ELSE c.follows = $3 END)
               AND ($4::text IS NULL OR NOT EXISTS (
                    SELECT 1 FROM rule_state r
                    WHERE r.user_id = c.user_id AND r.rule_id = $4
                      AND r.period_key = 'silence:' || c.last_interaction::text))",
        )
        .bind(from)
        .bind(to)
        .bind(follows)
        .bind(skip_fired_in_silence)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
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

    async fn contact_jobs(&self, keys: &[String], limit: i64) -> Result<Vec<Job>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM outbox WHERE user_id = ANY($1) ORDER BY id DESC LIMIT $2"
        ))
        .bind(keys)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn erase_contact(&self, user_id: &str, now: i64) -> Result<Erased> {
        let mut tx = self.pool.begin().await?;
        let mut out = Erased::default();
        // The events of its lane first: an inbox worker finishing one of them now loses its
        // lease (and changes nothing) or has committed before this statement, so what it
        // wrote about the contact is seen, and removed, below.
        const REDACT: &str = "UPDATE inbox SET body = $1, user_id = '', error = NULL,
                lease_owner = NULL, lease_until = 0,
                processed_at = COALESCE(processed_at, $2),
                status = CASE status WHEN 'pending' THEN 'done' ELSE status END";
        out.inbox_redacted += sqlx::query(&format!("{REDACT} WHERE user_id = $3"))
            .bind(REDACTED_BODY)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT phone, email FROM contacts WHERE user_id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (phone, email) = row.unwrap_or_default();
        for needle in erase_needles(user_id, phone.as_deref(), email.as_deref()) {
            out.inbox_redacted += sqlx::query(&format!("{REDACT} WHERE strpos(body, $3) > 0"))
                .bind(REDACTED_BODY)
                .bind(now)
                .bind(&needle)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.jobs_deleted += sqlx::query("DELETE FROM outbox WHERE strpos(payload, $1) > 0")
                .bind(&needle)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let mut keys = vec![user_id.to_string()];
        keys.extend(phone.iter().chain(email.iter()).cloned());
        out.jobs_deleted += sqlx::query("DELETE FROM outbox WHERE user_id = ANY($1)")
            .bind(&keys)
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
        let mut steps: [(&str, Option<&mut u64>); 10] = [
            ("DELETE FROM contact_tags WHERE user_id = $1", Some(tags)),
            ("DELETE FROM contact_fields WHERE user_id = $1", Some(fields)),
            ("DELETE FROM list_members WHERE user_id = $1", Some(list_memberships)),
            ("DELETE FROM rule_state WHERE user_id = $1", Some(rule_state)),
            ("DELETE FROM form_submissions WHERE contact_id = $1", Some(form_submissions)),
            ("DELETE FROM handoff_messages WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = $1)", None),
            ("DELETE FROM handoff_breaches WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = $1)", None),
            ("DELETE FROM handoffs WHERE user_id = $1", None),
            ("DELETE FROM campaign_members WHERE contact_id = $1", None),
            ("DELETE FROM contacts WHERE user_id = $1", Some(contact)),
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
            "SELECT user_id FROM contact_fields WHERE name = $1 AND value LIKE ANY($2)
             ORDER BY user_id",
        )
        .bind(name)
        .bind(patterns)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn apply_decisions(&self, decisions: &[Decision], now: i64) -> Result<usize> {
        if decisions.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let keys: Vec<&str> = decisions.iter().filter_map(|d| d.key.as_deref()).collect();
        let mut fresh = std::collections::HashSet::with_capacity(keys.len());
        for chunk in keys.chunks(5000) {
            let rows: Vec<(String,)> = sqlx::query_as(
                "INSERT INTO scheduler_marks (key, at) SELECT k, $2 FROM UNNEST($1::text[]) AS k
                 ON CONFLICT (key) DO NOTHING RETURNING key",
            )
            .bind(chunk)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            fresh.extend(rows.into_iter().map(|(k,)| k));
        }
        let chosen: Vec<&Effects> = decisions
            .iter()
            .filter(|d| d.key.as_ref().is_none_or(|k| fresh.contains(k)))
            .map(|d| &d.effects)
            .collect();
        apply_effects_bulk(&mut tx, &chosen, now).await?;
        tx.commit().await?;
        Ok(chosen.len())
    }

    async fn load_campaign_members(&self, user_ids: &[String]) -> Result<Vec<CampaignMember>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM campaign_members WHERE contact_id = ANY($1)"
        ))
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn due_campaign_members(
        &self,
        campaigns: Option<&[String]>,
        now: i64,
        limit: i64,
    ) -> Result<Vec<CampaignMember>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM campaign_members
             WHERE status = 'active' AND next_at <= $1
               AND ($3::text[] IS NULL OR campaign = ANY($3))
             ORDER BY next_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .bind(campaigns)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn campaign_members(&self, campaign: &str) -> Result<Vec<CampaignMember>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {MEMBER_COLUMNS} FROM campaign_members WHERE campaign = $1 ORDER BY contact_id"
        ))
        .bind(campaign)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn scheduler_value(&self, name: &str) -> Result<Option<i64>> {
        let row: Option<(i64,)> =
            sqlx::query_as("SELECT value FROM scheduler_state WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(v,)| v))
    }

    async fn campaign_steps(&self, campaign: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT step_id FROM campaign_steps WHERE campaign = $1 ORDER BY position",
        )
        .bind(campaign)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    async fn set_campaign_steps(&self, campaign: &str, steps: &[String], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM campaign_steps WHERE campaign = $1")
            .bind(campaign)
            .execute(&mut *tx)
            .await?;
        let positions: Vec<i64> = (0..steps.len() as i64).collect();
        sqlx::query(
            "INSERT INTO campaign_steps (campaign, position, step_id, updated_at)
             SELECT $1, p, i, $4 FROM UNNEST($2::bigint[], $3::text[]) AS t(p, i)",
        )
        .bind(campaign)
        .bind(&positions)
        .bind(steps)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn map_member_positions(
        &self,
        campaign: &str,
        steps: &[String],
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let positions: Vec<i64> = (0..steps.len() as i64).collect();
        let mut n = sqlx::query(
            "UPDATE campaign_members m SET step_id = t.i, updated_at = $4
             FROM UNNEST($2::bigint[], $3::text[]) AS t(p, i)
             WHERE m.campaign = $1 AND m.step = t.p AND m.status = 'active' AND m.step_id IS NULL",
        )
        .bind(campaign)
        .bind(&positions)
        .bind(steps)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        n += sqlx::query(
            "UPDATE campaign_members SET status = 'done', next_at = NULL, updated_at = $3
             WHERE campaign = $1 AND step >= $2 AND status = 'active' AND step_id IS NULL",
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
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_scheduler_value(&self, name: &str, value: i64, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO scheduler_state (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_joins(&self, list: &str, from: i64, to: i64) -> Result<Vec<ListMember>> {
        Ok(sqlx::query_as(
            "SELECT user_id, added_at FROM list_members
             WHERE list = $1 AND added_at >= $2 AND added_at < $3 ORDER BY added_at, user_id",
        )
        .bind(list)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
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
             WHERE name = ANY($1) AND updated_at >= $2 AND updated_at < $3
             ORDER BY updated_at, user_id",
        )
        .bind(names)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn sent_emails(&self, rule_id: Option<&str>, from: i64, to: i64) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {JOB_COLUMNS} FROM outbox
             WHERE channel = 'email' AND status = 'sent' AND sent_at >= $1 AND sent_at < $2
               AND ($3::text IS NULL OR rule_id = $3)
             ORDER BY sent_at, id"
        ))
        .bind(from)
        .bind(to)
        .bind(rule_id)
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

    async fn existing_marks(&self, keys: &[String]) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT key FROM scheduler_marks WHERE key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }

    async fn report_counts(&self, since: i64, rule: Option<&str>) -> Result<crate::report::Counts> {
        outcomes::counts(&self.pool, since, rule).await
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
                 ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                 WHERE contact_fields.value <> excluded.value",
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

/// Applies list operations in order inside `tx`; runs of additions go in one `UNNEST` insert.
async fn apply_list_changes<'a>(
    tx: &mut Transaction<'static, Postgres>,
    changes: impl IntoIterator<Item = &'a ListChange>,
    now: i64,
) -> Result<()> {
    let changes: Vec<&ListChange> = changes.into_iter().collect();
    if changes.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = changes
        .iter()
        .flat_map(|c| c.lists())
        .map(str::to_string)
        .collect();
    names.sort_unstable();
    names.dedup();
    sqlx::query(
        "INSERT INTO contact_lists (name, created_at)
         SELECT n, $2 FROM UNNEST($1::text[]) AS n ON CONFLICT (name) DO NOTHING",
    )
    .bind(&names)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let mut i = 0;
    while i < changes.len() {
        if let ListChange::Add { .. } = changes[i] {
            let run_end = changes[i..]
                .iter()
                .position(|c| !matches!(c, ListChange::Add { .. }))
                .map_or(changes.len(), |p| i + p);
            let (mut lists, mut users) = (Vec::new(), Vec::new());
            for c in &changes[i..run_end] {
                if let ListChange::Add { list, user_id } = c {
                    lists.push(list.as_str());
                    users.push(user_id.as_str());
                }
            }
            sqlx::query(
                "INSERT INTO list_members (list, user_id, added_at)
                 SELECT l, u, $3 FROM UNNEST($1::text[], $2::text[]) AS t(l, u)
                 ON CONFLICT (list, user_id) DO NOTHING",
            )
            .bind(&lists)
            .bind(&users)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            i = run_end;
            continue;
        }
        match changes[i] {
            ListChange::Add { .. } => unreachable!("handled above"),
            ListChange::Create { list, description } => {
                sqlx::query("UPDATE contact_lists SET description = $1 WHERE name = $2")
                    .bind(description)
                    .bind(list)
                    .execute(&mut **tx)
                    .await?;
            }
            ListChange::Remove { list, user_id } => {
                sqlx::query("DELETE FROM list_members WHERE list = $1 AND user_id = $2")
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
                            "INSERT INTO list_members (list, user_id, added_at) VALUES ($1, $2, $3)
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
                             SELECT $1, user_id, $2 FROM list_members WHERE list = $3
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
                        "DELETE FROM list_members WHERE list = $1 AND ($2::text IS NULL OR user_id = $2)",
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

/// The bulk form of `apply_contact_changes` (same semantics) for imports: a few `UNNEST`
/// statements per chunk instead of one statement per tag and field. `changes` must hold one
/// change per user (`merge_changes`).
async fn bulk_upsert_contacts(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[ContactChange],
    now: i64,
) -> Result<()> {
    for chunk in changes.chunks(5000) {
        let col = |f: fn(&ContactChange) -> Option<String>| -> Vec<Option<String>> {
            chunk.iter().map(f).collect()
        };
        let ids: Vec<&str> = chunk.iter().map(|c| c.user_id.as_str()).collect();
        let follows: Vec<Option<bool>> = chunk.iter().map(|c| c.follows).collect();
        let int = |f: fn(&ContactChange) -> Option<i64>| -> Vec<Option<i64>> {
            chunk.iter().map(f).collect()
        };
        sqlx::query(
            "INSERT INTO contacts (user_id, display_name, phone, email, follows, first_seen,
                last_interaction, followed_at, unfollowed_at, updated_at, interaction_count)
             SELECT u, n, p, e, f, s, li, fa, ua, $11, ic
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bigint[],
                         $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
                  AS t(u, n, p, e, f, s, li, fa, ua, ic)
             ON CONFLICT (user_id) DO UPDATE SET
                display_name = COALESCE(excluded.display_name, contacts.display_name),
                phone = COALESCE(excluded.phone, contacts.phone),
                email = COALESCE(excluded.email, contacts.email),
                follows = COALESCE(excluded.follows, contacts.follows),
                followed_at = COALESCE(excluded.followed_at, contacts.followed_at),
                unfollowed_at = COALESCE(excluded.unfollowed_at, contacts.unfollowed_at),
                last_interaction = GREATEST(contacts.last_interaction, excluded.last_interaction),
                interaction_count = contacts.interaction_count + excluded.interaction_count,
                updated_at = excluded.updated_at",
        )
        .bind(&ids)
        .bind(col(|c| c.display_name.clone()))
        .bind(col(|c| c.phone.clone()))
        .bind(col(|c| c.email.clone()))
        .bind(&follows)
        .bind(chunk.iter().map(|c| c.seen_at).collect::<Vec<i64>>())
        .bind(int(|c| c.interaction_at))
        .bind(int(|c| c.followed_at))
        .bind(int(|c| c.unfollowed_at))
        .bind(chunk.iter().map(|c| c.interactions).collect::<Vec<i64>>())
        .bind(now)
        .execute(&mut **tx)
        .await?;

        let (mut tu, mut tt) = (Vec::new(), Vec::new());
        for c in chunk {
            for t in &c.tags_add {
                tu.push(c.user_id.as_str());
                tt.push(t.as_str());
            }
        }
        if !tu.is_empty() {
            sqlx::query(
                "INSERT INTO contact_tags (user_id, tag, added_at)
                 SELECT u, t, $3 FROM UNNEST($1::text[], $2::text[]) AS x(u, t)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&tu)
            .bind(&tt)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        for c in chunk.iter().filter(|c| !c.tags_remove.is_empty()) {
            sqlx::query("DELETE FROM contact_tags WHERE user_id = $1 AND tag = ANY($2)")
                .bind(&c.user_id)
                .bind(&c.tags_remove)
                .execute(&mut **tx)
                .await?;
        }
        let (mut fu, mut fk, mut fv) = (Vec::new(), Vec::new(), Vec::new());
        for c in chunk {
            for (k, v) in &c.fields_set {
                fu.push(c.user_id.as_str());
                fk.push(k.as_str());
                fv.push(v.as_str());
            }
        }
        if !fu.is_empty() {
            sqlx::query(
                "INSERT INTO contact_fields (user_id, name, value, updated_at)
                 SELECT u, k, v, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS x(u, k, v)
                 ON CONFLICT (user_id, name) DO UPDATE
                    SET value = excluded.value, updated_at = excluded.updated_at
                    WHERE contact_fields.value <> excluded.value",
            )
            .bind(&fu)
            .bind(&fk)
            .bind(&fv)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Everything a batch of effects changes, in one transaction: contacts (merged per contact),
/// outbox jobs, list operations, rule firings.
async fn apply_effects<'e>(
    tx: &mut Transaction<'static, Postgres>,
    effects: impl Iterator<Item = &'e Effects> + Clone,
    now: i64,
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
        let mut qb: QueryBuilder<Postgres> =
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
    outcomes::apply(tx, effects.clone(), now).await?;
    let campaigns: Vec<&CampaignChange> = effects.flat_map(|e| &e.campaigns).collect();
    apply_campaign_changes(tx, &campaigns, now).await?;
    handoffs::apply(tx, handoff_changes, now).await
}

/// `apply_effects` for the scheduler's large batches: jobs and rule firings in a few `UNNEST`
/// statements instead of one multi-row statement per few hundred rows.
async fn apply_effects_bulk(
    tx: &mut Transaction<'static, Postgres>,
    effects: &[&Effects],
    now: i64,
) -> Result<()> {
    let merged = merge_changes(effects.iter().flat_map(|e| &e.contacts));
    apply_contact_changes(tx, &merged, now).await?;
    let jobs: Vec<&NewJob> = effects.iter().flat_map(|e| &e.jobs).collect();
    for chunk in jobs.chunks(20_000) {
        let col = |f: fn(&NewJob) -> Option<&str>| -> Vec<Option<&str>> {
            chunk.iter().map(|j| f(j)).collect()
        };
        sqlx::query(
            "INSERT INTO outbox (channel, user_id, payload, priority, first_due, run_at, rule_id,
                source, dedupe_key, variant, created_at, updated_at, status, last_error, skip_reason)
             SELECT c, u, p, pr, r, r, ru, s, d, v, $9, $9, st, le, sr
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[],
                         $7::text[], $8::text[], $10::text[], $11::text[], $12::text[], $13::text[])
                  AS t(c, u, p, pr, r, ru, s, d, v, st, le, sr)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(col(|j| Some(j.channel.as_str())))
        .bind(col(|j| Some(j.user_id.as_str())))
        .bind(col(|j| Some(j.payload.as_str())))
        .bind(chunk.iter().map(|j| j.priority).collect::<Vec<i32>>())
        .bind(chunk.iter().map(|j| j.run_at).collect::<Vec<i64>>())
        .bind(col(|j| j.rule_id.as_deref()))
        .bind(col(|j| Some(j.source.as_str())))
        .bind(col(|j| j.dedupe_key.as_deref()))
        .bind(now)
        .bind(col(|j| j.variant.as_deref()))
        .bind(col(|j| Some(j.status())))
        .bind(col(|j| j.skip.as_ref().map(|k| k.message.as_str())))
        .bind(col(|j| j.skip.as_ref().map(|k| k.reason.as_str())))
        .execute(&mut **tx)
        .await?;
    }
    apply_list_changes(tx, effects.iter().flat_map(|e| &e.lists), now).await?;
    // The latest firing per (contact, rule) wins.
    let mut fires: HashMap<(&str, &str), &RuleFire> = HashMap::new();
    for f in effects.iter().flat_map(|e| &e.fires) {
        fires.insert((f.user_id.as_str(), f.rule_id.as_str()), f);
    }
    let fires: Vec<&RuleFire> = fires.into_values().collect();
    for chunk in fires.chunks(20_000) {
        sqlx::query(
            "INSERT INTO rule_state (user_id, rule_id, period_key, fired_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (user_id, rule_id) DO UPDATE SET period_key = excluded.period_key,
                fired_at = excluded.fired_at, fires = rule_state.fires + 1",
        )
        .bind(chunk.iter().map(|f| f.user_id.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|f| f.rule_id.as_str()).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|f| f.period_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|f| f.fired_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    outcomes::apply(tx, effects.iter().copied(), now).await?;
    let campaigns: Vec<&CampaignChange> = effects.iter().flat_map(|e| &e.campaigns).collect();
    apply_campaign_changes(tx, &campaigns, now).await?;
    handoffs::apply(tx, effects.iter().flat_map(|e| &e.handoffs).collect(), now).await?;
    Ok(())
}

/// Campaign membership changes, in order; runs of entries and of advances go in one `UNNEST`
/// statement each (a drip step due for many contacts at once).
async fn apply_campaign_changes(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[&CampaignChange],
    now: i64,
) -> Result<()> {
    let mut i = 0;
    while i < changes.len() {
        let same_kind =
            |c: &CampaignChange| std::mem::discriminant(c) == std::mem::discriminant(changes[i]);
        let end = changes[i..]
            .iter()
            .position(|c| !same_kind(c))
            .map_or(changes.len(), |p| i + p);
        let run = &changes[i..end];
        match changes[i] {
            CampaignChange::Enter { .. } => {
                let (mut c, mut u, mut e, mut s, mut n) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let mut ids: Vec<Option<&str>> = Vec::new();
                for ch in run {
                    if let CampaignChange::Enter {
                        campaign,
                        contact_id,
                        entered_at,
                        step,
                        step_id,
                        next_at,
                    } = ch
                    {
                        c.push(campaign.as_str());
                        u.push(contact_id.as_str());
                        e.push(*entered_at);
                        s.push(*step);
                        ids.push(step_id.as_deref());
                        n.push(*next_at);
                    }
                }
                sqlx::query(
                    "INSERT INTO campaign_members (campaign, contact_id, entered_at, step, next_at,
                        status, entries, updated_at, step_id)
                     SELECT c, u, e, s, n, CASE WHEN n IS NULL THEN 'done' ELSE 'active' END, 1, $6, i
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                                 $7::text[])
                          AS t(c, u, e, s, n, i)
                     ON CONFLICT (campaign, contact_id) DO NOTHING",
                )
                .bind(&c)
                .bind(&u)
                .bind(&e)
                .bind(&s)
                .bind(&n)
                .bind(now)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            }
            CampaignChange::Advance { .. } => {
                let (mut c, mut u, mut f, mut s, mut n) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let mut ids: Vec<Option<&str>> = Vec::new();
                for ch in run {
                    if let CampaignChange::Advance {
                        campaign,
                        contact_id,
                        from_step,
                        step,
                        step_id,
                        next_at,
                    } = ch
                    {
                        c.push(campaign.as_str());
                        u.push(contact_id.as_str());
                        f.push(from_step.as_str());
                        s.push(*step);
                        ids.push(step_id.as_deref());
                        n.push(*next_at);
                    }
                }
                // `contact_id = ANY` reads just these members through an index; joined on the
                // key alone, the planner may merge-join along the whole contact index.
                sqlx::query(
                    "UPDATE campaign_members m SET step = t.s, step_id = t.i, next_at = t.n,
                        status = CASE WHEN t.n IS NULL THEN 'done' ELSE 'active' END, updated_at = $6
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                                 $7::text[])
                          AS t(c, u, f, s, n, i)
                     WHERE m.contact_id = ANY($2) AND m.campaign = t.c AND m.contact_id = t.u
                       AND m.status = 'active' AND m.step_id = t.f",
                )
                .bind(&c)
                .bind(&u)
                .bind(&f)
                .bind(&s)
                .bind(&n)
                .bind(now)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            }
            _ => {
                for ch in run {
                    match ch {
                        CampaignChange::Repeat {
                            campaign,
                            contact_id,
                        } => {
                            sqlx::query(
                                "UPDATE campaign_members SET entries = entries + 1, updated_at = $3
                                 WHERE campaign = $1 AND contact_id = $2",
                            )
                            .bind(campaign)
                            .bind(contact_id)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        CampaignChange::Leave {
                            campaign,
                            contact_id,
                            reason,
                        } => {
                            sqlx::query(
                                "UPDATE campaign_members SET status = 'left', next_at = NULL,
                                    left_reason = $3, updated_at = $4
                                 WHERE campaign = $1 AND contact_id = $2 AND status = 'active'",
                            )
                            .bind(campaign)
                            .bind(contact_id)
                            .bind(reason)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        _ => {}
                    }
                }
            }
        }
        i = end;
    }
    Ok(())
}

//! The outbox: jobs enqueued, claimed by senders, finished; the admin views of them.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait Jobs: Send + Sync {
    async fn enqueue_jobs(&self, jobs: &[NewJob], now: i64) -> Result<()>;
    /// Claims jobs due by `due_by` (and in-flight ones whose lease expired), marking the
    /// attempt before the call. A job waits while an earlier job of the same user is in flight
    /// or backing off. Leases are wall-clock time (`wall_now`), whatever instant `due_by`
    /// stands for: a `tick --at` in the past must not take leases that look expired to the
    /// running service, nor one in the future hold jobs long after a crash.
    async fn claim_jobs(
        &self,
        owner: &str,
        due_by: i64,
        wall_now: i64,
        lease_ms: i64,
        limit: i64,
        lane: JobLane,
    ) -> Result<Vec<Job>>;
    /// Records attempts' outcomes (and contact updates) in one transaction; an outcome whose
    /// lease is no longer ours is skipped and counted in the returned number.
    async fn finish_jobs(&self, owner: &str, outcomes: &[JobOutcome], now: i64) -> Result<u64>;
    async fn list_jobs(&self, status: Option<&str>, limit: i64) -> Result<Vec<Job>>;
    async fn get_job(&self, id: i64) -> Result<Option<Job>>;
    /// A dead letter goes back to the queue (attempts reset). False if it is not dead.
    async fn retry_dead_job(&self, id: i64, now: i64) -> Result<bool>;
    /// (channel, status, count)
    async fn job_counts(&self) -> Result<Vec<(String, String, i64)>>;
    /// The earliest `run_at` of pending jobs, if any.
    async fn next_job_due(&self) -> Result<Option<i64>>;

    /// Outbox jobs addressed to any of `keys` (a contact's id, phone and email), newest first.
    async fn contact_jobs(&self, keys: &[String], limit: i64) -> Result<Vec<Job>>;
    /// Staff jobs about the contact `user_id`, newest first: team-chat notices naming it in
    /// their data (a rule's `notify` as `user_id`, a handoff's or escalation's as `contact`)
    /// and tasks for it. They have no recipient lane (they go to staff): every staff job is
    /// looked at, however many sends to customers came since.
    async fn staff_jobs_about(&self, user_id: &str, limit: i64) -> Result<Vec<Job>>;
    /// Emails sent with `sent_at` in `[from, to)`, optionally only those of one rule or step.
    async fn sent_emails(&self, rule_id: Option<&str>, from: i64, to: i64) -> Result<Vec<Job>>;
}

/// The claim of [`Jobs::claim_jobs`] (PostgreSQL's text; `dialect::sqlite` makes SQLite's).
///
/// A job waits behind an earlier one of its user's still pending or in flight. That earlier
/// job is looked for in `outbox_lane` (the unsent jobs, by user and `first_due`), bounded by
/// `k.first_due <= j.first_due`: without the bound SQLite chose `outbox_user`, every job the
/// user ever had, so a claim cost more the longer a customer's history (EXPLAIN QUERY PLAN,
/// test `the_claim_looks_at_unsent_jobs_only`).
pub(crate) fn claim_sql(lane: JobLane) -> String {
    let lane_sql = match lane {
        JobLane::All => "",
        JobLane::ZaloOa => "AND j.channel = 'zalo'",
        JobLane::NotZaloOa => "AND j.channel <> 'zalo'",
    };
    format!(
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
                  AND k.first_due <= j.first_due
                  AND (k.first_due < j.first_due OR (k.first_due = j.first_due AND k.id < j.id))
                  AND ((k.status = 'sending' AND k.lease_until >= $5)
                       OR (k.status = 'pending' AND k.run_at > $3)))
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT $4
            FOR UPDATE SKIP LOCKED)
         RETURNING {JOB_COLUMNS}"
    )
}

/// Implements [`Jobs`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! jobs_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Jobs for $store {
            $($own)*

            async fn claim_jobs(
                &self,
                owner: &str,
                due_by: i64,
                wall_now: i64,
                lease_ms: i64,
                limit: i64,
                lane: JobLane,
            ) -> Result<Vec<Job>> {
                let sql = $crate::jobs::claim_sql(lane);
                begin_write!($db, self, tx);
                claim_lock!($db, tx, LOCK_OUTBOX_CLAIM);
                let mut rows: Vec<Job> = sqlx::query_as(sql!($db, sql))
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

            async fn enqueue_jobs(&self, jobs: &[NewJob], now: i64) -> Result<()> {
                begin_write!($db, self, tx);
                let refs: Vec<&NewJob> = jobs.iter().collect();
                insert_jobs(&mut tx, &refs, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_jobs(&self, status: Option<&str>, limit: i64) -> Result<Vec<Job>> {
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {JOB_COLUMNS} FROM outbox WHERE ($1::text IS NULL OR status = $1) ORDER BY id DESC LIMIT $2"
                )))
                .bind(status)
                .bind(limit)
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn staff_jobs_about(&self, user_id: &str, limit: i64) -> Result<Vec<Job>> {
                // Labels, not `$.` paths: `sql!` turns every `$` into SQLite's `?`.
                let payload = pick!($db, sqlite: "payload", postgres: "payload::jsonb");
                let about = format!(
                    "({payload} -> 'data' ->> 'user_id' = $1 OR {payload} -> 'data' ->> 'contact' = $1
                      OR {payload} ->> 'contact' = $1)"
                );
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {JOB_COLUMNS} FROM outbox
                     WHERE user_id = '' AND channel IN ('chat', 'task') AND {about}
                     ORDER BY id DESC LIMIT $2"
                )))
                .bind(user_id)
                .bind(limit)
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn get_job(&self, id: i64) -> Result<Option<Job>> {
                Ok(
                    sqlx::query_as(sql!($db, format!("SELECT {JOB_COLUMNS} FROM outbox WHERE id = $1")))
                        .bind(id)
                        .fetch_optional(reader!($db, self))
                        .await?,
                )
            }

            async fn retry_dead_job(&self, id: i64, now: i64) -> Result<bool> {
                let r = sqlx::query(
                    sql!($db, "UPDATE outbox SET status = 'pending', attempts = 0, run_at = $1, updated_at = $1
                     WHERE id = $2 AND status = 'dead'"),
                )
                .bind(now)
                .bind(id)
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn job_counts(&self) -> Result<Vec<(String, String, i64)>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status ORDER BY 1, 2"),
                )
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn next_job_due(&self) -> Result<Option<i64>> {
                let (v,): (Option<i64>,) =
                    sqlx::query_as(sql!($db, "SELECT MIN(run_at) FROM outbox WHERE status = 'pending'"))
                        .fetch_one(reader!($db, self))
                        .await?;
                Ok(v)
            }

            async fn contact_jobs(&self, keys: &[String], limit: i64) -> Result<Vec<Job>> {
                if keys.is_empty() {
                    return Ok(Vec::new());
                }
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {JOB_COLUMNS} FROM outbox WHERE user_id = ANY($1) ORDER BY id DESC LIMIT $2"
                )))
                .bind(list!($db, keys))
                .bind(limit)
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn sent_emails(&self, rule_id: Option<&str>, from: i64, to: i64) -> Result<Vec<Job>> {
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {JOB_COLUMNS} FROM outbox
                     WHERE channel = 'email' AND status = 'sent' AND sent_at >= $1 AND sent_at < $2
                       AND ($3::text IS NULL OR rule_id = $3)
                     ORDER BY sent_at, id"
                )))
                .bind(from)
                .bind(to)
                .bind(rule_id)
                .fetch_all(reader!($db, self))
                .await?)
            }
        }

    };
}
pub(crate) use jobs_impl;

/// The outbox's multi-row insert (a dedupe key seen before is skipped). Written once for both
/// backends, invoked in each backend's module: `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), `$Db` its sqlx database, `$lt` its transactions' lifetime, `$Store` and
/// `$Pool` its store and pool types.
macro_rules! insert_jobs_fn {
    ($db:ident, $Db:ty, $lt:lifetime, $Store:ty, $Pool:ty) => {
        async fn insert_jobs(
            tx: &mut Transaction<$lt, $Db>,
            jobs: &[&NewJob],
            now: i64,
        ) -> Result<()> {
            for chunk in jobs.chunks(pick!($db, sqlite: 300, postgres: 500)) {
                let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
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
    };
}
pub(crate) use insert_jobs_fn;

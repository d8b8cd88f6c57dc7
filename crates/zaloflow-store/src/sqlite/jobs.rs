//! The outbox: jobs enqueued, claimed by senders, finished; the admin views of them. (SQLite).

use super::*;

crate::jobs::jobs_impl!(SqliteStore, sqlite, {
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
});

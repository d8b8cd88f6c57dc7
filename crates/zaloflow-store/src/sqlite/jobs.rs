//! The outbox: jobs enqueued, claimed by senders, finished; the admin views of them. (SQLite).

use super::*;

crate::jobs::jobs_impl!(SqliteStore, sqlite, {
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

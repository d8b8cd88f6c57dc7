//! The outbox: jobs enqueued, claimed by senders, finished; the admin views of them. (SQLite).

use super::*;

crate::jobs::jobs_impl!(SqliteStore, sqlite, {
    async fn finish_jobs(&self, owner: &str, outcomes: &[JobOutcome], now: i64) -> Result<u64> {
        // One statement for the whole batch, as on PostgreSQL: a statement per job is a round
        // trip to the connection's thread each, and those dominated a batch's recording.
        let rows: Vec<serde_json::Value> = outcomes
            .iter()
            .map(|o| {
                let (status, run_at, sent_at, provider_id, error, code) = outcome_columns(o, now);
                let (class, vnd) = o.result.cost_columns();
                serde_json::json!([
                    o.id,
                    status,
                    run_at,
                    sent_at,
                    provider_id,
                    error,
                    code,
                    o.result.skip_reason(),
                    class,
                    vnd
                ])
            })
            .collect();
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let done: Vec<(i64,)> = sqlx::query_as(
            "WITH v (id, status, run_at, sent_at, provider_id, error, code, skip_reason,
                     send_class, cost_vnd) AS (
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
                        value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9
                   FROM json_each(?1))
             UPDATE outbox SET status = v.status, run_at = COALESCE(v.run_at, outbox.run_at),
                    sent_at = v.sent_at, provider_id = COALESCE(v.provider_id, outbox.provider_id),
                    last_error = v.error, last_code = v.code, lease_owner = NULL,
                    lease_until = 0, updated_at = ?2, skip_reason = v.skip_reason,
                    send_class = COALESCE(v.send_class, outbox.send_class),
                    cost_vnd = COALESCE(v.cost_vnd, outbox.cost_vnd)
               FROM v
              WHERE outbox.id = v.id AND outbox.lease_owner = ?3 AND outbox.status = 'sending'
             RETURNING outbox.id",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .bind(now)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        let done: std::collections::HashSet<i64> = done.into_iter().map(|(id,)| id).collect();
        let contacts: Vec<_> = outcomes
            .iter()
            .filter(|o| done.contains(&o.id))
            .filter_map(|o| o.contact.clone())
            .collect();
        let merged = merge_changes(&contacts);
        apply_contact_changes(&mut tx, &merged, now).await?;
        tx.commit().await?;
        Ok((outcomes.len() - done.len()) as u64)
    }
});

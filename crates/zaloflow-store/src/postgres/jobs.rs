//! The outbox: jobs enqueued, claimed by senders, finished; the admin views of them. (PostgreSQL).

use super::*;

crate::jobs::jobs_impl!(PgStore, postgres, {
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
});

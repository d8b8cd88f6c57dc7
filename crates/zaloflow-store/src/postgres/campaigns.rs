//! The scheduler's side: decisions, campaign memberships and steps, watermarks, the effectiveness report. (PostgreSQL).

use super::*;

crate::campaigns::campaigns_impl!(PgStore, postgres, {
    async fn apply_decisions(&self, decisions: &[Decision], now: i64) -> Result<Vec<usize>> {
        if decisions.is_empty() {
            return Ok(Vec::new());
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
        let applied: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].key.as_ref().is_none_or(|k| fresh.contains(k)))
            .collect();
        let chosen: Vec<&Effects> = applied.iter().map(|&i| &decisions[i].effects).collect();
        apply_effects_bulk(&mut tx, &chosen, now).await?;
        tx.commit().await?;
        Ok(applied)
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

    async fn existing_marks(&self, keys: &[String]) -> Result<Vec<String>> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT key FROM scheduler_marks WHERE key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(k,)| k).collect())
    }
});

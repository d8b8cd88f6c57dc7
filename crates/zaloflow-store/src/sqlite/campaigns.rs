//! The scheduler's side: decisions, campaign memberships and steps, watermarks, the effectiveness report. (SQLite).

use super::*;

crate::campaigns::campaigns_impl!(SqliteStore, sqlite, {
    async fn apply_decisions(&self, decisions: &[Decision], now: i64) -> Result<Vec<usize>> {
        if decisions.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let keys: Vec<&str> = decisions.iter().filter_map(|d| d.key.as_deref()).collect();
        let mut fresh = std::collections::HashSet::with_capacity(keys.len());
        for chunk in keys.chunks(400) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO scheduler_marks (key, at) ");
            qb.push_values(chunk, |mut b, k| {
                b.push_bind(*k).push_bind(now);
            });
            qb.push(" ON CONFLICT (key) DO NOTHING RETURNING key");
            let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            fresh.extend(rows.into_iter().map(|(k,)| k));
        }
        let applied: Vec<usize> = (0..decisions.len())
            .filter(|&i| decisions[i].key.as_ref().is_none_or(|k| fresh.contains(k)))
            .collect();
        let chosen: Vec<&Effects> = applied.iter().map(|&i| &decisions[i].effects).collect();
        apply_effects(&mut tx, chosen.iter().copied(), now, true).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn set_campaign_steps(&self, campaign: &str, steps: &[String], now: i64) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        sqlx::query("DELETE FROM campaign_steps WHERE campaign = ?1")
            .bind(campaign)
            .execute(&mut *tx)
            .await?;
        for (i, id) in steps.iter().enumerate() {
            sqlx::query(
                "INSERT INTO campaign_steps (campaign, position, step_id, updated_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(campaign)
            .bind(i as i64)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn map_member_positions(
        &self,
        campaign: &str,
        steps: &[String],
        now: i64,
    ) -> Result<u64> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        let mut n = 0;
        for (i, id) in steps.iter().enumerate() {
            n += sqlx::query(
                "UPDATE campaign_members SET step_id = ?3, updated_at = ?4
                 WHERE campaign = ?1 AND step = ?2 AND status = 'active' AND step_id IS NULL",
            )
            .bind(campaign)
            .bind(i as i64)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        n += sqlx::query(
            "UPDATE campaign_members SET status = 'done', next_at = NULL, updated_at = ?3
             WHERE campaign = ?1 AND step >= ?2 AND status = 'active' AND step_id IS NULL",
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
        self.existing_keys("SELECT key FROM scheduler_marks", "key", keys)
            .await
    }
});

/// Campaign membership changes, in order; a run of advances (a drip step due for many members)
/// is one statement per thousand members.
pub(super) async fn apply_campaign_changes<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    changes: impl Iterator<Item = &'a CampaignChange>,
    now: i64,
) -> Result<()> {
    let changes: Vec<&CampaignChange> = changes.collect();
    let mut i = 0;
    while i < changes.len() {
        if let CampaignChange::Advance { .. } = changes[i] {
            let end = changes[i..]
                .iter()
                .position(|c| !matches!(c, CampaignChange::Advance { .. }))
                .map_or(changes.len(), |p| i + p);
            for chunk in changes[i..end].chunks(1000) {
                let mut qb: QueryBuilder<Sqlite> =
                    QueryBuilder::new("WITH j (c, u, f, s, i, n) AS (");
                qb.push_values(chunk, |mut b, c| {
                    if let CampaignChange::Advance {
                        campaign,
                        contact_id,
                        from_step,
                        step,
                        step_id,
                        next_at,
                    } = c
                    {
                        b.push_bind(campaign)
                            .push_bind(contact_id)
                            .push_bind(from_step)
                            .push_bind(step)
                            .push_bind(step_id)
                            .push_bind(next_at);
                    }
                });
                // The primary key's index (SQLite names it so), or the planner may scan the
                // table for every row of the batch.
                qb.push(
                    ") UPDATE campaign_members INDEXED BY sqlite_autoindex_campaign_members_1
                        SET step = j.s, step_id = j.i, next_at = j.n,
                        status = CASE WHEN j.n IS NULL THEN 'done' ELSE 'active' END, updated_at = ",
                )
                .push_bind(now)
                .push(
                    " FROM j
                     WHERE campaign_members.campaign = j.c AND campaign_members.contact_id = j.u
                       AND campaign_members.status = 'active' AND campaign_members.step_id = j.f",
                );
                qb.build().execute(&mut **tx).await?;
            }
            i = end;
            continue;
        }
        apply_campaign_change(tx, changes[i], now).await?;
        i += 1;
    }
    Ok(())
}

crate::campaigns::member_rows_fn!(sqlite, Sqlite, '_);

pub(super) async fn apply_campaign_change(
    tx: &mut Transaction<'_, Sqlite>,
    ch: &CampaignChange,
    now: i64,
) -> Result<()> {
    match ch {
        CampaignChange::Enter {
            campaign,
            contact_id,
            entered_at,
            step,
            step_id,
            next_at,
        } => {
            sqlx::query(
                    "INSERT INTO campaign_members (campaign, contact_id, entered_at, step, next_at,
                        status, entries, updated_at, step_id)
                     VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?5 IS NULL THEN 'done' ELSE 'active' END, 1, ?6, ?7)
                     ON CONFLICT (campaign, contact_id) DO NOTHING",
                )
                .bind(campaign)
                .bind(contact_id)
                .bind(entered_at)
                .bind(step)
                .bind(next_at)
                .bind(now)
                .bind(step_id)
                .execute(&mut **tx)
                .await?;
        }
        CampaignChange::Repeat {
            campaign,
            contact_id,
        } => {
            repeat_member(tx, campaign, contact_id, now).await?;
        }
        CampaignChange::Advance {
            campaign,
            contact_id,
            from_step,
            step,
            step_id,
            next_at,
        } => {
            sqlx::query(
                "UPDATE campaign_members SET step = ?4, next_at = ?5, step_id = ?7,
                        status = CASE WHEN ?5 IS NULL THEN 'done' ELSE 'active' END, updated_at = ?6
                     WHERE campaign = ?1 AND contact_id = ?2 AND status = 'active' AND step_id = ?3",
            )
            .bind(campaign)
            .bind(contact_id)
            .bind(from_step)
            .bind(step)
            .bind(next_at)
            .bind(now)
            .bind(step_id)
            .execute(&mut **tx)
            .await?;
        }
        CampaignChange::Leave {
            campaign,
            contact_id,
            reason,
        } => {
            leave_member(tx, campaign, contact_id, reason, now).await?;
        }
    }
    Ok(())
}

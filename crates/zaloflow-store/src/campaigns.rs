//! The scheduler's side: decisions, campaign memberships and steps, watermarks, the effectiveness report.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait Campaigns: Send + Sync {
    /// Applies decisions in one transaction: each keyed decision only if its key is new (the
    /// key is kept). Returns the places in `decisions` of those applied (a forecast hands
    /// their jobs to its own outbox).
    async fn apply_decisions(&self, decisions: &[Decision], now: i64) -> Result<Vec<usize>>;
    /// Every campaign membership of these contacts.
    async fn load_campaign_members(&self, user_ids: &[String]) -> Result<Vec<CampaignMember>>;
    /// Active memberships whose next step is due by `now`, earliest first, optionally only of
    /// these campaigns.
    async fn due_campaign_members(
        &self,
        campaigns: Option<&[String]>,
        now: i64,
        limit: i64,
    ) -> Result<Vec<CampaignMember>>;
    /// The members of a campaign, by contact id (admin, tests).
    async fn campaign_members(&self, campaign: &str) -> Result<Vec<CampaignMember>>;
    /// A campaign's step ids in the order the scheduler last recorded (empty: never).
    async fn campaign_steps(&self, campaign: &str) -> Result<Vec<String>>;
    async fn set_campaign_steps(&self, campaign: &str, steps: &[String], now: i64) -> Result<()>;
    /// Active members stored by position only (rows from before step ids) get the id of the
    /// step at their position in `steps`; past the last step they are done. Returns how many.
    async fn map_member_positions(&self, campaign: &str, steps: &[String], now: i64)
        -> Result<u64>;
    /// Active members per campaign and step (`rules check --against`).
    async fn member_counts(&self) -> Result<Vec<MemberCount>>;
    /// A scheduler watermark.
    async fn scheduler_value(&self, name: &str) -> Result<Option<i64>>;
    async fn set_scheduler_value(&self, name: &str, value: i64, now: i64) -> Result<()>;
    /// Which of these decision keys are taken.
    async fn existing_marks(&self, keys: &[String]) -> Result<Vec<String>>;
    /// What the rules did since `since` (jobs created, firings, handoffs opened), counted per
    /// rule, variant and outcome; only `rule` and its campaign steps (`rule/…`) when given.
    async fn report_counts(&self, since: i64, rule: Option<&str>) -> Result<crate::report::Counts>;
}

/// Implements [`Campaigns`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! campaigns_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Campaigns for $store {
            $($own)*

            async fn load_campaign_members(&self, user_ids: &[String]) -> Result<Vec<CampaignMember>> {
                // SQLite reads the ids from a JSON list, 500 at a time; PostgreSQL binds them all.
                let mut out = Vec::new();
                for chunk in user_ids.chunks(pick!($db, sqlite: 500, postgres: user_ids.len().max(1))) {
                    out.extend(
                        sqlx::query_as::<_, CampaignMember>(sql!(
                            $db,
                            format!(
                                "SELECT {MEMBER_COLUMNS} FROM campaign_members
                                 WHERE contact_id = ANY($1)"
                            )
                        ))
                        .bind(list!($db, chunk))
                        .fetch_all(reader!($db, self))
                        .await?,
                    );
                }
                Ok(out)
            }

            async fn due_campaign_members(
                &self,
                campaigns: Option<&[String]>,
                now: i64,
                limit: i64,
            ) -> Result<Vec<CampaignMember>> {
                Ok(sqlx::query_as(sql!(
                    $db,
                    format!(
                    "SELECT {MEMBER_COLUMNS} FROM campaign_members
                     WHERE status = 'active' AND next_at <= $1
                       AND ($3::text[] IS NULL OR campaign = ANY($3))
                     ORDER BY next_at LIMIT $2"
                    )
                ))
                .bind(now)
                .bind(limit)
                .bind(list!($db, opt campaigns))
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn campaign_members(&self, campaign: &str) -> Result<Vec<CampaignMember>> {
                Ok(sqlx::query_as(sql!($db, format!(
                    "SELECT {MEMBER_COLUMNS} FROM campaign_members WHERE campaign = $1 ORDER BY contact_id"
                )))
                .bind(campaign)
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn campaign_steps(&self, campaign: &str) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    sql!($db, "SELECT step_id FROM campaign_steps WHERE campaign = $1 ORDER BY position"),
                )
                .bind(campaign)
                .fetch_all(reader!($db, self))
                .await?;
                Ok(rows.into_iter().map(|(s,)| s).collect())
            }

            async fn member_counts(&self) -> Result<Vec<MemberCount>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT campaign, step_id, CASE WHEN step_id IS NULL THEN step ELSE -1 END AS position,
                            COUNT(*) AS members
                     FROM campaign_members WHERE status = 'active'
                     GROUP BY 1, 2, 3 ORDER BY 1, 3"),
                )
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn scheduler_value(&self, name: &str) -> Result<Option<i64>> {
                let row: Option<(i64,)> =
                    sqlx::query_as(sql!($db, "SELECT value FROM scheduler_state WHERE name = $1"))
                        .bind(name)
                        .fetch_optional(writer!($db, self))
                        .await?;
                Ok(row.map(|(v,)| v))
            }

            async fn set_scheduler_value(&self, name: &str, value: i64, now: i64) -> Result<()> {
                sqlx::query(
                    sql!($db, "INSERT INTO scheduler_state (name, value, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"),
                )
                .bind(name)
                .bind(value)
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                Ok(())
            }

            async fn report_counts(&self, since: i64, rule: Option<&str>) -> Result<crate::report::Counts> {
                outcomes::counts(reader!($db, self), since, rule).await
            }
        }

    };
}
pub(crate) use campaigns_impl;

/// A membership's repeated entry and its leaving, one row each: written once for both
/// backends (`$db`, `$Db`, `$lt` as for the other area macros).
macro_rules! member_rows_fn {
    ($db:ident, $Db:ty, $lt:lifetime) => {
        async fn repeat_member(
            tx: &mut Transaction<$lt, $Db>,
            campaign: &str,
            contact_id: &str,
            now: i64,
        ) -> Result<()> {
            sqlx::query(sql!(
                $db,
                "UPDATE campaign_members SET entries = entries + 1, updated_at = $3
                 WHERE campaign = $1 AND contact_id = $2"
            ))
            .bind(campaign)
            .bind(contact_id)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn leave_member(
            tx: &mut Transaction<$lt, $Db>,
            campaign: &str,
            contact_id: &str,
            reason: &str,
            now: i64,
        ) -> Result<()> {
            sqlx::query(sql!(
                $db,
                "UPDATE campaign_members SET status = 'left', next_at = NULL,
                    left_reason = $3, updated_at = $4
                 WHERE campaign = $1 AND contact_id = $2 AND status = 'active'"
            ))
            .bind(campaign)
            .bind(contact_id)
            .bind(reason)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }
    };
}
pub(crate) use member_rows_fn;

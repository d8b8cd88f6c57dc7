//! The OA's template messages as Zalo announces them (issue 25): each template's status
//! (`change_template_status`) and the OA's daily template quota (`change_oa_daily_quota`), and
//! the template sends the quota counts.
//!
//! An area of the store with a trait of its own ([`Templates`], a supertrait of
//! [`crate::Store`]): statements written once with `$N` placeholders and given to SQLite as
//! `?N`; SQLite writes go through its one writer.

use async_trait::async_trait;

use crate::Result;

#[async_trait]
pub trait Templates: Send + Sync {
    /// Records template `id`'s status as Zalo announced it at `at`; answers the status it had
    /// before (None: not known), so a change is told to staff once.
    async fn set_template_status(&self, id: &str, status: &str, at: i64) -> Result<Option<String>>;
    /// Template `id`'s last announced status (None: never announced: usable).
    async fn template_status(&self, id: &str) -> Result<Option<String>>;
    /// Records the OA's daily template quota (None: unlimited).
    async fn set_daily_quota(&self, quota: Option<i64>, at: i64) -> Result<()>;
    /// The OA's daily template quota as last announced (None: not announced or unlimited).
    async fn daily_quota(&self) -> Result<Option<i64>>;
    /// Template messages sent at or after `since`.
    async fn template_sends_since(&self, since: i64) -> Result<i64>;
}

const STATUS: &str = "SELECT status FROM template_status WHERE template_id = $1";

const SET_STATUS: &str = "INSERT INTO template_status (template_id, status, updated_at)
  VALUES ($1, $2, $3)
  ON CONFLICT (template_id) DO UPDATE SET status = excluded.status,
    updated_at = excluded.updated_at";

const QUOTA: &str = "SELECT daily_quota FROM oa_quota WHERE id = 1";

const SET_QUOTA: &str = "INSERT INTO oa_quota (id, daily_quota, updated_at) VALUES (1, $1, $2)
  ON CONFLICT (id) DO UPDATE SET daily_quota = excluded.daily_quota,
    updated_at = excluded.updated_at";

const SENDS_SINCE: &str = "SELECT COUNT(*) FROM outbox
  WHERE channel = 'zns' AND status = 'sent' AND sent_at >= $1";

/// Implements [`Templates`] for a backend: `$read` is its read pool, `$write` an expression
/// giving a connection to write with, `$sql` turns the shared statement into the backend's.
macro_rules! templates_impl {
    ($store:ty, $read:ident, |$s:ident| $write:expr, $sql:expr) => {
        #[async_trait]
        impl Templates for $store {
            async fn set_template_status(
                &self,
                id: &str,
                status: &str,
                at: i64,
            ) -> Result<Option<String>> {
                let before = self.template_status(id).await?;
                let $s = self;
                sqlx::query(&$sql(SET_STATUS))
                    .bind(id)
                    .bind(status)
                    .bind(at)
                    .execute($write)
                    .await?;
                Ok(before)
            }

            async fn template_status(&self, id: &str) -> Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as(&$sql(STATUS))
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?;
                Ok(row.map(|(s,)| s))
            }

            async fn set_daily_quota(&self, quota: Option<i64>, at: i64) -> Result<()> {
                let $s = self;
                sqlx::query(&$sql(SET_QUOTA))
                    .bind(quota)
                    .bind(at)
                    .execute($write)
                    .await?;
                Ok(())
            }

            async fn daily_quota(&self) -> Result<Option<i64>> {
                let row: Option<(Option<i64>,)> = sqlx::query_as(&$sql(QUOTA))
                    .fetch_optional(&self.$read)
                    .await?;
                Ok(row.and_then(|(q,)| q))
            }

            async fn template_sends_since(&self, since: i64) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as(&$sql(SENDS_SINCE))
                    .bind(since)
                    .fetch_one(&self.$read)
                    .await?;
                Ok(n)
            }
        }
    };
}

templates_impl!(
    crate::sqlite::SqliteStore,
    reader,
    |s| &mut *s.write_lock().await?,
    crate::dialect::sqlite
);
templates_impl!(crate::postgres::PgStore, pool, |s| &s.pool, str::to_string);

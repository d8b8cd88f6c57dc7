//! What a forecast reads of the live database (issue 28), and what it counts in its scratch
//! copy: stored events of a window in pages, contacts' last events before a time, the outbox
//! of a window, rule firings and handoffs opened. Read-only: a forecast never writes to the
//! live database.
//!
//! An area of the store with a trait of its own ([`Replay`], a supertrait of
//! [`crate::Store`]): one set of statements, written once with `$N` placeholders and given to
//! SQLite through `crate::dialect::sqlite`.

use async_trait::async_trait;

use crate::{InboxEvent, Job, Result, JOB_COLUMNS};

/// Firings of one rule (or campaign step) in one hour (ms since the epoch / 3 600 000).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FireCount {
    pub rule_id: String,
    pub hour: i64,
    pub fires: i64,
}

#[async_trait]
pub trait Replay: Send + Sync {
    /// Up to `limit` stored events received in `[from, to)` with an id above `after`, in id
    /// order (failed events left out): a window read page by page.
    async fn inbox_window(
        &self,
        after: i64,
        from: i64,
        to: i64,
        limit: i64,
    ) -> Result<Vec<InboxEvent>>;
    /// The latest event received before `before` of each user in `[first, last]` (user id
    /// order): when they last showed up before a window starts.
    async fn last_events_before(
        &self,
        first: &str,
        last: &str,
        before: i64,
    ) -> Result<Vec<(String, i64)>>;
    /// (user, tag) of the tags of users in `[first, last]` (user id order) added at or after
    /// `since`: tags a window's contacts did not have yet when it started.
    async fn tags_added_since(
        &self,
        first: &str,
        last: &str,
        since: i64,
    ) -> Result<Vec<(String, String)>>;
    /// Up to `limit` outbox jobs first due in `[from, to)` with an id above `after`, in id
    /// order.
    async fn outbox_window(&self, after: i64, from: i64, to: i64, limit: i64) -> Result<Vec<Job>>;
    /// Rule firings per rule and hour, in hours `[from, to)` (`rule_fire_hours`).
    async fn fire_counts(&self, from: i64, to: i64) -> Result<Vec<FireCount>>;
    /// (rule, opened at) of the handoffs opened at or after `since`.
    async fn handoffs_opened(&self, since: i64) -> Result<Vec<(Option<String>, i64)>>;
    /// How many contacts there are.
    async fn contact_count(&self) -> Result<i64>;
}

const INBOX_WINDOW: &str =
    "SELECT id, dedupe_key, event_name, user_id, body, event_ts, received_at,
        0 AS attempts
   FROM inbox
  WHERE id > $1 AND received_at >= $2 AND received_at < $3 AND status <> 'failed'
  ORDER BY id
  LIMIT $4";

const LAST_EVENTS: &str = "SELECT user_id, MAX(received_at) FROM inbox
  WHERE user_id >= $1 AND user_id <= $2 AND received_at < $3 AND status <> 'failed'
  GROUP BY user_id";

const TAGS_ADDED: &str = "SELECT user_id, tag FROM contact_tags
  WHERE user_id >= $1 AND user_id <= $2 AND added_at >= $3";

fn outbox_window() -> String {
    format!(
        "SELECT {JOB_COLUMNS} FROM outbox
  WHERE id > $1 AND first_due >= $2 AND first_due < $3
  ORDER BY id
  LIMIT $4"
    )
}

const FIRE_COUNTS: &str = "SELECT rule_id, hour, fires FROM rule_fire_hours
  WHERE hour >= $1 AND hour < $2 ORDER BY hour, rule_id";

const HANDOFFS_OPENED: &str = "SELECT rule_id, opened_at FROM handoffs WHERE opened_at >= $1
  ORDER BY opened_at";

const CONTACT_COUNT: &str = "SELECT COUNT(*) FROM contacts";

/// Implements [`Replay`] for a backend: `$pool` is its read pool, `$sql` turns the shared
/// statement into the backend's.
macro_rules! replay_impl {
    ($store:ty, $pool:ident, $sql:expr) => {
        #[async_trait]
        impl Replay for $store {
            async fn inbox_window(
                &self,
                after: i64,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<InboxEvent>> {
                Ok(sqlx::query_as(&$sql(INBOX_WINDOW))
                    .bind(after)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn last_events_before(
                &self,
                first: &str,
                last: &str,
                before: i64,
            ) -> Result<Vec<(String, i64)>> {
                Ok(sqlx::query_as(&$sql(LAST_EVENTS))
                    .bind(first)
                    .bind(last)
                    .bind(before)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn tags_added_since(
                &self,
                first: &str,
                last: &str,
                since: i64,
            ) -> Result<Vec<(String, String)>> {
                Ok(sqlx::query_as(&$sql(TAGS_ADDED))
                    .bind(first)
                    .bind(last)
                    .bind(since)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn outbox_window(
                &self,
                after: i64,
                from: i64,
                to: i64,
                limit: i64,
            ) -> Result<Vec<Job>> {
                Ok(sqlx::query_as(&$sql(&outbox_window()))
                    .bind(after)
                    .bind(from)
                    .bind(to)
                    .bind(limit)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn fire_counts(&self, from: i64, to: i64) -> Result<Vec<FireCount>> {
                Ok(sqlx::query_as(&$sql(FIRE_COUNTS))
                    .bind(from)
                    .bind(to)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn handoffs_opened(&self, since: i64) -> Result<Vec<(Option<String>, i64)>> {
                Ok(sqlx::query_as(&$sql(HANDOFFS_OPENED))
                    .bind(since)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn contact_count(&self) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as(&$sql(CONTACT_COUNT))
                    .fetch_one(&self.$pool)
                    .await?;
                Ok(n)
            }
        }
    };
}

replay_impl!(crate::sqlite::SqliteStore, reader, crate::dialect::sqlite);
replay_impl!(crate::postgres::PgStore, pool, str::to_string);

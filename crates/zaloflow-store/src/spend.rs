//! What sends cost (issue 25): the history a send's class depends on, today's spend for the
//! daily budget, and spend per rule, channel, class and hour for the report.
//!
//! An area of the store with a trait of its own ([`Spend`], a supertrait of [`crate::Store`]):
//! one set of statements, written once with `$N` placeholders and given to SQLite through `crate::dialect::sqlite`.

use async_trait::async_trait;

use crate::Result;

/// Sends of one rule, channel and class in one hour (`hour` = ms since the epoch / 3 600 000).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SpendRow {
    pub rule_id: Option<String>,
    pub channel: String,
    pub send_class: String,
    pub hour: i64,
    pub sends: i64,
    pub vnd: i64,
}

/// Sends not made, per rule and reason, first due at or after a time: skipped (`reason` the
/// skip reason) or held and still waiting (`reason` = `held`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NotSentRow {
    pub rule_id: Option<String>,
    pub reason: String,
    pub jobs: i64,
}

/// What a claimed batch's users were sent: their last interactions and their billed sends
/// since a time, read once per batch instead of once per send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchHistory {
    /// (user id, last interaction) of the batch's Zalo users that have a contact row.
    pub contacts: Vec<(String, Option<i64>)>,
    /// (user id, job id, send class, sent at) of their promotions, and of their consultation
    /// messages since their last interaction.
    pub sends: Vec<(String, i64, String, i64)>,
}

#[async_trait]
pub trait Spend: Send + Sync {
    /// The history of the users of the Zalo jobs that `owner` holds claimed (`status =
    /// 'sending'`): their last interactions, and their sends at or after `since` that a
    /// send's price depends on: promotions, and consultation messages sent at or after the
    /// user's last interaction (none for a user with none).
    async fn claimed_history(&self, owner: &str, since: i64) -> Result<BatchHistory>;
    /// The user's last interaction and the ids of the consultation messages sent to them
    /// since (ids, so a sender can add the sends of its batch not yet committed, once each).
    async fn consultation_sends(&self, user_id: &str) -> Result<(Option<i64>, Vec<i64>)>;
    /// The ids of the sends of `class` to `user_id` at or after `since`.
    async fn class_send_ids(&self, user_id: &str, class: &str, since: i64) -> Result<Vec<i64>>;
    /// VND spent on sends at or after `since`.
    async fn spent_since(&self, since: i64) -> Result<i64>;
    /// Sends with a class at or after `since`, per rule, channel, class and hour.
    async fn spend_rows(&self, since: i64) -> Result<Vec<SpendRow>>;
    /// Sends first due at or after `since` that were not made: skipped, or held and waiting.
    async fn not_sent_rows(&self, since: i64) -> Result<Vec<NotSentRow>>;
}

const LAST_INTERACTION: &str = "SELECT last_interaction FROM contacts WHERE user_id = $1";

pub(crate) const CONSULTATION_SENDS: &str = "SELECT id FROM outbox
  WHERE user_id = $1 AND status = 'sent'
    AND send_class IN ('consultation_free', 'consultation_paid') AND sent_at >= $2";

pub(crate) const CLASS_SEND_IDS: &str = "SELECT id FROM outbox
  WHERE user_id = $1 AND status = 'sent' AND send_class = $2 AND sent_at >= $3";

const SPENT_SINCE: &str = "SELECT CAST(COALESCE(SUM(cost_vnd), 0) AS BIGINT) FROM outbox
  WHERE status = 'sent' AND cost_vnd IS NOT NULL AND sent_at >= $1";

const SPEND_ROWS: &str = "SELECT rule_id, channel, send_class, sent_at / 3600000 AS hour,
        COUNT(*) AS sends, CAST(COALESCE(SUM(cost_vnd), 0) AS BIGINT) AS vnd
   FROM outbox
  WHERE status = 'sent' AND cost_vnd IS NOT NULL AND sent_at >= $1
  GROUP BY rule_id, channel, send_class, sent_at / 3600000
  ORDER BY hour, rule_id, channel, send_class";

const NOT_SENT_ROWS: &str = "SELECT rule_id, COALESCE(skip_reason, 'held') AS reason,
        COUNT(*) AS jobs
   FROM outbox
  WHERE first_due >= $1
    AND (status = 'skipped' OR (status = 'pending' AND last_error LIKE 'held:%'))
  GROUP BY rule_id, COALESCE(skip_reason, 'held')
  ORDER BY jobs DESC, rule_id, reason";

/// The users of the Zalo jobs a sender holds claimed.
const CLAIMED_USERS: &str = "SELECT user_id FROM outbox
  WHERE lease_owner = $1 AND status = 'sending' AND channel = 'zalo' AND user_id <> ''";

fn claimed_contacts() -> String {
    format!("SELECT user_id, last_interaction FROM contacts WHERE user_id IN ({CLAIMED_USERS})")
}

/// Consultation sends count from the user's last interaction on (PROTOCOL.md §5), so only
/// those are read: a month of every user's replies was most of what a busy sender read (and
/// handed row by row from SQLite's thread), and all but the last few went unused.
pub(crate) fn claimed_sends() -> String {
    format!(
        "SELECT o.user_id, o.id, o.send_class, o.sent_at FROM outbox o
  LEFT JOIN contacts c ON c.user_id = o.user_id
  WHERE o.status = 'sent' AND o.sent_at >= $2
    AND (o.send_class = 'promotion'
      OR (o.send_class IN ('consultation_free', 'consultation_paid')
        AND o.sent_at >= c.last_interaction))
    AND o.user_id IN ({CLAIMED_USERS})"
    )
}

/// Implements [`Spend`] for a backend: `$pool` is its read pool, `$sql` turns the shared
/// statement into the backend's.
macro_rules! spend_impl {
    ($store:ty, $pool:ident, $sql:expr) => {
        #[async_trait]
        impl Spend for $store {
            async fn claimed_history(&self, owner: &str, since: i64) -> Result<BatchHistory> {
                let contacts = sqlx::query_as(&$sql(&claimed_contacts()))
                    .bind(owner)
                    .fetch_all(&self.$pool)
                    .await?;
                let sends = sqlx::query_as(&$sql(&claimed_sends()))
                    .bind(owner)
                    .bind(since)
                    .fetch_all(&self.$pool)
                    .await?;
                Ok(BatchHistory { contacts, sends })
            }

            async fn consultation_sends(&self, user_id: &str) -> Result<(Option<i64>, Vec<i64>)> {
                let last: Option<(Option<i64>,)> = sqlx::query_as(&$sql(LAST_INTERACTION))
                    .bind(user_id)
                    .fetch_optional(&self.$pool)
                    .await?;
                let Some(last) = last.and_then(|(l,)| l) else {
                    return Ok((None, Vec::new()));
                };
                let ids: Vec<(i64,)> = sqlx::query_as(&$sql(CONSULTATION_SENDS))
                    .bind(user_id)
                    .bind(last)
                    .fetch_all(&self.$pool)
                    .await?;
                Ok((Some(last), ids.into_iter().map(|(id,)| id).collect()))
            }

            async fn class_send_ids(
                &self,
                user_id: &str,
                class: &str,
                since: i64,
            ) -> Result<Vec<i64>> {
                let ids: Vec<(i64,)> = sqlx::query_as(&$sql(CLASS_SEND_IDS))
                    .bind(user_id)
                    .bind(class)
                    .bind(since)
                    .fetch_all(&self.$pool)
                    .await?;
                Ok(ids.into_iter().map(|(id,)| id).collect())
            }

            async fn spent_since(&self, since: i64) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as(&$sql(SPENT_SINCE))
                    .bind(since)
                    .fetch_one(&self.$pool)
                    .await?;
                Ok(n)
            }

            async fn not_sent_rows(&self, since: i64) -> Result<Vec<NotSentRow>> {
                Ok(sqlx::query_as(&$sql(NOT_SENT_ROWS))
                    .bind(since)
                    .fetch_all(&self.$pool)
                    .await?)
            }

            async fn spend_rows(&self, since: i64) -> Result<Vec<SpendRow>> {
                Ok(sqlx::query_as(&$sql(SPEND_ROWS))
                    .bind(since)
                    .fetch_all(&self.$pool)
                    .await?)
            }
        }
    };
}

spend_impl!(crate::sqlite::SqliteStore, reader, crate::dialect::sqlite);
spend_impl!(crate::postgres::PgStore, pool, str::to_string);

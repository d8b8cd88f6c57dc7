//! Reading contacts from Zalo (issue 29): sync runs and profile lookups.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait ProfileSync: Send + Sync {
    /// Applies profiles read from Zalo with the merge rule of [`ZaloProfile`], and with `page`
    /// moves that run's cursor and counts, in one transaction. Fails with `LeaseLost` (and
    /// changes nothing) when the run's cursor is no longer where `page` started.
    async fn apply_zalo_profiles(
        &self,
        profiles: &[ZaloProfile],
        page: Option<&SyncPage>,
        now: i64,
    ) -> Result<ProfileCounts>;
    /// The unfinished sync run, or a new one started now by `by`; `true` when new.
    async fn start_contact_sync(&self, by: &str, now: i64) -> Result<(ContactSync, bool)>;
    /// The latest sync run.
    async fn contact_sync(&self) -> Result<Option<ContactSync>>;
    /// Records a run's failure (`error`, the run stays resumable) or, with `done`, its end.
    async fn end_contact_sync(
        &self,
        id: i64,
        done: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<()>;
    /// Zalo users whose profile was never read (first seen in a webhook, imported…) and whose
    /// lookup is due, newest first.
    async fn profiles_due(&self, now: i64, limit: i64) -> Result<Vec<String>>;
    /// A lookup failed: tried again at `retry_at`, or never (`None`: Zalo refused it for good).
    async fn profile_lookup_failed(&self, user_id: &str, retry_at: Option<i64>) -> Result<()>;
}

/// Implements [`ProfileSync`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! contact_sync_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::ProfileSync for $store {
            $($own)*

            async fn apply_zalo_profiles(
                &self,
                profiles: &[ZaloProfile],
                page: Option<&SyncPage>,
                now: i64,
            ) -> Result<ProfileCounts> {
                contact_sync::apply_profiles(self, profiles, page, now).await
            }

            async fn start_contact_sync(&self, by: &str, now: i64) -> Result<(ContactSync, bool)> {
                contact_sync::start(self, by, now).await
            }

            async fn contact_sync(&self) -> Result<Option<ContactSync>> {
                contact_sync::latest(self).await
            }

            async fn end_contact_sync(
                &self,
                id: i64,
                done: bool,
                error: Option<&str>,
                now: i64,
            ) -> Result<()> {
                contact_sync::end(self, id, done, error, now).await
            }

            async fn profiles_due(&self, now: i64, limit: i64) -> Result<Vec<String>> {
                contact_sync::profiles_due(self, now, limit).await
            }

            async fn profile_lookup_failed(&self, user_id: &str, retry_at: Option<i64>) -> Result<()> {
                contact_sync::lookup_failed(self, user_id, retry_at).await
            }
        }

    };
}
pub(crate) use contact_sync_impl;

/// A sync run's cursor, end and latest state, and the profile lookups due. Written once for both
/// backends, invoked in each backend's module: `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), `$Db` its sqlx database, `$lt` its transactions' lifetime, `$Store` and
/// `$Pool` its store and pool types.
macro_rules! contact_sync_fns {
    ($db:ident, $Db:ty, $lt:lifetime, $Store:ty, $Pool:ty) => {
        async fn move_cursor(
            tx: &mut Transaction<$lt, $Db>,
            p: &SyncPage,
            counts: ProfileCounts,
            now: i64,
        ) -> Result<()> {
            let r = sqlx::query(
                sql!($db, "UPDATE contact_syncs SET phase = $1, next_offset = $2, total = COALESCE($3, total),
                    listed = listed + $4, unreadable = unreadable + $5, created = created + $6,
                    updated = updated + $7, updated_at = $8, error = NULL
                 WHERE id = $9 AND status = 'running' AND phase = $10 AND next_offset = $11"),
            )
            .bind(&p.phase)
            .bind(p.next_offset)
            .bind(p.total)
            .bind(p.listed)
            .bind(p.unreadable)
            .bind(counts.created)
            .bind(counts.updated)
            .bind(now)
            .bind(p.run_id)
            .bind(&p.from_phase)
            .bind(p.from_offset)
            .execute(&mut **tx)
            .await?;
            if r.rows_affected() != 1 {
                return Err(StoreError::LeaseLost(format!(
                    "contacts sync run {} is no longer at {} offset {}",
                    p.run_id, p.from_phase, p.from_offset
                )));
            }
            Ok(())
        }

        pub(super) async fn end(
            store: &$Store,
            id: i64,
            done: bool,
            error: Option<&str>,
            now: i64,
        ) -> Result<()> {
            sqlx::query(
                sql!($db, "UPDATE contact_syncs SET status = CASE WHEN $1 THEN 'done' ELSE status END,
                    phase = CASE WHEN $1 THEN 'done' ELSE phase END,
                    finished_at = CASE WHEN $1 THEN $3 ELSE finished_at END,
                    error = $2, updated_at = $3
                 WHERE id = $4 AND status = 'running'"),
            )
            .bind(done)
            .bind(error)
            .bind(now)
            .bind(id)
            .execute(writer!($db, store))
            .await?;
            Ok(())
        }

        pub(super) async fn latest(store: &$Store) -> Result<Option<ContactSync>> {
            Ok(sqlx::query_as(sql!($db, format!(
                "SELECT {CONTACT_SYNC_COLUMNS} FROM contact_syncs ORDER BY id DESC LIMIT 1"
            )))
            .fetch_optional(reader!($db, store))
            .await?)
        }

        pub(super) async fn lookup_failed(
            store: &$Store,
            user_id: &str,
            retry_at: Option<i64>,
        ) -> Result<()> {
            sqlx::query(
                sql!($db, "UPDATE contacts SET profile_retry_at = $1,
                    profile_read_at = CASE WHEN $1 IS NULL THEN 0 ELSE profile_read_at END
                 WHERE user_id = $2 AND profile_read_at IS NULL"),
            )
            .bind(retry_at)
            .bind(user_id)
            .execute(writer!($db, store))
            .await?;
            Ok(())
        }

        pub(super) async fn profiles_due(store: &$Store, now: i64, limit: i64) -> Result<Vec<String>> {
            let rows: Vec<(String,)> = sqlx::query_as(
                sql!($db, "SELECT user_id FROM contacts
                 WHERE profile_read_at IS NULL AND (profile_retry_at IS NULL OR profile_retry_at <= $1)
                   AND user_id NOT LIKE 'phone:%' AND user_id NOT LIKE 'email:%'
                 ORDER BY first_seen DESC LIMIT $2"),
            )
            .bind(now)
            .bind(limit)
            .fetch_all(reader!($db, store))
            .await?;
            Ok(rows.into_iter().map(|(u,)| u).collect())
        }
    };
}
pub(crate) use contact_sync_fns;

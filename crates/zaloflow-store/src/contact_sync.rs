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

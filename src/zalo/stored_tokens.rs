//! The OA's token pair in the database, refreshed under a named lease so that one instance at
//! a time spends the single-use refresh token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::Clock;
use crate::store::{DynStore, NewJob};
use crate::zalo::token::{RefreshFn, TokenPair, TokenStore};

const LEASE: &str = "zalo-token-refresh";
/// Longer than one OAuth call may take (its client timeout), so the lease outlives the call.
const LEASE_TTL_MS: i64 = 60_000;

pub struct DbTokenStore {
    store: DynStore,
    owner: String,
    clock: Clock,
    /// What staff are told (once) when Zalo refuses a refresh: the OA must be connected again.
    refused_notice: Vec<NewJob>,
}

impl DbTokenStore {
    pub fn new(store: DynStore, owner: String, clock: Clock) -> Arc<Self> {
        Self::with_notice(store, owner, clock, Vec::new())
    }

    /// [`DbTokenStore::new`], telling staff through `refused_notice` (outbox jobs) when Zalo
    /// refuses a refresh.
    pub fn with_notice(
        store: DynStore,
        owner: String,
        clock: Clock,
        refused_notice: Vec<NewJob>,
    ) -> Arc<Self> {
        Arc::new(DbTokenStore {
            store,
            owner,
            clock,
            refused_notice,
        })
    }

    /// Stores the first pair of a newly connected OA `oa_id` under the refresh lease (no
    /// refresh of the old pair runs meanwhile) and marks the OA connected again. Running token
    /// managers read it within seconds.
    pub async fn connect(&self, pair: &TokenPair, oa_id: &str) -> anyhow::Result<()> {
        self.lease().await?;
        let result = self
            .store
            .save_connected_tokens(pair, oa_id, self.clock.now())
            .await;
        self.release().await;
        Ok(result?)
    }

    /// Waits for the refresh lease (another instance may be refreshing right now).
    async fn lease(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while !self
            .store
            .try_lease(LEASE, &self.owner, crate::clock::system_now(), LEASE_TTL_MS)
            .await?
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for another instance's token refresh"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    async fn release(&self) {
        if let Err(e) = self.store.release_lease(LEASE, &self.owner).await {
            tracing::warn!(error = %e, "could not release the token refresh lease");
        }
    }
}

#[async_trait]
impl TokenStore for DbTokenStore {
    async fn load(&self) -> anyhow::Result<Option<TokenPair>> {
        Ok(self.store.load_tokens().await?)
    }

    async fn with_refresh_lock(&self, refresh: RefreshFn) -> anyhow::Result<TokenPair> {
        self.lease().await?;
        let result = async {
            // Re-read under the lease: whoever held it before may have refreshed already.
            let current = self.store.load_tokens().await?;
            let new = refresh(current.clone()).await?;
            if current.as_ref() != Some(&new) {
                // Persisted before anyone uses it.
                self.store.save_tokens(&new, self.clock.now()).await?;
            }
            Ok(new)
        }
        .await;
        self.release().await;
        result
    }

    async fn record_refresh(&self, at_ms: i64, error: Option<String>, refused: bool) {
        if let Err(e) = self
            .store
            .record_token_refresh(at_ms, error.as_deref())
            .await
        {
            tracing::warn!(error = %e, "could not record the token refresh");
        }
        if refused {
            let notice: Vec<NewJob> = self
                .refused_notice
                .iter()
                .map(|j| NewJob {
                    run_at: at_ms,
                    ..j.clone()
                })
                .collect();
            match self
                .store
                .revoke_oa(at_ms, "refresh_refused", &notice, self.clock.now())
                .await
            {
                Ok(true) => tracing::error!(
                    "Zalo refused the token refresh: OA calls wait until the OA is connected again at /admin/zalo/connect"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not mark the OA as needing a new connection"),
            }
        }
    }
}

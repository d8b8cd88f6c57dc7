//! The OA's token pair in the database, refreshed under a named lease so that one instance at
//! a time spends the single-use refresh token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::DynStore;
use crate::clock::Clock;
use crate::zalo::token::{RefreshFn, TokenPair, TokenStore};

const LEASE: &str = "zalo-token-refresh";
/// Longer than one OAuth call may take (its client timeout), so the lease outlives the call.
const LEASE_TTL_MS: i64 = 60_000;

pub struct DbTokenStore {
    store: DynStore,
    owner: String,
    clock: Clock,
}

impl DbTokenStore {
    pub fn new(store: DynStore, owner: String, clock: Clock) -> Arc<Self> {
        Arc::new(DbTokenStore {
            store,
            owner,
            clock,
        })
    }
}

#[async_trait]
impl TokenStore for DbTokenStore {
    async fn load(&self) -> anyhow::Result<Option<TokenPair>> {
        Ok(self.store.load_tokens().await?)
    }

    async fn with_refresh_lock(&self, refresh: RefreshFn) -> anyhow::Result<TokenPair> {
        // Wait for the lease (another instance may be refreshing right now).
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
        if let Err(e) = self.store.release_lease(LEASE, &self.owner).await {
            tracing::warn!(error = %e, "could not release the token refresh lease");
        }
        result
    }
}

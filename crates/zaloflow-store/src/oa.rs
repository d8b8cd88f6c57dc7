//! Leases, the OA's tokens and connection, OAuth flows, stored secrets.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait Oa: Send + Sync {
    /// Takes or renews the named lease; false while someone else holds it.
    async fn try_lease(&self, name: &str, owner: &str, now: i64, ttl_ms: i64) -> Result<bool>;
    async fn release_lease(&self, name: &str, owner: &str) -> Result<()>;
    async fn load_tokens(&self) -> Result<Option<zaloflow_core::token::TokenPair>>;
    async fn save_tokens(&self, pair: &zaloflow_core::token::TokenPair, now: i64) -> Result<()>;

    /// The connection's state (all empty when nothing was ever recorded).
    async fn oa_connection(&self) -> Result<OaConnection>;
    /// Stores a pair got by connecting OA `oa_id` and marks the OA connected again, in one
    /// transaction (the caller holds the token refresh lease).
    async fn save_connected_tokens(
        &self,
        pair: &zaloflow_core::token::TokenPair,
        oa_id: &str,
        now: i64,
    ) -> Result<()>;
    /// Notes a token refresh sent to Zalo at `at` and its error (None: it worked).
    async fn record_token_refresh(&self, at: i64, error: Option<&str>) -> Result<()>;
    /// Marks the OA as needing a person (`reason`), unless it already is or was connected
    /// after `seen_at`; enqueues `notice` in the same transaction. True when it changed.
    async fn revoke_oa(
        &self,
        seen_at: i64,
        reason: &str,
        notice: &[NewJob],
        now: i64,
    ) -> Result<bool>;
    /// Keeps an OAuth flow's state (hashes), code verifier and expiry; drops expired ones.
    async fn put_oauth_state(&self, state: &OauthState, now: i64) -> Result<()>;
    /// Takes (deletes and answers) the flow of this state hash: a state is used once.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OauthState>>;

    /// The stored secret `name`, storing `candidate` first if there is none yet (the first
    /// instance to ask wins; everyone gets the same value).
    async fn get_or_create_secret(&self, name: &str, candidate: &str, now: i64) -> Result<String>;
}

/// Implements [`Oa`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! oa_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Oa for $store {
            $($own)*

            async fn try_lease(&self, name: &str, owner: &str, now: i64, ttl_ms: i64) -> Result<bool> {
                let r = sqlx::query(
                    sql!($db, "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until
                     WHERE leases.owner = excluded.owner OR leases.until < $4"),
                )
                .bind(name)
                .bind(owner)
                .bind(now + ttl_ms)
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
                sqlx::query(sql!($db, "DELETE FROM leases WHERE name = $1 AND owner = $2"))
                    .bind(name)
                    .bind(owner)
                    .execute(writer!($db, self))
                    .await?;
                Ok(())
            }

            async fn load_tokens(&self) -> Result<Option<zaloflow_core::token::TokenPair>> {
                let row: Option<(String, String, i64)> = sqlx::query_as(
                    sql!($db, "SELECT access_token, refresh_token, expires_at FROM oa_tokens WHERE id = 1"),
                )
                .fetch_optional(writer!($db, self))
                .await?;
                Ok(row.map(token_pair))
            }

            async fn save_tokens(&self, pair: &zaloflow_core::token::TokenPair, now: i64) -> Result<()> {
                sqlx::query(
                    sql!($db, "INSERT INTO oa_tokens (id, access_token, refresh_token, expires_at, updated_at)
                     VALUES (1, $1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,
                        refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                        updated_at = excluded.updated_at"),
                )
                .bind(&pair.access_token)
                .bind(&pair.refresh_token)
                .bind(pair.expires_at_ms)
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                Ok(())
            }

            async fn oa_connection(&self) -> Result<OaConnection> {
                self.oa_connection_row().await
            }

            async fn save_connected_tokens(
                &self,
                pair: &zaloflow_core::token::TokenPair,
                oa_id: &str,
                now: i64,
            ) -> Result<()> {
                self.save_connected(pair, oa_id, now).await
            }

            async fn record_token_refresh(&self, at: i64, error: Option<&str>) -> Result<()> {
                self.record_refresh(at, error).await
            }

            async fn revoke_oa(
                &self,
                seen_at: i64,
                reason: &str,
                notice: &[NewJob],
                now: i64,
            ) -> Result<bool> {
                self.revoke(seen_at, reason, notice, now).await
            }

            async fn put_oauth_state(&self, state: &OauthState, now: i64) -> Result<()> {
                self.put_state(state, now).await
            }

            async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OauthState>> {
                self.take_state(state_hash).await
            }

            async fn get_or_create_secret(&self, name: &str, candidate: &str, now: i64) -> Result<String> {
                sqlx::query(
                    sql!($db, "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING"),
                )
                .bind(name)
                .bind(candidate)
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                let (v,): (String,) = sqlx::query_as(sql!($db, "SELECT value FROM app_secrets WHERE name = $1"))
                    .bind(name)
                    .fetch_one(writer!($db, self))
                    .await?;
                Ok(v)
            }
        }

        impl $store {
            pub(super) async fn oa_connection_row(&self) -> Result<OaConnection> {
                let row: Option<OaConnection> =
                    sqlx::query_as(sql!($db, format!("SELECT {COLUMNS} FROM oa_connection WHERE id = 1")))
                        .fetch_optional(reader!($db, self))
                        .await?;
                Ok(row.unwrap_or_default())
            }

            pub(super) async fn save_connected(
                &self,
                pair: &TokenPair,
                oa_id: &str,
                now: i64,
            ) -> Result<()> {
                begin_write!($db, self, tx);
                sqlx::query(
                    sql!($db, "INSERT INTO oa_tokens (id, access_token, refresh_token, expires_at, updated_at)
                     VALUES (1, $1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,
                        refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                        updated_at = excluded.updated_at"),
                )
                .bind(&pair.access_token)
                .bind(&pair.refresh_token)
                .bind(pair.expires_at_ms)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    sql!($db, "INSERT INTO oa_connection (id, oa_id, connected_at) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET oa_id = excluded.oa_id,
                        connected_at = excluded.connected_at, revoked_at = NULL, revoked_reason = NULL"),
                )
                .bind(oa_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn record_refresh(&self, at: i64, error: Option<&str>) -> Result<()> {
                sqlx::query(
                    sql!($db, "INSERT INTO oa_connection (id, last_refresh_at, last_refresh_error) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO UPDATE SET last_refresh_at = excluded.last_refresh_at,
                        last_refresh_error = excluded.last_refresh_error"),
                )
                .bind(at)
                .bind(error)
                .execute(writer!($db, self))
                .await?;
                Ok(())
            }

            pub(super) async fn revoke(
                &self,
                seen_at: i64,
                reason: &str,
                notice: &[NewJob],
                now: i64,
            ) -> Result<bool> {
                begin_write!($db, self, tx);
                sqlx::query(sql!($db, "INSERT INTO oa_connection (id) VALUES (1) ON CONFLICT (id) DO NOTHING"))
                    .execute(&mut *tx)
                    .await?;
                let changed = sqlx::query(
                    sql!($db, "UPDATE oa_connection SET revoked_at = $1, revoked_reason = $2
                     WHERE id = 1 AND revoked_at IS NULL AND (connected_at IS NULL OR connected_at <= $3)"),
                )
                .bind(now)
                .bind(reason)
                .bind(seen_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if changed {
                    insert_jobs(&mut tx, &notice.iter().collect::<Vec<_>>(), now).await?;
                }
                tx.commit().await?;
                Ok(changed)
            }

            pub(super) async fn put_state(&self, st: &OauthState, now: i64) -> Result<()> {
                begin_write!($db, self, tx);
                sqlx::query(sql!($db, "DELETE FROM oauth_states WHERE expires_at < $1"))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    sql!($db, "INSERT INTO oauth_states (state_hash, session_hash, code_verifier, expires_at)
                     VALUES ($1, $2, $3, $4)"),
                )
                .bind(&st.state_hash)
                .bind(&st.session_hash)
                .bind(&st.code_verifier)
                .bind(st.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn take_state(&self, state_hash: &str) -> Result<Option<OauthState>> {
                Ok(sqlx::query_as(
                    sql!($db, "DELETE FROM oauth_states WHERE state_hash = $1
                     RETURNING state_hash, session_hash, code_verifier, expires_at"),
                )
                .bind(state_hash)
                .fetch_optional(writer!($db, self))
                .await?)
            }
        }
    };
}
pub(crate) use oa_impl;

//! The OA's connection and OAuth flows on SQLite (migration 0013). Writes go through the one
//! writer; reads of the connection use the reader pool (the sender asks about once a second).

use super::{insert_jobs, SqliteStore};
use crate::{NewJob, OaConnection, OauthState, Result};
use zaloflow_core::token::TokenPair;

const COLUMNS: &str =
    "oa_id, connected_at, last_refresh_at, last_refresh_error, revoked_at, revoked_reason";

impl SqliteStore {
    pub(super) async fn oa_connection_row(&self) -> Result<OaConnection> {
        let row: Option<OaConnection> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM oa_connection WHERE id = 1"))
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.unwrap_or_default())
    }

    pub(super) async fn save_connected(
        &self,
        pair: &TokenPair,
        oa_id: &str,
        now: i64,
    ) -> Result<()> {
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        sqlx::query(
            "INSERT INTO oa_tokens (id, access_token, refresh_token, expires_at, updated_at)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET access_token = excluded.access_token,
                refresh_token = excluded.refresh_token, expires_at = excluded.expires_at,
                updated_at = excluded.updated_at",
        )
        .bind(&pair.access_token)
        .bind(&pair.refresh_token)
        .bind(pair.expires_at_ms)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO oa_connection (id, oa_id, connected_at) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET oa_id = excluded.oa_id,
                connected_at = excluded.connected_at, revoked_at = NULL, revoked_reason = NULL",
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
            "INSERT INTO oa_connection (id, last_refresh_at, last_refresh_error) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET last_refresh_at = excluded.last_refresh_at,
                last_refresh_error = excluded.last_refresh_error",
        )
        .bind(at)
        .bind(error)
        .execute(&mut *self.writer.lock().await?)
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
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        sqlx::query("INSERT INTO oa_connection (id) VALUES (1) ON CONFLICT (id) DO NOTHING")
            .execute(&mut *tx)
            .await?;
        let changed = sqlx::query(
            "UPDATE oa_connection SET revoked_at = ?1, revoked_reason = ?2
             WHERE id = 1 AND revoked_at IS NULL AND (connected_at IS NULL OR connected_at <= ?3)",
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
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < ?1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_states (state_hash, session_hash, code_verifier, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
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
            "DELETE FROM oauth_states WHERE state_hash = ?1
             RETURNING state_hash, session_hash, code_verifier, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&mut *self.writer.lock().await?)
        .await?)
    }
}

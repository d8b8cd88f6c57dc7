//! Agents' accounts and their board sessions (issue 30): an admin creates an agent with a name
//! and a password hash (the application hashes; the store never sees a password), the agent
//! signs in and gets a session, kept here only as the SHA-256 of its token with its expiry.
//!
//! A session counts while it has not expired and its agent is not disabled: the lookup joins
//! the agent, so disabling one ends every session at once. Revoking deletes them.
//!
//! An area of the store with a trait of its own ([`Agents`], a supertrait of
//! [`crate::Store`]): statements written once with `$N` placeholders, given to SQLite by the
//! dialect hooks; SQLite writes go through its one writer.

use async_trait::async_trait;
use serde::Serialize;

use crate::Result;

/// An agent's account as admins see it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Agent {
    #[schema(example = 1)]
    pub id: i64,
    /// The name the agent signs in with, and under which claims are recorded.
    #[schema(example = "Minh")]
    pub name: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When the account was disabled (null: active).
    pub disabled_at: Option<i64>,
    /// Sessions that are signed in now (not expired, not revoked).
    pub sessions: i64,
}

/// What signing in checks: the account's id, name, password hash and whether it is disabled.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentCredentials {
    pub id: i64,
    pub name: String,
    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub password_hash: String,
    pub disabled_at: Option<i64>,
}

/// The agent a live session belongs to.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionAgent {
    pub agent_id: i64,
    pub name: String,
    pub expires_at: i64,
}

#[async_trait]
pub trait Agents: Send + Sync {
    /// Creates agent `name`; None when the name is taken.
    async fn create_agent(
        &self,
        name: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<Agent>>;
    /// Every agent, by name, with the sessions live at `now`.
    async fn list_agents(&self, now: i64) -> Result<Vec<Agent>>;
    /// One agent, with the sessions live at `now`.
    async fn get_agent(&self, name: &str, now: i64) -> Result<Option<Agent>>;
    /// What signing in as `name` checks (None: no such agent).
    async fn agent_credentials(&self, name: &str) -> Result<Option<AgentCredentials>>;
    /// Disables agent `name` at `now` (kept if already disabled) and deletes its sessions;
    /// false when there is no such agent.
    async fn disable_agent(&self, name: &str, now: i64) -> Result<bool>;
    /// Enables agent `name` again; false when there is no such agent.
    async fn enable_agent(&self, name: &str, now: i64) -> Result<bool>;
    /// Replaces agent `name`'s password hash and deletes its sessions; false when there is
    /// no such agent.
    async fn set_agent_password(&self, name: &str, password_hash: &str, now: i64) -> Result<bool>;
    /// Deletes every session of agent `name`: how many; None when there is no such agent.
    async fn revoke_agent_sessions(&self, name: &str) -> Result<Option<u64>>;
    /// Records a session of `agent_id` by its token's SHA-256 (hex), valid until `expires_at`.
    async fn start_session(
        &self,
        agent_id: i64,
        token_sha256: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<()>;
    /// The agent of a session live at `now`: not expired, not revoked, its agent not disabled.
    async fn session_agent(&self, token_sha256: &str, now: i64) -> Result<Option<SessionAgent>>;
    /// Ends one session (signing out); false when it was not there.
    async fn end_session(&self, token_sha256: &str) -> Result<bool>;
    /// Deletes sessions expired by `now`: how many.
    async fn purge_sessions(&self, now: i64) -> Result<u64>;
}

const AGENT_COLUMNS: &str = "a.id, a.name, a.created_at, a.disabled_at,
  (SELECT COUNT(*) FROM agent_sessions s WHERE s.agent_id = a.id AND s.expires_at > $1
     AND a.disabled_at IS NULL) AS sessions";

/// Implements [`Agents`] for a backend (`sqlite` or `postgres`, for the dialect hooks).
macro_rules! agents_impl {
    ($store:ty, $db:ident) => {
        #[async_trait]
        impl Agents for $store {
            async fn create_agent(
                &self,
                name: &str,
                password_hash: &str,
                now: i64,
            ) -> Result<Option<Agent>> {
                let r = sqlx::query(sql!(
                    $db,
                    "INSERT INTO agents (name, password_hash, created_at, updated_at)
                     VALUES ($1, $2, $3, $3) ON CONFLICT (name) DO NOTHING"
                ))
                .bind(name)
                .bind(password_hash)
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                if r.rows_affected() == 0 {
                    return Ok(None);
                }
                self.get_agent(name, now).await
            }

            async fn list_agents(&self, now: i64) -> Result<Vec<Agent>> {
                let q = format!("SELECT {AGENT_COLUMNS} FROM agents a ORDER BY a.name");
                Ok(sqlx::query_as(sql!($db, q))
                    .bind(now)
                    .fetch_all(reader!($db, self))
                    .await?)
            }

            async fn get_agent(&self, name: &str, now: i64) -> Result<Option<Agent>> {
                let q = format!("SELECT {AGENT_COLUMNS} FROM agents a WHERE a.name = $2");
                Ok(sqlx::query_as(sql!($db, q))
                    .bind(now)
                    .bind(name)
                    .fetch_optional(reader!($db, self))
                    .await?)
            }

            async fn agent_credentials(&self, name: &str) -> Result<Option<AgentCredentials>> {
                Ok(sqlx::query_as(sql!(
                    $db,
                    "SELECT id, name, password_hash, disabled_at FROM agents WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(reader!($db, self))
                .await?)
            }

            async fn disable_agent(&self, name: &str, now: i64) -> Result<bool> {
                begin_write!($db, self, tx);
                let r = sqlx::query(sql!(
                    $db,
                    "UPDATE agents SET disabled_at = COALESCE(disabled_at, $2), updated_at = $2
                     WHERE name = $1"
                ))
                .bind(name)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sql!(
                    $db,
                    "DELETE FROM agent_sessions
                     WHERE agent_id IN (SELECT id FROM agents WHERE name = $1)"
                ))
                .bind(name)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            async fn enable_agent(&self, name: &str, now: i64) -> Result<bool> {
                let r = sqlx::query(sql!(
                    $db,
                    "UPDATE agents SET disabled_at = NULL, updated_at = $2 WHERE name = $1"
                ))
                .bind(name)
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn set_agent_password(
                &self,
                name: &str,
                password_hash: &str,
                now: i64,
            ) -> Result<bool> {
                begin_write!($db, self, tx);
                let r = sqlx::query(sql!(
                    $db,
                    "UPDATE agents SET password_hash = $2, updated_at = $3 WHERE name = $1"
                ))
                .bind(name)
                .bind(password_hash)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(sql!(
                    $db,
                    "DELETE FROM agent_sessions
                     WHERE agent_id IN (SELECT id FROM agents WHERE name = $1)"
                ))
                .bind(name)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(r.rows_affected() == 1)
            }

            async fn revoke_agent_sessions(&self, name: &str) -> Result<Option<u64>> {
                begin_write!($db, self, tx);
                let id: Option<(i64,)> =
                    sqlx::query_as(sql!($db, "SELECT id FROM agents WHERE name = $1"))
                        .bind(name)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((id,)) = id else {
                    return Ok(None);
                };
                let r = sqlx::query(sql!($db, "DELETE FROM agent_sessions WHERE agent_id = $1"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(r.rows_affected()))
            }

            async fn start_session(
                &self,
                agent_id: i64,
                token_sha256: &str,
                now: i64,
                expires_at: i64,
            ) -> Result<()> {
                sqlx::query(sql!(
                    $db,
                    "INSERT INTO agent_sessions (token_sha256, agent_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)"
                ))
                .bind(token_sha256)
                .bind(agent_id)
                .bind(now)
                .bind(expires_at)
                .execute(writer!($db, self))
                .await?;
                Ok(())
            }

            async fn session_agent(
                &self,
                token_sha256: &str,
                now: i64,
            ) -> Result<Option<SessionAgent>> {
                Ok(sqlx::query_as(sql!(
                    $db,
                    "SELECT a.id AS agent_id, a.name, s.expires_at
                     FROM agent_sessions s JOIN agents a ON a.id = s.agent_id
                     WHERE s.token_sha256 = $1 AND s.expires_at > $2 AND a.disabled_at IS NULL"
                ))
                .bind(token_sha256)
                .bind(now)
                .fetch_optional(reader!($db, self))
                .await?)
            }

            async fn end_session(&self, token_sha256: &str) -> Result<bool> {
                let r = sqlx::query(sql!(
                    $db,
                    "DELETE FROM agent_sessions WHERE token_sha256 = $1"
                ))
                .bind(token_sha256)
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected() == 1)
            }

            async fn purge_sessions(&self, now: i64) -> Result<u64> {
                let r = sqlx::query(sql!(
                    $db,
                    "DELETE FROM agent_sessions WHERE expires_at <= $1"
                ))
                .bind(now)
                .execute(writer!($db, self))
                .await?;
                Ok(r.rows_affected())
            }
        }
    };
}

agents_impl!(crate::sqlite::SqliteStore, sqlite);
agents_impl!(crate::postgres::PgStore, postgres);

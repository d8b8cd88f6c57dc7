//! `/admin/agents…`: agents' accounts (issue 30), for admins (bearer token; an agent's own
//! session is refused here like everywhere in the admin API outside the board). The CLI does
//! the same: `zaloflow agents add|list|disable|revoke NAME`.
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/agents` | `{"agents": […]}`: name, state, sessions signed in now |
//! | `POST /admin/agents` `{"name": "Minh", "password": "…"}` | 201 the agent; 409 name taken; 422 short password or bad name |
//! | `POST /admin/agents/{name}/disable` | 200 the agent, its sessions ended; 404 |
//! | `POST /admin/agents/{name}/revoke` | 200 how many sessions ended; 404 |
//! | `POST /admin/agents/{name}/enable` | 200 the agent, who may sign in again; 404 |
//! | `POST /admin/agents/{name}/password` `{"password": "…"}` | 200 the agent, its sessions ended; 422 short password; 404 |

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::agents::{self, AgentError};
use crate::http::AppState;
use crate::store::Agent;

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        match e {
            AgentError::BadName => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_name", e.to_string())
            }
            AgentError::ShortPassword | AgentError::LongPassword => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                e.to_string(),
            ),
            AgentError::NameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "name_taken", e.to_string())
            }
            AgentError::NotFound(_) => ApiError::not_found(e.to_string()),
            AgentError::Store(s) => s.into(),
            AgentError::Hash(m) => {
                tracing::error!(error = %m, "password hashing failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the password could not be hashed",
                )
            }
        }
    }
}

/// Every agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

/// A new agent: the name they sign in with and their password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Minh", "password": "mot-hai-ba-bon-nam"}))]
pub struct NewAgent {
    /// 1–80 characters; claims are recorded under it.
    #[schema(example = "Minh")]
    name: String,
    /// At least 10 characters; stored only as an Argon2id hash.
    #[schema(example = "mot-hai-ba-bon-nam")]
    password: String,
}

/// How many sessions a revocation ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    #[schema(example = "Minh")]
    pub agent: String,
    pub sessions_ended: u64,
}

/// Every agent's account, by name, with the sessions signed in now.
#[utoipa::path(
    get,
    path = "/admin/agents",
    tag = "agents",
    operation_id = "list_agents",
    responses((status = 200, description = "The agents", body = AgentList))
)]
pub async fn list(State(st): State<AppState>) -> Result<Json<AgentList>, ApiError> {
    let agents = st.store.list_agents(st.clock.now()).await?;
    Ok(Json(AgentList { agents }))
}

/// Creates an agent's account; they sign in to the board with this name and password.
#[utoipa::path(
    post,
    path = "/admin/agents",
    tag = "agents",
    operation_id = "create_agent",
    request_body = NewAgent,
    responses(
        (status = 201, description = "Created", body = Agent),
        (status = 409, description = "An agent of this name exists (`name_taken`)", body = ErrorBody),
        (status = 422, description = "A password under 10 characters (`weak_password`), a bad name (`bad_name`), or a member the body does not take (`invalid`)", body = ErrorBody),
    )
)]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(body): ApiJson<NewAgent>,
) -> Result<(StatusCode, Json<Agent>), ApiError> {
    let a = agents::create(&st.store, &body.name, &body.password, st.clock.now()).await?;
    tracing::info!(agent = %a.name, "agent created");
    Ok((StatusCode::CREATED, Json(a)))
}

/// Disables an agent: their sessions end at once and they cannot sign in.
#[utoipa::path(
    post,
    path = "/admin/agents/{name}/disable",
    tag = "agents",
    operation_id = "disable_agent",
    params(("name" = String, Path, description = "The agent's name", example = "Minh")),
    responses(
        (status = 200, description = "Disabled", body = Agent),
        (status = 404, description = "No such agent (`not_found`)", body = ErrorBody),
    )
)]
pub async fn disable(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    let now = st.clock.now();
    if !st.store.disable_agent(&name, now).await? {
        return Err(AgentError::NotFound(name).into());
    }
    tracing::info!(agent = %name, "agent disabled");
    let a = st.store.get_agent(&name, now).await?;
    a.map(Json).ok_or_else(|| AgentError::NotFound(name).into())
}

/// Ends every session of an agent (they sign in again).
#[utoipa::path(
    post,
    path = "/admin/agents/{name}/revoke",
    tag = "agents",
    operation_id = "revoke_agent_sessions",
    params(("name" = String, Path, description = "The agent's name", example = "Minh")),
    responses(
        (status = 200, description = "Sessions ended", body = Revoked),
        (status = 404, description = "No such agent (`not_found`)", body = ErrorBody),
    )
)]
pub async fn revoke(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Revoked>, ApiError> {
    match st.store.revoke_agent_sessions(&name).await? {
        Some(n) => {
            tracing::info!(agent = %name, sessions = n, "agent sessions revoked");
            Ok(Json(Revoked {
                agent: name,
                sessions_ended: n,
            }))
        }
        None => Err(AgentError::NotFound(name).into()),
    }
}

/// Enables a disabled agent again: they may sign in.
#[utoipa::path(
    post,
    path = "/admin/agents/{name}/enable",
    tag = "agents",
    operation_id = "enable_agent",
    params(("name" = String, Path, description = "The agent's name", example = "Minh")),
    responses(
        (status = 200, description = "Enabled", body = Agent),
        (status = 404, description = "No such agent (`not_found`)", body = ErrorBody),
    )
)]
pub async fn enable(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Agent>, ApiError> {
    let now = st.clock.now();
    if !st.store.enable_agent(&name, now).await? {
        return Err(AgentError::NotFound(name).into());
    }
    tracing::info!(agent = %name, "agent enabled");
    let a = st.store.get_agent(&name, now).await?;
    a.map(Json).ok_or_else(|| AgentError::NotFound(name).into())
}

/// An agent's new password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"password": "sau-bay-tam-chin-muoi"}))]
pub struct NewPassword {
    /// At least 10 characters; stored only as an Argon2id hash.
    #[schema(example = "sau-bay-tam-chin-muoi")]
    password: String,
}

/// Gives an agent a new password; their sessions end (they sign in with the new one).
#[utoipa::path(
    post,
    path = "/admin/agents/{name}/password",
    tag = "agents",
    operation_id = "set_agent_password",
    params(("name" = String, Path, description = "The agent's name", example = "Minh")),
    request_body = NewPassword,
    responses(
        (status = 200, description = "The new password is set", body = Agent),
        (status = 404, description = "No such agent (`not_found`)", body = ErrorBody),
        (status = 422, description = "A password under 10 characters (`weak_password`), or a member the body does not take (`invalid`)", body = ErrorBody),
    )
)]
pub async fn password(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<NewPassword>,
) -> Result<Json<Agent>, ApiError> {
    let now = st.clock.now();
    agents::set_password(&st.store, &name, &body.password, now).await?;
    tracing::info!(agent = %name, "agent password changed");
    let a = st.store.get_agent(&name, now).await?;
    a.map(Json).ok_or_else(|| AgentError::NotFound(name).into())
}

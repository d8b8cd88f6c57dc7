//! `/admin/contacts/sync`: start a follower sync (the same as `zaloflow contacts sync`) and
//! see how far it is. The run itself is done by the instance that holds the OA (the
//! `zalo-sender` lease), page by page through the rate limiter; see docs/contacts-sync.md.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiError;
use crate::http::AppState;
use crate::store::ContactSync;

/// The latest sync run, if any.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncState {
    /// `null` before the first run.
    pub run: Option<ContactSync>,
}

/// A started (or joined) sync run.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncStarted {
    pub run: ContactSync,
    /// False when a run was already under way: this request joined it.
    pub started: bool,
}

/// The state of the latest follower sync: its list (`followers`, then `others`, the users Zalo
/// lists as not following), cursor, counts and last error.
#[utoipa::path(
    get,
    path = "/admin/contacts/sync",
    tag = "contacts",
    operation_id = "contacts_sync_state",
    responses((status = 200, description = "The latest run", body = SyncState))
)]
pub async fn state(State(st): State<AppState>) -> Result<Json<SyncState>, ApiError> {
    Ok(Json(SyncState {
        run: st.store.contact_sync().await?,
    }))
}

/// Starts reading the OA's followers from Zalo into the contacts (names, follow status, last
/// interaction, tags), or joins the run under way. Answers at once; follow it with `GET`.
#[utoipa::path(
    post,
    path = "/admin/contacts/sync",
    tag = "contacts",
    operation_id = "start_contacts_sync",
    responses(
        (status = 202, description = "The run, started or joined", body = SyncStarted),
    )
)]
pub async fn start(
    State(st): State<AppState>,
) -> Result<(StatusCode, Json<SyncStarted>), ApiError> {
    let (run, started) = st.store.start_contact_sync("admin", st.clock.now()).await?;
    if started {
        tracing::info!(run = run.id, "contacts sync started by an operator");
    }
    Ok((StatusCode::ACCEPTED, Json(SyncStarted { run, started })))
}

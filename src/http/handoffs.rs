//! `/admin/handoffs…`: handoffs as JSON for tools and reports, and claim/resolve with an
//! agent's name (bearer token, like the rest of the admin API).
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/handoffs?status=open,claimed&limit=100&days=30` | `{"handoffs": […], "summary": {…}}`: met/missed, time to first human response p50/p90, open by age |
//! | `GET /admin/handoffs/{id}` | the handoff with its messages and breaches |
//! | `POST /admin/handoffs/{id}/claim` `{"agent": "Minh"}` | 200 the handoff; 409 claimed by someone else or resolved; 404 |
//! | `POST /admin/handoffs/{id}/resolve` `{"agent": "Minh"}` | 200 the handoff; 409 already resolved; 404 |

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::admin::{require_token, ApiError};
use super::AppState;
use crate::handoff::{self, report, Handoff, HandoffUpdate};

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/handoffs", get(list))
        .route("/admin/handoffs/{id}", get(show))
        .route("/admin/handoffs/{id}/claim", post(claim))
        .route("/admin/handoffs/{id}/resolve", post(resolve))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// The statuses a `status=` filter may name (comma-separated); `active` = open and claimed.
fn parse_statuses(s: Option<&str>) -> Result<Vec<&'static str>, ApiError> {
    let mut out = Vec::new();
    for part in s.unwrap_or("").split(',').map(str::trim) {
        match part {
            "" => {}
            "open" => out.push(handoff::OPEN),
            "claimed" => out.push(handoff::CLAIMED),
            "resolved" => out.push(handoff::RESOLVED),
            "active" => out.extend([handoff::OPEN, handoff::CLAIMED]),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_status",
                    "status must be open, claimed, resolved or active (comma-separated)",
                ))
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<i64>,
    /// The summary covers handoffs opened in the last `days` days (and every unresolved one).
    days: Option<i64>,
}

async fn list(
    State(st): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let statuses = parse_statuses(q.status.as_deref())?;
    let now = st.clock.now();
    let handoffs = st
        .store
        .list_handoffs(&statuses, q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let since = now - q.days.unwrap_or(30).clamp(1, 3660) * 86_400_000;
    let summary = report::summarize(&st.store.handoff_timings(since).await?, now);
    let board = handoff::board_url(&st.config);
    Ok(Json(json!({
        "handoffs": handoffs.iter().map(|h| h.to_json(&board, now)).collect::<Vec<_>>(),
        "summary": summary,
    })))
}

async fn show(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let h = st
        .store
        .get_handoff(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no handoff {id}")))?;
    let messages = st.store.handoff_messages(id).await?;
    let breaches = st.store.handoff_breaches(id).await?;
    let mut v = h.to_json(&handoff::board_url(&st.config), st.clock.now());
    v["messages"] = json!(messages);
    v["breaches"] = json!(breaches);
    Ok(Json(v))
}

#[derive(Deserialize)]
pub struct AgentBody {
    agent: Option<String>,
}

async fn claim(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let agent = agent_name(agent_from_body(&body)?.as_deref())?;
    let h = take(&st, id, &agent, Take::Claim).await?;
    Ok(Json(
        h.to_json(&handoff::board_url(&st.config), st.clock.now()),
    ))
}

async fn resolve(
    State(st): State<AppState>,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let agent = agent_name(agent_from_body(&body)?.as_deref())?;
    let h = take(&st, id, &agent, Take::Resolve).await?;
    Ok(Json(
        h.to_json(&handoff::board_url(&st.config), st.clock.now()),
    ))
}

/// `{"agent": "…"}` (an empty body names nobody).
fn agent_from_body(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<AgentBody>(body)
        .map(|b| b.agent)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body must be JSON like {{\"agent\": \"Minh\"}}: {e}"),
            )
        })
}

/// A person's name as given: trimmed, 1–80 characters, no control characters.
pub fn agent_name(raw: Option<&str>) -> Result<String, ApiError> {
    let a = raw.unwrap_or("").trim();
    if a.is_empty() || a.chars().count() > 80 || a.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_agent",
            "give the agent's name: {\"agent\": \"…\"} (1–80 characters)",
        ));
    }
    Ok(a.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    Claim,
    Resolve,
}

/// Claims or resolves for `agent`: the handoff after it, 404, or 409 with the reason. Claiming
/// again what one already holds is fine.
pub async fn take(st: &AppState, id: i64, agent: &str, what: Take) -> Result<Handoff, ApiError> {
    let now = st.clock.now();
    let update = match what {
        Take::Claim => st.store.claim_handoff(id, agent, now).await?,
        Take::Resolve => st.store.resolve_handoff(id, agent, now).await?,
    };
    match update {
        HandoffUpdate::Updated {
            handoff,
            first_response,
        } => {
            if first_response {
                handoff::record_first_response(&handoff);
            }
            tracing::info!(handoff = id, agent, action = ?what, user = %handoff.user_id, "handoff taken");
            Ok(handoff)
        }
        HandoffUpdate::Unchanged(h) => match what {
            Take::Claim
                if h.status == handoff::CLAIMED && h.claimed_by.as_deref() == Some(agent) =>
            {
                Ok(h)
            }
            Take::Claim if h.status == handoff::CLAIMED => Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_claimed",
                format!(
                    "handoff {id} is claimed by {}",
                    h.claimed_by.as_deref().unwrap_or("someone")
                ),
            )),
            _ => Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_resolved",
                format!(
                    "handoff {id} was resolved by {}",
                    h.resolved_by.as_deref().unwrap_or("someone")
                ),
            )),
        },
        HandoffUpdate::NotFound => Err(ApiError::not_found(format!("no handoff {id}"))),
    }
}

/// Gauges read at scrape time: unresolved handoffs by age.
pub async fn scrape_gauges(st: &AppState) {
    let now = st.clock.now();
    // `since` in the future: only the unresolved ones.
    if let Ok(Ok(rows)) = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        st.store.handoff_timings(i64::MAX),
    )
    .await
    {
        let s = report::summarize(&rows, now);
        for b in &s.open_by_age {
            metrics::gauge!("zaloflow_handoffs_open", "age" => b.age).set(b.count as f64);
        }
        let overdue = rows
            .iter()
            .filter(|r| r.responded_at.is_none() && now > r.deadline_at)
            .count();
        metrics::gauge!("zaloflow_handoffs_overdue").set(overdue as f64);
    }
}

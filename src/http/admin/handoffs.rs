//! `/admin/handoffs…`: handoffs as JSON for tools and reports, and claim/resolve with an
//! agent's name (bearer token, like the rest of the admin API; documented in the OpenAPI
//! description with the other admin routes).
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/handoffs?status=open,claimed&limit=100&days=30` | `{"handoffs": […], "summary": {…}}`: met/missed, time to first human response p50/p90, open by age |
//! | `GET /admin/handoffs/{id}` | the handoff with its messages and breaches |
//! | `POST /admin/handoffs/{id}/claim` `{"agent": "Minh"}` | 200 the handoff; 409 claimed by someone else or resolved; 404 |
//! | `POST /admin/handoffs/{id}/resolve` `{"agent": "Minh"}` | 200 the handoff; 409 already resolved; 404 |

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::handoff::{self, timing, Breach, Handoff, HandoffMessageRow, HandoffUpdate, Links};
use crate::http::AppState;

/// A handoff as the API shows it: the stored handoff, its deadline's state and the agents' links.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandoffView {
    #[serde(flatten)]
    pub handoff: Handoff,
    /// `normal`, `high` or `urgent`.
    pub priority_name: String,
    /// Whether the deadline was met; null while it is still running.
    pub deadline_met: Option<bool>,
    /// Milliseconds until the deadline (negative: overdue); null once answered or resolved.
    pub time_left_ms: Option<i64>,
    /// The board's page to claim it.
    pub claim_url: String,
    /// The board's page to resolve it.
    pub resolve_url: String,
}

impl HandoffView {
    pub fn new(h: Handoff, board_url: &str, now: i64) -> HandoffView {
        let links = Links::new(board_url, h.id);
        HandoffView {
            priority_name: handoff::priority_name(h.priority).to_string(),
            deadline_met: h.met(now),
            time_left_ms: (h.status != handoff::RESOLVED && h.responded_at.is_none())
                .then_some(h.deadline_at - now),
            claim_url: links.claim,
            resolve_url: links.resolve,
            handoff: h,
        }
    }

    fn of(st: &AppState, h: Handoff) -> HandoffView {
        HandoffView::new(h, &st.config.board_url(), st.clock.now())
    }
}

/// A handoff with the customer's messages, the agents' replies and the breaches.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoffDetail {
    pub handoff: HandoffView,
    /// `in` from the customer, `out` an agent's reply in the OA, in order.
    pub messages: Vec<HandoffMessageRow>,
    pub breaches: Vec<Breach>,
}

/// Handoffs, most urgent first, and a summary of the period.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandoffPage {
    pub handoffs: Vec<HandoffView>,
    pub summary: timing::Summary,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HandoffQuery {
    /// `open`, `claimed`, `resolved` or `active` (open and claimed), comma-separated; all when
    /// absent.
    #[param(example = "active")]
    status: Option<String>,
    /// How many handoffs: 1–1000 (default 100).
    limit: Option<i64>,
    /// The summary covers handoffs opened in the last `days` days (1–3660, default 30) and
    /// every unresolved one.
    days: Option<i64>,
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

/// Handoffs, most urgent first, with met/missed deadlines and response times of the period.
#[utoipa::path(
    get,
    path = "/admin/handoffs",
    tag = "handoffs",
    operation_id = "list_handoffs",
    params(HandoffQuery),
    responses(
        (status = 200, description = "Handoffs and the summary", body = HandoffPage),
        (status = 400, description = "Unknown status, limit or days out of range (`bad_status`, `bad_query`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<HandoffQuery>,
) -> Result<Json<HandoffPage>, ApiError> {
    let statuses = parse_statuses(q.status.as_deref())?;
    let limit = page_limit(q.limit, 100, 1000)?;
    let days = match q.days {
        None => 30,
        Some(d) if (1..=3660).contains(&d) => d,
        Some(d) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("days must be between 1 and 3660 (got {d})"),
            ))
        }
    };
    let now = st.clock.now();
    let handoffs = st.store.list_handoffs(&statuses, limit).await?;
    let summary = timing::summarize(
        &st.store.handoff_timings(now - days * 86_400_000).await?,
        now,
    );
    Ok(Json(HandoffPage {
        handoffs: handoffs
            .into_iter()
            .map(|h| HandoffView::of(&st, h))
            .collect(),
        summary,
    }))
}

/// One handoff with its messages and breaches.
#[utoipa::path(
    get,
    path = "/admin/handoffs/{id}",
    tag = "handoffs",
    operation_id = "get_handoff",
    params(("id" = i64, Path, description = "Handoff id", example = 1)),
    responses(
        (status = 200, description = "The handoff", body = HandoffDetail),
        (status = 404, description = "No such handoff (`not_found`)", body = ErrorBody),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<HandoffDetail>, ApiError> {
    let h = st
        .store
        .get_handoff(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no handoff {id}")))?;
    let messages = st.store.handoff_messages(id).await?;
    let breaches = st.store.handoff_breaches(id).await?;
    Ok(Json(HandoffDetail {
        handoff: HandoffView::of(&st, h),
        messages,
        breaches,
    }))
}

/// Who takes or closes a handoff.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"agent": "Minh"}))]
pub struct AgentBody {
    /// The agent's name, 1–80 characters.
    #[schema(example = "Minh")]
    agent: Option<String>,
}

/// An agent takes the handoff (its first human response if none came before).
#[utoipa::path(
    post,
    path = "/admin/handoffs/{id}/claim",
    tag = "handoffs",
    operation_id = "claim_handoff",
    params(("id" = i64, Path, description = "Handoff id", example = 1)),
    request_body = AgentBody,
    responses(
        (status = 200, description = "Claimed (or already claimed by this agent)", body = HandoffView),
        (status = 400, description = "No agent name (`bad_agent`), or not JSON (`bad_json`)", body = ErrorBody),
        (status = 404, description = "No such handoff (`not_found`)", body = ErrorBody),
        (status = 409, description = "Claimed by someone else (`already_claimed`) or resolved (`already_resolved`)", body = ErrorBody),
        (status = 422, description = "A member the body does not take (`invalid`)", body = ErrorBody),
    )
)]
pub async fn claim(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<Json<HandoffView>, ApiError> {
    take_as(&st, id, body, Take::Claim).await
}

/// An agent closes the handoff.
#[utoipa::path(
    post,
    path = "/admin/handoffs/{id}/resolve",
    tag = "handoffs",
    operation_id = "resolve_handoff",
    params(("id" = i64, Path, description = "Handoff id", example = 1)),
    request_body = AgentBody,
    responses(
        (status = 200, description = "Resolved", body = HandoffView),
        (status = 400, description = "No agent name (`bad_agent`), or not JSON (`bad_json`)", body = ErrorBody),
        (status = 404, description = "No such handoff (`not_found`)", body = ErrorBody),
        (status = 409, description = "Already resolved (`already_resolved`)", body = ErrorBody),
        (status = 422, description = "A member the body does not take (`invalid`)", body = ErrorBody),
    )
)]
pub async fn resolve(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AgentBody>,
) -> Result<Json<HandoffView>, ApiError> {
    take_as(&st, id, body, Take::Resolve).await
}

async fn take_as(
    st: &AppState,
    id: i64,
    body: AgentBody,
    what: Take,
) -> Result<Json<HandoffView>, ApiError> {
    let agent = agent_name(body.agent.as_deref())?;
    let h = take(st, id, &agent, what).await?;
    Ok(Json(HandoffView::of(st, h)))
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
            st.board_live.poke();
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
        let s = timing::summarize(&rows, now);
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

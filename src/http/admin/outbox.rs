//! `/admin/outbox…`: outbound jobs, their counts, and dead letters sent back to the queue.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, ApiError, ApiPath, ApiQuery, ErrorBody};
use crate::http::AppState;
use crate::store::Job;

const STATUSES: &[&str] = &["pending", "sending", "sent", "dead", "skipped"];

/// One outbound job.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    #[schema(example = 1)]
    pub id: i64,
    /// `zalo`, `sms`, `email`, `zns`, `chat` or `task`.
    #[schema(example = "zalo")]
    pub channel: String,
    /// Who it goes to (a Zalo user id, a phone, an email); empty for staff notifications.
    pub user_id: String,
    /// What is sent, tagged by `channel` (e.g. `{"channel":"zalo","user_id":"…","text":"…"}`).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Higher first (VIP).
    pub priority: i32,
    pub first_due: i64,
    /// The next attempt.
    pub run_at: i64,
    /// `pending`, `sending`, `sent`, `dead` or `skipped`.
    #[schema(example = "dead")]
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    /// Zalo's error code, the HTTP status or the SMTP reply code of the last failure.
    pub last_code: Option<i64>,
    /// The provider's id of what was sent (Zalo message id, ZNS msg id…).
    pub provider_id: Option<String>,
    /// The rule that caused it.
    pub rule_id: Option<String>,
    /// What caused it (`inbox:42`, `tick:…`, `admin`).
    pub source: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// The A/B variant of the rule's send action, if it had variants.
    pub variant: Option<String>,
    /// Why it was skipped (status `skipped`): `not_configured`, … (`last_error` says it in
    /// words, with the setting to fix).
    pub skip_reason: Option<String>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            payload: serde_json::from_str(&j.payload)
                .unwrap_or(serde_json::Value::String(j.payload)),
            id: j.id,
            channel: j.channel,
            user_id: j.user_id,
            priority: j.priority,
            first_due: j.first_due,
            run_at: j.run_at,
            status: j.status,
            attempts: j.attempts,
            last_error: j.last_error,
            last_code: j.last_code,
            provider_id: j.provider_id,
            rule_id: j.rule_id,
            source: j.source,
            created_at: j.created_at,
            sent_at: j.sent_at,
            variant: j.variant,
            skip_reason: j.skip_reason,
        }
    }
}

/// A job as the API shows it: the payload as JSON, not a string.
pub fn job_json(j: &Job) -> serde_json::Value {
    serde_json::to_value(JobView::from(j.clone())).unwrap_or_default()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// Only jobs in this state: `pending`, `sending`, `sent`, `dead` or `skipped` (not attempted:
    /// the reason is in `last_error`, e.g. a channel that is not configured).
    #[param(example = "dead")]
    status: Option<String>,
    /// How many jobs, newest first: 1–1000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobCount {
    pub channel: String,
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxPage {
    /// Newest first.
    pub jobs: Vec<JobView>,
    /// Every job in the table, by channel and status.
    pub counts: Vec<JobCount>,
}

/// Outbound jobs, newest first, with counts by channel and status.
#[utoipa::path(
    get,
    path = "/admin/outbox",
    tag = "outbox",
    operation_id = "list_outbox",
    params(OutboxQuery),
    responses(
        (status = 200, description = "Jobs and counts", body = OutboxPage),
        (status = 400, description = "Unknown status or limit out of range (`bad_status`, `bad_query`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<Json<OutboxPage>, ApiError> {
    if let Some(s) = q.status.as_deref() {
        if !STATUSES.contains(&s) {
            return Err(ApiError::bad_request(
                "bad_status",
                "status must be one of pending, sending, sent, dead",
            ));
        }
    }
    let limit = page_limit(q.limit, 100, 1000)?;
    let jobs = st.store.list_jobs(q.status.as_deref(), limit).await?;
    let counts = st.store.job_counts().await?;
    Ok(Json(OutboxPage {
        jobs: jobs.into_iter().map(JobView::from).collect(),
        counts: counts
            .into_iter()
            .map(|(channel, status, count)| JobCount {
                channel,
                status,
                count,
            })
            .collect(),
    }))
}

/// One job.
#[utoipa::path(
    get,
    path = "/admin/outbox/{id}",
    tag = "outbox",
    operation_id = "get_job",
    params(("id" = i64, Path, description = "Job id", example = 1)),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job (`not_found`)", body = ErrorBody),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobView>, ApiError> {
    let job = st
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(job.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub ok: bool,
    pub id: i64,
}

/// Sends a dead letter back to the queue (its attempts start again).
#[utoipa::path(
    post,
    path = "/admin/outbox/{id}/retry",
    tag = "outbox",
    operation_id = "retry_job",
    params(("id" = i64, Path, description = "Id of a dead job", example = 1)),
    responses(
        (status = 200, description = "Back in the queue", body = Retried),
        (status = 404, description = "No such job (`not_found`)", body = ErrorBody),
        (status = 409, description = "The job is not a dead letter (`not_dead`)", body = ErrorBody),
    )
)]
pub async fn retry(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Retried>, ApiError> {
    let now = st.clock.now();
    if st.store.retry_dead_job(id, now).await? {
        st.jobs_enqueued.notify_one();
        tracing::info!(
            job = id,
            "dead letter sent back to the queue by an operator"
        );
        Ok(Json(Retried { ok: true, id }))
    } else if st.store.get_job(id).await?.is_some() {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_dead",
            format!("job {id} is not a dead letter"),
        ))
    } else {
        Err(ApiError::not_found(format!("no job {id}")))
    }
}

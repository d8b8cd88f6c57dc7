//! `/admin/...`: the operator's API, behind `Authorization: Bearer $ZALOFLOW_ADMIN_TOKEN`
//! (compared in constant time). Errors are JSON: `{"error": {"code": "...", "message": "..."}}`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;

/// An admin API error with a stable JSON shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "admin API storage error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the database is unavailable",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/outbox", get(list_outbox))
        .route("/admin/outbox/{id}", get(get_job))
        .route("/admin/outbox/{id}/retry", post(retry_job))
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// Refuses requests without the right bearer token; the API is off when no token is set.
pub async fn require_token(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = st.config.admin_token.as_ref() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is disabled: set ZALOFLOW_ADMIN_TOKEN",
        )
        .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response()
    }
}

#[derive(Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
    limit: Option<i64>,
}

async fn list_outbox(
    State(st): State<AppState>,
    Query(q): Query<OutboxQuery>,
) -> Result<impl IntoResponse, ApiError> {
    if let Some(s) = q.status.as_deref() {
        if !["pending", "sending", "sent", "dead"].contains(&s) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_status",
                "status must be one of pending, sending, sent, dead",
            ));
        }
    }
    let jobs = st
        .store
        .list_jobs(q.status.as_deref(), q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let counts = st.store.job_counts().await?;
    Ok(Json(json!({
        "jobs": jobs.iter().map(job_json).collect::<Vec<_>>(),
        "counts": counts.iter().map(|(c, s, n)| json!({"channel": c, "status": s, "count": n})).collect::<Vec<_>>(),
    })))
}

async fn get_job(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let job = st
        .store
        .get_job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    Ok(Json(job_json(&job)))
}

async fn retry_job(
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let now = crate::clock::system_now();
    if st.store.retry_dead_job(id, now).await? {
        st.jobs_enqueued.notify_one();
        tracing::info!(
            job = id,
            "dead letter sent back to the queue by an operator"
        );
        Ok(Json(json!({"ok": true, "id": id})))
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

/// A job as the API shows it: the payload as JSON, not a string.
pub fn job_json(j: &crate::store::Job) -> serde_json::Value {
    let mut v = serde_json::to_value(j).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        let payload = serde_json::from_str::<serde_json::Value>(&j.payload).unwrap_or_default();
        obj.insert("payload".into(), payload);
    }
    v
}

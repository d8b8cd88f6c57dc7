//! The HTTP surface: the Zalo webhook, health and metrics, the admin API, and the public
//! form and email-tracking routes.

pub use zaloflow_core::html::esc;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Config;
use crate::inbox::Intake;
use crate::store::DynStore;

pub mod admin;
pub mod board;
pub mod connect;
pub mod forms;
pub mod health;
pub mod live;
pub mod public;
pub mod server;
pub mod signin;
pub mod tracking;
pub mod webhook;

/// Zalo's webhook body limit (CONTRACT.md): larger bodies get 413.
pub const MAX_BODY: usize = 1024 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: DynStore,
    pub intake: Intake,
    pub metrics: Option<PrometheusHandle>,
    /// Wakes the outbox sender (a dead letter sent back, a job enqueued by the API).
    pub jobs_enqueued: std::sync::Arc<tokio::sync::Notify>,
    /// The running rules (None: no rules folder).
    pub rules: Option<std::sync::Arc<crate::rules::RuleWatcher>>,
    /// Who is a VIP (their webhooks are stored with VIP priority).
    pub vip: crate::handoff::VipSet,
    /// The service's clock (the system clock, or the demo's scripted one).
    pub clock: crate::clock::Clock,
    /// The agents' board's live updates (server-sent events).
    pub board_live: live::BoardLive,
    /// Forecasts run in the background (`/admin/forecasts`).
    pub forecasts: std::sync::Arc<admin::forecast_runs::ForecastRuns>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/webhooks/zalo", post(webhook::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .merge(admin::router(state.clone()))
        .merge(board::router())
        .merge(signin::router())
        .merge(connect::router())
        .merge(public::router(state.clone()))
        // Agents' sessions: resolved on /admin paths, kept to the board (signin.rs).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            signin::gate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(10),
        ))
        .with_state(state)
}

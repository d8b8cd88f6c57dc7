use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers and rules are loaded; the body says which rules run and
/// whether a broken change on disk is being ignored (the last good rules keep running), and
/// the running rules' hygiene warnings (`path:line:col: warning: message`). Rule actions whose
/// channel is not configured are listed as `findings`, and the OA's connection as `zalo_oa`;
/// either makes the service ready but `degraded` (still 200: webhooks keep being stored).
pub async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let rules = st.rules.as_ref().map(|w| {
        let s = w.status();
        json!({
            "dir": s.dir.display().to_string(),
            "rules": s.rules,
            "files": s.files,
            "loaded_at": s.loaded_at,
            "reloads": s.reloads,
            "pending_errors": s.errors,
            "warnings": s.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    });
    // Rule actions whose channel is not configured: ready, but degraded (they are skipped).
    let findings: Vec<String> = st
        .rules
        .as_ref()
        .map(|w| {
            w.status()
                .findings
                .iter()
                .map(ToString::to_string)
                .collect()
        })
        .unwrap_or_default();
    let db = match tokio::time::timeout(std::time::Duration::from_secs(2), st.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timeout".to_string()),
    };
    let zalo_oa = super::connect::readyz_part(&st).await;
    let degraded = !findings.is_empty() || zalo_oa["state"] == "needs_reconnect";
    match db {
        Ok(()) => (
            StatusCode::OK,
            Json(
                json!({"ready": true, "degraded": degraded, "findings": findings, "database": "ok", "rules": rules, "zalo_oa": zalo_oa}),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"ready": false, "degraded": degraded, "findings": findings, "database": e, "rules": rules, "zalo_oa": zalo_oa}),
            ),
        ),
    }
}

/// Prometheus text. The inbox depth is read at scrape time.
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Ok(Ok(s)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), st.store.inbox_stats()).await
    {
        metrics::gauge!("zaloflow_inbox_depth").set(s.pending as f64);
        metrics::gauge!("zaloflow_inbox_failed").set(s.failed as f64);
    }
    if let Ok(Ok(counts)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), st.store.job_counts()).await
    {
        for (channel, status, n) in counts {
            if status != "sent" {
                metrics::gauge!("zaloflow_outbox_jobs", "channel" => channel, "status" => status)
                    .set(n as f64);
            }
        }
    }
    super::admin::handoffs::scrape_gauges(&st).await;
    if let Ok(Ok(c)) =
        tokio::time::timeout(std::time::Duration::from_secs(2), st.store.oa_connection()).await
    {
        metrics::gauge!("zaloflow_zalo_oa_needs_reconnect")
            .set(f64::from(u8::from(c.needs_reconnect())));
    }
    let body = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

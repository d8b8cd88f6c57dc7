//! `/admin/report`: effectiveness per rule, campaign step and A/B variant (issue 10), as JSON;
//! and `/admin/report.html`, the same as a page with a small chart per rule.
//!
//! The page takes the admin bearer token, or a session cookie set from it: open
//! `/admin/report.html?token=…` once and the page sets an HttpOnly, SameSite=Strict cookie
//! holding an HMAC of the token (never the token itself), for this page and the forecast page
//! (`forecast_page.rs`), then redirects to the bare URL.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{AppendHeaders, Html, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use utoipa::IntoParams;

use super::{ApiError, ApiQuery, ErrorBody};
use crate::http::AppState;
use crate::report::Report;

/// Where the page is served.
pub const PAGE_PATH: &str = "/admin/report.html";
const COOKIE: &str = "zf_report";
const SESSION_SECONDS: i64 = 12 * 3600;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// From this date (midnight in the OA's time zone) or RFC 3339 instant; default: everything.
    #[param(example = "2026-01-01")]
    since: Option<String>,
    /// Only this rule, or this campaign and its steps.
    #[param(example = "welcome")]
    rule: Option<String>,
}

fn since_ms(st: &AppState, since: Option<&str>) -> Result<i64, ApiError> {
    match since.filter(|s| !s.is_empty()) {
        None => Ok(0),
        Some(s) => crate::report::parse_since(s, st.config.tz)
            .map_err(|e| ApiError::bad_request("bad_since", e.to_string())),
    }
}

/// Per rule, campaign step and A/B variant: firings, sends, dead letters by reason, Zalo
/// delivery and seen receipts, replies within 24 h, returns within 7 days, clicks, VIP
/// handoff deadlines; and each variant compared with the first (two-proportion z-test).
#[utoipa::path(
    get,
    path = "/admin/report",
    tag = "report",
    operation_id = "effectiveness_report",
    params(ReportQuery),
    responses(
        (status = 200, description = "The report", body = Report),
        (status = 400, description = "`since` is not a date or RFC 3339 time (`bad_since`)", body = ErrorBody),
    )
)]
pub async fn report(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> Result<Json<Report>, ApiError> {
    let since = since_ms(&st, q.since.as_deref())?;
    let rule = q.rule.as_deref().filter(|r| !r.is_empty());
    let r = crate::report::make(&st.store, since, rule, st.clock.now(), st.config.tz).await?;
    Ok(Json(r))
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    since: Option<String>,
    rule: Option<String>,
    token: Option<String>,
}

/// Whether the request carries the admin token (`Authorization: Bearer`) or the session cookie
/// the report page sets (it opens the forecast page too); `None` when no admin token is set.
pub(super) fn granted(st: &AppState, headers: &HeaderMap) -> Option<bool> {
    use crate::http::board::{cookies, ct_eq, session_value};
    let token = st.config.admin_token.as_ref()?;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer.is_some_and(|b| ct_eq(b, token.expose())) {
        return Some(true);
    }
    let session = session_value(token.expose());
    Some(
        cookies(headers)
            .get(COOKIE)
            .is_some_and(|c| ct_eq(c, &session)),
    )
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let text = crate::http::esc(text);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title></head><body><h1>{title}</h1><p>{text}</p></body></html>"
    );
    (status, Html(body)).into_response()
}

/// `GET /admin/report.html`: the report as a page.
pub async fn report_page(
    State(st): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let Some(token) = st.config.admin_token.as_ref() else {
        return page(
            StatusCode::FORBIDDEN,
            "Report disabled",
            "Set ZALOFLOW_ADMIN_TOKEN to use the admin pages.",
        );
    };
    if let Some(given) = q.token.as_deref() {
        if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
            let secure = if st.config.public_url.starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            // The session is this page's and the forecast page's (which a browser would not
            // send it to otherwise): one cookie per path, no wider.
            let cookie = |path: &str| {
                format!(
                    "{COOKIE}={}; Path={path}; Max-Age={SESSION_SECONDS}; HttpOnly; SameSite=Strict{secure}",
                    crate::http::board::session_value(token.expose())
                )
            };
            return (
                StatusCode::SEE_OTHER,
                AppendHeaders([
                    (header::SET_COOKIE, cookie(PAGE_PATH)),
                    (header::SET_COOKIE, cookie(super::forecast_page::PAGE_PATH)),
                ]),
                [(header::LOCATION, PAGE_PATH.to_string())],
            )
                .into_response();
        }
        return page(
            StatusCode::UNAUTHORIZED,
            "Wrong token",
            "The token is not right.",
        );
    }
    if granted(&st, &headers) != Some(true) {
        return page(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "Open this page once as /admin/report.html?token=YOUR_ADMIN_TOKEN.",
        );
    }
    let since = match since_ms(&st, q.since.as_deref()) {
        Ok(s) => s,
        Err(e) => return page(StatusCode::BAD_REQUEST, "Bad date", &e.message),
    };
    let rule = q.rule.as_deref().filter(|r| !r.is_empty());
    match crate::report::make(&st.store, since, rule, st.clock.now(), st.config.tz).await {
        Ok(r) => {
            let mut resp = Html(crate::report::render::html(
                &r,
                st.config.tz,
                st.config.lang,
            ))
            .into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "report page: storage error");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The database is unavailable.",
            )
        }
    }
}

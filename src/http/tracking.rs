//! `GET /t/o/{token}` (email open pixel) and `GET /t/c/{token}` (click redirect); tokens are
//! made and checked in [`crate::tracking`].
//!
//! - The pixel always answers a 1×1 transparent GIF (also for a bad token, a storage failure,
//!   or over the rate limit — then with 429), never cached. A valid token records a
//!   `zaloflow.email_opened` event, `prefetch: true` when a machine fetched it (a `HEAD`, a
//!   security scanner or script, Apple Mail Privacy Protection: [`crate::tracking::AGENTS`]).
//!   Tokens are opaque ids resolved against the outbox ([`crate::tracking::resolve`]).
//! - The click redirects (302) only to the URL inside a valid token and records a
//!   `zaloflow.email_clicked` event, and an open (a click is an open), not for link scanners,
//!   which are still redirected. Any other token — tampered, unsigned, an open token, a link
//!   the email does not have — answers 404 with no `Location`; query parameters such as
//!   `?url=` are never read.
//!
//! Recording is best effort: once a token is resolved, a click is never refused because the
//! event cannot be stored. Resolving an opaque token reads its email from the database: while
//! that is unavailable, a click answers 503 with `Retry-After` (old v1 tokens need no lookup).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::public::{retry_after, ClientIp, Public};
use crate::store::NewInboxEvent;
use crate::tracking::{self, Resolved, TokenKind};
use crate::zalo::event::{internal_body, EventKind};

/// The smallest transparent 1×1 GIF.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

const NO_STORE: &str = "no-store, no-cache, must-revalidate, private, max-age=0";

fn pixel(status: StatusCode) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/gif")),
            (header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE)),
        ],
        PIXEL_GIF,
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE))],
        "link not found",
    )
        .into_response()
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// A valid token of `kind` resolved on the server, or `None` (logged at debug: bad tokens
/// are noise, not news). `Err` when the key or the store is unavailable.
async fn resolve(p: &Public, token: &str, kind: TokenKind) -> Result<Option<Resolved>, ()> {
    let key = match p.tracking_key().await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "tracking key unavailable");
            return Err(());
        }
    };
    let t = match tracking::read(key, token, kind) {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "tracking token refused");
            return Ok(None);
        }
    };
    tracking::resolve(&p.app.store, t).await.map_err(|e| {
        tracing::warn!(error = %e, "tracking token not resolved: storage unavailable");
    })
}

async fn record(p: &Public, kind: EventKind, dedupe_key: String, contact_id: &str) {
    let now = p.app.clock.now();
    let Some((name, body)) = internal_body(&kind, now) else {
        return;
    };
    let event = NewInboxEvent {
        dedupe_key,
        event_name: name.to_string(),
        user_id: contact_id.to_string(),
        priority: 0,
        body,
        event_ts: Some(now),
        received_at: now,
    };
    if let Err(e) = p.app.intake.submit(event).await {
        tracing::warn!(error = %e, event = name, "tracking event not stored");
        metrics::counter!("zaloflow_tracking_total", "outcome" => "unavailable").increment(1);
    }
}

#[tracing::instrument(skip_all)]
pub async fn open(
    State(p): State<Arc<Public>>,
    ip: ClientIp,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if p.tracking_limit.check(ip.bucket()).is_err() {
        metrics::counter!("zaloflow_tracking_total", "outcome" => "rate_limited").increment(1);
        return pixel(StatusCode::TOO_MANY_REQUESTS);
    }
    let Ok(Some(c)) = resolve(&p, &token, TokenKind::Open).await else {
        metrics::counter!("zaloflow_tracking_total", "outcome" => "bad_token").increment(1);
        return pixel(StatusCode::OK);
    };
    let why = tracking::classify_open(method == Method::HEAD, user_agent(&headers), ip.0);
    let prefetch = why.is_some();
    tracing::debug!(job = c.job_id, ?why, "email opened");
    let label = if prefetch { "open_prefetch" } else { "open" };
    metrics::counter!("zaloflow_tracking_total", "outcome" => label).increment(1);
    let key = tracking::open_dedupe_key(c.job_id, &c.contact_id, prefetch);
    let kind = EventKind::EmailOpened {
        contact_id: c.contact_id.clone(),
        job_id: c.job_id,
        prefetch,
    };
    record(&p, kind, key, &c.contact_id).await;
    pixel(StatusCode::OK)
}

#[tracing::instrument(skip_all)]
pub async fn click(
    State(p): State<Arc<Public>>,
    ip: ClientIp,
    method: Method,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    if let Err(wait) = p.tracking_limit.check(ip.bucket()) {
        metrics::counter!("zaloflow_tracking_total", "outcome" => "rate_limited").increment(1);
        let mut r = (StatusCode::TOO_MANY_REQUESTS, "too many requests").into_response();
        if let Ok(v) = retry_after(wait).parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    let c = match resolve(&p, &token, TokenKind::Click).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            metrics::counter!("zaloflow_tracking_total", "outcome" => "bad_token").increment(1);
            return not_found();
        }
        Err(()) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                "try again in a moment",
            )
                .into_response()
        }
    };
    // Only absolute http(s) URLs of the email the service sent (or signed, for old tokens); a
    // value that is not a valid header (it would have to hold control characters) is refused.
    let Some(target) = c
        .url
        .as_deref()
        .filter(|u| tracking::is_http_url(u))
        .and_then(|u| HeaderValue::from_str(u).ok())
    else {
        return not_found();
    };
    if tracking::classify_click(method == Method::HEAD, user_agent(&headers)).is_some() {
        metrics::counter!("zaloflow_tracking_total", "outcome" => "click_scanner").increment(1);
    } else {
        metrics::counter!("zaloflow_tracking_total", "outcome" => "click").increment(1);
        // A click is an open: the person's open is recorded first (a duplicate when they
        // opened already), so `email_opened` rules and "not opened" see it.
        let open = EventKind::EmailOpened {
            contact_id: c.contact_id.clone(),
            job_id: c.job_id,
            prefetch: false,
        };
        let key = tracking::open_dedupe_key(c.job_id, &c.contact_id, false);
        record(&p, open, key, &c.contact_id).await;
        let url = c.url.clone().unwrap_or_default();
        let key = tracking::click_dedupe_key(c.job_id, &c.contact_id, &url);
        let kind = EventKind::EmailClicked {
            contact_id: c.contact_id.clone(),
            job_id: c.job_id,
            url,
            link: c.link.clone(),
        };
        record(&p, kind, key, &c.contact_id).await;
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, target),
            (header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE)),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
    )
        .into_response()
}

//! The public routes anyone on the internet may call — form registrations and email
//! tracking — and what they share: a per-client-IP rate limit (one bucket per route family, so
//! a burst of email opens from one office cannot block its sign-ups), the client's address,
//! and the tracking key.
//!
//! The client's address is the TCP peer, or — behind a proxy that sets it, such as Fly.io —
//! the header named by `ZALOFLOW_CLIENT_IP_HEADER` (`Fly-Client-IP`; for `X-Forwarded-For` the
//! last address, the one the proxy added). IPv6 clients are limited per /64.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::OnceCell;

use super::{forms, tracking, AppState};
use crate::tracking::TrackingKey;

/// Form bodies are small; anything larger is refused with 413.
pub const MAX_FORM_BODY: usize = 64 * 1024;

/// One per-IP limiter.
pub struct IpLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
}

impl IpLimiter {
    /// `per_minute` requests per minute and IP, in a burst of as many (0 = no limit).
    pub fn new(per_minute: u32) -> Self {
        IpLimiter {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(wait)` when `ip` is over its limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        // Forget idle clients now and then, so the table does not grow without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            l.retain_recent();
            l.shrink_to_fit();
        }
        l.check_key(&ip)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// State of the public routes.
pub struct Public {
    pub app: AppState,
    pub forms_limit: IpLimiter,
    pub tracking_limit: IpLimiter,
    key: OnceCell<TrackingKey>,
}

impl Public {
    pub fn new(app: AppState) -> Arc<Self> {
        let rate = app.config.public_rate_per_minute;
        Arc::new(Public {
            app,
            forms_limit: IpLimiter::new(rate),
            tracking_limit: IpLimiter::new(rate),
            key: OnceCell::new(),
        })
    }

    /// The tracking key, loaded on first use (it may live in the database).
    pub async fn tracking_key(&self) -> crate::store::Result<&TrackingKey> {
        self.key
            .get_or_try_init(|| {
                TrackingKey::load(
                    self.app.config.tracking_key(),
                    &self.app.store,
                    self.app.clock.now(),
                )
            })
            .await
    }
}

pub fn router(app: AppState) -> Router<AppState> {
    let public = Public::new(app);
    Router::new()
        .route("/forms/{form}", post(forms::submit))
        .route("/t/o/{token}", get(tracking::open))
        .route("/t/c/{token}", get(tracking::click))
        .layer(DefaultBodyLimit::max(MAX_FORM_BODY))
        .with_state(public)
}

/// The client's address (see the module docs); `None` when it cannot be told.
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The rate-limit key: IPv6 addresses by their /64, unknown clients share one bucket.
    pub fn bucket(&self) -> IpAddr {
        match self.0 {
            Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            Some(IpAddr::V6(v6)) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
            Some(ip) => ip,
            None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        }
    }
}

impl FromRequestParts<Arc<Public>> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Public>,
    ) -> Result<Self, Self::Rejection> {
        if let Some(h) = &state.app.config.client_ip_header {
            let from_header = parts
                .headers
                .get(h.as_str())
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            if from_header.is_some() {
                return Ok(ClientIp(from_header));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer))
    }
}

/// `Retry-After` in whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> String {
    wait.as_secs().max(1).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_past_the_burst_per_ip() {
        let l = IpLimiter::new(3);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(l.check(b).is_ok());
        let off = IpLimiter::new(0);
        for _ in 0..1000 {
            assert!(off.check(a).is_ok());
        }
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let x = ClientIp(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let y = ClientIp(Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        assert_eq!(x.bucket(), y.bucket());
        let m = ClientIp(Some("::ffff:203.0.113.7".parse().unwrap()));
        assert_eq!(m.bucket(), "203.0.113.7".parse::<IpAddr>().unwrap());
    }
}

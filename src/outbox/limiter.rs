//! The rate limit of outbound Zalo OA calls (`governor`, GCRA with no burst: calls are spaced
//! evenly, so no one-second window ever holds more than the per-second rate). Several
//! instances share one limit because only the holder of the `zalo-sender` lease makes OA calls.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[derive(Clone, Default)]
pub struct Limiter {
    per_second: Option<Arc<DefaultDirectRateLimiter>>,
    per_minute: Option<Arc<DefaultDirectRateLimiter>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("per_second", &self.per_second.is_some())
            .field("per_minute", &self.per_minute.is_some())
            .finish()
    }
}

impl Limiter {
    /// `0` turns a limit off. Calls are spaced 0.5 % wider than the rate strictly needs, so
    /// that jitter on the way cannot put one call too many into a one-second window.
    pub fn new(per_second: u32, per_minute: u32) -> Limiter {
        Limiter {
            per_second: spaced(per_second, 1.0),
            per_minute: spaced(per_minute, 60.0),
        }
    }

    pub fn unlimited() -> Limiter {
        Limiter::default()
    }

    /// Waits for a slot under both limits.
    pub async fn until_ready(&self) {
        if let Some(m) = &self.per_minute {
            m.until_ready().await;
        }
        if let Some(s) = &self.per_second {
            s.until_ready().await;
        }
    }
}

fn spaced(rate: u32, window_secs: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate = NonZeroU32::new(rate)?;
    let period = Duration::from_secs_f64(window_secs / f64::from(rate.get()) * 1.005);
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::direct(quota)))
}

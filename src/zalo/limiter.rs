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
    /// The start times of the last `rate` calls: a call may start only when the oldest of them
    /// is more than a second (plus a margin for jitter on the way) old. GCRA spaces calls
    /// evenly; this makes "never more than the rate in any one-second window" hold at the
    /// receiver too, whatever the scheduler does.
    window: Option<Arc<Window>>,
}

struct Window {
    rate: usize,
    /// Oldest first: `None` while that call is in flight, else when it finished.
    slots: std::sync::Mutex<std::collections::VecDeque<(u64, Option<tokio::time::Instant>)>>,
    next_id: std::sync::atomic::AtomicU64,
    finished: tokio::sync::Notify,
}

/// Holds one call's place in the window; finishing (or dropping) it stamps when the call ended.
pub struct Permit {
    window: Option<(Arc<Window>, u64)>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some((w, id)) = self.window.take() {
            let now = tokio::time::Instant::now();
            let mut slots = w.slots.lock().expect("limiter lock");
            if let Some(slot) = slots.iter_mut().find(|(i, _)| *i == id) {
                slot.1 = Some(now);
            }
            drop(slots);
            w.finished.notify_waiters();
        }
    }
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
            window: (per_second > 0).then(|| {
                Arc::new(Window {
                    rate: per_second as usize,
                    slots: std::sync::Mutex::new(std::collections::VecDeque::new()),
                    next_id: std::sync::atomic::AtomicU64::new(0),
                    finished: tokio::sync::Notify::new(),
                })
            }),
        }
    }

    /// The per-second rate (None: no per-second limit).
    pub fn per_second(&self) -> Option<usize> {
        self.window.as_ref().map(|w| w.rate)
    }

    pub fn unlimited() -> Limiter {
        Limiter::default()
    }

    /// Waits for the next evenly spaced start under the per-second and per-minute rates, without
    /// taking a place in the window: for the call repeated after a token refresh, made while
    /// its first call's permit is still held (waiting for a window place there could wait on
    /// itself).
    pub async fn pace(&self) {
        if let Some(m) = &self.per_minute {
            m.until_ready().await;
        }
        if let Some(s) = &self.per_second {
            s.until_ready().await;
        }
    }

    /// Waits for a slot under every limit. Keep the permit until the call has returned: a new
    /// call starts only once the call `rate` places before it ended a full second ago, so no
    /// one-second window at the receiver can hold more than `rate` calls, whatever the delays
    /// on the way.
    pub async fn acquire(&self) -> Permit {
        if let Some(m) = &self.per_minute {
            m.until_ready().await;
        }
        if let Some(s) = &self.per_second {
            s.until_ready().await;
        }
        let Some(w) = &self.window else {
            return Permit { window: None };
        };
        loop {
            let notified = w.finished.notified();
            let wait = {
                let mut slots = w.slots.lock().expect("limiter lock");
                let now = tokio::time::Instant::now();
                match slots.front() {
                    Some((_, Some(ended)))
                        if slots.len() >= w.rate && now < *ended + Duration::from_secs(1) =>
                    {
                        Some(*ended + Duration::from_secs(1))
                    }
                    Some((_, None)) if slots.len() >= w.rate => None,
                    _ => {
                        if slots.len() >= w.rate {
                            slots.pop_front();
                        }
                        let id = w.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        slots.push_back((id, None));
                        return Permit {
                            window: Some((w.clone(), id)),
                        };
                    }
                }
            };
            match wait {
                Some(at) => tokio::time::sleep_until(at).await,
                None => notified.await,
            }
        }
    }
}

fn spaced(rate: u32, window_secs: f64) -> Option<Arc<DefaultDirectRateLimiter>> {
    let rate = NonZeroU32::new(rate)?;
    let period = Duration::from_secs_f64(window_secs / f64::from(rate.get()) * 1.005);
    let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::MIN);
    Some(Arc::new(RateLimiter::direct(quota)))
}

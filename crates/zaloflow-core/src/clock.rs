//! "Now" as a parameter: functions that decide take `now`; only the edge reads the clock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

const FOLLOW_SYSTEM: Millis = Millis::MIN;

/// The system clock, or a fixed/scripted one (tests, `tick --at`, the demo's week).
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Clock(None)
    }
    pub fn fixed(at: Millis) -> Self {
        Clock(Some(Arc::new(AtomicI64::new(at))))
    }
    pub fn now(&self) -> Millis {
        match &self.0 {
            None => system_now(),
            Some(t) => match t.load(Ordering::SeqCst) {
                FOLLOW_SYSTEM => system_now(),
                at => at,
            },
        }
    }

    /// A fixed clock goes back to following the system clock (the demo, once its scripted
    /// week is over).
    pub fn follow_system(&self) {
        if let Some(t) = &self.0 {
            t.store(FOLLOW_SYSTEM, Ordering::SeqCst);
        }
    }
    pub fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        to_utc(self.now())
    }
    /// Moves a fixed clock (no effect on the system clock).
    pub fn set(&self, at: Millis) {
        if let Some(t) = &self.0 {
            t.store(at, Ordering::SeqCst);
        }
    }
}

pub fn system_now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn to_utc(ms: Millis) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

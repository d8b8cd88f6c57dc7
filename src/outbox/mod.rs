//! The outbox: every send is a job, claimed with a lease, attempted, and its outcome recorded —
//! sent, retried later with jittered backoff, or dead-lettered with its reason.
//!
//! Delivery guarantee: an attempt is marked (attempts + 1, lease) before the call and its outcome
//! is recorded after it. A job is sent once in normal operation; only a crash between the call
//! leaving and its outcome being committed makes it go out again (at least once, never lost).

pub mod limiter;
pub mod retry;
pub mod sender;

pub use limiter::Limiter;
pub use retry::RetryPolicy;
pub use sender::{EmailTracking, HeldLease, Sender, SenderOptions, Summary};

use crate::channels::Payload;
use crate::store::NewJob;

/// A job for `payload`, due at `run_at`. Customer-facing sends keep their order per user;
/// staff notifications (chat, task) have no lane.
pub fn job(payload: &Payload, run_at: i64, source: impl Into<String>) -> NewJob {
    let user_id = match payload {
        Payload::Zalo { user_id, .. } | Payload::ZaloTag { user_id, .. } => user_id.clone(),
        Payload::Sms { to, .. } => to.clone(),
        Payload::Email { to, .. } => to.clone(),
        Payload::Zns { phone, .. } => phone.clone(),
        Payload::Chat { .. } | Payload::Task { .. } => String::new(),
    };
    NewJob {
        channel: payload.channel_name().to_string(),
        user_id,
        payload: serde_json::to_string(payload).expect("payload serialises"),
        priority: 0,
        run_at,
        rule_id: None,
        source: source.into(),
        dedupe_key: None,
        variant: None,
    }
}

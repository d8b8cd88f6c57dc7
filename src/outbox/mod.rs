//! The outbox: every send is a job, claimed with a lease, attempted, and its outcome recorded —
//! sent, retried later with jittered backoff, or dead-lettered with its reason.
//!
//! Delivery guarantee: an attempt is marked (attempts + 1, lease) before the call and its outcome
//! is recorded after it. A job is sent once in normal operation; only a crash between the call
//! leaving and its outcome being committed makes it go out again (at least once, never lost).

pub mod cost;
pub mod oa;
pub mod retry;
pub mod sender;
pub mod sink;

pub use crate::zalo::limiter::Limiter;
pub use retry::RetryPolicy;
pub use sender::{EmailTracking, HeldLease, Sender, SenderOptions, Summary};

pub use zaloflow_core::job::job;

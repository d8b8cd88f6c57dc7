//! Everything Zalo-specific: the webhook signature, typed events.

pub mod event;
pub mod signature;

//! Everything Zalo-specific: the webhook signature, typed events, the Open API client and tokens.

pub mod client;
pub mod connect;
pub mod event;
pub mod limiter;
pub mod signature;
pub mod stored_tokens;
pub mod token;

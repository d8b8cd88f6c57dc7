//! Everything Zalo-specific: the webhook signature, typed events, the Open API client and tokens.

pub mod client;
pub mod event;
pub mod signature;
pub mod token;

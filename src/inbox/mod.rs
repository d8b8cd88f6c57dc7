//! The inbox: verified deliveries are stored durably (group commit) before Zalo gets its 200,
//! then processed in arrival order per user by a background worker.

pub mod intake;
pub mod processor;

pub use intake::{Handed, Intake, IntakeError, Relay, RelayQueue};
pub use processor::Processor;

//! zaloflow's domain, below every other part: plain data and the decisions made on it.
//!
//! No I/O, no `async`, no database: the store (`zaloflow-store`) and the application build on
//! these types, and Cargo keeps this crate from importing either.

pub mod clock;
pub mod cost;
pub mod handoff;
pub mod html;
pub mod job;
pub mod outcome;
pub mod token;
pub mod variant;

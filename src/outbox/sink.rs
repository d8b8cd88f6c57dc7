//! Where a forecast's copy keeps the jobs it would send, instead of its store's outbox
//! (issue 28): the inbox processor and the scheduler hand it the jobs of the effects they
//! apply. A send's cycle through the outbox table (insert, claim, price, record, read back)
//! was most of a forecast's time; the copy's sends are decided in memory by the same cost
//! guard (`forecast::outbox`). `serve` and `tick` have no sink.

use zaloflow_core::handoff::HandoffChange;

use crate::store::{Completion, ContactChange, Effects, NewJob};

pub trait JobSink: Send + Sync {
    /// Whether the sink keeps this job; the others go to the store's outbox as usual.
    fn keeps(&self, job: &NewJob) -> bool;
    /// Jobs kept, in the order they were made, applied at `now`.
    fn add(&self, jobs: Vec<NewJob>, now: i64);
    /// Contact changes applied (a send's class depends on the user's last interaction).
    fn saw(&self, changes: &[ContactChange]);
    /// Whether a Zalo message with this text to the user is kept and not sent yet: an echo of
    /// the OA's message that matches it is one of ours, as the store tells of its own jobs.
    fn in_flight(&self, user_id: &str, text: Option<&str>) -> bool;
}

/// Takes the jobs the sink keeps out of `effects` and gives them back; the sink sees the
/// effects' contact changes first.
pub fn take_jobs(sink: &dyn JobSink, effects: &mut Effects) -> Vec<NewJob> {
    sink.saw(&effects.contacts);
    let (kept, rest) = std::mem::take(&mut effects.jobs)
        .into_iter()
        .partition(|j| sink.keeps(j));
    effects.jobs = rest;
    kept
}

/// What processed events' effects give the sink (if any), event by event: an agent's reply
/// that echoes a kept job in flight is left out (the store leaves out the echo of one of its
/// own jobs), then the kept jobs are taken and added at once, so a later echo finds them.
pub fn divert_events(sink: Option<&dyn JobSink>, done: &mut [Completion], now: i64) {
    let Some(sink) = sink else { return };
    for c in done {
        divert_event(sink, &mut c.effects, now);
    }
}

fn divert_event(sink: &dyn JobSink, effects: &mut Effects, now: i64) {
    effects.handoffs.retain(|h| match h {
        HandoffChange::AgentReply {
            user_id, message, ..
        } => !sink.in_flight(user_id, message.text.as_deref()),
        _ => true,
    });
    let kept = take_jobs(sink, effects);
    if !kept.is_empty() {
        sink.add(kept, now);
    }
}

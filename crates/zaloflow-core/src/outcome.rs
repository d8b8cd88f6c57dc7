//! What happened after a send, as signals the store credits to the send (delivered, seen,
//! replied, came back, clicked).

use serde::{Deserialize, Serialize};

/// A reply within this long after a send counts as a reply to it.
pub const REPLY_WINDOW_MS: i64 = 24 * 3_600_000;

/// A user writing within this long after a send "came back" (re-activation).
pub const COME_BACK_WINDOW_MS: i64 = 7 * 24 * 3_600_000;

/// What happened after a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    Delivered,
    Seen,
    Replied,
    CameBack,
    Clicked,
}

impl OutcomeKind {
    pub const ALL: [OutcomeKind; 5] = [
        OutcomeKind::Delivered,
        OutcomeKind::Seen,
        OutcomeKind::Replied,
        OutcomeKind::CameBack,
        OutcomeKind::Clicked,
    ];

    /// The name stored in `send_outcomes.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Delivered => "delivered",
            OutcomeKind::Seen => "seen",
            OutcomeKind::Replied => "replied",
            OutcomeKind::CameBack => "came_back",
            OutcomeKind::Clicked => "clicked",
        }
    }
}

/// What one event tells about earlier sends; the store finds the send(s) it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeSignal {
    /// Zalo reports these messages (by the `message_id` it gave our sends) delivered or seen.
    Receipt {
        kind: OutcomeKind,
        provider_ids: Vec<String>,
        at: i64,
    },
    /// A person opened (seen) or clicked in the email of this outbox job.
    Job {
        kind: OutcomeKind,
        job_id: i64,
        at: i64,
    },
    /// The user wrote to the OA at `at`: the latest send to them within 24 h was replied to,
    /// and the latest within 7 days brought them back.
    Wrote { user_id: String, at: i64 },
    /// A campaign step ran (`campaign/step`): a firing kept for reports only (a step has no
    /// limits, so it is not in `Effects::fires`).
    Fired { rule_id: String, at: i64 },
}

/// The firing id that records when a contact last ran a campaign's first step on a
/// registration (entry or accepted repeat): what `repeat_cooldown` measures from.
pub fn registration_mark(campaign: &str) -> String {
    format!("{campaign}#registration")
}

/// Whether a firing id is a [`registration_mark`] (not a rule: reports leave it out).
pub fn is_registration_mark(rule_id: &str) -> bool {
    rule_id.ends_with("#registration")
}

//! Handoff rows as the store returns them.

/// A stored handoff to people, with its deadline.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Handoff {
    #[schema(example = 1)]
    pub id: i64,
    /// The contact (Zalo user id).
    pub user_id: String,
    /// The contact's name when it opened.
    pub contact_name: Option<String>,
    /// `open`, `claimed` or `resolved`.
    #[schema(example = "open")]
    pub status: String,
    /// 0 normal, 1 high, 2 urgent.
    pub priority: i32,
    pub team: Option<String>,
    /// The contact's dedicated advisor, told first.
    pub advisor: Option<String>,
    /// The rule that opened it.
    pub rule_id: Option<String>,
    pub note: Option<String>,
    pub opened_at: i64,
    /// When a person must have answered.
    pub deadline_at: i64,
    /// What the customer wrote first.
    pub first_text: Option<String>,
    /// Customer messages on it.
    pub messages: i32,
    pub last_message_at: Option<i64>,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<i64>,
    /// The first human response: an agent's name (claim/resolve) or the OA admin id.
    pub responded_by: Option<String>,
    pub responded_at: Option<i64>,
    /// `oa`, `claim` or `resolve`.
    pub response_via: Option<String>,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<i64>,
    /// 0: not escalated; 1: the deadline breach was escalated; 2: second level.
    pub escalation_level: i32,
    /// What opened it (`inbox:42`, `tick:…`).
    pub source: String,
    pub updated_at: i64,
}

pub const HANDOFF_COLUMNS: &str = "id, user_id, contact_name, status, priority, team, advisor, rule_id, note, opened_at, deadline_at, first_text, messages, last_message_at, claimed_by, claimed_at, responded_by, responded_at, response_via, resolved_by, resolved_at, escalation_level, source, updated_at";

impl Handoff {
    /// Whether the deadline was met (None while it is still running).
    pub fn met(&self, now: i64) -> Option<bool> {
        match self.responded_at {
            Some(t) => Some(t <= self.deadline_at),
            None if now > self.deadline_at => Some(false),
            None => None,
        }
    }
}

/// A message on a handoff: `in` from the customer, `out` an agent's reply in the OA.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct HandoffMessageRow {
    pub handoff_id: i64,
    pub direction: String,
    pub msg_id: Option<String>,
    pub text: Option<String>,
    pub admin_id: Option<String>,
    pub at: i64,
}

/// A missed deadline (level 1) or its second escalation (level 2).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Breach {
    pub handoff_id: i64,
    pub level: i32,
    /// When this level became due (the deadline, or the deadline plus the second delay).
    pub due_at: i64,
    pub recorded_at: i64,
    pub channel: Option<String>,
}

/// The outcome of a claim or resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffUpdate {
    /// Done; `first_response` when this was the first human response (the deadline's end).
    Updated {
        handoff: Handoff,
        first_response: bool,
    },
    /// Nothing to do (already resolved, or claimed by someone else): the handoff as it is.
    Unchanged(Handoff),
    NotFound,
}

/// What applying handoff changes did, for metrics recorded after the commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandoffOutcomes {
    pub opened: u64,
    pub attached: u64,
    pub first_responses: Vec<Handoff>,
    /// OA echoes recognised as our own sends.
    pub own_echoes: u64,
}

impl HandoffOutcomes {
    pub fn record(&self) {
        if self.opened > 0 {
            metrics::counter!("zaloflow_handoffs_opened_total").increment(self.opened);
        }
        for h in &self.first_responses {
            record_first_response(h);
        }
    }
}

/// Metrics of a first human response: the time it took and whether the deadline held. A
/// response after an escalation was already counted as missed when it was escalated.
pub fn record_first_response(h: &Handoff) {
    let Some(at) = h.responded_at else { return };
    let secs = (at - h.opened_at).max(0) as f64 / 1000.0;
    metrics::histogram!("zaloflow_handoff_first_response_seconds").record(secs);
    if at <= h.deadline_at {
        metrics::counter!("zaloflow_handoff_deadlines_total", "outcome" => "met").increment(1);
    } else if h.escalation_level == 0 {
        metrics::counter!("zaloflow_handoff_deadlines_total", "outcome" => "missed").increment(1);
    }
}

/// What a report needs of one handoff.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HandoffTiming {
    pub status: String,
    pub opened_at: i64,
    pub deadline_at: i64,
    pub responded_at: Option<i64>,
}

//! Handoffs to people as the engine asks for them: what to open, the message to attach, the
//! notices to send once the store knows the handoff's id.

use serde_json::{json, Value};

use crate::job::{job, NewJob, Payload};

/// Waiting for a person.
/// Jobs of contacts tagged `vip_customer` go first.
pub const VIP_TAG: &str = "vip_customer";
pub const VIP_PRIORITY: i32 = 10;

pub const OPEN: &str = "open";

/// A person took it (claim on the board or the API).
pub const CLAIMED: &str = "claimed";

pub const RESOLVED: &str = "resolved";

/// How a handoff's deadline was met (`response_via`).
pub const VIA_OA: &str = "oa";

pub const VIA_CLAIM: &str = "claim";

pub const VIA_RESOLVE: &str = "resolve";

/// One customer message (or agent reply) on a handoff.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HandoffMessage {
    pub msg_id: Option<String>,
    pub text: Option<String>,
    pub at: i64,
}

/// A handoff to open — or, when the contact already has one open, a message to attach to it
/// (the store decides, atomically).
#[derive(Debug, Clone, PartialEq)]
pub struct NewHandoff {
    pub user_id: String,
    /// The contact's name when it opened (for notifications and the board).
    pub contact_name: Option<String>,
    pub priority: i32,
    pub team: Option<String>,
    pub advisor: Option<String>,
    pub rule_id: Option<String>,
    pub note: Option<String>,
    pub opened_at: i64,
    pub deadline_at: i64,
    /// What the customer wrote (None when a scheduler trigger opened it).
    pub message: Option<HandoffMessage>,
    /// Sent only if a new handoff opens; they learn its id from the store.
    pub notices: Vec<Notice>,
    pub source: String,
}

/// A team-chat notification about a handoff whose id is not known yet: the store renders it
/// with [`Notice::job`] once the row exists, in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// A configured chat channel; None: the default chat webhook.
    pub channel: Option<String>,
    pub text: String,
    pub data: Value,
    pub priority: i32,
    pub run_at: i64,
    pub rule_id: Option<String>,
    pub source: String,
    /// `…/admin/board` (from `ZALOFLOW_PUBLIC_URL`).
    pub board_url: String,
    /// The words before the claim and resolve links, in the staff's language
    /// (`👉 Nhận xử lý`, `✅ Đã xong`).
    pub link_labels: [String; 2],
}

impl Notice {
    /// The outbox job for handoff `id`: the text with its claim and resolve links.
    pub fn job(&self, id: i64) -> NewJob {
        let l = Links::new(&self.board_url, id);
        let [claim, resolve] = &self.link_labels;
        let text = format!(
            "{}\n{claim}: {}\n{resolve}: {}",
            self.text, l.claim, l.resolve
        );
        let mut data = self.data.clone();
        if let Some(obj) = data.as_object_mut() {
            obj.insert("handoff".into(), json!(id));
            obj.insert("claim_url".into(), json!(l.claim));
            obj.insert("resolve_url".into(), json!(l.resolve));
            obj.insert("board_url".into(), json!(l.board));
        }
        let payload = Payload::Chat {
            channel: self.channel.clone(),
            text,
            data,
        };
        NewJob {
            priority: self.priority,
            rule_id: self.rule_id.clone(),
            ..job(&payload, self.run_at, self.source.clone())
        }
    }
}

/// The board's pages for one handoff (GET pages with a button: chat apps open links to
/// preview them, so following a link never changes anything by itself).
pub struct Links {
    pub board: String,
    pub claim: String,
    pub resolve: String,
}

impl Links {
    pub fn new(board_url: &str, id: i64) -> Links {
        Links {
            board: format!("{board_url}#h{id}"),
            claim: format!("{board_url}/handoffs/{id}/claim"),
            resolve: format!("{board_url}/handoffs/{id}/resolve"),
        }
    }
}

/// What an event or a rule does to handoffs, applied with the event's other effects.
#[derive(Debug, Clone, PartialEq)]
pub enum HandoffChange {
    /// Open a handoff, or attach the message to the contact's open one.
    Open(Box<NewHandoff>),
    /// A customer message: attached to the contact's open handoff, if there is one.
    Message {
        user_id: String,
        message: HandoffMessage,
    },
    /// A reply sent by a person in the OA console (`oa_send_*` with `sender.admin_id`). It
    /// meets the deadline of the contact's open handoff unless it is one of our own sends
    /// (see [`is_own_send`]).
    AgentReply {
        user_id: String,
        admin_id: String,
        message: HandoffMessage,
    },
}

impl HandoffChange {
    pub fn user_id(&self) -> &str {
        match self {
            HandoffChange::Open(h) => &h.user_id,
            HandoffChange::Message { user_id, .. } | HandoffChange::AgentReply { user_id, .. } => {
                user_id
            }
        }
    }
}

/// Whether an echo is one of the service's own sends: its msg id is the `provider_id` Zalo
/// gave an outbox job, or — while the outcome of a send is not recorded yet (the echo can
/// arrive before it) — a Zalo job to that user is in flight with the very same text.
pub fn is_own_send(
    msg_id_is_ours: bool,
    in_flight_texts: &[Option<String>],
    text: Option<&str>,
) -> bool {
    msg_id_is_ours
        || in_flight_texts
            .iter()
            .any(|t| t.as_deref().map(str::trim) == text.map(str::trim))
}

/// The texts of Zalo jobs in flight, from their stored payloads.
pub fn in_flight_texts(payloads: impl IntoIterator<Item = String>) -> Vec<Option<String>> {
    payloads
        .into_iter()
        .filter_map(|p| match serde_json::from_str::<crate::job::Payload>(&p) {
            Ok(crate::job::Payload::Zalo { text, .. }) => Some(text),
            _ => None,
        })
        .collect()
}

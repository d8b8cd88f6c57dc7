//! Email opens and clicks in a replay. A live open or click names the email it belongs to by
//! its live outbox job; the copy sends its own email for the same rule or campaign step to the
//! same address, under another id. Before an open or click is replayed it is moved onto the
//! copy's email of the same rule to the same address (the customer opens the email they were
//! sent, as they did), and stored in the copy's inbox, as the live service stores it, so the
//! scheduler's "was it opened?" finds it. An open often comes seconds after its email went
//! out, before the pass that sends the copy's email: it waits for that pass (`Follow::waiting`)
//! and is moved after it. When the copy still has no such email (the rules being forecast do
//! not send it), nobody could open it: the event is left out.

use crate::store::{DynStore, InboxEvent, NewInboxEvent, StoreError};
use crate::zalo::event::{self, EventKind};

/// How many of an address's latest jobs are looked through for the email of a rule.
const LOOK_BACK: i64 = 200;

/// Events to replay, and the opens and clicks whose email the copy has not sent yet.
#[derive(Default)]
pub struct Follow {
    pub ready: Vec<InboxEvent>,
    pub waiting: Vec<InboxEvent>,
}

/// `events` with their opens and clicks moved onto the copy's emails, the moved ones stored in
/// the copy's inbox. With `wait`, those whose email the copy has not sent are given back to
/// wait for the next pass; without, they are left out.
pub async fn follow(
    live: &DynStore,
    scratch: &DynStore,
    events: Vec<InboxEvent>,
    wait: bool,
) -> Result<Follow, StoreError> {
    let is_email = |e: &InboxEvent| {
        e.event_name == event::EMAIL_OPENED || e.event_name == event::EMAIL_CLICKED
    };
    if !events.iter().any(is_email) {
        return Ok(Follow {
            ready: events,
            waiting: Vec::new(),
        });
    }
    let mut out = Follow::default();
    let mut stored = Vec::new();
    for e in events {
        if !is_email(&e) {
            out.ready.push(e);
            continue;
        }
        let Ok(ev) = event::parse(e.body.as_bytes()) else {
            continue;
        };
        let target = moved_to(live, scratch, &ev.kind).await?;
        let mut moved = ev.kind;
        match (target, &mut moved) {
            (
                Moved::To(id),
                EventKind::EmailOpened { job_id, .. } | EventKind::EmailClicked { job_id, .. },
            ) => *job_id = id,
            (Moved::NotYet, _) if wait => {
                out.waiting.push(e);
                continue;
            }
            _ => continue,
        }
        let ts = ev.timestamp_ms.unwrap_or(e.received_at);
        let Some((_, body)) = event::internal_body(&moved, ts) else {
            continue;
        };
        let dedupe_key = match &moved {
            EventKind::EmailOpened {
                contact_id,
                job_id,
                prefetch,
            } => crate::tracking::open_dedupe_key(*job_id, contact_id, *prefetch),
            EventKind::EmailClicked {
                contact_id,
                job_id,
                url,
                ..
            } => crate::tracking::click_dedupe_key(*job_id, contact_id, url),
            _ => continue,
        };
        stored.push(NewInboxEvent {
            dedupe_key: dedupe_key.clone(),
            event_name: e.event_name.clone(),
            user_id: e.user_id.clone(),
            priority: 0,
            body: body.clone(),
            event_ts: e.event_ts,
            received_at: e.received_at,
        });
        out.ready.push(InboxEvent {
            dedupe_key,
            body,
            ..e
        });
    }
    if !stored.is_empty() {
        scratch.insert_inbox(&stored).await?;
    }
    Ok(out)
}

/// Where an open or click goes in the copy.
enum Moved {
    /// Onto the copy's email: its job id.
    To(i64),
    /// The copy has no such email (yet).
    NotYet,
    /// The live email is unknown.
    Never,
}

/// Where the open or click `kind` goes: the copy's email of the same rule to the same
/// address as the live one it names.
async fn moved_to(
    live: &DynStore,
    scratch: &DynStore,
    kind: &EventKind,
) -> Result<Moved, StoreError> {
    let live_id = match kind {
        EventKind::EmailOpened { job_id, .. } | EventKind::EmailClicked { job_id, .. } => *job_id,
        _ => return Ok(Moved::Never),
    };
    let Some(sent) = live.get_job(live_id).await? else {
        return Ok(Moved::Never);
    };
    let copy = scratch
        .contact_jobs(std::slice::from_ref(&sent.user_id), LOOK_BACK)
        .await?
        .into_iter()
        .find(|j| j.channel == sent.channel && j.rule_id == sent.rule_id && j.status == "sent");
    let Some(copy) = copy else {
        return Ok(Moved::NotYet);
    };
    Ok(Moved::To(copy.id))
}

//! The agents' board, live: `GET /admin/board/events` is a stream of server-sent events, one
//! each time a handoff opens, is claimed, resolved or breached (its deadline passed unanswered,
//! or it was escalated), and the board page's
//! script (`/admin/board/live.js`) refreshes its list when one arrives, without a reload.
//!
//! Changes reach the board whichever instance made them: while at least one board listens,
//! one poller per process reads the unresolved handoffs from the store every
//! [`POLL_INTERVAL`] (two small queries) and compares them with what it read before; a change
//! made by this instance (a claim or resolve from its board or API) wakes it at once. An
//! in-process broadcast alone would miss what another instance, the inbox or the tick changed.
//!
//! The events carry ids, statuses and kinds only — never what a customer typed: the page
//! fetches its list again, rendered and escaped by the server as on a reload.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::handoff::{self, Handoff};
use crate::store::DynStore;

/// How often the store is read for changes while a board listens.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Comments sent on a quiet stream, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a browser waits before it connects again after the stream ends.
const RETRY: Duration = Duration::from_secs(2);
/// Unresolved handoffs read per poll (the board shows at most as many).
const ACTIVE_LIMIT: i64 = 500;

/// What changed on one handoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardEvent {
    /// `opened`, `claimed`, `resolved`, `breached` (the deadline passed unanswered, or a missed
    /// deadline was escalated) or
    /// `updated` (another customer message, a reply in the OA).
    pub kind: &'static str,
    pub id: i64,
    /// The handoff's status now (`open`, `claimed`, `resolved`; `gone` when erased).
    pub status: String,
}

/// What a poll remembers of an unresolved handoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    status: String,
    claimed_by: Option<String>,
    escalation_level: i32,
    messages: i32,
    responded_at: Option<i64>,
    updated_at: i64,
    /// Unanswered past its deadline at the time of the poll: the deadline passing is an
    /// event of its own, whether or not escalation is configured.
    overdue: bool,
}

impl Seen {
    fn new(h: &Handoff, now: i64) -> Seen {
        Seen {
            overdue: h.responded_at.is_none() && now > h.deadline_at,
            status: h.status.clone(),
            claimed_by: h.claimed_by.clone(),
            escalation_level: h.escalation_level,
            messages: h.messages,
            responded_at: h.responded_at,
            updated_at: h.updated_at,
        }
    }
}

/// The unresolved handoffs by id.
pub type Snapshot = HashMap<i64, Seen>;

/// The unresolved handoffs as of `now` (ms).
pub fn snapshot(active: &[Handoff], now: i64) -> Snapshot {
    active.iter().map(|h| (h.id, Seen::new(h, now))).collect()
}

/// The events between two snapshots of the unresolved handoffs, by id. A handoff that left
/// the list is reported in `gone` for the caller to look up (resolved, or erased).
pub fn diff(before: &Snapshot, after: &Snapshot) -> (Vec<BoardEvent>, Vec<i64>) {
    let mut events = Vec::new();
    let mut ids: Vec<&i64> = after.keys().collect();
    ids.sort();
    for id in ids {
        let now = &after[id];
        let ev = |kind| BoardEvent {
            kind,
            id: *id,
            status: now.status.clone(),
        };
        match before.get(id) {
            None => events.push(ev("opened")),
            Some(was) if was == now => {}
            Some(was) => {
                let breached =
                    now.escalation_level > was.escalation_level || (now.overdue && !was.overdue);
                if breached {
                    events.push(ev("breached"));
                }
                if now.status == handoff::CLAIMED
                    && (was.status != handoff::CLAIMED || was.claimed_by != now.claimed_by)
                {
                    events.push(ev("claimed"));
                } else if !breached {
                    events.push(ev("updated"));
                }
            }
        }
    }
    let mut gone: Vec<i64> = before
        .keys()
        .filter(|id| !after.contains_key(id))
        .copied()
        .collect();
    gone.sort();
    (events, gone)
}

/// The process's live board: one poller shared by every listening page.
#[derive(Clone)]
pub struct BoardLive {
    inner: Arc<Inner>,
}

struct Inner {
    tx: broadcast::Sender<BoardEvent>,
    /// Whether the poller runs (it stops when the last page goes).
    running: Mutex<bool>,
    /// Read the store now (this instance changed a handoff).
    wake: Notify,
    /// The service is stopping: streams end, so the graceful shutdown does not wait on them.
    closed: CancellationToken,
    interval: Duration,
}

impl Default for BoardLive {
    fn default() -> Self {
        BoardLive::new(POLL_INTERVAL)
    }
}

impl BoardLive {
    pub fn new(interval: Duration) -> BoardLive {
        let (tx, _) = broadcast::channel(256);
        BoardLive {
            inner: Arc::new(Inner {
                tx,
                running: Mutex::new(false),
                wake: Notify::new(),
                closed: CancellationToken::new(),
                interval,
            }),
        }
    }

    /// A new listener; starts the poller if none runs.
    pub fn subscribe(
        &self,
        store: &DynStore,
        clock: &crate::clock::Clock,
    ) -> broadcast::Receiver<BoardEvent> {
        let rx = self.inner.tx.subscribe();
        let mut running = self.inner.running.lock().expect("not poisoned");
        if !*running && !self.inner.closed.is_cancelled() {
            *running = true;
            tokio::spawn(poll(self.inner.clone(), store.clone(), clock.clone()));
        }
        rx
    }

    /// This instance changed a handoff: read the store now rather than at the next poll.
    pub fn poke(&self) {
        self.inner.wake.notify_one();
    }

    /// Ends every stream and the poller (the service is stopping).
    pub fn close(&self) {
        self.inner.closed.cancel();
    }
}

async fn read(store: &DynStore, now: i64) -> crate::store::Result<Snapshot> {
    let active = store
        .list_handoffs(&[handoff::OPEN, handoff::CLAIMED], ACTIVE_LIMIT)
        .await?;
    Ok(snapshot(&active, now))
}

async fn poll(inner: Arc<Inner>, store: DynStore, clock: crate::clock::Clock) {
    let mut before: Option<Snapshot> = None;
    loop {
        match read(&store, clock.now()).await {
            Ok(after) => {
                if let Some(b) = &before {
                    let (mut events, gone) = diff(b, &after);
                    for id in gone {
                        let status = match store.get_handoff(id).await {
                            Ok(Some(h)) => h.status,
                            Ok(None) => "gone".to_string(),
                            Err(_) => "unknown".to_string(),
                        };
                        let kind = if status == handoff::RESOLVED {
                            "resolved"
                        } else {
                            "updated"
                        };
                        events.push(BoardEvent { kind, id, status });
                    }
                    for ev in events {
                        tracing::debug!(kind = ev.kind, handoff = ev.id, "board: live event");
                        let _ = inner.tx.send(ev);
                    }
                }
                before = Some(after);
            }
            Err(e) => tracing::warn!(error = %e, "board: could not read the handoffs"),
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.interval) => {}
            _ = inner.wake.notified() => {}
            _ = inner.closed.cancelled() => {}
        }
        let mut running = inner.running.lock().expect("not poisoned");
        if inner.tx.receiver_count() == 0 || inner.closed.is_cancelled() {
            *running = false;
            return;
        }
    }
}

/// `GET /admin/board/events`: the stream (board access, as the page).
pub async fn events(State(st): State<AppState>, headers: HeaderMap) -> Response {
    match super::board::access(&st, &headers) {
        super::board::Access::Granted => {}
        super::board::Access::Disabled => {
            return (StatusCode::FORBIDDEN, "the board is disabled").into_response()
        }
        super::board::Access::Denied => {
            return (StatusCode::UNAUTHORIZED, "sign in to the board").into_response()
        }
    }
    let rx = st.board_live.subscribe(&st.store, &st.clock);
    let closed = st.board_live.inner.closed.clone();
    let mut r = Sse::new(stream_of(rx, closed))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies (nginx and the like) pass the events on at once.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

/// `ready` first (the page catches up on anything it missed while it connected), then one
/// `handoff` event per change, until the service stops.
fn stream_of(
    rx: broadcast::Receiver<BoardEvent>,
    closed: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let ready = Event::default().event("ready").retry(RETRY).data("{}");
    let changes = stream::unfold((rx, closed), |(mut rx, closed)| async move {
        let ev = tokio::select! {
            _ = closed.cancelled() => return None,
            r = rx.recv() => match r {
                Ok(ev) => Event::default()
                    .event("handoff")
                    .json_data(&ev)
                    .unwrap_or_else(|_| Event::default().event("handoff").data("{}")),
                // Too slow to follow: one event says "something changed".
                Err(broadcast::error::RecvError::Lagged(_)) => Event::default()
                    .event("handoff")
                    .data(r#"{"kind":"updated"}"#),
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        };
        Some((Ok(ev), (rx, closed)))
    });
    stream::once(async move { Ok(ready) }).chain(changes)
}

/// `GET /admin/board/live.js`: the page's script (a file, so the page's CSP allows only
/// scripts from this origin and no inline code).
pub async fn script() -> Response {
    let mut r = LIVE_JS.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Listens to the events and swaps in the list the server renders (escaped there, as on a
/// reload); waits while an agent is typing in the list; refreshes every minute for the time
/// left. Without JavaScript the page refreshes itself every minute (`<noscript>`).
const LIVE_JS: &str = r#""use strict";
(function () {
  if (!window.EventSource || !window.fetch || !window.DOMParser) return;
  var busy = false, again = false, typed = null;
  function editing() {
    var a = document.activeElement;
    return !!(a && a.tagName === "INPUT" && a.closest("main"));
  }
  function swap(doc) {
    var open = {};
    document.querySelectorAll("main details").forEach(function (d, i) { open[i] = d.open; });
    ["header .sub", "main"].forEach(function (sel) {
      var now = document.querySelector(sel), next = doc.querySelector(sel);
      if (now && next) now.replaceWith(document.importNode(next, true));
    });
    document.querySelectorAll("main details").forEach(function (d, i) {
      if (open[i]) d.open = true;
    });
    if (typed !== null) {
      document.querySelectorAll("main input[name=agent]").forEach(function (i) { i.value = typed; });
    }
  }
  function refresh() {
    if (busy || editing()) { again = true; return; }
    busy = true;
    fetch(location.pathname, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { location.reload(); throw r.status; }
        if (!r.ok) throw r.status;
        return r.text();
      })
      .then(function (html) { swap(new DOMParser().parseFromString(html, "text/html")); })
      .catch(function () {})
      .then(function () {
        busy = false;
        document.body.dataset.refreshed = String(Date.now());
        if (again) { again = false; refresh(); }
      });
  }
  document.addEventListener("input", function (e) {
    if (e.target && e.target.name === "agent") typed = e.target.value;
  });
  document.addEventListener("focusout", function () {
    if (again) { again = false; setTimeout(refresh, 0); }
  });
  var es = new EventSource("/admin/board/events");
  es.addEventListener("ready", function () { document.body.dataset.live = "on"; refresh(); });
  es.addEventListener("handoff", refresh);
  es.addEventListener("error", function () { document.body.dataset.live = "off"; });
  setInterval(refresh, 60000);
})();
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(status: &str, claimed_by: Option<&str>, level: i32, updated_at: i64) -> Seen {
        Seen {
            status: status.into(),
            claimed_by: claimed_by.map(Into::into),
            escalation_level: level,
            messages: 1,
            responded_at: None,
            updated_at,
            overdue: false,
        }
    }

    #[test]
    fn a_diff_names_what_happened() {
        let before: Snapshot = [
            (1, seen("open", None, 0, 10)),
            (2, seen("open", None, 0, 10)),
            (3, seen("open", None, 0, 10)),
            (4, seen("claimed", Some("Minh"), 0, 10)),
        ]
        .into();
        let after: Snapshot = [
            (1, seen("open", None, 0, 10)),
            (2, seen("claimed", Some("Lan"), 0, 20)),
            (3, seen("open", None, 1, 20)),
            (5, seen("open", None, 0, 20)),
        ]
        .into();
        let (events, gone) = diff(&before, &after);
        let kinds: Vec<(&str, i64)> = events.iter().map(|e| (e.kind, e.id)).collect();
        assert_eq!(kinds, [("claimed", 2), ("breached", 3), ("opened", 5)]);
        assert_eq!(gone, [4]);
        assert_eq!(diff(&after, &after), (vec![], vec![]));
        // Another message on an open handoff: an update.
        let mut more = after.clone();
        more.get_mut(&1).unwrap().messages = 2;
        let (events, _) = diff(&after, &more);
        assert_eq!(events[0].kind, "updated");
        // The deadline passing unanswered, with no escalation configured: breached, once.
        let mut late = after.clone();
        late.get_mut(&1).unwrap().overdue = true;
        let (events, _) = diff(&after, &late);
        let kinds: Vec<(&str, i64)> = events.iter().map(|e| (e.kind, e.id)).collect();
        assert_eq!(kinds, [("breached", 1)]);
        assert_eq!(diff(&late, &late), (vec![], vec![]));
        // Then escalated: breached again (the supervisors were told).
        let mut escalated = late.clone();
        escalated.get_mut(&1).unwrap().escalation_level = 1;
        assert_eq!(diff(&late, &escalated).0[0].kind, "breached");
    }
}

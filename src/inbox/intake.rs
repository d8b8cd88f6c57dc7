//! Group commit: webhook handlers hand their event to a writer task, which stores whatever
//! has queued up in one transaction and then answers each handler. A handler answers 200 only
//! after that commit.
//!
//! With a [`Relay`], the writer stores each batch already leased to this instance's first
//! inbox processor and then passes the stored rows to it in memory, so no claim is written
//! for them: each event costs the database its insert and its completion, not an insert, a
//! claim and a completion. When the processor is behind (its queue full) a batch is stored
//! unleased instead and claimed from the table as before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::store::{DynStore, InboxEvent, Inserted, IntakeLease, NewInboxEvent, SyncInbox};

type Request = (NewInboxEvent, oneshot::Sender<Result<Inserted, String>>);

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage did not answer in time")]
    Timeout,
    #[error("shutting down")]
    Closed,
}

/// The largest batch one commit takes.
const MAX_BATCH: usize = 512;

/// Where stored events go in memory: a processor's queue, holding at most a set number of
/// events, and the lease its claims would take.
pub struct Relay {
    tx: mpsc::UnboundedSender<Handed>,
    room: Arc<Semaphore>,
    /// The receiving processor's lease owner.
    owner: String,
    lease: Duration,
}

/// Events handed over in one batch; its room in the queue is given back when it is dropped
/// (once processed).
pub struct Handed {
    pub events: Vec<InboxEvent>,
    _room: OwnedSemaphorePermit,
}

impl Relay {
    /// A hand-over to the processor leasing as `owner`, which takes the queue; at most `room`
    /// events wait in it (past that, batches are stored unleased and claimed from the table).
    pub fn new(owner: String, lease: Duration, room: usize) -> (Relay, RelayQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let size = room;
        let room = Arc::new(Semaphore::new(room));
        (
            Relay {
                tx,
                room: room.clone(),
                owner,
                lease,
            },
            RelayQueue { rx, room, size },
        )
    }
}

/// The receiving end of a [`Relay`]: the processor's queue of stored batches.
pub struct RelayQueue {
    rx: mpsc::UnboundedReceiver<Handed>,
    room: Arc<Semaphore>,
    size: usize,
}

impl RelayQueue {
    pub async fn recv(&mut self) -> Option<Handed> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Handed> {
        self.rx.try_recv().ok()
    }

    /// Events handed over and not yet processed (a batch's room is given back once it is).
    pub fn waiting(&self) -> usize {
        self.size.saturating_sub(self.room.available_permits())
    }

    /// No more hand-overs: the intake stores later batches unleased.
    pub fn close(&mut self) {
        self.rx.close();
        self.room.close();
    }
}

#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Request>,
    timeout: Duration,
}

impl Intake {
    /// Starts the writers on `tasks`; they stop once every `Intake` clone is dropped and the
    /// queue is drained. Each commit that stored something goes to `relay` or, when there is
    /// none or its queue is full, notifies `stored`. A backend that stores from a thread of its
    /// own (`Store::sync_inbox`: SQLite, one writer) gets one writer on a blocking thread, which
    /// starts each group commit as soon as the last one is done; otherwise `writers` tasks.
    pub fn start(
        store: DynStore,
        writers: usize,
        timeout: Duration,
        stored: Arc<Notify>,
        relay: Option<Relay>,
        tasks: &mut JoinSet<()>,
    ) -> Intake {
        let (tx, rx) = mpsc::channel::<Request>(8192);
        let commits = Arc::new(Commits {
            stored,
            relay: relay.map(Arc::new),
        });
        if let Some(inbox) = store.sync_inbox() {
            tasks.spawn_blocking(move || blocking_writer(&*inbox, rx, &commits));
            return Intake { tx, timeout };
        }
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let (store, rx, commits) = (store.clone(), rx.clone(), commits.clone());
            tasks.spawn(async move { writer(store, rx, commits).await });
        }
        Intake { tx, timeout }
    }

    /// Stores one event; `Ok` only once it is committed (or was stored before).
    pub async fn submit(&self, event: NewInboxEvent) -> Result<Inserted, IntakeError> {
        let (reply, answer) = oneshot::channel();
        let work = async {
            self.tx
                .send((event, reply))
                .await
                .map_err(|_| IntakeError::Closed)?;
            match answer.await {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(e)) => Err(IntakeError::Unavailable(e)),
                Err(_) => Err(IntakeError::Closed),
            }
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| IntakeError::Timeout)?
    }
}

/// What a writer does around each group commit, whichever kind of writer it is.
struct Commits {
    stored: Arc<Notify>,
    relay: Option<Arc<Relay>>,
}

/// A batch ready to be stored: its events, the handlers waiting on them, and its room in the
/// processor's queue when it goes there.
struct Batch {
    events: Vec<NewInboxEvent>,
    replies: Vec<oneshot::Sender<Result<Inserted, String>>>,
    room: Option<OwnedSemaphorePermit>,
    lease_until: i64,
    started: Instant,
}

impl Commits {
    /// Takes `requests` for one commit; `None` when every handler already gave up (timeout).
    fn batch(&self, requests: &mut Vec<Request>) -> Option<Batch> {
        requests.retain(|(_, reply)| !reply.is_closed());
        if requests.is_empty() {
            return None;
        }
        let (events, replies): (Vec<NewInboxEvent>, Vec<_>) = requests.drain(..).unzip();
        // Room in the processor's queue is taken before the rows are leased to it.
        let (room, lease_until) = match self.relay.as_deref() {
            Some(h) => match h.room.clone().try_acquire_many_owned(events.len() as u32) {
                Ok(room) => (
                    Some(room),
                    crate::clock::system_now() + h.lease.as_millis() as i64,
                ),
                Err(_) => (None, 0),
            },
            None => (None, 0),
        };
        Some(Batch {
            events,
            replies,
            room,
            lease_until,
            started: Instant::now(),
        })
    }

    /// The lease `batch`'s rows are stored under.
    fn lease<'a>(&'a self, batch: &Batch) -> Option<IntakeLease<'a>> {
        let h = self.relay.as_deref()?;
        batch.room.as_ref().map(|_| IntakeLease {
            owner: &h.owner,
            until: batch.lease_until,
        })
    }

    /// Answers `batch`'s handlers with its commit's outcome and passes what it stored on.
    fn finish(&self, batch: Batch, result: crate::store::Result<Vec<Option<i64>>>) {
        metrics::histogram!("zaloflow_inbox_commit_seconds").record(batch.started.elapsed());
        metrics::histogram!("zaloflow_inbox_commit_batch_size").record(batch.events.len() as f64);
        let Batch {
            events,
            replies,
            room,
            ..
        } = batch;
        match result {
            Ok(ids) => {
                // Passed on before the handlers are answered: once `submit` returns, its event
                // is in the processor's queue (or the processor is notified), so a queue
                // that looks short to the processor is short.
                match (room, self.relay.as_deref()) {
                    (Some(room), Some(h)) => {
                        let events = handed_rows(events, &ids);
                        // A processor that stopped gives its leases back as it goes; anything
                        // sent after that is taken again when its lease expires.
                        if !events.is_empty() {
                            let _ = h.tx.send(Handed {
                                events,
                                _room: room,
                            });
                        }
                    }
                    _ if ids.iter().any(Option::is_some) => self.stored.notify_one(),
                    _ => {}
                }
                for (reply, id) in replies.into_iter().zip(&ids) {
                    let _ = reply.send(Ok(Inserted::of(*id)));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batch = events.len(), "could not store webhook batch");
                let msg = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

async fn writer(store: DynStore, rx: Arc<Mutex<mpsc::Receiver<Request>>>, commits: Arc<Commits>) {
    let mut requests: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    loop {
        requests.clear();
        let n = rx.lock().await.recv_many(&mut requests, MAX_BATCH).await;
        if n == 0 {
            return;
        }
        let Some(batch) = commits.batch(&mut requests) else {
            continue;
        };
        let result = store
            .store_inbox(&batch.events, commits.lease(&batch))
            .await;
        commits.finish(batch, result);
    }
}

/// The writer on a thread of its own: waits for the first request, takes whatever else has
/// queued up, stores it and answers, and goes straight to the next batch.
fn blocking_writer(inbox: &dyn SyncInbox, mut rx: mpsc::Receiver<Request>, commits: &Commits) {
    let mut requests: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    loop {
        requests.clear();
        if rx.blocking_recv_many(&mut requests, MAX_BATCH) == 0 {
            return;
        }
        let Some(batch) = commits.batch(&mut requests) else {
            continue;
        };
        let result = inbox.store_inbox(&batch.events, commits.lease(&batch));
        commits.finish(batch, result);
    }
}

/// The rows a batch stored (duplicates left out), as the processor receives them: leased, one
/// attempt counted.
fn handed_rows(events: Vec<NewInboxEvent>, ids: &[Option<i64>]) -> Vec<InboxEvent> {
    events
        .into_iter()
        .zip(ids.iter().copied())
        .filter_map(|(e, id)| {
            Some(InboxEvent {
                id: id?,
                dedupe_key: e.dedupe_key,
                event_name: e.event_name,
                user_id: e.user_id,
                body: e.body,
                event_ts: e.event_ts,
                received_at: e.received_at,
                attempts: 1,
            })
        })
        .collect()
}

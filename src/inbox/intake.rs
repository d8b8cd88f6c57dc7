//! Group commit: webhook handlers hand their event to a writer task, which stores whatever
//! has queued up in one transaction and then answers each handler. A handler answers 200 only
//! after that commit.
//!
//! With a [`Handoff`], the writer stores each batch already leased to this instance's first
//! inbox processor and then passes the stored rows to it in memory, so no claim is written
//! for them: each event costs the database its insert and its completion, not an insert, a
//! claim and a completion. When the processor is behind (its queue full) a batch is stored
//! unleased instead and claimed from the table as before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::store::{DynStore, InboxEvent, Inserted, IntakeLease, NewInboxEvent};

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
pub struct Handoff {
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

impl Handoff {
    /// A hand-over to the processor leasing as `owner`, which takes the receiver; at most
    /// `room` events wait in its queue (past that, batches are stored unleased and claimed
    /// from the table).
    pub fn new(
        owner: String,
        lease: Duration,
        room: usize,
    ) -> (Handoff, mpsc::UnboundedReceiver<Handed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(room));
        (
            Handoff {
                tx,
                room,
                owner,
                lease,
            },
            rx,
        )
    }
}

#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Request>,
    timeout: Duration,
}

impl Intake {
    /// Starts `writers` writer tasks on `tasks`; they stop once every `Intake` clone is dropped
    /// and the queue is drained. Each commit that stored something goes to `handoff` or, when
    /// there is none or its queue is full, notifies `stored`.
    pub fn start(
        store: DynStore,
        writers: usize,
        timeout: Duration,
        stored: Arc<Notify>,
        handoff: Option<Handoff>,
        tasks: &mut JoinSet<()>,
    ) -> Intake {
        let (tx, rx) = mpsc::channel::<Request>(8192);
        let rx = Arc::new(Mutex::new(rx));
        let handoff = handoff.map(Arc::new);
        for _ in 0..writers.max(1) {
            let (store, rx, stored) = (store.clone(), rx.clone(), stored.clone());
            let handoff = handoff.clone();
            tasks.spawn(async move { writer(store, rx, stored, handoff).await });
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

async fn writer(
    store: DynStore,
    rx: Arc<Mutex<mpsc::Receiver<Request>>>,
    stored: Arc<Notify>,
    handoff: Option<Arc<Handoff>>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    loop {
        batch.clear();
        let n = rx.lock().await.recv_many(&mut batch, MAX_BATCH).await;
        if n == 0 {
            return;
        }
        // Handlers that already gave up (timeout) need no write.
        batch.retain(|(_, reply)| !reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (events, replies): (Vec<NewInboxEvent>, Vec<_>) = batch.drain(..).unzip();
        // Room in the processor's queue is taken before the rows are leased to it.
        let permit = handoff.as_deref().and_then(|h| {
            let room = h.room.clone().try_acquire_many_owned(events.len() as u32);
            Some((room.ok()?, h))
        });
        let lease = permit.as_ref().map(|(_, h)| IntakeLease {
            owner: &h.owner,
            until: crate::clock::system_now() + h.lease.as_millis() as i64,
        });
        let started = Instant::now();
        let result = store.store_inbox(&events, lease).await;
        metrics::histogram!("zaloflow_inbox_commit_seconds").record(started.elapsed());
        metrics::histogram!("zaloflow_inbox_commit_batch_size").record(events.len() as f64);
        match result {
            Ok(ids) => {
                for (reply, id) in replies.into_iter().zip(&ids) {
                    let _ = reply.send(Ok(Inserted::of(*id)));
                }
                match permit {
                    Some((room, h)) => {
                        let events = handed_rows(events, ids);
                        // A processor that stopped gives its leases back as it goes; anything
                        // sent after that is taken again when its lease expires.
                        if !events.is_empty() {
                            let _ = h.tx.send(Handed {
                                events,
                                _room: room,
                            });
                        }
                    }
                    None if ids.iter().any(Option::is_some) => stored.notify_one(),
                    None => {}
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

/// The rows a batch stored (duplicates left out), as the processor receives them: leased, one
/// attempt counted.
fn handed_rows(events: Vec<NewInboxEvent>, ids: Vec<Option<i64>>) -> Vec<InboxEvent> {
    events
        .into_iter()
        .zip(ids)
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

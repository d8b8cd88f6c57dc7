//! Group commit: webhook handlers hand their event to a writer task, which stores whatever
//! has queued up in one transaction and then answers each handler. A handler answers 200 only
//! after that commit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, Mutex, Notify};
use tokio::task::JoinSet;

use crate::store::{DynStore, Inserted, NewInboxEvent};

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

#[derive(Clone)]
pub struct Intake {
    tx: mpsc::Sender<Request>,
    timeout: Duration,
}

impl Intake {
    /// Starts `writers` writer tasks on `tasks`; they stop once every `Intake` clone is dropped
    /// and the queue is drained. `stored` is notified after each commit that stored something.
    pub fn start(
        store: DynStore,
        writers: usize,
        timeout: Duration,
        stored: Arc<Notify>,
        tasks: &mut JoinSet<()>,
    ) -> Intake {
        let (tx, rx) = mpsc::channel::<Request>(8192);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let (store, rx, stored) = (store.clone(), rx.clone(), stored.clone());
            tasks.spawn(async move { writer(store, rx, stored).await });
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

async fn writer(store: DynStore, rx: Arc<Mutex<mpsc::Receiver<Request>>>, stored: Arc<Notify>) {
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
        let started = Instant::now();
        let result = store.insert_inbox(&events).await;
        metrics::histogram!("zaloflow_inbox_commit_seconds").record(started.elapsed());
        metrics::histogram!("zaloflow_inbox_commit_batch_size").record(events.len() as f64);
        match result {
            Ok(outcomes) => {
                let any_new = outcomes.iter().any(|o| matches!(o, Inserted::Stored));
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
                if any_new {
                    stored.notify_one();
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

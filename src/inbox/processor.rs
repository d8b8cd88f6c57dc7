//! The inbox processor: takes stored events in arrival order, handed over by the intake or
//! claimed from the table (either way under a lease, so a crashed worker's events are taken
//! again), runs them through the engine and commits each batch's effects in the transaction
//! that marks its events done. One user's events are never processed
//! concurrently or out of order; different users' events run in parallel across workers and
//! instances.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::engine::state::{self, Need, StateCache};
use crate::engine::{BatchState, Engine};
use crate::inbox::intake::{Handed, RelayQueue};
use crate::store::{ClaimNext, Completion, DynStore, InboxEvent, StoreError};
use crate::zalo::event::{self, Event, EventKind};

/// After this many attempts an event is given up and marked failed (with its error).
pub const MAX_ATTEMPTS: i32 = 8;

#[derive(Clone)]
pub struct Processor {
    pub(crate) store: DynStore,
    pub(crate) engine: Arc<Engine>,
    pub(crate) clock: Clock,
    /// Identifies this worker's leases.
    pub(crate) owner: String,
    pub(crate) batch: i64,
    pub(crate) lease: Duration,
    pub(crate) poll: Duration,
    /// How long a wake-up waits for more events before taking them: under load the processor
    /// takes a few large batches instead of many small ones, each batch's completion (and its
    /// claim, for events claimed from the table) being a write transaction that the webhook
    /// intake's commits queue behind.
    pub(crate) settle: Duration,
    /// The wait instead of `settle` after a round that found at least `busy_at` events: under
    /// a burst the processor takes fewer, larger batches (each is write transactions on the
    /// database the webhook intake commits to), so the intake keeps the writer and the
    /// processing costs less per event; it returns to `settle` once a round finds few.
    pub(crate) settle_busy: Duration,
    pub(crate) busy_at: usize,
    /// No `settle` wait when this many handed-over events are already waiting: the processor
    /// is behind, and waiting would only let the queue fill. With the wait at full load, the
    /// queue filled up to its room, batches then went to the table and were claimed back, and
    /// the processor, not the writer, set the throughput (README, benchmarks).
    pub(crate) behind_at: usize,
    /// Events handed over are processed and committed at most this many per transaction, in
    /// order: a burst's round (hundreds of events) would otherwise hold the one SQLite writer
    /// for ~8 ms while the webhooks' commits wait behind it. At full load, 256 took the p99 with
    /// processing from ~14 to ~10 ms for ~4 % of the throughput (README, benchmarks).
    pub(crate) commit_max: usize,
    /// Notified when a batch enqueued outbound jobs.
    pub(crate) jobs_enqueued: Arc<Notify>,
    /// Kept up to date with the `vip_customer` tag changes this processor commits.
    pub(crate) vip: Option<crate::handoff::VipSet>,
    /// What staff are told when `permission_revoked` pauses OA calls.
    pub(crate) oa_notice: crate::outbox::oa::OaNotice,
    /// The outbox's gate on OA calls in this process, closed at once on `permission_revoked`.
    pub(crate) oa_gate: crate::outbox::oa::OaGate,
    /// A forecast's copy keeps its sends here instead of the store's outbox (`replay`).
    pub(crate) sink: Option<Arc<dyn crate::outbox::sink::JobSink>>,
    /// A forecast's contacts' state between batches (`Processor::replay` only).
    pub(crate) cache: Option<Arc<StateCache>>,
}

impl Processor {
    pub fn new(store: DynStore, engine: Arc<Engine>, clock: Clock, owner: String) -> Self {
        Processor {
            store,
            engine,
            clock,
            owner,
            batch: 1024,
            lease: Duration::from_secs(15),
            poll: Duration::from_millis(500),
            settle: Duration::from_millis(5),
            settle_busy: Duration::from_millis(25),
            busy_at: 64,
            behind_at: 256,
            commit_max: 256,
            jobs_enqueued: Arc::new(Notify::new()),
            vip: None,
            oa_notice: Default::default(),
            oa_gate: Default::default(),
            sink: None,
            cache: None,
        }
    }

    /// How long a claim lasts (`ZALOFLOW_INBOX_LEASE`).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Notified when a batch enqueued outbound jobs (wakes the outbox sender).
    pub fn with_jobs_enqueued(mut self, notify: Arc<Notify>) -> Self {
        self.jobs_enqueued = notify;
        self
    }

    /// The in-memory VIP list this processor keeps up to date.
    pub fn with_vip(mut self, vip: crate::handoff::VipSet) -> Self {
        self.vip = Some(vip);
        self
    }

    /// What staff are told, and the gate closed, when `permission_revoked` pauses OA calls.
    pub fn with_oa(
        mut self,
        notice: crate::outbox::oa::OaNotice,
        gate: crate::outbox::oa::OaGate,
    ) -> Self {
        self.oa_notice = notice;
        self.oa_gate = gate;
        self
    }

    /// At most this many handed-over events per transaction.
    pub fn with_commit_max(mut self, n: usize) -> Self {
        self.commit_max = n;
        self
    }

    /// The waits for more events before a round (`settle`, and `settle_busy` after a busy
    /// round), and the queue length at which the processor skips them (`behind_at`).
    pub fn with_settle(
        mut self,
        settle: Duration,
        settle_busy: Duration,
        behind_at: usize,
    ) -> Self {
        self.settle = settle;
        self.settle_busy = settle_busy;
        self.behind_at = behind_at;
        self
    }

    /// Runs until `stop` is cancelled. Events the intake hands over (`relay`, already leased
    /// to this processor) are processed as they come; the table is claimed from on start, when
    /// `stored` is notified (events stored without a lease) and every `poll` (retries, expired
    /// leases). Finishes the batch in hand, then gives back anything still leased, queued
    /// hand-overs included.
    pub async fn run(
        self,
        stored: Arc<Notify>,
        mut relay: Option<RelayQueue>,
        stop: CancellationToken,
    ) {
        let mut settle = self.settle;
        let mut result = self.drain(&stop).await;
        loop {
            match result {
                Ok(n) => {
                    settle = if n >= self.busy_at {
                        self.settle_busy
                    } else {
                        self.settle
                    };
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inbox processing paused");
                    metrics::counter!("zaloflow_inbox_errors_total").increment(1);
                }
            }
            let handed = async {
                match relay.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                _ = stop.cancelled() => break,
                _ = stored.notified() => Wake::Stored,
                Some(first) = handed => Wake::Handed(first),
                _ = tokio::time::sleep(self.poll) => Wake::Poll,
            };
            // More events are on their way under load: wait for them, then take them at once.
            // Not when hand-overs are already waiting: the wait would only let the queue grow
            // (at full load it filled, and batches then went to the table to be claimed back).
            let behind = relay
                .as_ref()
                .is_some_and(|q| q.waiting() >= self.behind_at);
            if !matches!(wake, Wake::Poll) && !settle.is_zero() && !behind {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(settle) => {}
                }
            }
            result = match (wake, relay.as_mut()) {
                (Wake::Handed(first), Some(rx)) => match self.process_queued(first, rx).await {
                    Ok((n, 0)) => Ok(n),
                    Ok((n, _)) => self.drain(&stop).await.map(|m| n + m),
                    Err(e) => Err(e),
                },
                _ => self.drain(&stop).await,
            };
        }
        if let Some(rx) = relay.as_mut() {
            rx.close();
        }
        if let Err(e) = self.store.release_inbox(&self.owner).await {
            tracing::warn!(error = %e, "could not release inbox leases");
        }
    }

    /// `first` and what else waits in the queue, up to a batch, through `process_handed`;
    /// their room in the queue is held until they are processed.
    async fn process_queued(
        &self,
        first: Handed,
        rx: &mut RelayQueue,
    ) -> Result<(usize, usize), StoreError> {
        let mut n = first.events.len();
        let mut handed = vec![first];
        while n < self.batch as usize {
            let Some(more) = rx.try_recv() else { break };
            n += more.events.len();
            handed.push(more);
        }
        let batch = handed
            .iter_mut()
            .flat_map(|h| std::mem::take(&mut h.events))
            .collect();
        self.process_handed(batch).await
    }

    /// Processes events the intake handed over, leased to this processor at their insert. An
    /// event whose user has an earlier event still pending outside this batch (stored while
    /// the queue was full, or waiting for a retry) must not overtake it: such events are given
    /// back to the table, to be claimed in order. Returns how many events were processed and
    /// how many given back.
    pub async fn process_handed(
        &self,
        mut batch: Vec<InboxEvent>,
    ) -> Result<(usize, usize), StoreError> {
        batch.sort_by_key(|e| e.id);
        let Some(last) = batch.last().map(|e| e.id) else {
            return Ok((0, 0));
        };
        let mut users: Vec<String> = batch
            .iter()
            .filter(|e| !e.user_id.is_empty())
            .map(|e| e.user_id.clone())
            .collect();
        users.sort();
        users.dedup();
        let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
        let earlier = self.store.inbox_pending_before(&users, last, &ids).await?;
        let mut given_back = Vec::new();
        if !earlier.is_empty() {
            let mut first: HashMap<&str, i64> = HashMap::new();
            for (user, id) in &earlier {
                first
                    .entry(user.as_str())
                    .and_modify(|f| *f = (*f).min(*id))
                    .or_insert(*id);
            }
            batch.retain(|e| {
                let wait = first.get(e.user_id.as_str()).is_some_and(|f| *f < e.id);
                if wait {
                    given_back.push(e.id);
                }
                !wait
            });
            if !given_back.is_empty() {
                self.store
                    .release_inbox_events(&self.owner, &given_back)
                    .await?;
            }
            metrics::counter!("zaloflow_inbox_handoff_returned_total")
                .increment(given_back.len() as u64);
        }
        let n = batch.len();
        let mut rest = batch;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(self.commit_max.max(1)));
            self.process_batch(rest, false).await?;
            rest = tail;
        }
        Ok((n, given_back.len()))
    }

    /// Processes batches until a claim comes back short of a full batch (the backlog is taken;
    /// what arrives meanwhile wakes the next round, after `settle`). While the batches come
    /// full, each one's completion claims the next in the same store call
    /// (`Store::complete_and_claim`). Returns how many events were handled.
    pub async fn drain(&self, stop: &CancellationToken) -> Result<usize, StoreError> {
        let mut total = 0;
        let mut claimed = self
            .store
            .claim_inbox(&self.owner, self.lease_now(), self.lease_ms(), self.batch)
            .await?;
        while !claimed.is_empty() && !stop.is_cancelled() {
            total += claimed.len();
            let full = claimed.len() as i64 >= self.batch;
            claimed = self.process_batch(claimed, full).await?;
        }
        Ok(total)
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// Leases are wall-clock time, whatever instant the processor's clock stands for.
    fn lease_now(&self) -> i64 {
        crate::clock::system_now()
    }

    /// Processes events replayed from another store into this one, a forecast's copy
    /// (`Store::apply_replayed`): as a claimed batch is processed, in order, with no inbox row
    /// to mark or claim. An event that does not parse is left out (the store it comes from
    /// recorded its failure). Returns how many events were processed.
    pub async fn replay(&self, events: Vec<InboxEvent>) -> Result<usize, StoreError> {
        let mut batch = self.decide(events).await?;
        crate::outbox::sink::divert_events(self.sink.as_deref(), &mut batch.done, batch.now);
        self.store.apply_replayed(&batch.done, batch.now).await?;
        if let Some(cache) = &self.cache {
            let effects = batch.done.iter().map(|c| &c.effects);
            cache.keep(&batch.users, batch.before, effects);
        }
        if batch.done.iter().any(|c| !c.effects.jobs.is_empty()) {
            self.jobs_enqueued.notify_one();
        }
        self.committed(&batch.done);
        Ok(batch.done.len())
    }

    /// Processes one claimed batch; with `claim_next`, its completion claims the next batch,
    /// which is returned.
    async fn process_batch(
        &self,
        claimed: Vec<InboxEvent>,
        claim_next: bool,
    ) -> Result<Vec<InboxEvent>, StoreError> {
        let Decided {
            parsed,
            before,
            done,
            users: _,
            failed,
            now,
        } = self.decide(claimed).await?;
        let claim = ClaimNext {
            now: self.lease_now(),
            lease_ms: self.lease_ms(),
            limit: self.batch,
        };
        // Events that failed to parse are still leased to us: the next claim skips them (and
        // their users' later events) until `retry_later` below sets when they are retried.
        let completed = if claim_next {
            self.store
                .complete_and_claim(&self.owner, &done, now, claim)
                .await
        } else {
            (self.store.complete_inbox(&self.owner, &done, now).await).map(|()| Vec::new())
        };
        let next = match completed {
            Ok(next) => {
                if done.iter().any(|c| !c.effects.jobs.is_empty()) {
                    self.jobs_enqueued.notify_one();
                }
                self.committed(&done);
                next
            }
            Err(StoreError::LeaseLost(what)) => {
                tracing::warn!(%what, "lease lost; batch left to its new owner");
                return Ok(Vec::new());
            }
            Err(e) if done.len() > 1 => {
                // One bad event must not hold the others: commit them one by one.
                tracing::warn!(error = %e, "batch commit failed; retrying events one at a time");
                self.one_by_one(parsed, before).await?;
                return Ok(Vec::new());
            }
            Err(e) => {
                for (row, _) in &parsed {
                    self.retry_later(row, &e.to_string()).await?;
                }
                return Err(e);
            }
        };
        let caused: HashMap<i64, Caused> = done
            .iter()
            .map(|c| (c.inbox_id, Caused::of(&c.effects)))
            .collect();
        self.record_done(&parsed, &caused, now);
        for i in failed {
            if let (row, Err(e)) = &parsed[i] {
                self.retry_later(row, e).await?;
            }
        }
        Ok(next)
    }

    /// Runs a batch through the engine, in order: parsed, the state of its users loaded, each
    /// event's effects decided, `permission_revoked` and template events recorded.
    async fn decide(&self, claimed: Vec<InboxEvent>) -> Result<Decided, StoreError> {
        let mut parsed: Vec<(InboxEvent, Result<Event, String>)> =
            Vec::with_capacity(claimed.len());
        let mut users: Vec<String> = Vec::new();
        for row in claimed {
            let ev = event::parse(row.body.as_bytes()).map_err(|e| e.to_string());
            if let Ok(ev) = &ev {
                users.extend(concerned_users(ev));
            }
            parsed.push((row, ev));
        }
        users.sort();
        users.dedup();
        let mut before = self.load_state(&users).await?;
        // Opens and clicks name their email by outbox job: what sent it (rule or step).
        for (_, ev) in &parsed {
            if let Ok(Event {
                kind: EventKind::EmailOpened { job_id, .. } | EventKind::EmailClicked { job_id, .. },
                ..
            }) = ev
            {
                if let std::collections::hash_map::Entry::Vacant(slot) =
                    before.emails.entry(*job_id)
                {
                    if let Some(job) = self.store.get_job(*job_id).await? {
                        slot.insert(job.rule_id.unwrap_or_default());
                    }
                }
            }
        }
        let mut state = before.clone();

        let mut done = Vec::with_capacity(parsed.len());
        let mut failed = Vec::new();
        for (i, (row, ev)) in parsed.iter().enumerate() {
            match ev {
                Ok(ev) => {
                    let at = event_time(ev, row);
                    let effects =
                        self.engine
                            .process(ev, at, &format!("inbox:{}", row.id), &mut state);
                    done.push(Completion {
                        inbox_id: row.id,
                        effects,
                    });
                }
                Err(_) => failed.push(i),
            }
        }
        let now = self.clock.now();
        self.permission_revoked(&parsed, now).await?;
        self.template_events(&parsed, now).await?;
        Ok(Decided {
            parsed,
            before,
            users,
            done,
            failed,
            now,
        })
    }

    /// `permission_revoked`: OA calls wait and staff are told, once (before the batch commits;
    /// repeating it is harmless, and a revocation received before the last connect is old).
    async fn permission_revoked(
        &self,
        parsed: &[(InboxEvent, Result<Event, String>)],
        now: i64,
    ) -> Result<(), StoreError> {
        use crate::outbox::oa::PERMISSION_REVOKED;
        for (row, ev) in parsed {
            if let Ok(
                ev @ Event {
                    kind: EventKind::PermissionRevoked {},
                    ..
                },
            ) = ev
            {
                self.oa_gate.pause_now();
                let notice = self.oa_notice.jobs(PERMISSION_REVOKED, now);
                // A revocation stamped (by Zalo) or received before the last connect is old:
                // a late retry must not undo the new connection.
                let seen_at = ev
                    .timestamp_ms
                    .map_or(row.received_at, |ts| ts.min(row.received_at));
                if self
                    .store
                    .revoke_oa(seen_at, PERMISSION_REVOKED, &notice, now)
                    .await?
                {
                    tracing::error!(inbox = row.id, "Zalo says the OA's permission was revoked: OA calls wait until it is connected again at /admin/zalo/connect");
                    self.jobs_enqueued.notify_one();
                }
            }
        }
        Ok(())
    }

    /// `change_template_status` and `change_oa_daily_quota`: recorded for the sender (a
    /// template that is not enabled holds its sends; sends past the daily quota wait for the
    /// next day). Staff hear of a template paused or enabled again once: a repeated delivery
    /// finds the status already recorded.
    async fn template_events(
        &self,
        parsed: &[(InboxEvent, Result<Event, String>)],
        now: i64,
    ) -> Result<(), StoreError> {
        use zaloflow_core::job::template_usable;
        for (row, ev) in parsed {
            match ev {
                Ok(Event {
                    kind:
                        EventKind::TemplateStatus {
                            template_id,
                            status,
                        },
                    ..
                }) => {
                    // Told first, recorded after: a crash between them tells staff twice,
                    // never not at all.
                    let before = self.store.template_status(template_id).await?;
                    if before.as_deref() == Some(status.as_str()) {
                        continue;
                    }
                    let was_usable = before.as_deref().is_none_or(template_usable);
                    let l = self.oa_notice.lang.code();
                    let text = match (was_usable, template_usable(status)) {
                        (true, false) => rust_i18n::t!(
                            "notice.template.disabled",
                            locale = l,
                            id = template_id,
                            status = status
                        )
                        .into_owned(),
                        (false, true) => rust_i18n::t!(
                            "notice.template.enabled",
                            locale = l,
                            id = template_id,
                            status = status
                        )
                        .into_owned(),
                        _ => {
                            self.store
                                .set_template_status(template_id, status, now)
                                .await?;
                            continue;
                        }
                    };
                    tracing::warn!(
                        inbox = row.id,
                        template_id,
                        status,
                        "Zalo changed a template's status"
                    );
                    let payload = crate::channels::Payload::Chat {
                        channel: self.oa_notice.chat_channel.clone(),
                        text,
                        data: serde_json::json!({"template_id": template_id, "status": status}),
                    };
                    let job = crate::outbox::job(&payload, now, format!("inbox:{}", row.id));
                    self.store.enqueue_jobs(&[job], now).await?;
                    self.store
                        .set_template_status(template_id, status, now)
                        .await?;
                    self.jobs_enqueued.notify_one();
                }
                Ok(Event {
                    kind: EventKind::DailyQuota { quota },
                    ..
                }) => {
                    tracing::info!(inbox = row.id, quota = ?quota, "the OA's daily template quota");
                    self.store.set_daily_quota(*quota, now).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Contacts, rule firings and (when rules use lists) list memberships of these users: from
    /// the forecast's cache when it has one, else from the store.
    async fn load_state(&self, users: &[String]) -> Result<BatchState, StoreError> {
        let rules = self.engine.rule_set();
        let need = Need {
            // Campaigns need it too (a repeat registration's cooldown).
            history: !(rules.is_empty() && rules.campaigns().is_empty()),
            lists: !rules.lists().is_empty(),
            campaigns: !rules.campaigns().is_empty(),
        };
        match &self.cache {
            Some(cache) => cache.load(&self.store, users, need).await,
            None => state::load(&self.store, users, need).await,
        }
    }

    async fn one_by_one(
        &self,
        parsed: Vec<(InboxEvent, Result<Event, String>)>,
        mut state: BatchState,
    ) -> Result<(), StoreError> {
        for (row, ev) in &parsed {
            let mut caused = Caused::default();
            let result = match ev {
                Ok(ev) => {
                    let at = event_time(ev, row);
                    let mut scratch = state.clone();
                    let effects =
                        self.engine
                            .process(ev, at, &format!("inbox:{}", row.id), &mut scratch);
                    let has_jobs = !effects.jobs.is_empty();
                    caused = Caused::of(&effects);
                    let c = Completion {
                        inbox_id: row.id,
                        effects,
                    };
                    let r = self
                        .store
                        .complete_inbox(&self.owner, std::slice::from_ref(&c), self.clock.now())
                        .await;
                    if r.is_ok() {
                        state = scratch;
                        if has_jobs {
                            self.jobs_enqueued.notify_one();
                        }
                        self.committed(std::slice::from_ref(&c));
                    }
                    r.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.clone()),
            };
            match result {
                Ok(()) => self.record_done(
                    std::slice::from_ref(&(row.clone(), ev.clone())),
                    &HashMap::from([(row.id, caused)]),
                    self.clock.now(),
                ),
                Err(e) => self.retry_later(row, &e).await?,
            }
        }
        Ok(())
    }

    /// After a commit: the VIP set follows the tag changes just written.
    fn committed(&self, done: &[Completion]) {
        if let Some(vip) = &self.vip {
            vip.apply(done.iter().flat_map(|c| &c.effects.contacts));
        }
    }

    async fn retry_later(&self, row: &InboxEvent, error: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let retry_at =
            (row.attempts < MAX_ATTEMPTS).then(|| now + 1000 * (1i64 << row.attempts.clamp(0, 10)));
        if retry_at.is_none() {
            tracing::error!(inbox_id = row.id, event = %row.event_name, %error, "event given up after {MAX_ATTEMPTS} attempts");
            metrics::counter!("zaloflow_inbox_failed_total").increment(1);
        }
        self.store
            .fail_inbox(&self.owner, row.id, error, retry_at, now)
            .await
    }

    /// Metrics and one log line per processed event: its contact, the rules it fired and
    /// how many sends it queued.
    fn record_done(
        &self,
        rows: &[(InboxEvent, Result<Event, String>)],
        caused: &HashMap<i64, Caused>,
        now: i64,
    ) {
        for (row, ev) in rows {
            if ev.is_err() {
                continue;
            }
            metrics::counter!("zaloflow_inbox_processed_total", "event" => metric_event_name(&row.event_name)).increment(1);
            let latency_ms = (now - row.received_at).max(0);
            metrics::histogram!("zaloflow_inbox_processing_latency_seconds")
                .record(latency_ms as f64 / 1000.0);
            let c = caused.get(&row.id).cloned().unwrap_or_default();
            tracing::info!(
                inbox_id = row.id,
                event = %row.event_name,
                user = %row.user_id,
                rules = %c.rules.join(","),
                jobs = c.jobs,
                latency_ms,
                "event processed"
            );
        }
    }
}

/// A batch run through the engine, not yet committed.
struct Decided {
    parsed: Vec<(InboxEvent, Result<Event, String>)>,
    /// The users' state before the batch (for a retry one event at a time).
    before: BatchState,
    /// Whose state it is.
    users: Vec<String>,
    done: Vec<Completion>,
    /// Indexes in `parsed` of the events that did not parse.
    failed: Vec<usize>,
    now: i64,
}

/// Why the processor woke.
enum Wake {
    /// Events were stored without a lease: claim them from the table.
    Stored,
    /// The intake handed these over.
    Handed(Handed),
    /// Time to look at the table anyway (retries, expired leases).
    Poll,
}

/// What processing one event caused, for its log line.
#[derive(Debug, Clone, Default)]
struct Caused {
    /// Ids of the rules that fired, in firing order.
    rules: Vec<String>,
    jobs: usize,
}

impl Caused {
    fn of(effects: &crate::store::Effects) -> Caused {
        let mut rules: Vec<String> = Vec::new();
        for f in &effects.fires {
            if !rules.contains(&f.rule_id) {
                rules.push(f.rule_id.clone());
            }
        }
        Caused {
            rules,
            jobs: effects.jobs.len(),
        }
    }
}

/// Known event names keep their label; anything else is `other` (bounded label set).
fn metric_event_name(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "user_send_text",
        "user_send_image",
        "user_send_link",
        "user_send_sticker",
        "user_send_file",
        "follow",
        "unfollow",
        "user_click_chatnow",
        "add_user_to_tag",
        "remove_user_from_tag",
        "user_submit_info",
        "user_reacted_message",
        "user_received_message",
        "user_seen_message",
        "permission_revoked",
        "oa_send_text",
        event::FORM_SUBMITTED,
        event::EMAIL_OPENED,
        event::EMAIL_CLICKED,
    ];
    KNOWN
        .iter()
        .find(|k| **k == name)
        .copied()
        .unwrap_or("other")
}

/// The instant an event is processed as of: its own time when Zalo gave a plausible one that
/// is not ahead of when we received it (a retried delivery keeps its time of day), else when
/// we received it — Zalo's clock can run ahead of ours, and a reply planned at a future stamp
/// would wait for it.
pub fn event_time(ev: &Event, row: &InboxEvent) -> i64 {
    ev.timestamp_ms
        .filter(|t| *t > 1_000_000_000_000)
        .map_or(row.received_at, |t| t.min(row.received_at))
}

fn concerned_users(ev: &Event) -> Vec<String> {
    match &ev.kind {
        EventKind::TagAdded { user_ids, .. } | EventKind::TagRemoved { user_ids, .. } => {
            user_ids.clone()
        }
        _ => ev.user_id().map(str::to_string).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_stamped_ahead_of_our_clock_is_processed_as_of_its_arrival() {
        let row = |received_at: i64| InboxEvent {
            id: 1,
            dedupe_key: "k".into(),
            event_name: "follow".into(),
            user_id: "1".into(),
            body: String::new(),
            event_ts: None,
            received_at,
            attempts: 0,
        };
        let ev = |ts: Option<i64>| Event {
            timestamp_ms: ts,
            ..crate::zalo::event::parse(br#"{"event_name":"follow","follower":{"id":"1"}}"#)
                .unwrap()
        };
        let t = 1_800_000_000_000;
        // A retried delivery keeps its own time (its time of day).
        assert_eq!(event_time(&ev(Some(t - 60_000)), &row(t)), t - 60_000);
        // Ahead of our clock: as of when it arrived.
        assert_eq!(event_time(&ev(Some(t + 90_000)), &row(t)), t);
        assert_eq!(event_time(&ev(None), &row(t)), t);
        assert_eq!(event_time(&ev(Some(5)), &row(t)), t);
    }
}

//! The sender: claims due jobs, sends them through their channel (Zalo OA calls through the
//! rate limiter, by the single holder of the `zalo-sender` lease), records outcomes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::cost::{Verdict, OPTED_OUT};
use super::retry::Next;
use super::{Limiter, RetryPolicy};
use crate::channels::{Channel, Payload, SendError};
use crate::clock::{system_now, Clock};
use crate::store::{ContactChange, DynStore, Job, JobLane, JobOutcome, JobResult, StoreError};
use zaloflow_core::cost::SendCost;

/// The lease that makes one instance the OA's only caller (so the rate limit is global).
pub const ZALO_SENDER_LEASE: &str = "zalo-sender";

#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub batch: i64,
    /// Jobs sent at once (different users; one user's jobs are always sequential).
    pub concurrency: usize,
    /// Longer than a channel call may take.
    pub lease: Duration,
    pub poll: Duration,
    /// Adds the open pixel and click redirects to emails that ask for tracking, when they are
    /// sent (the job id is the email's id in the tracking links).
    pub tracking: Option<EmailTracking>,
    /// Holds Zalo OA jobs back while the OA must be connected again.
    pub oa_gate: super::oa::OaGate,
    /// Prices each send and holds back what Zalo's caps or the budget do not allow now.
    pub cost: super::cost::CostGuard,
}

/// The key and public base URL of email tracking links.
#[derive(Debug, Clone)]
pub struct EmailTracking {
    pub key: crate::tracking::TrackingKey,
    /// `ZALOFLOW_PUBLIC_URL`
    pub public_url: String,
}

impl Default for SenderOptions {
    fn default() -> Self {
        SenderOptions {
            batch: 200,
            concurrency: 32,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            tracking: None,
            oa_gate: Default::default(),
            cost: Default::default(),
        }
    }
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    /// Not attempted (channel not configured): status `skipped`.
    pub skipped: usize,
    /// Held back before the call — a cap, the budget, the billing account — and due again
    /// when the hold ends (not counted in `retried`).
    pub held: usize,
}

/// How the last error of a held send starts (`held: …`), where staff read it.
pub const HELD_PREFIX: &str = "held:";

impl Summary {
    fn add(&mut self, o: &JobOutcome) {
        match &o.result {
            JobResult::Sent { .. } => self.sent += 1,
            JobResult::Retry { error, .. } if error.starts_with(HELD_PREFIX) => self.held += 1,
            JobResult::Retry { .. } => self.retried += 1,
            JobResult::Dead { .. } => self.dead += 1,
            JobResult::Skipped(_) => self.skipped += 1,
        }
    }
}

#[derive(Clone)]
pub struct Sender {
    pub(crate) store: DynStore,
    pub(crate) channels: Arc<dyn Channel>,
    pub(crate) limiter: Limiter,
    pub(crate) retry: RetryPolicy,
    pub(crate) clock: Clock,
    pub(crate) owner: String,
    pub(crate) options: SenderOptions,
    /// The `zalo-sender` lease as this sender last took it (`HeldLease::default()` for a new
    /// sender; clones share it, as they share the owner).
    pub(crate) held: HeldLease,
}

/// Until when (ms since the epoch, system clock) a sender holds the `zalo-sender` lease by its
/// last write of it; 0 when it does not.
#[derive(Clone, Debug, Default)]
pub struct HeldLease(Arc<AtomicI64>);

impl HeldLease {
    /// Whether, by its last write, this sender still holds the `zalo-sender` lease at `now`
    /// with more than `margin_ms` to spare (other OA callers of the instance share it).
    pub fn holds(&self, now: i64, margin_ms: i64) -> bool {
        self.0.load(Ordering::Relaxed) - now > margin_ms
    }
}

impl Sender {
    /// A sender of `store`'s jobs through `channels`, its leases owned by `owner`: no rate
    /// limit, the default retry schedule and options, the system clock, until set.
    pub fn new(store: DynStore, channels: Arc<dyn Channel>, owner: impl Into<String>) -> Sender {
        Sender {
            store,
            channels,
            limiter: Limiter::default(),
            retry: RetryPolicy::default(),
            clock: Clock::system(),
            owner: owner.into(),
            options: SenderOptions::default(),
            held: HeldLease::default(),
        }
    }

    /// The rate limit of OA calls (shared with the other OA callers of the process).
    pub fn with_limiter(mut self, limiter: Limiter) -> Sender {
        self.limiter = limiter;
        self
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Sender {
        self.retry = retry;
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Sender {
        self.clock = clock;
        self
    }

    pub fn with_options(mut self, options: SenderOptions) -> Sender {
        self.options = options;
        self
    }

    /// Open and click tracking for the emails that ask for it.
    pub fn with_tracking(mut self, tracking: EmailTracking) -> Sender {
        self.options.tracking = Some(tracking);
        self
    }

    /// The process's gate on OA calls (closed on `permission_revoked`).
    pub fn with_oa_gate(mut self, gate: super::oa::OaGate) -> Sender {
        self.options.oa_gate = gate;
        self
    }

    /// The rate limit this sender paces OA calls with.
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// The `zalo-sender` lease as this sender last took it.
    pub fn held(&self) -> &HeldLease {
        &self.held
    }

    /// Runs until `stop`: wakes on `enqueued` or every poll interval.
    pub async fn run(self, enqueued: Arc<Notify>, stop: CancellationToken) {
        loop {
            match self.deliver(&stop).await {
                Ok(s) if s != Summary::default() => tracing::debug!(?s, "outbox pass"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "outbox paused");
                    metrics::counter!("zaloflow_outbox_errors_total").increment(1);
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = enqueued.notified() => {}
                _ = tokio::time::sleep(self.options.poll) => {}
            }
        }
        self.held.0.store(0, Ordering::Relaxed);
        let _ = self
            .store
            .release_lease(ZALO_SENDER_LEASE, &self.owner)
            .await;
    }

    /// All jobs if this instance holds (or takes) the Zalo sender lease, else everything but
    /// OA calls.
    ///
    /// A lease held with more than two thirds of its time left is not written again: a batch
    /// takes at most a third of it (`batch_size`), so it ends with the lease still held. An
    /// idle `serve` renewed it on every poll, four commits a second (and their syncs) with
    /// nothing to send; now it is written once a third of its time has gone.
    async fn lane(&self) -> JobLane {
        let (now, ttl) = (system_now(), self.lease_ttl_ms());
        if self.held.0.load(Ordering::Relaxed) - now > ttl * 2 / 3 {
            return JobLane::All;
        }
        match self
            .store
            .try_lease(ZALO_SENDER_LEASE, &self.owner, now, ttl)
            .await
        {
            Ok(true) => {
                self.held.0.store(now + ttl, Ordering::Relaxed);
                JobLane::All
            }
            _ => {
                self.held.0.store(0, Ordering::Relaxed);
                JobLane::NotZaloOa
            }
        }
    }

    /// Sends everything due now, batch by batch, as `serve` does: the `zalo-sender` lease is
    /// taken or renewed before each batch, so OA calls stop here as soon as another instance
    /// holds it (a long backlog never outlives the lease and puts two callers on Zalo).
    pub async fn deliver(&self, stop: &CancellationToken) -> Result<Summary, StoreError> {
        let mut summary = Summary::default();
        while !stop.is_cancelled() {
            let lane = self.lane().await;
            if !self.batch(lane, &mut summary).await? {
                break;
            }
        }
        Ok(summary)
    }

    /// Sends everything due now (claimable in `lane`) until nothing is left.
    pub async fn pass(
        &self,
        lane: JobLane,
        stop: &CancellationToken,
    ) -> Result<Summary, StoreError> {
        let mut summary = Summary::default();
        while !stop.is_cancelled() {
            if !self.batch(lane, &mut summary).await? {
                break;
            }
        }
        Ok(summary)
    }

    /// How many jobs one claim takes: the configured batch, and for OA calls no more than the
    /// rate limit lets out in a third of the `zalo-sender` lease, so a batch is done (and the
    /// lease renewed) long before the lease could pass to another instance.
    fn batch_size(&self, lane: JobLane) -> i64 {
        let ttl_secs = (self.lease_ttl_ms() / 1000).max(1) as usize;
        match (lane, self.limiter.per_second()) {
            (JobLane::All | JobLane::ZaloOa, Some(rate)) => {
                self.options.batch.min((rate * ttl_secs / 3).max(1) as i64)
            }
            _ => self.options.batch,
        }
    }

    /// The `zalo-sender` lease lasts as long as a job's lease: after a crash, another
    /// instance takes over OA calls when the dead one's claimed jobs are free again.
    fn lease_ttl_ms(&self) -> i64 {
        (self.options.lease.as_millis() as i64).max(5_000)
    }

    /// Claims and sends one batch; answers false when nothing was due. Outcomes are recorded
    /// as they come (whatever finished since the last commit goes in one transaction), so a
    /// crash repeats only the calls in flight and the outcomes not yet committed — not the whole
    /// batch.
    async fn batch(&self, lane: JobLane, summary: &mut Summary) -> Result<bool, StoreError> {
        let Some(lane) = self.options.oa_gate.narrow(&*self.store, lane).await else {
            return Ok(false);
        };
        let now = self.clock.now();
        if let Err(e) = self.options.cost.refresh(&self.store, now).await {
            tracing::warn!(error = %e, "could not read today's spend");
        }
        let jobs = self
            .store
            .claim_jobs(
                &self.owner,
                now,
                system_now(),
                self.options.lease.as_millis() as i64,
                self.batch_size(lane),
                lane,
            )
            .await?;
        if jobs.is_empty() {
            return Ok(false);
        }
        let priced: Vec<&str> = jobs
            .iter()
            .filter(|j| j.channel == crate::channels::zalo::NAME && !j.user_id.is_empty())
            .map(|j| j.user_id.as_str())
            .collect();
        if let Err(e) = self
            .options
            .cost
            .prefetch(&self.store, &self.owner, &priced, now)
            .await
        {
            // Each send is then priced from the store on its own.
            tracing::warn!(error = %e, "could not read the batch's send history");
        }
        // Sending and recording run side by side (one task, both polled): a send in flight may
        // hold a database connection (tokens), so recording must not stop the sends.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let send = async move {
            let mut outcomes = std::pin::pin!(self.send_batch(jobs));
            while let Some(o) = outcomes.next().await {
                let _ = tx.send(o);
            }
        };
        let record = async {
            let mut failed = None;
            let mut chunk = Vec::new();
            while let Some(o) = rx.recv().await {
                chunk.push(o);
                while let Ok(more) = rx.try_recv() {
                    chunk.push(more);
                }
                for o in &chunk {
                    summary.add(o);
                }
                match self
                    .store
                    .finish_jobs(&self.owner, &chunk, self.clock.now())
                    .await
                {
                    Ok(0) => {}
                    Ok(lost) => tracing::warn!(
                        lost,
                        "outcomes of jobs whose lease had expired were not recorded"
                    ),
                    // those jobs stay leased and are taken again when the lease expires
                    Err(e) => failed = Some(e),
                }
                chunk.clear();
            }
            failed
        };
        let ((), failed) = tokio::join!(send, record);
        match failed {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    /// Sends the jobs: one user's in order, one after the other; users side by side. Yields
    /// each outcome as soon as it is known.
    fn send_batch(&self, jobs: Vec<Job>) -> impl futures_util::Stream<Item = JobOutcome> + '_ {
        let mut lanes: BTreeMap<String, Vec<Job>> = BTreeMap::new();
        let mut solo = Vec::new();
        for j in jobs {
            if j.user_id.is_empty() {
                solo.push(vec![j]);
            } else {
                lanes.entry(j.user_id.clone()).or_default().push(j);
            }
        }
        let groups: Vec<Vec<Job>> = lanes.into_values().chain(solo).collect();
        stream::iter(groups)
            .map(|group| Box::pin(stream::iter(group).then(|job| self.attempt(job))))
            .flatten_unordered(self.options.concurrency.max(1))
    }

    async fn attempt(&self, job: Job) -> JobOutcome {
        let payload: Payload = match serde_json::from_str(&job.payload) {
            Ok(p) => self.add_tracking(p, job.id),
            Err(e) => {
                return JobOutcome {
                    id: job.id,
                    result: JobResult::Dead {
                        error: format!("unreadable payload: {e}"),
                        code: None,
                    },
                    contact: None,
                }
            }
        };
        let checked_at = self.clock.now();
        let cost = match self
            .options
            .cost
            .check(&self.store, &job.user_id, &payload, checked_at)
            .await
        {
            Ok(Verdict::Go(cost)) => cost,
            Ok(Verdict::Hold {
                until,
                reason,
                why,
                notice,
            }) => return self.hold(job, until, reason, why, notice).await,
            Err(e) => {
                let now = self.clock.now();
                return JobOutcome {
                    id: job.id,
                    result: JobResult::Retry {
                        run_at: now + 5_000,
                        error: format!("could not price the send: {e}"),
                        code: None,
                    },
                    contact: None,
                };
            }
        };
        let permit = if job.channel == crate::channels::zalo::NAME {
            Some(self.limiter.acquire().await)
        } else {
            None
        };
        let started = Instant::now();
        let result = self.channels.send(&payload).await;
        drop(permit);
        if let (Err(_), Some(c)) = (&result, &cost) {
            self.options.cost.unreserve(c, self.clock.now());
        }
        if result.is_err() && job.channel == crate::channels::zns::NAME {
            self.options.cost.template_unsent(checked_at);
        }
        let channel = channel_label(&job.channel);
        metrics::histogram!("zaloflow_outbox_send_seconds", "channel" => channel)
            .record(started.elapsed());
        let now = self.clock.now();
        self.outcome(job, &payload, cost, result, channel, now)
            .await
    }

    /// What a send's answer means for its job: sent (with its price), skipped (not
    /// configured, opted out, refused with a next choice), held (-321), retried or dead.
    async fn outcome(
        &self,
        job: Job,
        payload: &Payload,
        cost: Option<SendCost>,
        result: Result<crate::channels::Delivered, SendError>,
        channel: &'static str,
        now: i64,
    ) -> JobOutcome {
        match result {
            Ok(d) => {
                metrics::counter!("zaloflow_outbox_sent_total", "channel" => channel).increment(1);
                tracing::info!(job = job.id, channel, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), source = %job.source, attempts = job.attempts, "sent");
                if let Some(c) = &cost {
                    self.options.cost.sent(job.id, &job.user_id, c, now);
                    metrics::counter!("zaloflow_send_cost_vnd_total", "class" => c.class.as_str())
                        .increment(c.vnd.max(0) as u64);
                }
                JobOutcome {
                    id: job.id,
                    result: JobResult::Sent {
                        provider_id: d.provider_id,
                        cost,
                    },
                    contact: None,
                }
            }
            Err(SendError::NotConfigured { .. }) => {
                // Not attempted and never retried: recorded as skipped, with what to set.
                let missing = not_configured(payload);
                metrics::counter!("zaloflow_jobs_skipped_total", "channel" => channel, "reason" => crate::channels::configured::NOT_CONFIGURED).increment(1);
                tracing::warn!(job = job.id, channel, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), source = %job.source, reason = %missing, "skipped");
                JobOutcome {
                    id: job.id,
                    result: JobResult::Skipped(crate::store::JobSkip {
                        reason: crate::channels::configured::NOT_CONFIGURED.into(),
                        message: format!("skipped: {missing}"),
                    }),
                    contact: None,
                }
            }
            Err(e) if e.code() == Some(-244) => {
                // The user refused this type of message: never retried, and the contact
                // remembers it so no later send of the type is planned.
                metrics::counter!("zaloflow_jobs_skipped_total", "channel" => channel, "reason" => OPTED_OUT).increment(1);
                tracing::info!(job = job.id, channel, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), "the user refused this message type (-244)");
                JobOutcome {
                    id: job.id,
                    result: JobResult::Skipped(crate::store::JobSkip {
                        reason: OPTED_OUT.into(),
                        message: format!(
                            "skipped: the user refused this type of message (Zalo answered -244); no more of it is planned for them ({e})"
                        ),
                    }),
                    contact: contact_lesson(payload, &e, now),
                }
            }
            Err(e) if e.code() == Some(-321) => {
                self.options
                    .cost
                    .tell_staff_once(
                        &self.store,
                        "billing",
                        crate::i18n::tr(self.options.cost.lang, "notice.billing").into_owned(),
                        now,
                        &self.owner,
                    )
                    .await;
                return self
                    .hold(
                        job,
                        now + super::cost::BILLING_RETRY_MS,
                        "billing",
                        format!("held: Zalo's billing account is out of money (-321); top it up and it goes out ({e})"),
                        None, // told just above
                    )
                    .await;
            }
            Err(e)
                if e.code().is_some_and(|c| FALLBACK_CODES.contains(&c))
                    && !zaloflow_core::job::fallbacks(&job.payload).is_empty() =>
            {
                let contact = contact_lesson(payload, &e, now);
                self.fall_back(job, e, contact, now).await
            }
            Err(e) => {
                let code = e.code();
                let code_label = code.map(|c| c.to_string()).unwrap_or_else(|| "none".into());
                let contact = contact_lesson(payload, &e, now);
                let next = if job.channel == crate::channels::zalo::NAME
                    && !matches!(e, SendError::Permanent { .. })
                    && self.options.oa_gate.paused_fresh(&*self.store).await
                {
                    // The OA waits for a person (permission revoked, refresh refused): the
                    // job waits too, and goes as soon as the OA is connected again.
                    Next::RetryAt(now)
                } else {
                    self.retry.next(job.attempts, &e, now)
                };
                let result = match next {
                    Next::RetryAt(at) => {
                        metrics::counter!("zaloflow_outbox_retried_total", "channel" => channel, "code" => code_label).increment(1);
                        tracing::info!(job = job.id, channel, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), source = %job.source, attempts = job.attempts, error = %e, retry_in_ms = at - now, "send failed; will retry");
                        JobResult::Retry {
                            run_at: at,
                            error: e.to_string(),
                            code,
                        }
                    }
                    Next::Dead(reason) => {
                        metrics::counter!("zaloflow_outbox_dead_total", "channel" => channel, "code" => code_label).increment(1);
                        tracing::warn!(job = job.id, channel, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), source = %job.source, attempts = job.attempts, %reason, "dead-lettered");
                        JobResult::Dead {
                            error: reason,
                            code,
                        }
                    }
                };
                JobOutcome {
                    id: job.id,
                    result,
                    contact,
                }
            }
        }
    }
}

/// Zalo's answers after which a `try:` send goes on to its next choice: the 7-day window
/// closed (-230), the user has not interacted / cannot be reached this way (-232), a template
/// that cannot go by user id (-249), a user who does not follow the OA (-213).
/// The reason of a send that Zalo refused and whose next choice went instead.
pub const FELL_BACK: &str = "fell_back";

pub const FALLBACK_CODES: [i64; 4] = [-230, -232, -249, -213];

impl Sender {
    /// Zalo refused the send with one of [`FALLBACK_CODES`] and it has a next choice: that
    /// choice is queued (once, whatever retries or crashes: its dedupe key is this job's id)
    /// with the choices after it, and this job is recorded as skipped, saying what went instead.
    async fn fall_back(
        &self,
        job: Job,
        e: SendError,
        contact: Option<ContactChange>,
        now: i64,
    ) -> JobOutcome {
        let mut rest = zaloflow_core::job::fallbacks(&job.payload);
        let next = rest.remove(0);
        let mut new = super::job(&next, now, format!("fallback:{}", job.id)).with_fallbacks(&rest);
        new.user_id = job.user_id.clone();
        new.priority = job.priority;
        new.rule_id = job.rule_id.clone();
        new.variant = job.variant.clone();
        new.dedupe_key = Some(format!("fallback:{}", job.id));
        let channel = channel_label(&job.channel);
        if let Err(err) = self.store.enqueue_jobs(&[new], now).await {
            return JobOutcome {
                id: job.id,
                result: JobResult::Retry {
                    run_at: now + 5_000,
                    error: format!("could not queue the next choice ({err}) after: {e}"),
                    code: e.code(),
                },
                contact,
            };
        }
        let instead = next.summary();
        metrics::counter!("zaloflow_jobs_skipped_total", "channel" => channel, "reason" => FELL_BACK).increment(1);
        tracing::info!(job = job.id, channel, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), error = %e, %instead, "Zalo refused; the next choice of `try:` is queued");
        JobOutcome {
            id: job.id,
            result: JobResult::Skipped(crate::store::JobSkip {
                reason: FELL_BACK.into(),
                message: format!("skipped: Zalo refused it ({e}); sent instead: {instead}"),
            }),
            contact,
        }
    }

    /// A send that may not go now: due again at `until`, the reason in its last error, never
    /// dead-lettered for it. A spent budget is told to staff once a day.
    async fn hold(
        &self,
        job: Job,
        until: i64,
        reason: &'static str,
        why: String,
        notice: Option<String>,
    ) -> JobOutcome {
        metrics::counter!("zaloflow_jobs_held_total", "channel" => channel_label(&job.channel), "reason" => reason).increment(1);
        tracing::info!(job = job.id, user = %job.user_id, rule = job.rule_id.as_deref().unwrap_or(""), until, %why, "held");
        if let Some(text) = notice {
            self.options
                .cost
                .tell_staff_once(&self.store, reason, text, self.clock.now(), &self.owner)
                .await;
        }
        JobOutcome {
            id: job.id,
            result: JobResult::Retry {
                run_at: until,
                error: why,
                code: None,
            },
            contact: None,
        }
    }
}

/// What a payload's unconfigured channel lacks, in words.
pub fn not_configured(p: &Payload) -> crate::channels::configured::Missing {
    let none = crate::channels::configured::Configured::default();
    let missing = match p {
        Payload::Zalo { .. } | Payload::ZaloTag { .. } => none.zalo(false),
        Payload::Zns { .. } => none.zalo(true),
        _ => none.missing(p),
    };
    missing.expect("nothing is configured in the default")
}

impl Sender {
    /// An email that asks for tracking gets its pixel and tracked links, made now for job `id`.
    fn add_tracking(&self, p: Payload, id: i64) -> Payload {
        match (p, &self.options.tracking) {
            (
                Payload::Email {
                    to,
                    subject,
                    html,
                    text,
                    track: Some(track),
                },
                Some(t),
            ) => Payload::Email {
                to,
                subject,
                html: crate::tracking::track_html(&t.key, &t.public_url, id, &html),
                text,
                track: Some(track),
            },
            (p, _) => p,
        }
    }
}

/// What a permanent Zalo answer tells us about the contact.
fn contact_lesson(payload: &Payload, err: &SendError, now: i64) -> Option<ContactChange> {
    if let (Payload::Zalo { user_id, kind, .. }, Some(-244)) = (payload, err.code()) {
        let mut ch = ContactChange::new(user_id.clone(), now);
        ch.fields_set
            .push((super::cost::opt_out_field(*kind), "yes".into()));
        return Some(ch);
    }
    if let (
        Payload::Zns {
            user_id: Some(user_id),
            ..
        },
        Some(-244),
    ) = (payload, err.code())
    {
        let mut ch = ContactChange::new(user_id.clone(), now);
        ch.fields_set
            .push((super::cost::TEMPLATE_OPT_OUT.into(), "yes".into()));
        return Some(ch);
    }
    let (Payload::Zalo { user_id, .. } | Payload::ZaloTag { user_id, .. }) = payload else {
        return None;
    };
    let status = match err.code()? {
        -213 => "not_follower",
        -217 => "blocked",
        -227 => "inactive",
        _ => return None,
    };
    let mut ch = ContactChange::new(user_id.clone(), now);
    if matches!(status, "not_follower" | "blocked") {
        ch.follows = Some(false);
    }
    ch.fields_set.push(("zalo_status".into(), status.into()));
    Some(ch)
}

fn channel_label(c: &str) -> &'static str {
    match c {
        "zalo" => "zalo",
        "sms" => "sms",
        "email" => "email",
        "zns" => "zns",
        "chat" => "chat",
        "task" => "task",
        _ => "other",
    }
}

//! The scheduler: everything time-based, decided by [`tick`] as of a given instant.
//!
//! One tick, in order:
//! 1. **campaigns** — members of a campaign whose steps changed since the last pass move as
//!    docs/campaigns.md says ([`edits_against`] shows it beforehand); contacts who joined a
//!    `list_joined` list enter; every membership whose next step is due runs it (or leaves:
//!    unfollowed, goal reached), and is moved to its next step (members wait for a step id);
//! 2. **field changes** — contact fields that took a new value since the last tick start their
//!    `field_changed` rules, once per change (rules, forms, Zalo info, imports and the admin API
//!    alike: the store moves a field's `updated_at` only when its value changes);
//! 3. **schedules** — `schedule` rules whose cron time came, for their contacts (see
//!    [`schedule_scan`]); an occurrence missed by more than the grace period is skipped, never
//!    sent late;
//! 4. **re-activation** — `inactive` rules, one range query per rule window on the
//!    `last_interaction` index; once per silence;
//! 5. **special days** — `special_day` rules: every contact at the day's first pass, then the
//!    contacts whose date field changed since (they qualify later that day); once a year per
//!    contact;
//! 6. **emails not opened** — `email_not_opened` rules for emails sent N hours ago that no
//!    person opened or clicked (machines' opens count only with `machine_opens: true`; the
//!    question is `crate::tracking::opened_emails`), once per email;
//! 7. **delivery** (`tick --at`) — every outbound job due by the instant.
//!
//! Every decision is applied with its effects in one transaction, and is made once: campaign
//! steps, special days and "not opened" follow-ups carry a mark (`scheduler_marks`); schedules
//! and re-activation rely on rule firings (`rule_state`) and job dedupe keys. The same instant
//! twice sends nothing new. Only one instance ticks at a time (the `tick` lease).

mod campaigns;
mod emails;
mod fields;
mod reactivation;
mod schedules;
mod special_days;
mod summary;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::engine::{BatchState, Engine};
use crate::outbox::Sender;
use crate::rules::model::{Condition, SpecialDate, Trigger, DAY, HOUR, MINUTE};
use crate::rules::{Campaign, RuleSet, SendTime, Stimulus};
use crate::store::{
    CampaignChange, CampaignMember, ContactScan, Decision, DynStore, Effects, JobLane, StoreError,
};

use campaigns::*;
pub use campaigns::{check_against, edits_against};
use emails::*;
use fields::*;
use reactivation::*;
pub use schedules::schedule_scan;
use schedules::*;
use special_days::*;
pub use summary::{
    CampaignReport, JobCounts, RuleReport, ScheduleReport, ScheduleStatus, TickReport,
};

/// The named lease that makes one instance the ticker.
pub const TICK_LEASE: &str = "tick";

#[derive(Debug, Clone)]
pub struct TickOptions {
    /// A schedule occurrence (or a campaign step at an exact clock time) missed by more than
    /// this is not sent late: the occurrence is skipped, the step moves to its next day.
    pub grace_ms: i64,
    /// Contacts evaluated per transaction.
    pub page: usize,
    /// How long the tick lease lasts (renewed between stages once a quarter of it has gone).
    pub lease_ms: i64,
    /// How long to wait for the lease when another instance is ticking (0: skip this tick).
    pub lease_wait: Duration,
    /// How far back the first scan of field changes and list joins looks (ms of wall time).
    pub first_lookback_ms: i64,
}

impl Default for TickOptions {
    fn default() -> Self {
        TickOptions {
            grace_ms: 15 * MINUTE,
            page: 2000,
            lease_ms: 120_000,
            lease_wait: Duration::ZERO,
            first_lookback_ms: DAY,
        }
    }
}

/// What a tick needs.
#[derive(Clone)]
pub struct TickContext {
    pub(crate) store: DynStore,
    pub(crate) engine: Arc<Engine>,
    /// Delivers the jobs due by the tick's instant (`tick --at`); `None` in `serve`, whose
    /// senders run on their own.
    pub(crate) sender: Option<Sender>,
    /// The lease owner.
    pub(crate) owner: String,
    /// Wall time, for the lease and for scans of rows written since the last tick (field
    /// changes, list joins). The tick's own instant is the `now` it is given.
    pub(crate) clock: Clock,
    pub(crate) options: TickOptions,
    /// When set, the tick also escalates missed handoff deadlines (VIP care).
    pub(crate) escalation: Option<(crate::handoff::HandoffConfig, crate::handoff::HandoffPolicy)>,
    /// When this context last took or renewed the tick lease (`renew`).
    renewed: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
    /// A forecast's copy keeps its sends here instead of the store's outbox.
    pub(crate) sink: Option<Arc<dyn crate::outbox::sink::JobSink>>,
    /// A forecast's contacts' state kept by its processor: the contacts a pass decides
    /// something for are forgotten there.
    pub(crate) cache: Option<Arc<crate::engine::state::StateCache>>,
}

impl TickContext {
    pub fn new(store: DynStore, engine: Arc<Engine>, owner: impl Into<String>) -> TickContext {
        TickContext {
            store,
            engine,
            sender: None,
            owner: owner.into(),
            clock: Clock::system(),
            options: TickOptions::default(),
            escalation: None,
            renewed: Arc::default(),
            sink: None,
            cache: None,
        }
    }

    /// The jobs of applied decisions go to `sink` rather than the store's outbox (a
    /// forecast's copy).
    pub fn with_sink(mut self, sink: Arc<dyn crate::outbox::sink::JobSink>) -> TickContext {
        self.sink = Some(sink);
        self
    }

    /// The contacts a pass decides something for are forgotten in `cache` (a forecast's
    /// processor keeps their state there).
    pub fn with_state_cache(mut self, cache: Arc<crate::engine::state::StateCache>) -> TickContext {
        self.cache = Some(cache);
        self
    }

    /// Delivers the jobs due by the tick's instant through `sender` (`tick --at`).
    pub fn with_sender(mut self, sender: Sender) -> TickContext {
        self.sender = Some(sender);
        self
    }

    pub fn with_options(mut self, options: TickOptions) -> TickContext {
        self.options = options;
        self
    }

    /// The tick also escalates missed handoff deadlines, with these settings.
    pub fn with_escalation(
        mut self,
        settings: crate::handoff::HandoffConfig,
        policy: crate::handoff::HandoffPolicy,
    ) -> TickContext {
        self.escalation = Some((settings, policy));
        self
    }

    /// The same context deciding with another engine (its rules and channels).
    pub fn with_engine(mut self, engine: Arc<Engine>) -> TickContext {
        self.engine = engine;
        self
    }
}

/// One scheduler pass as of `now` (ms). See the module documentation.
#[tracing::instrument(skip_all, fields(at = now))]
pub async fn tick(ctx: &TickContext, now: i64) -> Result<TickReport, StoreError> {
    let rules = ctx.engine.rule_set();
    let mut report = TickReport::new(now, ctx.engine.tz(), ctx.engine.lang());
    if take_lease(ctx).await? {
        let result = decide(ctx, &rules, now, &mut report).await;
        if let Err(e) = ctx.store.release_lease(TICK_LEASE, &ctx.owner).await {
            tracing::warn!(error = %e, "could not give back the tick lease");
        }
        result?;
        report.ran = true;
        // Missed handoff deadlines: escalated once per breach (safe on several instances).
        if let Some((settings, policy)) = &ctx.escalation {
            let esc = crate::handoff::escalate_due(&*ctx.store, now, settings, policy).await?;
            report.escalated = esc.escalated;
        }
    } else {
        tracing::info!("another instance is ticking: nothing decided here");
    }
    if let Some(sender) = &ctx.sender {
        let stop = tokio_util::sync::CancellationToken::new();
        report.delivered = Some(sender.pass(JobLane::All, &stop).await?);
    }
    metrics::counter!("zaloflow_scheduler_ticks_total").increment(1);
    metrics::counter!("zaloflow_scheduler_jobs_total").increment(report.jobs as u64);
    Ok(report)
}

async fn take_lease(ctx: &TickContext) -> Result<bool, StoreError> {
    let deadline = std::time::Instant::now() + ctx.options.lease_wait;
    loop {
        let asked = std::time::Instant::now();
        if ctx
            .store
            .try_lease(
                TICK_LEASE,
                &ctx.owner,
                crate::clock::system_now(),
                ctx.options.lease_ms,
            )
            .await?
        {
            *ctx.renewed.lock().expect("not poisoned") = Some(asked);
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Renews the tick lease between stages and chunks, once a quarter of it has gone since it
/// was last taken or renewed: earlier, it cannot have passed to another instance, and a
/// renewal is a write (on SQLite, behind any write in flight). A pass that takes a second or
/// two writes the lease twice, not after every stage.
async fn renew(ctx: &TickContext) -> Result<(), StoreError> {
    let fresh = ctx
        .renewed
        .lock()
        .expect("not poisoned")
        .is_some_and(|at| (at.elapsed().as_millis() as i64) <= ctx.options.lease_ms / 4);
    if fresh {
        return Ok(());
    }
    let asked = std::time::Instant::now();
    if ctx
        .store
        .try_lease(
            TICK_LEASE,
            &ctx.owner,
            crate::clock::system_now(),
            ctx.options.lease_ms,
        )
        .await?
    {
        *ctx.renewed.lock().expect("not poisoned") = Some(asked);
        Ok(())
    } else {
        Err(StoreError::LeaseLost(TICK_LEASE.into()))
    }
}

async fn decide(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    campaigns(ctx, rules, now, report).await?;
    renew(ctx).await?;
    field_changes(ctx, rules, now, report).await?;
    renew(ctx).await?;
    schedules(ctx, rules, now, report).await?;
    renew(ctx).await?;
    reactivation(ctx, rules, now, report).await?;
    renew(ctx).await?;
    special_days(ctx, rules, now, report).await?;
    renew(ctx).await?;
    not_opened(ctx, rules, now, report).await?;
    Ok(())
}

/// Contacts, rule firings, lists (when `lists`) and campaign memberships (when `campaigns`)
/// of `users`.
async fn load_state(
    store: &DynStore,
    users: &[String],
    lists: bool,
    campaigns: bool,
) -> Result<BatchState, StoreError> {
    let need = crate::engine::state::Need {
        history: true,
        lists,
        campaigns,
    };
    crate::engine::state::load(store, users, need).await
}

/// [`load_state`] with what the running rules need.
async fn state_of(
    ctx: &TickContext,
    users: &[String],
    lists: bool,
) -> Result<BatchState, StoreError> {
    let campaigns = !ctx.engine.rule_set().campaigns().is_empty();
    load_state(&ctx.store, users, lists, campaigns).await
}

fn uses_lists(conds: &[Condition]) -> bool {
    conds.iter().any(|c| match c {
        Condition::InList(_) => true,
        Condition::All(v) | Condition::Any(v) => uses_lists(v),
        Condition::Not(c) => uses_lists(std::slice::from_ref(c)),
        _ => false,
    })
}

/// Whether any enabled rule with one of these trigger words looks at lists.
fn rules_use_lists(rules: &RuleSet, words: &[&str]) -> bool {
    words.iter().any(|w| {
        rules
            .rules_with_trigger(w)
            .any(|(r, _)| uses_lists(&r.conditions))
    })
}

/// Gives the jobs of a decision dedupe keys `PREFIX:RULE:N` (those without one already).
fn key_jobs(effects: &mut Effects, prefix: &str) {
    for (n, j) in effects.jobs.iter_mut().enumerate() {
        if j.dedupe_key.is_none() {
            let rule = j.rule_id.as_deref().unwrap_or("");
            j.dedupe_key = Some(format!("{prefix}:{rule}:{n}"));
        }
    }
}

async fn apply(
    ctx: &TickContext,
    decisions: Vec<Decision>,
    report: &mut TickReport,
) -> Result<usize, StoreError> {
    if decisions.is_empty() {
        return Ok(0);
    }
    let counts = job_counts(&decisions);
    let mut decisions = decisions;
    let kept = Kept::before_apply(ctx, &mut decisions);
    let now = ctx.clock.now();
    let applied = ctx.store.apply_decisions(&decisions, now).await?;
    kept.hand_over(&applied, now);
    // Some decisions may have been taken before (their marks exist): count what went in.
    report.add_jobs(&counts, applied.len(), decisions.len());
    Ok(applied.len())
}

/// What a forecast's copy does around applying decisions: the jobs its sink keeps, taken out
/// of the decisions before they are applied and handed to it for those applied (a decision
/// whose mark exists adds nothing); the contacts they change, forgotten in its state cache.
struct Kept(Option<(Arc<dyn crate::outbox::sink::JobSink>, DecisionJobs)>);

/// Each decision's jobs, in the decisions' order.
type DecisionJobs = Vec<Vec<crate::store::NewJob>>;

impl Kept {
    fn before_apply(ctx: &TickContext, decisions: &mut [Decision]) -> Kept {
        if let Some(cache) = &ctx.cache {
            cache.forget(decisions.iter().map(|d| &d.effects));
        }
        Kept(ctx.sink.clone().map(|sink| {
            let jobs = decisions
                .iter_mut()
                .map(|d| crate::outbox::sink::take_jobs(&*sink, &mut d.effects))
                .collect();
            (sink, jobs)
        }))
    }

    fn hand_over(self, applied: &[usize], now: i64) {
        let Some((sink, mut jobs)) = self.0 else {
            return;
        };
        let kept: Vec<crate::store::NewJob> = applied
            .iter()
            .flat_map(|&i| std::mem::take(&mut jobs[i]))
            .collect();
        if !kept.is_empty() {
            sink.add(kept, now);
        }
    }
}

/// Jobs queued, and sends recorded as skipped by reason, by these decisions.
fn job_counts(decisions: &[Decision]) -> JobCounts {
    let mut c = JobCounts::default();
    for j in decisions.iter().flat_map(|d| &d.effects.jobs) {
        match &j.skip {
            Some(s) => *c.skipped.entry(s.reason.clone()).or_default() += 1,
            None => c.jobs += 1,
        }
    }
    c
}

/// Decides `chunks` one after the other while the next chunk's state is loaded and the previous
/// chunk's decisions are written: reads, evaluation and writes overlap. `users` names the
/// contacts of a chunk (a contact is in one chunk only); `decide` turns a chunk into decisions.
/// The state holds the contacts' lists when `lists`, their memberships when `campaigns`.
async fn pipeline<T, U, D>(
    ctx: &TickContext,
    chunks: Vec<Vec<T>>,
    (lists, campaigns): (bool, bool),
    report: &mut TickReport,
    users: U,
    mut decide: D,
) -> Result<(), StoreError>
where
    U: Fn(&[T]) -> Vec<String>,
    D: FnMut(&[T], &mut BatchState, &mut TickReport) -> Vec<Decision>,
{
    let load = |chunk: &[T]| {
        let store = ctx.store.clone();
        let ids = users(chunk);
        tokio::spawn(async move { load_state(&store, &ids, lists, campaigns).await })
    };
    let mut next = chunks.first().map(|c| load(c));
    // SQLite has one writer: a second write in flight would only queue behind the first.
    // PostgreSQL writes two chunks at once (different contacts: no row is shared), which the
    // drip step over 100,000 members needs, its writes taking longer than the decisions.
    let in_flight = match ctx.store.backend() {
        crate::store::Backend::Sqlite => 1,
        crate::store::Backend::Postgres => 2,
    };
    let mut writing: std::collections::VecDeque<Writing> = std::collections::VecDeque::new();
    for i in 0..chunks.len() {
        let Some(loading) = next.take() else { break };
        let mut state = loading.await.map_err(task_failed)??;
        next = chunks.get(i + 1).map(|c| load(c));
        let decisions = decide(&chunks[i], &mut state, report);
        if writing.len() >= in_flight {
            if let Some(w) = writing.pop_front() {
                written(w, report).await?;
            }
        }
        if !decisions.is_empty() {
            let jobs = job_counts(&decisions);
            let n = decisions.len();
            let mut decisions = decisions;
            let kept = Kept::before_apply(ctx, &mut decisions);
            let (store, at) = (ctx.store.clone(), ctx.clock.now());
            let h = tokio::spawn(async move {
                let applied = store.apply_decisions(&decisions, at).await?;
                kept.hand_over(&applied, at);
                Ok(applied.len())
            });
            writing.push_back((h, jobs, n));
        }
        renew(ctx).await?;
    }
    while let Some(w) = writing.pop_front() {
        written(w, report).await?;
    }
    Ok(())
}

/// A chunk's decisions being written: the task, its jobs, its decisions.
type Writing = (
    tokio::task::JoinHandle<Result<usize, StoreError>>,
    JobCounts,
    usize,
);

async fn written((h, counts, n): Writing, report: &mut TickReport) -> Result<(), StoreError> {
    let applied = h.await.map_err(task_failed)??;
    report.add_jobs(&counts, applied, n);
    Ok(())
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Invalid(format!("a scheduler task failed: {e}"))
}

/// Where a wall-time scan starts: a little before where the last one ended (a transaction
/// that committed late is still seen; marks and memberships keep repeats out), or the first
/// lookback.
async fn watermark(ctx: &TickContext, name: &str, wall: i64) -> Result<i64, StoreError> {
    Ok(match ctx.store.scheduler_value(name).await? {
        Some(v) => v - 5 * MINUTE,
        None => wall - ctx.options.first_lookback_ms,
    })
}

/// Runs [`tick`] on `cron` (5 fields, in `tz`) until `stop`: `serve`'s scheduler. A failed
/// tick is logged and the next one tries again.
pub async fn run(
    ctx: TickContext,
    cron: crate::rules::model::Cron,
    stop: tokio_util::sync::CancellationToken,
) {
    let tz = ctx.engine.tz();
    loop {
        let now = ctx.clock.now();
        let next = cron.next_after(now, tz).unwrap_or(now + MINUTE);
        let wait = Duration::from_millis((next - now).max(0) as u64);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        let at = ctx.clock.now();
        match tick(&ctx, at).await {
            Ok(r) if r.ran && !r.is_quiet() => tracing::info!(summary = %r.one_line(), "tick"),
            Ok(_) => tracing::debug!("tick: nothing due"),
            Err(e) => {
                metrics::counter!("zaloflow_scheduler_errors_total").increment(1);
                tracing::warn!(error = %e, "tick failed; the next one catches up");
            }
        }
    }
    let _ = ctx.store.release_lease(TICK_LEASE, &ctx.owner).await;
}

/// `zaloflow tick [--at RFC3339]`: one pass as of that instant (default: now), delivering
/// every job due by then, with the configured rules, channels and database. Waits up to a
/// minute for an instance that is ticking right now. Returns the summary to print.
pub async fn command(config: &crate::config::Config, at: Option<&str>) -> anyhow::Result<String> {
    let now = match at {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|_| {
                anyhow::anyhow!(
                    "{}",
                    crate::i18n::words(config.lang, "tick.bad_at", &[("text", s.to_string())])
                )
            })?
            .timestamp_millis(),
        None => crate::clock::system_now(),
    };
    let store = crate::wiring::open_store(config).await?;
    let channels = crate::wiring::deployment_channels(
        config,
        &store,
        &Clock::fixed(crate::clock::system_now()),
    )
    .await;
    let engine = match crate::wiring::load_rules_checked(config, Some(channels.clone()), now)? {
        Some(w) => Engine::with_rule_set(w.current(), config.tz),
        None => Engine::new(),
    }
    .with_channels(channels)
    .with_promotion_hours(config.promotion_hours)
    // The board's address, working hours and language of handoffs a pass opens (as `serve`).
    .with_handoff_policy(config.handoff_policy());
    let instance = crate::wiring::instance_id();
    let sender = crate::wiring::build_sender(
        config,
        store.clone(),
        Clock::fixed(now),
        &format!("{instance}/tick"),
    )?;
    let sender = sender.with_tracking(crate::wiring::email_tracking(config, &store).await?);
    let ctx = TickContext::new(store, Arc::new(engine), format!("{instance}/tick"))
        .with_escalation(config.handoffs.clone(), config.handoff_policy())
        .with_sender(sender)
        .with_options(TickOptions {
            lease_wait: Duration::from_secs(60),
            ..TickOptions::default()
        });
    let report = tick(&ctx, now).await?;
    Ok(report.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn context(dir: &std::path::Path) -> TickContext {
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let store = crate::store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        let rules = crate::rules::load_sources(
            &[("t.yaml".into(), "rules: []\n".into())],
            &crate::rules::LoadOptions::default(),
        )
        .unwrap();
        let engine = Arc::new(Engine::with_rule_set(
            Arc::new(rules),
            chrono_tz::Asia::Ho_Chi_Minh,
        ));
        TickContext::new(store, engine, "a")
    }

    /// Between stages the tick lease is written again only once a quarter of it has gone
    /// since it was taken: before that, a renewal costs no write; after, a lease that passed
    /// to another instance is found lost.
    #[tokio::test]
    async fn the_tick_lease_is_renewed_once_a_quarter_of_it_has_gone() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = context(dir.path()).await;
        assert!(take_lease(&ctx).await.unwrap());
        // Another instance takes it, as if ours had run out (its clock ten minutes on).
        let later = crate::clock::system_now() + 10 * MINUTE;
        assert!(ctx
            .store
            .try_lease(TICK_LEASE, "b", later, ctx.options.lease_ms)
            .await
            .unwrap());
        renew(&ctx)
            .await
            .expect("taken just now: not written again");
        let quarter = Duration::from_millis(ctx.options.lease_ms as u64 / 4 + 1_000);
        let taken = std::time::Instant::now().checked_sub(quarter);
        *ctx.renewed.lock().unwrap() = taken;
        assert!(matches!(renew(&ctx).await, Err(StoreError::LeaseLost(_))));
    }
}

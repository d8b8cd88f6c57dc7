//! The scheduler: everything time-based, decided by [`tick`] as of a given instant.
//!
//! One tick, in order:
//! 1. **campaigns** — contacts who joined a `list_joined` list enter; every membership whose
//!    next step is due runs it (or leaves: unfollowed, goal reached), and is moved to its next
//!    step;
//! 2. **field changes** — contact fields that took a new value since the last tick start their
//!    `field_changed` rules, once per change (rules, forms, Zalo info, imports and the admin API
//!    alike: the store moves a field's `updated_at` only when its value changes);
//! 3. **schedules** — `schedule` rules whose cron time came, for their contacts (see
//!    [`schedule_scan`]); an occurrence missed by more than the grace period is skipped, never
//!    sent late;
//! 4. **re-activation** — `inactive` rules, one range query per rule window on the
//!    `last_interaction` index; once per silence;
//! 5. **special days** — `special_day` rules, once a day per rule, once a year per contact;
//! 6. **emails not opened** — `email_not_opened` rules for emails sent N hours ago that no
//!    person opened (prefetchers' opens do not count), once per email;
//! 7. **delivery** (`tick --at`) — every outbound job due by the instant.
//!
//! Every decision is applied with its effects in one transaction, and is made once: campaign
//! steps, special days and "not opened" follow-ups carry a mark (`scheduler_marks`); schedules
//! and re-activation rely on rule firings (`rule_state`) and job dedupe keys. The same instant
//! twice sends nothing new. Only one instance ticks at a time (the `tick` lease).

mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::engine::{BatchState, Engine, History};
use crate::outbox::Sender;
use crate::rules::model::{Condition, SpecialDate, Trigger, DAY, HOUR, MINUTE};
use crate::rules::{Campaign, RuleSet, SendTime, Stimulus};
use crate::store::{
    CampaignChange, CampaignMember, ContactScan, Decision, DynStore, Effects, JobLane, StoreError,
};

pub use report::{CampaignReport, RuleReport, ScheduleReport, ScheduleStatus, TickReport};

/// The named lease that makes one instance the ticker.
pub const TICK_LEASE: &str = "tick";

#[derive(Debug, Clone)]
pub struct TickOptions {
    /// A schedule occurrence (or a campaign step at an exact clock time) missed by more than
    /// this is not sent late: the occurrence is skipped, the step moves to its next day.
    pub grace_ms: i64,
    /// Contacts evaluated per transaction.
    pub page: usize,
    /// How long the tick lease lasts (renewed between stages).
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
    pub store: DynStore,
    pub engine: Arc<Engine>,
    /// Delivers the jobs due by the tick's instant (`tick --at`); `None` in `serve`, whose
    /// senders run on their own.
    pub sender: Option<Sender>,
    /// The lease owner.
    pub owner: String,
    /// Wall time, for the lease and for scans of rows written since the last tick (field
    /// changes, list joins). The tick's own instant is the `now` it is given.
    pub clock: Clock,
    pub options: TickOptions,
    /// When set, the tick also escalates missed handoff deadlines (VIP care).
    pub handoffs: Option<Arc<crate::config::Config>>,
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
            handoffs: None,
        }
    }
}

/// One scheduler pass as of `now` (ms). See the module documentation.
#[tracing::instrument(skip_all, fields(at = now))]
pub async fn tick(ctx: &TickContext, now: i64) -> Result<TickReport, StoreError> {
    let rules = ctx.engine.rule_set();
    let mut report = TickReport::new(now, ctx.engine.tz());
    if take_lease(ctx).await? {
        let result = decide(ctx, &rules, now, &mut report).await;
        if let Err(e) = ctx.store.release_lease(TICK_LEASE, &ctx.owner).await {
            tracing::warn!(error = %e, "could not give back the tick lease");
        }
        result?;
        report.ran = true;
        // Missed handoff deadlines: escalated once per breach (safe on several instances).
        if let Some(config) = &ctx.handoffs {
            let esc = crate::handoff::escalate_due(&*ctx.store, now, config).await?;
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
            return Ok(true);
        }
        if std::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn renew(ctx: &TickContext) -> Result<(), StoreError> {
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
    let contacts = store.load_contacts(users).await?;
    let history = History::from_fires(store.load_rule_state(users).await?);
    let mut state = BatchState {
        contacts,
        history,
        ..BatchState::default()
    };
    if lists {
        for u in users {
            let of: BTreeSet<String> = store.lists_of_contact(u).await?.into_iter().collect();
            state.lists.insert(u.clone(), of);
        }
    }
    if campaigns {
        for m in store.load_campaign_members(users).await? {
            state
                .campaigns
                .entry(m.contact_id.clone())
                .or_default()
                .push(m);
        }
    }
    Ok(state)
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
    let jobs: usize = decisions.iter().map(|d| d.effects.jobs.len()).sum();
    let applied = ctx
        .store
        .apply_decisions(&decisions, ctx.clock.now())
        .await?;
    if applied == decisions.len() {
        report.jobs += jobs;
    } else {
        // Some decisions were taken before (their marks exist): count what went in.
        report.jobs += jobs * applied / decisions.len().max(1);
    }
    Ok(applied)
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
    let mut renewed = std::time::Instant::now();
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
            let jobs = decisions.iter().map(|d| d.effects.jobs.len()).sum();
            let n = decisions.len();
            let (store, at) = (ctx.store.clone(), ctx.clock.now());
            let h = tokio::spawn(async move { store.apply_decisions(&decisions, at).await });
            writing.push_back((h, jobs, n));
        }
        // Not after every chunk: on SQLite the renewal would wait for the write in flight.
        if renewed.elapsed().as_millis() as i64 > ctx.options.lease_ms / 4 {
            renew(ctx).await?;
            renewed = std::time::Instant::now();
        }
    }
    while let Some(w) = writing.pop_front() {
        written(w, report).await?;
    }
    Ok(())
}

/// A chunk's decisions being written: the task, its jobs, its decisions.
type Writing = (
    tokio::task::JoinHandle<Result<usize, StoreError>>,
    usize,
    usize,
);

async fn written((h, jobs, n): Writing, report: &mut TickReport) -> Result<(), StoreError> {
    let applied = h.await.map_err(task_failed)??;
    // Decisions taken before (their marks exist) added nothing.
    report.jobs += if applied == n {
        jobs
    } else {
        jobs * applied / n.max(1)
    };
    Ok(())
}

fn task_failed(e: tokio::task::JoinError) -> StoreError {
    StoreError::Invalid(format!("a scheduler task failed: {e}"))
}

// --- 1. campaigns ---------------------------------------------------------------------------

async fn campaigns(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    if rules.campaigns().is_empty() {
        return Ok(());
    }
    list_joins(ctx, rules, now, report).await?;
    // Members of disabled campaigns (and of campaigns taken out of the rules) wait.
    let enabled: Vec<String> = rules
        .campaigns()
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.id.clone())
        .collect();
    if enabled.is_empty() {
        return Ok(());
    }
    let page = ctx.options.page;
    let tz = ctx.engine.tz();
    let lists = rules
        .campaigns()
        .iter()
        .any(|c| uses_lists(&c.exit_if) || c.steps.iter().any(|s| uses_lists(&s.rule.conditions)));
    // A member's step reads its other memberships only to check goals and to enter campaigns
    // on the tags the step added; without those, the due rows are all a step needs of them.
    let memberships = rules.campaigns().iter().any(|c| {
        !c.exit_if.is_empty()
            || c.enter_on
                .iter()
                .any(|t| matches!(t, crate::rules::EntryTrigger::TagAdded(_)))
    });
    // Each batch moves its members on (or out), so the next query finds the rest. A member that
    // did not move (a change raced it) is not taken again in this tick. Up to fifty chunks a
    // batch: each batch starts the pipeline anew (its query, first load and last write overlap
    // nothing).
    let mut seen: BTreeSet<(String, String, i64)> = BTreeSet::new();
    loop {
        let mut due = ctx
            .store
            .due_campaign_members(Some(&enabled), now, (page * 50) as i64)
            .await?
            .into_iter()
            .filter(|m| seen.insert((m.campaign.clone(), m.contact_id.clone(), m.step)))
            .collect::<Vec<_>>();
        if due.is_empty() {
            break;
        }
        // One contact's memberships stay in one chunk.
        due.sort_by(|a, b| a.contact_id.cmp(&b.contact_id));
        let mut chunks: Vec<Vec<CampaignMember>> = Vec::new();
        for m in due {
            match chunks.last_mut() {
                Some(c)
                    if c.len() < page || c.last().is_some_and(|l| l.contact_id == m.contact_id) =>
                {
                    c.push(m)
                }
                _ => chunks.push(vec![m]),
            }
        }
        pipeline(
            ctx,
            chunks,
            (lists, memberships),
            report,
            |ms: &[CampaignMember]| {
                let mut u: Vec<String> = ms.iter().map(|m| m.contact_id.clone()).collect();
                u.dedup();
                u
            },
            |ms, state, report| {
                ms.iter()
                    .filter_map(|m| {
                        let c = rules.campaign(&m.campaign)?;
                        member_step(ctx, c, m, now, tz, state, report)
                    })
                    .collect()
            },
        )
        .await?;
    }
    Ok(())
}

/// What to do with one due member: run its step (and move on), leave, or wait.
fn member_step(
    ctx: &TickContext,
    c: &Campaign,
    m: &CampaignMember,
    now: i64,
    tz: chrono_tz::Tz,
    state: &mut BatchState,
    report: &mut TickReport,
) -> Option<Decision> {
    let engine = &ctx.engine;
    let i = usize::try_from(m.step).unwrap_or(usize::MAX);
    let next_at = m.next_at.unwrap_or(now);
    let advance = |step: usize, next: Option<i64>| CampaignChange::Advance {
        campaign: c.id.clone(),
        contact_id: m.contact_id.clone(),
        from_step: m.step,
        step: step as i64,
        next_at: next,
    };
    let one = |ch: CampaignChange| Decision {
        key: None,
        effects: Effects {
            campaigns: vec![ch],
            ..Effects::default()
        },
    };
    if i >= c.steps.len() {
        report.campaign(&c.id).done += 1;
        return Some(one(advance(c.steps.len(), None)));
    }
    // Unfollowed: leave (the unfollow event normally did this already).
    if state
        .contacts
        .get(&m.contact_id)
        .is_some_and(|ct| ct.follows == Some(false))
    {
        report.campaign(&c.id).left += 1;
        return Some(one(CampaignChange::Leave {
            campaign: c.id.clone(),
            contact_id: m.contact_id.clone(),
            reason: "unfollowed the OA".into(),
        }));
    }
    // A step at an exact clock time missed by more than the grace goes out at that time on
    // its next allowed day, not late; a step due on a day the campaign no longer allows waits
    // for the next allowed day.
    let late = now - next_at > ctx.options.grace_ms;
    let moved = match c.steps[i].send {
        SendTime::At(minute) if late => Some(c.allowed_from(
            crate::rules::campaign::next_clock_after(now, minute, tz),
            tz,
        )),
        _ if !c.allows(now, tz) => Some(c.allowed_from(now, tz)),
        _ => None,
    };
    if let Some(to) = moved {
        report.campaign(&c.id).rescheduled += 1;
        return Some(one(CampaignChange::Advance {
            campaign: c.id.clone(),
            contact_id: m.contact_id.clone(),
            from_step: m.step,
            step: m.step,
            next_at: Some(to),
        }));
    }
    let mut effects = Effects::default();
    engine.check_goals(
        &m.contact_id,
        Stimulus::AfterStep {
            campaign: &c.id,
            step: &c.steps[i].id,
        },
        now,
        state,
        &mut effects,
    );
    if !effects.campaigns.is_empty() {
        report.campaign(&c.id).left += 1;
        return Some(Decision { key: None, effects });
    }
    let source = format!("tick:campaign:{}", c.id);
    let run = m.entered_at.to_string();
    match engine.run_step(&m.contact_id, c, i, &run, now, &source, state) {
        Some(mut e) => {
            engine.enter_on_added_tags(&m.contact_id, now, &source, state, &mut e);
            effects.extend(e);
            *report
                .campaign(&c.id)
                .steps
                .entry(c.steps[i].id.clone())
                .or_default() += 1;
        }
        None => report.campaign(&c.id).skipped += 1,
    }
    let next = i + 1;
    let next_at = (next < c.steps.len()).then(|| c.due(next, m.entered_at, now, tz));
    if next_at.is_none() {
        report.campaign(&c.id).done += 1;
    }
    let ch = advance(next, next_at);
    crate::engine::note_member(state, &ch);
    effects.campaigns.push(ch);
    Some(Decision {
        key: Some(format!(
            "campaign:{}:{}:{}:{}",
            c.id, m.contact_id, m.entered_at, c.steps[i].id
        )),
        effects,
    })
}

/// Contacts who joined a list a campaign enters on since the last tick (wall time: rows
/// written by any instance, an import or the admin API) enter now.
async fn list_joins(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let mut lists: BTreeMap<&str, Vec<&Campaign>> = BTreeMap::new();
    for c in rules.campaigns().iter().filter(|c| c.enabled) {
        for t in &c.enter_on {
            if let crate::rules::EntryTrigger::ListJoined(l) = t {
                lists.entry(l.as_str()).or_default().push(c);
            }
        }
    }
    let wall = ctx.clock.now();
    for (list, campaigns) in lists {
        let name = format!("list_joined:{list}");
        let from = watermark(ctx, &name, wall).await?;
        let joins = ctx.store.list_joins(list, from, wall + 1).await?;
        for chunk in joins.chunks(ctx.options.page) {
            let users: Vec<String> = chunk.iter().map(|j| j.user_id.clone()).collect();
            let mut state = state_of(ctx, &users, false).await?;
            let mut decisions = Vec::new();
            for u in &users {
                let mut effects = Effects::default();
                for c in &campaigns {
                    let before = effects.campaigns.len();
                    ctx.engine.enter_campaign(
                        u,
                        c,
                        now,
                        false,
                        &format!("tick:list:{list}"),
                        &mut state,
                        &mut effects,
                    );
                    if effects.campaigns[before..]
                        .iter()
                        .any(|ch| matches!(ch, CampaignChange::Enter { .. }))
                    {
                        report.campaign(&c.id).entered += 1;
                    }
                }
                if !effects.is_empty() {
                    decisions.push(Decision { key: None, effects });
                }
            }
            apply(ctx, decisions, report).await?;
        }
        ctx.store.set_scheduler_value(&name, wall + 1, wall).await?;
    }
    Ok(())
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

// --- 2. field changes -----------------------------------------------------------------------

async fn field_changes(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let mut names: Vec<String> = rules
        .rules_with_trigger("field_changed")
        .filter_map(|(_, t)| match t {
            Trigger::FieldChanged { field, .. } => Some(field.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let wall = ctx.clock.now();
    let name = "field_changed";
    let from = watermark(ctx, name, wall).await?;
    let updates = ctx.store.field_updates(&names, from, wall + 1).await?;
    let lists = rules_use_lists(rules, &["field_changed"]);
    for chunk in updates.chunks(ctx.options.page) {
        let mut users: Vec<String> = chunk.iter().map(|u| u.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let mut state = state_of(ctx, &users, lists).await?;
        let mut decisions = Vec::new();
        for u in chunk {
            let source = format!("tick:field:{}", u.name);
            let mut effects = ctx.engine.stimulate(
                &u.user_id,
                Stimulus::FieldChanged {
                    field: &u.name,
                    value: Some(&u.value),
                },
                now,
                &source,
                &mut state,
            );
            if effects.fires.is_empty() {
                continue;
            }
            ctx.engine
                .enter_on_added_tags(&u.user_id, now, &source, &mut state, &mut effects);
            for f in &effects.fires {
                report.field_changes(&f.rule_id).fired += 1;
            }
            let key = format!("field:{}:{}:{}", u.user_id, u.name, u.updated_at);
            key_jobs(&mut effects, &key);
            decisions.push(Decision {
                key: Some(key),
                effects,
            });
        }
        apply(ctx, decisions, report).await?;
    }
    ctx.store.set_scheduler_value(name, wall + 1, wall).await?;
    Ok(())
}

// --- 3. schedules ---------------------------------------------------------------------------

/// Which contacts a `schedule` rule (or a `special_day` rule on a shop date) is for: the
/// members of the list its conditions name (`in_list`), else the contacts with the first tag
/// they require (`has_tag`), else every follower; the rule's conditions then decide each.
pub fn schedule_scan(conditions: &[Condition]) -> ContactScan {
    for c in conditions {
        if let Condition::InList(l) = c {
            return ContactScan::InList(l.clone());
        }
    }
    for c in conditions {
        if let Condition::HasTag(tags) = c {
            if let Some(t) = tags.first() {
                return ContactScan::Tagged(t.clone());
            }
        }
    }
    ContactScan::Followers
}

async fn schedules(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let tz = ctx.engine.tz();
    let scheduled: Vec<_> = rules
        .scheduled()
        .map(|(r, c)| (r.clone(), c.clone()))
        .collect();
    for (rule, cron) in scheduled {
        let name = format!("schedule:{}", rule.id);
        let last = ctx
            .store
            .scheduler_value(&name)
            .await?
            .unwrap_or(now - ctx.options.grace_ms);
        // The latest occurrence in (last, now].
        let mut occurrence = None;
        let mut t = last;
        for _ in 0..200_000 {
            match cron.next_after(t, tz) {
                Some(n) if n <= now => {
                    occurrence = Some(n);
                    t = n;
                }
                _ => break,
            }
        }
        let Some(occ) = occurrence else { continue };
        if now - occ > ctx.options.grace_ms {
            tracing::info!(rule = %rule.id, occurrence = occ, "schedule missed by more than the grace period: skipped");
            report.schedules.push(ScheduleReport {
                rule: rule.id.clone(),
                occurrence: occ,
                status: ScheduleStatus::Stale,
            });
            ctx.store
                .set_scheduler_value(&name, occ, ctx.clock.now())
                .await?;
            continue;
        }
        let (mut contacts, mut fired) = (0usize, 0usize);
        if crate::rules::matcher::time_allows(&rule.conditions, occ, tz) {
            let scan = schedule_scan(&rule.conditions);
            let lists = uses_lists(&rule.conditions);
            let mut after: Option<String> = None;
            loop {
                let ids = ctx
                    .store
                    .scan_contact_ids(&scan, after.as_deref(), ctx.options.page as i64)
                    .await?;
                let Some(last_id) = ids.last().cloned() else {
                    break;
                };
                contacts += ids.len();
                let mut state = state_of(ctx, &ids, lists).await?;
                let mut decisions = Vec::new();
                for u in &ids {
                    // Already done for this occurrence (a tick that stopped half-way).
                    if crate::rules::FireHistory::last_fired(&state.history, u, &rule.id)
                        == Some(occ)
                    {
                        continue;
                    }
                    let source = format!("tick:schedule:{}", rule.id);
                    let mut effects = ctx.engine.stimulate(
                        u,
                        Stimulus::Schedule { rule_id: &rule.id },
                        occ,
                        &source,
                        &mut state,
                    );
                    if effects.fires.is_empty() {
                        continue;
                    }
                    ctx.engine
                        .enter_on_added_tags(u, occ, &source, &mut state, &mut effects);
                    fired += 1;
                    key_jobs(&mut effects, &format!("schedule:{}:{occ}:{u}", rule.id));
                    decisions.push(Decision { key: None, effects });
                }
                apply(ctx, decisions, report).await?;
                renew(ctx).await?;
                after = Some(last_id);
            }
        }
        report.schedules.push(ScheduleReport {
            rule: rule.id.clone(),
            occurrence: occ,
            status: ScheduleStatus::Ran { contacts, fired },
        });
        ctx.store
            .set_scheduler_value(&name, occ, ctx.clock.now())
            .await?;
    }
    Ok(())
}

// --- 4. re-activation -----------------------------------------------------------------------

async fn reactivation(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let tz = ctx.engine.tz();
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    let mut any = false;
    for (rule, t) in rules.rules_with_trigger("inactive") {
        let Trigger::Inactive { min_days, max_days } = t else {
            continue;
        };
        if !crate::rules::matcher::time_allows(&rule.conditions, now, tz) {
            continue;
        }
        any = true;
        // Whole days of silence d = (now - last) / DAY in [min, max]:
        // last in (now - (max + 1) days, now - min days].
        let from = max_days.map_or(i64::MIN, |m| now - (i64::from(m) + 1) * DAY + 1);
        let to = now - i64::from(*min_days) * DAY + 1;
        let follows = rule.conditions.iter().find_map(|c| match c {
            Condition::Follows(b) => Some(*b),
            _ => None,
        });
        let ids = ctx
            .store
            .inactive_contact_ids(from, to, follows, Some(&rule.id))
            .await?;
        report.reactivation(&rule.id).candidates += ids.len();
        candidates.extend(ids);
    }
    if !any || candidates.is_empty() {
        return Ok(());
    }
    let lists = rules_use_lists(rules, &["inactive"]);
    let ids: Vec<String> = candidates.into_iter().collect();
    let chunks: Vec<Vec<String>> = ids
        .chunks(ctx.options.page.max(5000))
        .map(<[String]>::to_vec)
        .collect();
    pipeline(
        ctx,
        chunks,
        (lists, !rules.campaigns().is_empty()),
        report,
        <[String]>::to_vec,
        |chunk, state, report| {
            let mut decisions = Vec::with_capacity(chunk.len());
            for u in chunk {
                // Never to users who unfollowed, whatever the rule says.
                let Some(contact) = state.contacts.get(u) else {
                    continue;
                };
                if contact.follows == Some(false) {
                    continue;
                }
                let spell = contact.last_interaction.unwrap_or_default();
                let source = "tick:inactive";
                let mut effects = ctx
                    .engine
                    .stimulate(u, Stimulus::Inactive, now, source, state);
                if effects.fires.is_empty() {
                    continue;
                }
                ctx.engine
                    .enter_on_added_tags(u, now, source, state, &mut effects);
                for f in &effects.fires {
                    report.reactivation(&f.rule_id).fired += 1;
                }
                key_jobs(&mut effects, &format!("inactive:{u}:{spell}"));
                decisions.push(Decision { key: None, effects });
            }
            decisions
        },
    )
    .await
}

// --- 5. special days ------------------------------------------------------------------------

/// `LIKE` patterns of date values on (day, month): `DD/MM/YYYY`, `D/M/YYYY`, `DD/MM`,
/// `YYYY-MM-DD`.
fn date_patterns(day: u32, month: u32) -> Vec<String> {
    let mut v = vec![
        format!("{day:02}/{month:02}/%"),
        format!("{day:02}/{month:02}"),
        format!("%-{month:02}-{day:02}"),
    ];
    if day < 10 || month < 10 {
        v.push(format!("{day}/{month}/%"));
        v.push(format!("{day}/{month}"));
    }
    v
}

async fn special_days(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    use chrono::Datelike;
    let tz = ctx.engine.tz();
    let today = crate::rules::campaign::local_date(now, tz);
    let day_no = i64::from(today.num_days_from_ce());
    let mut by_rule: BTreeMap<String, Vec<(SpecialDate, u32)>> = BTreeMap::new();
    for (rule, t) in rules.rules_with_trigger("special_day") {
        if let Trigger::SpecialDay { on, days_before } = t {
            by_rule
                .entry(rule.id.clone())
                .or_default()
                .push((on.clone(), *days_before));
        }
    }
    for (rule_id, triggers) in by_rule {
        let Some(rule) = rules.get(&rule_id).cloned() else {
            continue;
        };
        let name = format!("special_day:{rule_id}");
        if ctx.store.scheduler_value(&name).await? == Some(day_no) {
            continue; // scanned today already
        }
        if !crate::rules::matcher::time_allows(&rule.conditions, now, tz) {
            continue; // not yet (its time_between has not come today)
        }
        let lists = uses_lists(&rule.conditions);
        for (on, days_before) in &triggers {
            let target = today + chrono::Days::new(u64::from(*days_before));
            let (field, ids) = match on {
                SpecialDate::Field(f) => {
                    let mut patterns = date_patterns(target.day(), target.month());
                    // 29 February is celebrated on 28 February in other years.
                    if (target.day(), target.month()) == (28, 2)
                        && chrono::NaiveDate::from_ymd_opt(target.year(), 2, 29).is_none()
                    {
                        patterns.extend(date_patterns(29, 2));
                    }
                    let ids = ctx.store.contacts_with_field_like(f, &patterns).await?;
                    (f.clone(), ids)
                }
                SpecialDate::Date { day, month } => {
                    if (target.day(), target.month()) != (*day, *month) {
                        continue;
                    }
                    let scan = schedule_scan(&rule.conditions);
                    let mut ids = Vec::new();
                    let mut after: Option<String> = None;
                    loop {
                        let page = ctx
                            .store
                            .scan_contact_ids(&scan, after.as_deref(), 10_000)
                            .await?;
                        let Some(last) = page.last().cloned() else {
                            break;
                        };
                        ids.extend(page);
                        after = Some(last);
                    }
                    (String::new(), ids)
                }
            };
            report.special_day(&rule_id).candidates += ids.len();
            for chunk in ids.chunks(ctx.options.page) {
                let mut state = state_of(ctx, chunk, lists).await?;
                let mut decisions = Vec::new();
                for u in chunk {
                    let source = format!("tick:special_day:{rule_id}");
                    let mut effects = ctx.engine.stimulate_rule(
                        u,
                        &rule_id,
                        Stimulus::SpecialDay { field: &field },
                        now,
                        &source,
                        &mut state,
                    );
                    if effects.fires.is_empty() {
                        continue;
                    }
                    ctx.engine
                        .enter_on_added_tags(u, now, &source, &mut state, &mut effects);
                    report.special_day(&rule_id).fired += 1;
                    // Once a year per contact, whichever of its dates matched first.
                    let key = format!("special_day:{rule_id}:{u}:{}", target.year());
                    key_jobs(&mut effects, &key);
                    decisions.push(Decision {
                        key: Some(key),
                        effects,
                    });
                }
                apply(ctx, decisions, report).await?;
                renew(ctx).await?;
            }
        }
        ctx.store
            .set_scheduler_value(&name, day_no, ctx.clock.now())
            .await?;
    }
    Ok(())
}

// --- 6. emails not opened -------------------------------------------------------------------

async fn not_opened(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let watched: Vec<(String, u32, Option<String>)> = rules
        .rules_with_trigger("email_not_opened")
        .filter_map(|(r, t)| match t {
            Trigger::EmailNotOpened {
                within_hours,
                email,
            } => Some((r.id.clone(), *within_hours, email.clone())),
            _ => None,
        })
        .collect();
    for (rule_id, hours, email) in watched {
        let name = format!("email_not_opened:{rule_id}");
        let until = now - i64::from(hours) * HOUR + 1;
        let from = match ctx.store.scheduler_value(&name).await? {
            Some(v) => v,
            None => until - DAY,
        };
        if from >= until {
            continue;
        }
        let sent = ctx.store.sent_emails(email.as_deref(), from, until).await?;
        // Emails with tracking only: an email without a pixel cannot tell it was opened.
        let sent: Vec<(i64, String, String, i64)> = sent
            .into_iter()
            .filter_map(|j| {
                let p: crate::channels::Payload = serde_json::from_str(&j.payload).ok()?;
                match p {
                    crate::channels::Payload::Email { track: Some(t), .. } => Some((
                        j.id,
                        t.contact_id,
                        j.rule_id.unwrap_or_default(),
                        j.sent_at.unwrap_or(j.run_at),
                    )),
                    _ => None,
                }
            })
            .collect();
        for chunk in sent.chunks(ctx.options.page) {
            let open_keys: Vec<String> = chunk
                .iter()
                .map(|(id, c, _, _)| crate::tracking::open_dedupe_key(*id, c, false))
                .collect();
            let opened: std::collections::HashSet<String> = ctx
                .store
                .existing_inbox_keys(&open_keys)
                .await?
                .into_iter()
                .collect();
            let marks: Vec<String> = chunk
                .iter()
                .map(|(id, _, _, _)| format!("email_not_opened:{rule_id}:{id}"))
                .collect();
            let taken: std::collections::HashSet<String> = ctx
                .store
                .existing_marks(&marks)
                .await?
                .into_iter()
                .collect();
            let todo: Vec<&(i64, String, String, i64)> = chunk
                .iter()
                .zip(&open_keys)
                .zip(&marks)
                .filter(|((_, k), m)| !opened.contains(*k) && !taken.contains(*m))
                .map(|((e, _), _)| e)
                .collect();
            if todo.is_empty() {
                continue;
            }
            let mut users: Vec<String> = todo.iter().map(|e| e.1.clone()).collect();
            users.sort();
            users.dedup();
            let mut state =
                state_of(ctx, &users, rules_use_lists(rules, &["email_not_opened"])).await?;
            let mut decisions = Vec::new();
            for (job_id, contact, sent_by, sent_at) in todo {
                let source = format!("tick:not_opened:{job_id}");
                let mut effects = ctx.engine.stimulate_rule(
                    contact,
                    &rule_id,
                    Stimulus::EmailNotOpened {
                        email: sent_by,
                        sent_at: *sent_at,
                    },
                    now,
                    &source,
                    &mut state,
                );
                let key = format!("email_not_opened:{rule_id}:{job_id}");
                if !effects.fires.is_empty() {
                    report.not_opened(&rule_id).fired += 1;
                    ctx.engine
                        .enter_on_added_tags(contact, now, &source, &mut state, &mut effects);
                }
                key_jobs(&mut effects, &key);
                decisions.push(Decision {
                    key: Some(key),
                    effects,
                });
            }
            apply(ctx, decisions, report).await?;
        }
        ctx.store
            .set_scheduler_value(&name, until, ctx.clock.now())
            .await?;
    }
    Ok(())
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
            .map_err(|e| {
                anyhow::anyhow!(
                    "--at {s:?} is not an RFC 3339 time ({e}); e.g. 2027-03-05T09:00:00+07:00"
                )
            })?
            .timestamp_millis(),
        None => crate::clock::system_now(),
    };
    let store = crate::open_store(config).await?;
    let engine = match crate::load_rules(config, now)? {
        Some(w) => Engine::with_rule_set(w.current(), config.tz),
        None => Engine::new(),
    };
    let instance = crate::instance_id();
    let mut sender = crate::build_sender(
        config,
        store.clone(),
        Clock::fixed(now),
        &format!("{instance}/tick"),
    )?;
    sender.options.tracking = Some(crate::email_tracking(config, &store).await?);
    let mut ctx = TickContext::new(store, Arc::new(engine), format!("{instance}/tick"));
    ctx.handoffs = Some(Arc::new(config.clone()));
    ctx.sender = Some(sender);
    ctx.options.lease_wait = Duration::from_secs(60);
    let report = tick(&ctx, now).await?;
    Ok(report.to_string())
}

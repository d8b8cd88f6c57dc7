//! A forecast copy's sends, kept in memory instead of its store's outbox (issue 28). The inbox
//! processor and the scheduler hand it the jobs they make (`outbox::sink`); at each of the
//! scheduler's passes it decides what is due as the outbox sender would — one user's jobs in
//! order, a held one holding back that user's later jobs, the real cost guard pricing each send
//! and holding what Zalo's caps, the template quota or the budget do not allow — and tallies
//! each outcome as it is decided. Only what pricing looks back at is remembered: a user's
//! consultation sends since their last interaction and promotions since the month began, and
//! the VND and template messages of the last days, by minute. Emails stay in the store's
//! outbox (their opens and clicks name them by id), as do the jobs the store makes itself
//! (staff notices, escalations); the store's sender delivers them at the same passes.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use zaloflow_core::cost::{SendClass, SendCost};

use crate::channels::configured::{Configured, NOT_CONFIGURED};
use crate::channels::{Payload, ZaloKind};
use crate::outbox::cost::{CostGuard, SendHistory, Verdict};
use crate::outbox::sink::JobSink;
use crate::store::{ContactChange, DynStore, Job, NewJob, StoreError};

use super::tally::Tally;

/// Ids of kept jobs start here, far above any the copy's store gives its own.
const FIRST_ID: i64 = 1 << 50;

/// The copy's sends in memory: the sink the processor and scheduler hand jobs to, the
/// history the cost guard reads, and the tally of what was decided.
pub struct MemOutbox {
    /// The copy's store: templates' statuses, the daily quota, contacts' last interaction
    /// (read once per contact), staff notices of holds.
    store: DynStore,
    channels: Configured,
    guard: CostGuard,
    owner: String,
    /// Jobs claimed at once (the copy's sender's batch).
    batch: usize,
    state: Mutex<State>,
    tally: Mutex<Tally>,
}

/// A kept job not sent yet.
struct Kept {
    id: i64,
    job: NewJob,
    /// None: the payload does not read (dead, as the sender records it).
    payload: Option<Payload>,
    first_due: i64,
    run_at: i64,
    attempts: i32,
    last_error: Option<String>,
}

impl Kept {
    /// Earlier in its user's queue.
    fn before(&self, other: &Kept) -> bool {
        (self.first_due, self.id) < (other.first_due, other.id)
    }
}

#[derive(Default)]
struct State {
    next_id: i64,
    /// Each user's unsent jobs in the order they were first due (then made); none empty.
    queues: HashMap<String, VecDeque<Kept>>,
    /// Unsent jobs to nobody (staff), in the order they were made.
    staff: Vec<Kept>,
    /// The dedupe keys of kept jobs (hashed): a key seen before adds nothing, as the store's
    /// unique key does.
    keys: HashSet<u64>,
    /// Users' last interaction, where known (seen applied, or read from the store).
    interactions: HashMap<String, Option<i64>>,
    /// Per user, the sends pricing looks back at: (id, class, at).
    sends: HashMap<String, Vec<(i64, SendClass, i64)>>,
    /// Per minute: VND spent and template messages sent (the last days).
    minutes: BTreeMap<i64, (i64, i64)>,
}

impl MemOutbox {
    pub fn new(
        store: DynStore,
        channels: Configured,
        guard: CostGuard,
        (owner, batch): (&str, i64),
        tally: Tally,
    ) -> MemOutbox {
        MemOutbox {
            store,
            channels,
            guard,
            owner: owner.to_string(),
            batch: batch.max(1) as usize,
            state: Mutex::new(State {
                next_id: FIRST_ID,
                ..State::default()
            }),
            tally: Mutex::new(tally),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("poisoned")
    }

    /// Counts `job`, whose payload `k` has read already.
    fn count(&self, k: &Kept, job: &Job) {
        self.tally
            .lock()
            .expect("poisoned")
            .add_read_job(job, k.payload.as_ref());
    }

    /// Decides every job due by `now` as the sender's pass would, with one send at a time (the
    /// copy's sender too: a forecast comes out the same every time): claimed a batch at a
    /// time, highest priority first, then by when due and as made; in a batch, user by user
    /// (in the order of their ids), each user's jobs in order. A hold lets the user's jobs of
    /// the same batch go on, and holds back those of later batches. Answers whether staff were
    /// told of a hold (their notice waits in the store's outbox).
    pub async fn deliver(&self, now: i64) -> Result<bool, StoreError> {
        let mut due = self.take_due(now).into_iter().peekable();
        if due.peek().is_none() {
            return Ok(false);
        }
        let mut told = false;
        let mut holding: HashSet<String> = HashSet::new();
        let mut back: HashMap<String, Vec<Kept>> = HashMap::new();
        while due.peek().is_some() {
            let mut claimed: Vec<Kept> = due.by_ref().take(self.batch).collect();
            // As the store hands a claim over.
            claimed.sort_by_key(|k| (std::cmp::Reverse(k.job.priority), k.first_due, k.id));
            let mut users: BTreeMap<String, Vec<Kept>> = BTreeMap::new();
            let mut staff = Vec::new();
            for k in claimed {
                if holding.contains(&k.job.user_id) {
                    // An earlier batch held one of theirs: not claimed.
                    back.entry(k.job.user_id.clone()).or_default().push(k);
                } else if k.job.user_id.is_empty() {
                    staff.push(k);
                } else {
                    users.entry(k.job.user_id.clone()).or_default().push(k);
                }
            }
            let batch: Vec<Kept> = users.into_values().flatten().chain(staff).collect();
            self.learn_interactions(&batch).await?;
            self.guard.refresh(self, now).await?;
            let mut held = Vec::new();
            for k in batch {
                if let Some(k) = self.attempt(k, now, &mut told).await? {
                    held.push(k);
                }
            }
            for k in held {
                holding.insert(k.job.user_id.clone());
                back.entry(k.job.user_id.clone()).or_default().push(k);
            }
        }
        let mut st = self.state();
        for (user, mut kept) in back {
            if user.is_empty() {
                st.staff.extend(kept);
                continue;
            }
            // They came from the front of their queue: they go back there, in order.
            kept.sort_by_key(|k| (k.first_due, k.id));
            let q = st.queues.entry(user).or_default();
            for k in kept.into_iter().rev() {
                q.push_front(k);
            }
        }
        Ok(told)
    }

    /// Decides one job as the sender does (priced first, then refused by a channel the
    /// deployment lacks) and tallies it; gives it back when it is held.
    async fn attempt(
        &self,
        mut k: Kept,
        now: i64,
        told: &mut bool,
    ) -> Result<Option<Kept>, StoreError> {
        k.attempts += 1;
        let Some(payload) = k.payload.clone() else {
            self.count(&k, &as_job(&k, "dead", None, None));
            return Ok(None);
        };
        match self
            .guard
            .check(self, &k.job.user_id, &payload, now)
            .await?
        {
            Verdict::Go(cost) => {
                if self.channels.missing(&payload).is_some_and(|m| m.skips) {
                    // Not attempted, as the dry channel refuses it: the price is given back.
                    if let Some(c) = &cost {
                        self.guard.unreserve(c, now);
                    }
                    if k.job.channel == crate::channels::zns::NAME {
                        self.guard.template_unsent(now);
                    }
                    let mut j = as_job(&k, "skipped", None, None);
                    j.skip_reason = Some(NOT_CONFIGURED.into());
                    self.count(&k, &j);
                    return Ok(None);
                }
                if let Some(c) = &cost {
                    self.guard.sent(k.id, &k.job.user_id, c, now);
                    self.remember(&k, c, now);
                }
                self.count(&k, &as_job(&k, "sent", Some(now), cost));
                Ok(None)
            }
            Verdict::Hold {
                until,
                reason,
                why,
                notice,
            } => {
                if let Some(text) = notice {
                    self.guard
                        .tell_staff_once(&self.store, reason, text, now, &self.owner)
                        .await;
                    *told = true;
                }
                k.run_at = until;
                k.last_error = Some(why);
                Ok(Some(k))
            }
        }
    }

    /// The jobs the sender would claim at `now`, taken out: each user's due jobs before their
    /// first one not due, and the staff's due ones; highest priority first, then by when due
    /// and as made.
    fn take_due(&self, now: i64) -> Vec<Kept> {
        let mut st = self.state();
        let mut due = Vec::new();
        st.queues.retain(|_, q| {
            while q.front().is_some_and(|k| k.run_at <= now) {
                due.extend(q.pop_front());
            }
            !q.is_empty()
        });
        let (ready, later): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut st.staff)
            .into_iter()
            .partition(|k| k.run_at <= now);
        st.staff = later;
        due.extend(ready);
        due.sort_by_key(|k| (std::cmp::Reverse(k.job.priority), k.run_at, k.id));
        due
    }

    /// Reads from the store the last interaction of the users of due consultation messages
    /// that the run has not seen interact (those the copy was seeded with).
    async fn learn_interactions(&self, due: &[Kept]) -> Result<(), StoreError> {
        let unknown: Vec<String> = {
            let st = self.state();
            let mut ids: Vec<String> = due
                .iter()
                .filter(|k| {
                    matches!(
                        k.payload,
                        Some(Payload::Zalo {
                            kind: ZaloKind::Cs,
                            ..
                        })
                    ) && !st.interactions.contains_key(&k.job.user_id)
                })
                .map(|k| k.job.user_id.clone())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        for chunk in unknown.chunks(500) {
            let contacts = self.store.load_contacts(chunk).await?;
            let mut st = self.state();
            for id in chunk {
                let last = contacts.get(id).and_then(|c| c.last_interaction);
                // A change seen meanwhile is later than anything stored before the run.
                st.interactions.entry(id.clone()).or_insert(last);
            }
        }
        Ok(())
    }

    /// Keeps a priced send where pricing will look for it, and forgets what it no longer will.
    fn remember(&self, k: &Kept, cost: &SendCost, now: i64) {
        let mut st = self.state();
        let minute = now.div_euclid(60_000);
        let m = st.minutes.entry(minute).or_default();
        m.0 += cost.vnd;
        if k.job.channel == crate::channels::zns::NAME {
            m.1 += 1;
        }
        let horizon = (now - 3 * 86_400_000).div_euclid(60_000);
        while st
            .minutes
            .first_key_value()
            .is_some_and(|(m, _)| *m < horizon)
        {
            st.minutes.pop_first();
        }
        if !(cost.class.is_consultation() || cost.class == SendClass::Promotion) {
            return;
        }
        let last = st.interactions.get(&k.job.user_id).copied().flatten();
        let month = self.guard.month_start(now);
        let sends = st.sends.entry(k.job.user_id.clone()).or_default();
        sends.retain(|(_, class, at)| {
            if class.is_consultation() {
                last.is_some_and(|l| *at >= l)
            } else {
                *at >= month
            }
        });
        sends.push((k.id, cost.class, now));
    }

    /// VND spent and template messages sent from `since` (a minute's start) on.
    fn minutes_since(&self, since: i64) -> (i64, i64) {
        let st = self.state();
        st.minutes
            .range(since.div_euclid(60_000)..)
            .fold((0, 0), |(v, n), (_, (vnd, t))| (v + vnd, n + t))
    }

    /// The tally, with the jobs still unsent at the end of the run (held ones as held).
    pub fn finish(self) -> Tally {
        let st = self.state.into_inner().expect("poisoned");
        let mut tally = self.tally.into_inner().expect("poisoned");
        for k in st.queues.values().flatten().chain(&st.staff) {
            tally.add_read_job(&as_job(k, "pending", None, None), k.payload.as_ref());
        }
        tally
    }
}

/// A kept job as the outbox would hold it, for the tally.
fn as_job(k: &Kept, status: &str, sent_at: Option<i64>, cost: Option<SendCost>) -> Job {
    Job {
        id: k.id,
        channel: k.job.channel.clone(),
        user_id: k.job.user_id.clone(),
        payload: k.job.payload.clone(),
        priority: k.job.priority,
        first_due: k.first_due,
        run_at: k.run_at,
        status: status.to_string(),
        attempts: k.attempts,
        last_error: k.last_error.clone(),
        last_code: None,
        provider_id: None,
        rule_id: k.job.rule_id.clone(),
        source: k.job.source.clone(),
        created_at: k.first_due,
        sent_at,
        variant: k.job.variant.clone(),
        skip_reason: k.job.skip.as_ref().map(|s| s.reason.clone()),
        send_class: cost.as_ref().map(|c| c.class.as_str().to_string()),
        cost_vnd: cost.map(|c| c.vnd),
    }
}

fn hash_key(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl JobSink for MemOutbox {
    fn keeps(&self, job: &NewJob) -> bool {
        job.channel != crate::channels::email::NAME
    }

    fn add(&self, jobs: Vec<NewJob>, _now: i64) {
        let mut skipped = Vec::new();
        {
            let mut st = self.state();
            for job in jobs {
                if let Some(key) = &job.dedupe_key {
                    if !st.keys.insert(hash_key(key)) {
                        continue;
                    }
                }
                let id = st.next_id;
                st.next_id += 1;
                let k = Kept {
                    id,
                    payload: serde_json::from_str(&job.payload).ok(),
                    first_due: job.run_at,
                    run_at: job.run_at,
                    attempts: 0,
                    last_error: job.skip.as_ref().map(|s| s.message.clone()),
                    job,
                };
                if k.job.skip.is_some() {
                    skipped.push(k);
                } else if k.job.user_id.is_empty() {
                    st.staff.push(k);
                } else {
                    let q = st.queues.entry(k.job.user_id.clone()).or_default();
                    // Mostly the last; a job due later than one made after it is passed by it.
                    let at = q.iter().rposition(|o| o.before(&k)).map_or(0, |i| i + 1);
                    q.insert(at, k);
                }
            }
        }
        for k in skipped {
            self.count(&k, &as_job(&k, "skipped", None, None));
        }
    }

    fn saw(&self, changes: &[ContactChange]) {
        if changes.iter().all(|c| c.interaction_at.is_none()) {
            return;
        }
        let mut st = self.state();
        for c in changes {
            if let Some(at) = c.interaction_at {
                let last = st.interactions.entry(c.user_id.clone()).or_insert(None);
                *last = (*last).max(Some(at));
            }
        }
    }

    fn in_flight(&self, user_id: &str, text: Option<&str>) -> bool {
        let st = self.state();
        let Some(q) = st.queues.get(user_id) else {
            return false;
        };
        let texts: Vec<Option<String>> = q
            .iter()
            .filter_map(|k| match &k.payload {
                Some(Payload::Zalo { text, .. }) => Some(text.clone()),
                _ => None,
            })
            .collect();
        zaloflow_core::handoff::is_own_send(false, &texts, text)
    }
}

#[async_trait::async_trait]
impl SendHistory for MemOutbox {
    async fn consultation_sends(
        &self,
        user_id: &str,
    ) -> Result<(Option<i64>, Vec<i64>), StoreError> {
        let st = self.state();
        let Some(last) = st.interactions.get(user_id).copied().flatten() else {
            return Ok((None, Vec::new()));
        };
        let ids = st
            .sends
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|(_, class, at)| class.is_consultation() && *at >= last)
            .map(|(id, _, _)| *id)
            .collect();
        Ok((Some(last), ids))
    }

    async fn class_send_ids(
        &self,
        user_id: &str,
        class: &str,
        since: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let st = self.state();
        Ok(st
            .sends
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|(_, c, at)| c.as_str() == class && *at >= since)
            .map(|(id, _, _)| *id)
            .collect())
    }

    async fn spent_since(&self, since: i64) -> Result<i64, StoreError> {
        Ok(self.minutes_since(since).0)
    }

    async fn template_sends_since(&self, since: i64) -> Result<i64, StoreError> {
        Ok(self.minutes_since(since).1)
    }

    async fn template_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.store.template_status(id).await
    }

    async fn daily_quota(&self) -> Result<Option<i64>, StoreError> {
        self.store.daily_quota().await
    }
}

//! Storage: one interface ([`Store`]), two real backends chosen by the URL scheme —
//! [`sqlite`] (the embedded default) and [`postgres`] (several instances).
//!
//! Deciding is done above this layer, in plain code; a store applies decisions atomically
//! (an event is marked processed in the same transaction as everything it caused).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

pub mod handoff;
pub mod postgres;
pub mod report;
pub mod spend;
pub mod sqlite;
pub mod templates;

pub use spend::{BatchHistory, NotSentRow, Spend, SpendRow};
pub use templates::Templates;

pub use zaloflow_core::job::{JobSkip, NewJob, SKIPPED};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The same, from the SQLite connection the webhook intake writes through (rusqlite).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Our lease on a claimed row expired and another worker may own it now.
    #[error("lease lost on {0}")]
    LeaseLost(String),
    #[error("{0}")]
    Invalid(String),
}

/// A verified delivery, ready to be stored.
#[derive(Debug, Clone)]
pub struct NewInboxEvent {
    pub dedupe_key: String,
    pub event_name: String,
    /// The per-user lane ('' when the event concerns no user).
    pub user_id: String,
    pub priority: i32,
    pub body: String,
    pub event_ts: Option<i64>,
    pub received_at: i64,
}

/// Deliveries the intake stores already leased to this instance's processor, which receives
/// them in memory (the inbox processor's in-memory queue): no claim is written for them. A crash loses the
/// lease the way it loses a claim's, and the rows are taken again once it expires.
#[derive(Debug, Clone, Copy)]
pub struct IntakeLease<'a> {
    pub owner: &'a str,
    /// Wall-clock milliseconds, as the leases `claim_inbox` writes.
    pub until: i64,
}

/// Stores the webhook intake's batches from a thread of its own, outside the async runtime
/// ([`Store::sync_inbox`]): SQLite's, whose one writer then goes from one group commit to the
/// next without waiting for a task to be polled in between.
pub trait SyncInbox: Send + Sync {
    /// [`Store::store_inbox`], blocking the calling thread.
    fn store_inbox(
        &self,
        events: &[NewInboxEvent],
        lease: Option<IntakeLease<'_>>,
    ) -> Result<Vec<Option<i64>>>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    Duplicate,
}

impl Inserted {
    /// The outcome of a delivery `Store::store_inbox` answered `id` for.
    pub fn of(id: Option<i64>) -> Inserted {
        match id {
            Some(_) => Inserted::Stored,
            None => Inserted::Duplicate,
        }
    }
}

/// A stored delivery claimed for processing.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboxEvent {
    pub id: i64,
    pub dedupe_key: String,
    pub event_name: String,
    pub user_id: String,
    pub body: String,
    pub event_ts: Option<i64>,
    pub received_at: i64,
    pub attempts: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxStats {
    pub pending: i64,
    pub done: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Contact {
    pub user_id: String,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// `None` while unknown.
    pub follows: Option<bool>,
    pub first_seen: i64,
    pub last_interaction: Option<i64>,
    /// How many events the user caused (messages, follows, taps, reactions…).
    pub interaction_count: i64,
    pub followed_at: Option<i64>,
    pub unfollowed_at: Option<i64>,
    pub tags: BTreeSet<String>,
    pub fields: BTreeMap<String, String>,
}

/// What an event changes on one contact. Absent values leave the stored ones alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactChange {
    pub user_id: String,
    /// When the contact was seen (creates it with this `first_seen` if new).
    pub seen_at: i64,
    pub display_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub follows: Option<bool>,
    pub followed_at: Option<i64>,
    pub unfollowed_at: Option<i64>,
    /// Only events the user caused move this; it never moves backwards.
    pub interaction_at: Option<i64>,
    /// How many user-caused events this change stands for (added to the contact's count).
    pub interactions: i64,
    pub tags_add: Vec<String>,
    pub tags_remove: Vec<String>,
    pub fields_set: Vec<(String, String)>,
}

impl ContactChange {
    pub fn new(user_id: impl Into<String>, seen_at: i64) -> Self {
        ContactChange {
            user_id: user_id.into(),
            seen_at,
            ..Default::default()
        }
    }

    /// Applies the change to an in-memory contact the same way the store applies it to a row,
    /// so a batch of one user's events can be folded before it is written.
    pub fn apply_to(&self, c: &mut Contact) {
        if c.user_id.is_empty() {
            c.user_id = self.user_id.clone();
            c.first_seen = self.seen_at;
        }
        fn set(dst: &mut Option<String>, v: &Option<String>) {
            if v.is_some() {
                dst.clone_from(v);
            }
        }
        set(&mut c.display_name, &self.display_name);
        set(&mut c.phone, &self.phone);
        set(&mut c.email, &self.email);
        if self.follows.is_some() {
            c.follows = self.follows;
        }
        if self.followed_at.is_some() {
            c.followed_at = self.followed_at;
        }
        if self.unfollowed_at.is_some() {
            c.unfollowed_at = self.unfollowed_at;
        }
        c.interaction_count += self.interactions;
        if let Some(t) = self.interaction_at {
            if c.last_interaction.is_none_or(|old| t > old) {
                c.last_interaction = Some(t);
            }
        }
        for t in &self.tags_add {
            c.tags.insert(t.clone());
        }
        for t in &self.tags_remove {
            c.tags.remove(t);
        }
        for (k, v) in &self.fields_set {
            c.fields.insert(k.clone(), v.clone());
        }
    }
}

/// Folds a sequence of changes into one change per contact, as if applied in order: later
/// values win, `interaction_at` is the latest, counts add up, the last tag operation on a tag
/// wins. Lets a batch write each contact once.
pub fn merge_changes<'a>(
    changes: impl IntoIterator<Item = &'a ContactChange>,
) -> Vec<ContactChange> {
    let mut order: Vec<String> = Vec::new();
    let mut by_user: HashMap<String, ContactChange> = HashMap::new();
    for ch in changes {
        let m = by_user.entry(ch.user_id.clone()).or_insert_with(|| {
            order.push(ch.user_id.clone());
            ContactChange::new(ch.user_id.clone(), ch.seen_at)
        });
        m.seen_at = m.seen_at.min(ch.seen_at);
        fn later<T: Clone>(dst: &mut Option<T>, v: &Option<T>) {
            if v.is_some() {
                dst.clone_from(v);
            }
        }
        later(&mut m.display_name, &ch.display_name);
        later(&mut m.phone, &ch.phone);
        later(&mut m.email, &ch.email);
        later(&mut m.follows, &ch.follows);
        later(&mut m.followed_at, &ch.followed_at);
        later(&mut m.unfollowed_at, &ch.unfollowed_at);
        m.interaction_at = m.interaction_at.max(ch.interaction_at);
        m.interactions += ch.interactions;
        for t in &ch.tags_add {
            m.tags_remove.retain(|x| x != t);
            if !m.tags_add.contains(t) {
                m.tags_add.push(t.clone());
            }
        }
        for t in &ch.tags_remove {
            m.tags_add.retain(|x| x != t);
            if !m.tags_remove.contains(t) {
                m.tags_remove.push(t.clone());
            }
        }
        for (k, v) in &ch.fields_set {
            m.fields_set.retain(|(x, _)| x != k);
            m.fields_set.push((k.clone(), v.clone()));
        }
    }
    order
        .into_iter()
        .filter_map(|u| by_user.remove(&u))
        .collect()
}

/// Everything processing one event caused, applied in the transaction that marks it processed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Effects {
    pub contacts: Vec<ContactChange>,
    /// Outbound jobs (sends, tags mirrored to Zalo, notifications), enqueued atomically.
    pub jobs: Vec<NewJob>,
    /// Contact list operations (add, remove, copy, move), applied in order after `contacts`.
    pub lists: Vec<ListChange>,
    /// Rules that fired, recorded so their limits hold (once per period, cooldown…).
    pub fires: Vec<RuleFire>,
    /// Handoffs opened, messages attached to them, agents' replies (applied in order).
    pub handoffs: Vec<zaloflow_core::handoff::HandoffChange>,
    /// Campaign memberships entered, advanced, left (applied after `lists`).
    pub campaigns: Vec<CampaignChange>,
    /// What an event tells about earlier sends (receipts, replies, clicks), for reports.
    pub outcomes: Vec<zaloflow_core::outcome::OutcomeSignal>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty()
            && self.jobs.is_empty()
            && self.lists.is_empty()
            && self.fires.is_empty()
            && self.handoffs.is_empty()
            && self.campaigns.is_empty()
            && self.outcomes.is_empty()
    }

    pub fn extend(&mut self, other: Effects) {
        self.contacts.extend(other.contacts);
        self.jobs.extend(other.jobs);
        self.lists.extend(other.lists);
        self.fires.extend(other.fires);
        self.handoffs.extend(other.handoffs);
        self.campaigns.extend(other.campaigns);
        self.outcomes.extend(other.outcomes);
    }
}

/// One rule firing for one contact.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RuleFire {
    pub user_id: String,
    pub rule_id: String,
    pub period_key: String,
    pub fired_at: i64,
}

/// One operation on contact lists (seed 000, II.5.3). A list is created by the first operation
/// that names it. `user_id: None` on copy/move means every member of `from`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ListChange {
    /// Creates the list, or sets its description.
    Create {
        list: String,
        description: Option<String>,
    },
    Add {
        list: String,
        user_id: String,
    },
    Remove {
        list: String,
        user_id: String,
    },
    /// Adds to `to` and keeps in `from`.
    Copy {
        from: String,
        to: String,
        user_id: Option<String>,
    },
    /// Adds to `to` and removes from `from`.
    Move {
        from: String,
        to: String,
        user_id: Option<String>,
    },
}

impl ListChange {
    /// The list names this operation touches, for validation.
    pub fn lists(&self) -> Vec<&str> {
        match self {
            ListChange::Create { list, .. }
            | ListChange::Add { list, .. }
            | ListChange::Remove { list, .. } => vec![list],
            ListChange::Copy { from, to, .. } | ListChange::Move { from, to, .. } => {
                vec![from, to]
            }
        }
    }
}

/// A list name: 1–100 characters, no control characters, not only spaces.
pub fn valid_list_name(name: &str) -> bool {
    !name.trim().is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control)
}

pub(crate) fn check_list_changes(changes: &[ListChange]) -> Result<()> {
    for ch in changes {
        for l in ch.lists() {
            if !valid_list_name(l) {
                return Err(StoreError::Invalid(format!("invalid list name {l:?}")));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ListMember {
    pub user_id: String,
    pub added_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct ContactList {
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub members: i64,
}

/// Contacts found by phone and by email: `phone -> user_id`, `email (lower case) -> user_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactKeys {
    pub by_phone: HashMap<String, String>,
    pub by_email: HashMap<String, String>,
}

/// Ids the service makes up for contacts that have no Zalo user id (form sign-ups, imports).
pub fn is_synthetic_id(user_id: &str) -> bool {
    user_id.starts_with("phone:") || user_id.starts_with("email:")
}

/// Picks one contact per phone and per email from `(key, user_id, first_seen)` rows: a Zalo
/// user id before a made-up one, then the oldest, then the smallest id (stable).
pub(crate) fn pick_contact_keys(
    phones: Vec<(String, String, i64)>,
    emails: Vec<(String, String, i64)>,
) -> ContactKeys {
    fn pick(rows: Vec<(String, String, i64)>) -> HashMap<String, String> {
        let mut best: HashMap<String, (bool, i64, String)> = HashMap::new();
        for (key, user, first_seen) in rows {
            let cand = (is_synthetic_id(&user), first_seen, user);
            match best.get(&key) {
                Some(cur) if *cur <= cand => {}
                _ => {
                    best.insert(key, cand);
                }
            }
        }
        best.into_iter().map(|(k, (_, _, u))| (k, u)).collect()
    }
    ContactKeys {
        by_phone: pick(phones),
        by_email: pick(emails),
    }
}

/// A stored outbound job.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct Job {
    pub id: i64,
    pub channel: String,
    pub user_id: String,
    pub payload: String,
    pub priority: i32,
    pub first_due: i64,
    pub run_at: i64,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub last_code: Option<i64>,
    pub provider_id: Option<String>,
    pub rule_id: Option<String>,
    pub source: String,
    pub created_at: i64,
    pub sent_at: Option<i64>,
    /// The A/B variant of the send action, if it had variants.
    pub variant: Option<String>,
    /// Why it was skipped (status `skipped`): `not_configured`, …
    pub skip_reason: Option<String>,
    /// What it was billed as, once sent (`zaloflow_core::cost::SendClass`).
    pub send_class: Option<String>,
    /// Its price in VND, once sent.
    pub cost_vnd: Option<i64>,
}

pub(crate) const JOB_COLUMNS: &str = "id, channel, user_id, payload, priority, first_due, run_at, status, attempts, last_error, last_code, provider_id, rule_id, source, created_at, sent_at, variant, skip_reason, send_class, cost_vnd";

/// Which jobs a sender claims: OA calls go through one rate-limited sender per OA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLane {
    All,
    /// Only Zalo OA API calls (`channel = 'zalo'`).
    ZaloOa,
    /// Everything but Zalo OA API calls.
    NotZaloOa,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobResult {
    Sent {
        provider_id: Option<String>,
        /// Its class and price (None: not a billed message).
        cost: Option<zaloflow_core::cost::SendCost>,
    },
    Retry {
        run_at: i64,
        error: String,
        code: Option<i64>,
    },
    Dead {
        error: String,
        code: Option<i64>,
    },
    /// Not attempted, for good (e.g. its channel is not configured): status `skipped`.
    Skipped(JobSkip),
}

impl JobResult {
    /// The `skip_reason` column.
    pub fn skip_reason(&self) -> Option<&str> {
        match self {
            JobResult::Skipped(s) => Some(&s.reason),
            _ => None,
        }
    }

    /// The `send_class` and `cost_vnd` columns.
    pub fn cost_columns(&self) -> (Option<&'static str>, Option<i64>) {
        match self {
            JobResult::Sent { cost: Some(c), .. } => (Some(c.class.as_str()), Some(c.vnd)),
            _ => (None, None),
        }
    }
}

/// The outcome of one attempt, and what it taught us about the contact.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub id: i64,
    pub result: JobResult,
    pub contact: Option<ContactChange>,
}

/// The next claim `Store::complete_and_claim` makes (see `Store::claim_inbox`).
#[derive(Debug, Clone, Copy)]
pub struct ClaimNext {
    pub now: i64,
    pub lease_ms: i64,
    pub limit: i64,
}

/// One processed inbox event and its effects.
#[derive(Debug, Clone)]
pub struct Completion {
    pub inbox_id: i64,
    pub effects: Effects,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A contact's membership of a campaign (seed 000).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct CampaignMember {
    pub campaign: String,
    pub contact_id: String,
    /// Day 0 of the steps.
    pub entered_at: i64,
    /// Position (0-based) of the next step when it was last written; informational: the
    /// member waits for `step_id`.
    pub step: i64,
    /// The id of the step the member waits for (`None` once done, or for a row from before
    /// step ids that the scheduler has not mapped yet).
    pub step_id: Option<String>,
    /// When that step is due; `None` once done or left.
    pub next_at: Option<i64>,
    /// `active`, `done` or `left`.
    pub status: String,
    /// Registrations counted (II.2: a repeat registration keeps one member).
    pub entries: i64,
    pub left_reason: Option<String>,
}

impl CampaignMember {
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// How many active members wait for one step of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MemberCount {
    pub campaign: String,
    /// `None`: rows from before step ids, known by `position` only.
    pub step_id: Option<String>,
    pub position: i64,
    pub members: i64,
}

/// A change to a campaign membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CampaignChange {
    /// Enters the contact (nothing if it is a member already, whatever its status). Step `step`
    /// is due at `next_at`; `None`: every step ran (done).
    Enter {
        campaign: String,
        contact_id: String,
        entered_at: i64,
        step: i64,
        step_id: Option<String>,
        next_at: Option<i64>,
    },
    /// A repeat registration of a member (II.2): counted.
    Repeat {
        campaign: String,
        contact_id: String,
    },
    /// The step with id `from_step` ran (or was skipped, or was removed from the campaign):
    /// `step_id` (at position `step`) is next, at `next_at` (`None`: done). Applies only to an
    /// active member still waiting for `from_step`.
    Advance {
        campaign: String,
        contact_id: String,
        from_step: String,
        step: i64,
        step_id: Option<String>,
        next_at: Option<i64>,
    },
    /// The member leaves (unfollowed, reached the goal, the campaign was removed).
    Leave {
        campaign: String,
        contact_id: String,
        reason: String,
    },
}

/// One scheduler decision: its effects, applied at most once per `key` (a mark written in the
/// same transaction). Without a key the effects are applied as they are (their idempotency
/// comes from job dedupe keys and rule limits).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    pub key: Option<String>,
    pub effects: Effects,
}

/// Which contacts a scheduler scan visits (ids in order, paged by `after`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactScan {
    /// Contacts who follow the OA.
    Followers,
    /// Contacts with this tag.
    Tagged(String),
    /// Members of this list.
    InList(String),
}

/// A contact field whose value changed (`updated_at` moves only on a new value).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FieldUpdate {
    pub user_id: String,
    pub name: String,
    pub value: String,
    pub updated_at: i64,
}

#[async_trait]
pub trait Store: Spend + Templates + Send + Sync + 'static {
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// Cheap reachability check (readiness).
    async fn ping(&self) -> Result<()>;

    // --- inbox ---
    /// Stores deliveries in one transaction (group commit); a dedupe key seen before, in the
    /// table or earlier in the same batch, is reported as a duplicate and not stored again.
    async fn insert_inbox(&self, events: &[NewInboxEvent]) -> Result<Vec<Inserted>> {
        let ids = self.store_inbox(events, None).await?;
        Ok(ids.into_iter().map(Inserted::of).collect())
    }
    /// `insert_inbox`, answering each delivery's new id (`None`: a duplicate). With `lease`,
    /// the new rows are stored leased to `lease.owner` with one attempt counted, as a claim
    /// would leave them.
    async fn store_inbox(
        &self,
        events: &[NewInboxEvent],
        lease: Option<IntakeLease<'_>>,
    ) -> Result<Vec<Option<i64>>>;
    /// `store_inbox` for a thread outside the async runtime, where the backend has one (SQLite);
    /// `None`: the intake's writers are tasks calling `store_inbox`.
    fn sync_inbox(&self) -> Option<Arc<dyn SyncInbox>> {
        None
    }
    /// Pending events of `users` with an id below `below` that are not among `ids`, as
    /// `(user, id)`: what a batch handed over in memory must not overtake.
    async fn inbox_pending_before(
        &self,
        users: &[String],
        below: i64,
        ids: &[i64],
    ) -> Result<Vec<(String, i64)>>;
    /// Gives these of `owner`'s leased events back, the attempt not counted.
    async fn release_inbox_events(&self, owner: &str, ids: &[i64]) -> Result<u64>;
    /// Claims up to `limit` pending events, oldest first (higher priority first), skipping any
    /// event whose user has an earlier event leased by someone else: one user's events are
    /// never processed concurrently or out of order.
    async fn claim_inbox(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<InboxEvent>>;
    /// Marks the events processed and applies their effects, in one transaction. Fails with
    /// `LeaseLost` (and changes nothing) if any lease is no longer ours.
    async fn complete_inbox(&self, owner: &str, done: &[Completion], now: i64) -> Result<()>;
    /// `complete_inbox`, then `claim_inbox` for the next round. SQLite does both in one
    /// transaction: its one writer then commits once per round instead of twice, and the
    /// webhook intake's group commits wait behind half as many processor writes.
    async fn complete_and_claim(
        &self,
        owner: &str,
        done: &[Completion],
        now: i64,
        next: ClaimNext,
    ) -> Result<Vec<InboxEvent>> {
        self.complete_inbox(owner, done, now).await?;
        self.claim_inbox(owner, next.now, next.lease_ms, next.limit)
            .await
    }
    /// Records a processing failure: retried after `retry_at`, or given up (`failed`) when `None`.
    async fn fail_inbox(
        &self,
        owner: &str,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<()>;
    /// Gives claimed events back (graceful shutdown).
    async fn release_inbox(&self, owner: &str) -> Result<u64>;
    async fn inbox_stats(&self) -> Result<InboxStats>;

    /// Applies effects that no inbox event carries (the scheduler's decisions), in one
    /// transaction.
    async fn apply_effects(&self, effects: &Effects, now: i64) -> Result<()>;
    /// The latest firing of every rule for these contacts.
    async fn load_rule_state(&self, user_ids: &[String]) -> Result<Vec<RuleFire>>;

    // --- outbox ---
    async fn enqueue_jobs(&self, jobs: &[NewJob], now: i64) -> Result<()>;
    /// Claims jobs due by `due_by` (and in-flight ones whose lease expired), marking the
    /// attempt before the call. A job waits while an earlier job of the same user is in flight
    /// or backing off. Leases are wall-clock time (`wall_now`), whatever instant `due_by`
    /// stands for: a `tick --at` in the past must not take leases that look expired to the
    /// running service, nor one in the future hold jobs long after a crash.
    async fn claim_jobs(
        &self,
        owner: &str,
        due_by: i64,
        wall_now: i64,
        lease_ms: i64,
        limit: i64,
        lane: JobLane,
    ) -> Result<Vec<Job>>;
    /// Records attempts' outcomes (and contact updates) in one transaction; an outcome whose
    /// lease is no longer ours is skipped and counted in the returned number.
    async fn finish_jobs(&self, owner: &str, outcomes: &[JobOutcome], now: i64) -> Result<u64>;
    async fn list_jobs(&self, status: Option<&str>, limit: i64) -> Result<Vec<Job>>;
    async fn get_job(&self, id: i64) -> Result<Option<Job>>;
    /// A dead letter goes back to the queue (attempts reset). False if it is not dead.
    async fn retry_dead_job(&self, id: i64, now: i64) -> Result<bool>;
    /// (channel, status, count)
    async fn job_counts(&self) -> Result<Vec<(String, String, i64)>>;
    /// The earliest `run_at` of pending jobs, if any.
    async fn next_job_due(&self) -> Result<Option<i64>>;

    // --- leases and tokens ---
    /// Takes or renews the named lease; false while someone else holds it.
    async fn try_lease(&self, name: &str, owner: &str, now: i64, ttl_ms: i64) -> Result<bool>;
    async fn release_lease(&self, name: &str, owner: &str) -> Result<()>;
    async fn load_tokens(&self) -> Result<Option<zaloflow_core::token::TokenPair>>;
    async fn save_tokens(&self, pair: &zaloflow_core::token::TokenPair, now: i64) -> Result<()>;

    // --- the OA's connection (docs/connect-oa.md) ---
    /// The connection's state (all empty when nothing was ever recorded).
    async fn oa_connection(&self) -> Result<OaConnection>;
    /// Stores a pair got by connecting OA `oa_id` and marks the OA connected again, in one
    /// transaction (the caller holds the token refresh lease).
    async fn save_connected_tokens(
        &self,
        pair: &zaloflow_core::token::TokenPair,
        oa_id: &str,
        now: i64,
    ) -> Result<()>;
    /// Notes a token refresh sent to Zalo at `at` and its error (None: it worked).
    async fn record_token_refresh(&self, at: i64, error: Option<&str>) -> Result<()>;
    /// Marks the OA as needing a person (`reason`), unless it already is or was connected
    /// after `seen_at`; enqueues `notice` in the same transaction. True when it changed.
    async fn revoke_oa(
        &self,
        seen_at: i64,
        reason: &str,
        notice: &[NewJob],
        now: i64,
    ) -> Result<bool>;
    /// Keeps an OAuth flow's state (hashes), code verifier and expiry; drops expired ones.
    async fn put_oauth_state(&self, state: &OauthState, now: i64) -> Result<()>;
    /// Takes (deletes and answers) the flow of this state hash: a state is used once.
    async fn take_oauth_state(&self, state_hash: &str) -> Result<Option<OauthState>>;

    // --- contacts ---
    async fn load_contacts(&self, user_ids: &[String]) -> Result<HashMap<String, Contact>>;
    async fn get_contact(&self, user_id: &str) -> Result<Option<Contact>> {
        let mut m = self.load_contacts(&[user_id.to_string()]).await?;
        Ok(m.remove(user_id))
    }

    // --- contact lists, forms, import/export ---
    /// Applies list operations in order, in one transaction.
    async fn apply_list_changes(&self, changes: &[ListChange], now: i64) -> Result<()>;
    /// Members of a list ordered by user id, after `after` (keyset paging).
    async fn list_members(
        &self,
        list: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ListMember>>;
    /// The lists a contact is on, by name.
    async fn lists_of_contact(&self, user_id: &str) -> Result<Vec<String>>;
    /// Every list with its member count, by name.
    async fn contact_lists(&self) -> Result<Vec<ContactList>>;
    /// Existing contacts with these phones (normalised `84…`) or emails (compared in lower case).
    async fn find_contact_keys(&self, phones: &[String], emails: &[String]) -> Result<ContactKeys>;
    /// Which of these contact ids exist.
    async fn existing_contact_ids(&self, user_ids: &[String]) -> Result<Vec<String>>;
    /// Counts a registration of `contact_id` on `form`; returns how many there have been,
    /// this one included (2 and more: a repeat registration).
    async fn record_form_submission(&self, form: &str, contact_id: &str, now: i64) -> Result<i64>;
    /// How many registrations of `contact_id` on `form` are counted (0: none), without
    /// counting one.
    async fn form_submission_count(&self, form: &str, contact_id: &str) -> Result<i64>;
    /// Takes back a registration that could not be stored as an event.
    async fn undo_form_submission(&self, form: &str, contact_id: &str) -> Result<()>;
    /// Upserts contacts (as `complete_inbox` does) and applies list operations, in one
    /// transaction: the bulk path of CSV import.
    async fn import_contacts(
        &self,
        changes: &[ContactChange],
        lists: &[ListChange],
        now: i64,
    ) -> Result<()>;
    /// Contact ids in order after `after`, optionally only the members of `list`.
    async fn contact_ids_page(
        &self,
        list: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>>;
    /// Every custom field name in use, sorted.
    async fn contact_field_names(&self) -> Result<Vec<String>>;
    /// The stored secret `name`, storing `candidate` first if there is none yet (the first
    /// instance to ask wins; everyone gets the same value).
    async fn get_or_create_secret(&self, name: &str, candidate: &str, now: i64) -> Result<String>;

    async fn add_to_list(&self, list: &str, user_id: &str, now: i64) -> Result<()> {
        let ch = ListChange::Add {
            list: list.into(),
            user_id: user_id.into(),
        };
        self.apply_list_changes(&[ch], now).await
    }
    async fn remove_from_list(&self, list: &str, user_id: &str, now: i64) -> Result<()> {
        let ch = ListChange::Remove {
            list: list.into(),
            user_id: user_id.into(),
        };
        self.apply_list_changes(&[ch], now).await
    }
    /// Adds `user_id` (or, when `None`, every member of `from`) to `to`; `from` keeps them.
    async fn copy_list(&self, from: &str, to: &str, user_id: Option<&str>, now: i64) -> Result<()> {
        let ch = ListChange::Copy {
            from: from.into(),
            to: to.into(),
            user_id: user_id.map(Into::into),
        };
        self.apply_list_changes(&[ch], now).await
    }
    /// Adds `user_id` (or every member of `from`) to `to` and removes them from `from`.
    async fn move_list(&self, from: &str, to: &str, user_id: Option<&str>, now: i64) -> Result<()> {
        let ch = ListChange::Move {
            from: from.into(),
            to: to.into(),
            user_id: user_id.map(Into::into),
        };
        self.apply_list_changes(&[ch], now).await
    }

    // --- handoffs (VIP care) ---
    /// Every contact with this tag (the in-memory VIP set is loaded from here).
    async fn users_with_tag(&self, tag: &str) -> Result<Vec<String>>;
    /// Handoffs in these statuses (all when empty): unresolved ones by deadline, resolved ones
    /// newest first.
    async fn list_handoffs(
        &self,
        statuses: &[&str],
        limit: i64,
    ) -> Result<Vec<crate::handoff::Handoff>>;
    async fn get_handoff(&self, id: i64) -> Result<Option<crate::handoff::Handoff>>;
    /// The customer messages and agents' replies of a handoff, in order.
    async fn handoff_messages(&self, id: i64) -> Result<Vec<crate::handoff::HandoffMessageRow>>;
    async fn handoff_breaches(&self, id: i64) -> Result<Vec<crate::handoff::Breach>>;
    /// `agent` takes the handoff; the first claim is also its first human response.
    /// Unchanged when it is resolved or claimed by someone else.
    async fn claim_handoff(
        &self,
        id: i64,
        agent: &str,
        now: i64,
    ) -> Result<crate::handoff::HandoffUpdate>;
    /// `agent` closes the handoff (a first human response too if there was none).
    async fn resolve_handoff(
        &self,
        id: i64,
        agent: &str,
        now: i64,
    ) -> Result<crate::handoff::HandoffUpdate>;
    /// Unresolved handoffs without a human response whose deadline is at or before `now` and
    /// whose escalation level is below `below_level`: the least escalated, most overdue first.
    async fn handoffs_past_deadline(
        &self,
        now: i64,
        below_level: i32,
        limit: i64,
    ) -> Result<Vec<crate::handoff::Handoff>>;
    /// Raises the handoff to `breach.level`, records the breach and enqueues `job`, in one
    /// transaction — only if the handoff is still unanswered, unresolved and below that level.
    /// False when there was nothing to do (already escalated, answered or resolved).
    async fn record_breach(
        &self,
        breach: &crate::handoff::Breach,
        job: &NewJob,
        now: i64,
    ) -> Result<bool>;
    /// Timings of the handoffs opened since `since` (reports), and of every unresolved one.
    async fn handoff_timings(&self, since: i64) -> Result<Vec<crate::handoff::HandoffTiming>>;
    // --- admin API ---
    /// Ids of the contacts matching every given filter, in id order after `after`.
    async fn search_contacts(&self, q: &ContactSearch) -> Result<Vec<String>>;
    /// The inbox events of a contact's lane, newest first.
    async fn contact_inbox(&self, user_id: &str, limit: i64) -> Result<Vec<InboxRecord>>;
    /// Outbox jobs addressed to any of `keys` (a contact's id, phone and email), newest first.
    async fn contact_jobs(&self, keys: &[String], limit: i64) -> Result<Vec<Job>>;
    /// Erases a contact in one transaction: its row, tags, fields, list memberships, rule
    /// state and form registrations are deleted; every job to it (or naming it) is deleted;
    /// every inbox event of its lane (or naming it) keeps only its dedupe key (Zalo's retries
    /// stay deduplicated) and no longer waits for processing.
    async fn erase_contact(&self, user_id: &str, now: i64) -> Result<Erased>;
    // --- scheduler (issue 5) ---
    /// Up to `limit` contact ids of a scan, in id order, after `after`.
    async fn scan_contact_ids(
        &self,
        scan: &ContactScan,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>>;
    /// One range query on the `last_interaction` index: contacts whose last interaction is in
    /// `[from, to)`, with this follow status (`None`: any but known unfollowers), leaving out
    /// those for whom the rule `skip_fired_in_silence` already fired in this silence
    /// (`once_per: silence`).
    async fn inactive_contact_ids(
        &self,
        from: i64,
        to: i64,
        follows: Option<bool>,
        skip_fired_in_silence: Option<&str>,
    ) -> Result<Vec<String>>;
    /// Contacts whose field `name` matches one of these SQL `LIKE` patterns.
    async fn contacts_with_field_like(
        &self,
        name: &str,
        patterns: &[String],
    ) -> Result<Vec<String>>;
    /// Applies decisions in one transaction: each keyed decision only if its key is new (the
    /// key is kept). Returns how many were applied.
    async fn apply_decisions(&self, decisions: &[Decision], now: i64) -> Result<usize>;
    /// Every campaign membership of these contacts.
    async fn load_campaign_members(&self, user_ids: &[String]) -> Result<Vec<CampaignMember>>;
    /// Active memberships whose next step is due by `now`, earliest first, optionally only of
    /// these campaigns.
    async fn due_campaign_members(
        &self,
        campaigns: Option<&[String]>,
        now: i64,
        limit: i64,
    ) -> Result<Vec<CampaignMember>>;
    /// The members of a campaign, by contact id (admin, tests).
    async fn campaign_members(&self, campaign: &str) -> Result<Vec<CampaignMember>>;
    /// A campaign's step ids in the order the scheduler last recorded (empty: never).
    async fn campaign_steps(&self, campaign: &str) -> Result<Vec<String>>;
    async fn set_campaign_steps(&self, campaign: &str, steps: &[String], now: i64) -> Result<()>;
    /// Active members stored by position only (rows from before step ids) get the id of the
    /// step at their position in `steps`; past the last step they are done. Returns how many.
    async fn map_member_positions(&self, campaign: &str, steps: &[String], now: i64)
        -> Result<u64>;
    /// Active members per campaign and step (`rules check --against`).
    async fn member_counts(&self) -> Result<Vec<MemberCount>>;
    /// A scheduler watermark.
    async fn scheduler_value(&self, name: &str) -> Result<Option<i64>>;
    async fn set_scheduler_value(&self, name: &str, value: i64, now: i64) -> Result<()>;
    /// Members who joined `list` with `added_at` in `[from, to)`.
    async fn list_joins(&self, list: &str, from: i64, to: i64) -> Result<Vec<ListMember>>;
    /// Fields of these names whose value changed with `updated_at` in `[from, to)`.
    async fn field_updates(&self, names: &[String], from: i64, to: i64)
        -> Result<Vec<FieldUpdate>>;
    /// Emails sent with `sent_at` in `[from, to)`, optionally only those of one rule or step.
    async fn sent_emails(&self, rule_id: Option<&str>, from: i64, to: i64) -> Result<Vec<Job>>;
    /// Which of these inbox dedupe keys are stored (e.g. a human open of an email).
    async fn existing_inbox_keys(&self, keys: &[String]) -> Result<Vec<String>>;
    /// Which of these decision keys are taken.
    async fn existing_marks(&self, keys: &[String]) -> Result<Vec<String>>;
    // --- effectiveness (issue 10) ---
    /// What the rules did since `since` (jobs created, firings, handoffs opened), counted per
    /// rule, variant and outcome; only `rule` and its campaign steps (`rule/…`) when given.
    async fn report_counts(&self, since: i64, rule: Option<&str>) -> Result<crate::report::Counts>;
    // --- contacts sync (issue 29) ---
    /// Applies profiles read from Zalo with the merge rule of [`ZaloProfile`], and with `page`
    /// moves that run's cursor and counts, in one transaction. Fails with `LeaseLost` (and
    /// changes nothing) when the run's cursor is no longer where `page` started.
    async fn apply_zalo_profiles(
        &self,
        profiles: &[ZaloProfile],
        page: Option<&SyncPage>,
        now: i64,
    ) -> Result<ProfileCounts>;
    /// The unfinished sync run, or a new one started now by `by`; `true` when new.
    async fn start_contact_sync(&self, by: &str, now: i64) -> Result<(ContactSync, bool)>;
    /// The latest sync run.
    async fn contact_sync(&self) -> Result<Option<ContactSync>>;
    /// Records a run's failure (`error`, the run stays resumable) or, with `done`, its end.
    async fn end_contact_sync(
        &self,
        id: i64,
        done: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<()>;
    /// Zalo users whose profile was never read (first seen in a webhook, imported…) and whose
    /// lookup is due, newest first.
    async fn profiles_due(&self, now: i64, limit: i64) -> Result<Vec<String>>;
    /// A lookup failed: tried again at `retry_at`, or never (`None`: Zalo refused it for good).
    async fn profile_lookup_failed(&self, user_id: &str, retry_at: Option<i64>) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by the URL (`sqlite://…` or `postgres://…`). Does not migrate.
pub async fn open(url: &str) -> anyhow::Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PgStore::open(url).await?))
    } else {
        anyhow::bail!("unsupported database URL scheme (use sqlite:// or postgres://)")
    }
}

/// Splits an inbox batch in memory: the first occurrence of each dedupe key is kept, later
/// ones in the same batch are duplicates. Returns the index of the kept rows.
pub(crate) fn first_occurrences(events: &[NewInboxEvent]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    (0..events.len())
        .filter(|&i| seen.insert(events[i].dedupe_key.as_str()))
        .collect()
}

/// Rows of `contact_tags` / `contact_fields` folded into contacts.
pub(crate) fn attach_tags_fields(
    contacts: &mut HashMap<String, Contact>,
    tags: Vec<(String, String)>,
    fields: Vec<(String, String, String)>,
) {
    for (u, t) in tags {
        if let Some(c) = contacts.get_mut(&u) {
            c.tags.insert(t);
        }
    }
    for (u, k, v) in fields {
        if let Some(c) = contacts.get_mut(&u) {
            c.fields.insert(k, v);
        }
    }
}

/// Maps a batch back to per-request outcomes: kept rows that the database returned were
/// stored (with their new id), everything else (seen before, or repeated in the batch) is a
/// duplicate.
pub(crate) fn stored_ids(
    events: &[NewInboxEvent],
    keep: &[usize],
    stored: HashMap<String, i64>,
) -> Vec<Option<i64>> {
    let mut out = vec![None; events.len()];
    for &i in keep {
        out[i] = stored.get(&events[i].dedupe_key).copied();
    }
    out
}

pub(crate) fn stats_from_rows(rows: Vec<(String, i64)>) -> InboxStats {
    let mut s = InboxStats::default();
    for (status, n) in rows {
        match status.as_str() {
            "pending" => s.pending = n,
            "done" => s.done = n,
            "failed" => s.failed = n,
            _ => {}
        }
    }
    s
}

pub(crate) const MEMBER_COLUMNS: &str =
    "campaign, contact_id, entered_at, step, step_id, next_at, status, entries, left_reason";

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    user_id: String,
    display_name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    follows: Option<bool>,
    first_seen: i64,
    last_interaction: Option<i64>,
    interaction_count: i64,
    followed_at: Option<i64>,
    unfollowed_at: Option<i64>,
}

impl From<ContactRow> for Contact {
    fn from(r: ContactRow) -> Self {
        Contact {
            user_id: r.user_id,
            display_name: r.display_name,
            phone: r.phone,
            email: r.email,
            follows: r.follows,
            first_seen: r.first_seen,
            last_interaction: r.last_interaction,
            interaction_count: r.interaction_count,
            followed_at: r.followed_at,
            unfollowed_at: r.unfollowed_at,
            tags: BTreeSet::new(),
            fields: BTreeMap::new(),
        }
    }
}

/// The OA's connection as `oa_connection` keeps it (see migration 0013).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct OaConnection {
    pub oa_id: Option<String>,
    pub connected_at: Option<i64>,
    pub last_refresh_at: Option<i64>,
    pub last_refresh_error: Option<String>,
    pub revoked_at: Option<i64>,
    /// `permission_revoked` or `refresh_refused`
    pub revoked_reason: Option<String>,
}

impl OaConnection {
    /// True while a person must connect the OA again: Zalo OA calls wait.
    pub fn needs_reconnect(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// An OAuth flow started from the connect page (hashes, never the state itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OauthState {
    pub state_hash: String,
    pub session_hash: String,
    pub code_verifier: String,
    pub expires_at: i64,
}

pub(crate) fn token_pair(
    (access_token, refresh_token, expires_at_ms): (String, String, i64),
) -> zaloflow_core::token::TokenPair {
    zaloflow_core::token::TokenPair {
        access_token,
        refresh_token,
        expires_at_ms,
    }
}

/// The columns an attempt's outcome sets: status, next run, sent time, provider id, error, code.
#[allow(clippy::type_complexity)]
pub(crate) fn outcome_columns(
    o: &JobOutcome,
    now: i64,
) -> (
    &'static str,
    Option<i64>,
    Option<i64>,
    Option<&str>,
    Option<&str>,
    Option<i64>,
) {
    match &o.result {
        JobResult::Sent { provider_id, .. } => {
            ("sent", None, Some(now), provider_id.as_deref(), None, None)
        }
        JobResult::Retry {
            run_at,
            error,
            code,
        } => ("pending", Some(*run_at), None, None, Some(error), *code),
        JobResult::Dead { error, code } => ("dead", None, None, None, Some(error), *code),
        JobResult::Skipped(s) => (SKIPPED, None, None, None, Some(&s.message), None),
    }
}

/// What the admin API searches contacts by; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactSearch {
    /// Part of the display name, without regard to case (SQLite: ASCII letters only).
    pub name: Option<String>,
    /// A phone number in the stored form (`84…`), matched exactly.
    pub phone: Option<String>,
    pub tag: Option<String>,
    /// Keyset paging: ids after this one.
    pub after: Option<String>,
    pub limit: i64,
}

/// A stored inbox event, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InboxRecord {
    pub id: i64,
    pub event_name: String,
    pub user_id: String,
    pub body: String,
    pub event_ts: Option<i64>,
    pub received_at: i64,
    pub status: String,
    pub attempts: i32,
    pub processed_at: Option<i64>,
    pub error: Option<String>,
}

/// What erasing a contact removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// 1 when the contact row existed.
    pub contact: u64,
    pub tags: u64,
    pub fields: u64,
    pub list_memberships: u64,
    pub rule_state: u64,
    pub form_submissions: u64,
    /// Inbox events whose body was replaced by `{"redacted":true}`.
    pub inbox_redacted: u64,
    pub jobs_deleted: u64,
}

impl Erased {
    /// True when nothing at all was found.
    pub fn is_empty(&self) -> bool {
        *self == Erased::default()
    }
}

/// The body an erased contact's inbox events keep.
pub const REDACTED_BODY: &str = r#"{"redacted":true}"#;

/// The strings that identify a contact inside stored JSON: its id (quoted, so `u1` does not
/// match `u10`), its phone in both the `84…` and the local `0…` form, and its email.
pub(crate) fn erase_needles(
    user_id: &str,
    phone: Option<&str>,
    email: Option<&str>,
) -> Vec<String> {
    let mut out = vec![serde_json::to_string(user_id).expect("a string serialises")];
    if let Some(p) = phone.filter(|p| p.len() >= 8) {
        out.push(p.to_string());
        if let Some(rest) = p.strip_prefix("84") {
            out.push(format!("0{rest}"));
        }
    }
    if let Some(e) = email.filter(|e| e.contains('@')) {
        out.push(e.to_string());
        if e.to_lowercase() != e {
            out.push(e.to_lowercase());
        }
    }
    out
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A user's profile as Zalo gave it (`/v3.0/oa/user/detail`), read at `read_at`.
///
/// The merge rule (`apply_zalo_profiles`): Zalo's display name fills or refreshes the name;
/// its follower flag is taken unless zaloflow saw a follow or unfollow event after `read_at`;
/// its last interaction day counts only when zaloflow knows no interaction on or after that day
/// (`day_start`), and then as `last_interaction`; its tags are added (never removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZaloProfile {
    pub user_id: String,
    pub display_name: Option<String>,
    pub follows: Option<bool>,
    /// Zalo's last interaction day `(day_start, last_interaction)`: the start of that day in the
    /// OA time zone, and the instant counted as the interaction (the day's last millisecond,
    /// or `read_at` when that is earlier), so silence is never counted longer than it was.
    pub interaction_day: Option<(i64, i64)>,
    pub tags: Vec<String>,
    pub read_at: i64,
}

/// What applying profiles did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProfileCounts {
    /// Contacts zaloflow did not know.
    pub created: i64,
    /// Contacts it knew (refreshed).
    pub updated: i64,
}

/// A sync run's cursor move: from where the page started to where the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub run_id: i64,
    pub from_phase: String,
    pub from_offset: i64,
    pub phase: String,
    pub next_offset: i64,
    /// Zalo's `data.total` of the follower list (pages of that list only).
    pub total: Option<i64>,
    /// Users the page listed.
    pub listed: i64,
    /// Of them, profiles Zalo refused.
    pub unreadable: i64,
}

/// A `contacts sync` run and its cursor.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ContactSync {
    pub id: i64,
    /// `running` (also while interrupted: the next runner resumes it) or `done`.
    pub status: String,
    /// `cli`, `admin` or `schedule`.
    pub requested_by: String,
    /// `followers` (Zalo's follower list), `others` (users it lists as not following), `done`.
    pub phase: String,
    /// Offset of the next page in the phase's list.
    pub next_offset: i64,
    /// Zalo's count of followers (`data.total` of the follower list).
    pub total: Option<i64>,
    /// Users listed and looked up so far.
    pub listed: i64,
    pub created: i64,
    pub updated: i64,
    /// Profiles Zalo refused to give (counted, skipped).
    pub unreadable: i64,
    pub started_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// The last failure, until the run moves on.
    pub error: Option<String>,
}

pub(crate) const CONTACT_SYNC_COLUMNS: &str = "id, status, requested_by, phase, next_offset, total, listed, created, updated, unreadable, started_at, updated_at, finished_at, error";

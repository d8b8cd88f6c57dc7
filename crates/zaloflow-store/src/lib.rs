//! Storage: one interface ([`Store`]), two real backends chosen by the URL scheme —
//! [`sqlite`] (the embedded default) and [`postgres`] (several instances).
//!
//! Deciding is done above this layer, in plain code; a store applies decisions atomically
//! (an event is marked processed in the same transaction as everything it caused).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;

#[macro_use]
mod dialect;

pub mod agents;
pub mod campaigns;
pub mod contact_sync;
pub mod contacts;
pub mod handoff;
pub mod inbox;
pub mod jobs;
pub mod lists;
pub mod oa;
pub mod postgres;
pub mod replay;
pub mod report;
mod rows;
pub mod spend;
pub mod sqlite;
pub mod templates;

pub use agents::{Agent, AgentCredentials, Agents, SessionAgent};
pub use campaigns::Campaigns;
pub use contact_sync::ProfileSync;
pub use contacts::Contacts;
pub use handoff::Handoffs;
pub use inbox::Inbox;
pub use jobs::Jobs;
pub use lists::Lists;
pub use oa::Oa;
pub use replay::{FireCount, Replay};
pub use rows::*;
pub use spend::{BatchHistory, NotSentRow, Spend, SpendRow};
pub use templates::Templates;

/// The store's traits: [`Store`] and its areas, whose methods callers of a [`DynStore`] need
/// in scope (`use zaloflow_store::prelude::*`).
pub mod prelude {
    pub use crate::{
        Agents, Campaigns, Contacts, Handoffs, Inbox, Jobs, Lists, Oa, ProfileSync, Replay, Spend,
        Store, Templates,
    };
}

pub use zaloflow_core::job::{JobSkip, NewJob, SKIPPED};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The message holds the driver's (which holds its own causes): they are not given as this
    // error's source as well, or a chain printed whole (`{:#}`, the commands' errors) said the
    // same thing three times.
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Db(sqlx::Error),
    /// The same, from the SQLite connection the webhook intake writes through (rusqlite).
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// Our lease on a claimed row expired and another worker may own it now.
    #[error("lease lost on {0}")]
    LeaseLost(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
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
/// ([`Inbox::sync_inbox`]): SQLite's, whose one writer then goes from one group commit to the
/// next without waiting for a task to be polled in between.
pub trait SyncInbox: Send + Sync {
    /// [`Inbox::store_inbox`], blocking the calling thread.
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
    /// The outcome of a delivery `Inbox::store_inbox` answered `id` for.
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

/// The next claim `Inbox::complete_and_claim` makes (see `Inbox::claim_inbox`).
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
pub trait Store:
    Agents
    + Spend
    + Replay
    + Templates
    + Inbox
    + Jobs
    + Oa
    + Contacts
    + Lists
    + Handoffs
    + Campaigns
    + ProfileSync
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;
    /// How many of this version's migrations the database has not applied (all of them when
    /// it was never migrated). Reads only: for the commands that must change nothing
    /// (`forecast`, `rules check --against`), which refuse such a database with the fix.
    async fn pending_migrations(&self) -> Result<usize>;
    /// Cheap reachability check (readiness).
    async fn ping(&self) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;

/// How many of `migrator`'s migrations are not among `applied` (the versions the database's
/// `_sqlx_migrations` holds as done). A database error reading them (no such table: never
/// migrated) counts every one as pending.
fn pending_of(
    migrator: &sqlx::migrate::Migrator,
    applied: std::result::Result<Vec<i64>, sqlx::Error>,
) -> Result<usize> {
    let applied = match applied {
        Ok(v) => v,
        Err(sqlx::Error::Database(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .count())
}

/// The versions of the migrations a database holds as applied.
const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// Why a database cannot serve a command that must change nothing in it (`forecast`,
/// `rules check --against`), found without changing it: a SQLite file is not created, not
/// switched to WAL, not migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    /// A `sqlite://` URL names a file that does not exist.
    Missing(std::path::PathBuf),
    /// This many of this version's migrations are not applied.
    Unmigrated(usize),
}

/// Opens the store `url` names for a command that must change nothing in it, or says why it
/// cannot ([`NotReady`]). A SQLite file is checked through a read-only connection before the
/// store opens it (opening would create it or switch it to WAL); PostgreSQL is opened once
/// and checked through [`Store::pending_migrations`].
pub async fn open_unchanged(url: &str) -> anyhow::Result<Result<DynStore, NotReady>> {
    use std::str::FromStr;
    let memory = url.contains(":memory:") || url.contains("mode=memory");
    if url.starts_with("sqlite:") && !memory {
        let path = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .get_filename()
            .to_path_buf();
        if !path.exists() {
            return Ok(Err(NotReady::Missing(path)));
        }
        let pending = tokio::task::spawn_blocking(move || sqlite::pending_in_file(&path)).await??;
        if pending > 0 {
            return Ok(Err(NotReady::Unmigrated(pending)));
        }
        return Ok(Ok(open(url).await?));
    }
    let store = open(url).await?;
    Ok(match store.pending_migrations().await? {
        0 => Ok(store),
        n => Err(NotReady::Unmigrated(n)),
    })
}

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

/// Opens a SQLite store whose data may be lost with the process, a forecast's scratch copy:
/// its commits do not wait for the disk (`SqliteStore::open_throwaway`). Does not migrate.
pub async fn open_throwaway(sqlite_url: &str) -> anyhow::Result<DynStore> {
    Ok(Arc::new(
        sqlite::SqliteStore::open_throwaway(sqlite_url).await?,
    ))
}

//! Row types and helpers the two backends share: the OA's connection, the admin API's
//! searches and erasures, contact syncs, and how rows become the types above.

use crate::*;

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
    pub(crate) user_id: String,
    pub(crate) display_name: Option<String>,
    pub(crate) phone: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) follows: Option<bool>,
    pub(crate) first_seen: i64,
    pub(crate) last_interaction: Option<i64>,
    pub(crate) interaction_count: i64,
    pub(crate) followed_at: Option<i64>,
    pub(crate) unfollowed_at: Option<i64>,
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

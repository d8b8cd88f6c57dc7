//! `/admin/contacts…`: search, one contact with its timeline, edit, erase.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::outbox::JobView;
use super::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::channels::Payload;
use crate::contacts as parse;
use crate::http::AppState;
use crate::store::{Contact, ContactChange, ContactSearch, Effects, Erased, InboxRecord};

/// Longest tag name accepted.
pub const MAX_TAG_CHARS: usize = 100;

/// A person the OA knows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactView {
    /// A Zalo user id, or `phone:84…` / `email:…` for contacts known only from a form or file.
    #[schema(example = "8012345678901234567")]
    pub user_id: String,
    #[schema(example = "Lan")]
    pub display_name: Option<String>,
    /// International form, `84…`.
    #[schema(example = "84912345678")]
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Whether the user follows the OA; null while unknown.
    pub follows: Option<bool>,
    pub first_seen: i64,
    pub last_interaction: Option<i64>,
    /// Events the user caused (messages, follows, taps…).
    pub interaction_count: i64,
    pub followed_at: Option<i64>,
    pub unfollowed_at: Option<i64>,
    pub tags: Vec<String>,
    /// Custom fields (`birthday` is `YYYY-MM-DD`).
    pub fields: BTreeMap<String, String>,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        ContactView {
            user_id: c.user_id,
            display_name: c.display_name,
            phone: c.phone,
            email: c.email,
            follows: c.follows,
            first_seen: c.first_seen,
            last_interaction: c.last_interaction,
            interaction_count: c.interaction_count,
            followed_at: c.followed_at,
            unfollowed_at: c.unfollowed_at,
            tags: c.tags.into_iter().collect(),
            fields: c.fields,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Part of the display name, without regard to case (on SQLite: ASCII letters only).
    #[param(example = "lan")]
    name: Option<String>,
    /// A phone number in any usual form (`0912 345 678`, `+84 912…`, `84912…`).
    phone: Option<String>,
    /// Only contacts carrying this tag.
    tag: Option<String>,
    /// Paging: the `next` value of the previous page.
    after: Option<String>,
    /// Page size, 1–500 (default 50).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPage {
    /// In id order.
    pub contacts: Vec<ContactView>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// Contacts by name, phone and tag (every filter given must hold), a page at a time.
#[utoipa::path(
    get,
    path = "/admin/contacts",
    tag = "contacts",
    operation_id = "search_contacts",
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of contacts", body = ContactPage),
        (status = 400, description = "A phone that is not a phone number, or a limit out of range (`bad_query`)", body = ErrorBody),
    )
)]
pub async fn search(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<ContactPage>, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
    let phone = match q.phone.as_deref() {
        Some(p) => parse::parse_phone(p)
            .map_err(|e| ApiError::bad_request("bad_query", format!("phone {e}")))?,
        None => None,
    };
    let nonempty = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
    let query = ContactSearch {
        name: nonempty(q.name).map(|s| s.trim().to_string()),
        phone,
        tag: nonempty(q.tag),
        after: nonempty(q.after),
        limit,
    };
    let ids = st.store.search_contacts(&query).await?;
    let next = (ids.len() as i64 == limit)
        .then(|| ids.last().cloned())
        .flatten();
    let mut found = st.store.load_contacts(&ids).await?;
    let contacts = ids
        .iter()
        .filter_map(|id| found.remove(id))
        .map(ContactView::from)
        .collect();
    Ok(Json(ContactPage { contacts, next }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowQuery {
    /// Most recent events and most recent sends to show, 1–500 each (default 50).
    limit: Option<i64>,
}

/// Something that happened with a contact: an event from them (or about them), or a send.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// When: an event's own time (else its arrival); a send's time, else when it is due.
    pub at: i64,
    /// `event` (the inbox) or `send` (the outbox).
    #[schema(example = "event")]
    pub kind: String,
    /// Set when `kind` is `event`.
    pub event: Option<EventView>,
    /// Set when `kind` is `send`.
    pub job: Option<JobView>,
}

/// A stored webhook delivery (or one of the service's own events).
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Inbox id.
    pub id: i64,
    #[schema(example = "user_send_text")]
    pub event_name: String,
    /// `pending`, `done` or `failed`.
    pub status: String,
    pub event_ts: Option<i64>,
    pub received_at: i64,
    pub processed_at: Option<i64>,
    pub attempts: i32,
    pub error: Option<String>,
    /// The message text, when the event carries one.
    pub text: Option<String>,
    /// The delivery as Zalo sent it.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

impl From<InboxRecord> for EventView {
    fn from(r: InboxRecord) -> Self {
        let body: serde_json::Value =
            serde_json::from_str(&r.body).unwrap_or(serde_json::Value::String(r.body));
        let text = body
            .pointer("/message/text")
            .and_then(|t| t.as_str())
            .map(str::to_string);
        EventView {
            id: r.id,
            event_name: r.event_name,
            status: r.status,
            event_ts: r.event_ts,
            received_at: r.received_at,
            processed_at: r.processed_at,
            attempts: r.attempts,
            error: r.error,
            text,
            body,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactDetail {
    pub contact: ContactView,
    /// The lists the contact is on.
    pub lists: Vec<String>,
    /// Newest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One contact with its lists and its timeline.
///
/// The timeline holds the events about the contact and every job about it, newest first: the
/// sends to it (Zalo, and SMS/ZNS/email to its phone and email) and the staff notices about it
/// (team-chat messages and tasks naming the contact, among the latest 2,000 jobs).
#[utoipa::path(
    get,
    path = "/admin/contacts/{id}",
    tag = "contacts",
    operation_id = "get_contact",
    params(("id" = String, Path, description = "Contact id", example = "8012345678901234567"), ShowQuery),
    responses(
        (status = 200, description = "The contact", body = ContactDetail),
        (status = 400, description = "Limit out of range (`bad_query`)", body = ErrorBody),
        (status = 404, description = "No such contact (`not_found`)", body = ErrorBody),
    )
)]
pub async fn show(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<ContactDetail>, ApiError> {
    let limit = page_limit(q.limit, 50, 500)?;
    let contact = load(&st, &id).await?;
    let lists = st.store.lists_of_contact(&id).await?;
    let events = st.store.contact_inbox(&id, limit).await?;
    let mut jobs = st
        .store
        .contact_jobs(&contact_keys(&contact), limit)
        .await?;
    jobs.extend(st.store.staff_jobs_about(&id, limit).await?);
    let mut timeline: Vec<TimelineEntry> = events
        .into_iter()
        .map(|r| TimelineEntry {
            at: r
                .event_ts
                .filter(|t| *t > 1_000_000_000_000)
                .unwrap_or(r.received_at),
            kind: "event".into(),
            event: Some(r.into()),
            job: None,
        })
        .chain(jobs.into_iter().map(|j| TimelineEntry {
            at: j.sent_at.unwrap_or(j.run_at),
            kind: "send".into(),
            event: None,
            job: Some(j.into()),
        }))
        .collect();
    timeline.sort_by_key(|e| std::cmp::Reverse(e.at));
    Ok(Json(ContactDetail {
        contact: contact.into(),
        lists,
        timeline,
    }))
}

/// Changes to a contact. Absent members leave the stored values alone.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"display_name": "Lan Nguyễn", "fields": {"birthday": "1990-05-01"}, "add_tags": ["vip_customer"], "remove_tags": ["new_user"]}))]
pub struct ContactEdit {
    pub display_name: Option<String>,
    /// Any usual form; stored as `84…`.
    pub phone: Option<String>,
    pub email: Option<String>,
    /// Custom fields to set, name → value (`birthday`: `DD/MM/YYYY` or `YYYY-MM-DD`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Tags to add; mirrored to the user's tags on Zalo.
    #[serde(default)]
    pub add_tags: Vec<String>,
    /// Tags to remove; mirrored to Zalo.
    #[serde(default)]
    pub remove_tags: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactEdited {
    pub contact: ContactView,
    /// How many outbox jobs were enqueued to mirror the tag changes on Zalo (none for
    /// contacts that are not Zalo followers). They show in the contact's timeline.
    pub zalo_jobs: usize,
}

/// Edits a contact's name, phone, email, custom fields and tags.
///
/// Tag changes are mirrored to Zalo through the outbox, in the same transaction as the
/// change (for Zalo followers only).
#[utoipa::path(
    patch,
    path = "/admin/contacts/{id}",
    tag = "contacts",
    operation_id = "edit_contact",
    params(("id" = String, Path, description = "Contact id", example = "8012345678901234567")),
    request_body = ContactEdit,
    responses(
        (status = 200, description = "The contact after the change", body = ContactEdited),
        (status = 404, description = "No such contact (`not_found`)", body = ErrorBody),
        (status = 422, description = "A value that is not acceptable, or an unknown member (`invalid`)", body = ErrorBody),
    )
)]
pub async fn edit(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(edit): ApiJson<ContactEdit>,
) -> Result<Json<ContactEdited>, ApiError> {
    let now = st.clock.now();
    let contact = load(&st, &id).await?;
    let mut change = ContactChange::new(id.clone(), now);
    let required = |what: &str, r: Result<Option<String>, parse::Invalid>| match r {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(ApiError::invalid(format!("{what} is empty"))),
        Err(e) => Err(ApiError::invalid(format!("{what} {e}"))),
    };
    if let Some(n) = &edit.display_name {
        change.display_name = Some(required("display_name", parse::parse_name(n))?);
    }
    if let Some(p) = &edit.phone {
        change.phone = Some(required("phone", parse::parse_phone(p))?);
    }
    if let Some(e) = &edit.email {
        change.email = Some(required("email", parse::parse_email(e))?);
    }
    for (name, value) in &edit.fields {
        let name = parse::parse_field_name(name).map_err(|e| ApiError::invalid(e.to_string()))?;
        let value = if name == parse::BIRTHDAY_FIELD {
            required(&format!("field {name}"), parse::parse_birthday(value))?
        } else {
            required(&format!("field {name}"), parse::parse_field_value(value))?
        };
        change.fields_set.push((name, value));
    }
    let add = tag_names(&edit.add_tags)?;
    let remove = tag_names(&edit.remove_tags)?;
    if let Some(t) = add.intersection(&remove).next() {
        return Err(ApiError::invalid(format!(
            "tag {t:?} is both added and removed"
        )));
    }
    change.tags_add = add.difference(&contact.tags).cloned().collect();
    change.tags_remove = remove.intersection(&contact.tags).cloned().collect();

    let mut effects = Effects::default();
    // Zalo only knows tags of its followers; made-up ids (form or file contacts) have none.
    if crate::engine::is_zalo_user(&id) && contact.follows != Some(false) {
        let mirror = |tag: &String, add: bool| {
            let payload = Payload::ZaloTag {
                user_id: id.clone(),
                tag: tag.clone(),
                add,
            };
            crate::outbox::job(&payload, now, "admin")
        };
        effects
            .jobs
            .extend(change.tags_add.iter().map(|t| mirror(t, true)));
        effects
            .jobs
            .extend(change.tags_remove.iter().map(|t| mirror(t, false)));
    }
    let mirrored = effects.jobs.len();
    let (added, removed) = (change.tags_add.clone(), change.tags_remove.clone());
    effects.contacts.push(change);
    st.store.apply_effects(&effects, now).await?;
    if mirrored > 0 {
        st.jobs_enqueued.notify_one();
    }
    tracing::info!(
        user = %id,
        tags_added = ?added,
        tags_removed = ?removed,
        fields = edit.fields.len(),
        zalo_jobs = mirrored,
        "contact edited by an operator"
    );
    let contact = load(&st, &id).await?;
    Ok(Json(ContactEdited {
        contact: contact.into(),
        zalo_jobs: mirrored,
    }))
}

/// What was erased.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasedView {
    pub erased: bool,
    /// 1 when the contact row existed.
    pub contact: u64,
    pub tags: u64,
    pub fields: u64,
    pub list_memberships: u64,
    pub rule_state: u64,
    pub form_submissions: u64,
    /// Inbox events whose body was replaced by `{"redacted":true}`.
    pub inbox_redacted: u64,
    /// Outbox jobs to the contact (or naming it) deleted, sent or not.
    pub jobs_deleted: u64,
}

impl From<Erased> for ErasedView {
    fn from(e: Erased) -> Self {
        ErasedView {
            erased: true,
            contact: e.contact,
            tags: e.tags,
            fields: e.fields,
            list_memberships: e.list_memberships,
            rule_state: e.rule_state,
            form_submissions: e.form_submissions,
            inbox_redacted: e.inbox_redacted,
            jobs_deleted: e.jobs_deleted,
        }
    }
}

/// Erases a contact for good (personal data requests).
///
/// In one transaction: the contact, its tags, fields, list memberships, rule history and form
/// registrations are deleted; every outbox job to it (by
/// id, phone or email) or naming it is deleted, sent or not; every inbox event of it or naming
/// it is redacted (only the dedupe key stays, so a late retry from Zalo is still recognised).
/// A later message from the same Zalo user starts a new, empty contact.
#[utoipa::path(
    delete,
    path = "/admin/contacts/{id}",
    tag = "contacts",
    operation_id = "erase_contact",
    params(("id" = String, Path, description = "Contact id", example = "8012345678901234567")),
    responses(
        (status = 200, description = "Erased; what was removed", body = ErasedView),
        (status = 404, description = "Nothing is stored about this id (`not_found`)", body = ErrorBody),
    )
)]
pub async fn erase(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ErasedView>, ApiError> {
    let erased = st.store.erase_contact(&id, st.clock.now()).await?;
    if erased.is_empty() {
        return Err(ApiError::not_found(format!("no contact {id}")));
    }
    // The id itself is personal data: the log keeps only what was removed.
    tracing::info!(?erased, "contact erased by an operator");
    Ok(Json(erased.into()))
}

async fn load(st: &AppState, id: &str) -> Result<Contact, ApiError> {
    st.store
        .get_contact(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no contact {id}")))
}

/// The addresses jobs to this contact are sent to: its id, phone and email.
fn contact_keys(c: &Contact) -> Vec<String> {
    let mut keys = vec![c.user_id.clone()];
    keys.extend(c.phone.iter().cloned());
    keys.extend(c.email.iter().cloned());
    keys
}

fn tag_names(tags: &[String]) -> Result<BTreeSet<String>, ApiError> {
    tags.iter()
        .map(|t| {
            let t = t.trim();
            if t.is_empty() {
                Err(ApiError::invalid("a tag is empty"))
            } else if t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
                Err(ApiError::invalid(format!(
                    "tag {t:?} is longer than {MAX_TAG_CHARS} characters or has control characters"
                )))
            } else {
                Ok(t.to_string())
            }
        })
        .collect()
}

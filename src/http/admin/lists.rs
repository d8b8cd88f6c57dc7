//! `/admin/lists…`: contact lists with their counts, members a page at a time, add and remove.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{page_limit, ApiError, ApiJson, ApiPath, ApiQuery, ErrorBody};
use crate::http::AppState;
use crate::store::{valid_list_name, ListChange};

#[derive(Debug, Serialize, ToSchema)]
pub struct ListView {
    #[schema(example = "vip-leads")]
    pub name: String,
    pub description: Option<String>,
    pub created_at: i64,
    pub members: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Lists {
    /// By name.
    pub lists: Vec<ListView>,
}

/// Every contact list with its member count.
#[utoipa::path(
    get,
    path = "/admin/lists",
    tag = "lists",
    operation_id = "list_lists",
    responses((status = 200, description = "The lists", body = Lists))
)]
pub async fn all(State(st): State<AppState>) -> Result<Json<Lists>, ApiError> {
    let lists = st
        .store
        .contact_lists()
        .await?
        .into_iter()
        .map(|l| ListView {
            name: l.name,
            description: l.description,
            created_at: l.created_at,
            members: l.members,
        })
        .collect();
    Ok(Json(Lists { lists }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersQuery {
    /// Paging: the `next` value of the previous page.
    after: Option<String>,
    /// Page size, 1–1000 (default 100).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    #[schema(example = "8012345678901234567")]
    pub user_id: String,
    pub added_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub list: String,
    /// In contact id order.
    pub members: Vec<Member>,
    /// Pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

/// Members of a list, a page at a time.
#[utoipa::path(
    get,
    path = "/admin/lists/{name}/members",
    tag = "lists",
    operation_id = "list_members",
    params(("name" = String, Path, description = "List name", example = "vip-leads"), MembersQuery),
    responses(
        (status = 200, description = "A page of members", body = MemberPage),
        (status = 404, description = "No such list (`not_found`)", body = ErrorBody),
    )
)]
pub async fn members(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<MembersQuery>,
) -> Result<Json<MemberPage>, ApiError> {
    let limit = page_limit(q.limit, 100, 1000)?;
    ensure_list(&st, &name).await?;
    let rows = st
        .store
        .list_members(&name, q.after.as_deref().filter(|a| !a.is_empty()), limit)
        .await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|m| m.user_id.clone()))
        .flatten();
    Ok(Json(MemberPage {
        list: name,
        members: rows
            .into_iter()
            .map(|m| Member {
                user_id: m.user_id,
                added_at: m.added_at,
            })
            .collect(),
        next,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"user_ids": ["8012345678901234567"]}))]
pub struct AddMembers {
    /// Existing contact ids (1–1000). Contacts already on the list stay as they are.
    pub user_ids: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembersAdded {
    pub list: String,
    /// How many ids were given.
    pub added: usize,
    /// Members of the list now.
    pub members: i64,
}

/// Adds contacts to a list; the list is created by its first member.
#[utoipa::path(
    post,
    path = "/admin/lists/{name}/members",
    tag = "lists",
    operation_id = "add_list_members",
    params(("name" = String, Path, description = "List name (1–100 characters)", example = "vip-leads")),
    request_body = AddMembers,
    responses(
        (status = 200, description = "Added", body = MembersAdded),
        (status = 422, description = "A bad list name, no ids, too many, or ids of no contact (`invalid`)", body = ErrorBody),
    )
)]
pub async fn add_members(
    State(st): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AddMembers>,
) -> Result<Json<MembersAdded>, ApiError> {
    if !valid_list_name(&name) {
        return Err(ApiError::invalid(
            "a list name has 1–100 characters, not only spaces, no control characters",
        ));
    }
    if body.user_ids.is_empty() || body.user_ids.len() > 1000 {
        return Err(ApiError::invalid("give between 1 and 1000 user_ids"));
    }
    let existing = st.store.existing_contact_ids(&body.user_ids).await?;
    let unknown: Vec<&String> = body
        .user_ids
        .iter()
        .filter(|u| !existing.contains(u))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::invalid(format!(
            "no contact with these ids: {}",
            unknown
                .iter()
                .take(20)
                .map(|u| u.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let changes: Vec<ListChange> = body
        .user_ids
        .iter()
        .map(|u| ListChange::Add {
            list: name.clone(),
            user_id: u.clone(),
        })
        .collect();
    st.store
        .apply_list_changes(&changes, st.clock.now())
        .await?;
    let members = member_count(&st, &name).await?;
    tracing::info!(list = %name, added = changes.len(), "list members added by an operator");
    Ok(Json(MembersAdded {
        list: name,
        added: changes.len(),
        members,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRemoved {
    pub list: String,
    pub user_id: String,
    /// Members of the list now.
    pub members: i64,
}

/// Takes a contact off a list.
#[utoipa::path(
    delete,
    path = "/admin/lists/{name}/members/{user_id}",
    tag = "lists",
    operation_id = "remove_list_member",
    params(
        ("name" = String, Path, description = "List name", example = "vip-leads"),
        ("user_id" = String, Path, description = "Contact id", example = "8012345678901234567"),
    ),
    responses(
        (status = 200, description = "Removed", body = MemberRemoved),
        (status = 404, description = "No such list, or the contact is not on it (`not_found`)", body = ErrorBody),
    )
)]
pub async fn remove_member(
    State(st): State<AppState>,
    ApiPath((name, user_id)): ApiPath<(String, String)>,
) -> Result<Json<MemberRemoved>, ApiError> {
    ensure_list(&st, &name).await?;
    let on_it = st.store.lists_of_contact(&user_id).await?;
    if !on_it.contains(&name) {
        return Err(ApiError::not_found(format!(
            "{user_id} is not on the list {name:?}"
        )));
    }
    st.store
        .remove_from_list(&name, &user_id, st.clock.now())
        .await?;
    let members = member_count(&st, &name).await?;
    tracing::info!(list = %name, user = %user_id, "list member removed by an operator");
    Ok(Json(MemberRemoved {
        list: name,
        user_id,
        members,
    }))
}

async fn ensure_list(st: &AppState, name: &str) -> Result<(), ApiError> {
    if st
        .store
        .contact_lists()
        .await?
        .iter()
        .any(|l| l.name == name)
    {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no list {name:?}")))
    }
}

async fn member_count(st: &AppState, name: &str) -> Result<i64, ApiError> {
    Ok(st
        .store
        .contact_lists()
        .await?
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.members)
        .unwrap_or(0))
}

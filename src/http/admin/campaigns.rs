//! `/admin/campaigns…`: the running campaigns with their members per step; a campaign's
//! members with their name, the step they wait for and when it is due; take a member out, or
//! move them to a step (it goes out at the next scheduler pass).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiJson, ApiPath, ErrorBody};
use crate::http::AppState;
use crate::store::{CampaignChange, CampaignMember, Decision, Effects};

#[derive(Debug, Serialize, ToSchema)]
pub struct StepCount {
    #[schema(example = "day_1")]
    pub step: String,
    /// Active members waiting for this step.
    pub waiting: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    #[schema(example = "dang_ky")]
    pub id: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// Its steps in order, with the members waiting for each.
    pub steps: Vec<StepCount>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Campaigns {
    pub campaigns: Vec<CampaignView>,
}

/// The campaigns of the running rules, with the members waiting for each step.
#[utoipa::path(
    get,
    path = "/admin/campaigns",
    tag = "campaigns",
    operation_id = "list_campaigns",
    responses((status = 200, description = "The campaigns", body = Campaigns))
)]
pub async fn all(State(st): State<AppState>) -> Result<Json<Campaigns>, ApiError> {
    Ok(Json(list(&st).await?))
}

/// The campaigns and their step counts (the API and the board's page).
pub(crate) async fn list(st: &AppState) -> Result<Campaigns, ApiError> {
    let counts = st.store.member_counts().await?;
    let Some(rules) = &st.rules else {
        return Ok(Campaigns {
            campaigns: Vec::new(),
        });
    };
    let set = rules.current();
    let campaigns = set
        .campaigns()
        .iter()
        .map(|c| CampaignView {
            id: c.id.clone(),
            description: c.description.clone(),
            enabled: c.enabled,
            steps: c
                .steps
                .iter()
                .map(|s| StepCount {
                    step: s.id.clone(),
                    waiting: counts
                        .iter()
                        .filter(|n| n.campaign == c.id && n.step_id.as_deref() == Some(&s.id))
                        .map(|n| n.members)
                        .sum(),
                })
                .collect(),
        })
        .collect();
    Ok(Campaigns { campaigns })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(example = "8012345678901234567")]
    pub contact_id: String,
    /// The contact's name as Zalo or a form gave it.
    pub name: Option<String>,
    /// `active`, `done` or `left`.
    #[schema(example = "active")]
    pub status: String,
    /// The step they wait for (null once done or left).
    pub step: Option<String>,
    /// When that step is due (ms since the epoch).
    pub next_at: Option<i64>,
    pub entered_at: i64,
    pub left_reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignMembers {
    pub campaign: String,
    /// Active members first, by the time their next step is due.
    pub members: Vec<MemberView>,
}

/// A campaign's members: who, at which step, when it is due.
#[utoipa::path(
    get,
    path = "/admin/campaigns/{id}/members",
    tag = "campaigns",
    operation_id = "campaign_members",
    params(("id" = String, Path, description = "Campaign id", example = "dang_ky")),
    responses(
        (status = 200, description = "The members", body = CampaignMembers),
        (status = 404, description = "No such campaign (`not_found`)", body = ErrorBody),
    )
)]
pub async fn members(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<CampaignMembers>, ApiError> {
    Ok(Json(member_list(&st, id).await?))
}

/// A campaign's members, active first by due time (the API and the board's page).
pub(crate) async fn member_list(st: &AppState, id: String) -> Result<CampaignMembers, ApiError> {
    let mut rows = st.store.campaign_members(&id).await?;
    if rows.is_empty() && campaign_steps(st, &id).is_none() {
        return Err(ApiError::not_found(format!("no campaign {id:?}")));
    }
    rows.sort_by_key(|m| (!m.is_active(), m.next_at.unwrap_or(i64::MAX)));
    let ids: Vec<String> = rows.iter().map(|m| m.contact_id.clone()).collect();
    let contacts = st.store.load_contacts(&ids).await?;
    let name = |id: &str| contacts.get(id).and_then(|c| c.display_name.clone());
    let members = rows
        .into_iter()
        .map(|m| MemberView {
            name: name(&m.contact_id),
            contact_id: m.contact_id,
            status: m.status,
            step: m.step_id,
            next_at: m.next_at,
            entered_at: m.entered_at,
            left_reason: m.left_reason,
        })
        .collect();
    Ok(CampaignMembers {
        campaign: id,
        members,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"step": "day_3"}))]
pub struct MoveMember {
    /// A step id of the campaign: the member waits for it next, due at once (the next
    /// scheduler pass sends it, on the campaign's allowed weekdays; a step with an `at:` time
    /// the pass finds past its grace goes at that time on the next allowed day).
    pub step: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberChanged {
    pub campaign: String,
    pub contact_id: String,
    /// `left`, or the step the member now waits for.
    #[schema(example = "left")]
    pub now: String,
}

/// Takes a member out of a campaign: no later step goes to them.
#[utoipa::path(
    post,
    path = "/admin/campaigns/{id}/members/{contact_id}/leave",
    tag = "campaigns",
    operation_id = "campaign_member_leave",
    params(
        ("id" = String, Path, description = "Campaign id", example = "dang_ky"),
        ("contact_id" = String, Path, description = "Contact id", example = "8012345678901234567"),
    ),
    responses(
        (status = 200, description = "Taken out", body = MemberChanged),
        (status = 404, description = "Not an active member of that campaign (`not_found`)", body = ErrorBody),
    )
)]
pub async fn leave(
    State(st): State<AppState>,
    ApiPath((id, contact_id)): ApiPath<(String, String)>,
) -> Result<Json<MemberChanged>, ApiError> {
    take_out(&st, &id, &contact_id).await?;
    Ok(Json(MemberChanged {
        campaign: id,
        contact_id,
        now: "left".into(),
    }))
}

/// Moves a member to a step of the campaign (forwards or back): it is due at once.
#[utoipa::path(
    post,
    path = "/admin/campaigns/{id}/members/{contact_id}/move",
    tag = "campaigns",
    operation_id = "campaign_member_move",
    params(
        ("id" = String, Path, description = "Campaign id", example = "dang_ky"),
        ("contact_id" = String, Path, description = "Contact id", example = "8012345678901234567"),
    ),
    request_body = MoveMember,
    responses(
        (status = 200, description = "Moved", body = MemberChanged),
        (status = 400, description = "The body is not JSON (`bad_json`)", body = ErrorBody),
        (status = 422, description = "No such step in the campaign, or an unknown field (`invalid`)", body = ErrorBody),
        (status = 404, description = "Not an active member of that campaign (`not_found`)", body = ErrorBody),
    )
)]
pub async fn move_to(
    State(st): State<AppState>,
    ApiPath((id, contact_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<MoveMember>,
) -> Result<Json<MemberChanged>, ApiError> {
    move_member(&st, &id, &contact_id, &body.step).await?;
    Ok(Json(MemberChanged {
        campaign: id,
        contact_id,
        now: body.step,
    }))
}

/// Takes `contact_id` out of campaign `id` (the API and the board's page).
pub(crate) async fn take_out(st: &AppState, id: &str, contact_id: &str) -> Result<(), ApiError> {
    active_member(st, id, contact_id).await?;
    apply(
        st,
        CampaignChange::Leave {
            campaign: id.to_string(),
            contact_id: contact_id.to_string(),
            reason: "taken out by staff".into(),
        },
    )
    .await?;
    tracing::info!(campaign = %id, contact = %contact_id, "campaign member taken out by an operator");
    Ok(())
}

/// Moves `contact_id` to `step` of campaign `id`, due at once (the API and the board's page).
pub(crate) async fn move_member(
    st: &AppState,
    id: &str,
    contact_id: &str,
    step: &str,
) -> Result<(), ApiError> {
    let member = active_member(st, id, contact_id).await?;
    let steps = campaign_steps(st, id).unwrap_or_default();
    let Some(position) = steps.iter().position(|s| s == step) else {
        return Err(ApiError::invalid(format!(
            "campaign {id:?} has no step {step:?} (its steps: {})",
            steps.join(", ")
        )));
    };
    let Some(from_step) = member.step_id else {
        return Err(ApiError::not_found(format!(
            "{contact_id} waits for no step of {id:?} yet (the scheduler maps it at its next pass)"
        )));
    };
    apply(
        st,
        CampaignChange::Advance {
            campaign: id.to_string(),
            contact_id: contact_id.to_string(),
            from_step,
            step: position as i64,
            step_id: Some(step.to_string()),
            next_at: Some(st.clock.now()),
        },
    )
    .await?;
    tracing::info!(campaign = %id, contact = %contact_id, %step, "campaign member moved by an operator");
    Ok(())
}

/// The step ids of campaign `id` in the running rules (None: no such campaign).
fn campaign_steps(st: &AppState, id: &str) -> Option<Vec<String>> {
    let set = st.rules.as_ref()?.current();
    let c = set.campaign(id)?;
    Some(c.steps.iter().map(|s| s.id.clone()).collect())
}

async fn active_member(
    st: &AppState,
    id: &str,
    contact_id: &str,
) -> Result<CampaignMember, ApiError> {
    st.store
        .load_campaign_members(&[contact_id.to_string()])
        .await?
        .into_iter()
        .find(|m| m.campaign == id && m.is_active())
        .ok_or_else(|| {
            ApiError::not_found(format!("{contact_id} is not an active member of {id:?}"))
        })
}

async fn apply(st: &AppState, change: CampaignChange) -> Result<(), ApiError> {
    let decision = Decision {
        key: None,
        effects: Effects {
            campaigns: vec![change],
            ..Effects::default()
        },
    };
    st.store
        .apply_decisions(&[decision], st.clock.now())
        .await?;
    Ok(())
}

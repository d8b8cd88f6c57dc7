//! The isolated copy a forecast runs in: a new SQLite database in a temporary folder (removed
//! when the copy goes), seeded from the live store — read page by page, never written — with
//! the contacts as they were when the window starts, their rule firings before it, and the
//! OA's daily template quota.

use std::path::Path;

use crate::rules::model::DAY;
use std::collections::{BTreeSet, HashMap, HashSet};

use crate::store::{self, CampaignChange, ContactChange, DynStore, Effects, ListChange};

/// A scratch store and the folder it lives in.
pub struct Scratch {
    pub store: DynStore,
    _dir: tempfile::TempDir,
}

/// How the scratch is seeded.
#[derive(Debug, Clone, Copy)]
pub struct Seed {
    /// Contacts first seen before this instant are copied, as they were then (as far as the
    /// store can tell: see `docs/forecast.md`).
    pub at: i64,
    /// Copy every contact as it is now (the forward projection) rather than as it was at `at`.
    pub as_now: bool,
    pub page: i64,
}

impl Scratch {
    /// A new, migrated scratch store under `dir` (default: `/dev/shm` where there is one —
    /// memory, so the store's commits wait for no disk — else the system's temporary folder).
    pub async fn create(dir: Option<&Path>) -> anyhow::Result<Scratch> {
        let shm = Path::new("/dev/shm");
        let dir = dir.or_else(|| shm.is_dir().then_some(shm));
        let builder = tempfile::Builder::new()
            .prefix("zaloflow-forecast-")
            .clone();
        let tmp = match dir {
            Some(d) => builder.tempdir_in(d).or_else(|_| builder.tempdir())?,
            None => builder.tempdir()?,
        };
        let url = format!("sqlite://{}", tmp.path().join("scratch.db").display());
        let store = store::open_throwaway(&url).await?;
        store.migrate().await?;
        Ok(Scratch { store, _dir: tmp })
    }

    /// Copies the live contacts (and their firings, and the template quota) in. Returns how
    /// many contacts were copied. Seeded rows are stamped a week before `seed.at`, so the
    /// first pass does not take them for changes (field changes, list joins).
    pub async fn seed(&self, live: &DynStore, seed: Seed) -> anyhow::Result<u64> {
        let stamp = seed.at - 7 * DAY;
        let quota = live.daily_quota().await?;
        self.store.set_daily_quota(quota, stamp).await?;
        let mut after: Option<String> = None;
        let mut copied = 0u64;
        // The ids copied (to copy their list memberships): one short string per contact.
        let mut seeded: HashSet<String> = HashSet::new();
        let mut campaigns: BTreeSet<String> = BTreeSet::new();
        loop {
            let ids = live
                .contact_ids_page(None, after.as_deref(), seed.page)
                .await?;
            let (Some(first), Some(last)) = (ids.first().cloned(), ids.last().cloned()) else {
                break;
            };
            let contacts = live.load_contacts(&ids).await?;
            let (last_seen, later_tags): (HashMap<String, i64>, HashSet<(String, String)>) =
                if seed.as_now {
                    Default::default()
                } else {
                    (
                        live.last_events_before(&first, &last, seed.at)
                            .await?
                            .into_iter()
                            .collect(),
                        live.tags_added_since(&first, &last, seed.at)
                            .await?
                            .into_iter()
                            .collect(),
                    )
                };
            let mut changes = Vec::new();
            let mut kept = Vec::new();
            for id in &ids {
                let Some(c) = contacts.get(id) else { continue };
                if !seed.as_now && c.first_seen >= seed.at {
                    continue; // the replay meets them
                }
                let interaction = if seed.as_now {
                    c.last_interaction
                } else {
                    match c.last_interaction {
                        Some(l) if l < seed.at => Some(l),
                        Some(_) => last_seen.get(id).copied(),
                        None => None,
                    }
                };
                let mut ch = ContactChange::new(id.clone(), c.first_seen.min(stamp));
                ch.display_name.clone_from(&c.display_name);
                ch.phone.clone_from(&c.phone);
                ch.email.clone_from(&c.email);
                ch.follows = c.follows;
                ch.followed_at = c.followed_at.filter(|t| seed.as_now || *t < seed.at);
                ch.unfollowed_at = c.unfollowed_at.filter(|t| seed.as_now || *t < seed.at);
                ch.interaction_at = interaction;
                // Tags added in the window are left out: the replay adds again those a rule
                // added (those staff added by hand in the window are lost, see the docs).
                ch.tags_add = c
                    .tags
                    .iter()
                    .filter(|t| !later_tags.contains(&(id.clone(), (*t).clone())))
                    .cloned()
                    .collect();
                ch.fields_set = c
                    .fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                changes.push(ch);
                kept.push(id.clone());
            }
            if !changes.is_empty() {
                self.store.import_contacts(&changes, &[], stamp).await?;
                let fires: Vec<_> = live
                    .load_rule_state(&kept)
                    .await?
                    .into_iter()
                    .filter(|f| seed.as_now || f.fired_at < seed.at)
                    .collect();
                let members = self.members(live, &kept, seed, &mut campaigns).await?;
                if !fires.is_empty() || !members.is_empty() {
                    let effects = Effects {
                        fires,
                        campaigns: members,
                        ..Effects::default()
                    };
                    self.store.apply_effects(&effects, stamp).await?;
                }
                copied += changes.len() as u64;
                seeded.extend(kept);
            }
            after = Some(last);
            if (ids.len() as i64) < seed.page {
                break;
            }
        }
        for c in &campaigns {
            let steps = live.campaign_steps(c).await?;
            if !steps.is_empty() {
                self.store.set_campaign_steps(c, &steps, stamp).await?;
            }
        }
        self.lists(live, &seeded, seed.page, stamp).await?;
        Ok(copied)
    }

    /// The campaign memberships of `ids` (as they are now), entered before `seed.at`.
    async fn members(
        &self,
        live: &DynStore,
        ids: &[String],
        seed: Seed,
        campaigns: &mut BTreeSet<String>,
    ) -> anyhow::Result<Vec<CampaignChange>> {
        let mut out = Vec::new();
        for m in live.load_campaign_members(ids).await? {
            if !seed.as_now && m.entered_at >= seed.at {
                continue;
            }
            campaigns.insert(m.campaign.clone());
            let active = m.status == "active";
            out.push(CampaignChange::Enter {
                campaign: m.campaign.clone(),
                contact_id: m.contact_id.clone(),
                entered_at: m.entered_at,
                step: m.step,
                step_id: m.step_id.clone().filter(|_| active),
                next_at: m.next_at.filter(|_| active),
            });
            if m.status == "left" {
                out.push(CampaignChange::Leave {
                    campaign: m.campaign,
                    contact_id: m.contact_id,
                    reason: m.left_reason.unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }

    /// Every list, and the memberships of the contacts copied.
    async fn lists(
        &self,
        live: &DynStore,
        seeded: &HashSet<String>,
        page: i64,
        stamp: i64,
    ) -> anyhow::Result<()> {
        for l in live.contact_lists().await? {
            let mut changes = vec![ListChange::Create {
                list: l.name.clone(),
                description: l.description.clone(),
            }];
            let mut after: Option<String> = None;
            loop {
                let members = live.list_members(&l.name, after.as_deref(), page).await?;
                changes.extend(
                    members
                        .iter()
                        .filter(|m| seeded.contains(&m.user_id))
                        .map(|m| ListChange::Add {
                            list: l.name.clone(),
                            user_id: m.user_id.clone(),
                        }),
                );
                self.store.apply_list_changes(&changes, stamp).await?;
                changes.clear();
                match members.last() {
                    Some(m) if members.len() as i64 == page => after = Some(m.user_id.clone()),
                    _ => break,
                }
            }
        }
        Ok(())
    }
}

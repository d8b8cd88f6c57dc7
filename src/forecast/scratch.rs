//! The isolated copy a forecast runs in: a new SQLite database in a temporary folder (removed
//! when the copy goes), seeded from the live store — read page by page, never written — with
//! the contacts as they were when the window starts, their rule firings before it, and the
//! OA's daily template quota.

use std::path::Path;

use crate::rules::model::DAY;
use crate::store::{self, ContactChange, DynStore, Effects};

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
        let store = store::open(&url).await?;
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
        loop {
            let ids = live
                .contact_ids_page(None, after.as_deref(), seed.page)
                .await?;
            let (Some(first), Some(last)) = (ids.first().cloned(), ids.last().cloned()) else {
                break;
            };
            let contacts = live.load_contacts(&ids).await?;
            let last_seen: std::collections::HashMap<String, i64> = if seed.as_now {
                Default::default()
            } else {
                live.last_events_before(&first, &last, seed.at)
                    .await?
                    .into_iter()
                    .collect()
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
                ch.tags_add = c.tags.iter().cloned().collect();
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
                if !fires.is_empty() {
                    let effects = Effects {
                        fires,
                        ..Effects::default()
                    };
                    self.store.apply_effects(&effects, stamp).await?;
                }
                copied += changes.len() as u64;
            }
            after = Some(last);
            if (ids.len() as i64) < seed.page {
                break;
            }
        }
        Ok(copied)
    }
}

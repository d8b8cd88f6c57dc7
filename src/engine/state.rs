//! The state a batch of events (or of scheduler decisions) is decided on, read from the store;
//! or, in a forecast's replay, kept in memory between batches ([`StateCache`]).
//!
//! A forecast's copy read every batch's contacts, their tags, fields and rule firings back
//! from its store right after writing the previous batch: a quarter of its time (issue 28).
//! The cache keeps each contact's state as the store holds it after the batch: the state the
//! batch was decided on, with the batch's effects applied as the store applies them (contact
//! changes in order, the latest firing per rule). What it cannot follow exactly it forgets, to
//! be read again: a contact whose lists or campaign memberships a batch changes, a contact the
//! scheduler decided something for, everyone when a change reaches many contacts at once.
//! Debug builds (the tests) check every state the cache gives against the store's.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::store::{
    CampaignChange, CampaignMember, Contact, DynStore, Effects, ListChange, StoreError,
};

use super::{BatchState, History};

/// What a batch's state holds besides contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Rule firings (every limit: rules or campaigns run).
    pub history: bool,
    /// List memberships (rules use lists).
    pub lists: bool,
    /// Campaign memberships (the rules have campaigns).
    pub campaigns: bool,
}

/// Contacts, and what `need` asks, of `users`, from the store.
pub async fn load(
    store: &DynStore,
    users: &[String],
    need: Need,
) -> Result<BatchState, StoreError> {
    let contacts = store.load_contacts(users).await?;
    let history = if need.history {
        History::from_fires(store.load_rule_state(users).await?)
    } else {
        History::default()
    };
    let mut state = BatchState {
        contacts,
        history,
        ..BatchState::default()
    };
    if need.lists {
        for u in users {
            let of: BTreeSet<String> = store.lists_of_contact(u).await?.into_iter().collect();
            state.lists.insert(u.clone(), of);
        }
    }
    if need.campaigns {
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

/// One contact's state as the store holds it.
#[derive(Debug, Clone, Default, PartialEq)]
struct Kept {
    contact: Option<Contact>,
    /// Rule id -> (period key, fired at).
    fires: HashMap<String, (String, i64)>,
    lists: Option<BTreeSet<String>>,
    campaigns: Vec<CampaignMember>,
}

/// Contacts' state between the batches of one replay (a forecast's copy, which only its own
/// processor and scheduler write). At most `cap` contacts are kept: past it the cache starts
/// again empty, so its memory follows the contacts, never the events.
pub struct StateCache {
    kept: Mutex<HashMap<String, Kept>>,
    cap: usize,
}

impl StateCache {
    pub fn new(cap: usize) -> StateCache {
        StateCache {
            kept: Mutex::new(HashMap::new()),
            cap: cap.max(1),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state of `users`: the kept ones from memory, the others from the store.
    pub async fn load(
        &self,
        store: &DynStore,
        users: &[String],
        need: Need,
    ) -> Result<BatchState, StoreError> {
        let mut state = BatchState::default();
        let mut missing = Vec::new();
        {
            let mut kept = self.kept();
            for u in users {
                // Taken out: `keep` puts the state back after the batch.
                match kept.remove(u) {
                    Some(k) => put(&mut state, u, k),
                    None => missing.push(u.clone()),
                }
            }
        }
        if !missing.is_empty() {
            let read = load(store, &missing, need).await?;
            merge(&mut state, read);
        }
        if cfg!(debug_assertions) {
            let fresh = load(store, users, need).await?;
            for u in users {
                assert_eq!(
                    view(&state, u),
                    view(&fresh, u),
                    "the forecast's state cache differs from its store for contact {u}"
                );
            }
        }
        Ok(state)
    }

    /// Keeps `users`' state after a batch decided on `before` applied `effects` (in order):
    /// what the store now holds. Contacts the effects touch outside `users`, and those whose
    /// lists or campaign memberships they change, are forgotten; everyone, on a list change
    /// that moves every member of a list.
    pub fn keep<'e>(
        &self,
        users: &[String],
        mut before: BatchState,
        effects: impl Iterator<Item = &'e Effects>,
    ) {
        let mut next: HashMap<String, Kept> = users
            .iter()
            .map(|u| (u.clone(), take(&mut before, u)))
            .collect();
        let mut dropped: Vec<String> = Vec::new();
        let mut everyone = false;
        for e in effects {
            for ch in &e.contacts {
                match next.get_mut(&ch.user_id) {
                    Some(k) => ch.apply_to(k.contact.get_or_insert_with(Contact::default)),
                    None => dropped.push(ch.user_id.clone()),
                }
            }
            for f in &e.fires {
                match next.get_mut(&f.user_id) {
                    Some(k) => {
                        k.fires
                            .insert(f.rule_id.clone(), (f.period_key.clone(), f.fired_at));
                    }
                    None => dropped.push(f.user_id.clone()),
                }
            }
            let (lists, bulk) = list_users(&e.lists);
            everyone |= bulk;
            dropped.extend(lists.into_iter().map(String::from));
            dropped.extend(campaign_users(&e.campaigns).map(String::from));
        }
        let mut kept = self.kept();
        if everyone {
            kept.clear();
            return;
        }
        for u in &dropped {
            next.remove(u);
            kept.remove(u);
        }
        if kept.len() + next.len() > self.cap {
            kept.clear();
        }
        kept.extend(next);
    }

    /// Forgets the contacts `effects` touch (the scheduler applied them): they are read from
    /// the store next time; everyone, on a list change that moves every member of a list.
    pub fn forget<'e>(&self, effects: impl Iterator<Item = &'e Effects>) {
        let mut kept = self.kept();
        for e in effects {
            let (lists, bulk) = list_users(&e.lists);
            if bulk {
                kept.clear();
                return;
            }
            let users = e
                .contacts
                .iter()
                .map(|c| c.user_id.as_str())
                .chain(e.fires.iter().map(|f| f.user_id.as_str()))
                .chain(lists)
                .chain(campaign_users(&e.campaigns));
            for u in users {
                kept.remove(u);
            }
        }
    }

    /// Forgets everyone (a change the store makes to many contacts at once).
    pub fn clear(&self) {
        self.kept().clear();
    }
}

/// The contacts these list changes name, and whether one of them moves every member of a list.
fn list_users(changes: &[ListChange]) -> (Vec<&str>, bool) {
    let mut users = Vec::new();
    let mut bulk = false;
    for l in changes {
        match l {
            ListChange::Create { .. } => {}
            ListChange::Add { user_id, .. } | ListChange::Remove { user_id, .. } => {
                users.push(user_id.as_str())
            }
            ListChange::Copy { user_id, .. } | ListChange::Move { user_id, .. } => match user_id {
                Some(u) => users.push(u.as_str()),
                None => bulk = true,
            },
        }
    }
    (users, bulk)
}

fn campaign_users(changes: &[CampaignChange]) -> impl Iterator<Item = &str> {
    changes.iter().map(|c| match c {
        CampaignChange::Enter { contact_id, .. }
        | CampaignChange::Repeat { contact_id, .. }
        | CampaignChange::Advance { contact_id, .. }
        | CampaignChange::Leave { contact_id, .. } => contact_id.as_str(),
    })
}

/// Takes `user`'s part out of `state`.
fn take(state: &mut BatchState, user: &str) -> Kept {
    Kept {
        contact: state
            .contacts
            .remove(user)
            .filter(|c| !c.user_id.is_empty()),
        fires: state.history.take_user(user),
        lists: state.lists.remove(user),
        campaigns: state.campaigns.remove(user).unwrap_or_default(),
    }
}

/// A copy of `user`'s part of `state`, to compare (memberships in campaign order).
fn view(state: &BatchState, user: &str) -> Kept {
    let mut campaigns = state.campaigns.get(user).cloned().unwrap_or_default();
    campaigns.sort_by(|a, b| a.campaign.cmp(&b.campaign));
    Kept {
        contact: state
            .contacts
            .get(user)
            .filter(|c| !c.user_id.is_empty())
            .cloned(),
        fires: state
            .history
            .of_user(user)
            .map(|(rule, period, at)| (rule.to_string(), (period.to_string(), at)))
            .collect(),
        lists: state.lists.get(user).cloned(),
        campaigns,
    }
}

/// Puts `user`'s kept state into `state`.
fn put(state: &mut BatchState, user: &str, k: Kept) {
    if let Some(c) = k.contact {
        state.contacts.insert(user.to_string(), c);
    }
    state.history.put_user(user.to_string(), k.fires);
    if let Some(l) = k.lists {
        state.lists.insert(user.to_string(), l);
    }
    if !k.campaigns.is_empty() {
        state.campaigns.insert(user.to_string(), k.campaigns);
    }
}

/// Adds `other`'s contacts (none of them in `state`) to `state`.
fn merge(state: &mut BatchState, other: BatchState) {
    state.contacts.extend(other.contacts);
    state.history.extend(other.history);
    state.lists.extend(other.lists);
    state.campaigns.extend(other.campaigns);
}

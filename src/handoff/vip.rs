//! Who is a VIP, in memory, so the webhook handler can put VIPs' events ahead in the inbox
//! without a query per request. Loaded from `contact_tags` at start, refreshed every few
//! seconds (other instances, the admin API), and updated at once when this instance's
//! processor commits a `vip_customer` tag change.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{VIP_PRIORITY, VIP_TAG};
use crate::store::{ContactChange, DynStore, Store, StoreError};

#[derive(Clone, Default)]
pub struct VipSet(Arc<RwLock<HashSet<String>>>);

impl std::fmt::Debug for VipSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VipSet").field("len", &self.len()).finish()
    }
}

impl VipSet {
    pub fn contains(&self, user_id: &str) -> bool {
        !user_id.is_empty() && self.read().contains(user_id)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The inbox priority of this user's events.
    pub fn priority(&self, user_id: &str) -> i32 {
        if self.contains(user_id) {
            VIP_PRIORITY
        } else {
            0
        }
    }

    /// Follows committed contact changes (tag added or removed).
    pub fn apply<'a>(&self, changes: impl IntoIterator<Item = &'a ContactChange>) {
        let mut set: Option<std::sync::RwLockWriteGuard<'_, HashSet<String>>> = None;
        for ch in changes {
            let add = ch.tags_add.iter().any(|t| t == VIP_TAG);
            let remove = ch.tags_remove.iter().any(|t| t == VIP_TAG);
            if !(add || remove) {
                continue;
            }
            let s = set.get_or_insert_with(|| self.write());
            if add {
                s.insert(ch.user_id.clone());
            } else {
                s.remove(&ch.user_id);
            }
        }
    }

    /// Replaces the set with what the database says.
    pub async fn refresh(&self, store: &dyn Store) -> Result<usize, StoreError> {
        let ids: HashSet<String> = store.users_with_tag(VIP_TAG).await?.into_iter().collect();
        let n = ids.len();
        *self.write() = ids;
        metrics::gauge!("zaloflow_vip_contacts").set(n as f64);
        Ok(n)
    }

    /// Refreshes every `every` until `stop`.
    pub async fn run(self, store: DynStore, every: Duration, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.refresh(&*store).await {
                tracing::warn!(error = %e, "could not refresh the VIP list");
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<String>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<String>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_tag_changes() {
        let v = VipSet::default();
        assert_eq!(v.priority("1"), 0);
        let mut add = ContactChange::new("1", 0);
        add.tags_add.push(VIP_TAG.into());
        let mut other = ContactChange::new("2", 0);
        other.tags_add.push("new_user".into());
        v.apply([&add, &other]);
        assert_eq!(v.priority("1"), VIP_PRIORITY);
        assert!(!v.contains("2"));
        let mut rm = ContactChange::new("1", 0);
        rm.tags_remove.push(VIP_TAG.into());
        v.apply([&rm]);
        assert!(v.is_empty());
        assert!(!v.contains(""));
    }
}

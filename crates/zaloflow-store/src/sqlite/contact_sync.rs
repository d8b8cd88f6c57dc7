//! `contacts sync` on SQLite: profiles merged with what zaloflow saw itself, and the run's
//! cursor moved in the same transaction.

use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use super::*;
use crate::{
    ContactSync, ProfileCounts, Result, StoreError, SyncPage, ZaloProfile, CONTACT_SYNC_COLUMNS,
};

pub(super) async fn apply_profiles(
    store: &SqliteStore,
    profiles: &[ZaloProfile],
    page: Option<&SyncPage>,
    now: i64,
) -> Result<ProfileCounts> {
    let mut w = store.writer.lock().await?;
    let mut tx = w.begin().await?;
    let counts = upsert(&mut tx, profiles, now).await?;
    if let Some(p) = page {
        move_cursor(&mut tx, p, counts, now).await?;
    }
    tx.commit().await?;
    Ok(counts)
}

async fn upsert(
    tx: &mut Transaction<'_, Sqlite>,
    profiles: &[ZaloProfile],
    now: i64,
) -> Result<ProfileCounts> {
    let mut counts = ProfileCounts::default();
    for p in profiles {
        let (day_start, at) = match p.interaction_day {
            Some((s, a)) => (Some(s), Some(a)),
            None => (None, None),
        };
        let existed: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM contacts WHERE user_id = ?1")
            .bind(&p.user_id)
            .fetch_optional(&mut **tx)
            .await?;
        if existed.is_some() {
            counts.updated += 1;
        } else {
            counts.created += 1;
        }
        sqlx::query(
            "INSERT INTO contacts (user_id, display_name, follows, first_seen, last_interaction,
                updated_at, interaction_count, profile_read_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?4)
             ON CONFLICT (user_id) DO UPDATE SET
                display_name = COALESCE(excluded.display_name, contacts.display_name),
                follows = CASE
                    WHEN excluded.follows IS NULL THEN contacts.follows
                    WHEN MAX(COALESCE(contacts.followed_at, 0), COALESCE(contacts.unfollowed_at, 0)) > ?4
                        THEN contacts.follows
                    ELSE excluded.follows END,
                last_interaction = CASE
                    WHEN excluded.last_interaction IS NOT NULL
                     AND (contacts.last_interaction IS NULL OR contacts.last_interaction < ?7)
                    THEN excluded.last_interaction ELSE contacts.last_interaction END,
                profile_read_at = excluded.profile_read_at, profile_retry_at = NULL,
                updated_at = excluded.updated_at",
        )
        .bind(&p.user_id)
        .bind(&p.display_name)
        .bind(p.follows)
        .bind(p.read_at)
        .bind(at)
        .bind(now)
        .bind(day_start)
        .execute(&mut **tx)
        .await?;
        for t in &p.tags {
            sqlx::query(
                "INSERT INTO contact_tags (user_id, tag, added_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&p.user_id)
            .bind(t)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(counts)
}

crate::contact_sync::contact_sync_fns!(sqlite, Sqlite, '_, SqliteStore, SqlitePool);

pub(super) async fn start(store: &SqliteStore, by: &str, now: i64) -> Result<(ContactSync, bool)> {
    let mut w = store.writer.lock().await?;
    let mut tx = w.begin().await?;
    let running: Option<ContactSync> = sqlx::query_as(&format!(
        "SELECT {CONTACT_SYNC_COLUMNS} FROM contact_syncs WHERE status = 'running'"
    ))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(run) = running {
        tx.commit().await?;
        return Ok((run, false));
    }
    let run: ContactSync = sqlx::query_as(&format!(
        "INSERT INTO contact_syncs (requested_by, started_at, updated_at) VALUES (?1, ?2, ?2)
         RETURNING {CONTACT_SYNC_COLUMNS}"
    ))
    .bind(by)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((run, true))
}

crate::contact_sync::contact_sync_impl!(SqliteStore, sqlite, {});

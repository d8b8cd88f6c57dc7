//! `contacts sync` on PostgreSQL: profiles merged with what zaloflow saw itself, and the run's
//! cursor moved in the same transaction.

use sqlx::{Postgres, Transaction};

use super::PgStore;
use super::*;
use crate::{
    ContactSync, ProfileCounts, Result, StoreError, SyncPage, ZaloProfile, CONTACT_SYNC_COLUMNS,
};

pub(super) async fn apply_profiles(
    store: &PgStore,
    profiles: &[ZaloProfile],
    page: Option<&SyncPage>,
    now: i64,
) -> Result<ProfileCounts> {
    let mut tx = store.pool.begin().await?;
    if let Some(p) = page {
        // Taken first: a second runner of the same page waits here, then finds the cursor moved.
        sqlx::query("SELECT 1 FROM contact_syncs WHERE id = $1 FOR UPDATE")
            .bind(p.run_id)
            .execute(&mut *tx)
            .await?;
    }
    let counts = upsert(&mut tx, profiles, now).await?;
    if let Some(p) = page {
        move_cursor(&mut tx, p, counts, now).await?;
    }
    tx.commit().await?;
    Ok(counts)
}

async fn upsert(
    tx: &mut Transaction<'static, Postgres>,
    profiles: &[ZaloProfile],
    now: i64,
) -> Result<ProfileCounts> {
    let mut counts = ProfileCounts::default();
    for p in profiles {
        let (day_start, at) = match p.interaction_day {
            Some((s, a)) => (Some(s), Some(a)),
            None => (None, None),
        };
        // xmax = 0 on a row the statement inserted.
        let (inserted,): (bool,) = sqlx::query_as(
            "INSERT INTO contacts (user_id, display_name, follows, first_seen, last_interaction,
                updated_at, interaction_count, profile_read_at)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $4)
             ON CONFLICT (user_id) DO UPDATE SET
                display_name = COALESCE(excluded.display_name, contacts.display_name),
                follows = CASE
                    WHEN excluded.follows IS NULL THEN contacts.follows
                    WHEN GREATEST(COALESCE(contacts.followed_at, 0), COALESCE(contacts.unfollowed_at, 0)) > $4
                        THEN contacts.follows
                    ELSE excluded.follows END,
                last_interaction = CASE
                    WHEN excluded.last_interaction IS NOT NULL
                     AND (contacts.last_interaction IS NULL OR contacts.last_interaction < $7)
                    THEN excluded.last_interaction ELSE contacts.last_interaction END,
                profile_read_at = excluded.profile_read_at, profile_retry_at = NULL,
                updated_at = excluded.updated_at
             RETURNING (xmax = 0)",
        )
        .bind(&p.user_id)
        .bind(&p.display_name)
        .bind(p.follows)
        .bind(p.read_at)
        .bind(at)
        .bind(now)
        .bind(day_start)
        .fetch_one(&mut **tx)
        .await?;
        if inserted {
            counts.created += 1;
        } else {
            counts.updated += 1;
        }
        if !p.tags.is_empty() {
            sqlx::query(
                "INSERT INTO contact_tags (user_id, tag, added_at)
                 SELECT $1, t, $3 FROM UNNEST($2::text[]) AS t ON CONFLICT DO NOTHING",
            )
            .bind(&p.user_id)
            .bind(&p.tags)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(counts)
}

crate::contact_sync::contact_sync_fns!(postgres, Postgres, 'static, PgStore, PgPool);

pub(super) async fn start(store: &PgStore, by: &str, now: i64) -> Result<(ContactSync, bool)> {
    // The unique index on the running row makes a concurrent second insert fail: take the
    // running one then.
    for _ in 0..3 {
        let running: Option<ContactSync> = sqlx::query_as(&format!(
            "SELECT {CONTACT_SYNC_COLUMNS} FROM contact_syncs WHERE status = 'running'"
        ))
        .fetch_optional(&store.pool)
        .await?;
        if let Some(run) = running {
            return Ok((run, false));
        }
        let inserted: Option<ContactSync> = sqlx::query_as(&format!(
            "INSERT INTO contact_syncs (requested_by, started_at, updated_at) VALUES ($1, $2, $2)
             ON CONFLICT DO NOTHING RETURNING {CONTACT_SYNC_COLUMNS}"
        ))
        .bind(by)
        .bind(now)
        .fetch_optional(&store.pool)
        .await?;
        if let Some(run) = inserted {
            return Ok((run, true));
        }
    }
    Err(StoreError::Invalid(
        "could not start a contacts sync run".into(),
    ))
}

crate::contact_sync::contact_sync_impl!(PgStore, postgres, {});

//! PostgreSQL: for shops that run several instances. Claims use `FOR UPDATE SKIP LOCKED`
//! under a transaction-scoped advisory lock so two instances never split one user's lane.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::*;

mod campaigns;
mod contact_sync;
mod contacts;
mod handoffs;
mod inbox;
mod jobs;
mod lists;
mod oa;
mod outcomes;

/// Advisory lock keys (arbitrary, stable).
pub(crate) const LOCK_INBOX_CLAIM: i64 = 0x7a6c_0001;
pub(crate) const LOCK_OUTBOX_CLAIM: i64 = 0x7a6c_0002;

pub struct PgStore {
    pub(crate) pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

impl PgStore {
    pub async fn open(url: &str) -> Result<Self> {
        let opts: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<usize> {
        let applied = sqlx::query_scalar::<_, i64>(crate::APPLIED_MIGRATIONS)
            .fetch_all(&self.pool)
            .await;
        crate::pending_of(&MIGRATOR, applied)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
crate::contacts::contact_rows_fn!(postgres, Postgres, 'static);

async fn apply_contact_changes(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[ContactChange],
    now: i64,
) -> Result<()> {
    upsert_contact_rows(tx, changes, now).await?;
    for ch in changes {
        if !ch.tags_add.is_empty() {
            sqlx::query(
                "INSERT INTO contact_tags (user_id, tag, added_at)
                 SELECT $1, t, $3 FROM UNNEST($2::text[]) AS t ON CONFLICT DO NOTHING",
            )
            .bind(&ch.user_id)
            .bind(&ch.tags_add)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        if !ch.tags_remove.is_empty() {
            sqlx::query("DELETE FROM contact_tags WHERE user_id = $1 AND tag = ANY($2)")
                .bind(&ch.user_id)
                .bind(&ch.tags_remove)
                .execute(&mut **tx)
                .await?;
        }
        for (k, v) in &ch.fields_set {
            sqlx::query(
                "INSERT INTO contact_fields (user_id, name, value, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                 WHERE contact_fields.value <> excluded.value",
            )
            .bind(&ch.user_id)
            .bind(k)
            .bind(v)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

crate::jobs::insert_jobs_fn!(postgres, Postgres, 'static, PgStore, PgPool);

crate::lists::list_changes_fn!(postgres, Postgres, 'static);

/// The lists `names` created if new (one statement).
async fn insert_list_names(
    tx: &mut Transaction<'static, Postgres>,
    names: &[&str],
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO contact_lists (name, created_at)
         SELECT n, $2 FROM UNNEST($1::text[]) AS n ON CONFLICT (name) DO NOTHING",
    )
    .bind(names)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A run of additions (all `ListChange::Add`), in one statement.
async fn insert_list_adds(
    tx: &mut Transaction<'static, Postgres>,
    adds: &[&ListChange],
    now: i64,
) -> Result<()> {
    let (mut lists, mut users) = (Vec::new(), Vec::new());
    for c in adds {
        if let ListChange::Add { list, user_id } = c {
            lists.push(list.as_str());
            users.push(user_id.as_str());
        }
    }
    sqlx::query(
        "INSERT INTO list_members (list, user_id, added_at)
         SELECT l, u, $3 FROM UNNEST($1::text[], $2::text[]) AS t(l, u)
         ON CONFLICT (list, user_id) DO NOTHING",
    )
    .bind(&lists)
    .bind(&users)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The bulk form of `apply_contact_changes` (same semantics) for imports: a few `UNNEST`
/// statements per chunk instead of one statement per tag and field. `changes` must hold one
/// change per user (`merge_changes`).
async fn bulk_upsert_contacts(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[ContactChange],
    now: i64,
) -> Result<()> {
    for chunk in changes.chunks(5000) {
        let col = |f: fn(&ContactChange) -> Option<String>| -> Vec<Option<String>> {
            chunk.iter().map(f).collect()
        };
        let ids: Vec<&str> = chunk.iter().map(|c| c.user_id.as_str()).collect();
        let follows: Vec<Option<bool>> = chunk.iter().map(|c| c.follows).collect();
        let int = |f: fn(&ContactChange) -> Option<i64>| -> Vec<Option<i64>> {
            chunk.iter().map(f).collect()
        };
        sqlx::query(
            "INSERT INTO contacts (user_id, display_name, phone, email, follows, first_seen,
                last_interaction, followed_at, unfollowed_at, updated_at, interaction_count)
             SELECT u, n, p, e, f, s, li, fa, ua, $11, ic
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::bigint[],
                         $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])
                  AS t(u, n, p, e, f, s, li, fa, ua, ic)
             ON CONFLICT (user_id) DO UPDATE SET
                display_name = COALESCE(excluded.display_name, contacts.display_name),
                phone = COALESCE(excluded.phone, contacts.phone),
                email = COALESCE(excluded.email, contacts.email),
                follows = COALESCE(excluded.follows, contacts.follows),
                followed_at = COALESCE(excluded.followed_at, contacts.followed_at),
                unfollowed_at = COALESCE(excluded.unfollowed_at, contacts.unfollowed_at),
                last_interaction = GREATEST(contacts.last_interaction, excluded.last_interaction),
                interaction_count = contacts.interaction_count + excluded.interaction_count,
                updated_at = excluded.updated_at",
        )
        .bind(&ids)
        .bind(col(|c| c.display_name.clone()))
        .bind(col(|c| c.phone.clone()))
        .bind(col(|c| c.email.clone()))
        .bind(&follows)
        .bind(chunk.iter().map(|c| c.seen_at).collect::<Vec<i64>>())
        .bind(int(|c| c.interaction_at))
        .bind(int(|c| c.followed_at))
        .bind(int(|c| c.unfollowed_at))
        .bind(chunk.iter().map(|c| c.interactions).collect::<Vec<i64>>())
        .bind(now)
        .execute(&mut **tx)
        .await?;

        let (mut tu, mut tt) = (Vec::new(), Vec::new());
        for c in chunk {
            for t in &c.tags_add {
                tu.push(c.user_id.as_str());
                tt.push(t.as_str());
            }
        }
        if !tu.is_empty() {
            sqlx::query(
                "INSERT INTO contact_tags (user_id, tag, added_at)
                 SELECT u, t, $3 FROM UNNEST($1::text[], $2::text[]) AS x(u, t)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&tu)
            .bind(&tt)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        for c in chunk.iter().filter(|c| !c.tags_remove.is_empty()) {
            sqlx::query("DELETE FROM contact_tags WHERE user_id = $1 AND tag = ANY($2)")
                .bind(&c.user_id)
                .bind(&c.tags_remove)
                .execute(&mut **tx)
                .await?;
        }
        let (mut fu, mut fk, mut fv) = (Vec::new(), Vec::new(), Vec::new());
        for c in chunk {
            for (k, v) in &c.fields_set {
                fu.push(c.user_id.as_str());
                fk.push(k.as_str());
                fv.push(v.as_str());
            }
        }
        if !fu.is_empty() {
            sqlx::query(
                "INSERT INTO contact_fields (user_id, name, value, updated_at)
                 SELECT u, k, v, $4 FROM UNNEST($1::text[], $2::text[], $3::text[]) AS x(u, k, v)
                 ON CONFLICT (user_id, name) DO UPDATE
                    SET value = excluded.value, updated_at = excluded.updated_at
                    WHERE contact_fields.value <> excluded.value",
            )
            .bind(&fu)
            .bind(&fk)
            .bind(&fv)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

crate::inbox::fires_fn!(Postgres, 'static);

/// Everything a batch of effects changes, in one transaction: contacts (merged per contact),
/// outbox jobs, list operations, rule firings. `writings`: whether the times users wrote are
/// credited to earlier sends (not for replayed events, `Inbox::apply_replayed`).
async fn apply_effects<'e>(
    tx: &mut Transaction<'static, Postgres>,
    effects: impl Iterator<Item = &'e Effects> + Clone,
    now: i64,
    writings: bool,
) -> Result<crate::handoff::HandoffOutcomes> {
    let merged = merge_changes(effects.clone().flat_map(|e| &e.contacts));
    apply_contact_changes(tx, &merged, now).await?;
    let jobs: Vec<&NewJob> = effects.clone().flat_map(|e| &e.jobs).collect();
    insert_jobs(tx, &jobs, now).await?;
    apply_list_changes(tx, effects.clone().flat_map(|e| &e.lists), now).await?;
    let handoff_changes = effects.clone().flat_map(|e| &e.handoffs).collect();
    upsert_fires(tx, effects.clone().flat_map(|e| &e.fires)).await?;
    outcomes::apply(tx, effects.clone(), writings).await?;
    let campaigns: Vec<&CampaignChange> = effects.flat_map(|e| &e.campaigns).collect();
    apply_campaign_changes(tx, &campaigns, now).await?;
    handoffs::apply(tx, handoff_changes, now).await
}

/// `apply_effects` for the scheduler's large batches: jobs and rule firings in a few `UNNEST`
/// statements instead of one multi-row statement per few hundred rows.
async fn apply_effects_bulk(
    tx: &mut Transaction<'static, Postgres>,
    effects: &[&Effects],
    now: i64,
) -> Result<()> {
    let merged = merge_changes(effects.iter().flat_map(|e| &e.contacts));
    apply_contact_changes(tx, &merged, now).await?;
    let jobs: Vec<&NewJob> = effects.iter().flat_map(|e| &e.jobs).collect();
    for chunk in jobs.chunks(20_000) {
        let col = |f: fn(&NewJob) -> Option<&str>| -> Vec<Option<&str>> {
            chunk.iter().map(|j| f(j)).collect()
        };
        sqlx::query(
            "INSERT INTO outbox (channel, user_id, payload, priority, first_due, run_at, rule_id,
                source, dedupe_key, variant, created_at, updated_at, status, last_error, skip_reason)
             SELECT c, u, p, pr, r, r, ru, s, d, v, $9, $9, st, le, sr
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[],
                         $7::text[], $8::text[], $10::text[], $11::text[], $12::text[], $13::text[])
                  AS t(c, u, p, pr, r, ru, s, d, v, st, le, sr)
             ON CONFLICT (dedupe_key) DO NOTHING",
        )
        .bind(col(|j| Some(j.channel.as_str())))
        .bind(col(|j| Some(j.user_id.as_str())))
        .bind(col(|j| Some(j.payload.as_str())))
        .bind(chunk.iter().map(|j| j.priority).collect::<Vec<i32>>())
        .bind(chunk.iter().map(|j| j.run_at).collect::<Vec<i64>>())
        .bind(col(|j| j.rule_id.as_deref()))
        .bind(col(|j| Some(j.source.as_str())))
        .bind(col(|j| j.dedupe_key.as_deref()))
        .bind(now)
        .bind(col(|j| j.variant.as_deref()))
        .bind(col(|j| Some(j.status())))
        .bind(col(|j| j.skip.as_ref().map(|k| k.message.as_str())))
        .bind(col(|j| j.skip.as_ref().map(|k| k.reason.as_str())))
        .execute(&mut **tx)
        .await?;
    }
    apply_list_changes(tx, effects.iter().flat_map(|e| &e.lists), now).await?;
    // The latest firing per (contact, rule) wins.
    let mut fires: HashMap<(&str, &str), &RuleFire> = HashMap::new();
    for f in effects.iter().flat_map(|e| &e.fires) {
        fires.insert((f.user_id.as_str(), f.rule_id.as_str()), f);
    }
    let fires: Vec<&RuleFire> = fires.into_values().collect();
    for chunk in fires.chunks(20_000) {
        sqlx::query(
            "INSERT INTO rule_state (user_id, rule_id, period_key, fired_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
             ON CONFLICT (user_id, rule_id) DO UPDATE SET period_key = excluded.period_key,
                fired_at = excluded.fired_at, fires = rule_state.fires + 1",
        )
        .bind(chunk.iter().map(|f| f.user_id.as_str()).collect::<Vec<_>>())
        .bind(chunk.iter().map(|f| f.rule_id.as_str()).collect::<Vec<_>>())
        .bind(
            chunk
                .iter()
                .map(|f| f.period_key.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(chunk.iter().map(|f| f.fired_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    outcomes::apply(tx, effects.iter().copied(), true).await?;
    let campaigns: Vec<&CampaignChange> = effects.iter().flat_map(|e| &e.campaigns).collect();
    apply_campaign_changes(tx, &campaigns, now).await?;
    handoffs::apply(tx, effects.iter().flat_map(|e| &e.handoffs).collect(), now).await?;
    Ok(())
}

crate::campaigns::member_rows_fn!(postgres, Postgres, 'static);

/// Campaign membership changes, in order; runs of entries and of advances go in one `UNNEST`
/// statement each (a drip step due for many contacts at once).
async fn apply_campaign_changes(
    tx: &mut Transaction<'static, Postgres>,
    changes: &[&CampaignChange],
    now: i64,
) -> Result<()> {
    let mut i = 0;
    while i < changes.len() {
        let same_kind =
            |c: &CampaignChange| std::mem::discriminant(c) == std::mem::discriminant(changes[i]);
        let end = changes[i..]
            .iter()
            .position(|c| !same_kind(c))
            .map_or(changes.len(), |p| i + p);
        let run = &changes[i..end];
        match changes[i] {
            CampaignChange::Enter { .. } => {
                let (mut c, mut u, mut e, mut s, mut n) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let mut ids: Vec<Option<&str>> = Vec::new();
                for ch in run {
                    if let CampaignChange::Enter {
                        campaign,
                        contact_id,
                        entered_at,
                        step,
                        step_id,
                        next_at,
                    } = ch
                    {
                        c.push(campaign.as_str());
                        u.push(contact_id.as_str());
                        e.push(*entered_at);
                        s.push(*step);
                        ids.push(step_id.as_deref());
                        n.push(*next_at);
                    }
                }
                sqlx::query(
                    "INSERT INTO campaign_members (campaign, contact_id, entered_at, step, next_at,
                        status, entries, updated_at, step_id)
                     SELECT c, u, e, s, n, CASE WHEN n IS NULL THEN 'done' ELSE 'active' END, 1, $6, i
                     FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                                 $7::text[])
                          AS t(c, u, e, s, n, i)
                     ON CONFLICT (campaign, contact_id) DO NOTHING",
                )
                .bind(&c)
                .bind(&u)
                .bind(&e)
                .bind(&s)
                .bind(&n)
                .bind(now)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            }
            CampaignChange::Advance { .. } => {
                let (mut c, mut u, mut f, mut s, mut n) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let mut ids: Vec<Option<&str>> = Vec::new();
                for ch in run {
                    if let CampaignChange::Advance {
                        campaign,
                        contact_id,
                        from_step,
                        step,
                        step_id,
                        next_at,
                    } = ch
                    {
                        c.push(campaign.as_str());
                        u.push(contact_id.as_str());
                        f.push(from_step.as_str());
                        s.push(*step);
                        ids.push(step_id.as_deref());
                        n.push(*next_at);
                    }
                }
                // `contact_id = ANY` reads just these members through an index; joined on the
                // key alone, the planner may merge-join along the whole contact index.
                sqlx::query(
                    "UPDATE campaign_members m SET step = t.s, step_id = t.i, next_at = t.n,
                        status = CASE WHEN t.n IS NULL THEN 'done' ELSE 'active' END, updated_at = $6
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[],
                                 $7::text[])
                          AS t(c, u, f, s, n, i)
                     WHERE m.contact_id = ANY($2) AND m.campaign = t.c AND m.contact_id = t.u
                       AND m.status = 'active' AND m.step_id = t.f",
                )
                .bind(&c)
                .bind(&u)
                .bind(&f)
                .bind(&s)
                .bind(&n)
                .bind(now)
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            }
            _ => {
                for ch in run {
                    match ch {
                        CampaignChange::Repeat {
                            campaign,
                            contact_id,
                        } => {
                            repeat_member(tx, campaign, contact_id, now).await?;
                        }
                        CampaignChange::Leave {
                            campaign,
                            contact_id,
                            reason,
                        } => {
                            leave_member(tx, campaign, contact_id, reason, now).await?;
                        }
                        _ => {}
                    }
                }
            }
        }
        i = end;
    }
    Ok(())
}

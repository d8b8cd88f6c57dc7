//! Effectiveness on SQLite: outcome signals applied inside the event's transaction, and the
//! counts reports are made of.

use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::report::{
    credited_send_sql, Counts, HandoffRow, JobCount, OutcomeCount, SignalRows, CUSTOMER_MESSAGE_SQL,
};
use crate::{Effects, Result};
use zaloflow_core::outcome::{COME_BACK_WINDOW_MS, REPLY_WINDOW_MS};

/// Credits `replied` to the latest message sent to a user (or to their phone or email) within
/// 24 h before they wrote, and `came_back` to the latest within 7 days; at most once per job
/// and kind, the earliest writing first. `?1` the writings (`[[user, at], …]`), `?2` / `?3`
/// the windows.
fn latest_sends() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let latest = |window: &str| {
            format!(
                "(SELECT id FROM outbox WHERE {}
                  ORDER BY sent_at DESC, id DESC LIMIT 1)",
                credited_send_sql(window)
            )
        };
        format!(
            "WITH w (n, user_id, at) AS (
                 SELECT key, value ->> 0, value ->> 1 FROM json_each(?1))
             INSERT INTO send_outcomes (job_id, kind, at)
             SELECT id, kind, at FROM (
                 SELECT {} AS id, 'replied' AS kind, w.at AS at, w.n AS n, 0 AS k FROM w
                 UNION ALL
                 SELECT {}, 'came_back', w.at, w.n, 1 FROM w)
             WHERE id IS NOT NULL ORDER BY n, k
             ON CONFLICT (job_id, kind) DO NOTHING",
            latest("?2"),
            latest("?3")
        )
    })
}

/// Whether any time a user wrote in these effects has a send to credit (one within the longer
/// window), read on `reader` before the write transaction: the one SQLite writer then runs
/// `latest_sends` only for batches that have something to credit, not for every customer
/// message (at full webhook load that statement took a seventh of the writer's time, for a
/// shop whose customers mostly write without a recent send).
pub(super) async fn any_to_credit<'e>(
    reader: &SqlitePool,
    effects: impl Iterator<Item = &'e Effects>,
) -> Result<bool> {
    let rows = SignalRows::of(effects);
    if rows.wrote.is_empty() {
        return Ok(false);
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "WITH w (user_id, at) AS (SELECT value ->> 0, value ->> 1 FROM json_each(?1))
             SELECT EXISTS (SELECT 1 FROM w WHERE EXISTS (SELECT 1 FROM outbox WHERE {}))",
            credited_send_sql("?2")
        )
    });
    let (any,): (bool,) = sqlx::query_as(sql)
        .bind(serde_json::to_string(&rows.wrote).expect("rows serialise"))
        .bind(REPLY_WINDOW_MS.max(COME_BACK_WINDOW_MS))
        .fetch_one(reader)
        .await?;
    Ok(any)
}

/// Records firings and the outcome signals of a batch of effects, inside `tx`: one statement
/// per kind of signal. `writings`: whether the times users wrote are to be credited (false
/// when `any_to_credit` found nothing to credit).
pub(super) async fn apply<'e>(
    tx: &mut Transaction<'_, Sqlite>,
    effects: impl Iterator<Item = &'e Effects> + Clone,
    writings: bool,
) -> Result<()> {
    let hours = crate::report::fire_hours(effects.clone());
    if !hours.is_empty() {
        let rows: Vec<serde_json::Value> = hours
            .iter()
            .map(|(r, h, n)| serde_json::json!([r, h, n]))
            .collect();
        sqlx::query(
            "INSERT INTO rule_fire_hours (rule_id, hour, fires)
             SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?1) WHERE true
             ON CONFLICT (rule_id, hour) DO UPDATE SET fires = rule_fire_hours.fires + excluded.fires",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(&mut **tx)
        .await?;
    }
    let rows = SignalRows::of(effects);
    for (column, credits) in rows.credits() {
        if credits.is_empty() {
            continue;
        }
        // Keys are text: a job id is cast back to match the type of `outbox.id`.
        let key = if column == "id" {
            "CAST(r.value ->> 1 AS INTEGER)"
        } else {
            "r.value ->> 1"
        };
        sqlx::query(&format!(
            "INSERT INTO send_outcomes (job_id, kind, at)
             SELECT o.id, r.value ->> 0, r.value ->> 2
             FROM json_each(?1) r JOIN outbox o ON o.{column} = {key}
             WHERE true ORDER BY r.key
             ON CONFLICT (job_id, kind) DO NOTHING"
        ))
        .bind(serde_json::to_string(credits).expect("rows serialise"))
        .execute(&mut **tx)
        .await?;
    }
    if writings && !rows.wrote.is_empty() {
        sqlx::query(latest_sends())
            .bind(serde_json::to_string(&rows.wrote).expect("rows serialise"))
            .bind(REPLY_WINDOW_MS)
            .bind(COME_BACK_WINDOW_MS)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

crate::report::counts_fn!(sqlite, Sqlite, '_, SqliteStore, SqlitePool);

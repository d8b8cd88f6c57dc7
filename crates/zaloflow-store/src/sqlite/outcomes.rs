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

/// `Campaigns::report_counts` on SQLite.
pub(super) async fn counts(pool: &SqlitePool, since: i64, rule: Option<&str>) -> Result<Counts> {
    let pattern = rule.map(|r| format!("{}/%", crate::like_escape(r)));
    let jobs: Vec<JobCount> = sqlx::query_as(&format!(
        "SELECT rule_id, variant, status,
                CASE WHEN status = 'dead' THEN last_code END AS last_code,
                CASE WHEN status = 'dead' THEN substr(last_error, 1, 60) END AS reason,
                count(*) AS n
         FROM outbox
         WHERE rule_id IS NOT NULL AND created_at >= ?1 AND {CUSTOMER_MESSAGE_SQL}
           AND (?2 IS NULL OR rule_id = ?2 OR rule_id LIKE ?3 ESCAPE '\\')
         GROUP BY 1, 2, 3, 4, 5
         ORDER BY 1, 2, 3"
    ))
    .bind(since)
    .bind(rule)
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    let outcomes: Vec<OutcomeCount> = sqlx::query_as(&format!(
        "SELECT o.rule_id, o.variant, s.kind, count(*) AS n
         FROM send_outcomes s JOIN outbox o ON o.id = s.job_id
         WHERE o.rule_id IS NOT NULL AND o.created_at >= ?1
           AND {CUSTOMER_MESSAGE_SQL}
           AND (?2 IS NULL OR o.rule_id = ?2 OR o.rule_id LIKE ?3 ESCAPE '\\')
         GROUP BY 1, 2, 3
         ORDER BY 1, 2, 3"
    ))
    .bind(since)
    .bind(rule)
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    let fires: Vec<(String, i64)> = sqlx::query_as(
        "SELECT rule_id, sum(fires) FROM rule_fire_hours
         WHERE hour >= ?1 / 3600000
           AND (?2 IS NULL OR rule_id = ?2 OR rule_id LIKE ?3 ESCAPE '\\')
         GROUP BY 1 ORDER BY 1",
    )
    .bind(since)
    .bind(rule)
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    let handoffs: Vec<HandoffRow> = sqlx::query_as(
        "SELECT rule_id, status, opened_at, deadline_at, responded_at FROM handoffs
         WHERE rule_id IS NOT NULL AND opened_at >= ?1
           AND (?2 IS NULL OR rule_id = ?2 OR rule_id LIKE ?3 ESCAPE '\\')
         ORDER BY opened_at",
    )
    .bind(since)
    .bind(rule)
    .bind(&pattern)
    .fetch_all(pool)
    .await?;
    Ok(Counts {
        jobs,
        outcomes,
        fires,
        handoffs,
    })
}

//! Effectiveness on PostgreSQL: outcome signals applied inside the event's transaction, and
//! the counts reports are made of.

use sqlx::{PgPool, Postgres, Transaction};

use crate::report::{
    credited_send_sql, Counts, HandoffRow, JobCount, OutcomeCount, SignalRows, CUSTOMER_MESSAGE_SQL,
};
use crate::{Effects, Result};
use zaloflow_core::outcome::{COME_BACK_WINDOW_MS, REPLY_WINDOW_MS};

/// Credits `replied` to the latest message sent to a user (or to their phone or email) within
/// 24 h before they wrote, and `came_back` to the latest within 7 days; at most once per job
/// and kind, the earliest writing first. `$1` / `$2` the writings (users, times), `$3` / `$4`
/// the windows.
fn latest_sends() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let latest = |kind: &str, k: u8, window: &str| {
            format!(
                "(SELECT id, '{kind}' AS kind, {k} AS k FROM outbox WHERE {}
                  ORDER BY sent_at DESC, id DESC LIMIT 1)",
                credited_send_sql(window)
            )
        };
        format!(
            "INSERT INTO send_outcomes (job_id, kind, at)
             SELECT l.id, l.kind, w.at
             FROM UNNEST($1::text[], $2::bigint[]) WITH ORDINALITY AS w (user_id, at, n)
             CROSS JOIN LATERAL ({} UNION ALL {}) AS l
             ORDER BY w.n, l.k
             ON CONFLICT (job_id, kind) DO NOTHING",
            latest("replied", 0, "$3"),
            latest("came_back", 1, "$4")
        )
    })
}

/// Records firings and the outcome signals of a batch of effects, inside `tx`: one statement
/// per kind of signal. `writings`: whether the times users wrote are credited to earlier sends.
pub(super) async fn apply<'e>(
    tx: &mut Transaction<'static, Postgres>,
    effects: impl Iterator<Item = &'e Effects> + Clone,
    writings: bool,
) -> Result<()> {
    let hours = crate::report::fire_hours(effects.clone());
    if !hours.is_empty() {
        sqlx::query(
            "INSERT INTO rule_fire_hours (rule_id, hour, fires)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
             ON CONFLICT (rule_id, hour) DO UPDATE SET fires = rule_fire_hours.fires + excluded.fires",
        )
        .bind(hours.iter().map(|(r, _, _)| r.as_str()).collect::<Vec<_>>())
        .bind(hours.iter().map(|(_, h, _)| *h).collect::<Vec<_>>())
        .bind(hours.iter().map(|(_, _, n)| *n).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    let rows = SignalRows::of(effects);
    for (column, credits) in rows.credits() {
        if credits.is_empty() {
            continue;
        }
        // Keys are text: a job id is cast back to match the key's type of `outbox.id`.
        let key = if column == "id" {
            "r.key::bigint"
        } else {
            "r.key"
        };
        sqlx::query(&format!(
            "INSERT INTO send_outcomes (job_id, kind, at)
             SELECT o.id, r.kind, r.at
             FROM UNNEST($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS r (kind, key, at, n)
             JOIN outbox o ON o.{column} = {key}
             ORDER BY r.n
             ON CONFLICT (job_id, kind) DO NOTHING"
        ))
        .bind(credits.iter().map(|r| r.0).collect::<Vec<_>>())
        .bind(credits.iter().map(|r| r.1.as_str()).collect::<Vec<_>>())
        .bind(credits.iter().map(|r| r.2).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    }
    if writings && !rows.wrote.is_empty() {
        sqlx::query(latest_sends())
            .bind(rows.wrote.iter().map(|r| r.0).collect::<Vec<_>>())
            .bind(rows.wrote.iter().map(|r| r.1).collect::<Vec<_>>())
            .bind(REPLY_WINDOW_MS)
            .bind(COME_BACK_WINDOW_MS)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

crate::report::counts_fn!(postgres, Postgres, 'static, PgStore, PgPool);

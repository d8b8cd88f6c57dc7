//! Contact lists: changes, members, joins. (SQLite).

use super::*;

crate::lists::lists_impl!(SqliteStore, sqlite, {});

/// Applies list operations in order inside `tx`; runs of additions go in multi-row inserts.
pub(super) async fn apply_list_changes<'a>(
    tx: &mut Transaction<'_, Sqlite>,
    changes: impl IntoIterator<Item = &'a ListChange>,
    now: i64,
) -> Result<()> {
    let changes: Vec<&ListChange> = changes.into_iter().collect();
    if changes.is_empty() {
        return Ok(());
    }
    let mut names: Vec<&str> = changes.iter().flat_map(|c| c.lists()).collect();
    names.sort_unstable();
    names.dedup();
    for chunk in names.chunks(300) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO contact_lists (name, created_at) ");
        qb.push_values(chunk, |mut b, n| {
            b.push_bind(*n).push_bind(now);
        });
        qb.push(" ON CONFLICT (name) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    let mut i = 0;
    while i < changes.len() {
        if let ListChange::Add { .. } = changes[i] {
            let run_end = changes[i..]
                .iter()
                .position(|c| !matches!(c, ListChange::Add { .. }))
                .map_or(changes.len(), |p| i + p);
            for chunk in changes[i..run_end].chunks(300) {
                let mut qb: QueryBuilder<Sqlite> =
                    QueryBuilder::new("INSERT INTO list_members (list, user_id, added_at) ");
                qb.push_values(chunk, |mut b, c| {
                    if let ListChange::Add { list, user_id } = c {
                        b.push_bind(list).push_bind(user_id).push_bind(now);
                    }
                });
                qb.push(" ON CONFLICT (list, user_id) DO NOTHING");
                qb.build().execute(&mut **tx).await?;
            }
            i = run_end;
            continue;
        }
        match changes[i] {
            ListChange::Add { .. } => unreachable!("handled above"),
            ListChange::Create { list, description } => {
                sqlx::query("UPDATE contact_lists SET description = ?1 WHERE name = ?2")
                    .bind(description)
                    .bind(list)
                    .execute(&mut **tx)
                    .await?;
            }
            ListChange::Remove { list, user_id } => {
                sqlx::query("DELETE FROM list_members WHERE list = ?1 AND user_id = ?2")
                    .bind(list)
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
            }
            ListChange::Copy { from, to, user_id } | ListChange::Move { from, to, user_id } => {
                let moving = matches!(changes[i], ListChange::Move { .. });
                if from == to {
                    i += 1;
                    continue;
                }
                match user_id {
                    Some(u) => {
                        sqlx::query(
                            "INSERT INTO list_members (list, user_id, added_at) VALUES (?1, ?2, ?3)
                             ON CONFLICT (list, user_id) DO NOTHING",
                        )
                        .bind(to)
                        .bind(u)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    }
                    None => {
                        sqlx::query(
                            "INSERT INTO list_members (list, user_id, added_at)
                             SELECT ?1, user_id, ?2 FROM list_members WHERE list = ?3
                             ON CONFLICT (list, user_id) DO NOTHING",
                        )
                        .bind(to)
                        .bind(now)
                        .bind(from)
                        .execute(&mut **tx)
                        .await?;
                    }
                }
                if moving {
                    sqlx::query(
                        "DELETE FROM list_members WHERE list = ?1 AND (?2 IS NULL OR user_id = ?2)",
                    )
                    .bind(from)
                    .bind(user_id)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        i += 1;
    }
    Ok(())
}

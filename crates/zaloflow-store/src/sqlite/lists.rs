//! Contact lists: changes, members, joins. (SQLite).

use super::*;

crate::lists::lists_impl!(SqliteStore, sqlite, {});

crate::lists::list_changes_fn!(sqlite, Sqlite, '_);

/// The lists `names` created if new (multi-row inserts, 300 rows a statement).
async fn insert_list_names(
    tx: &mut Transaction<'_, Sqlite>,
    names: &[&str],
    now: i64,
) -> Result<()> {
    for chunk in names.chunks(300) {
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO contact_lists (name, created_at) ");
        qb.push_values(chunk, |mut b, n| {
            b.push_bind(*n).push_bind(now);
        });
        qb.push(" ON CONFLICT (name) DO NOTHING");
        qb.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A run of additions (all `ListChange::Add`), in multi-row inserts.
async fn insert_list_adds(
    tx: &mut Transaction<'_, Sqlite>,
    adds: &[&ListChange],
    now: i64,
) -> Result<()> {
    for chunk in adds.chunks(300) {
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
    Ok(())
}

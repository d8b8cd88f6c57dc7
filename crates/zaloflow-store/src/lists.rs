//! Contact lists: changes, members, joins.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait Lists: Send + Sync {
    /// Applies list operations in order, in one transaction.
    async fn apply_list_changes(&self, changes: &[ListChange], now: i64) -> Result<()>;
    /// Members of a list ordered by user id, after `after` (keyset paging).
    async fn list_members(
        &self,
        list: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ListMember>>;
    /// The lists a contact is on, by name.
    async fn lists_of_contact(&self, user_id: &str) -> Result<Vec<String>>;
    /// Every list with its member count, by name.
    async fn contact_lists(&self) -> Result<Vec<ContactList>>;
    async fn add_to_list(&self, list: &str, user_id: &str, now: i64) -> Result<()> {
        let ch = ListChange::Add {
            list: list.into(),
            user_id: user_id.into(),
        };
        self.apply_list_changes(&[ch], now).await
    }
    async fn remove_from_list(&self, list: &str, user_id: &str, now: i64) -> Result<()> {
        let ch = ListChange::Remove {
            list: list.into(),
            user_id: user_id.into(),
        };
        self.apply_list_changes(&[ch], now).await
    }
    /// Adds `user_id` (or, when `None`, every member of `from`) to `to`; `from` keeps them.
    async fn copy_list(&self, from: &str, to: &str, user_id: Option<&str>, now: i64) -> Result<()> {
        let ch = ListChange::Copy {
            from: from.into(),
            to: to.into(),
            user_id: user_id.map(Into::into),
        };
        self.apply_list_changes(&[ch], now).await
    }
    /// Adds `user_id` (or every member of `from`) to `to` and removes them from `from`.
    async fn move_list(&self, from: &str, to: &str, user_id: Option<&str>, now: i64) -> Result<()> {
        let ch = ListChange::Move {
            from: from.into(),
            to: to.into(),
            user_id: user_id.map(Into::into),
        };
        self.apply_list_changes(&[ch], now).await
    }

    /// Members who joined `list` with `added_at` in `[from, to)`.
    async fn list_joins(&self, list: &str, from: i64, to: i64) -> Result<Vec<ListMember>>;
}

/// Implements [`Lists`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! lists_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Lists for $store {
            $($own)*

            async fn apply_list_changes(&self, changes: &[ListChange], now: i64) -> Result<()> {
                check_list_changes(changes)?;
                begin_write!($db, self, tx);
                apply_list_changes(&mut tx, changes, now).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn list_members(
                &self,
                list: &str,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<ListMember>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT user_id, added_at FROM list_members
                     WHERE list = $1 AND ($2::text IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3"),
                )
                .bind(list)
                .bind(after)
                .bind(limit)
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn lists_of_contact(&self, user_id: &str) -> Result<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as(sql!($db, "SELECT list FROM list_members WHERE user_id = $1 ORDER BY list"))
                        .bind(user_id)
                        .fetch_all(reader!($db, self))
                        .await?;
                Ok(rows.into_iter().map(|(l,)| l).collect())
            }

            async fn contact_lists(&self) -> Result<Vec<ContactList>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT l.name, l.description, l.created_at, COUNT(m.user_id) AS members
                     FROM contact_lists l LEFT JOIN list_members m ON m.list = l.name
                     GROUP BY l.name, l.description, l.created_at ORDER BY l.name"),
                )
                .fetch_all(reader!($db, self))
                .await?)
            }

            async fn list_joins(&self, list: &str, from: i64, to: i64) -> Result<Vec<ListMember>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT user_id, added_at FROM list_members
                     WHERE list = $1 AND added_at >= $2 AND added_at < $3 ORDER BY added_at, user_id"),
                )
                .bind(list)
                .bind(from)
                .bind(to)
                .fetch_all(reader!($db, self))
                .await?)
            }
        }

    };
}
pub(crate) use lists_impl;

/// Applies list operations in order inside a transaction, written once for both backends and
/// invoked in each backend's module (`$db`, `$Db`, `$lt`: as for the other area macros); the
/// two bulk inserts are the backend's own (`insert_list_names`, `insert_list_adds`: SQLite's
/// multi-row VALUES, PostgreSQL's UNNEST).
macro_rules! list_changes_fn {
    ($db:ident, $Db:ty, $lt:lifetime) => {
        /// Applies list operations in order inside `tx`; runs of additions go in multi-row inserts.
        pub(super) async fn apply_list_changes<'a>(
            tx: &mut Transaction<$lt, $Db>,
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
            insert_list_names(tx, &names, now).await?;
            let mut i = 0;
            while i < changes.len() {
                if let ListChange::Add { .. } = changes[i] {
                    let run_end = changes[i..]
                        .iter()
                        .position(|c| !matches!(c, ListChange::Add { .. }))
                        .map_or(changes.len(), |p| i + p);
                    insert_list_adds(tx, &changes[i..run_end], now).await?;
                    i = run_end;
                    continue;
                }
                match changes[i] {
                    ListChange::Add { .. } => unreachable!("handled above"),
                    ListChange::Create { list, description } => {
                        sqlx::query(sql!($db, "UPDATE contact_lists SET description = $1 WHERE name = $2"))
                            .bind(description)
                            .bind(list)
                            .execute(&mut **tx)
                            .await?;
                    }
                    ListChange::Remove { list, user_id } => {
                        sqlx::query(sql!($db, "DELETE FROM list_members WHERE list = $1 AND user_id = $2"))
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
                                sqlx::query(sql!($db, "INSERT INTO list_members (list, user_id, added_at) VALUES ($1, $2, $3)
                                     ON CONFLICT (list, user_id) DO NOTHING"),
                                )
                                .bind(to)
                                .bind(u)
                                .bind(now)
                                .execute(&mut **tx)
                                .await?;
                            }
                            None => {
                                sqlx::query(sql!($db, "INSERT INTO list_members (list, user_id, added_at)
                                     SELECT $1, user_id, $2 FROM list_members WHERE list = $3
                                     ON CONFLICT (list, user_id) DO NOTHING"),
                                )
                                .bind(to)
                                .bind(now)
                                .bind(from)
                                .execute(&mut **tx)
                                .await?;
                            }
                        }
                        if moving {
                            sqlx::query(sql!($db, "DELETE FROM list_members WHERE list = $1 AND ($2::text IS NULL OR user_id = $2)"),
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
    };
}
pub(crate) use list_changes_fn;

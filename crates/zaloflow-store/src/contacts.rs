//! Contacts: reading them, importing, searching, scanning, erasing; form registrations.

use async_trait::async_trait;

use crate::*;

#[async_trait]
pub trait Contacts: Send + Sync {
    async fn load_contacts(&self, user_ids: &[String]) -> Result<HashMap<String, Contact>>;
    async fn get_contact(&self, user_id: &str) -> Result<Option<Contact>> {
        let mut m = self.load_contacts(&[user_id.to_string()]).await?;
        Ok(m.remove(user_id))
    }

    /// Existing contacts with these phones (normalised `84…`) or emails (compared in lower case).
    async fn find_contact_keys(&self, phones: &[String], emails: &[String]) -> Result<ContactKeys>;
    /// Which of these contact ids exist.
    async fn existing_contact_ids(&self, user_ids: &[String]) -> Result<Vec<String>>;
    /// Counts a registration of `contact_id` on `form`; returns how many there have been,
    /// this one included (2 and more: a repeat registration).
    async fn record_form_submission(&self, form: &str, contact_id: &str, now: i64) -> Result<i64>;
    /// How many registrations of `contact_id` on `form` are counted (0: none), without
    /// counting one.
    async fn form_submission_count(&self, form: &str, contact_id: &str) -> Result<i64>;
    /// Takes back a registration that could not be stored as an event.
    async fn undo_form_submission(&self, form: &str, contact_id: &str) -> Result<()>;
    /// Upserts contacts (as `complete_inbox` does) and applies list operations, in one
    /// transaction: the bulk path of CSV import.
    async fn import_contacts(
        &self,
        changes: &[ContactChange],
        lists: &[ListChange],
        now: i64,
    ) -> Result<()>;
    /// Contact ids in order after `after`, optionally only the members of `list`.
    async fn contact_ids_page(
        &self,
        list: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>>;
    /// Every custom field name in use, sorted.
    async fn contact_field_names(&self) -> Result<Vec<String>>;
    /// Every contact with this tag (the in-memory VIP set is loaded from here).
    async fn users_with_tag(&self, tag: &str) -> Result<Vec<String>>;
    /// Ids of the contacts matching every given filter, in id order after `after`.
    async fn search_contacts(&self, q: &ContactSearch) -> Result<Vec<String>>;
    /// Erases a contact in one transaction: its row, tags, fields, list memberships, rule
    /// state and form registrations are deleted; every job to it (or naming it) is deleted;
    /// every inbox event of its lane (or naming it) keeps only its dedupe key (Zalo's retries
    /// stay deduplicated) and no longer waits for processing.
    async fn erase_contact(&self, user_id: &str, now: i64) -> Result<Erased>;
    /// Up to `limit` contact ids of a scan, in id order, after `after`.
    async fn scan_contact_ids(
        &self,
        scan: &ContactScan,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>>;
    /// One range query on the `last_interaction` index: contacts whose last interaction is in
    /// `[from, to)`, with this follow status (`None`: any but known unfollowers), leaving out
    /// those for whom the rule `skip_fired_in_silence` already fired in this silence
    /// (`once_per: silence`).
    async fn inactive_contact_ids(
        &self,
        from: i64,
        to: i64,
        follows: Option<bool>,
        skip_fired_in_silence: Option<&str>,
    ) -> Result<Vec<String>>;
    /// Contacts whose field `name` matches one of these SQL `LIKE` patterns.
    async fn contacts_with_field_like(
        &self,
        name: &str,
        patterns: &[String],
    ) -> Result<Vec<String>>;
    /// Fields of these names whose value changed with `updated_at` in `[from, to)`.
    async fn field_updates(&self, names: &[String], from: i64, to: i64)
        -> Result<Vec<FieldUpdate>>;
}

/// Implements [`Contacts`] for a backend, invoked in the backend's module (its helpers are
/// found there): `$store` the store, `$db` `sqlite` or `postgres` (the hooks of
/// [`crate::dialect`]), then the methods written per backend.
macro_rules! contacts_impl {
    ($store:ty, $db:ident, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl $crate::Contacts for $store {
            $($own)*

            async fn contacts_with_field_like(
                &self,
                name: &str,
                patterns: &[String],
            ) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(sql!(
                    $db,
                    pick!(
                        $db,
                        sqlite: "SELECT f.user_id FROM contact_fields f
                         WHERE f.name = $1 AND EXISTS (SELECT 1 FROM json_each($2) p WHERE f.value LIKE p.value)
                         ORDER BY f.user_id",
                        postgres: "SELECT user_id FROM contact_fields WHERE name = $1 AND value LIKE ANY($2)
                         ORDER BY user_id",
                    )
                ))
                .bind(name)
                .bind(list!($db, patterns))
                .fetch_all(reader!($db, self))
                .await?;
                Ok(rows.into_iter().map(|(u,)| u).collect())
            }

            async fn scan_contact_ids(
                &self,
                scan: &ContactScan,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<String>> {
                let (sql, arg) = match scan {
                    ContactScan::Followers => (
                        pick!(
                            $db,
                            sqlite: "SELECT user_id FROM contacts WHERE follows = 1 AND ($1 IS NULL OR user_id > $1)
                             AND $3 IS NULL ORDER BY user_id LIMIT $2",
                            postgres: "SELECT user_id FROM contacts WHERE follows AND ($1::text IS NULL OR user_id > $1)
                             AND $3::text IS NULL ORDER BY user_id LIMIT $2",
                        ),
                        None,
                    ),
                    ContactScan::Tagged(t) => (
                        "SELECT user_id FROM contact_tags WHERE tag = $3 AND ($1::text IS NULL OR user_id > $1)
                         ORDER BY user_id LIMIT $2",
                        Some(t.as_str()),
                    ),
                    ContactScan::InList(l) => (
                        "SELECT user_id FROM list_members WHERE list = $3 AND ($1::text IS NULL OR user_id > $1)
                         ORDER BY user_id LIMIT $2",
                        Some(l.as_str()),
                    ),
                };
                let rows: Vec<(String,)> = sqlx::query_as(sql!($db, sql))
                    .bind(after)
                    .bind(limit)
                    .bind(arg)
                    .fetch_all(reader!($db, self))
                    .await?;
                Ok(rows.into_iter().map(|(u,)| u).collect())
            }

            async fn erase_contact(&self, user_id: &str, now: i64) -> Result<Erased> {
                begin_write!($db, self, tx);
                let mut out = Erased::default();
                // The events of its lane first: an inbox worker finishing one of them now loses its
                // lease (and changes nothing) or has committed before this statement, so what it
                // wrote about the contact is seen, and removed, below. (A scan of the inbox, as the
                // needle scans below are: no per-user index is kept on it, see migration 0011.)
                const REDACT: &str = "UPDATE inbox SET body = $1, user_id = '', error = NULL,
                        lease_owner = NULL, lease_until = 0,
                        processed_at = COALESCE(processed_at, $2),
                        status = CASE status WHEN 'pending' THEN 'done' ELSE status END";
                out.inbox_redacted += sqlx::query(sql!($db, format!("{REDACT} WHERE user_id = $3")))
                    .bind(REDACTED_BODY)
                    .bind(now)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let row: Option<(Option<String>, Option<String>)> =
                    sqlx::query_as(sql!($db, "SELECT phone, email FROM contacts WHERE user_id = $1 FOR UPDATE"))
                        .bind(user_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let (phone, email) = row.unwrap_or_default();
                for needle in erase_needles(user_id, phone.as_deref(), email.as_deref()) {
                    out.inbox_redacted += sqlx::query(sql!($db, format!("{REDACT} WHERE strpos(body, $3) > 0")))
                        .bind(REDACTED_BODY)
                        .bind(now)
                        .bind(&needle)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    out.jobs_deleted += sqlx::query(sql!($db, "DELETE FROM outbox WHERE strpos(payload, $1) > 0"))
                        .bind(&needle)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                let mut keys = vec![user_id.to_string()];
                keys.extend(phone.iter().chain(email.iter()).cloned());
                out.jobs_deleted += sqlx::query(sql!($db, "DELETE FROM outbox WHERE user_id = ANY($1)"))
                    .bind(list!($db, &keys))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                // Handoffs hold the customer's messages: they go too (messages first, then the rows).
                let Erased {
                    contact,
                    tags,
                    fields,
                    list_memberships,
                    rule_state,
                    form_submissions,
                    ..
                } = &mut out;
                let mut steps: Vec<(&str, Option<&mut u64>)> = vec![
                    ("DELETE FROM contact_tags WHERE user_id = $1", Some(tags)),
                    ("DELETE FROM contact_fields WHERE user_id = $1", Some(fields)),
                    ("DELETE FROM list_members WHERE user_id = $1", Some(list_memberships)),
                    ("DELETE FROM rule_state WHERE user_id = $1", Some(rule_state)),
                    ("DELETE FROM form_submissions WHERE contact_id = $1", Some(form_submissions)),
                    ("DELETE FROM handoff_messages WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = $1)", None),
                    ("DELETE FROM handoff_breaches WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = $1)", None),
                    ("DELETE FROM handoffs WHERE user_id = $1", None),
                    ("DELETE FROM campaign_members WHERE contact_id = $1", None),
                ];
                // SQLite keeps each lane's head (its timeline's chain, `contact_inbox`).
                if let Some(heads) = pick!(
                    $db,
                    sqlite: Some("DELETE FROM inbox_heads WHERE user_id = $1"),
                    postgres: None,
                ) {
                    steps.push((heads, None));
                }
                steps.push(("DELETE FROM contacts WHERE user_id = $1", Some(contact)));
                for (sql, counter) in &mut steps {
                    let n = sqlx::query(sql!($db, *sql))
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if let Some(c) = counter {
                        **c = n;
                    }
                }
                tx.commit().await?;
                Ok(out)
            }

            async fn find_contact_keys(&self, phones: &[String], emails: &[String]) -> Result<ContactKeys> {
                let phone_rows: Vec<(String, String, i64)> = if phones.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_as(sql!($db, "SELECT phone, user_id, first_seen FROM contacts WHERE phone = ANY($1)"))
                        .bind(list!($db, phones))
                        .fetch_all(reader!($db, self))
                        .await?
                };
                let emails: Vec<String> = emails.iter().map(|e| e.to_lowercase()).collect();
                let email_rows: Vec<(String, String, i64)> = if emails.is_empty() {
                    Vec::new()
                } else {
                    sqlx::query_as(
                        sql!($db, "SELECT lower(email), user_id, first_seen FROM contacts WHERE lower(email) = ANY($1)"),
                    )
                    .bind(list!($db, &emails))
                    .fetch_all(reader!($db, self))
                    .await?
                };
                Ok(pick_contact_keys(phone_rows, email_rows))
            }

            async fn existing_contact_ids(&self, user_ids: &[String]) -> Result<Vec<String>> {
                if user_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let rows: Vec<(String,)> =
                    sqlx::query_as(sql!($db, "SELECT user_id FROM contacts WHERE user_id = ANY($1)"))
                        .bind(list!($db, user_ids))
                        .fetch_all(reader!($db, self))
                        .await?;
                Ok(rows.into_iter().map(|(u,)| u).collect())
            }

            async fn record_form_submission(&self, form: &str, contact_id: &str, now: i64) -> Result<i64> {
                let (count,): (i64,) = sqlx::query_as(
                    sql!($db, "INSERT INTO form_submissions (form, contact_id, first_at, last_at, count)
                     VALUES ($1, $2, $3, $3, 1)
                     ON CONFLICT (form, contact_id) DO UPDATE
                        SET count = form_submissions.count + 1, last_at = excluded.last_at
                     RETURNING count"),
                )
                .bind(form)
                .bind(contact_id)
                .bind(now)
                .fetch_one(writer!($db, self))
                .await?;
                Ok(count)
            }

            async fn form_submission_count(&self, form: &str, contact_id: &str) -> Result<i64> {
                let row: Option<(i64,)> = sqlx::query_as(
                    sql!($db, "SELECT count FROM form_submissions WHERE form = $1 AND contact_id = $2"),
                )
                .bind(form)
                .bind(contact_id)
                .fetch_optional(reader!($db, self))
                .await?;
                Ok(row.map_or(0, |(n,)| n))
            }

            async fn undo_form_submission(&self, form: &str, contact_id: &str) -> Result<()> {
                begin_write!($db, self, tx);
                sqlx::query(
                    sql!($db, "UPDATE form_submissions SET count = count - 1 WHERE form = $1 AND contact_id = $2"),
                )
                .bind(form)
                .bind(contact_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    sql!($db, "DELETE FROM form_submissions WHERE form = $1 AND contact_id = $2 AND count <= 0"),
                )
                .bind(form)
                .bind(contact_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn contact_ids_page(
                &self,
                list: Option<&str>,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<String>> {
                let rows: Vec<(String,)> =
                    match list {
                        None => {
                            sqlx::query_as(
                                sql!($db, "SELECT user_id FROM contacts WHERE ($1::text IS NULL OR user_id > $1)
                         ORDER BY user_id LIMIT $2"),
                            )
                            .bind(after)
                            .bind(limit)
                            .fetch_all(reader!($db, self))
                            .await?
                        }
                        Some(list) => sqlx::query_as(
                            sql!($db, "SELECT m.user_id FROM list_members m JOIN contacts c ON c.user_id = m.user_id
                         WHERE m.list = $3 AND ($1::text IS NULL OR m.user_id > $1)
                         ORDER BY m.user_id LIMIT $2"),
                        )
                        .bind(after)
                        .bind(limit)
                        .bind(list)
                        .fetch_all(reader!($db, self))
                        .await?,
                    };
                Ok(rows.into_iter().map(|(u,)| u).collect())
            }

            async fn contact_field_names(&self) -> Result<Vec<String>> {
                let rows: Vec<(String,)> =
                    sqlx::query_as(sql!($db, "SELECT DISTINCT name FROM contact_fields ORDER BY name"))
                        .fetch_all(reader!($db, self))
                        .await?;
                Ok(rows.into_iter().map(|(n,)| n).collect())
            }

            async fn users_with_tag(&self, tag: &str) -> Result<Vec<String>> {
                self.h_users_with_tag(tag).await
            }

            async fn search_contacts(&self, q: &ContactSearch) -> Result<Vec<String>> {
                let name = q.name.as_deref().map(|n| format!("%{}%", like_escape(n)));
                let rows: Vec<(String,)> = sqlx::query_as(
                    sql!($db, "SELECT c.user_id FROM contacts c
                     WHERE ($1::text IS NULL OR c.user_id > $1)
                       AND ($2::text IS NULL OR c.display_name ILIKE $2 ESCAPE '\\')
                       AND ($3::text IS NULL OR c.phone = $3)
                       AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM contact_tags t
                                                        WHERE t.user_id = c.user_id AND t.tag = $4))
                     ORDER BY c.user_id LIMIT $5"),
                )
                .bind(q.after.as_deref())
                .bind(name)
                .bind(q.phone.as_deref())
                .bind(q.tag.as_deref())
                .bind(q.limit)
                .fetch_all(reader!($db, self))
                .await?;
                Ok(rows.into_iter().map(|(u,)| u).collect())
            }

            async fn field_updates(
                &self,
                names: &[String],
                from: i64,
                to: i64,
            ) -> Result<Vec<FieldUpdate>> {
                Ok(sqlx::query_as(
                    sql!($db, "SELECT user_id, name, value, updated_at FROM contact_fields
                     WHERE name = ANY($1) AND updated_at >= $2 AND updated_at < $3
                     ORDER BY updated_at, user_id"),
                )
                .bind(list!($db, names))
                .bind(from)
                .bind(to)
                .fetch_all(reader!($db, self))
                .await?)
            }
        }

    };
}
pub(crate) use contacts_impl;

/// Contacts upserted from merged changes, in multi-row statements (SQLite 200 rows,
/// PostgreSQL 500), written once for both backends (`$db`, `$Db`, `$lt` as for the other area
/// macros). Tags and fields stay each backend's own.
macro_rules! contact_rows_fn {
    ($db:ident, $Db:ty, $lt:lifetime) => {
        async fn upsert_contact_rows(
            tx: &mut Transaction<$lt, $Db>,
            changes: &[ContactChange],
            now: i64,
        ) -> Result<()> {
            // merge_changes left one change per user, so one multi-row upsert never hits a row twice.
            for chunk in changes.chunks(pick!($db, sqlite: 200, postgres: 500)) {
                let mut qb: QueryBuilder<$Db> = QueryBuilder::new(
                    "INSERT INTO contacts (user_id, display_name, phone, email, follows, first_seen,
                        last_interaction, followed_at, unfollowed_at, updated_at, interaction_count) ",
                );
                qb.push_values(chunk, |mut b, ch| {
                    b.push_bind(&ch.user_id)
                        .push_bind(&ch.display_name)
                        .push_bind(&ch.phone)
                        .push_bind(&ch.email)
                        .push_bind(ch.follows)
                        .push_bind(ch.seen_at)
                        .push_bind(ch.interaction_at)
                        .push_bind(ch.followed_at)
                        .push_bind(ch.unfollowed_at)
                        .push_bind(now)
                        .push_bind(ch.interactions);
                });
                qb.push(" ON CONFLICT (user_id) DO UPDATE SET ");
                // Only the columns some change in the chunk sets: SQLite rewrites the index
                // entries of every column named here, changed or not (a message moves only
                // the last interaction and the count, not the phone, email or follows).
                let sets: [(&str, bool); 6] = [
                    ("display_name", chunk.iter().any(|c| c.display_name.is_some())),
                    ("phone", chunk.iter().any(|c| c.phone.is_some())),
                    ("email", chunk.iter().any(|c| c.email.is_some())),
                    ("follows", chunk.iter().any(|c| c.follows.is_some())),
                    ("followed_at", chunk.iter().any(|c| c.followed_at.is_some())),
                    ("unfollowed_at", chunk.iter().any(|c| c.unfollowed_at.is_some())),
                ];
                for (col, _) in sets.iter().filter(|(_, set)| *set) {
                    qb.push(format!("{col} = COALESCE(excluded.{col}, contacts.{col}), "));
                }
                qb.push("last_interaction = ");
                // GREATEST ignores a NULL; SQLite's MAX would answer NULL.
                qb.push(pick!(
                    $db,
                    sqlite: "CASE
                        WHEN excluded.last_interaction IS NOT NULL
                         AND (contacts.last_interaction IS NULL OR excluded.last_interaction > contacts.last_interaction)
                        THEN excluded.last_interaction ELSE contacts.last_interaction END",
                    postgres: "GREATEST(contacts.last_interaction, excluded.last_interaction)",
                ));
                qb.push(
                    ",
                    interaction_count = contacts.interaction_count + excluded.interaction_count,
                    updated_at = excluded.updated_at",
                );
                qb.build().execute(&mut **tx).await?;
            }
            Ok(())
        }
    };
}
pub(crate) use contact_rows_fn;

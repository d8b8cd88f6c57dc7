//! Contacts: reading them, importing, searching, scanning, erasing; form registrations. (SQLite).

use super::*;

crate::contacts::contacts_impl!(SqliteStore, sqlite, {
    async fn load_contacts(&self, user_ids: &[String]) -> Result<HashMap<String, Contact>> {
        let mut out = HashMap::with_capacity(user_ids.len());
        for chunk in user_ids.chunks(500) {
            let ids = serde_json::to_string(chunk).expect("strings serialise");
            let rows: Vec<ContactRow> = sqlx::query_as(
                "SELECT user_id, display_name, phone, email, follows, first_seen, last_interaction,
                        interaction_count, followed_at, unfollowed_at
                 FROM contacts WHERE user_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&self.reader)
            .await?;
            let tags: Vec<(String, String)> = sqlx::query_as(
                "SELECT user_id, tag FROM contact_tags WHERE user_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&self.reader)
            .await?;
            let fields: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT user_id, name, value FROM contact_fields WHERE user_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(&ids)
            .fetch_all(&self.reader)
            .await?;
            let mut part: HashMap<String, Contact> = rows
                .into_iter()
                .map(|r| (r.user_id.clone(), r.into()))
                .collect();
            attach_tags_fields(&mut part, tags, fields);
            out.extend(part);
        }
        Ok(out)
    }

    async fn import_contacts(
        &self,
        changes: &[ContactChange],
        lists: &[ListChange],
        now: i64,
    ) -> Result<()> {
        check_list_changes(lists)?;
        let merged = merge_changes(changes);
        let mut w = self.writer.lock().await?;
        let mut tx = w.begin().await?;
        apply_contact_changes(&mut tx, &merged, now).await?;
        apply_list_changes(&mut tx, lists, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn inactive_contact_ids(
        &self,
        from: i64,
        to: i64,
        follows: Option<bool>,
        skip_fired_in_silence: Option<&str>,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT c.user_id FROM contacts c INDEXED BY contacts_inactivity
             WHERE c.last_interaction >= ?1 AND c.last_interaction < ?2
               AND (CASE WHEN ?3 IS NULL THEN c.follows IS NOT 0 ELSE c.follows = ?3 END)
               AND (?4 IS NULL OR NOT EXISTS (
                    SELECT 1 FROM rule_state r
                    WHERE r.user_id = c.user_id AND r.rule_id = ?4
                      AND r.period_key = 'silence:' || c.last_interaction))",
        )
        .bind(from)
        .bind(to)
        .bind(follows)
        .bind(skip_fired_in_silence)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }
});

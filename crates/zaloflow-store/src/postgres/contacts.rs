//! Contacts: reading them, importing, searching, scanning, erasing; form registrations. (PostgreSQL).

use super::*;

crate::contacts::contacts_impl!(PgStore, postgres, {
    async fn load_contacts(&self, user_ids: &[String]) -> Result<HashMap<String, Contact>> {
        let rows: Vec<ContactRow> = sqlx::query_as(
            "SELECT user_id, display_name, phone, email, follows, first_seen, last_interaction,
                    interaction_count, followed_at, unfollowed_at
             FROM contacts WHERE user_id = ANY($1)",
        )
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        let tags: Vec<(String, String)> =
            sqlx::query_as("SELECT user_id, tag FROM contact_tags WHERE user_id = ANY($1)")
                .bind(user_ids)
                .fetch_all(&self.pool)
                .await?;
        let fields: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT user_id, name, value FROM contact_fields WHERE user_id = ANY($1)",
        )
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<String, Contact> = rows
            .into_iter()
            .map(|r| (r.user_id.clone(), r.into()))
            .collect();
        attach_tags_fields(&mut out, tags, fields);
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
        let mut tx = self.pool.begin().await?;
        bulk_upsert_contacts(&mut tx, &merged, now).await?;
        apply_list_changes(&mut tx, lists, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn scan_contact_ids(
        &self,
        scan: &ContactScan,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>> {
        let (sql, arg) = match scan {
            ContactScan::Followers => (
                "SELECT user_id FROM contacts WHERE follows AND ($1::text IS NULL OR user_id > $1)
                 AND $3::text IS NULL ORDER BY user_id LIMIT $2",
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
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(after)
            .bind(limit)
            .bind(arg)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn inactive_contact_ids(
        &self,
        from: i64,
        to: i64,
        follows: Option<bool>,
        skip_fired_in_silence: Option<&str>,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT c.user_id FROM contacts c
             WHERE c.last_interaction >= $1 AND c.last_interaction < $2
               AND (CASE WHEN $3::bool IS NULL THEN c.follows IS DISTINCT FROM false
                         ELSE c.follows = $3 END)
               AND ($4::text IS NULL OR NOT EXISTS (
                    SELECT 1 FROM rule_state r
                    WHERE r.user_id = c.user_id AND r.rule_id = $4
                      AND r.period_key = 'silence:' || c.last_interaction::text))",
        )
        .bind(from)
        .bind(to)
        .bind(follows)
        .bind(skip_fired_in_silence)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    async fn erase_contact(&self, user_id: &str, now: i64) -> Result<Erased> {
        let mut tx = self.pool.begin().await?;
        let mut out = Erased::default();
        // The events of its lane first: an inbox worker finishing one of them now loses its
        // lease (and changes nothing) or has committed before this statement, so what it
        // wrote about the contact is seen, and removed, below.
        const REDACT: &str = "UPDATE inbox SET body = $1, user_id = '', error = NULL,
                lease_owner = NULL, lease_until = 0,
                processed_at = COALESCE(processed_at, $2),
                status = CASE status WHEN 'pending' THEN 'done' ELSE status END";
        out.inbox_redacted += sqlx::query(&format!("{REDACT} WHERE user_id = $3"))
            .bind(REDACTED_BODY)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let row: Option<(Option<String>, Option<String>)> =
            sqlx::query_as("SELECT phone, email FROM contacts WHERE user_id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let (phone, email) = row.unwrap_or_default();
        for needle in erase_needles(user_id, phone.as_deref(), email.as_deref()) {
            out.inbox_redacted += sqlx::query(&format!("{REDACT} WHERE strpos(body, $3) > 0"))
                .bind(REDACTED_BODY)
                .bind(now)
                .bind(&needle)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            out.jobs_deleted += sqlx::query("DELETE FROM outbox WHERE strpos(payload, $1) > 0")
                .bind(&needle)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        let mut keys = vec![user_id.to_string()];
        keys.extend(phone.iter().chain(email.iter()).cloned());
        out.jobs_deleted += sqlx::query("DELETE FROM outbox WHERE user_id = ANY($1)")
            .bind(&keys)
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
        let mut steps: [(&str, Option<&mut u64>); 10] = [
            ("DELETE FROM contact_tags WHERE user_id = $1", Some(tags)),
            ("DELETE FROM contact_fields WHERE user_id = $1", Some(fields)),
            ("DELETE FROM list_members WHERE user_id = $1", Some(list_memberships)),
            ("DELETE FROM rule_state WHERE user_id = $1", Some(rule_state)),
            ("DELETE FROM form_submissions WHERE contact_id = $1", Some(form_submissions)),
            ("DELETE FROM handoff_messages WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = $1)", None),
            ("DELETE FROM handoff_breaches WHERE handoff_id IN (SELECT id FROM handoffs WHERE user_id = $1)", None),
            ("DELETE FROM handoffs WHERE user_id = $1", None),
            ("DELETE FROM campaign_members WHERE contact_id = $1", None),
            ("DELETE FROM contacts WHERE user_id = $1", Some(contact)),
        ];
        for (sql, counter) in &mut steps {
            let n = sqlx::query(sql)
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

    async fn contacts_with_field_like(
        &self,
        name: &str,
        patterns: &[String],
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT user_id FROM contact_fields WHERE name = $1 AND value LIKE ANY($2)
             ORDER BY user_id",
        )
        .bind(name)
        .bind(patterns)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }
});

//! The emails-not-opened pass: follow-ups of sent emails nobody opened in time.

use super::*;

pub(super) async fn not_opened(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let watched: Vec<(String, u32, Option<String>, bool)> = rules
        .rules_with_trigger("email_not_opened")
        .filter_map(|(r, t)| match t {
            Trigger::EmailNotOpened {
                within_hours,
                email,
                machine_opens,
            } => Some((r.id.clone(), *within_hours, email.clone(), *machine_opens)),
            _ => None,
        })
        .collect();
    for (rule_id, hours, email, machine_opens) in watched {
        let name = format!("email_not_opened:{rule_id}");
        let until = now - i64::from(hours) * HOUR + 1;
        let from = match ctx.store.scheduler_value(&name).await? {
            Some(v) => v,
            None => until - DAY,
        };
        if from >= until {
            continue;
        }
        let sent = ctx.store.sent_emails(email.as_deref(), from, until).await?;
        // Emails with tracking only: an email without a pixel cannot tell it was opened.
        let sent: Vec<(crate::tracking::SentEmail, String, i64)> = sent
            .into_iter()
            .filter_map(|j| {
                let p: crate::channels::Payload = serde_json::from_str(&j.payload).ok()?;
                match p {
                    crate::channels::Payload::Email {
                        track: Some(t),
                        html,
                        ..
                    } => Some((
                        crate::tracking::SentEmail {
                            job_id: j.id,
                            contact_id: t.contact_id,
                            html,
                        },
                        j.rule_id.unwrap_or_default(),
                        j.sent_at.unwrap_or(j.run_at),
                    )),
                    _ => None,
                }
            })
            .collect();
        for chunk in sent.chunks(ctx.options.page) {
            // The one question: opened or clicked by a person (or fetched by a machine when
            // the rule counts machines).
            let emails: Vec<crate::tracking::SentEmail> =
                chunk.iter().map(|(e, _, _)| e.clone()).collect();
            let opened = crate::tracking::opened_emails(&ctx.store, &emails, machine_opens).await?;
            let marks: Vec<String> = chunk
                .iter()
                .map(|(e, _, _)| format!("email_not_opened:{rule_id}:{}", e.job_id))
                .collect();
            let taken: std::collections::HashSet<String> = ctx
                .store
                .existing_marks(&marks)
                .await?
                .into_iter()
                .collect();
            let todo: Vec<(i64, &String, &String, i64)> = chunk
                .iter()
                .zip(&marks)
                .filter(|((e, _, _), m)| !opened.contains(&e.job_id) && !taken.contains(*m))
                .map(|((e, by, at), _)| (e.job_id, &e.contact_id, by, *at))
                .collect();
            if todo.is_empty() {
                continue;
            }
            let mut users: Vec<String> = todo.iter().map(|e| e.1.to_string()).collect();
            users.sort();
            users.dedup();
            let mut state =
                state_of(ctx, &users, rules_use_lists(rules, &["email_not_opened"])).await?;
            let mut decisions = Vec::new();
            for (job_id, contact, sent_by, sent_at) in todo {
                let source = format!("tick:not_opened:{job_id}");
                let mut effects = ctx.engine.stimulate_rule(
                    contact,
                    &rule_id,
                    Stimulus::EmailNotOpened {
                        email: sent_by,
                        sent_at,
                    },
                    now,
                    &source,
                    &mut state,
                );
                let key = format!("email_not_opened:{rule_id}:{job_id}");
                if !effects.fires.is_empty() {
                    report.not_opened(&rule_id).fired += 1;
                    ctx.engine
                        .enter_on_added_tags(contact, now, &source, &mut state, &mut effects);
                }
                key_jobs(&mut effects, &key);
                decisions.push(Decision {
                    key: Some(key),
                    effects,
                });
            }
            apply(ctx, decisions, report).await?;
        }
        ctx.store
            .set_scheduler_value(&name, until, ctx.clock.now())
            .await?;
    }
    Ok(())
}

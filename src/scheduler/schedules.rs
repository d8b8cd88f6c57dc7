//! The schedules pass: rules on `schedule`, for the contacts their conditions select.

use super::*;

/// Which contacts a `schedule` rule (or a `special_day` rule on a shop date) is for: the
/// members of the list its conditions name (`in_list`), else the contacts with the first tag
/// they require (`has_tag`), else every follower; the rule's conditions then decide each.
pub fn schedule_scan(conditions: &[Condition]) -> ContactScan {
    for c in conditions {
        if let Condition::InList(l) = c {
            return ContactScan::InList(l.clone());
        }
    }
    for c in conditions {
        if let Condition::HasTag(tags) = c {
            if let Some(t) = tags.first() {
                return ContactScan::Tagged(t.clone());
            }
        }
    }
    ContactScan::Followers
}

pub(super) async fn schedules(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let tz = ctx.engine.tz();
    let scheduled: Vec<_> = rules
        .scheduled()
        .map(|(r, c)| (r.clone(), c.clone()))
        .collect();
    for (rule, cron) in scheduled {
        let name = format!("schedule:{}", rule.id);
        let last = ctx
            .store
            .scheduler_value(&name)
            .await?
            .unwrap_or(now - ctx.options.grace_ms);
        // The latest occurrence in (last, now].
        let mut occurrence = None;
        let mut t = last;
        for _ in 0..200_000 {
            match cron.next_after(t, tz) {
                Some(n) if n <= now => {
                    occurrence = Some(n);
                    t = n;
                }
                _ => break,
            }
        }
        let Some(occ) = occurrence else { continue };
        if now - occ > ctx.options.grace_ms {
            tracing::info!(rule = %rule.id, occurrence = occ, "schedule missed by more than the grace period: skipped");
            report.schedules.push(ScheduleReport {
                rule: rule.id.clone(),
                occurrence: occ,
                status: ScheduleStatus::Stale,
            });
            ctx.store
                .set_scheduler_value(&name, occ, ctx.clock.now())
                .await?;
            continue;
        }
        let (mut contacts, mut fired) = (0usize, 0usize);
        if crate::rules::matcher::time_allows(&rule.conditions, occ, tz) {
            let scan = schedule_scan(&rule.conditions);
            let lists = uses_lists(&rule.conditions);
            let mut after: Option<String> = None;
            loop {
                let ids = ctx
                    .store
                    .scan_contact_ids(&scan, after.as_deref(), ctx.options.page as i64)
                    .await?;
                let Some(last_id) = ids.last().cloned() else {
                    break;
                };
                contacts += ids.len();
                let mut state = state_of(ctx, &ids, lists).await?;
                let mut decisions = Vec::new();
                for u in &ids {
                    // Already done for this occurrence (a tick that stopped half-way).
                    if crate::rules::FireHistory::last_fired(&state.history, u, &rule.id)
                        == Some(occ)
                    {
                        continue;
                    }
                    let source = format!("tick:schedule:{}", rule.id);
                    let mut effects = ctx.engine.stimulate(
                        u,
                        Stimulus::Schedule { rule_id: &rule.id },
                        occ,
                        &source,
                        &mut state,
                    );
                    if effects.fires.is_empty() {
                        continue;
                    }
                    ctx.engine
                        .enter_on_added_tags(u, occ, &source, &mut state, &mut effects);
                    fired += 1;
                    key_jobs(&mut effects, &format!("schedule:{}:{occ}:{u}", rule.id));
                    decisions.push(Decision { key: None, effects });
                }
                apply(ctx, decisions, report).await?;
                renew(ctx).await?;
                after = Some(last_id);
            }
        }
        report.schedules.push(ScheduleReport {
            rule: rule.id.clone(),
            occurrence: occ,
            status: ScheduleStatus::Ran { contacts, fired },
        });
        ctx.store
            .set_scheduler_value(&name, occ, ctx.clock.now())
            .await?;
    }
    Ok(())
}

//! The special-days pass: birthdays and shop dates, `days_before` included.

use super::*;

/// `LIKE` patterns of date values on (day, month): `DD/MM/YYYY`, `D/M/YYYY`, `DD/MM`,
/// `YYYY-MM-DD`.
pub(super) fn date_patterns(day: u32, month: u32) -> Vec<String> {
    let mut v = vec![
        format!("{day:02}/{month:02}/%"),
        format!("{day:02}/{month:02}"),
        format!("%-{month:02}-{day:02}"),
    ];
    if day < 10 || month < 10 {
        v.push(format!("{day}/{month}/%"));
        v.push(format!("{day}/{month}"));
    }
    v
}

pub(super) async fn special_days(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    use chrono::Datelike;
    let tz = ctx.engine.tz();
    let today = crate::rules::campaign::local_date(now, tz);
    let day_no = i64::from(today.num_days_from_ce());
    let mut by_rule: BTreeMap<String, Vec<(SpecialDate, u32)>> = BTreeMap::new();
    for (rule, t) in rules.rules_with_trigger("special_day") {
        if let Trigger::SpecialDay { on, days_before } = t {
            by_rule
                .entry(rule.id.clone())
                .or_default()
                .push((on.clone(), *days_before));
        }
    }
    for (rule_id, triggers) in by_rule {
        let Some(rule) = rules.get(&rule_id).cloned() else {
            continue;
        };
        let name = format!("special_day:{rule_id}");
        // The day's first pass scans every contact; later passes the same day look only at
        // contacts whose date field changed since the pass before (a registration with today's
        // birthday after the first pass), so they are greeted that day too, once a year.
        let first = ctx.store.scheduler_value(&name).await? != Some(day_no);
        if !crate::rules::matcher::time_allows(&rule.conditions, now, tz) {
            continue; // not yet (its time_between has not come today), or past it
        }
        let since_name = format!("special_day_since:{rule_id}");
        let wall = ctx.clock.now();
        let since = watermark(ctx, &since_name, wall).await?;
        let lists = uses_lists(&rule.conditions);
        for (on, days_before) in &triggers {
            let target = today + chrono::Days::new(u64::from(*days_before));
            let (field, ids) = match on {
                SpecialDate::Field(f) if !first => {
                    let mut ids: Vec<String> = ctx
                        .store
                        .field_updates(std::slice::from_ref(f), since, wall + 1)
                        .await?
                        .into_iter()
                        .filter(|u| {
                            crate::rules::matcher::date_of_field(&u.value).is_some_and(|dm| {
                                dm == (target.day(), target.month()) || dm == (29, 2)
                            })
                        })
                        .map(|u| u.user_id)
                        .collect();
                    ids.sort();
                    ids.dedup();
                    (f.clone(), ids)
                }
                // A shop's own date: the day's first pass only.
                SpecialDate::Date { .. } if !first => continue,
                SpecialDate::Field(f) => {
                    let mut patterns = date_patterns(target.day(), target.month());
                    // 29 February is celebrated on 28 February in other years.
                    if (target.day(), target.month()) == (28, 2)
                        && chrono::NaiveDate::from_ymd_opt(target.year(), 2, 29).is_none()
                    {
                        patterns.extend(date_patterns(29, 2));
                    }
                    let ids = ctx.store.contacts_with_field_like(f, &patterns).await?;
                    (f.clone(), ids)
                }
                SpecialDate::Date { day, month } => {
                    if (target.day(), target.month()) != (*day, *month) {
                        continue;
                    }
                    let scan = schedule_scan(&rule.conditions);
                    let mut ids = Vec::new();
                    let mut after: Option<String> = None;
                    loop {
                        let page = ctx
                            .store
                            .scan_contact_ids(&scan, after.as_deref(), 10_000)
                            .await?;
                        let Some(last) = page.last().cloned() else {
                            break;
                        };
                        ids.extend(page);
                        after = Some(last);
                    }
                    (String::new(), ids)
                }
            };
            report.special_day(&rule_id).candidates += ids.len();
            for chunk in ids.chunks(ctx.options.page) {
                let mut state = state_of(ctx, chunk, lists).await?;
                let mut decisions = Vec::new();
                for u in chunk {
                    let source = format!("tick:special_day:{rule_id}");
                    let mut effects = ctx.engine.stimulate_rule(
                        u,
                        &rule_id,
                        Stimulus::SpecialDay { field: &field },
                        now,
                        &source,
                        &mut state,
                    );
                    if effects.fires.is_empty() {
                        continue;
                    }
                    ctx.engine
                        .enter_on_added_tags(u, now, &source, &mut state, &mut effects);
                    report.special_day(&rule_id).fired += 1;
                    // Once a year per contact, whichever of its dates matched first.
                    let key = format!("special_day:{rule_id}:{u}:{}", target.year());
                    key_jobs(&mut effects, &key);
                    decisions.push(Decision {
                        key: Some(key),
                        effects,
                    });
                }
                apply(ctx, decisions, report).await?;
                renew(ctx).await?;
            }
        }
        ctx.store
            .set_scheduler_value(&name, day_no, ctx.clock.now())
            .await?;
        ctx.store
            .set_scheduler_value(&since_name, wall + 1, wall)
            .await?;
    }
    Ok(())
}

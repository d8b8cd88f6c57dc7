//! The field-changes pass: rules on `field_changed`, from the fields written since the last tick.

use super::*;

pub(super) async fn field_changes(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let mut names: Vec<String> = rules
        .rules_with_trigger("field_changed")
        .filter_map(|(_, t)| match t {
            Trigger::FieldChanged { field, .. } => Some(field.clone()),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        return Ok(());
    }
    let wall = ctx.clock.now();
    let name = "field_changed";
    let from = watermark(ctx, name, wall).await?;
    let updates = ctx.store.field_updates(&names, from, wall + 1).await?;
    let lists = rules_use_lists(rules, &["field_changed"]);
    for chunk in updates.chunks(ctx.options.page) {
        let mut users: Vec<String> = chunk.iter().map(|u| u.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let mut state = state_of(ctx, &users, lists).await?;
        let mut decisions = Vec::new();
        for u in chunk {
            let source = format!("tick:field:{}", u.name);
            let mut effects = ctx.engine.stimulate(
                &u.user_id,
                Stimulus::FieldChanged {
                    field: &u.name,
                    value: Some(&u.value),
                },
                now,
                &source,
                &mut state,
            );
            if effects.fires.is_empty() {
                continue;
            }
            ctx.engine
                .enter_on_added_tags(&u.user_id, now, &source, &mut state, &mut effects);
            for f in &effects.fires {
                report.field_changes(&f.rule_id).fired += 1;
            }
            let key = format!("field:{}:{}:{}", u.user_id, u.name, u.updated_at);
            key_jobs(&mut effects, &key);
            decisions.push(Decision {
                key: Some(key),
                effects,
            });
        }
        apply(ctx, decisions, report).await?;
    }
    ctx.store.set_scheduler_value(name, wall + 1, wall).await?;
    Ok(())
}

//! The re-activation pass: rules on `inactive`, for contacts silent that many days.

use super::*;

pub(super) async fn reactivation(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let tz = ctx.engine.tz();
    let mut candidates: BTreeSet<String> = BTreeSet::new();
    let mut any = false;
    for (rule, t) in rules.rules_with_trigger("inactive") {
        let Trigger::Inactive { min_days, max_days } = t else {
            continue;
        };
        if !crate::rules::matcher::time_allows(&rule.conditions, now, tz) {
            continue;
        }
        any = true;
        // Whole days of silence d = (now - last) / DAY in [min, max]:
        // last in (now - (max + 1) days, now - min days].
        let from = max_days.map_or(i64::MIN, |m| now - (i64::from(m) + 1) * DAY + 1);
        let to = now - i64::from(*min_days) * DAY + 1;
        let follows = rule.conditions.iter().find_map(|c| match c {
            Condition::Follows(b) => Some(*b),
            _ => None,
        });
        let ids = ctx
            .store
            .inactive_contact_ids(from, to, follows, Some(&rule.id))
            .await?;
        report.reactivation(&rule.id).candidates += ids.len();
        candidates.extend(ids);
    }
    if !any || candidates.is_empty() {
        return Ok(());
    }
    let lists = rules_use_lists(rules, &["inactive"]);
    let ids: Vec<String> = candidates.into_iter().collect();
    let chunks: Vec<Vec<String>> = ids
        .chunks(ctx.options.page.max(5000))
        .map(<[String]>::to_vec)
        .collect();
    pipeline(
        ctx,
        chunks,
        (lists, !rules.campaigns().is_empty()),
        report,
        <[String]>::to_vec,
        |chunk, state, report| {
            let mut decisions = Vec::with_capacity(chunk.len());
            for u in chunk {
                // Never to users who unfollowed, whatever the rule says.
                let Some(contact) = state.contacts.get(u) else {
                    continue;
                };
                if contact.follows == Some(false) {
                    continue;
                }
                let spell = contact.last_interaction.unwrap_or_default();
                let source = "tick:inactive";
                let mut effects = ctx
                    .engine
                    .stimulate(u, Stimulus::Inactive, now, source, state);
                if effects.fires.is_empty() {
                    continue;
                }
                ctx.engine
                    .enter_on_added_tags(u, now, source, state, &mut effects);
                for f in &effects.fires {
                    report.reactivation(&f.rule_id).fired += 1;
                }
                key_jobs(&mut effects, &format!("inactive:{u}:{spell}"));
                decisions.push(Decision { key: None, effects });
            }
            decisions
        },
    )
    .await
}

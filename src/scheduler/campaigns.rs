//! The campaigns pass: step edits applied first, members moved to their next step, list joins.

use rust_i18n::t;

use super::*;
use crate::i18n::{tr, Lang};

pub(super) async fn campaigns(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    if rules.campaigns().is_empty() {
        return Ok(());
    }
    step_edits(ctx, rules, now, report).await?;
    list_joins(ctx, rules, now, report).await?;
    // Members of disabled campaigns (and of campaigns taken out of the rules) wait.
    let enabled: Vec<String> = rules
        .campaigns()
        .iter()
        .filter(|c| c.enabled)
        .map(|c| c.id.clone())
        .collect();
    if enabled.is_empty() {
        return Ok(());
    }
    let page = ctx.options.page;
    let tz = ctx.engine.tz();
    let lists = rules
        .campaigns()
        .iter()
        .any(|c| uses_lists(&c.exit_if) || c.steps.iter().any(|s| uses_lists(&s.rule.conditions)));
    // A member's step reads its other memberships only to check goals and to enter campaigns
    // on the tags the step added; without those, the due rows are all a step needs of them.
    let memberships = rules.campaigns().iter().any(|c| {
        !c.exit_if.is_empty()
            || c.enter_on
                .iter()
                .any(|t| matches!(t, crate::rules::EntryTrigger::TagAdded(_)))
    });
    // Each batch moves its members on (or out), so the next query finds the rest. A member that
    // did not move (a change raced it) is not taken again in this tick. Up to fifty chunks a
    // batch: each batch starts the pipeline anew (its query, first load and last write overlap
    // nothing).
    let mut seen: BTreeSet<(String, String, String)> = BTreeSet::new();
    loop {
        let mut due = ctx
            .store
            .due_campaign_members(Some(&enabled), now, (page * 50) as i64)
            .await?
            .into_iter()
            .filter(|m| {
                seen.insert((
                    m.campaign.clone(),
                    m.contact_id.clone(),
                    m.step_id.clone().unwrap_or_default(),
                ))
            })
            .collect::<Vec<_>>();
        if due.is_empty() {
            break;
        }
        // One contact's memberships stay in one chunk.
        due.sort_by(|a, b| a.contact_id.cmp(&b.contact_id));
        let mut chunks: Vec<Vec<CampaignMember>> = Vec::new();
        for m in due {
            match chunks.last_mut() {
                Some(c)
                    if c.len() < page || c.last().is_some_and(|l| l.contact_id == m.contact_id) =>
                {
                    c.push(m)
                }
                _ => chunks.push(vec![m]),
            }
        }
        pipeline(
            ctx,
            chunks,
            (lists, memberships),
            report,
            |ms: &[CampaignMember]| {
                let mut u: Vec<String> = ms.iter().map(|m| m.contact_id.clone()).collect();
                u.dedup();
                u
            },
            |ms, state, report| {
                ms.iter()
                    .filter_map(|m| {
                        let c = rules.campaign(&m.campaign)?;
                        member_step(ctx, c, m, now, tz, state, report)
                    })
                    .flatten()
                    .collect()
            },
        )
        .await?;
    }
    Ok(())
}

/// Members of campaigns whose steps changed since the last pass (a reload, a restart with
/// edited files) follow the documented rule (docs/campaigns.md): members of a kept or moved
/// step keep waiting for it at their due time; members of a removed step go to the step that
/// now stands where it stood, no earlier than they were due and no earlier than that step's
/// own day and time for them (done when none stands there). Each changed step is logged and
/// reported with its members. Rows from before step ids are mapped by position first, once.
pub(super) async fn step_edits(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let tz = ctx.engine.tz();
    let wall = ctx.clock.now();
    for c in rules.campaigns() {
        let ids: Vec<String> = c.steps.iter().map(|s| s.id.clone()).collect();
        let old = ctx.store.campaign_steps(&c.id).await?;
        if old == ids {
            continue;
        }
        // Members' steps change all at once: a forecast's cached states are read again
        // (every write below included).
        if let Some(cache) = &ctx.cache {
            cache.clear();
        }
        if old.is_empty() {
            let n = ctx.store.map_member_positions(&c.id, &ids, wall).await?;
            if n > 0 {
                tracing::info!(campaign = %c.id, members = n, "members stored by step position now wait for the step id at that position");
            }
            ctx.store.set_campaign_steps(&c.id, &ids, wall).await?;
            continue;
        }
        let edits = c.edits_from(&old);
        let removed = edits
            .iter()
            .any(|e| matches!(e, crate::rules::campaign::StepEdit::Removed { .. }));
        let members = if removed {
            ctx.store.campaign_members(&c.id).await?
        } else {
            Vec::new()
        };
        for edit in &edits {
            use crate::rules::campaign::StepEdit;
            let line = match edit {
                StepEdit::Kept { .. } => continue,
                StepEdit::Removed { step, to } => {
                    let changes: Vec<CampaignChange> = members
                        .iter()
                        .filter(|m| m.is_active() && m.step_id.as_ref() == Some(step))
                        .map(|m| {
                            let j = to.as_deref().and_then(|t| c.step_index(t));
                            let next_at =
                                j.map(|j| c.due(j, m.entered_at, m.next_at.unwrap_or(now), tz));
                            CampaignChange::Advance {
                                campaign: c.id.clone(),
                                contact_id: m.contact_id.clone(),
                                from_step: step.clone(),
                                step: j.unwrap_or(c.steps.len()) as i64,
                                step_id: to.clone(),
                                next_at,
                            }
                        })
                        .collect();
                    let n = changes.len();
                    for chunk in changes.chunks(ctx.options.page.max(1)) {
                        let d = Decision {
                            key: None,
                            effects: Effects {
                                campaigns: chunk.to_vec(),
                                ..Effects::default()
                            },
                        };
                        ctx.store.apply_decisions(&[d], wall).await?;
                    }
                    let lang = ctx.engine.lang();
                    t!(
                        "tick.edit.count",
                        locale = lang.code(),
                        edit = edit.render(lang),
                        members = members_word(lang, n as i64)
                    )
                    .into_owned()
                }
                other => other.render(ctx.engine.lang()),
            };
            tracing::info!(campaign = %c.id, edit = %line, "campaign steps changed");
            report.campaign(&c.id).edits.push(line);
        }
        ctx.store.set_campaign_steps(&c.id, &ids, wall).await?;
    }
    Ok(())
}

/// `zaloflow rules check --against`: what running `set` would do to the members of the
/// campaigns in the database — one line per changed step, with where its members go and how
/// many they are, in the words the scheduler logs when it applies the change. Changes nothing.
pub async fn edits_against(
    store: &DynStore,
    set: &RuleSet,
    lang: Lang,
) -> Result<Vec<String>, StoreError> {
    use crate::rules::campaign::StepEdit;
    let counts = store.member_counts().await?;
    let l = lang.code();
    let plural = |n: i64| members_word(lang, n);
    let mut out = Vec::new();
    for c in set.campaigns() {
        let here: Vec<&crate::store::MemberCount> =
            counts.iter().filter(|m| m.campaign == c.id).collect();
        let waiting = |step: &str| -> i64 {
            here.iter()
                .filter(|m| m.step_id.as_deref() == Some(step))
                .map(|m| m.members)
                .sum()
        };
        let old = store.campaign_steps(&c.id).await?;
        if old.is_empty() {
            for m in here.iter().filter(|m| m.step_id.is_none()) {
                let to = match c
                    .steps
                    .get(usize::try_from(m.position).unwrap_or(usize::MAX))
                {
                    Some(s) => t!("against.wait_for", locale = l, step = s.id),
                    None => tr(lang, "against.finish"),
                };
                out.push(
                    t!(
                        "against.old_place",
                        locale = l,
                        at = c.origin,
                        id = c.id,
                        members = plural(m.members),
                        place = m.position + 1,
                        to = to
                    )
                    .into_owned(),
                );
            }
            continue;
        }
        for e in c.edits_from(&old) {
            let (at, n) = match &e {
                StepEdit::Kept { .. } => continue,
                StepEdit::Removed { step, .. } => (c.origin.clone(), waiting(step)),
                StepEdit::Moved { step, .. } => (
                    c.steps[c.step_index(step).unwrap_or(0)].rule.origin.clone(),
                    waiting(step),
                ),
                StepEdit::Added { step, .. } => (
                    c.steps[c.step_index(step).unwrap_or(0)].rule.origin.clone(),
                    -1,
                ),
            };
            let count = if n >= 0 {
                t!("against.waiting", locale = l, members = plural(n)).into_owned()
            } else {
                String::new()
            };
            let edit = e.render(lang);
            out.push(
                t!(
                    "against.edit",
                    locale = l,
                    at = at,
                    id = c.id,
                    edit = edit,
                    count = count
                )
                .into_owned(),
            );
        }
    }
    let mut gone: BTreeMap<&str, i64> = BTreeMap::new();
    for m in counts
        .iter()
        .filter(|m| set.campaign(&m.campaign).is_none())
    {
        *gone.entry(m.campaign.as_str()).or_default() += m.members;
    }
    for (id, n) in gone {
        out.push(t!("against.gone", locale = l, id = id, members = plural(n)).into_owned());
    }
    Ok(out)
}

/// `zaloflow rules check --against`: loads the folder and compares it with the campaigns of
/// the database at `database_url`. The text to print and whether the rules load.
pub async fn check_against(
    dir: &std::path::Path,
    database_url: &str,
    lang: Lang,
) -> anyhow::Result<(String, bool)> {
    let opts = crate::rules::LoadOptions {
        lang,
        ..Default::default()
    };
    let set = match crate::rules::load_dir(dir, &opts) {
        Ok(set) => set,
        Err(_) => return Ok((String::new(), false)),
    };
    let store = crate::wiring::open_unchanged(database_url, lang).await?;
    let lines = edits_against(&store, &set, lang).await?;
    let mut out = String::new();
    if lines.is_empty() {
        out.push_str(&tr(lang, "against.none"));
        out.push('\n');
    } else {
        out.push_str(&tr(lang, "against.some"));
        out.push('\n');
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Ok((out, true))
}

/// What to do with one due member: run its step (and move on), leave, or wait. A step that
/// ran is written with a mark (`campaign:CAMPAIGN:CONTACT:ENTRY:STEP`) and the move to the
/// next step beside it, unmarked: a step this membership ran before (its campaign was
/// reordered) is not run again, and the member still moves on.
pub(super) fn member_step(
    ctx: &TickContext,
    c: &Campaign,
    m: &CampaignMember,
    now: i64,
    tz: chrono_tz::Tz,
    state: &mut BatchState,
    report: &mut TickReport,
) -> Option<Vec<Decision>> {
    let engine = &ctx.engine;
    // Every active member has a step id once the pass's first stage ran (`step_edits`); an id
    // the campaign does not know means the rules changed during this pass: the next one moves
    // the member.
    let from = m.step_id.clone()?;
    let Some(i) = c.step_index(&from) else {
        tracing::warn!(campaign = %c.id, user = %m.contact_id, step = %from, "member waits for a step the campaign no longer has: moved by the next pass");
        return None;
    };
    let next_at = m.next_at.unwrap_or(now);
    let advance = |step: usize, next: Option<i64>| CampaignChange::Advance {
        campaign: c.id.clone(),
        contact_id: m.contact_id.clone(),
        from_step: from.clone(),
        step: step as i64,
        step_id: c
            .steps
            .get(step)
            .filter(|_| next.is_some())
            .map(|s| s.id.clone()),
        next_at: next,
    };
    let one = |ch: CampaignChange| Decision {
        key: None,
        effects: Effects {
            campaigns: vec![ch],
            ..Effects::default()
        },
    };
    // Unfollowed: leave (the unfollow event normally did this already).
    if state
        .contacts
        .get(&m.contact_id)
        .is_some_and(|ct| ct.follows == Some(false))
    {
        report.campaign(&c.id).left += 1;
        return Some(vec![one(CampaignChange::Leave {
            campaign: c.id.clone(),
            contact_id: m.contact_id.clone(),
            reason: "unfollowed the OA".into(),
        })]);
    }
    // A step at an exact clock time missed by more than the grace goes out at that time on
    // its next allowed day, not late; a step due on a day the campaign no longer allows waits
    // for the next allowed day.
    let late = now - next_at > ctx.options.grace_ms;
    let moved = match c.steps[i].send {
        SendTime::At(minute) if late => Some(c.allowed_from(
            crate::rules::campaign::next_clock_after(now, minute, tz),
            tz,
        )),
        _ if !c.allows(now, tz) => Some(c.allowed_from(now, tz)),
        _ => None,
    };
    if let Some(to) = moved {
        report.campaign(&c.id).rescheduled += 1;
        return Some(vec![one(advance(i, Some(to)))]);
    }
    let mut effects = Effects::default();
    engine.check_goals(
        &m.contact_id,
        Stimulus::AfterStep {
            campaign: &c.id,
            step: &c.steps[i].id,
        },
        now,
        state,
        &mut effects,
    );
    if !effects.campaigns.is_empty() {
        report.campaign(&c.id).left += 1;
        return Some(vec![Decision { key: None, effects }]);
    }
    let source = format!("tick:campaign:{}", c.id);
    let run = m.entered_at.to_string();
    match engine.run_step(&m.contact_id, c, i, &run, now, &source, state) {
        Some(mut e) => {
            engine.enter_on_added_tags(&m.contact_id, now, &source, state, &mut e);
            effects.extend(e);
            *report
                .campaign(&c.id)
                .steps
                .entry(c.steps[i].id.clone())
                .or_default() += 1;
        }
        None => report.campaign(&c.id).skipped += 1,
    }
    let next = i + 1;
    let next_at = (next < c.steps.len()).then(|| c.due(next, m.entered_at, now, tz));
    if next_at.is_none() {
        report.campaign(&c.id).done += 1;
    }
    let ch = advance(next, next_at);
    crate::engine::note_member(state, &ch);
    Some(vec![
        Decision {
            key: Some(format!(
                "campaign:{}:{}:{}:{}",
                c.id, m.contact_id, m.entered_at, c.steps[i].id
            )),
            effects,
        },
        one(ch),
    ])
}

/// Contacts who joined a list a campaign enters on since the last tick (wall time: rows
/// written by any instance, an import or the admin API) enter now.
pub(super) async fn list_joins(
    ctx: &TickContext,
    rules: &RuleSet,
    now: i64,
    report: &mut TickReport,
) -> Result<(), StoreError> {
    let mut lists: BTreeMap<&str, Vec<&Campaign>> = BTreeMap::new();
    for c in rules.campaigns().iter().filter(|c| c.enabled) {
        for t in &c.enter_on {
            if let crate::rules::EntryTrigger::ListJoined(l) = t {
                lists.entry(l.as_str()).or_default().push(c);
            }
        }
    }
    let wall = ctx.clock.now();
    for (list, campaigns) in lists {
        let name = format!("list_joined:{list}");
        let from = watermark(ctx, &name, wall).await?;
        let joins = ctx.store.list_joins(list, from, wall + 1).await?;
        for chunk in joins.chunks(ctx.options.page) {
            let users: Vec<String> = chunk.iter().map(|j| j.user_id.clone()).collect();
            let mut state = state_of(ctx, &users, false).await?;
            let mut decisions = Vec::new();
            for u in &users {
                let mut effects = Effects::default();
                for c in &campaigns {
                    let before = effects.campaigns.len();
                    ctx.engine.enter_campaign(
                        u,
                        c,
                        now,
                        false,
                        &format!("tick:list:{list}"),
                        &mut state,
                        &mut effects,
                    );
                    if effects.campaigns[before..]
                        .iter()
                        .any(|ch| matches!(ch, CampaignChange::Enter { .. }))
                    {
                        report.campaign(&c.id).entered += 1;
                    }
                }
                if !effects.is_empty() {
                    decisions.push(Decision { key: None, effects });
                }
            }
            apply(ctx, decisions, report).await?;
        }
        ctx.store.set_scheduler_value(&name, wall + 1, wall).await?;
    }
    Ok(())
}

/// `1 member`, `3 members` (`3 người`).
fn members_word(lang: Lang, n: i64) -> String {
    let key = if n == 1 {
        "tick.members.one"
    } else {
        "tick.members.many"
    };
    t!(key, locale = lang.code(), n = n).into_owned()
}

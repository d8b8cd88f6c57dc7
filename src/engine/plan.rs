//! Turning what fired into effects: jobs (or skipped records with the reason Zalo would give),
//! handoffs, list and field changes.

use super::*;

impl Engine {
    /// Turns what fired into effects, and records the firings in `state` too.
    pub(super) fn plan(
        &self,
        user: &str,
        eval: &Evaluation,
        at: i64,
        source: &str,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        if eval.fired.is_empty() {
            return;
        }
        let rules = self.rule_set();
        for fired in &eval.fired {
            // A follow-up of a campaign sends on its campaign's weekdays and in its own
            // weekdays and hours: moved to the next allowed time, never dropped (seed II.4).
            let window = rules.get(&fired.rule_id).and_then(|r| {
                let days: Vec<u8> = crate::rules::campaign::followed_campaigns(r)
                    .into_iter()
                    .filter_map(|c| rules.campaign(c))
                    .map(|c| c.weekdays)
                    .collect();
                crate::rules::campaign::SendWindow::of(r, &days)
            });
            metrics::counter!("zaloflow_rules_fired_total").increment(1);
            tracing::info!(rule = %fired.rule_id, user, cause = %fired.cause, "rule fired");
            effects.fires.push(RuleFire {
                user_id: user.to_string(),
                rule_id: fired.rule_id.clone(),
                period_key: fired.period_key.clone(),
                fired_at: at,
            });
            state
                .history
                .record(user, &fired.rule_id, &fired.period_key, at);
            for planned in &fired.actions {
                let run_at = window
                    .as_ref()
                    .map_or(planned.run_at, |w| w.next_allowed(planned.run_at, self.tz));
                if run_at != planned.run_at {
                    tracing::info!(rule = %fired.rule_id, user, from = planned.run_at, to = run_at, "follow-up moved to its next allowed time");
                }
                let contact = state.contacts.entry(user.to_string()).or_default();
                let priority = if contact.tags.contains(VIP_TAG) {
                    VIP_PRIORITY
                } else {
                    0
                };
                let job = |payload: &Payload| NewJob {
                    priority,
                    rule_id: Some(fired.rule_id.clone()),
                    variant: planned.variant.clone(),
                    ..crate::outbox::job(payload, run_at, source)
                };
                match &planned.action {
                    ActionPlan::Outbound { .. } | ActionPlan::FirstOf(_) => {
                        let choices = match &planned.action {
                            ActionPlan::FirstOf(choices) => choices.as_slice(),
                            one => std::slice::from_ref(one),
                        };
                        let job = |payload: &Payload| {
                            let mut j = job(payload);
                            j.run_at = self.send_time(payload, j.run_at);
                            j
                        };
                        effects.jobs.extend(self.choose(
                            &fired.rule_id,
                            user,
                            choices,
                            contact,
                            run_at,
                            job,
                        ));
                    }
                    ActionPlan::Tag { tag, add } => {
                        let mut ch = ContactChange::new(user, at);
                        if *add {
                            ch.tags_add.push(tag.clone());
                        } else {
                            ch.tags_remove.push(tag.clone());
                        }
                        ch.apply_to(contact);
                        effects.contacts.push(ch);
                        if let Some(mirror) =
                            planned.zalo_mirror(user).filter(|_| is_zalo_user(user))
                        {
                            match zalo_refusal(&mirror, contact, run_at) {
                                Some(refusal) => skip(&fired.rule_id, user, refusal.message),
                                None => effects.jobs.push(job(&mirror)),
                            }
                        }
                    }
                    ActionPlan::SetField { name, value } => {
                        let mut ch = ContactChange::new(user, at);
                        ch.fields_set.push((name.clone(), value.clone()));
                        ch.apply_to(contact);
                        effects.contacts.push(ch);
                    }
                    ActionPlan::List { op, list, from } => {
                        let member_of = state.lists.entry(user.to_string()).or_default();
                        effects
                            .lists
                            .push(list_change(op, list, from.as_ref(), user, member_of));
                    }
                    ActionPlan::Handoff {
                        team,
                        advisor,
                        deadline_at,
                        priority: rule_priority,
                        note,
                    } => {
                        let open = handoff::plan(
                            &self.handoffs,
                            HandoffRequest {
                                user_id: user,
                                contact,
                                rule_id: &fired.rule_id,
                                team: team.as_deref(),
                                advisor: advisor.as_deref(),
                                opened_at: planned.run_at,
                                response_ms: deadline_at - planned.run_at,
                                priority: *rule_priority,
                                note: note.as_deref(),
                                message: state.cause.clone(),
                                source,
                                job_priority: priority,
                            },
                        );
                        effects.handoffs.push(HandoffChange::Open(Box::new(open)));
                    }
                    ActionPlan::Skipped { action, reason } => {
                        skip(&fired.rule_id, user, &format!("{action}: {reason}"))
                    }
                }
            }
        }
    }
}

impl Engine {
    /// The job of the first of `choices` that can go out now — its channel is configured and
    /// Zalo would accept it for this contact — carrying the later ones as its fallbacks; or,
    /// when none can, the first recorded as skipped with every choice's reason.
    fn choose(
        &self,
        rule: &str,
        user: &str,
        choices: &[ActionPlan],
        contact: &Contact,
        run_at: i64,
        job: impl Fn(&Payload) -> NewJob,
    ) -> Option<NewJob> {
        let mut reasons: Vec<(&'static str, String)> = Vec::new();
        let mut first: Option<&Payload> = None;
        for (i, choice) in choices.iter().enumerate() {
            let payload = match choice {
                ActionPlan::Outbound { payload } => payload,
                ActionPlan::Skipped { action, reason } => {
                    reasons.push(("no_recipient", format!("{action}: {reason}")));
                    continue;
                }
                _ => continue,
            };
            first.get_or_insert(payload);
            if let Some(m) = self.channels.as_ref().and_then(|c| c.missing(payload)) {
                reasons.push((NOT_CONFIGURED, m.to_string()));
                continue;
            }
            if let Some(refusal) = zalo_refusal(payload, contact, run_at) {
                reasons.push((refusal.code, refusal.message.to_string()));
                continue;
            }
            let rest: Vec<Payload> = choices[i + 1..]
                .iter()
                .filter_map(|c| match c {
                    ActionPlan::Outbound { payload } => Some(payload.clone()),
                    _ => None,
                })
                .collect();
            if !reasons.is_empty() {
                tracing::info!(rule, user, instead_of = ?reasons, "a later choice of `try:` was planned");
            }
            let mut j = job(payload).with_fallbacks(&rest);
            if choices.len() > 1 {
                // One lane and one timeline for the chain, whichever way each choice goes
                // (a template by phone would otherwise be filed under the number).
                j.user_id = user.to_string();
            }
            return Some(j);
        }
        // Recorded where staff look (the outbox, the contact's timeline, the tick's summary),
        // with what to set or why Zalo would refuse it; never queued.
        let code = reasons.first().map_or("no_recipient", |(c, _)| *c);
        let message = match reasons.as_slice() {
            [(_, one)] => format!("skipped: {one}"),
            all => format!(
                "skipped: no choice of `try:` can go out: {}",
                all.iter()
                    .map(|(_, m)| m.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        tracing::info!(rule, user, reason = %message, "send recorded as skipped");
        let Some(p) = first else {
            // No choice had a recipient (no phone, no email): as a lone action of that kind.
            skip(rule, user, &message);
            return None;
        };
        let mut j = job(p).skipped(code, message);
        // The contact's timeline shows it (a skipped row has no lane).
        j.user_id = user.to_string();
        Some(j)
    }

    /// When a send may go out: a promotion planned outside its hours moves to the next start
    /// of them (never dropped); anything else keeps its time.
    pub(super) fn send_time(&self, payload: &Payload, run_at: i64) -> i64 {
        match payload {
            Payload::Zalo {
                kind: ZaloKind::Promotion,
                ..
            } => within_hours(run_at, self.promotion_hours, self.tz),
            // Template tags 2 (customer care) and 3 (promotion): the same hours.
            Payload::Zns {
                tag: Some(2 | 3), ..
            } => within_hours(run_at, self.promotion_hours, self.tz),
            _ => run_at,
        }
    }
}

/// `at`, or the next instant within the local hours `[from, until)` (minutes since midnight).
pub fn within_hours(at: i64, (from, until): (u32, u32), tz: chrono_tz::Tz) -> i64 {
    use chrono::{Duration, TimeZone, Timelike};
    let local = zaloflow_core::clock::to_utc(at).with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    if (from..until).contains(&minute) {
        return at;
    }
    let day = if minute < from {
        local.date_naive()
    } else {
        local.date_naive() + Duration::days(1)
    };
    let start = day
        .and_hms_opt(from / 60, from % 60, 0)
        .expect("hours are checked when read");
    tz.from_local_datetime(&start)
        .earliest()
        .map_or(at, |t| t.timestamp_millis())
}

/// The list operation of a rule for `user`, noted in the batch's view of their lists.
fn list_change(
    op: &str,
    list: &str,
    from: Option<&String>,
    user: &str,
    member_of: &mut BTreeSet<String>,
) -> ListChange {
    let u = Some(user.to_string());
    let change = match (op, from) {
        ("remove", _) => ListChange::Remove {
            list: list.to_string(),
            user_id: user.to_string(),
        },
        ("copy", Some(from)) => ListChange::Copy {
            from: from.clone(),
            to: list.to_string(),
            user_id: u,
        },
        ("move", Some(from)) => ListChange::Move {
            from: from.clone(),
            to: list.to_string(),
            user_id: u,
        },
        _ => ListChange::Add {
            list: list.to_string(),
            user_id: user.to_string(),
        },
    };
    match &change {
        ListChange::Remove { list, .. } => {
            member_of.remove(list);
        }
        ListChange::Move { from, to, .. } => {
            member_of.remove(from);
            member_of.insert(to.clone());
        }
        ListChange::Add { list, .. } | ListChange::Copy { to: list, .. } => {
            member_of.insert(list.clone());
        }
        ListChange::Create { .. } => {}
    }
    change
}

pub(super) fn skip(rule: &str, user: &str, reason: &str) {
    metrics::counter!("zaloflow_rules_skipped_actions_total").increment(1);
    tracing::info!(rule, user, reason, "action skipped");
}

/// Zalo user ids are decimal strings; form-only contacts (`phone:…`, `email:…`) are not.
pub fn is_zalo_user(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())
}

/// Why Zalo would refuse this send, so no quota is spent on it: customer-service messages only
/// reach followers within 7 days of their last interaction (-230); nothing reaches a user who
/// unfollowed (-213) or a contact that is not a Zalo user.
pub fn zalo_refusal(payload: &Payload, contact: &Contact, run_at: i64) -> Option<Refusal> {
    let (user_id, cs) = match payload {
        Payload::Zalo { user_id, kind, .. } => (user_id, *kind == ZaloKind::Cs),
        Payload::ZaloTag { user_id, .. } => (user_id, false),
        Payload::Zns {
            user_id: Some(user_id),
            ..
        } => (user_id, false),
        _ => return None,
    };
    let refusal = |code, message| Some(Refusal { code, message });
    if !is_zalo_user(user_id) {
        return refusal("not_zalo_user", "not a Zalo user");
    }
    if contact.follows == Some(false) {
        return refusal(
            "not_following",
            "the user does not follow the OA (Zalo would answer -213)",
        );
    }
    let field = match payload {
        Payload::Zalo { kind, .. } => Some(crate::outbox::cost::opt_out_field(*kind)),
        Payload::Zns { .. } => Some(crate::outbox::cost::TEMPLATE_OPT_OUT.to_string()),
        _ => None,
    };
    if let Some(field) = field {
        if contact.fields.get(&field).is_some_and(|v| v == "yes") {
            return refusal(
                crate::outbox::cost::OPTED_OUT,
                "the user refused this type of message (Zalo answered -244)",
            );
        }
    }
    if cs
        && contact
            .last_interaction
            .is_none_or(|t| run_at - t > CS_WINDOW_MS)
    {
        return refusal(
            "window_closed",
            "outside Zalo's 7-day customer-service window (Zalo would answer -230)",
        );
    }
    None
}

/// Why Zalo would refuse a send: a short code (the `reason` of the skipped record and of
/// `zaloflow_jobs_skipped_total`) and what staff read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: &'static str,
}

//! Escalation of missed deadlines: [`escalate_due`] finds handoffs whose deadline passed with
//! no human response, tells the supervisors' chat channel and records the breach — once per
//! breach and level, however often it runs and on however many instances (the store raises
//! the handoff's escalation level, records the breach and enqueues the notification in one
//! transaction, only if the level was not reached yet). The scheduler's tick calls it on every
//! pass; `serve` also runs it on `ZALOFLOW_ESCALATION_INTERVAL` when that is set.

use std::sync::Arc;

use rust_i18n::t;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{
    clip, human_duration, local_time, priority_name, who, Breach, Handoff, HandoffConfig,
    HandoffPolicy, Links, VIP_PRIORITY, VIP_TAG,
};
use crate::channels::Payload;
use crate::clock::Clock;
use crate::i18n::tr;
use crate::store::{Contact, DynStore, NewJob, Store, StoreError};

/// Handoffs examined per pass (the most overdue first; the rest wait for the next pass).
const BATCH: i64 = 500;

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EscalationSummary {
    /// Handoffs past their deadline with no human response.
    pub overdue: usize,
    /// Escalations recorded and notified by this pass.
    pub escalated: usize,
}

/// The highest level configured: 1, or 2 with `ZALOFLOW_ESCALATION_SECOND_AFTER`.
fn max_level(c: &HandoffConfig) -> i32 {
    if c.second_after_ms.is_some() {
        2
    } else {
        1
    }
}

/// When `level` falls due for `h`: the deadline, then the second delay of working time.
pub fn level_due_at(h: &Handoff, level: i32, c: &HandoffConfig, tz: chrono_tz::Tz) -> i64 {
    match (level, c.second_after_ms) {
        (2, Some(after)) => match &c.working_hours {
            Some(w) => w.add(h.deadline_at, after, tz),
            None => h.deadline_at + after,
        },
        _ => h.deadline_at,
    }
}

/// Escalates every missed deadline as of `now`. Idempotent: a second run at the same instant
/// (or a concurrent one) escalates nothing new.
#[tracing::instrument(skip_all, fields(now))]
pub async fn escalate_due(
    store: &dyn Store,
    now: i64,
    hc: &HandoffConfig,
    policy: &HandoffPolicy,
) -> Result<EscalationSummary, StoreError> {
    let top = max_level(hc);
    let due = store.handoffs_past_deadline(now, top, BATCH).await?;
    let mut summary = EscalationSummary {
        overdue: due.len(),
        ..Default::default()
    };
    if due.is_empty() {
        return Ok(summary);
    }
    let users: Vec<String> = due.iter().map(|h| h.user_id.clone()).collect();
    let contacts = store.load_contacts(&users).await?;
    for h in &due {
        for level in (h.escalation_level + 1)..=top {
            let due_at = level_due_at(h, level, hc, policy.tz);
            if due_at > now {
                break;
            }
            let channel = match level {
                1 => hc.escalation_channel.clone(),
                _ => hc
                    .second_channel
                    .clone()
                    .unwrap_or_else(|| hc.escalation_channel.clone()),
            };
            let job = escalation_job(h, contacts.get(&h.user_id), level, now, policy, &channel);
            let breach = Breach {
                handoff_id: h.id,
                level,
                due_at,
                recorded_at: now,
                channel: Some(channel.clone()),
            };
            if store.record_breach(&breach, &job, now).await? {
                summary.escalated += 1;
                metrics::counter!("zaloflow_handoff_escalations_total", "level" => level.to_string())
                    .increment(1);
                if level == 1 {
                    metrics::counter!("zaloflow_handoff_deadlines_total", "outcome" => "missed")
                        .increment(1);
                }
                tracing::warn!(
                    handoff = h.id,
                    user = %h.user_id,
                    level,
                    %channel,
                    late_ms = now - h.deadline_at,
                    "handoff deadline missed: escalated"
                );
            }
        }
    }
    Ok(summary)
}

/// The supervisors' notification for one level of a missed deadline.
pub fn escalation_job(
    h: &Handoff,
    contact: Option<&Contact>,
    level: i32,
    now: i64,
    policy: &HandoffPolicy,
    channel: &str,
) -> NewJob {
    let vip = contact.is_some_and(|c| c.tags.contains(VIP_TAG));
    let phone = contact.and_then(|c| c.phone.as_deref());
    let name = h
        .contact_name
        .as_deref()
        .or(contact.and_then(|c| c.display_name.as_deref()));
    let l = Links::new(&policy.board_url, h.id);
    let lang = policy.lang;
    let l_ = lang.code();
    let head = if level >= 2 {
        tr(lang, "handoff.escalation.second")
    } else {
        tr(lang, "handoff.escalation.first")
    };
    let mut text = format!(
        "{head}: {}{}\n{}",
        if vip {
            tr(lang, "handoff.escalation.vip")
        } else {
            "".into()
        },
        who(lang, &h.user_id, name, phone),
        t!(
            "handoff.escalation.deadline",
            locale = l_,
            at = local_time(h.deadline_at, policy.tz),
            late = human_duration(lang, now - h.deadline_at)
        ),
    );
    if let Some(t) = h.first_text.as_deref() {
        let t = crate::rules::template::escape_chat(&clip(t, 300));
        text.push('\n');
        text.push_str(&t!("handoff.message", locale = l_, text = t));
    }
    if h.messages > 1 {
        let n = h.messages - 1;
        text.push_str(&t!("handoff.escalation.more", locale = l_, n = n));
    }
    let mut assigned = Vec::new();
    if let Some(t) = &h.team {
        assigned.push(t!("handoff.escalation.team", locale = l_, name = t));
    }
    if let Some(a) = &h.advisor {
        assigned.push(t!("handoff.escalation.advisor", locale = l_, name = a));
    }
    if !assigned.is_empty() {
        text.push('\n');
        let who = assigned.join(", ");
        text.push_str(&t!("handoff.escalation.assigned", locale = l_, who = who));
    }
    let [claim, resolve] = super::link_labels(lang);
    text.push_str(&format!("\n{claim}: {}\n{resolve}: {}", l.claim, l.resolve));
    let payload = Payload::Chat {
        channel: policy.chat_target(Some(channel)),
        text,
        data: json!({
            "handoff": h.id,
            "contact": h.user_id,
            "level": level,
            "deadline_at": h.deadline_at,
            "priority": priority_name(h.priority),
            "claim_url": l.claim,
            "resolve_url": l.resolve,
            "board_url": l.board,
        }),
    };
    NewJob {
        priority: VIP_PRIORITY + 1,
        rule_id: h.rule_id.clone(),
        dedupe_key: Some(format!("handoff:{}:escalation:{level}", h.id)),
        ..crate::outbox::job(&payload, now, format!("escalation:{}", h.id))
    }
}

/// `serve`'s stand-in for the scheduler's tick: escalates every
/// `ZALOFLOW_ESCALATION_INTERVAL` until `stop`; returns at once when
/// it is off.
pub async fn run_escalations(
    store: DynStore,
    hc: HandoffConfig,
    policy: HandoffPolicy,
    clock: Clock,
    jobs_enqueued: Arc<Notify>,
    stop: CancellationToken,
) {
    let Some(every) = hc.interval else {
        return;
    };
    let channel = &hc.escalation_channel;
    if !policy.chat_channels.contains(channel) {
        tracing::warn!(
            %channel,
            "ZALOFLOW_ESCALATION_CHANNEL is not one of ZALOFLOW_CHAT_CHANNELS: missed deadlines go to the default chat webhook"
        );
    }
    loop {
        match escalate_due(&*store, clock.now(), &hc, &policy).await {
            Ok(s) if s.escalated > 0 => jobs_enqueued.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "escalation pass failed; will retry"),
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

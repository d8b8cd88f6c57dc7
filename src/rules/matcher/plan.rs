//! Planning what fired: each action of a rule turned into a job payload or a change, at its time.

use super::*;

pub(super) fn plan(rule: &Rule, input: &EvalInput) -> Vec<PlannedAction> {
    plan_list(rule, &rule.actions, input, input.at)
}

/// Plans `actions` of `rule` from `start` (a rule's own list, or the choices of a `try:`).
pub(super) fn plan_list(
    rule: &Rule,
    actions: &[Action],
    input: &EvalInput,
    start: i64,
) -> Vec<PlannedAction> {
    let c = input.contact;
    let user_id = c.user_id.clone();
    let mut t = start;
    let mut out = Vec::with_capacity(actions.len());
    // The A/B variant of the next action pushed (set by a `send` with variants).
    let variant = std::cell::Cell::new(None::<String>);
    let mut push = |t: i64, action: ActionPlan| {
        out.push(PlannedAction {
            run_at: t,
            action,
            variant: variant.take(),
        })
    };
    for a in actions {
        match a {
            Action::FirstOf(alts) => {
                let choices = plan_list(rule, alts, input, t)
                    .into_iter()
                    .map(|p| p.action)
                    .collect();
                push(t, ActionPlan::FirstOf(choices))
            }
            Action::Wait(Wait::For(d)) => t += d,
            Action::Wait(Wait::Until(m)) => t = next_clock(t, *m, input.tz),
            Action::Stop => {}
            Action::Tag(tags) | Action::Untag(tags) => {
                let add = matches!(a, Action::Tag(_));
                for tag in tags {
                    push(
                        t,
                        ActionPlan::Tag {
                            tag: tag.clone(),
                            add,
                        },
                    );
                }
            }
            other => plan_one(rule, other, c, &user_id, t, &variant, &mut push),
        }
    }
    out
}

/// One action that becomes one planned step at `t` (a send, a field, a list, a handoff…).
pub(super) fn plan_one(
    rule: &Rule,
    a: &Action,
    c: &Contact,
    user_id: &str,
    t: i64,
    variant: &std::cell::Cell<Option<String>>,
    push: &mut dyn FnMut(i64, ActionPlan),
) {
    match a {
        Action::Send { .. } => send_plan(rule, a, c, user_id, t, variant, push),
        Action::Sms { text, to } => {
            let to = recipient(to.as_ref(), c.phone.as_deref(), c);
            match to {
                Some(to) => push(
                    t,
                    ActionPlan::Outbound {
                        payload: Payload::Sms {
                            to,
                            text: text.render(c),
                        },
                    },
                ),
                None => push(t, skipped("sms", SkipReason::NoPhone)),
            }
        }
        Action::Email {
            subject,
            html,
            text,
            to,
            links,
        } => match recipient(to.as_ref(), c.email.as_deref(), c) {
            Some(to) => {
                let text_body = text.as_ref().map(|t| t.render(c));
                let html_body = html.as_ref().map(|h| h.render(c));
                let html = html_body
                    .clone()
                    .unwrap_or_else(|| text_to_html(text_body.as_deref().unwrap_or("")));
                let text = text_body.unwrap_or_else(|| html_to_text(&html));
                push(
                    t,
                    ActionPlan::Outbound {
                        payload: Payload::Email {
                            to,
                            // A header: one line, whatever a value holds.
                            subject: subject.render(c).replace(['\r', '\n'], " "),
                            html,
                            text,
                            track: Some(crate::channels::EmailTrack {
                                contact_id: user_id.to_string(),
                                links: links
                                    .iter()
                                    .map(|(name, url)| (url.clone(), name.clone()))
                                    .collect(),
                            }),
                        },
                    },
                )
            }
            None => push(t, skipped("email", SkipReason::NoEmail)),
        },
        Action::Zns { .. } => zns_plan(rule, a, c, user_id, t, push),
        Action::Notify { channel, text } => push(
            t,
            ActionPlan::Outbound {
                payload: Payload::Chat {
                    channel: channel.clone(),
                    text: text.render(c),
                    data: json!({
                        "rule_id": rule.id,
                        "user_id": user_id,
                        "display_name": c.display_name,
                    }),
                },
            },
        ),
        Action::Task {
            title,
            description,
            due_in,
        } => push(
            t,
            ActionPlan::Outbound {
                payload: Payload::Task {
                    title: title.render(c),
                    description: description
                        .as_ref()
                        .map(|d| d.render(c))
                        .unwrap_or_default(),
                    contact: Some(user_id.to_string()),
                    due_at: due_in.map(|d| crate::clock::to_utc(t + d).to_rfc3339()),
                },
            },
        ),
        Action::SetField { name, value } => push(
            t,
            ActionPlan::SetField {
                name: name.clone(),
                value: value.render(c),
            },
        ),
        Action::List { op, list, from } => push(
            t,
            ActionPlan::List {
                op: match op {
                    ListOp::Add => "add",
                    ListOp::Remove => "remove",
                    ListOp::Copy => "copy",
                    ListOp::Move => "move",
                },
                list: list.clone(),
                from: from.clone(),
            },
        ),
        Action::Handoff {
            team,
            advisor,
            deadline,
            priority,
            note,
        } => push(
            t,
            ActionPlan::Handoff {
                team: team.clone(),
                advisor: advisor.clone(),
                deadline_at: t + deadline,
                priority: *priority,
                note: note.as_ref().map(|n| n.render(c)),
            },
        ),
        _ => {}
    }
}

pub(super) fn skipped(action: &'static str, reason: SkipReason) -> ActionPlan {
    ActionPlan::Skipped { action, reason }
}

pub(super) fn recipient(
    to: Option<&crate::rules::template::Template>,
    default: Option<&str>,
    c: &Contact,
) -> Option<String> {
    match to {
        Some(t) => Some(t.render(c)),
        None => default.map(str::to_string),
    }
    .filter(|s| !s.trim().is_empty())
}

pub(super) fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!("<p>{}</p>", escaped.trim_end().replace('\n', "<br>\n"))
}

pub(super) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => in_tag = false,
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    // The text part is plain text: entities (escaped values among them) read as characters.
    crate::rules::template::html_unescape(out.trim())
}

/// A `send`: its variant for this contact, buttons, image; a promotion as Zalo's template.
fn send_plan(
    rule: &Rule,
    a: &Action,
    c: &Contact,
    user_id: &str,
    t: i64,
    variant: &std::cell::Cell<Option<String>>,
    push: &mut dyn FnMut(i64, ActionPlan),
) {
    let Action::Send {
        text,
        image,
        buttons,
        via,
        variants,
    } = a
    else {
        return;
    };
    let weights: Vec<u32> = variants.iter().map(|v| v.weight).collect();
    let chosen =
        zaloflow_core::variant::pick(&rule.id, user_id, &weights).and_then(|i| variants.get(i));
    let text = chosen.map_or(text, |v| &v.text).render(c);
    variant.set(chosen.map(|v| v.id.clone()));
    let buttons: Vec<_> = buttons
            .iter()
            .map(|b| {
                let title = b.title.render(c);
                match &b.action {
                    ButtonAction::Url(u) => json!({"title": title, "type": "oa.open.url", "payload": {"url": u.render(c)}}),
                    ButtonAction::Phone(p) => json!({"title": title, "type": "oa.open.phone", "payload": {"phone_code": p.render(c)}}),
                    ButtonAction::Query(q) => json!({"title": title, "type": "oa.query.show", "payload": q.render(c)}),
                }
            })
            .collect();
    let image = image.as_ref().map(|i| i.render(c));
    // A promotion is a template (Zalo refuses a bare text): banner, header, text,
    // buttons. Other messages carry an attachment only for an image or buttons.
    let (text, attachment) = if *via == crate::channels::ZaloKind::Promotion {
        let t = zaloflow_core::job::promotion_template(&text, image.as_deref(), buttons);
        (None, Some(t))
    } else {
        let attachment = (image.is_some() || !buttons.is_empty()).then(|| {
                let elements: Vec<_> = image
                    .iter()
                    .map(|url| json!({"media_type": "image", "url": url}))
                    .collect();
                json!({"type": "template", "payload": {"template_type": "media", "elements": elements, "buttons": buttons}})
            });
        (Some(text), attachment)
    };
    push(
        t,
        ActionPlan::Outbound {
            payload: Payload::Zalo {
                user_id: user_id.to_string(),
                kind: *via,
                text,
                attachment,
            },
        },
    );
}

/// A template message: by the contact's Zalo id, or by phone (skipped without one).
fn zns_plan(
    rule: &Rule,
    a: &Action,
    c: &Contact,
    user_id: &str,
    t: i64,
    push: &mut dyn FnMut(i64, ActionPlan),
) {
    let Action::Zns {
        template_id,
        data,
        phone,
        by_user,
        tag,
    } = a
    else {
        return;
    };
    let template_data: serde_json::Map<String, serde_json::Value> = data
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.render(c))))
        .collect();
    let payload = |phone: String, user_id: Option<String>| Payload::Zns {
        phone,
        template_id: template_id.clone(),
        template_data: serde_json::Value::Object(template_data.clone()),
        tracking_id: format!("{}:{}:{}", rule.id, c.user_id, t),
        user_id,
        tag: (*tag != 1).then_some(*tag),
    };
    if *by_user {
        push(
            t,
            ActionPlan::Outbound {
                payload: payload(String::new(), Some(user_id.to_string())),
            },
        )
    } else {
        match recipient(phone.as_ref(), c.phone.as_deref(), c) {
            Some(phone) => push(
                t,
                ActionPlan::Outbound {
                    payload: payload(phone, None),
                },
            ),
            None => push(t, skipped("zns", SkipReason::NoPhone)),
        }
    }
}

//! One handoff as a card of the board: who, what they wrote, the time left, who has it, and
//! the claim/resolve form. Everything a customer or an agent typed is escaped here.

use std::fmt::Write as _;

use rust_i18n::t;

use super::esc;
use crate::handoff::{self, clip, human_duration, local_time, Handoff};
use crate::i18n::{tr, Lang};
use crate::store::Contact;

/// How a card is drawn: the language, the time, the agent's remembered name, and whether it
/// carries the claim/resolve form.
pub(super) struct Card<'a> {
    pub lang: Lang,
    pub now: i64,
    pub tz: chrono_tz::Tz,
    pub agent: &'a str,
    pub with_form: bool,
}

impl Card<'_> {
    pub fn render(&self, h: &Handoff, contact: Option<&Contact>) -> String {
        let (lang, now) = (self.lang, self.now);
        let l = lang.code();
        let vip = contact.is_some_and(|c| c.tags.contains(crate::engine::VIP_TAG));
        let name = h
            .contact_name
            .clone()
            .or_else(|| contact.and_then(|c| c.display_name.clone()))
            .unwrap_or_else(|| t!("board.card.customer", locale = l, id = h.user_id).into_owned());
        let state = if h.status == handoff::RESOLVED {
            "done"
        } else if h.responded_at.is_some() {
            "answered"
        } else if now > h.deadline_at {
            "overdue"
        } else if h.deadline_at - now < 30 * 60_000 {
            "soon"
        } else {
            "ok"
        };
        let mut s = format!(
            "<li class=\"card {state}\" id=\"h{id}\">\n<div class=\"row\"><strong class=\"name\">{name}</strong>",
            id = h.id,
            name = esc(&name)
        );
        if vip {
            s.push_str("<span class=\"badge vip\">⭐ VIP</span>");
        }
        if h.priority > 0 {
            let p = handoff::priority_word(lang, h.priority);
            let _ = write!(
                s,
                "<span class=\"badge prio\">{}</span>",
                esc(&t!("board.card.priority", locale = l, p = p))
            );
        }
        let _ = writeln!(s, "<span class=\"id\">#{}</span></div>", h.id);
        let mut contact_line = vec![esc(&h.user_id)];
        if let Some(p) = contact.and_then(|c| c.phone.as_deref()) {
            contact_line.push(format!(
                "{} <a href=\"tel:+{1}\">{1}</a>",
                esc(&tr(lang, "board.card.phone")),
                esc(p)
            ));
        }
        let _ = writeln!(s, "<p class=\"contact\">{}</p>", contact_line.join(" · "));
        if let Some(t) = &h.first_text {
            let _ = writeln!(s, "<blockquote>{}</blockquote>", esc(&clip(t, 400)));
        }
        if h.messages > 1 {
            let more = t!("board.card.more", locale = l, n = h.messages - 1);
            let _ = writeln!(s, "<p class=\"more\">{}</p>", esc(&more));
        }
        let _ = writeln!(s, "<p class=\"due\">{}</p>", self.time(h));
        let _ = writeln!(s, "<p class=\"who\">{}</p>", self.who(h));
        if self.with_form && h.status != handoff::RESOLVED {
            let claim = if h.status == handoff::OPEN {
                format!(
                    "<button type=\"submit\" class=\"claim\">{}</button>",
                    esc(&tr(lang, "board.button.claim"))
                )
            } else {
                String::new()
            };
            let _ = write!(
                s,
                r#"<form method="post" action="/admin/board/handoffs/{id}/claim" class="act">
<input name="agent" value="{agent}" required maxlength="80" autocomplete="name" placeholder="{name}" aria-label="{name}">
{claim}<button type="submit" class="resolve" formaction="/admin/board/handoffs/{id}/resolve">{done}</button>
</form>
"#,
                id = h.id,
                agent = esc(self.agent),
                name = esc(&tr(lang, "board.your_name")),
                done = esc(&tr(lang, "board.button.resolve")),
            );
        }
        s.push_str("</li>\n");
        s
    }

    /// The card's time line: done, answered, overdue or the time left (escaped HTML).
    fn time(&self, h: &Handoff) -> String {
        let (lang, now, tz) = (self.lang, self.now, self.tz);
        let l = lang.code();
        let due = esc(&t!(
            "board.card.due",
            locale = l,
            at = local_time(h.deadline_at, tz)
        ));
        let at = |t: i64| esc(&t!("board.card.at", locale = l, at = local_time(t, tz)));
        match (h.status.as_str(), h.responded_at) {
            (handoff::RESOLVED, _) => format!(
                "<span class=\"left\">{}</span> · {} {}",
                esc(&tr(lang, "board.card.done_by")),
                esc(h.resolved_by.as_deref().unwrap_or("")),
                h.resolved_at.map(at).unwrap_or_default()
            ),
            (_, Some(t)) => {
                let key = match h.response_via.as_deref() {
                    Some(handoff::VIA_OA) => "board.card.replied_in_oa",
                    Some(handoff::VIA_CLAIM) => "board.card.claimed",
                    _ => "board.card.responded",
                };
                format!(
                    "<span class=\"left\">{}</span> {} · {due}",
                    esc(&tr(lang, key)),
                    at(t)
                )
            }
            (_, None) if now > h.deadline_at => {
                let d = human_duration(lang, now - h.deadline_at);
                let escalated = if h.escalation_level > 0 {
                    format!(" · {}", esc(&tr(lang, "board.card.escalated")))
                } else {
                    String::new()
                };
                format!(
                    "<span class=\"left\">{}</span> · {due}{escalated}",
                    esc(&t!("board.card.overdue", locale = l, d = d))
                )
            }
            (_, None) => {
                let d = human_duration(lang, h.deadline_at - now);
                format!(
                    "<span class=\"left\">{}</span> · {due}",
                    esc(&t!("board.card.left", locale = l, d = d))
                )
            }
        }
    }

    /// Who has it: the agent, the OA admin who replied, the team, the advisor (escaped HTML).
    fn who(&self, h: &Handoff) -> String {
        let (lang, tz) = (self.lang, self.tz);
        let l = lang.code();
        let mut who = Vec::new();
        if let Some(c) = &h.claimed_by {
            let since = h
                .claimed_at
                .map(|t| {
                    let at = local_time(t, tz);
                    format!(" {}", esc(&t!("board.card.since", locale = l, at = at)))
                })
                .unwrap_or_default();
            who.push(format!(
                "{} <strong>{}</strong>{since}",
                esc(&tr(lang, "board.card.handling")),
                esc(c)
            ));
        } else if h.status != handoff::RESOLVED {
            who.push(esc(&tr(lang, "board.card.unclaimed")));
        }
        if let (Some(by), Some(handoff::VIA_OA)) = (&h.responded_by, h.response_via.as_deref()) {
            who.push(esc(&t!("board.card.replied_by", locale = l, name = by)));
        }
        if let Some(t) = &h.team {
            who.push(esc(&t!("board.card.team", locale = l, name = t)));
        }
        if let Some(a) = &h.advisor {
            who.push(esc(&t!("board.card.advisor", locale = l, name = a)));
        }
        who.join(" · ")
    }
}

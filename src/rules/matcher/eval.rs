//! Evaluating the rules for an input: candidates, triggers, conditions, limits, cascades.

use super::*;

impl RuleSet {
    /// Evaluates one stimulus (no cascade): which rules fire, in order, and what each does.
    pub fn evaluate(&self, input: &EvalInput) -> Evaluation {
        self.evaluate_at_depth(input, 0)
    }

    pub(super) fn candidates<'s>(
        &'s self,
        input: &EvalInput,
        judge: &mut Judge,
    ) -> (Cow<'s, [Entry]>, String) {
        let ix = &self.index;
        let simple = |k: Kind| Cow::Borrowed(ix.simple[k as usize].as_slice());
        let lookup = |m: &'s HashMap<String, Vec<Entry>>, k: &str| {
            Cow::Borrowed(m.get(k).map(Vec::as_slice).unwrap_or(&[]))
        };
        match input.stimulus {
            Stimulus::Event(e) => match &e.kind {
                EventKind::UserMessage { text: t, .. } => {
                    let t = t.as_deref().unwrap_or("");
                    let folded = text::fold(t, Accents::Required);
                    let bare = text::fold(&folded, Accents::Optional);
                    let eq = ix.message_equals.get(&bare);
                    let hits = ix.contains_set.as_ref().map(|set| set.matches(&bare));
                    let has_hits = hits.as_ref().is_some_and(|h| h.matched_any());
                    let c = if eq.is_none() && !has_hits {
                        Cow::Borrowed(ix.message.as_slice())
                    } else {
                        let mut c = ix.message.clone();
                        if let Some(eq) = eq {
                            c.extend_from_slice(eq);
                        }
                        if let Some(hits) = hits {
                            c.extend(hits.iter().map(|i| ix.contains_entries[i]));
                        }
                        c.sort_unstable();
                        c.dedup();
                        Cow::Owned(c)
                    };
                    judge.text = Some((folded, bare));
                    (c, "message".into())
                }
                EventKind::Follow { .. } => (simple(Kind::Follow), "follow".into()),
                EventKind::Unfollow { .. } => (simple(Kind::Unfollow), "unfollow".into()),
                EventKind::ChatNow { .. } => (simple(Kind::ChatNow), "chat_now".into()),
                EventKind::SubmitInfo { .. } => {
                    (simple(Kind::InfoSubmitted), "info_submitted".into())
                }
                // The OA's own sends never start message rules; a person's reply from the
                // OA console starts `oa_reply` rules.
                EventKind::OaMessage {
                    admin_id: Some(_), ..
                } => (simple(Kind::OaReply), "oa_reply".into()),
                EventKind::TagAdded { tag, .. } => {
                    (lookup(&ix.tag_added, tag), format!("tag_added {tag}"))
                }
                EventKind::TagRemoved { tag, .. } => {
                    (lookup(&ix.tag_removed, tag), format!("tag_removed {tag}"))
                }
                // A registration on a form starts that form's `form_submitted` rules.
                EventKind::FormSubmitted { form, .. } => {
                    (lookup(&ix.form, form), format!("form_submitted {form}"))
                }
                _ => (Cow::Borrowed(&[][..]), e.name.clone()),
            },
            Stimulus::TagChanged { tag, added: true } => (
                lookup(&ix.tag_added, tag),
                format!("tag_added {tag} (by a rule)"),
            ),
            Stimulus::TagChanged { tag, added: false } => (
                lookup(&ix.tag_removed, tag),
                format!("tag_removed {tag} (by a rule)"),
            ),
            Stimulus::Schedule { rule_id } => {
                let c = ix.simple[Kind::Schedule as usize]
                    .iter()
                    .copied()
                    .filter(|(r, _)| self.rules[*r as usize].id == rule_id)
                    .collect();
                (Cow::Owned(c), format!("schedule {rule_id}"))
            }
            Stimulus::Inactive => (simple(Kind::Inactive), "inactive".into()),
            Stimulus::SpecialDay { field } => {
                (simple(Kind::SpecialDay), format!("special_day {field}"))
            }
            Stimulus::FieldChanged { field, .. } => {
                (simple(Kind::FieldChanged), format!("field_changed {field}"))
            }
            Stimulus::FormSubmitted { form } => {
                (lookup(&ix.form, form), format!("form_submitted {form}"))
            }
            Stimulus::EmailOpened { .. } => (simple(Kind::EmailOpened), "email_opened".into()),
            Stimulus::EmailNotOpened { .. } => {
                (simple(Kind::EmailNotOpened), "email_not_opened".into())
            }
            Stimulus::EmailClicked { .. } => (simple(Kind::EmailClicked), "email_clicked".into()),
            Stimulus::AfterStep { campaign, step } => (
                simple(Kind::AfterStep),
                format!("after_step {campaign}/{step}"),
            ),
        }
    }

    pub(super) fn trigger_matches(
        &self,
        t: &Trigger,
        input: &EvalInput,
        judge: &mut Judge,
    ) -> bool {
        match (t, input.stimulus) {
            (Trigger::Message(f), Stimulus::Event(e)) => {
                let EventKind::UserMessage {
                    text: raw,
                    attachments,
                    ..
                } = &e.kind
                else {
                    return false;
                };
                let (folded, bare) = judge.text.as_ref().map_or(("", ""), |(f, b)| (f, b));
                let optional = f.accents == Accents::Optional;
                let t = if optional { bare } else { folded };
                // Keywords are kept as written (folded with their diacritics).
                fn keyword(w: &str, optional: bool) -> Cow<'_, str> {
                    if optional {
                        Cow::Owned(text::fold(w, Accents::Optional))
                    } else {
                        Cow::Borrowed(w)
                    }
                }
                let k = |w| keyword(w, optional);
                let words = f.contains.iter().any(|w| text::contains_word(t, &k(w)));
                let inside = f.contains_text.iter().any(|w| t.contains(&*k(w)));
                (f.equals.is_empty() || f.equals.iter().any(|s| k(s) == t))
                    && ((f.contains.is_empty() && f.contains_text.is_empty()) || words || inside)
                    && f.regex
                        .as_ref()
                        .is_none_or(|r| r.is_match(raw.as_deref().unwrap_or("")))
                    && f.attachment.as_deref().is_none_or(|k| {
                        if k == "any" {
                            !attachments.is_empty()
                        } else {
                            attachments.iter().any(|a| a.kind == k)
                        }
                    })
            }
            (Trigger::Inactive { min_days, max_days }, Stimulus::Inactive) => {
                match judge.silence_days() {
                    Some(d) => {
                        d >= i64::from(*min_days) && max_days.is_none_or(|m| d <= i64::from(m))
                    }
                    None => false,
                }
            }
            (
                Trigger::SpecialDay {
                    on: SpecialDate::Field(field),
                    days_before,
                },
                Stimulus::SpecialDay { field: f },
            ) => {
                field == f
                    && field_value(input.contact, field).is_some_and(|v| {
                        let today = judge.local().date;
                        is_special_day(v, today, *days_before)
                    })
            }
            (
                Trigger::SpecialDay {
                    on: SpecialDate::Date { day, month },
                    days_before,
                },
                Stimulus::SpecialDay { .. },
            ) => {
                let today = judge.local().date;
                is_special_day(&format!("{day}/{month}"), today, *days_before)
            }
            (Trigger::FieldChanged { field, to }, Stimulus::FieldChanged { field: f, value }) => {
                field == f
                    && to.as_deref().is_none_or(|want| {
                        value.is_some_and(|v| v.trim().to_lowercase() == want.trim().to_lowercase())
                    })
            }
            (
                Trigger::EmailOpened {
                    email,
                    machine_opens,
                },
                Stimulus::EmailOpened { email: e, machine },
            ) => (!machine || *machine_opens) && email.as_deref().is_none_or(|x| x == e),
            (
                Trigger::EmailNotOpened {
                    within_hours,
                    email,
                    ..
                },
                Stimulus::EmailNotOpened { email: e, sent_at },
            ) => {
                email.as_deref().is_none_or(|x| x == e)
                    && input.at >= sent_at + i64::from(*within_hours) * HOUR
            }
            (
                Trigger::EmailClicked { link, email },
                Stimulus::EmailClicked { email: e, link: l },
            ) => email.as_deref().is_none_or(|x| x == e) && link.as_deref().is_none_or(|x| x == l),
            (
                Trigger::AfterStep { campaign, step },
                Stimulus::AfterStep {
                    campaign: c,
                    step: s,
                },
            ) => campaign == c && step == s,
            // Indexed exactly: being a candidate is the match.
            (
                Trigger::Follow
                | Trigger::Unfollow
                | Trigger::ChatNow
                | Trigger::InfoSubmitted
                | Trigger::OaReply
                | Trigger::TagAdded(_)
                | Trigger::TagRemoved(_)
                | Trigger::FormSubmitted(_)
                | Trigger::Schedule(_),
                _,
            ) => true,
            _ => false,
        }
    }

    pub(super) fn evaluate_at_depth(&self, input: &EvalInput, depth: u8) -> Evaluation {
        let user_id = input.contact.user_id.as_str();
        let mut judge = Judge {
            input,
            local: None,
            text: None,
        };
        let mut out = Evaluation {
            user_id: user_id.to_string(),
            ..Evaluation::default()
        };
        let (cands, cause) = self.candidates(input, &mut judge);
        let mut last_rule = u32::MAX;
        for &(ri, ti) in cands.iter() {
            if ri == last_rule {
                continue;
            }
            let rule = &self.rules[ri as usize];
            if !self.trigger_matches(&rule.triggers[ti as usize], input, &mut judge) {
                continue;
            }
            // A follow-up's weekdays and hours move its sends (engine), they do not stop it.
            let follow_up = crate::rules::campaign::is_follow_up(rule);
            if !rule
                .conditions
                .iter()
                .filter(|c| !(follow_up && crate::rules::campaign::is_window(c)))
                .all(|c| judge.holds(c))
            {
                continue;
            }
            // Scheduler scans come back every tick: an `inactive` rule runs at most once per
            // silence and a `special_day` rule once per day even without `once_per`.
            let once_per = rule.once_per.or(match input.stimulus {
                Stimulus::Inactive => Some(OncePer::Silence),
                Stimulus::SpecialDay { .. } => Some(OncePer::Day),
                _ => None,
            });
            let period_key = match once_per {
                Some(OncePer::Day) => format!("day:{}", judge.local().date),
                Some(OncePer::Period) => judge.period_key(&rule.conditions),
                Some(OncePer::Silence) => match input.previous_interaction {
                    Some(p) => format!("silence:{p}"),
                    None => "silence:none".into(),
                },
                Some(OncePer::Ever) => "ever".into(),
                None => format!("at:{}", input.at),
            };
            // A rule held back by its own limit does not run; when it ends with `stop` it still
            // keeps the rules below it from running (an SMS sent earlier in this silence stays
            // instead of a promotion).
            let limited = (once_per.is_some()
                && input.history.fired(user_id, &rule.id, &period_key))
                || rule.cooldown.is_some_and(|cd| {
                    input
                        .history
                        .last_fired(user_id, &rule.id)
                        .is_some_and(|last| input.at - last < cd)
                });
            if limited {
                if rule.stops() {
                    break;
                }
                continue;
            }
            last_rule = ri;
            let actions = plan(rule, input);
            let stopped = rule.stops();
            out.fired.push(Fired {
                rule_id: rule.id.clone(),
                period_key,
                depth,
                cause: cause.clone(),
                actions,
                stopped,
            });
            if stopped {
                break;
            }
        }
        out
    }

    /// Evaluates the stimulus and then, to at most [`CASCADE_DEPTH`] levels, the tags that
    /// fired rules add or remove right away (not after a `wait`): each becomes a synthetic
    /// `tag_added` / `tag_removed` event for this contact. Tags already in the wanted state
    /// cause nothing, and a rule fires at most once per period key across the cascade.
    pub fn evaluate_cascade(&self, input: &EvalInput) -> Evaluation {
        let mut out = self.evaluate_at_depth(input, 0);
        let mut contact = input.contact.clone();
        let mut frontier = tag_changes(&out.fired, input.at, &mut contact);
        let mut depth = 1u8;
        while !frontier.is_empty() {
            if depth > CASCADE_DEPTH {
                out.cascade_truncated = true;
                break;
            }
            let snapshot = contact.clone();
            let overlay = Overlay {
                base: input.history,
                fired: &out.fired,
                user_id: &out.user_id,
                at: input.at,
            };
            let mut level = Vec::new();
            for (tag, added) in &frontier {
                let sub = EvalInput {
                    stimulus: Stimulus::TagChanged { tag, added: *added },
                    contact: &snapshot,
                    history: &overlay,
                    ..*input
                };
                level.extend(self.evaluate_at_depth(&sub, depth).fired);
            }
            frontier = tag_changes(&level, input.at, &mut contact);
            out.fired.extend(level);
            depth += 1;
        }
        out
    }

    /// The `schedule` rules and their cron patterns (for the scheduler).
    pub fn scheduled(&self) -> impl Iterator<Item = (&Rule, &Cron)> {
        self.index.simple[Kind::Schedule as usize]
            .iter()
            .filter_map(|(r, t)| {
                let rule = &self.rules[*r as usize];
                match &rule.triggers[*t as usize] {
                    Trigger::Schedule(c) => Some((rule, &**c)),
                    _ => None,
                }
            })
    }

    /// The enabled rules with a trigger of this word (e.g. `inactive`, `special_day`), for
    /// the scheduler's scans.
    pub fn rules_with_trigger(&self, word: &str) -> impl Iterator<Item = (&Rule, &Trigger)> {
        let word = word.to_string();
        self.rules
            .iter()
            .filter(|r| r.enabled)
            .flat_map(|r| r.triggers.iter().map(move |t| (r, t)))
            .filter(move |(_, t)| t.name() == word)
    }
}

/// The history as seen inside one cascade: what the base says plus what already fired.
pub(super) struct Overlay<'a> {
    pub(super) base: &'a dyn FireHistory,
    pub(super) fired: &'a [Fired],
    pub(super) user_id: &'a str,
    pub(super) at: i64,
}

impl FireHistory for Overlay<'_> {
    fn fired(&self, user_id: &str, rule_id: &str, period_key: &str) -> bool {
        (user_id == self.user_id
            && self
                .fired
                .iter()
                .any(|f| f.rule_id == rule_id && f.period_key == period_key))
            || self.base.fired(user_id, rule_id, period_key)
    }
    fn last_fired(&self, user_id: &str, rule_id: &str) -> Option<i64> {
        if user_id == self.user_id && self.fired.iter().any(|f| f.rule_id == rule_id) {
            return Some(self.at);
        }
        self.base.last_fired(user_id, rule_id)
    }
}

/// The immediate tag changes of these firings that change the contact, applied to it.
pub(super) fn tag_changes(fired: &[Fired], at: i64, contact: &mut Contact) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for f in fired {
        for a in &f.actions {
            if let (ActionPlan::Tag { tag, add }, true) = (&a.action, a.run_at == at) {
                let changed = if *add {
                    contact.tags.insert(tag.clone())
                } else {
                    contact.tags.remove(tag)
                };
                if changed {
                    out.push((tag.clone(), *add));
                }
            }
        }
    }
    out
}

/// The next instant after `t` whose local clock reads `minute` (minutes from midnight).
pub(super) fn next_clock(t: i64, minute: u16, tz: chrono_tz::Tz) -> i64 {
    let l = local(t, tz);
    for add_days in 0..3u64 {
        let date = l.date + chrono::Days::new(add_days);
        let Some(naive) = date.and_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)
        else {
            continue;
        };
        // A clock time skipped by a DST change counts from the first instant after it.
        let cand = match tz.from_local_datetime(&naive) {
            chrono::LocalResult::Single(d) => d.timestamp_millis(),
            chrono::LocalResult::Ambiguous(d, _) => d.timestamp_millis(),
            chrono::LocalResult::None => continue,
        };
        if cand > t {
            return cand;
        }
    }
    t + DAY
}

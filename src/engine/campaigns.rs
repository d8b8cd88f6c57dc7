//! Campaigns on events: entering (follow, form, tag), leaving (unfollow, goal), running a step.

use super::*;

impl Engine {
    /// What an event means for the contact's campaigns: entering (follow, form, tag — also a
    /// tag a rule just added), leaving (unfollow, goal reached).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn campaigns_on_event(
        &self,
        user: &str,
        event: &Event,
        at: i64,
        source: &str,
        state: &mut BatchState,
        effects: &mut Effects,
        rule_changes_from: usize,
    ) {
        let rules = self.rule_set();
        match &event.kind {
            EventKind::Unfollow { .. } => {
                let active: Vec<String> = state
                    .campaigns
                    .get(user)
                    .into_iter()
                    .flatten()
                    .filter(|m| m.is_active())
                    .map(|m| m.campaign.clone())
                    .collect();
                for c in active {
                    self.leave(user, &c, "unfollowed the OA", state, effects);
                }
                return;
            }
            EventKind::Follow { .. } => {
                for c in rules.campaigns() {
                    if c.enters_on(&EntryTrigger::Follow) {
                        self.enter_campaign(user, c, at, false, source, state, effects);
                    }
                }
            }
            EventKind::FormSubmitted { form, repeat, .. } => {
                let t = EntryTrigger::FormSubmitted(form.clone());
                for c in rules.campaigns() {
                    if c.enters_on(&t) {
                        self.enter_campaign(user, c, at, *repeat, source, state, effects);
                    }
                }
            }
            EventKind::TagAdded { tag, .. } => {
                self.enter_on_tags(user, std::slice::from_ref(tag), at, source, state, effects);
            }
            _ => {}
        }
        // Tags the rules added just now.
        let added: Vec<String> = effects.contacts[rule_changes_from.min(effects.contacts.len())..]
            .iter()
            .filter(|c| c.user_id == user)
            .flat_map(|c| c.tags_add.iter().cloned())
            .collect();
        if !added.is_empty() {
            self.enter_on_tags(user, &added, at, source, state, effects);
        }
        self.check_goals(user, Stimulus::Event(event), at, state, effects);
    }

    /// Enters the campaigns that start on these tags.
    pub(super) fn enter_on_tags(
        &self,
        user: &str,
        tags: &[String],
        at: i64,
        source: &str,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        let rules = self.rule_set();
        for tag in tags {
            let t = EntryTrigger::TagAdded(tag.clone());
            for c in rules.campaigns() {
                if c.enters_on(&t) {
                    self.enter_campaign(user, c, at, false, source, state, effects);
                }
            }
        }
    }

    /// Members for whom their campaign's goal (`exit_if`) holds now leave it.
    pub fn check_goals(
        &self,
        user: &str,
        stimulus: Stimulus<'_>,
        at: i64,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        let rules = self.rule_set();
        let active: Vec<String> = state
            .campaigns
            .get(user)
            .into_iter()
            .flatten()
            .filter(|m| m.is_active())
            .map(|m| m.campaign.clone())
            .collect();
        for id in active {
            let Some(c) = rules.campaign(&id) else {
                continue;
            };
            if c.exit_if.is_empty() {
                continue;
            }
            let reached = {
                let contact = state.contacts.entry(user.to_string()).or_default().clone();
                let lists = state.lists.get(user).cloned().unwrap_or_default();
                let input = EvalInput::new(stimulus, &contact, at, self.tz, &state.history)
                    .with_lists(&lists);
                crate::rules::matcher::conditions_hold(&c.exit_if, &input)
            };
            if reached {
                self.leave(user, &id, "reached the goal (exit_if)", state, effects);
            }
        }
    }

    pub(super) fn leave(
        &self,
        user: &str,
        campaign: &str,
        reason: &str,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        tracing::info!(campaign, user, reason, "left the campaign");
        metrics::counter!("zaloflow_campaign_left_total").increment(1);
        let ch = CampaignChange::Leave {
            campaign: campaign.to_string(),
            contact_id: user.to_string(),
            reason: reason.to_string(),
        };
        note_member(state, &ch);
        effects.campaigns.push(ch);
    }

    /// Enters `user` into `campaign` at `at` and runs the steps already due (an immediate first
    /// step goes out with the event). A member is not entered again; a repeat registration
    /// (`repeat`) of a member runs the first step again when the campaign allows it (II.2) and
    /// is otherwise a duplicate that runs nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn enter_campaign(
        &self,
        user: &str,
        campaign: &Campaign,
        at: i64,
        repeat: bool,
        source: &str,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        if !campaign.enabled || campaign.steps.is_empty() {
            return;
        }
        let member = state
            .campaigns
            .get(user)
            .and_then(|ms| ms.iter().find(|m| m.campaign == campaign.id))
            .cloned();
        if let Some(m) = member {
            if !repeat {
                return;
            }
            if !campaign.repeat_registration {
                tracing::info!(campaign = %campaign.id, user, "repeat registration: a duplicate, nothing runs (repeat_registration: false)");
                metrics::counter!("zaloflow_campaign_duplicates_total").increment(1);
                return;
            }
            // II.2: the first step runs again; the contact stays one member (counted).
            let ch = CampaignChange::Repeat {
                campaign: campaign.id.clone(),
                contact_id: user.to_string(),
            };
            note_member(state, &ch);
            effects.campaigns.push(ch);
            let mark = crate::report::registration_mark(&campaign.id);
            let last = state.history.last_fired(user, &mark);
            if last.is_some_and(|t| at - t < campaign.repeat_cooldown) {
                tracing::info!(campaign = %campaign.id, user, "repeat registration within repeat_cooldown: nothing runs");
                metrics::counter!("zaloflow_campaign_duplicates_total").increment(1);
                return;
            }
            self.mark_registration(user, &campaign.id, at, state, effects);
            let due = campaign.due(0, at, at, self.tz);
            let key = format!("repeat{}", m.entries + 1);
            let step = self.run_step(user, campaign, 0, &key, due, source, state);
            effects.extend(step.unwrap_or_default());
            return;
        }
        tracing::info!(campaign = %campaign.id, user, "entered the campaign");
        metrics::counter!("zaloflow_campaign_entered_total").increment(1);
        if repeat || campaign.repeat_registration {
            self.mark_registration(user, &campaign.id, at, state, effects);
        }
        let mut next = 0usize;
        let mut due = campaign.due(0, at, at, self.tz);
        while next < campaign.steps.len() && due <= at {
            let step = self.run_step(user, campaign, next, &at.to_string(), at, source, state);
            effects.extend(step.unwrap_or_default());
            next += 1;
            if next < campaign.steps.len() {
                due = campaign.due(next, at, due, self.tz);
            }
        }
        let ch = CampaignChange::Enter {
            campaign: campaign.id.clone(),
            contact_id: user.to_string(),
            entered_at: at,
            step: next as i64,
            step_id: campaign.steps.get(next).map(|s| s.id.clone()),
            next_at: (next < campaign.steps.len()).then_some(due),
        };
        note_member(state, &ch);
        effects.campaigns.push(ch);
    }

    /// Records that `user` ran `campaign`'s first step on a registration at `at`.
    pub(super) fn mark_registration(
        &self,
        user: &str,
        campaign: &str,
        at: i64,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        let mark = crate::report::registration_mark(campaign);
        let period = format!("at:{at}");
        state.history.record(user, &mark, &period, at);
        effects.fires.push(RuleFire {
            user_id: user.to_string(),
            rule_id: mark,
            period_key: period,
            fired_at: at,
        });
    }

    /// Runs step `i` of `campaign` for `user` at `at`: its actions (jobs keyed
    /// `campaign:CAMPAIGN:USER:RUN:STEP:N`, so a run is enqueued once), then the rules that
    /// react to it (`after_step`, tags it added). `None` when the step's `if:` does not hold
    /// (the step is skipped). `run` names this run of the membership (its entry time).
    #[allow(clippy::too_many_arguments)]
    pub fn run_step(
        &self,
        user: &str,
        campaign: &Campaign,
        i: usize,
        run: &str,
        at: i64,
        source: &str,
        state: &mut BatchState,
    ) -> Option<Effects> {
        let step = &campaign.steps[i];
        let step_key = campaign.step_key(i);
        let (holds, actions) = {
            let contact = state.contacts.entry(user.to_string()).or_default().clone();
            let lists = state.lists.get(user).cloned().unwrap_or_default();
            let input = EvalInput::new(
                Stimulus::AfterStep {
                    campaign: &campaign.id,
                    step: &step.id,
                },
                &contact,
                at,
                self.tz,
                &state.history,
            )
            .with_lists(&lists);
            let holds = crate::rules::matcher::conditions_hold(&step.rule.conditions, &input);
            let actions = if holds {
                crate::rules::matcher::plan_actions(&step.rule, &input)
            } else {
                Vec::new()
            };
            (holds, actions)
        };
        if !holds {
            tracing::info!(step = %step_key, user, "campaign step skipped: its conditions do not hold");
            return None;
        }
        metrics::counter!("zaloflow_campaign_steps_total").increment(1);
        let eval = Evaluation {
            user_id: user.to_string(),
            fired: vec![Fired {
                rule_id: step_key.clone(),
                period_key: format!("run:{run}"),
                depth: 0,
                cause: format!("campaign {} step {}", campaign.id, step.number),
                actions,
                stopped: false,
            }],
            cascade_truncated: false,
        };
        let mut effects = Effects::default();
        self.plan(user, &eval, at, source, state, &mut effects);
        // A step has no limits to keep: its membership row records its progress. Reports
        // still count that it ran.
        for f in effects.fires.drain(..) {
            effects.outcomes.push(crate::report::OutcomeSignal::Fired {
                rule_id: f.rule_id,
                at: f.fired_at,
            });
        }
        for (n, job) in effects.jobs.iter_mut().enumerate() {
            job.dedupe_key = Some(format!(
                "campaign:{}:{user}:{run}:{}:{n}",
                campaign.id, step.id
            ));
        }
        // Tags the step added or removed start their rules (and campaigns).
        let tag_changes: Vec<(String, bool)> = effects
            .contacts
            .iter()
            .flat_map(|c| {
                c.tags_add
                    .iter()
                    .map(|t| (t.clone(), true))
                    .chain(c.tags_remove.iter().map(|t| (t.clone(), false)))
            })
            .collect();
        for (tag, added) in &tag_changes {
            let more = self.stimulate(
                user,
                Stimulus::TagChanged { tag, added: *added },
                at,
                source,
                state,
            );
            effects.extend(more);
        }
        // I.5: rules that run beside the campaign after this step.
        let more = self.stimulate(
            user,
            Stimulus::AfterStep {
                campaign: &campaign.id,
                step: &step.id,
            },
            at,
            source,
            state,
        );
        effects.extend(more);
        Some(effects)
    }
}

/// Keeps the batch's view of memberships in step with a change.
pub fn note_member(state: &mut BatchState, ch: &CampaignChange) {
    match ch {
        CampaignChange::Enter {
            campaign,
            contact_id,
            entered_at,
            step,
            step_id,
            next_at,
        } => {
            let ms = state.campaigns.entry(contact_id.clone()).or_default();
            if !ms.iter().any(|m| m.campaign == *campaign) {
                ms.push(CampaignMember {
                    campaign: campaign.clone(),
                    contact_id: contact_id.clone(),
                    entered_at: *entered_at,
                    step: *step,
                    step_id: step_id.clone(),
                    next_at: *next_at,
                    status: if next_at.is_some() { "active" } else { "done" }.into(),
                    entries: 1,
                    left_reason: None,
                });
            }
        }
        CampaignChange::Repeat {
            campaign,
            contact_id,
        } => {
            for m in state.campaigns.entry(contact_id.clone()).or_default() {
                if m.campaign == *campaign {
                    m.entries += 1;
                }
            }
        }
        CampaignChange::Advance {
            campaign,
            contact_id,
            from_step,
            step,
            step_id,
            next_at,
        } => {
            for m in state.campaigns.entry(contact_id.clone()).or_default() {
                if m.campaign == *campaign
                    && m.is_active()
                    && m.step_id.as_deref() == Some(from_step.as_str())
                {
                    m.step = *step;
                    m.step_id = step_id.clone();
                    m.next_at = *next_at;
                    if next_at.is_none() {
                        m.status = "done".into();
                    }
                }
            }
        }
        CampaignChange::Leave {
            campaign,
            contact_id,
            reason,
        } => {
            for m in state.campaigns.entry(contact_id.clone()).or_default() {
                if m.campaign == *campaign && m.is_active() {
                    m.status = "left".into();
                    m.next_at = None;
                    m.left_reason = Some(reason.clone());
                }
            }
        }
    }
}

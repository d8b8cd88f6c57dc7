//! The processing pipeline: an event (or a scheduler stimulus) and the current state of its
//! contacts in, the effects to apply out — plain code, no I/O. The store applies the effects
//! atomically with marking the event processed: contact changes, outbox jobs, list operations,
//! and the rule firings that keep limits (once per period, cooldowns) honest.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::channels::{Payload, ZaloKind};
use crate::handoff::{self, HandoffChange, HandoffMessage, HandoffPolicy, HandoffRequest};
use crate::rules::{
    ActionPlan, Campaign, EntryTrigger, EvalInput, Evaluation, FireHistory, Fired, RuleSet,
    RuleWatcher, Stimulus,
};
use crate::store::{
    CampaignChange, CampaignMember, Contact, ContactChange, Effects, ListChange, NewJob, RuleFire,
};
use crate::zalo::event::{Event, EventKind};

/// Zalo refuses customer-service messages this long after the user's last interaction (-230).
pub const CS_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
/// Jobs of contacts tagged `vip_customer` go first.
pub const VIP_TAG: &str = "vip_customer";
pub const VIP_PRIORITY: i32 = 10;

/// What the engine knows while it works through a batch: the contacts concerned (updated as
/// events are applied), their rule firings, their lists.
#[derive(Debug, Default, Clone)]
pub struct BatchState {
    pub contacts: HashMap<String, Contact>,
    pub history: History,
    pub lists: HashMap<String, BTreeSet<String>>,
    /// Campaign memberships of the contacts (loaded when the rules have campaigns).
    pub campaigns: HashMap<String, Vec<CampaignMember>>,
    /// What sent the emails that opens and clicks in the batch refer to: outbox job id ->
    /// rule id or `CAMPAIGN/STEP`.
    pub emails: HashMap<i64, String>,
    /// The customer message being processed, while its rules run (what a handoff is about).
    pub cause: Option<HandoffMessage>,
}

/// The latest firing of each (contact, rule): what every limit needs.
#[derive(Debug, Default, Clone)]
pub struct History {
    latest: HashMap<(String, String), (String, i64)>,
}

impl History {
    pub fn from_fires(fires: Vec<RuleFire>) -> History {
        let mut h = History::default();
        for f in fires {
            h.record(&f.user_id, &f.rule_id, &f.period_key, f.fired_at);
        }
        h
    }

    pub fn record(&mut self, user_id: &str, rule_id: &str, period_key: &str, at: i64) {
        self.latest.insert(
            (user_id.to_string(), rule_id.to_string()),
            (period_key.to_string(), at),
        );
    }
}

impl FireHistory for History {
    fn fired(&self, user_id: &str, rule_id: &str, period_key: &str) -> bool {
        self.latest
            .get(&(user_id.to_string(), rule_id.to_string()))
            .is_some_and(|(k, _)| k == period_key)
    }

    fn last_fired(&self, user_id: &str, rule_id: &str) -> Option<i64> {
        self.latest
            .get(&(user_id.to_string(), rule_id.to_string()))
            .map(|(_, at)| *at)
    }
}

/// Turns events into effects with the running rules.
#[derive(Clone)]
pub struct Engine {
    rules: Option<Arc<RuleWatcher>>,
    fixed: Option<Arc<RuleSet>>,
    tz: chrono_tz::Tz,
    handoffs: Arc<HandoffPolicy>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rule_set().len())
            .field("tz", &self.tz)
            .finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    /// No rules: events only update contacts.
    pub fn new() -> Self {
        Engine {
            rules: None,
            fixed: None,
            tz: chrono_tz::Asia::Ho_Chi_Minh,
            handoffs: Arc::default(),
        }
    }

    /// The rules the watcher holds (hot reload picks up changes between batches).
    pub fn with_rules(watcher: Arc<RuleWatcher>, tz: chrono_tz::Tz) -> Self {
        Engine {
            rules: Some(watcher),
            fixed: None,
            tz,
            handoffs: Arc::new(HandoffPolicy {
                tz,
                ..Default::default()
            }),
        }
    }

    /// A fixed rule set (tests, simulate, benches).
    pub fn with_rule_set(set: Arc<RuleSet>, tz: chrono_tz::Tz) -> Self {
        Engine {
            rules: None,
            fixed: Some(set),
            tz,
            handoffs: Arc::new(HandoffPolicy {
                tz,
                ..Default::default()
            }),
        }
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// Where the agents' board is, working hours and chat channels, for handoffs.
    pub fn with_handoff_policy(mut self, policy: HandoffPolicy) -> Self {
        self.handoffs = Arc::new(policy);
        self
    }

    pub fn rule_set(&self) -> Arc<RuleSet> {
        if let Some(w) = &self.rules {
            w.current()
        } else if let Some(s) = &self.fixed {
            s.clone()
        } else {
            Arc::new(RuleSet::empty())
        }
    }

    /// Processes one event at `at` (the event's own time). `state` holds every contact the
    /// event concerns and is updated in place, so the next event of the same user in a batch
    /// sees this one's changes. `source` names the cause on the jobs (`inbox:42`).
    pub fn process(&self, event: &Event, at: i64, source: &str, state: &mut BatchState) -> Effects {
        let rules = self.rule_set();
        let changes = contact_changes(event, at);
        let mut previous: HashMap<String, Option<i64>> = HashMap::new();
        for ch in &changes {
            let c = state.contacts.entry(ch.user_id.clone()).or_default();
            previous
                .entry(ch.user_id.clone())
                .or_insert(c.last_interaction);
            ch.apply_to(c);
        }
        let mut effects = Effects {
            contacts: changes,
            ..Effects::default()
        };
        let signal = handoff_signal(event, at);
        state.cause = match &signal {
            Some(HandoffChange::Message { message, .. }) => Some(message.clone()),
            _ => None,
        };
        if !(rules.is_empty() && rules.campaigns().is_empty()) {
            for user in evaluated_users(event) {
                let prev = previous.get(&user).copied().flatten();
                // Opens and clicks start the email rules of the email they belong to; an open by a
                // prefetcher or scanner starts nothing (it is not a person reading).
                let email_name =
                    |job_id: &i64| state.emails.get(job_id).cloned().unwrap_or_default();
                let (email, link) = match &event.kind {
                    EventKind::EmailOpened {
                        job_id,
                        prefetch: false,
                        ..
                    } => (Some(email_name(job_id)), None),
                    EventKind::EmailClicked {
                        job_id, url, link, ..
                    } => (
                        Some(email_name(job_id)),
                        Some(link.clone().unwrap_or_else(|| url.clone())),
                    ),
                    _ => (None, None),
                };
                let stimulus = match (&event.kind, &email, &link) {
                    (EventKind::EmailOpened { prefetch: true, .. }, _, _) => None,
                    (EventKind::EmailOpened { .. }, Some(email), _) => {
                        Some(Stimulus::EmailOpened { email })
                    }
                    (EventKind::EmailClicked { .. }, Some(email), Some(link)) => {
                        Some(Stimulus::EmailClicked { email, link })
                    }
                    _ => Some(Stimulus::Event(event)),
                };
                let tags_before = effects.contacts.len();
                if let Some(stimulus) = stimulus {
                    let eval = {
                        let contact = state.contacts.entry(user.clone()).or_default().clone();
                        let lists = state.lists.get(&user).cloned().unwrap_or_default();
                        let input = EvalInput::new(stimulus, &contact, at, self.tz, &state.history)
                            .with_previous_interaction(prev)
                            .with_lists(&lists);
                        rules.evaluate_cascade(&input)
                    };
                    self.plan(&user, &eval, at, source, state, &mut effects);
                }
                if !rules.campaigns().is_empty() {
                    self.campaigns_on_event(
                        &user,
                        event,
                        at,
                        source,
                        state,
                        &mut effects,
                        tags_before,
                    );
                }
            }
        }
        state.cause = None;
        // A message that opened no handoff attaches to the contact's open one, if any; an
        // agent's reply in the OA may meet its deadline (the store decides, atomically).
        if let Some(sig) = signal {
            let opened = matches!(sig, HandoffChange::Message { .. })
                && effects
                    .handoffs
                    .iter()
                    .any(|h| matches!(h, HandoffChange::Open(o) if o.user_id == sig.user_id()));
            if !opened {
                effects.handoffs.push(sig);
            }
        }
        // Receipts, replies and clicks count for the sends they follow (reports).
        effects.outcomes.extend(crate::report::signals(event, at));
        effects
    }

    /// What an event means for the contact's campaigns: entering (follow, form, tag — also a
    /// tag a rule just added), leaving (unfollow, goal reached).
    #[allow(clippy::too_many_arguments)]
    fn campaigns_on_event(
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
    fn enter_on_tags(
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

    fn leave(
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
            // II.2: the first step runs again; the contact stays one member.
            let ch = CampaignChange::Repeat {
                campaign: campaign.id.clone(),
                contact_id: user.to_string(),
            };
            note_member(state, &ch);
            effects.campaigns.push(ch);
            let due = campaign.due(0, at, at, self.tz);
            let key = format!("repeat{}", m.entries + 1);
            let step = self.run_step(user, campaign, 0, &key, due, source, state);
            effects.extend(step.unwrap_or_default());
            return;
        }
        tracing::info!(campaign = %campaign.id, user, "entered the campaign");
        metrics::counter!("zaloflow_campaign_entered_total").increment(1);
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
            next_at: (next < campaign.steps.len()).then_some(due),
        };
        note_member(state, &ch);
        effects.campaigns.push(ch);
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

    /// Evaluates a scheduler stimulus (inactivity, special day, schedule…) for one contact.
    pub fn stimulate(
        &self,
        user: &str,
        stimulus: Stimulus<'_>,
        at: i64,
        source: &str,
        state: &mut BatchState,
    ) -> Effects {
        let rules = self.rule_set();
        let mut effects = Effects::default();
        let eval = {
            let contact = state.contacts.entry(user.to_string()).or_default().clone();
            let lists = state.lists.get(user).cloned().unwrap_or_default();
            let input =
                EvalInput::new(stimulus, &contact, at, self.tz, &state.history).with_lists(&lists);
            rules.evaluate_cascade(&input)
        };
        self.plan(user, &eval, at, source, state, &mut effects);
        effects
    }

    /// Like [`Engine::stimulate`], but only `rule_id` (and what its tags start) may fire: a
    /// scan that handles one rule at a time.
    pub fn stimulate_rule(
        &self,
        user: &str,
        rule_id: &str,
        stimulus: Stimulus<'_>,
        at: i64,
        source: &str,
        state: &mut BatchState,
    ) -> Effects {
        let rules = self.rule_set();
        let mut effects = Effects::default();
        let mut eval = {
            let contact = state.contacts.entry(user.to_string()).or_default().clone();
            let lists = state.lists.get(user).cloned().unwrap_or_default();
            let input =
                EvalInput::new(stimulus, &contact, at, self.tz, &state.history).with_lists(&lists);
            rules.evaluate_cascade(&input)
        };
        if !eval
            .fired
            .iter()
            .any(|f| f.depth == 0 && f.rule_id == rule_id)
        {
            return effects;
        }
        eval.fired.retain(|f| f.depth > 0 || f.rule_id == rule_id);
        self.plan(user, &eval, at, source, state, &mut effects);
        effects
    }

    /// Enters the campaigns that start on the tags these effects add to `user` (a rule run by
    /// the scheduler tagged the contact).
    pub fn enter_on_added_tags(
        &self,
        user: &str,
        at: i64,
        source: &str,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        let added: Vec<String> = effects
            .contacts
            .iter()
            .filter(|c| c.user_id == user)
            .flat_map(|c| c.tags_add.iter().cloned())
            .collect();
        if !added.is_empty() && !self.rule_set().campaigns().is_empty() {
            self.enter_on_tags(user, &added, at, source, state, effects);
        }
    }

    /// Turns what fired into effects, and records the firings in `state` too.
    fn plan(
        &self,
        user: &str,
        eval: &Evaluation,
        at: i64,
        source: &str,
        state: &mut BatchState,
        effects: &mut Effects,
    ) {
        for fired in &eval.fired {
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
                    ..crate::outbox::job(payload, planned.run_at, source)
                };
                match &planned.action {
                    ActionPlan::Outbound { payload } => {
                        match zalo_refusal(payload, contact, planned.run_at) {
                            Some(reason) => skip(&fired.rule_id, user, reason),
                            None => effects.jobs.push(job(payload)),
                        }
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
                            match zalo_refusal(&mirror, contact, planned.run_at) {
                                Some(reason) => skip(&fired.rule_id, user, reason),
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
                        let u = Some(user.to_string());
                        let change = match (*op, from) {
                            ("remove", _) => ListChange::Remove {
                                list: list.clone(),
                                user_id: user.to_string(),
                            },
                            ("copy", Some(from)) => ListChange::Copy {
                                from: from.clone(),
                                to: list.clone(),
                                user_id: u,
                            },
                            ("move", Some(from)) => ListChange::Move {
                                from: from.clone(),
                                to: list.clone(),
                                user_id: u,
                            },
                            _ => ListChange::Add {
                                list: list.clone(),
                                user_id: user.to_string(),
                            },
                        };
                        let member_of = state.lists.entry(user.to_string()).or_default();
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
                        effects.lists.push(change);
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

/// Keeps the batch's view of memberships in step with a change.
pub fn note_member(state: &mut BatchState, ch: &CampaignChange) {
    match ch {
        CampaignChange::Enter {
            campaign,
            contact_id,
            entered_at,
            step,
            next_at,
        } => {
            let ms = state.campaigns.entry(contact_id.clone()).or_default();
            if !ms.iter().any(|m| m.campaign == *campaign) {
                ms.push(CampaignMember {
                    campaign: campaign.clone(),
                    contact_id: contact_id.clone(),
                    entered_at: *entered_at,
                    step: *step,
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
            next_at,
        } => {
            for m in state.campaigns.entry(contact_id.clone()).or_default() {
                if m.campaign == *campaign && m.is_active() && m.step == *from_step {
                    m.step = *step;
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

fn skip(rule: &str, user: &str, reason: &str) {
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
pub fn zalo_refusal(payload: &Payload, contact: &Contact, run_at: i64) -> Option<&'static str> {
    let (user_id, cs) = match payload {
        Payload::Zalo { user_id, kind, .. } => (user_id, *kind == ZaloKind::Cs),
        Payload::ZaloTag { user_id, .. } => (user_id, false),
        _ => return None,
    };
    if !is_zalo_user(user_id) {
        return Some("not a Zalo user");
    }
    if contact.follows == Some(false) {
        return Some("the user does not follow the OA (Zalo would answer -213)");
    }
    if cs
        && contact
            .last_interaction
            .is_none_or(|t| run_at - t > CS_WINDOW_MS)
    {
        return Some("outside Zalo's 7-day customer-service window (Zalo would answer -230)");
    }
    None
}

/// What an event means for handoffs: a customer message (attached to an open handoff, or
/// the cause of a new one), or a reply a person sent from the OA console. The OA's automated
/// echoes (no `admin_id`) mean nothing.
fn handoff_signal(event: &Event, at: i64) -> Option<HandoffChange> {
    match &event.kind {
        EventKind::UserMessage {
            user_id,
            msg_id,
            text,
            attachments,
            ..
        } => Some(HandoffChange::Message {
            user_id: user_id.clone(),
            message: HandoffMessage {
                msg_id: msg_id.clone(),
                text: Some(handoff::message_text(text.as_deref(), attachments))
                    .filter(|t| !t.is_empty()),
                at,
            },
        }),
        EventKind::OaMessage {
            user_id,
            admin_id: Some(admin_id),
            msg_id,
            text,
            attachments,
        } if !admin_id.is_empty() => Some(HandoffChange::AgentReply {
            user_id: user_id.clone(),
            admin_id: admin_id.clone(),
            message: HandoffMessage {
                msg_id: msg_id.clone(),
                text: Some(handoff::message_text(text.as_deref(), attachments))
                    .filter(|t| !t.is_empty()),
                at,
            },
        }),
        _ => None,
    }
}

/// The contacts rules are evaluated for: each user a tag event lists, else the event's user.
fn evaluated_users(event: &Event) -> Vec<String> {
    match &event.kind {
        EventKind::TagAdded { user_ids, .. } | EventKind::TagRemoved { user_ids, .. } => {
            user_ids.clone()
        }
        _ => event.user_id().map(str::to_string).into_iter().collect(),
    }
}

/// What an event tells us about its contacts: first seen, follow status, last interaction
/// (only for events the user caused), name and phone when carried, and Zalo's tags.
pub fn contact_changes(event: &Event, at: i64) -> Vec<ContactChange> {
    let mut out = Vec::new();
    let one = |user_id: &str| {
        let mut ch = ContactChange::new(user_id, at);
        if event.kind.is_user_interaction() {
            ch.interaction_at = Some(at);
            ch.interactions = 1;
        }
        ch
    };
    match &event.kind {
        EventKind::Follow { user_id, .. } => {
            let mut ch = one(user_id);
            ch.follows = Some(true);
            ch.followed_at = Some(at);
            out.push(ch);
        }
        EventKind::Unfollow { user_id, .. } => {
            let mut ch = one(user_id);
            ch.follows = Some(false);
            ch.unfollowed_at = Some(at);
            out.push(ch);
        }
        EventKind::SubmitInfo { user_id, info } => {
            let mut ch = one(user_id);
            ch.display_name = info.name.clone();
            ch.phone = info.phone.as_deref().and_then(normalise_phone);
            let mut set = |k: &str, v: &Option<String>| {
                if let Some(v) = v {
                    ch.fields_set.push((k.to_string(), v.clone()));
                }
            };
            set("dob", &info.dob);
            set("gender", &info.gender);
            set("address", &info.address);
            set("city", &info.city);
            set("district", &info.district);
            set("ward", &info.ward);
            out.push(ch);
        }
        EventKind::TagAdded { tag, user_ids } | EventKind::TagRemoved { tag, user_ids } => {
            let add = matches!(event.kind, EventKind::TagAdded { .. });
            for u in user_ids {
                let mut ch = one(u);
                if !tag.is_empty() {
                    if add {
                        ch.tags_add.push(tag.clone());
                    } else {
                        ch.tags_remove.push(tag.clone());
                    }
                }
                out.push(ch);
            }
        }
        EventKind::UserMessage { user_id, .. }
        | EventKind::ChatNow { user_id }
        | EventKind::Reaction { user_id, .. }
        | EventKind::OaMessage { user_id, .. } => out.push(one(user_id)),
        EventKind::Received { user_id, .. }
        | EventKind::Seen { user_id, .. }
        | EventKind::Unknown { user_id } => {
            if let Some(u) = user_id {
                out.push(one(u));
            }
        }
        // A form registration fills the contact in. It is not a Zalo interaction: the 7-day
        // customer-service window (PROTOCOL.md) opens only on events in the OA.
        EventKind::FormSubmitted {
            contact_id,
            name,
            phone,
            email,
            fields,
            ..
        } => {
            let mut ch = one(contact_id);
            ch.display_name.clone_from(name);
            ch.phone.clone_from(phone);
            ch.email.clone_from(email);
            ch.fields_set = fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            out.push(ch);
        }
        // Opens and clicks change nothing on the contact (and must not move its Zalo
        // interaction time); rules react to the events themselves.
        EventKind::EmailOpened { .. } | EventKind::EmailClicked { .. } => {}
    }
    out
}

/// Vietnamese phone numbers in the international form `84…` (digits only); `None` if it
/// does not look like a phone number.
pub fn normalise_phone(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let plus = raw.trim_start().starts_with('+');
    let n = if let Some(rest) = digits.strip_prefix("84").filter(|_| digits.len() >= 11) {
        format!("84{rest}")
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("84{rest}")
    } else if plus {
        digits
    } else if digits.len() == 9 {
        format!("84{digits}")
    } else {
        digits
    };
    (10..=13).contains(&n.len()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zalo::event::parse;

    #[test]
    fn phones() {
        assert_eq!(
            normalise_phone("0912 345 678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalise_phone("+84 912-345-678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalise_phone("84912345678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(normalise_phone("912345678").as_deref(), Some("84912345678"));
        assert_eq!(normalise_phone("12"), None);
        assert_eq!(normalise_phone("abc"), None);
    }

    #[test]
    fn follow_then_unfollow_folds_in_order() {
        let engine = Engine::new();
        let mut state = BatchState::default();
        let f =
            parse(br#"{"event_name":"follow","follower":{"id":"7"},"timestamp":"1000"}"#).unwrap();
        let u = parse(br#"{"event_name":"unfollow","follower":{"id":"7"},"timestamp":"2000"}"#)
            .unwrap();
        engine.process(&f, 1000, "t", &mut state);
        assert_eq!(state.contacts["7"].follows, Some(true));
        assert_eq!(state.contacts["7"].last_interaction, Some(1000));
        engine.process(&u, 2000, "t", &mut state);
        let c = &state.contacts["7"];
        assert_eq!(c.follows, Some(false));
        assert_eq!(c.unfollowed_at, Some(2000));
        // Unfollowing is not an interaction.
        assert_eq!(c.last_interaction, Some(1000));
        assert_eq!(c.first_seen, 1000);
    }

    #[test]
    fn oa_echo_and_receipts_are_not_interactions() {
        for body in [
            r#"{"event_name":"oa_send_text","sender":{"id":"1","admin_id":"9"},"recipient":{"id":"7"},"message":{"msg_id":"x","text":"hi"},"timestamp":"5"}"#,
            r#"{"event_name":"user_seen_message","sender":{"id":"1"},"recipient":{"id":"7"},"message":{"msg_ids":["x"]},"timestamp":"5"}"#,
        ] {
            let e = parse(body.as_bytes()).unwrap();
            let ch = contact_changes(&e, 5);
            assert_eq!(ch.len(), 1);
            assert_eq!(ch[0].user_id, "7");
            assert_eq!(ch[0].interaction_at, None, "{body}");
        }
    }

    #[test]
    fn submit_info_sets_name_phone_fields() {
        let e = parse(
            &std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/zalo/user_submit_info.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let ch = &contact_changes(&e, 9)[0];
        assert_eq!(ch.display_name.as_deref(), Some("Name Example"));
        assert_eq!(ch.phone.as_deref(), Some("84912345678"));
        assert!(ch.fields_set.contains(&("dob".into(), "30/10/1999".into())));
        assert_eq!(ch.interaction_at, Some(9));
    }

    #[test]
    fn form_fills_the_contact_and_opens_change_nothing() {
        use crate::zalo::event::{internal_body, EventKind};
        let kind = EventKind::FormSubmitted {
            contact_id: "phone:84912345678".into(),
            form: "f".into(),
            name: Some("Lan".into()),
            phone: Some("84912345678".into()),
            email: Some("lan@example.vn".into()),
            fields: [("gift".to_string(), "Áo thun".to_string())].into(),
            repeat: false,
        };
        let (_, body) = internal_body(&kind, 5).unwrap();
        let e = parse(body.as_bytes()).unwrap();
        let ch = contact_changes(&e, 5);
        assert_eq!(ch.len(), 1);
        assert_eq!(ch[0].user_id, "phone:84912345678");
        assert_eq!(ch[0].display_name.as_deref(), Some("Lan"));
        assert_eq!(ch[0].phone.as_deref(), Some("84912345678"));
        assert_eq!(ch[0].email.as_deref(), Some("lan@example.vn"));
        assert_eq!(ch[0].fields_set, vec![("gift".into(), "Áo thun".into())]);
        // Not a Zalo interaction: the 7-day window stays as it was.
        assert_eq!(ch[0].interaction_at, None);
        let open = EventKind::EmailOpened {
            contact_id: "u".into(),
            job_id: 1,
            prefetch: false,
        };
        let (_, body) = internal_body(&open, 5).unwrap();
        assert!(contact_changes(&parse(body.as_bytes()).unwrap(), 5).is_empty());
    }

    #[test]
    fn tag_events_touch_every_listed_user() {
        let e = parse(br#"{"event_name":"add_user_to_tag","tag":{"name":"vip_customer","user_ids":["1","2"]},"timestamp":"5"}"#).unwrap();
        let ch = contact_changes(&e, 5);
        assert_eq!(ch.len(), 2);
        assert!(ch
            .iter()
            .all(|c| c.tags_add == vec!["vip_customer".to_string()]));
    }
}

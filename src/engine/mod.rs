//! The processing pipeline: an event (or a scheduler stimulus) and the current state of its
//! contacts in, the effects to apply out — plain code, no I/O. The store applies the effects
//! atomically with marking the event processed: contact changes, outbox jobs, list operations,
//! and the rule firings that keep limits (once per period, cooldowns) honest.

mod campaigns;
mod event;
mod plan;
pub mod simulate;
pub mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::channels::configured::{Configured, NOT_CONFIGURED};
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

pub use campaigns::note_member;
use event::*;
pub use event::{contact_changes, normalise_phone};
pub use plan::{is_zalo_user, zalo_refusal, Refusal};

/// Zalo refuses customer-service messages this long after the user's last interaction (-230).
pub const CS_WINDOW_MS: i64 = 7 * 24 * 3_600_000;
pub use zaloflow_core::handoff::{VIP_PRIORITY, VIP_TAG};

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
    /// Contact -> rule -> (period key, fired at).
    latest: HashMap<String, HashMap<String, (String, i64)>>,
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
        let of = match self.latest.get_mut(user_id) {
            Some(of) => of,
            None => self.latest.entry(user_id.to_string()).or_default(),
        };
        of.insert(rule_id.to_string(), (period_key.to_string(), at));
    }

    /// One contact's latest firings: (rule, period key, fired at).
    pub fn of_user<'a>(&'a self, user_id: &str) -> impl Iterator<Item = (&'a str, &'a str, i64)> {
        self.latest
            .get(user_id)
            .into_iter()
            .flatten()
            .map(|(rule, (period, at))| (rule.as_str(), period.as_str(), *at))
    }

    /// Takes one contact's latest firings out: rule -> (period key, fired at).
    pub fn take_user(&mut self, user_id: &str) -> HashMap<String, (String, i64)> {
        self.latest.remove(user_id).unwrap_or_default()
    }

    /// Puts one contact's latest firings in (as [`History::take_user`] gave them).
    pub fn put_user(&mut self, user_id: String, fires: HashMap<String, (String, i64)>) {
        if !fires.is_empty() {
            self.latest.insert(user_id, fires);
        }
    }

    /// Adds the firings of contacts `self` does not hold.
    pub fn extend(&mut self, other: History) {
        self.latest.extend(other.latest);
    }

    fn latest(&self, user_id: &str, rule_id: &str) -> Option<&(String, i64)> {
        self.latest.get(user_id).and_then(|of| of.get(rule_id))
    }
}

impl FireHistory for History {
    fn fired(&self, user_id: &str, rule_id: &str, period_key: &str) -> bool {
        self.latest(user_id, rule_id)
            .is_some_and(|(k, _)| k == period_key)
    }

    fn last_fired(&self, user_id: &str, rule_id: &str) -> Option<i64> {
        self.latest(user_id, rule_id).map(|(_, at)| *at)
    }
}

/// Turns events into effects with the running rules.
#[derive(Clone)]
pub struct Engine {
    rules: Option<Arc<RuleWatcher>>,
    fixed: Option<Arc<RuleSet>>,
    tz: chrono_tz::Tz,
    handoffs: Arc<HandoffPolicy>,
    /// The deployment's channels: a send whose channel is missing is recorded as skipped.
    /// None: not checked (every send is queued).
    channels: Option<Arc<Configured>>,
    /// When promotion messages may go out, local minutes `[from, until)`
    /// (`ZALOFLOW_PROMOTION_HOURS`): a promotion planned outside is moved to the next start.
    promotion_hours: (u32, u32),
}

pub use zaloflow_core::job::PROMOTION_HOURS;

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
            channels: None,
            promotion_hours: PROMOTION_HOURS,
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
            channels: None,
            promotion_hours: PROMOTION_HOURS,
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
            channels: None,
            promotion_hours: PROMOTION_HOURS,
        }
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.tz
    }

    /// The staff's language (from the handoff policy: `ZALOFLOW_LANG`).
    pub fn lang(&self) -> crate::i18n::Lang {
        self.handoffs.lang
    }

    /// Where the agents' board is, working hours and chat channels, for handoffs.
    pub fn with_handoff_policy(mut self, policy: HandoffPolicy) -> Self {
        self.handoffs = Arc::new(policy);
        self
    }

    /// When promotion messages may go out (local minutes since midnight, `[from, until)`).
    pub fn with_promotion_hours(mut self, hours: (u32, u32)) -> Self {
        self.promotion_hours = hours;
        self
    }

    /// The channels this deployment has configured (plain data, see [`Configured`]).
    pub fn with_channels(mut self, channels: Configured) -> Self {
        self.channels = Some(Arc::new(channels));
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
        // A tag event only starts rules and campaigns for contacts whose tags it changes:
        // re-tagging, a bulk tag or Zalo echoing a tag zaloflow set starts nothing again.
        let unchanged: Vec<String> = match &event.kind {
            EventKind::TagAdded { tag, user_ids } | EventKind::TagRemoved { tag, user_ids } => {
                let add = matches!(event.kind, EventKind::TagAdded { .. });
                user_ids
                    .iter()
                    .filter(|u| {
                        let has = state.contacts.get(*u).is_some_and(|c| c.tags.contains(tag));
                        has == add
                    })
                    .cloned()
                    .collect()
            }
            _ => Vec::new(),
        };
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
        let signal = handoff_signal(event, at, self.handoffs.lang);
        state.cause = match &signal {
            Some(HandoffChange::Message { message, .. }) => Some(message.clone()),
            _ => None,
        };
        if !(rules.is_empty() && rules.campaigns().is_empty()) {
            for user in evaluated_users(event) {
                if unchanged.contains(&user) {
                    continue;
                }
                let prev = previous.get(&user).copied().flatten();
                // Opens and clicks start the email rules of the email they belong to; a
                // machine's open (Apple's proxy, a scanner) starts only the rules that ask for
                // machine opens (`machine_opens: true`).
                let email_name =
                    |job_id: &i64| state.emails.get(job_id).cloned().unwrap_or_default();
                let (email, link) = match &event.kind {
                    EventKind::EmailOpened { job_id, .. } => (Some(email_name(job_id)), None),
                    EventKind::EmailClicked {
                        job_id, url, link, ..
                    } => (
                        Some(email_name(job_id)),
                        Some(link.clone().unwrap_or_else(|| url.clone())),
                    ),
                    _ => (None, None),
                };
                let stimulus = match (&event.kind, &email, &link) {
                    (EventKind::EmailOpened { prefetch, .. }, Some(email), _) => {
                        Some(Stimulus::EmailOpened {
                            email,
                            machine: *prefetch,
                        })
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

//! The index of rules by what can start them, so an event looks only at its candidates.

use super::*;

pub(super) type Entry = (u32, u16);

/// From this many `contains` keywords on, message rules are found through a literal set.
pub(super) const CONTAINS_PREFILTER_MIN: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Kind {
    Follow,
    Unfollow,
    ChatNow,
    InfoSubmitted,
    OaReply,
    Schedule,
    Inactive,
    SpecialDay,
    FieldChanged,
    EmailOpened,
    EmailNotOpened,
    EmailClicked,
    AfterStep,
}
pub(super) const KINDS: usize = 13;

/// Rules by trigger, so an event only looks at rules that can start on it.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(super) simple: [Vec<Entry>; KINDS],
    /// Message triggers without `equals` (and, when the prefilter is built, without
    /// `contains`).
    pub(super) message: Vec<Entry>,
    /// Many `contains` rules: one pass over the text finds the keywords present (every
    /// keyword is a literal pattern; pattern i belongs to `contains_entries[i]`).
    pub(super) contains_set: Option<regex::RegexSet>,
    pub(super) contains_entries: Vec<Entry>,
    /// Message triggers with `equals`, by each lower-cased text.
    pub(super) message_equals: HashMap<String, Vec<Entry>>,
    pub(super) tag_added: HashMap<String, Vec<Entry>>,
    pub(super) tag_removed: HashMap<String, Vec<Entry>>,
    pub(super) form: HashMap<String, Vec<Entry>>,
    pub(super) by_id: HashMap<String, u32>,
}

impl Index {
    pub(crate) fn build(rules: &[Rule]) -> Index {
        let mut ix = Index::default();
        let mut contains: Vec<(String, Entry)> = Vec::new();
        for (ri, r) in rules.iter().enumerate() {
            ix.by_id.insert(r.id.clone(), ri as u32);
            if !r.enabled {
                continue;
            }
            for (ti, t) in r.triggers.iter().enumerate() {
                let e = (ri as u32, ti as u16);
                let kind = match t {
                    Trigger::Message(f) => {
                        let keywords = || f.contains.iter().chain(&f.contains_text);
                        if f.equals.is_empty() && keywords().next().is_some() {
                            // The prefilter looks for each keyword as a substring of the
                            // message without diacritics: whatever a rule can match, in
                            // either mode, holds that.
                            for k in keywords() {
                                contains.push((text::fold(k, Accents::Optional), e));
                            }
                        } else if f.equals.is_empty() {
                            ix.message.push(e);
                        } else {
                            for s in &f.equals {
                                ix.message_equals
                                    .entry(text::fold(s, Accents::Optional))
                                    .or_default()
                                    .push(e);
                            }
                        }
                        continue;
                    }
                    Trigger::TagAdded(tag) => {
                        ix.tag_added.entry(tag.clone()).or_default().push(e);
                        continue;
                    }
                    Trigger::TagRemoved(tag) => {
                        ix.tag_removed.entry(tag.clone()).or_default().push(e);
                        continue;
                    }
                    Trigger::FormSubmitted(f) => {
                        ix.form.entry(f.clone()).or_default().push(e);
                        continue;
                    }
                    Trigger::Follow => Kind::Follow,
                    Trigger::Unfollow => Kind::Unfollow,
                    Trigger::ChatNow => Kind::ChatNow,
                    Trigger::InfoSubmitted => Kind::InfoSubmitted,
                    Trigger::OaReply => Kind::OaReply,
                    Trigger::Schedule(_) => Kind::Schedule,
                    Trigger::Inactive { .. } => Kind::Inactive,
                    Trigger::SpecialDay { .. } => Kind::SpecialDay,
                    Trigger::FieldChanged { .. } => Kind::FieldChanged,
                    Trigger::EmailOpened { .. } => Kind::EmailOpened,
                    Trigger::EmailNotOpened { .. } => Kind::EmailNotOpened,
                    Trigger::EmailClicked { .. } => Kind::EmailClicked,
                    Trigger::AfterStep { .. } => Kind::AfterStep,
                };
                ix.simple[kind as usize].push(e);
            }
        }
        // A handful of `contains` rules are cheapest checked one by one; past that, one
        // pass of a literal set over the text (patterns are folded, like the text).
        let set = (contains.len() >= CONTAINS_PREFILTER_MIN)
            .then(|| {
                regex::RegexSetBuilder::new(contains.iter().map(|(k, _)| regex::escape(k)))
                    .size_limit(256 << 20)
                    .dfa_size_limit(64 << 20)
                    .build()
                    .ok()
            })
            .flatten();
        match set {
            Some(set) => {
                ix.contains_set = Some(set);
                ix.contains_entries = contains.into_iter().map(|(_, e)| e).collect();
            }
            None => {
                ix.message.extend(contains.into_iter().map(|(_, e)| e));
                ix.message.sort_unstable();
                ix.message.dedup();
            }
        }
        ix
    }

    pub(crate) fn rule_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).map(|&i| i as usize)
    }
}

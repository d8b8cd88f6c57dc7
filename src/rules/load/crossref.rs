//! Checks across the folder's files: tags, lists and chat channels used but declared
//! nowhere, ids used twice, and the campaigns, steps and rules that `after_step` and `email:`
//! name.

use super::*;

/// A tag a rule waits for or tests that no rule sets and nobody declared is most likely a
/// typo (an error when the folder has a `tags:` vocabulary, else a warning).
pub(super) fn unknown_tags(f: &mut Folder) {
    let Folder {
        diags,
        refs,
        decl,
        rules,
        campaigns,
        load_warnings,
        lang,
        ..
    } = f;
    let lang = *lang;
    // Tags rules set; with no vocabulary, a tag a rule waits for or tests that no rule sets
    // and nobody declared is most likely a typo.
    let set_tags: std::collections::BTreeSet<&str> = rules
        .iter()
        .map(|(_, _, r)| r)
        .chain(
            campaigns
                .iter()
                .flat_map(|c| c.steps.iter().map(|s| &s.rule)),
        )
        .flat_map(|r| &r.actions)
        .flat_map(|a| match a {
            Action::Tag(tags) => tags.as_slice(),
            _ => &[],
        })
        .map(String::as_str)
        .collect();
    for r in refs.iter().filter(|r| matches!(r.kind, RefKind::Tag)) {
        if decl.tags.contains_key(&r.name)
            || (!decl.tag_vocabulary && set_tags.contains(r.name.as_str()))
        {
            continue;
        }
        let mut names: Vec<&str> = decl.tags.keys().map(String::as_str).collect();
        if !decl.tag_vocabulary {
            names.extend(set_tags.iter().copied());
            names.extend(
                refs.iter()
                    .filter(|o| matches!(o.kind, RefKind::Tag) && o.name != r.name)
                    .map(|o| o.name.as_str()),
            );
        }
        let hint = did_you_mean_after(lang, &r.name, &names);
        if decl.tag_vocabulary {
            diags.push(Diagnostic {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: msg!(lang, "rules.load.unknown_tag", name = r.name, hint = hint),
            });
        } else {
            load_warnings.push(crate::rules::Warning {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: msg!(lang, "rules.load.tag_not_set", name = r.name, hint = hint),
                lang,
            });
        }
    }
}

/// Lists and chat channels used but declared nowhere.
pub(super) fn unknown_names(f: &mut Folder) {
    let Folder {
        diags,
        refs,
        decl,
        lang,
        ..
    } = f;
    let lang = *lang;
    for r in refs.iter().filter(|r| !matches!(r.kind, RefKind::Tag)) {
        let known = match r.kind {
            RefKind::List => &decl.lists,
            RefKind::Channel | RefKind::Tag => &decl.chat_channels,
        };
        if !known.contains_key(&r.name) {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            let hint = did_you_mean_after(lang, &r.name, &names);
            let message = match r.kind {
                RefKind::List => msg!(lang, "rules.load.unknown_list", name = r.name, hint = hint),
                RefKind::Channel | RefKind::Tag => {
                    msg!(
                        lang,
                        "rules.load.unknown_channel",
                        name = r.name,
                        hint = hint
                    )
                }
            };
            diags.push(Diagnostic {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message,
            });
        }
    }
}

/// Rule ids and campaign ids are unique across the folder.
pub(super) fn unique_ids(f: &mut Folder) {
    let Folder {
        diags,
        rules,
        campaigns,
        lang,
        ..
    } = f;
    let lang = *lang;
    // Ids are unique across the folder.
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for (_, _, r) in rules.iter() {
        if let Some(first) = seen.get(r.id.as_str()) {
            diags.push(Diagnostic {
                path: r.origin.file.to_path_buf(),
                pos: r.origin.pos,
                message: msg!(
                    lang,
                    "rules.load.duplicate_rule",
                    id = r.id,
                    first = at(lang, &first.file, first.pos)
                ),
            });
        } else {
            seen.insert(&r.id, &r.origin);
        }
    }
    // Campaign ids are unique too (steps are unique within their campaign).
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for c in campaigns.iter() {
        if let Some(first) = seen.get(c.id.as_str()) {
            diags.push(Diagnostic {
                path: c.origin.file.to_path_buf(),
                pos: c.origin.pos,
                message: msg!(
                    lang,
                    "rules.load.duplicate_campaign",
                    id = c.id,
                    first = at(lang, &first.file, first.pos)
                ),
            });
        } else {
            seen.insert(&c.id, &c.origin);
        }
    }
}

/// `after_step` and `email:` name campaigns, steps and rules that must exist; a step given by
/// number becomes its id.
pub(super) fn resolve_steps(f: &mut Folder) {
    let Folder {
        diags,
        rules,
        step_refs,
        campaigns,
        decl,
        lang,
        ..
    } = f;
    let lang = *lang;
    let rule_ids: std::collections::HashSet<String> =
        rules.iter().map(|(_, _, r)| r.id.clone()).collect();
    let mut renames: Vec<(String, StepRefKind, String, String)> = Vec::new();
    for r in step_refs.iter() {
        let Some(rule_id) = &r.rule_id else { continue };
        let err = |message: String| Diagnostic {
            path: r.path.to_path_buf(),
            pos: r.pos,
            message,
        };
        match &r.step {
            None if r.kind == StepRefKind::Email && !rule_ids.contains(&r.campaign) => {
                let ids: Vec<&str> = rule_ids.iter().map(String::as_str).collect();
                let hint = did_you_mean_after(lang, &r.campaign, &ids);
                diags.push(err(msg!(
                    lang,
                    "rules.load.email_no_rule",
                    name = r.campaign,
                    hint = hint
                )));
            }
            None => {
                if r.kind == StepRefKind::Email {
                    if let Some((_, _, target)) = rules.iter().find(|(_, _, x)| x.id == r.campaign)
                    {
                        if let Some(m) = email_mismatch(lang, &r.campaign, &target.actions, &r.link)
                        {
                            diags.push(err(m));
                        }
                    }
                }
            }
            // A campaign with mistakes of its own: those are reported where they are.
            Some(_) if decl.broken_campaigns.contains(&r.campaign) => {}
            Some(step) => match campaigns.iter().find(|c| c.id == r.campaign) {
                None => {
                    let ids: Vec<&str> = campaigns.iter().map(|c| c.id.as_str()).collect();
                    let hint = did_you_mean_after(lang, &r.campaign, &ids);
                    diags.push(Diagnostic {
                        pos: r.campaign_pos,
                        ..err(msg!(
                            lang,
                            "rules.load.unknown_campaign",
                            name = r.campaign,
                            hint = hint,
                            known = one_of(&ids)
                        ))
                    });
                }
                Some(c) => match c.find_step(step) {
                    None => {
                        let ids: Vec<&str> = c.steps.iter().map(|s| s.id.as_str()).collect();
                        diags.push(err(msg!(
                            lang,
                            "rules.load.no_such_step",
                            campaign = c.id,
                            step = step,
                            steps = one_of(&ids),
                            n = c.steps.len()
                        )));
                    }
                    Some(i) => {
                        if r.kind == StepRefKind::Email {
                            let name = format!("{}/{step}", c.id);
                            if let Some(m) =
                                email_mismatch(lang, &name, &c.steps[i].rule.actions, &r.link)
                            {
                                diags.push(err(m));
                            }
                        }
                        if c.steps[i].id != *step {
                            renames.push((
                                rule_id.clone(),
                                r.kind,
                                format!("{}/{step}", c.id),
                                c.step_key(i),
                            ));
                        }
                    }
                },
            },
        }
    }
    for (rule_id, kind, from, to) in renames {
        let Some((_, _, rule)) = rules.iter_mut().find(|(_, _, r)| r.id == rule_id) else {
            continue;
        };
        for t in &mut rule.triggers {
            match (t, kind) {
                (Trigger::AfterStep { campaign, step }, StepRefKind::AfterStep)
                    if format!("{campaign}/{step}") == from =>
                {
                    if let Some((_, s)) = to.split_once('/') {
                        *step = s.to_string();
                    }
                }
                (
                    Trigger::EmailOpened { email, .. }
                    | Trigger::EmailNotOpened { email, .. }
                    | Trigger::EmailClicked { email, .. },
                    StepRefKind::Email,
                ) if email.as_deref() == Some(from.as_str()) => *email = Some(to.clone()),
                _ => {}
            }
        }
    }
}

/// Why an email trigger naming `name` can never fire: it sends no email, or `link` is not one
/// of its emails' named links.
fn email_mismatch(
    lang: Lang,
    name: &str,
    actions: &[Action],
    link: &Option<String>,
) -> Option<String> {
    fn emails<'a>(actions: &'a [Action], out: &mut Vec<&'a [(String, String)]>) {
        for a in actions {
            match a {
                Action::Email { links, .. } => out.push(links),
                Action::FirstOf(alts) => emails(alts, out),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    emails(actions, &mut found);
    if found.is_empty() {
        return Some(msg!(lang, "rules.load.sends_no_email", name = name));
    }
    let link = link.as_ref()?;
    let names: Vec<&str> = found
        .iter()
        .flat_map(|l| l.iter().map(|(n, _)| n.as_str()))
        .collect();
    if names.contains(&link.as_str()) {
        return None;
    }
    let hint = did_you_mean(lang, link, &names);
    Some(if names.is_empty() {
        msg!(lang, "rules.load.no_named_links", name = name, link = link)
    } else {
        msg!(
            lang,
            "rules.load.no_such_link",
            name = name,
            link = link,
            hint = hint,
            links = one_of(&names)
        )
    })
}

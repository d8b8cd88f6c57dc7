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
        ..
    } = f;
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
        let hint = suggest(&r.name, &names)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        if decl.tag_vocabulary {
            diags.push(Diagnostic {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: format!(
                    "unknown tag `{}`{hint} (add it under `tags:` if it is a new tag)",
                    r.name
                ),
            });
        } else {
            load_warnings.push(crate::rules::Warning {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: format!(
                    "no rule sets the tag `{}`{hint} — if staff or Zalo set it, list it under `tags:` in a rule file",
                    r.name
                ),
            });
        }
    }
}

/// Lists and chat channels used but declared nowhere.
pub(super) fn unknown_names(f: &mut Folder) {
    let Folder {
        diags, refs, decl, ..
    } = f;
    for r in refs.iter().filter(|r| !matches!(r.kind, RefKind::Tag)) {
        let known = match r.kind {
            RefKind::List => &decl.lists,
            RefKind::Channel | RefKind::Tag => &decl.chat_channels,
        };
        if !known.contains_key(&r.name) {
            let (what, key) = match r.kind {
                RefKind::List => ("list", "lists"),
                RefKind::Channel | RefKind::Tag => ("chat channel", "chat_channels"),
            };
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            let hint = suggest(&r.name, &names)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            diags.push(Diagnostic {
                path: r.path.to_path_buf(),
                pos: r.pos,
                message: format!(
                    "unknown {what} `{}`: declare it under `{key}:` in a rule file{hint}",
                    r.name
                ),
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
        ..
    } = f;
    // Ids are unique across the folder.
    let mut seen: HashMap<&str, &Origin> = HashMap::new();
    for (_, _, r) in rules.iter() {
        if let Some(first) = seen.get(r.id.as_str()) {
            diags.push(Diagnostic {
                path: r.origin.file.to_path_buf(),
                pos: r.origin.pos,
                message: format!("duplicate rule id `{}` (first used at {first})", r.id),
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
                message: format!("duplicate campaign id `{}` (first used at {first})", c.id),
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
        ..
    } = f;
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
                let hint = suggest(&r.campaign, &ids)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                diags.push(err(format!(
                    "`email: {}` names no rule (write a rule id, or CAMPAIGN/STEP for a campaign step){hint}",
                    r.campaign
                )));
            }
            None => {
                if r.kind == StepRefKind::Email {
                    if let Some((_, _, target)) = rules.iter().find(|(_, _, x)| x.id == r.campaign)
                    {
                        if let Some(m) = email_mismatch(&r.campaign, &target.actions, &r.link) {
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
                    let hint = suggest(&r.campaign, &ids)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    diags.push(Diagnostic {
                        pos: r.campaign_pos,
                        ..err(format!(
                            "unknown campaign `{}`{hint} (campaigns: {})",
                            r.campaign,
                            one_of(&ids)
                        ))
                    });
                }
                Some(c) => match c.find_step(step) {
                    None => {
                        let ids: Vec<&str> = c.steps.iter().map(|s| s.id.as_str()).collect();
                        diags.push(err(format!(
                            "campaign `{}` has no step `{step}` (its steps: {}, or a number from 1 to {})",
                            c.id,
                            one_of(&ids),
                            c.steps.len()
                        )));
                    }
                    Some(i) => {
                        if r.kind == StepRefKind::Email {
                            let name = format!("{}/{step}", c.id);
                            if let Some(m) =
                                email_mismatch(&name, &c.steps[i].rule.actions, &r.link)
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
fn email_mismatch(name: &str, actions: &[Action], link: &Option<String>) -> Option<String> {
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
        return Some(format!(
            "`{name}` sends no email, so this trigger can never fire (name the rule or step whose `email:` it waits for)"
        ));
    }
    let link = link.as_ref()?;
    let names: Vec<&str> = found
        .iter()
        .flat_map(|l| l.iter().map(|(n, _)| n.as_str()))
        .collect();
    if names.contains(&link.as_str()) {
        return None;
    }
    let hint = suggest(link, &names)
        .map(|s| format!("did you mean `{s}`? "))
        .unwrap_or_default();
    Some(if names.is_empty() {
        format!(
            "the email of `{name}` has no named links, so a click on `{link}` can never be seen: name it under the email's `links:`"
        )
    } else {
        format!(
            "the email of `{name}` has no link `{link}`: {hint}(its links: {})",
            one_of(&names)
        )
    })
}

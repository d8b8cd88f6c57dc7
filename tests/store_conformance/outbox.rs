//! The outbox's admin side, the inbox's odds and ends, profile syncs, templates and the spend
//! a batch's sender reads.

use zaloflow::store::{
    Completion, ContactChange, Effects, JobLane, JobOutcome, JobResult, JobSkip, NewJob, RuleFire,
    SyncPage, ZaloProfile,
};
use zaloflow_core::cost::{SendClass, SendCost};
use zaloflow_core::outcome::OutcomeSignal;

use super::{ev, open};

both!(
    dead_jobs_come_back_and_are_counted,
    inbox_events_are_given_back_and_found_by_key,
    profiles_sync_in_runs,
    templates_and_quota_are_kept,
    a_batch_reads_its_users_history,
    replayed_events_apply_their_effects_with_no_inbox_row_or_credit,
);

fn job(channel: &str, user: &str, rule: &str, key: &str, run_at: i64) -> NewJob {
    NewJob {
        channel: channel.into(),
        user_id: user.into(),
        payload: "{}".into(),
        priority: 0,
        run_at,
        rule_id: Some(rule.into()),
        source: "test".into(),
        dedupe_key: Some(key.into()),
        variant: None,
        skip: None,
    }
}

fn sent(id: i64, class: Option<SendClass>) -> JobOutcome {
    JobOutcome {
        id,
        result: JobResult::Sent {
            provider_id: None,
            cost: class.map(|class| SendCost { class, vnd: 10 }),
        },
        contact: None,
    }
}

async fn dead_jobs_come_back_and_are_counted(kind: &str) {
    let (_db, s) = open(kind).await;
    s.enqueue_jobs(
        &[
            job("zalo", "u1", "r", "a", 10),
            job("email", "a@x.vn", "mail", "b", 10),
            job("zns", "84901", "tpl", "c", 10),
        ],
        10,
    )
    .await
    .unwrap();
    let claimed = s
        .claim_jobs("w", 100, 100, 60_000, 10, JobLane::All)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    let id_of = |ch: &str| claimed.iter().find(|j| j.channel == ch).unwrap().id;
    s.finish_jobs(
        "w",
        &[
            JobOutcome {
                id: id_of("zalo"),
                result: JobResult::Dead {
                    error: "refused".into(),
                    code: Some(-201),
                },
                contact: None,
            },
            sent(id_of("email"), None),
            sent(id_of("zns"), None),
        ],
        200,
    )
    .await
    .unwrap();
    let counts = s.job_counts().await.unwrap();
    assert_eq!(
        counts,
        [
            ("email".to_string(), "sent".to_string(), 1),
            ("zalo".to_string(), "dead".to_string(), 1),
            ("zns".to_string(), "sent".to_string(), 1)
        ]
    );
    assert!(s.retry_dead_job(id_of("zalo"), 300).await.unwrap());
    assert!(
        !s.retry_dead_job(id_of("zalo"), 301).await.unwrap(),
        "no longer dead"
    );
    assert!(!s.retry_dead_job(id_of("email"), 301).await.unwrap());
    let back = s.get_job(id_of("zalo")).await.unwrap().unwrap();
    assert_eq!(
        (back.status.as_str(), back.attempts, back.run_at),
        ("pending", 0, 300)
    );

    let mine = s
        .contact_jobs(&["u1".into(), "a@x.vn".into()], 10)
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|j| j.channel.as_str()).collect::<Vec<_>>(),
        ["email", "zalo"],
        "newest first"
    );
    let emails = s.sent_emails(None, 200, 201).await.unwrap();
    assert_eq!(
        emails.iter().map(|j| j.id).collect::<Vec<_>>(),
        [id_of("email")]
    );
    assert_eq!(
        s.sent_emails(Some("mail"), 0, 1_000).await.unwrap().len(),
        1
    );
    assert!(s
        .sent_emails(Some("other"), 0, 1_000)
        .await
        .unwrap()
        .is_empty());
    assert!(s.sent_emails(None, 201, 1_000).await.unwrap().is_empty());
    assert_eq!(s.template_sends_since(200).await.unwrap(), 1);
    assert_eq!(s.template_sends_since(201).await.unwrap(), 0);
}

async fn inbox_events_are_given_back_and_found_by_key(kind: &str) {
    let (_db, s) = open(kind).await;
    if let Some(sync) = s.sync_inbox() {
        // From a thread of its own, as the intake calls it.
        let ids = tokio::task::spawn_blocking(move || sync.store_inbox(&[ev("x", "u9", 1)], None))
            .await
            .unwrap()
            .unwrap();
        assert!(ids[0].is_some());
    } else {
        assert_eq!(kind, "postgres", "SQLite's intake writes from a thread");
        s.insert_inbox(&[ev("x", "u9", 1)]).await.unwrap();
    }
    s.insert_inbox(&[ev("a", "u1", 2), ev("b", "u2", 3)])
        .await
        .unwrap();
    let mut keys = s
        .existing_inbox_keys(&["a".into(), "x".into(), "nope".into()])
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys, ["a", "x"]);
    let rows = s.claim_inbox("w", 10, 60_000, 10).await.unwrap();
    assert_eq!(rows.len(), 3);
    let a = rows.iter().find(|r| r.dedupe_key == "a").unwrap().id;
    assert_eq!(s.release_inbox_events("other", &[a]).await.unwrap(), 0);
    assert_eq!(s.release_inbox_events("w", &[a]).await.unwrap(), 1);
    let again = s.claim_inbox("w2", 20, 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id, again[0].attempts),
        (a, 1),
        "the attempt given back was not counted"
    );
}

async fn profiles_sync_in_runs(kind: &str) {
    let (_db, s) = open(kind).await;
    assert!(s.contact_sync().await.unwrap().is_none());
    let (run, new) = s.start_contact_sync("admin", 100).await.unwrap();
    assert!(new);
    let (same, new) = s.start_contact_sync("other", 110).await.unwrap();
    assert_eq!((same.id, new), (run.id, false), "one run at a time");
    // u1 is known from a webhook; u2 is new.
    s.apply_effects(
        &Effects {
            contacts: vec![ContactChange {
                user_id: "u1".into(),
                seen_at: 50,
                ..Default::default()
            }],
            ..Default::default()
        },
        50,
    )
    .await
    .unwrap();
    let profile = |id: &str| ZaloProfile {
        user_id: id.into(),
        display_name: Some(format!("name {id}")),
        follows: Some(true),
        interaction_day: None,
        tags: vec!["zalo".into()],
        read_at: 120,
    };
    let page = SyncPage {
        run_id: run.id,
        from_phase: run.phase.clone(),
        from_offset: run.next_offset,
        phase: run.phase.clone(),
        next_offset: 2,
        total: Some(2),
        listed: 2,
        unreadable: 0,
    };
    let counts = s
        .apply_zalo_profiles(&[profile("u1"), profile("u2")], Some(&page), 120)
        .await
        .unwrap();
    assert_eq!((counts.created, counts.updated), (1, 1));
    assert!(
        s.apply_zalo_profiles(&[profile("u3")], Some(&page), 130)
            .await
            .is_err(),
        "the cursor moved on: a stale page is refused"
    );
    assert!(
        s.get_contact("u3").await.unwrap().is_none(),
        "and changes nothing"
    );
    let c = s.contact_sync().await.unwrap().unwrap();
    assert_eq!(
        (c.next_offset, c.total, c.listed, c.created, c.updated),
        (2, Some(2), 2, 1, 1)
    );
    assert_eq!(
        s.get_contact("u2")
            .await
            .unwrap()
            .unwrap()
            .display_name
            .as_deref(),
        Some("name u2")
    );
    assert_eq!(s.users_with_tag("zalo").await.unwrap().len(), 2);
    s.end_contact_sync(run.id, false, Some("zalo down"), 140)
        .await
        .unwrap();
    let c = s.contact_sync().await.unwrap().unwrap();
    assert_eq!(
        (c.status.as_str(), c.error.as_deref()),
        ("running", Some("zalo down"))
    );
    s.end_contact_sync(run.id, true, None, 150).await.unwrap();
    let c = s.contact_sync().await.unwrap().unwrap();
    assert_eq!(c.finished_at, Some(150));
    assert_ne!(c.status, "running");
    let (next, new) = s.start_contact_sync("admin", 160).await.unwrap();
    assert!(new && next.id != run.id);

    // Contacts never read from Zalo are due for a lookup, newest first.
    s.apply_effects(
        &Effects {
            contacts: ["w1", "w2"]
                .iter()
                .zip([200, 210])
                .map(|(u, at)| ContactChange {
                    user_id: (*u).into(),
                    seen_at: at,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        210,
    )
    .await
    .unwrap();
    let due = s.profiles_due(300, 10).await.unwrap();
    assert_eq!(&due[..2], ["w2", "w1"]);
    assert!(!due.contains(&"u2".to_string()), "read already");
    s.profile_lookup_failed("w2", Some(1_000)).await.unwrap();
    s.profile_lookup_failed("w1", None).await.unwrap();
    let due = s.profiles_due(300, 10).await.unwrap();
    assert!(!due.contains(&"w1".to_string()) && !due.contains(&"w2".to_string()));
    assert!(s
        .profiles_due(1_000, 10)
        .await
        .unwrap()
        .contains(&"w2".to_string()));
    assert!(!s
        .profiles_due(1_000, 10)
        .await
        .unwrap()
        .contains(&"w1".to_string()));
}

async fn templates_and_quota_are_kept(kind: &str) {
    let (_db, s) = open(kind).await;
    assert_eq!(s.template_status("t1").await.unwrap(), None);
    assert_eq!(
        s.set_template_status("t1", "ENABLE", 1).await.unwrap(),
        None
    );
    assert_eq!(
        s.set_template_status("t1", "DISABLE", 2)
            .await
            .unwrap()
            .as_deref(),
        Some("ENABLE")
    );
    assert_eq!(
        s.template_status("t1").await.unwrap().as_deref(),
        Some("DISABLE")
    );
    assert_eq!(s.daily_quota().await.unwrap(), None);
    s.set_daily_quota(Some(500), 1).await.unwrap();
    assert_eq!(s.daily_quota().await.unwrap(), Some(500));
    s.set_daily_quota(None, 2).await.unwrap();
    assert_eq!(s.daily_quota().await.unwrap(), None);
}

/// Queues job `key` of `rule` to u1 at `at`, then claims and sends it at `sent_at` billed as
/// `class`; returns its id.
async fn send_one(
    s: &zaloflow::store::DynStore,
    key: &str,
    rule: &str,
    at: i64,
    class: SendClass,
    sent_at: i64,
) -> i64 {
    s.enqueue_jobs(&[job("zalo", "u1", rule, key, at)], at)
        .await
        .unwrap();
    let claimed = s
        .claim_jobs(key, sent_at, sent_at, 60_000, 10, JobLane::All)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    s.finish_jobs(key, &[sent(claimed[0].id, Some(class))], sent_at)
        .await
        .unwrap();
    claimed[0].id
}

async fn a_batch_reads_its_users_history(kind: &str) {
    let (_db, s) = open(kind).await;
    s.apply_effects(
        &Effects {
            contacts: vec![ContactChange {
                user_id: "u1".into(),
                seen_at: 1_000,
                interaction_at: Some(1_000),
                interactions: 1,
                ..Default::default()
            }],
            ..Default::default()
        },
        1_000,
    )
    .await
    .unwrap();
    // A reply sent before the user's last interaction no longer counts: not read.
    send_one(&s, "c0", "reply", 500, SendClass::ConsultationFree, 800).await;
    let first = send_one(&s, "p1", "promo", 1_500, SendClass::Promotion, 2_000).await;
    let reply = send_one(&s, "c1", "reply", 2_100, SendClass::ConsultationPaid, 2_200).await;
    let mut held = job("zalo", "u1", "promo", "p2", 2_500);
    held.skip = Some(JobSkip {
        reason: "not_configured".into(),
        message: "no template".into(),
    });
    s.enqueue_jobs(&[held, job("zalo", "u1", "promo", "p3", 2_500)], 2_500)
        .await
        .unwrap();
    let batch = s
        .claim_jobs("w2", 3_000, 3_000, 60_000, 10, JobLane::All)
        .await
        .unwrap();
    assert_eq!(batch.len(), 1, "the skipped job is not claimed");
    let mut h = s.claimed_history("w2", 0).await.unwrap();
    assert_eq!(h.contacts, [("u1".to_string(), Some(1_000))]);
    h.sends.sort();
    assert_eq!(
        h.sends,
        [
            ("u1".to_string(), first, "promotion".to_string(), 2_000),
            (
                "u1".to_string(),
                reply,
                "consultation_paid".to_string(),
                2_200
            )
        ]
    );
    assert_eq!(
        s.claimed_history("w2", 2_001).await.unwrap().sends,
        [(
            "u1".to_string(),
            reply,
            "consultation_paid".to_string(),
            2_200
        )]
    );
    assert!(s
        .claimed_history("w2", 2_201)
        .await
        .unwrap()
        .sends
        .is_empty());
    assert!(s
        .claimed_history("nobody", 0)
        .await
        .unwrap()
        .contacts
        .is_empty());
    let not_sent = s.not_sent_rows(0).await.unwrap();
    assert_eq!(
        not_sent
            .iter()
            .map(|r| (r.rule_id.as_deref(), r.reason.as_str(), r.jobs))
            .collect::<Vec<_>>(),
        [(Some("promo"), "not_configured", 1)]
    );
    assert!(s.not_sent_rows(2_501).await.unwrap().is_empty());
}

/// What the processor decides for a customer's message at `at`: the contact, a reply, the
/// rule's firing (and so its hour) and the writing (credited to earlier sends).
fn message_effects(at: i64, key: &str) -> Effects {
    Effects {
        contacts: vec![ContactChange {
            user_id: "u1".into(),
            seen_at: at,
            interaction_at: Some(at),
            interactions: 1,
            tags_add: vec!["da_nhan".into()],
            ..Default::default()
        }],
        jobs: vec![job("zalo", "u1", "tra_loi", key, at)],
        fires: vec![RuleFire {
            user_id: "u1".into(),
            rule_id: "tra_loi".into(),
            period_key: key.into(),
            fired_at: at,
        }],
        outcomes: vec![OutcomeSignal::Wrote {
            user_id: "u1".into(),
            at,
        }],
        ..Default::default()
    }
}

async fn replayed_events_apply_their_effects_with_no_inbox_row_or_credit(kind: &str) {
    let (_db, s) = open(kind).await;
    // A reply sent an hour before the customer writes again.
    send_one(&s, "c0", "chao", 1_000, SendClass::ConsultationFree, 1_000).await;
    let at = 3_601_000;
    s.apply_replayed(
        &[Completion {
            inbox_id: 42,
            effects: message_effects(at, "r1"),
        }],
        at,
    )
    .await
    .unwrap();
    // Its effects, as a completion applies them.
    let u1 = s.load_contacts(&["u1".into()]).await.unwrap()["u1"].clone();
    assert_eq!(u1.last_interaction, Some(at));
    assert_eq!(u1.interaction_count, 1);
    assert!(u1.tags.contains("da_nhan"));
    let fires = s.load_rule_state(&["u1".into()]).await.unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].rule_id, "tra_loi");
    let hours = s.fire_counts(0, i64::MAX).await.unwrap();
    assert_eq!(
        hours
            .iter()
            .map(|f| (f.rule_id.as_str(), f.hour, f.fires))
            .collect::<Vec<_>>(),
        [("tra_loi", 1, 1)]
    );
    let pending = s
        .claim_jobs("w", at, at, 60_000, 10, JobLane::All)
        .await
        .unwrap();
    assert_eq!(pending.len(), 1, "the reply is queued");
    // No inbox row, and no reply credited to the earlier send.
    let stats = s.inbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.done, stats.failed), (0, 0, 0));
    assert!(s.report_counts(0, None).await.unwrap().outcomes.is_empty());
    // The same message stored and completed credits it.
    s.insert_inbox(&[ev("m2", "u1", at + 1)]).await.unwrap();
    let claimed = s.claim_inbox("p", at + 1, 60_000, 10).await.unwrap();
    s.complete_inbox(
        "p",
        &[Completion {
            inbox_id: claimed[0].id,
            effects: message_effects(at + 1, "r2"),
        }],
        at + 1,
    )
    .await
    .unwrap();
    let credited: Vec<String> = s
        .report_counts(0, None)
        .await
        .unwrap()
        .outcomes
        .into_iter()
        .map(|o| o.kind)
        .collect();
    assert!(credited.contains(&"replied".to_string()), "{credited:?}");
}

//! One story, two backends: every behaviour the service relies on from storage, run against a
//! real SQLite file and a real PostgreSQL database.

mod common;

use std::collections::HashMap;

use zaloflow::store::{
    self, ClaimNext, Completion, ContactChange, DynStore, Effects, InboxEvent, Inserted,
    IntakeLease, NewInboxEvent, StoreError,
};

async fn open(kind: &str) -> (common::Db, DynStore) {
    let db = common::Db::new(kind).await;
    let s = store::open(db.url()).await.unwrap();
    s.migrate().await.unwrap();
    // Migrating twice is harmless.
    s.migrate().await.unwrap();
    (db, s)
}

fn ev(key: &str, user: &str, at: i64) -> NewInboxEvent {
    NewInboxEvent {
        dedupe_key: key.into(),
        event_name: "user_send_text".into(),
        user_id: user.into(),
        priority: 0,
        body: format!(
            r#"{{"event_name":"user_send_text","sender":{{"id":"{user}"}},"message":{{"msg_id":"{key}","text":"hi"}},"timestamp":"{at}"}}"#
        ),
        event_ts: Some(at),
        received_at: at,
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name("postgres").await } )* }
    };
}

// Every other store method, area by area (each runs on both backends too).
#[path = "store_conformance/agents.rs"]
mod agents;
#[path = "store_conformance/campaigns.rs"]
mod campaigns;
#[path = "store_conformance/contacts.rs"]
mod contacts;
#[path = "store_conformance/handoffs.rs"]
mod handoffs;
#[path = "store_conformance/oa.rs"]
mod oa;
#[path = "store_conformance/outbox.rs"]
mod outbox;

both!(
    insert_dedupes_across_and_within_batches,
    claim_orders_and_leases,
    one_users_lane_is_never_split,
    completing_claims_the_next_batch,
    complete_applies_effects_atomically,
    lost_lease_changes_nothing,
    failures_back_off_then_give_up,
    release_gives_claims_back,
    contacts_merge_changes,
    jobs_commit_with_their_event_and_dedupe,
    leases_exclude_other_owners,
    intake_stores_rows_leased_for_the_handoff,
    handed_events_wait_behind_earlier_ones,
    handed_events_commit_a_few_at_a_time,
    a_backlog_of_handovers_skips_the_settle,
    a_contacts_timeline_is_its_events_newest_first,
    migrating_links_the_history_already_stored,
    spend_counts_what_was_sent_and_its_price,
);

async fn insert_dedupes_across_and_within_batches(kind: &str) {
    let (_db, s) = open(kind).await;
    let out = s
        .insert_inbox(&[ev("a", "u1", 1), ev("b", "u1", 2), ev("a", "u1", 1)])
        .await
        .unwrap();
    assert!(matches!(out[0], Inserted::Stored));
    assert!(matches!(out[1], Inserted::Stored));
    assert_eq!(out[2], Inserted::Duplicate);
    let again = s
        .insert_inbox(&[ev("b", "u1", 2), ev("c", "u2", 3)])
        .await
        .unwrap();
    assert_eq!(again[0], Inserted::Duplicate);
    assert!(matches!(again[1], Inserted::Stored));
    assert_eq!(s.inbox_stats().await.unwrap().pending, 3);
}

async fn claim_orders_and_leases(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u2", 2), ev("3", "u3", 3)])
        .await
        .unwrap();
    let a = s.claim_inbox("w1", 100, 1000, 2).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["1", "2"]
    );
    assert!(a.iter().all(|e| e.attempts == 1));
    // Leased events are not claimed again until the lease runs out.
    let b = s.claim_inbox("w2", 200, 1000, 10).await.unwrap();
    assert_eq!(
        b.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["3"]
    );
    assert!(s.claim_inbox("w2", 300, 1000, 10).await.unwrap().is_empty());
    // A dead worker's lease expires: its events are taken again.
    let c = s.claim_inbox("w3", 5000, 1000, 10).await.unwrap();
    assert_eq!(c.len(), 3);
    assert!(c.iter().all(|e| e.attempts == 2));
}

async fn one_users_lane_is_never_split(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u2", 2), ev("3", "u1", 3)])
        .await
        .unwrap();
    let a = s.claim_inbox("w1", 100, 1000, 1).await.unwrap();
    assert_eq!(a[0].dedupe_key, "1");
    // u1's later event waits while its earlier one is leased; u2 goes ahead.
    let b = s.claim_inbox("w2", 100, 1000, 10).await.unwrap();
    assert_eq!(
        b.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["2"]
    );
    s.complete_inbox("w1", &done(&[a[0].id]), 150)
        .await
        .unwrap();
    let c = s.claim_inbox("w2", 200, 1000, 10).await.unwrap();
    assert_eq!(
        c.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["3"]
    );
}

/// Completions without effects.
fn done(ids: &[i64]) -> Vec<Completion> {
    ids.iter()
        .map(|&inbox_id| Completion {
            inbox_id,
            effects: Effects::default(),
        })
        .collect()
}

async fn completing_claims_the_next_batch(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u1", 2), ev("3", "u2", 3)])
        .await
        .unwrap();
    let a = s.claim_inbox("w", 100, 1000, 1).await.unwrap();
    assert_eq!(a[0].dedupe_key, "1");
    let next = ClaimNext {
        now: 150,
        lease_ms: 1000,
        limit: 10,
    };
    // The completion is seen by the claim: u1's next event is no longer behind a lease.
    let b = s
        .complete_and_claim("w", &done(&[a[0].id]), 150, next)
        .await
        .unwrap();
    assert_eq!(
        b.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["2", "3"]
    );
    assert_eq!(s.inbox_stats().await.unwrap().pending, 2);
    // Someone else's lease: nothing is completed and nothing is claimed.
    s.insert_inbox(&[ev("4", "u3", 4)]).await.unwrap();
    let ids: Vec<i64> = b.iter().map(|e| e.id).collect();
    let r = s.complete_and_claim("thief", &done(&ids), 160, next).await;
    assert!(matches!(r, Err(StoreError::LeaseLost(_))));
    let c = s.claim_inbox("w2", 170, 1000, 10).await.unwrap();
    assert_eq!(
        c.iter().map(|e| e.dedupe_key.as_str()).collect::<Vec<_>>(),
        ["4"],
        "the failed call claimed nothing"
    );
    // The owner completes the rest; nothing is left to claim.
    let d = s
        .complete_and_claim("w", &done(&ids), 180, ClaimNext { now: 180, ..next })
        .await
        .unwrap();
    assert!(d.is_empty());
    assert_eq!(s.inbox_stats().await.unwrap().pending, 1);
}

async fn complete_applies_effects_atomically(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1)]).await.unwrap();
    let a = s.claim_inbox("w", 10, 1000, 10).await.unwrap();
    let mut ch = ContactChange::new("u1", 10);
    ch.interaction_at = Some(10);
    ch.interactions = 1;
    ch.follows = Some(true);
    ch.display_name = Some("Lan Nguyễn".into());
    ch.tags_add = vec!["new_user".into(), "interested".into()];
    ch.fields_set = vec![("city".into(), "Hà Nội".into())];
    s.complete_inbox(
        "w",
        &[Completion {
            inbox_id: a[0].id,
            effects: Effects {
                contacts: vec![ch],
                ..Default::default()
            },
        }],
        20,
    )
    .await
    .unwrap();
    let st = s.inbox_stats().await.unwrap();
    assert_eq!((st.pending, st.done), (0, 1));
    let c = s.get_contact("u1").await.unwrap().unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Lan Nguyễn"));
    assert_eq!(c.follows, Some(true));
    assert_eq!(c.last_interaction, Some(10));
    assert_eq!(c.interaction_count, 1);
    assert!(c.tags.contains("new_user") && c.tags.contains("interested"));
    assert_eq!(c.fields["city"], "Hà Nội");
    // Completing twice is refused: the event is no longer pending under our lease.
    let again = s.complete_inbox("w", &done(&[a[0].id]), 30).await;
    assert!(matches!(again, Err(StoreError::LeaseLost(_))));
}

async fn lost_lease_changes_nothing(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u2", 2)])
        .await
        .unwrap();
    let a = s.claim_inbox("slow", 10, 100, 10).await.unwrap();
    // The slow worker's lease expires and another takes over.
    let b = s.claim_inbox("fast", 500, 1000, 10).await.unwrap();
    assert_eq!(b.len(), 2);
    let mut ch = ContactChange::new("u1", 10);
    ch.interaction_at = Some(10);
    let r = s
        .complete_inbox(
            "slow",
            &[
                Completion {
                    inbox_id: a[0].id,
                    effects: Effects {
                        contacts: vec![ch],
                        ..Default::default()
                    },
                },
                Completion {
                    inbox_id: a[1].id,
                    effects: Effects::default(),
                },
            ],
            600,
        )
        .await;
    assert!(matches!(r, Err(StoreError::LeaseLost(_))));
    assert!(
        s.get_contact("u1").await.unwrap().is_none(),
        "nothing of the batch applied"
    );
    assert_eq!(s.inbox_stats().await.unwrap().pending, 2);
}

async fn failures_back_off_then_give_up(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u1", 2)])
        .await
        .unwrap();
    let a = s.claim_inbox("w", 10, 1000, 1).await.unwrap();
    s.fail_inbox("w", a[0].id, "boom", Some(5000), 20)
        .await
        .unwrap();
    // Backing off holds the user's lane: event 2 must not overtake event 1.
    assert!(s.claim_inbox("w", 100, 1000, 10).await.unwrap().is_empty());
    let b = s.claim_inbox("w", 5001, 1000, 10).await.unwrap();
    assert_eq!(b.len(), 2);
    s.fail_inbox("w", b[0].id, "boom again", None, 5002)
        .await
        .unwrap();
    let st = s.inbox_stats().await.unwrap();
    assert_eq!((st.failed, st.pending), (1, 1));
}

async fn release_gives_claims_back(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1)]).await.unwrap();
    assert_eq!(s.claim_inbox("w", 10, 60_000, 10).await.unwrap().len(), 1);
    assert_eq!(s.release_inbox("w").await.unwrap(), 1);
    let again = s.claim_inbox("w2", 11, 60_000, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        again[0].attempts, 1,
        "a released claim is not counted as an attempt"
    );
}

async fn contacts_merge_changes(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u1", 2), ev("3", "u1", 3)])
        .await
        .unwrap();
    let rows = s.claim_inbox("w", 10, 1000, 10).await.unwrap();
    let mut first = ContactChange::new("u1", 100);
    first.interaction_at = Some(300);
    first.interactions = 1;
    first.phone = Some("84912345678".into());
    first.tags_add = vec!["potential".into()];
    let mut second = ContactChange::new("u1", 200);
    second.interaction_at = Some(200); // older: last_interaction must not move back
    second.interactions = 1;
    second.follows = Some(false);
    second.tags_remove = vec!["potential".into()];
    second.tags_add = vec!["active_buyer".into()];
    let third = ContactChange::new("u1", 250); // seen, nothing else: keeps what is known
    let mut comps = Vec::new();
    for (row, ch) in rows.iter().zip([first, second, third]) {
        comps.push(Completion {
            inbox_id: row.id,
            effects: Effects {
                contacts: vec![ch],
                ..Default::default()
            },
        });
    }
    s.complete_inbox("w", &comps, 400).await.unwrap();
    let c = s.get_contact("u1").await.unwrap().unwrap();
    assert_eq!(c.first_seen, 100);
    assert_eq!(c.last_interaction, Some(300));
    assert_eq!(c.interaction_count, 2);
    assert_eq!(c.phone.as_deref(), Some("84912345678"));
    assert_eq!(c.follows, Some(false));
    assert_eq!(c.tags.iter().collect::<Vec<_>>(), ["active_buyer"]);
    let many = s
        .load_contacts(&["u1".to_string(), "nobody".to_string()])
        .await
        .unwrap();
    assert_eq!(many.len(), 1);
    let _: HashMap<_, _> = many;
}

async fn jobs_commit_with_their_event_and_dedupe(kind: &str) {
    let (_db, s) = open(kind).await;
    s.insert_inbox(&[ev("1", "u1", 1), ev("2", "u2", 2)])
        .await
        .unwrap();
    let rows = s.claim_inbox("w", 10, 1000, 10).await.unwrap();
    let job = |key: &str| zaloflow::store::NewJob {
        channel: "zalo".into(),
        user_id: "u1".into(),
        payload: "{}".into(),
        priority: 0,
        run_at: 10,
        rule_id: Some("greeting".into()),
        source: "inbox:1".into(),
        dedupe_key: Some(key.into()),
        variant: None,
        skip: None,
    };
    // A lost lease takes the jobs down with it.
    let stolen = s.claim_inbox("thief", 5000, 1000, 10).await.unwrap();
    assert_eq!(stolen.len(), 2);
    let r = s
        .complete_inbox(
            "w",
            &[Completion {
                inbox_id: rows[0].id,
                effects: Effects {
                    jobs: vec![job("k1")],
                    ..Default::default()
                },
            }],
            20,
        )
        .await;
    assert!(matches!(r, Err(StoreError::LeaseLost(_))));
    assert!(
        s.list_jobs(None, 10).await.unwrap().is_empty(),
        "no job without its event"
    );
    // The owner's completion enqueues them; a repeated dedupe key is enqueued once.
    s.complete_inbox(
        "thief",
        &[
            Completion {
                inbox_id: stolen[0].id,
                effects: Effects {
                    jobs: vec![job("k1")],
                    ..Default::default()
                },
            },
            Completion {
                inbox_id: stolen[1].id,
                effects: Effects {
                    jobs: vec![job("k1"), job("k2")],
                    ..Default::default()
                },
            },
        ],
        5001,
    )
    .await
    .unwrap();
    let jobs = s.list_jobs(Some("pending"), 10).await.unwrap();
    assert_eq!(jobs.len(), 2);
    assert!(jobs
        .iter()
        .all(|j| j.rule_id.as_deref() == Some("greeting") && j.attempts == 0));
    s.enqueue_jobs(&[job("k2"), job("k3")], 6000).await.unwrap();
    assert_eq!(s.list_jobs(None, 10).await.unwrap().len(), 3);
    assert_eq!(s.next_job_due().await.unwrap(), Some(10));
}

async fn leases_exclude_other_owners(kind: &str) {
    let (_db, s) = open(kind).await;
    assert!(s.try_lease("tick", "a", 0, 1000).await.unwrap());
    assert!(!s.try_lease("tick", "b", 500, 1000).await.unwrap());
    assert!(
        s.try_lease("tick", "a", 900, 1000).await.unwrap(),
        "the holder renews"
    );
    assert!(!s.try_lease("tick", "b", 1800, 1000).await.unwrap());
    assert!(
        s.try_lease("tick", "b", 1901, 1000).await.unwrap(),
        "expired: taken over"
    );
    s.release_lease("tick", "a").await.unwrap();
    assert!(
        !s.try_lease("tick", "a", 1902, 1000).await.unwrap(),
        "only the holder releases"
    );
    s.release_lease("tick", "b").await.unwrap();
    assert!(s.try_lease("tick", "a", 1903, 1000).await.unwrap());
    let pair = zaloflow::zalo::token::TokenPair {
        access_token: "a1".into(),
        refresh_token: "r1".into(),
        expires_at_ms: 99,
    };
    assert!(s.load_tokens().await.unwrap().is_none());
    s.save_tokens(&pair, 1).await.unwrap();
    s.save_tokens(&pair, 2).await.unwrap();
    assert_eq!(s.load_tokens().await.unwrap(), Some(pair));
}

fn keys(events: &[InboxEvent]) -> Vec<&str> {
    events.iter().map(|e| e.dedupe_key.as_str()).collect()
}

/// What the intake does with a handoff: rows stored already leased to the processor that will
/// get them in memory, so nobody else claims them (nor their users' later events).
async fn intake_stores_rows_leased_for_the_handoff(kind: &str) {
    let (_db, s) = open(kind).await;
    let lease = IntakeLease {
        owner: "w0",
        until: 10_000,
    };
    let ids = s
        .store_inbox(
            &[ev("a", "u1", 1), ev("b", "u2", 2), ev("a", "u1", 1)],
            Some(lease),
        )
        .await
        .unwrap();
    let (a, b) = (ids[0].unwrap(), ids[1].unwrap());
    assert!(a < b, "ids follow the batch's order: {ids:?}");
    assert_eq!(ids[2], None, "a repeat in the batch is a duplicate");
    s.insert_inbox(&[ev("c", "u1", 3), ev("d", "u3", 4)])
        .await
        .unwrap();
    // Leased rows are not claimable, nor is u1's later event; u3's is.
    let other = s.claim_inbox("w1", 100, 1000, 10).await.unwrap();
    assert_eq!(keys(&other), ["d"]);
    // The lease is w0's: its completion goes through, another owner's does not.
    assert!(matches!(
        s.complete_inbox("w1", &done(&[a]), 150).await,
        Err(StoreError::LeaseLost(_))
    ));
    s.complete_inbox("w0", &done(&[a, b]), 150).await.unwrap();
    let next = s.claim_inbox("w1", 200, 1000, 10).await.unwrap();
    assert_eq!(keys(&next), ["c"]);
    // Storing again reports the duplicates without an id.
    let again = s
        .store_inbox(&[ev("b", "u2", 2), ev("e", "u2", 5)], Some(lease))
        .await
        .unwrap();
    assert_eq!(again[0], None);
    assert!(again[1].unwrap() > b);
}

/// A batch handed over in memory must not overtake its users' earlier events still pending in
/// the table (stored unleased while the processor's queue was full): those events go back to
/// the table and are claimed after the earlier ones, in order.
async fn handed_events_wait_behind_earlier_ones(kind: &str) {
    use std::sync::Arc;
    use zaloflow::clock::Clock;
    use zaloflow::engine::Engine;
    use zaloflow::inbox::Processor;

    let (_db, s) = open(kind).await;
    let now = zaloflow::clock::system_now();
    s.insert_inbox(&[ev("1", "u1", 1)]).await.unwrap();
    let batch = [ev("2", "u1", 2), ev("3", "u2", 3)];
    let ids = store_leased(&s, &batch, now).await;
    let earlier = s
        .inbox_pending_before(&["u1".into(), "u2".into()], ids[1], &ids)
        .await
        .unwrap();
    assert_eq!(earlier.len(), 1);
    assert_eq!(earlier[0].0, "u1");
    let handed = handed_rows(&batch, &ids);
    let p = Processor::new(
        s.clone(),
        Arc::new(Engine::new()),
        Clock::system(),
        "w0".into(),
    );
    assert_eq!(p.process_handed(handed).await.unwrap(), (1, 1));
    let stats = s.inbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.done), (2, 1), "u2's event processed");
    // u1's two events are claimable again, together and in order; the hand-over's attempt
    // was given back.
    let claimed = s.claim_inbox("w1", now, 1000, 10).await.unwrap();
    assert_eq!(keys(&claimed), ["1", "2"]);
    assert_eq!(claimed[1].attempts, 1);
}

/// Stores `batch` as the intake does for the hand-over: leased to `w0` for a minute.
async fn store_leased(s: &DynStore, batch: &[NewInboxEvent], now: i64) -> Vec<i64> {
    let lease = IntakeLease {
        owner: "w0",
        until: now + 60_000,
    };
    s.store_inbox(batch, Some(lease))
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect()
}

/// Stored rows as the intake hands them over: leased, one attempt counted.
fn handed_rows(batch: &[NewInboxEvent], ids: &[i64]) -> Vec<InboxEvent> {
    batch
        .iter()
        .zip(ids)
        .map(|(e, &id)| InboxEvent {
            id,
            dedupe_key: e.dedupe_key.clone(),
            event_name: e.event_name.clone(),
            user_id: e.user_id.clone(),
            body: e.body.clone(),
            event_ts: e.event_ts,
            received_at: e.received_at,
            attempts: 1,
        })
        .collect()
}

/// A hand-over larger than `commit_max` is committed in several transactions, in order: every
/// event is processed once and each user's contact counts all of theirs.
async fn handed_events_commit_a_few_at_a_time(kind: &str) {
    use std::sync::Arc;
    use zaloflow::clock::Clock;
    use zaloflow::engine::Engine;
    use zaloflow::inbox::Processor;

    let (_db, s) = open(kind).await;
    let now = zaloflow::clock::system_now();
    let batch: Vec<NewInboxEvent> = (1..=7)
        .map(|i| ev(&format!("k{i}"), if i % 3 == 0 { "u2" } else { "u1" }, i))
        .collect();
    let ids = store_leased(&s, &batch, now).await;
    let p = Processor::new(
        s.clone(),
        Arc::new(Engine::new()),
        Clock::system(),
        "w0".into(),
    )
    .with_commit_max(3);
    assert_eq!(
        p.process_handed(handed_rows(&batch, &ids)).await.unwrap(),
        (7, 0)
    );
    let stats = s.inbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.done), (0, 7));
    let contacts = s.load_contacts(&["u1".into(), "u2".into()]).await.unwrap();
    assert_eq!(contacts["u1"].interaction_count, 5);
    assert_eq!(contacts["u2"].interaction_count, 2);
    assert_eq!(contacts["u1"].last_interaction, Some(7));
    assert_eq!(contacts["u2"].last_interaction, Some(6));
}

/// Handed-over events waiting past `behind_at` are processed at once, not after the `settle`
/// wait meant to gather a burst (at full load that wait let the queue fill). With a settle of a
/// minute, only the skip lets twenty queued events be processed within the test's 30 s.
async fn a_backlog_of_handovers_skips_the_settle(kind: &str) {
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::Notify;
    use zaloflow::clock::Clock;
    use zaloflow::engine::Engine;
    use zaloflow::inbox::{Intake, Processor, Relay};

    let (_db, s) = open(kind).await;
    let (relay, rx) = Relay::new("w0".into(), Duration::from_secs(60), 1000);
    let stored = Arc::new(Notify::new());
    let mut writers = tokio::task::JoinSet::new();
    let intake = Intake::start(
        s.clone(),
        1,
        Duration::from_secs(10),
        stored.clone(),
        Some(relay),
        &mut writers,
    );
    // One at a time: each its own group commit, each its own hand-over.
    for i in 1..=20 {
        let user = format!("u{}", i % 3);
        intake.submit(ev(&format!("k{i}"), &user, i)).await.unwrap();
    }
    let p = Processor::new(
        s.clone(),
        Arc::new(Engine::new()),
        Clock::system(),
        "w0".into(),
    )
    .with_settle(Duration::from_secs(60), Duration::from_secs(60), 16);
    let stop = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(p.run(stored, Some(rx), stop.clone()));
    let all_done = async {
        while s.inbox_stats().await.unwrap().done < 20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), all_done)
        .await
        .expect("the queued hand-overs were processed without waiting for the settle");
    stop.cancel();
    run.await.unwrap();
    drop(intake);
    while writers.join_next().await.is_some() {}
    let contacts = s.load_contacts(&["u1".into()]).await.unwrap();
    assert_eq!(contacts["u1"].interaction_count, 7);
}

/// The timeline (`contact_inbox`) follows each user's finished events back from the newest
/// (migration 0011: no per-user index on the inbox) and adds the ones still pending.
async fn a_contacts_timeline_is_its_events_newest_first(kind: &str) {
    let (_db, s) = open(kind).await;
    let ids = |rows: &[store::InboxRecord]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    // Two users' events interleaved, and one with no user at all.
    let batch: Vec<NewInboxEvent> = (0..12)
        .map(|i| ev(&format!("k{i}"), ["u1", "u2", ""][i % 3], i as i64))
        .collect();
    s.insert_inbox(&batch).await.unwrap();
    let all = s.claim_inbox("w", 100, 60_000, 100).await.unwrap();
    let of = |u: &str| -> Vec<i64> {
        let mut v: Vec<i64> = all
            .iter()
            .filter(|e| e.user_id == u)
            .map(|e| e.id)
            .collect();
        v.reverse();
        v
    };
    let (u1, u2) = (of("u1"), of("u2"));
    assert_eq!((u1.len(), u2.len()), (4, 4));
    // u1's two oldest finish in one batch, the next one fails for good in another, the
    // newest stays pending; u2's finish in three batches, newest last.
    let oldest_first: Vec<i64> = u1.iter().rev().copied().collect();
    s.complete_inbox("w", &done(&oldest_first[..2]), 200)
        .await
        .unwrap();
    s.fail_inbox("w", oldest_first[2], "boom", None, 201)
        .await
        .unwrap();
    let u2_oldest_first: Vec<i64> = u2.iter().rev().copied().collect();
    let nobody: Vec<i64> = all
        .iter()
        .filter(|e| e.user_id.is_empty())
        .map(|e| e.id)
        .collect();
    s.complete_inbox("w", &done(&[u2_oldest_first[0]]), 202)
        .await
        .unwrap();
    let mut mixed = u2_oldest_first[1..3].to_vec();
    mixed.extend(&nobody);
    s.complete_inbox("w", &done(&mixed), 203).await.unwrap();
    s.complete_inbox("w", &done(&[u2_oldest_first[3]]), 204)
        .await
        .unwrap();

    assert_eq!(ids(&s.contact_inbox("u1", 10).await.unwrap()), u1);
    assert_eq!(ids(&s.contact_inbox("u2", 10).await.unwrap()), u2);
    assert_eq!(ids(&s.contact_inbox("u2", 3).await.unwrap()), u2[..3]);
    assert_eq!(
        ids(&s.contact_inbox("u1", 1).await.unwrap()),
        u1[..1],
        "the pending one is newest"
    );
    let statuses: Vec<String> = s
        .contact_inbox("u1", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, ["pending", "failed", "done", "done"]);
    assert!(s.contact_inbox("nobody", 10).await.unwrap().is_empty());

    // Later events go on the same chain.
    s.insert_inbox(&[ev("k12", "u2", 12)]).await.unwrap();
    let next = s.claim_inbox("w", 300, 60_000, 100).await.unwrap();
    assert_eq!(next.len(), 1);
    s.complete_inbox("w", &done(&[next[0].id]), 301)
        .await
        .unwrap();
    let mut want = vec![next[0].id];
    want.extend(&u2);
    assert_eq!(ids(&s.contact_inbox("u2", 10).await.unwrap()), want);

    // Erased, the contact has no timeline left; the other one keeps theirs.
    s.erase_contact("u2", 400).await.unwrap();
    assert!(s.contact_inbox("u2", 10).await.unwrap().is_empty());
    assert_eq!(ids(&s.contact_inbox("u1", 10).await.unwrap()), u1);
}

/// A file migrated before the timeline's chain (migration 0011) keeps every contact's history:
/// the migration links the finished events stored before it.
async fn migrating_links_the_history_already_stored(kind: &str) {
    let db = common::Db::new(kind).await;
    let s = store::open(db.url()).await.unwrap();
    let dir = format!("{}/migrations/{kind}", env!("CARGO_MANIFEST_DIR"));
    let mut before = sqlx::migrate::Migrator::new(std::path::Path::new(&dir))
        .await
        .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 11)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    assert_eq!(before.migrations.len(), 10);
    let rows = "INSERT INTO inbox (dedupe_key, event_name, user_id, body, received_at, status) VALUES
        ('a', 'user_send_text', 'u1', '{}', 1, 'done'), ('b', 'user_send_text', 'u2', '{}', 2, 'done'),
        ('c', 'follow', '', '{}', 3, 'done'), ('d', 'user_send_text', 'u1', '{}', 4, 'failed'),
        ('e', 'user_send_text', 'u1', '{}', 5, 'done'), ('f', 'user_send_text', 'u1', '{}', 6, 'pending')";
    if kind == "sqlite" {
        let pool = sqlx::SqlitePool::connect(db.url()).await.unwrap();
        before.run(&pool).await.unwrap();
        sqlx::query(rows).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        before.run(&pool).await.unwrap();
        sqlx::query(rows).execute(&pool).await.unwrap();
        pool.close().await;
    }
    s.migrate().await.unwrap();
    let timeline = |u: &'static str| {
        let s = s.clone();
        async move {
            let rows = s.contact_inbox(u, 10).await.unwrap();
            rows.into_iter().map(|r| r.received_at).collect::<Vec<_>>()
        }
    };
    assert_eq!(timeline("u1").await, [6, 5, 4, 1]);
    assert_eq!(timeline("u2").await, [2]);
    // The chain goes on from the migrated head.
    let pending = s.claim_inbox("w", 100, 60_000, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    s.complete_inbox("w", &done(&[pending[0].id]), 101)
        .await
        .unwrap();
    s.insert_inbox(&[ev("g", "u1", 7)]).await.unwrap();
    assert_eq!(timeline("u1").await, [7, 6, 5, 4, 1]);
}

/// Issue 25: the spend area (`Spend`) reads back each send's class and price as the sender
/// recorded them: the consultation messages since the last interaction, a class's sends since
/// an instant, the day's spend, and spend per rule, channel, class and hour.
async fn spend_counts_what_was_sent_and_its_price(kind: &str) {
    use zaloflow::store::{JobLane, JobOutcome, JobResult};
    use zaloflow_core::cost::{SendClass, SendCost};
    let (_db, s) = open(kind).await;
    let mut met = ContactChange::new("u1", 1000);
    met.interaction_at = Some(1000);
    met.interactions = 1;
    s.apply_effects(
        &Effects {
            contacts: vec![met],
            ..Default::default()
        },
        1000,
    )
    .await
    .unwrap();
    assert_eq!(
        s.consultation_sends("u1").await.unwrap(),
        (Some(1000), vec![])
    );
    assert_eq!(
        s.consultation_sends("nobody").await.unwrap(),
        (None, vec![])
    );
    let job = |key: &str, rule: &str| zaloflow::store::NewJob {
        channel: "zalo".into(),
        user_id: "u1".into(),
        payload: "{}".into(),
        priority: 0,
        run_at: 10,
        rule_id: Some(rule.into()),
        source: "test".into(),
        dedupe_key: Some(key.into()),
        variant: None,
        skip: None,
    };
    s.enqueue_jobs(
        &[
            job("a", "reply"),
            job("b", "reply"),
            job("c", "promo"),
            job("d", "promo"),
        ],
        10,
    )
    .await
    .unwrap();
    let claimed = s
        .claim_jobs("w", 2_000, 2_000, 60_000, 10, JobLane::All)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let by_key: HashMap<i64, usize> = claimed.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    let mut ids: Vec<i64> = by_key.keys().copied().collect();
    ids.sort();
    let sent = |id: i64, class: SendClass, vnd: i64| JobOutcome {
        id,
        result: JobResult::Sent {
            provider_id: None,
            cost: Some(SendCost { class, vnd }),
        },
        contact: None,
    };
    s.finish_jobs(
        "w",
        &[
            sent(ids[0], SendClass::ConsultationFree, 0),
            sent(ids[1], SendClass::ConsultationPaid, 55),
            sent(ids[2], SendClass::Promotion, 165),
            // Not sent: no class, no cost.
            JobOutcome {
                id: ids[3],
                result: JobResult::Dead {
                    error: "refused".into(),
                    code: Some(-201),
                },
                contact: None,
            },
        ],
        2_000,
    )
    .await
    .unwrap();
    let j = s.get_job(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (j.send_class.as_deref(), j.cost_vnd),
        (Some("consultation_paid"), Some(55))
    );
    let dead = s.get_job(ids[3]).await.unwrap().unwrap();
    assert_eq!((dead.send_class, dead.cost_vnd), (None, None));
    let (last, mut cs) = s.consultation_sends("u1").await.unwrap();
    cs.sort();
    assert_eq!((last, cs), (Some(1000), vec![ids[0], ids[1]]));
    assert_eq!(
        s.class_send_ids("u1", "promotion", 2_000).await.unwrap(),
        vec![ids[2]]
    );
    assert!(s
        .class_send_ids("u1", "promotion", 2_001)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.spent_since(0).await.unwrap(), 220);
    assert_eq!(s.spent_since(2_001).await.unwrap(), 0);
    let rows = s.spend_rows(0).await.unwrap();
    let total: (i64, i64) = rows
        .iter()
        .fold((0, 0), |a, r| (a.0 + r.sends, a.1 + r.vnd));
    assert_eq!(total, (3, 220));
    let promo = rows.iter().find(|r| r.send_class == "promotion").unwrap();
    assert_eq!(
        (
            promo.rule_id.as_deref(),
            promo.channel.as_str(),
            promo.hour,
            promo.vnd
        ),
        (Some("promo"), "zalo", 0, 165)
    );
}

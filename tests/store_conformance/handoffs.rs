//! Handoffs to people: opened by effects, listed, claimed, escalated, resolved.

use zaloflow::store::handoff::{Breach, HandoffUpdate};
use zaloflow::store::{Effects, NewJob};
use zaloflow_core::handoff::{HandoffChange, HandoffMessage, NewHandoff};

use super::open;

both!(a_handoff_is_claimed_escalated_and_resolved,);

fn opening(user: &str, at: i64, deadline: i64) -> Effects {
    Effects {
        handoffs: vec![HandoffChange::Open(Box::new(NewHandoff {
            user_id: user.into(),
            contact_name: Some("Anh".into()),
            priority: 1,
            team: Some("care".into()),
            advisor: None,
            rule_id: Some("vip".into()),
            note: None,
            opened_at: at,
            deadline_at: deadline,
            message: Some(HandoffMessage {
                msg_id: Some("m1".into()),
                text: Some("help".into()),
                at,
            }),
            notices: vec![],
            source: "rule".into(),
        }))],
        ..Default::default()
    }
}

fn breach_job() -> NewJob {
    NewJob {
        channel: "chat".into(),
        user_id: String::new(),
        payload: "{}".into(),
        priority: 0,
        run_at: 3_000,
        rule_id: None,
        source: "breach".into(),
        dedupe_key: Some("breach:1".into()),
        variant: None,
        skip: None,
    }
}

async fn a_handoff_is_claimed_escalated_and_resolved(kind: &str) {
    let (_db, s) = open(kind).await;
    s.apply_effects(&opening("u1", 1_000, 2_000), 1_000)
        .await
        .unwrap();
    let all = s.list_handoffs(&[], 10).await.unwrap();
    assert_eq!(all.len(), 1);
    let id = all[0].id;
    let h = s.get_handoff(id).await.unwrap().unwrap();
    assert_eq!(
        (
            h.user_id.as_str(),
            h.status.as_str(),
            h.first_text.as_deref(),
            h.deadline_at
        ),
        ("u1", "open", Some("help"), 2_000)
    );
    assert!(s.get_handoff(id + 100).await.unwrap().is_none());
    let msgs = s.handoff_messages(id).await.unwrap();
    assert_eq!(
        msgs.iter()
            .map(|m| (m.direction.as_str(), m.text.as_deref()))
            .collect::<Vec<_>>(),
        [("in", Some("help"))]
    );

    assert!(s
        .handoffs_past_deadline(1_999, 1, 10)
        .await
        .unwrap()
        .is_empty());
    let late = s.handoffs_past_deadline(2_500, 1, 10).await.unwrap();
    assert_eq!(late.iter().map(|h| h.id).collect::<Vec<_>>(), [id]);
    let breach = Breach {
        handoff_id: id,
        level: 1,
        due_at: 2_000,
        recorded_at: 2_500,
        channel: None,
    };
    assert!(s
        .record_breach(&breach, &breach_job(), 2_500)
        .await
        .unwrap());
    assert!(
        !s.record_breach(&breach, &breach_job(), 2_600)
            .await
            .unwrap(),
        "already at that level"
    );
    assert_eq!(s.handoff_breaches(id).await.unwrap(), [breach]);
    assert_eq!(
        s.get_handoff(id).await.unwrap().unwrap().escalation_level,
        1
    );
    assert!(s
        .handoffs_past_deadline(2_500, 1, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.list_jobs(None, 10).await.unwrap().len(),
        1,
        "the breach's job"
    );

    match s.claim_handoff(id, "agent", 3_000).await.unwrap() {
        HandoffUpdate::Updated {
            handoff,
            first_response,
        } => {
            assert!(first_response);
            assert_eq!(
                (handoff.claimed_by.as_deref(), handoff.responded_at),
                (Some("agent"), Some(3_000))
            );
        }
        other => panic!("not claimed: {other:?}"),
    }
    assert!(matches!(
        s.claim_handoff(id, "other", 3_100).await.unwrap(),
        HandoffUpdate::Unchanged(_)
    ));
    assert!(matches!(
        s.claim_handoff(id + 100, "agent", 3_100).await.unwrap(),
        HandoffUpdate::NotFound
    ));
    match s.resolve_handoff(id, "agent", 4_000).await.unwrap() {
        HandoffUpdate::Updated {
            handoff,
            first_response,
        } => {
            assert!(!first_response);
            assert_eq!(
                (handoff.status.as_str(), handoff.resolved_at),
                ("resolved", Some(4_000))
            );
        }
        other => panic!("not resolved: {other:?}"),
    }
    assert_eq!(s.list_handoffs(&["resolved"], 10).await.unwrap().len(), 1);
    assert!(s.list_handoffs(&["open"], 10).await.unwrap().is_empty());
    let t = s.handoff_timings(0).await.unwrap();
    assert_eq!(
        t.iter()
            .map(|t| (t.status.as_str(), t.opened_at, t.responded_at))
            .collect::<Vec<_>>(),
        [("resolved", 1_000, Some(3_000))]
    );
    assert!(s.handoff_timings(5_000).await.unwrap().is_empty());
}

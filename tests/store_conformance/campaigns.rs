//! The scheduler's side: decisions and their marks, campaign members and steps, watermarks,
//! the effectiveness counts.

use zaloflow::store::{CampaignChange, ContactChange, Decision, Effects, NewJob, RuleFire};

use super::open;

both!(
    decisions_apply_once_per_key,
    campaign_members_move_through_steps,
    scheduler_values_are_kept,
);

fn job(user: &str, rule: &str, key: &str) -> NewJob {
    NewJob {
        channel: "zalo".into(),
        user_id: user.into(),
        payload: "{}".into(),
        priority: 0,
        run_at: 5_000,
        rule_id: Some(rule.into()),
        source: "scheduler".into(),
        dedupe_key: Some(key.into()),
        variant: None,
        skip: None,
    }
}

fn entering(user: &str, at: i64, next_at: i64) -> Decision {
    Decision {
        key: Some(format!("enter:{user}")),
        effects: Effects {
            contacts: vec![ContactChange {
                user_id: user.into(),
                seen_at: at,
                ..Default::default()
            }],
            campaigns: vec![CampaignChange::Enter {
                campaign: "drip".into(),
                contact_id: user.into(),
                entered_at: at,
                step: 0,
                step_id: None,
                next_at: Some(next_at),
            }],
            fires: vec![RuleFire {
                user_id: user.into(),
                rule_id: "drip".into(),
                period_key: "once".into(),
                fired_at: at,
            }],
            jobs: vec![job(user, "drip", &format!("j:{user}"))],
            ..Default::default()
        },
    }
}

async fn decisions_apply_once_per_key(kind: &str) {
    let (_db, s) = open(kind).await;
    let ds = [entering("u1", 1_000, 2_000), entering("u2", 1_000, 9_000)];
    assert_eq!(s.apply_decisions(&ds, 1_000).await.unwrap(), [0, 1]);
    assert_eq!(
        s.apply_decisions(&ds, 1_100).await.unwrap(),
        Vec::<usize>::new(),
        "keys already taken"
    );
    let mut marks = s
        .existing_marks(&["enter:u1".into(), "enter:u3".into(), "enter:u2".into()])
        .await
        .unwrap();
    marks.sort();
    assert_eq!(marks, ["enter:u1", "enter:u2"]);
    assert_eq!(s.list_jobs(None, 10).await.unwrap().len(), 2);
    let fires = s.load_rule_state(&["u1".into()]).await.unwrap();
    assert_eq!(
        fires
            .iter()
            .map(|f| (f.user_id.as_str(), f.rule_id.as_str(), f.fired_at))
            .collect::<Vec<_>>(),
        [("u1", "drip", 1_000)]
    );

    let counts = s.report_counts(0, None).await.unwrap();
    assert_eq!(counts.fires, [("drip".to_string(), 2)]);
    let pending: i64 = counts
        .jobs
        .iter()
        .filter(|j| j.rule_id == "drip" && j.status == "pending")
        .map(|j| j.n)
        .sum();
    assert_eq!(pending, 2);
    let other = s.report_counts(0, Some("other")).await.unwrap();
    assert!(other.fires.is_empty() && other.jobs.is_empty());
    let later = s.report_counts(4 * 3_600_000, None).await.unwrap();
    assert!(later.fires.is_empty() && later.jobs.is_empty());
}

async fn campaign_members_move_through_steps(kind: &str) {
    let (_db, s) = open(kind).await;
    s.apply_decisions(
        &[entering("u1", 1_000, 2_000), entering("u2", 1_000, 9_000)],
        1_000,
    )
    .await
    .unwrap();
    let m = s.load_campaign_members(&["u1".into()]).await.unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (
            m[0].campaign.as_str(),
            m[0].contact_id.as_str(),
            m[0].step,
            m[0].next_at
        ),
        ("drip", "u1", 0, Some(2_000))
    );
    let due = s.due_campaign_members(None, 5_000, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|m| m.contact_id.as_str())
            .collect::<Vec<_>>(),
        ["u1"]
    );
    assert_eq!(
        s.due_campaign_members(Some(&["drip".into()]), 10_000, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(s
        .due_campaign_members(Some(&["other".into()]), 10_000, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.campaign_members("drip").await.unwrap().len(), 2);

    assert!(s.campaign_steps("drip").await.unwrap().is_empty());
    let steps = ["welcome".to_string(), "follow_up".to_string()];
    s.set_campaign_steps("drip", &steps, 1_500).await.unwrap();
    assert_eq!(s.campaign_steps("drip").await.unwrap(), steps);
    s.set_campaign_steps("drip", &steps[..1], 1_600)
        .await
        .unwrap();
    assert_eq!(s.campaign_steps("drip").await.unwrap(), steps[..1]);
    // Rows stored by position get the id of their step.
    assert_eq!(
        s.map_member_positions("drip", &steps, 1_700).await.unwrap(),
        2
    );
    assert_eq!(
        s.map_member_positions("drip", &steps, 1_800).await.unwrap(),
        0
    );
    let m = s.campaign_members("drip").await.unwrap();
    assert!(m.iter().all(|m| m.step_id.as_deref() == Some("welcome")));
    let counts = s.member_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].campaign.as_str(),
            counts[0].step_id.as_deref(),
            counts[0].members
        ),
        ("drip", Some("welcome"), 2)
    );
}

async fn scheduler_values_are_kept(kind: &str) {
    let (_db, s) = open(kind).await;
    assert_eq!(s.scheduler_value("inactive").await.unwrap(), None);
    s.set_scheduler_value("inactive", 42, 1).await.unwrap();
    s.set_scheduler_value("other", 7, 1).await.unwrap();
    assert_eq!(s.scheduler_value("inactive").await.unwrap(), Some(42));
    s.set_scheduler_value("inactive", 43, 2).await.unwrap();
    assert_eq!(s.scheduler_value("inactive").await.unwrap(), Some(43));
    assert_eq!(s.scheduler_value("other").await.unwrap(), Some(7));
}

//! Issue 25: what each send costs and what holds it back, on both backends, through the real
//! service, the tick's sender and the fake Zalo (which refuses as PROTOCOL.md §5 says):
//! consultation messages free for 8 within 48 h of the last interaction then paid; promotions
//! priced; the report's cost section; one promotion a day per user held (never sent to be
//! refused); the daily budget holding sends and resuming the next day, staff told once; `-244`
//! recorded as an opt-out and no later send of that type planned; `-321` holding template sends
//! and telling staff once.

mod common;
mod sched;

use common::*;
use sched::*;
use serde_json::json;
use zaloflow::store::Job;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    consultations_are_free_then_paid_and_the_report_adds_up_the_week,
    a_second_promotion_the_same_day_waits_for_tomorrow,
    the_daily_budget_holds_sends_and_staff_hear_once,
    opt_outs_and_an_empty_billing_account,
);

const RULES: &str = "tags:
  vip_customer: khách VIP
  uu_dai: nhận ưu đãi
rules:
  - id: tra_loi
    when: message
    do:
      - send: Dạ shop nhận được rồi ạ!
  - id: hoi_lai
    when: follow
    do:
      - wait: 50h
      - send: Bạn còn cần shop tư vấn gì không?
  - id: km_1
    when:
      tag_added: uu_dai
    do:
      - send: {text: Ưu đãi 1! Giảm 10%., via: zalo_promotion}
  - id: km_2
    when:
      tag_added: uu_dai
    do:
      - send: {text: Ưu đãi 2! Giảm 20%., via: zalo_promotion}
  - id: vip_km
    when:
      tag_added: vip_customer
    do:
      - send: {text: Quà cho khách VIP! Giảm 30%., via: zalo_promotion}
";

fn tagged(tag: &str, user: &str, ts: i64) -> String {
    event_at(
        "add_user_to_tag",
        "",
        ts,
        json!({"tag": {"name": tag, "user_ids": [user]}}),
    )
}

async fn jobs_of(s: &Shop, rule: &str) -> Vec<Job> {
    let mut v: Vec<Job> = s
        .store
        .list_jobs(None, 500)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.rule_id.as_deref() == Some(rule))
        .collect();
    v.sort_by_key(|j| j.id);
    v
}

fn promotions_to(s: &Shop, user: &str) -> usize {
    s.zalo
        .arrivals()
        .iter()
        .filter(|a| a.user_id.as_deref() == Some(user) && a.path.ends_with("/promotion"))
        .count()
}

async fn consultations_are_free_then_paid_and_the_report_adds_up_the_week(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    s.event(follow("8501", t0)).await;
    for i in 1..=10 {
        s.event(message("8501", &format!("m{i}"), t0 + i * MINUTE))
            .await;
    }
    // The ten replies go out after the last message: 8 in the free tier, then 2 paid.
    let r = s.tick(t0 + HOUR).await;
    assert_eq!(r.delivered.clone().unwrap().sent, 10, "{r}");
    let replies = jobs_of(&s, "tra_loi").await;
    let classes: Vec<(&str, i64)> = replies
        .iter()
        .map(|j| (j.send_class.as_deref().unwrap(), j.cost_vnd.unwrap()))
        .collect();
    assert_eq!(
        classes
            .iter()
            .filter(|c| **c == ("consultation_free", 0))
            .count(),
        8,
        "{classes:?}"
    );
    assert_eq!(
        classes
            .iter()
            .filter(|c| **c == ("consultation_paid", 55))
            .count(),
        2,
        "{classes:?}"
    );
    // A VIP promotion the same day.
    s.event(tagged("vip_customer", "8501", t0 + 2 * HOUR)).await;
    s.tick(t0 + 3 * HOUR).await;
    let promo = jobs_of(&s, "vip_km").await;
    assert_eq!(promo[0].status, "sent");
    assert_eq!(
        (promo[0].send_class.as_deref(), promo[0].cost_vnd),
        (Some("promotion"), Some(165))
    );
    // 50 h after following: past the 48 h free tier but within Zalo's 7 days: paid.
    s.tick(t0 + 50 * HOUR).await;
    let again = jobs_of(&s, "hoi_lai").await;
    assert_eq!(again[0].status, "sent", "{again:?}");
    assert_eq!(
        (again[0].send_class.as_deref(), again[0].cost_vnd),
        (Some("consultation_paid"), Some(55))
    );
    // The report: 330 VND, per rule, channel and day; the free share.
    let report = zaloflow::report::make(&s.store, t0 - DAY, None, t0 + 7 * DAY, TZ)
        .await
        .unwrap();
    let sp = &report.spend;
    assert_eq!((sp.total_vnd, sp.sends), (330, 12));
    assert_eq!((sp.consultation_free, sp.consultation_sends), (8, 11));
    let rule = |k: &str| sp.by_rule.iter().find(|l| l.key == k).cloned().unwrap();
    assert_eq!((rule("tra_loi").sends, rule("tra_loi").vnd), (10, 110));
    assert_eq!(rule("vip_km").vnd, 165);
    assert_eq!(rule("hoi_lai").vnd, 55);
    let days: Vec<(&str, i64)> = sp.by_day.iter().map(|l| (l.key.as_str(), l.vnd)).collect();
    assert_eq!(days, vec![("2027-03-01", 275), ("2027-03-03", 55)]);
    let text = zaloflow::report::render::text(&report, TZ, zaloflow::i18n::Lang::En);
    assert!(
        text.contains(
            "330 VND for 12 messages sent; 8 of 11 consultation messages in Zalo's free tier (73%)"
        ),
        "{text}"
    );
    assert!(text.contains("tra_loi 110 VND (10 sent)"), "{text}");
    s.stop().await;
}

async fn a_second_promotion_the_same_day_waits_for_tomorrow(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    s.event(follow("8601", t0)).await;
    s.event(tagged("uu_dai", "8601", t0 + MINUTE)).await;
    let r = s.tick(t0 + HOUR).await;
    assert_eq!(r.delivered.clone().unwrap().sent, 1, "{r}");
    // The tick counts the held send apart from retries.
    assert!(
        r.to_string()
            .contains("đã giao: 1 gửi, 0 bỏ qua, 1 giữ lại, 0 thử lại sau"),
        "{r}"
    );
    // One went; the other was not sent to be refused (-211): it waits, and says why.
    assert_eq!(promotions_to(&s, "8601"), 1);
    let (a, b) = (jobs_of(&s, "km_1").await, jobs_of(&s, "km_2").await);
    let held = if a[0].status == "sent" { &b[0] } else { &a[0] };
    assert_eq!(held.status, "pending");
    assert_eq!(held.run_at, hcm(2027, 3, 2, 7, 0));
    let why = held.last_error.as_deref().unwrap();
    assert!(
        why.starts_with("held: Zalo takes 1 promotion a day per user and this user reached it"),
        "{why}"
    );
    // The contact's timeline shows it.
    let timeline = s.store.contact_jobs(&["8601".into()], 50).await.unwrap();
    assert!(timeline
        .iter()
        .any(|j| j.last_error.as_deref() == Some(why)));
    // Tomorrow at 07:00 it goes.
    let r = s.tick(hcm(2027, 3, 2, 7, 0)).await;
    assert_eq!(r.delivered.clone().unwrap().sent, 1, "{r}");
    assert_eq!(promotions_to(&s, "8601"), 2);
    assert_eq!(
        s.zalo
            .messages()
            .iter()
            .filter(|m| m.kind == "promotion")
            .count(),
        2,
        "no promotion was refused"
    );
    s.stop().await;
}

async fn the_daily_budget_holds_sends_and_staff_hear_once(kind: &str) {
    let mut s = shop_settings(
        kind,
        Rules::Yaml(RULES),
        false,
        &[("ZALOFLOW_DAILY_BUDGET_VND", "400")],
    )
    .await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    for u in ["8701", "8702", "8703"] {
        s.event(follow(u, t0)).await;
        s.event(tagged("vip_customer", u, t0 + MINUTE)).await;
    }
    // 165 + 165 = 330 fits in 400; a third would make 495.
    let r = s.tick(t0 + HOUR).await;
    assert_eq!(
        r.delivered.clone().unwrap().sent,
        2 + 1,
        "two promotions and the staff notice: {r}"
    );
    let jobs = jobs_of(&s, "vip_km").await;
    let held: Vec<&Job> = jobs.iter().filter(|j| j.status == "pending").collect();
    assert_eq!(held.len(), 1, "{jobs:?}");
    let why = held[0].last_error.as_deref().unwrap();
    assert!(
        why.contains("today's budget of 400 VND is spent (330 VND)"),
        "{why}"
    );
    assert_eq!(
        held[0].run_at,
        hcm(2027, 3, 2, 7, 0),
        "a promotion waits for 07:00"
    );
    assert_eq!(s.notices("Ngân sách"), 1);
    // Another tick the same day: still held, staff not told again.
    s.tick(t0 + 2 * HOUR).await;
    assert_eq!(s.notices("Ngân sách"), 1);
    // The next day it goes.
    let r = s.tick(hcm(2027, 3, 2, 7, 0)).await;
    assert_eq!(r.delivered.clone().unwrap().sent, 1, "{r}");
    assert!(jobs_of(&s, "vip_km")
        .await
        .iter()
        .all(|j| j.status == "sent"));
    s.stop().await;
}

async fn opt_outs_and_an_empty_billing_account(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    // -244: the user refused promotions.
    s.event(follow("8801", t0)).await;
    s.zalo.opt_out("8801", "promotion");
    s.event(tagged("vip_customer", "8801", t0 + MINUTE)).await;
    s.tick(t0 + HOUR).await;
    let j = &jobs_of(&s, "vip_km").await[0];
    assert_eq!(j.status, "skipped");
    assert_eq!(j.skip_reason.as_deref(), Some("opted_out"));
    let c = s.store.get_contact("8801").await.unwrap().unwrap();
    assert_eq!(
        c.fields.get("zalo_optout_promotion").map(String::as_str),
        Some("yes")
    );
    let calls = promotions_to(&s, "8801");
    // A later promotion is not planned to be sent: recorded as skipped, no call made.
    s.event(tagged("uu_dai", "8801", t0 + 2 * HOUR)).await;
    s.tick(t0 + 3 * HOUR).await;
    for rule in ["km_1", "km_2"] {
        let j = &jobs_of(&s, rule).await[0];
        assert_eq!(
            (j.status.as_str(), j.skip_reason.as_deref()),
            ("skipped", Some("opted_out")),
            "{j:?}"
        );
    }
    assert_eq!(promotions_to(&s, "8801"), calls);
    // -321: the billing account is empty: the promotion waits, staff hear once.
    s.zalo.set_billing_empty(true);
    s.event(follow("8802", t0)).await;
    s.event(tagged("vip_customer", "8802", t0 + 4 * HOUR)).await;
    s.tick(t0 + 5 * HOUR).await;
    let j = &jobs_of(&s, "vip_km").await[1];
    assert_eq!(j.user_id, "8802");
    assert_eq!(j.status, "pending");
    assert!(
        j.last_error
            .as_deref()
            .unwrap()
            .starts_with("held: Zalo's billing account is out of money (-321)"),
        "{j:?}"
    );
    assert_eq!(j.run_at, t0 + 6 * HOUR);
    assert_eq!(s.notices("hết tiền"), 1);
    s.tick(t0 + 6 * HOUR).await;
    assert_eq!(s.notices("hết tiền"), 1, "told once");
    // Topped up: it goes.
    s.zalo.set_billing_empty(false);
    s.tick(t0 + 7 * HOUR).await;
    let j = &jobs_of(&s, "vip_km").await[1];
    assert_eq!(j.status, "sent", "{j:?}");
    s.stop().await;
}

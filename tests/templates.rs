//! Template messages as Zalo announces them, on both backends, through the real service (the
//! webhook's inbox), the tick's sender and the fake Zalo (which refuses a disabled template and
//! sends past the OA's daily quota): `change_template_status` to a disabled state holds that
//! template's sends (no call made) and tells staff once, enabling it again lets them go;
//! `change_oa_daily_quota` holds the sends past the quota until the next day, staff told once.

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
    the_store_keeps_template_statuses_and_the_quota,
    tag_hours_and_tag_3_caps_are_planned_for,
    a_disabled_template_holds_its_sends_and_staff_hear_once,
    the_daily_template_quota_holds_the_rest_until_tomorrow,
);

const RULES: &str = r#"tags:
  don_hang: đơn hàng mới
rules:
  - id: xac_nhan
    when:
      tag_added: don_hang
    do:
      - template: {id: "T-ORDER", tag: transaction, data: {ten: "{{display_name | \"bạn\"}}"}}
"#;

fn tagged(user: &str, ts: i64) -> String {
    event_at(
        "add_user_to_tag",
        "",
        ts,
        json!({"tag": {"name": "don_hang", "user_ids": [user]}}),
    )
}

fn template_status(status: &str, ts: i64) -> String {
    event_at(
        "change_template_status",
        "",
        ts,
        json!({"oa_id": "388613280878808645", "template_id": "T-ORDER",
               "status": {"prev_status": "ENABLE", "new_status": status}}),
    )
}

async fn jobs(s: &Shop) -> Vec<Job> {
    let mut v: Vec<Job> = s
        .store
        .list_jobs(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.rule_id.as_deref() == Some("xac_nhan"))
        .collect();
    v.sort_by_key(|j| j.id);
    v
}

fn template_calls(s: &Shop) -> usize {
    s.zalo
        .messages()
        .iter()
        .filter(|m| m.kind == "template")
        .count()
}

async fn the_store_keeps_template_statuses_and_the_quota(kind: &str) {
    let db = Db::new(kind).await;
    let store = zaloflow::store::open(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.template_status("T1").await.unwrap(), None);
    assert_eq!(
        store.set_template_status("T1", "DISABLE", 1).await.unwrap(),
        None
    );
    assert_eq!(
        store.set_template_status("T1", "ENABLE", 2).await.unwrap(),
        Some("DISABLE".to_string())
    );
    assert_eq!(
        store.template_status("T1").await.unwrap().as_deref(),
        Some("ENABLE")
    );
    assert_eq!(store.template_status("T2").await.unwrap(), None);
    assert_eq!(store.daily_quota().await.unwrap(), None);
    store.set_daily_quota(Some(5000), 3).await.unwrap();
    assert_eq!(store.daily_quota().await.unwrap(), Some(5000));
    store.set_daily_quota(None, 4).await.unwrap();
    assert_eq!(store.daily_quota().await.unwrap(), None);
    assert_eq!(store.template_sends_since(0).await.unwrap(), 0);
}

const TAGGED_RULES: &str = r#"tags:
  cham_soc: chăm sóc
  khuyen_mai: khuyến mãi
rules:
  - id: cham_soc
    when:
      tag_added: cham_soc
    do:
      - template: {id: "T-CARE", tag: customer_care, data: {ten: "{{display_name | \"bạn\"}}"}}
  - id: km_tin_mau
    when:
      tag_added: khuyen_mai
    do:
      - send: {text: Ưu đãi! Giảm 20%., via: zalo_promotion}
      - template: {id: "T-PROMO", tag: promotion, data: {ma: "KM20"}}
"#;

/// Tags 2 and 3 go out 07:00–22:00 only: one planned at 23:00 waits for 07:00 (no call at
/// night); a tag-3 template is a promotion: after a promotion the same day, it waits for the
/// next day (Zalo takes one a day per user).
async fn tag_hours_and_tag_3_caps_are_planned_for(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(TAGGED_RULES)).await;
    s.zalo.add_template("T-CARE", 2, true);
    s.zalo.add_template("T-PROMO", 3, true);
    let night = hcm(2027, 3, 1, 23, 0);
    s.event(follow("9501", night - HOUR)).await;
    s.event(event_at(
        "add_user_to_tag",
        "",
        night,
        json!({"tag": {"name": "cham_soc", "user_ids": ["9501"]}}),
    ))
    .await;
    s.tick(night + MINUTE).await;
    let care: Vec<Job> = s
        .store
        .list_jobs(None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.rule_id.as_deref() == Some("cham_soc"))
        .collect();
    assert_eq!(care[0].status, "pending");
    assert_eq!(care[0].run_at, hcm(2027, 3, 2, 7, 0));
    assert_eq!(template_calls(&s), 0, "nothing at night");
    s.tick(hcm(2027, 3, 2, 7, 1)).await;
    assert_eq!(template_calls(&s), 1);

    let day = hcm(2027, 3, 2, 10, 0);
    s.event(event_at(
        "add_user_to_tag",
        "",
        day,
        json!({"tag": {"name": "khuyen_mai", "user_ids": ["9501"]}}),
    ))
    .await;
    s.tick(day + MINUTE).await;
    let promo: Vec<Job> = s
        .store
        .list_jobs(None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.rule_id.as_deref() == Some("km_tin_mau"))
        .collect();
    let statuses: Vec<(&str, &str)> = promo
        .iter()
        .map(|j| (j.channel.as_str(), j.status.as_str()))
        .collect();
    assert!(statuses.contains(&("zalo", "sent")), "{promo:#?}");
    let held = promo.iter().find(|j| j.channel == "zns").unwrap();
    assert_eq!(held.status, "pending", "{held:?}");
    assert!(held
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("held: Zalo takes 1 promotion a day per user"));
    assert_eq!(held.run_at, hcm(2027, 3, 3, 7, 0));
    s.tick(hcm(2027, 3, 3, 7, 1)).await;
    let sent = s
        .zalo
        .messages()
        .iter()
        .filter(|m| m.kind == "template_promotion")
        .count();
    assert_eq!(sent, 1);
}

async fn a_disabled_template_holds_its_sends_and_staff_hear_once(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    s.zalo.add_template("T-ORDER", 1, true);
    let t0 = hcm(2027, 3, 1, 10, 0);
    // Zalo disables the template (and the fake refuses it, as Zalo would).
    s.zalo.set_template_enabled("T-ORDER", false);
    s.event(template_status("DISABLE", t0)).await;
    // A repeated announcement tells no one again.
    s.event(template_status("DISABLE", t0 + MINUTE)).await;
    s.tick(t0 + 2 * MINUTE).await;
    assert_eq!(s.notices("T-ORDER sang trạng thái DISABLE"), 1);

    s.event(follow("9301", t0)).await;
    s.event(tagged("9301", t0 + 3 * MINUTE)).await;
    let r = s.tick(t0 + 4 * MINUTE).await;
    let j = &jobs(&s).await[0];
    assert_eq!(j.status, "pending", "{j:?}");
    assert!(
        j.last_error
            .as_deref()
            .unwrap()
            .starts_with("held: Zalo set template T-ORDER to DISABLE"),
        "{j:?}"
    );
    assert_eq!(
        template_calls(&s),
        0,
        "no call while the template is disabled"
    );
    assert!(r.to_string().contains("1 giữ lại"), "{r}");

    // Enabled again: staff hear it, and the held send goes at its next try.
    s.zalo.set_template_enabled("T-ORDER", true);
    s.event(template_status("ENABLE", t0 + 10 * MINUTE)).await;
    s.tick(t0 + 2 * HOUR).await;
    assert_eq!(s.notices("Mẫu tin T-ORDER đã được bật lại"), 1);
    let j = &jobs(&s).await[0];
    assert_eq!(j.status, "sent", "{j:?}");
    assert_eq!(j.send_class.as_deref(), Some("template_user"));
    assert_eq!(template_calls(&s), 1);
}

async fn the_daily_template_quota_holds_the_rest_until_tomorrow(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    s.zalo.add_template("T-ORDER", 1, true);
    // The fake refuses a third template today: zaloflow must not try it.
    s.zalo.set_template_quota(Some(2));
    let t0 = hcm(2027, 3, 1, 10, 0);
    s.event(event_at(
        "change_oa_daily_quota",
        "",
        t0,
        json!({"oa_id": "388613280878808645", "data": {"daily_quota": "2"}}),
    ))
    .await;
    for u in ["9401", "9402", "9403"] {
        s.event(follow(u, t0)).await;
        s.event(tagged(u, t0 + MINUTE)).await;
    }
    let r = s.tick(t0 + 2 * MINUTE).await;
    assert_eq!(r.delivered.clone().unwrap().held, 1, "{r}");
    assert_eq!(template_calls(&s), 2);
    let held: Vec<Job> = jobs(&s)
        .await
        .into_iter()
        .filter(|j| j.status == "pending")
        .collect();
    assert_eq!(held.len(), 1);
    assert!(
        held[0]
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("held: the OA's daily quota of 2 template messages is used up"),
        "{:?}",
        held[0]
    );
    // Tomorrow (tag 1: any hour, from midnight).
    assert_eq!(held[0].run_at, hcm(2027, 3, 2, 0, 0));
    // Staff heard once, however many sends it held.
    s.tick(t0 + 3 * MINUTE).await;
    assert_eq!(s.notices("hạn mức tin mẫu"), 1);
    s.tick(hcm(2027, 3, 2, 0, 1)).await;
    assert_eq!(template_calls(&s), 3);
    assert!(jobs(&s).await.iter().all(|j| j.status == "sent"));
}

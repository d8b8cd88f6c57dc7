//! The tick at chosen instants, on both backends, over the fake Zalo and an HTTP sink:
//! re-activation (seed 002, strategy 2), scheduled rules in the OA time zone, special days at
//! local midnight, field changes, idempotent ticks, catching up after downtime without stale
//! sends, two instances ticking at once on PostgreSQL, and `zaloflow tick --at` itself.

mod common;
mod sched;

use std::time::Duration;

use common::*;
use sched::*;
use serde_json::json;
use zaloflow::scheduler::ScheduleStatus;
use zaloflow::store::ContactChange;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    reactivation_stages_once_per_silence,
    schedules_at_their_local_times_and_never_stale,
    special_days_at_local_midnight_once_a_year,
    field_changes_run_once_per_change,
    catch_up_after_downtime_without_stale_clock_times,
    tick_summary_counts_skipped_sends_apart,
    sends_zalo_would_refuse_are_recorded_with_their_reason,
    promotions_planned_at_night_go_out_at_seven,
);

const STAGE_1: &str =
    "Hello bạn! Dạo này bạn khỏe không? OA có nhiều ưu đãi và nội dung hay lắm, ghé thăm mình nhé!";
const STAGE_2: &str = "Ưu đãi dành riêng cho bạn! Giảm 30% cho đơn hàng đầu tiên trong tuần này.";

fn promo(text: &str) -> (String, String) {
    ("promotion".to_string(), text.to_string())
}

/// Seed 002 strategy 2 with the shipped rules: stage 1 after 7 silent days and stage 2 after
/// 15, as promotion messages (Zalo refuses customer-service messages after 7 days), each once
/// per silence; never to a user who unfollowed; a user who writes is no longer silent.
async fn reactivation_stages_once_per_silence(kind: &str) {
    let mut s = shop(kind, Rules::Shipped).await;
    // Monday 1 March 2027, 10:00.
    let t0 = hcm(2027, 3, 1, 10, 0);
    for u in ["8001", "8002", "8003", "8004"] {
        s.event(follow(u, t0 - HOUR)).await;
        s.event(message(u, &format!("m-{u}"), t0)).await;
    }
    // The welcomes and greetings go out.
    s.tick(t0).await;
    s.event(unfollow("8002", t0 + HOUR)).await;
    s.zalo.set_follower("8002", false);
    s.event(message("8003", "m-8003-b", t0 + 5 * DAY)).await;
    let calls_before = |s: &Shop| s.zalo_calls_to("8002");
    let before = calls_before(&s);

    s.tick(t0 + 6 * DAY).await;
    assert!(
        !s.zalo_to("8001").contains(&promo(STAGE_1)),
        "day 6: nothing yet"
    );
    let r = s.tick(t0 + 7 * DAY).await;
    assert_eq!(r.reactivation["kich_hoat_giai_doan_1"].fired, 2, "{r}");
    for u in ["8001", "8004"] {
        assert_eq!(s.zalo_to(u).last(), Some(&promo(STAGE_1)), "{u}");
    }
    assert!(
        !s.zalo_to("8003").contains(&promo(STAGE_1)),
        "8003 wrote on day 5"
    );
    // The same instant again, and the next day: nothing new (once per silence).
    let again = s.tick(t0 + 7 * DAY).await;
    assert_eq!(again.jobs, 0, "{again}");
    s.tick(t0 + 8 * DAY).await;
    assert_eq!(
        s.zalo_to("8001")
            .iter()
            .filter(|m| **m == promo(STAGE_1))
            .count(),
        1
    );
    // 8003's own silence: stage 1 on day 12.
    s.tick(t0 + 12 * DAY).await;
    assert_eq!(s.zalo_to("8003").last(), Some(&promo(STAGE_1)));
    // 8001 writes on day 9: stage 2 never comes in that silence.
    s.event(message("8001", "m-8001-b", t0 + 9 * DAY)).await;
    let r = s.tick(t0 + 15 * DAY).await;
    assert_eq!(r.reactivation["kich_hoat_giai_doan_2"].fired, 1, "{r}");
    assert_eq!(s.zalo_to("8004").last(), Some(&promo(STAGE_2)), "{r}");
    assert!(!s.zalo_to("8001").contains(&promo(STAGE_2)));
    // …and after 7 days of its new silence, stage 1 again.
    s.tick(t0 + 16 * DAY).await;
    assert_eq!(
        s.zalo_to("8001")
            .iter()
            .filter(|m| **m == promo(STAGE_1))
            .count(),
        2
    );
    // Never to the user who unfollowed: not even a refused call.
    assert_eq!(calls_before(&s), before);
    assert!(
        s.zalo_to("8002").iter().all(|(k, _)| k == "cs"),
        "{:?}",
        s.zalo_to("8002")
    );
    // At night the rules wait for the morning (time_between in the shipped file).
    s.event(message("8005", "m-8005", hcm(2027, 3, 1, 23, 0)))
        .await;
    s.event(follow("8005", hcm(2027, 3, 1, 23, 0))).await;
    s.tick(hcm(2027, 3, 8, 23, 30)).await;
    assert!(!s.zalo_to("8005").contains(&promo(STAGE_1)));
    s.tick(hcm(2027, 3, 9, 8, 0)).await;
    assert_eq!(s.zalo_to("8005").last(), Some(&promo(STAGE_1)));
    s.stop().await;
}

const SCHEDULES: &str = r#"
rules:
  - id: tin_sang
    when: {schedule: "0 9 * * *"}
    if: {follows: true}
    do:
      - send: {text: "Chào buổi sáng!", via: zalo_promotion}
  - id: vip_thu_hai
    when: {schedule: "30 9 * * mon"}
    if: {has_tag: vip_customer}
    do: [{sms: "Ưu đãi VIP đầu tuần"}]
"#;

/// `schedule` rules at their cron times in the OA time zone, for followers (or the tagged
/// contacts their conditions name); an occurrence missed by more than the grace period is
/// skipped, not sent late.
async fn schedules_at_their_local_times_and_never_stale(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(SCHEDULES)).await;
    let t0 = hcm(2027, 3, 1, 8, 0); // Monday
    for u in ["8101", "8102", "8103"] {
        s.event(follow(u, t0)).await;
    }
    s.event(unfollow("8103", t0 + MINUTE)).await;
    s.event(event_at(
        "user_submit_info",
        "8102",
        t0,
        json!({"info": {"name": "Vy", "phone": "0912000102"}}),
    ))
    .await;
    s.event(event_at(
        "add_user_to_tag",
        "",
        t0,
        json!({"tag": {"name": "vip_customer", "user_ids": ["8102"]}}),
    ))
    .await;
    let morning = promo("Chào buổi sáng!");
    s.tick(hcm(2027, 3, 1, 8, 59)).await;
    assert!(s.zalo_to("8101").is_empty());
    let r = s.tick(hcm(2027, 3, 1, 9, 0)).await;
    assert_eq!(
        r.schedules[0].status,
        ScheduleStatus::Ran {
            contacts: 2,
            fired: 2
        },
        "{r}"
    );
    assert_eq!(s.zalo_to("8101"), std::slice::from_ref(&morning));
    assert_eq!(s.zalo_to("8102"), std::slice::from_ref(&morning));
    assert!(s.zalo_to("8103").is_empty(), "unfollowed");
    // The same instant, and later in the grace period: nothing new.
    s.tick(hcm(2027, 3, 1, 9, 0)).await;
    s.tick(hcm(2027, 3, 1, 9, 10)).await;
    assert_eq!(s.zalo_to("8101").len(), 1);
    // Monday 09:30: only the VIP, by SMS.
    s.tick(hcm(2027, 3, 1, 9, 30)).await;
    assert_eq!(s.sms_to("84912000102"), ["Ưu đãi VIP đầu tuần"]);
    // Tuesday: the service is down until 11:00 — the 09:00 greeting is not sent late.
    let r = s.tick(hcm(2027, 3, 2, 11, 0)).await;
    assert_eq!(r.schedules[0].status, ScheduleStatus::Stale, "{r}");
    assert!(r.to_string().contains("không gửi muộn"), "{r}");
    assert_eq!(s.zalo_to("8101").len(), 1);
    // Wednesday, five minutes late (within the grace period): sent.
    s.tick(hcm(2027, 3, 3, 9, 5)).await;
    assert_eq!(s.zalo_to("8101"), [morning.clone(), morning]);
    s.stop().await;
}

/// I.6: birthdays from Zalo's `dob` (DD/MM/YYYY) and from forms (`birthday`, YYYY-MM-DD),
/// "3 days before", and a date of the shop's own — on the local date (00:01 in Hồ Chí Minh
/// City is still the previous day in UTC), once a year.
async fn special_days_at_local_midnight_once_a_year(kind: &str) {
    let yaml = r#"
rules:
  - id: sinh_nhat
    when:
      - special_day: {field: dob}
      - special_day: {field: birthday}
    do: [{sms: "Chúc mừng sinh nhật!"}]
  - id: truoc_3_ngay
    when: {special_day: {field: birthday, days_before: 3}}
    do: [{sms: "Sắp đến sinh nhật bạn"}]
  - id: sinh_nhat_shop
    when: {special_day: {date: "15/03"}}
    if: {follows: true}
    do:
      - send: {text: "Mừng sinh nhật shop!", via: zalo_promotion}
"#;
    let mut s = shop(kind, Rules::Yaml(yaml)).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    s.event(event_at(
        "user_submit_info",
        "8201",
        t0,
        json!({"info": {"name": "Mai", "phone": "0912000201", "user_dob": "05/03/1990"}}),
    ))
    .await;
    s.event(follow("8201", t0)).await;
    s.register(
        "sinh_nhat",
        "phone:84912000202",
        "84912000202",
        None,
        &[("birthday", "1992-03-05")],
        t0,
        false,
    )
    .await;
    s.register(
        "sinh_nhat",
        "phone:84912000203",
        "84912000203",
        None,
        &[("birthday", "1995-03-08")],
        t0,
        false,
    )
    .await;
    let (a, b, c) = ("84912000201", "84912000202", "84912000203");
    // 23:59 on 4 March (local): not yet.
    s.tick(hcm(2027, 3, 4, 23, 59)).await;
    assert!(s.sms_to(a).is_empty() && s.sms_to(b).is_empty() && s.sms_to(c).is_empty());
    // 00:01 on 5 March local = 17:01 UTC on 4 March: the birthday.
    let r = s.tick(hcm(2027, 3, 5, 0, 1)).await;
    assert_eq!(s.sms_to(a), ["Chúc mừng sinh nhật!"], "{r}");
    assert_eq!(s.sms_to(b), ["Chúc mừng sinh nhật!"]);
    assert_eq!(s.sms_to(c), ["Sắp đến sinh nhật bạn"]);
    // Later that day, and the same instant: nothing more.
    s.tick(hcm(2027, 3, 5, 0, 1)).await;
    s.tick(hcm(2027, 3, 5, 12, 0)).await;
    assert_eq!(s.sms_to(a).len() + s.sms_to(b).len() + s.sms_to(c).len(), 3);
    // The shop's own date, to every follower, once.
    s.tick(hcm(2027, 3, 15, 8, 0)).await;
    s.tick(hcm(2027, 3, 15, 9, 0)).await;
    assert_eq!(s.zalo_to("8201"), [promo("Mừng sinh nhật shop!")]);
    // Next year, again.
    s.tick(hcm(2028, 3, 5, 0, 1)).await;
    assert_eq!(s.sms_to(a).len(), 2);
    assert_eq!(s.sms_to(b).len(), 2);
    s.stop().await;
}

/// I.7 with the shipped gift rules: the field `gift` taking the value "Áo thun" sends the
/// pickup SMS — once per change, whatever changed it (a form, an import).
async fn field_changes_run_once_per_change(kind: &str) {
    let mut s = shop(kind, Rules::Shipped).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    let (id, phone) = ("phone:84912000301", "84912000301");
    s.register(
        "chon_qua",
        id,
        phone,
        None,
        &[("gift", "Áo thun")],
        t0,
        false,
    )
    .await;
    let r = s.tick(t0 + MINUTE).await;
    assert_eq!(r.field_changes["qua_ao_thun"].fired, 1, "{r}");
    let sms = s.sms_to(phone);
    assert_eq!(sms.len(), 1);
    assert!(
        sms[0].starts_with("Cảm ơn Lan đã chọn Áo thun! Mã nhận quà AOTHUN24."),
        "{sms:?}"
    );
    // The same value again: no change, nothing sent.
    s.register(
        "chon_qua",
        id,
        phone,
        None,
        &[("gift", "Áo thun")],
        t0 + HOUR,
        true,
    )
    .await;
    s.tick(t0 + HOUR + MINUTE).await;
    s.tick(t0 + HOUR + MINUTE).await;
    assert_eq!(s.sms_to(phone).len(), 1);
    // An import changes it to the backpack, then a form back to the T-shirt.
    let mut ch = ContactChange::new(id, t0);
    ch.fields_set.push(("gift".into(), "Ba lô".into()));
    s.store
        .import_contacts(&[ch], &[], zaloflow::clock::system_now())
        .await
        .unwrap();
    s.tick(t0 + 2 * HOUR).await;
    assert!(s.sms_to(phone)[1].contains("Ba lô"));
    s.register(
        "chon_qua",
        id,
        phone,
        None,
        &[("gift", "Áo thun")],
        t0 + 3 * HOUR,
        true,
    )
    .await;
    s.tick(t0 + 3 * HOUR + MINUTE).await;
    let sms = s.sms_to(phone);
    assert_eq!(sms.len(), 3, "{sms:?}");
    assert!(sms[2].contains("Áo thun"));
    s.stop().await;
}

/// After downtime the tick catches up: a step due after a delay goes out late, a step at an
/// exact clock time that was missed moves to that time on its next day instead.
async fn catch_up_after_downtime_without_stale_clock_times(kind: &str) {
    let yaml = r#"
campaigns:
  - id: dung_gio
    enter_on: {form_submitted: dang_ky}
    steps:
      - day: 1
        at: "09:00"
        do: [{sms: "9 giờ sáng"}]
  - id: sau_do
    enter_on: {form_submitted: dang_ky}
    steps:
      - day: 1
        after: 1h
        do: [{sms: "một ngày một giờ sau"}]
"#;
    let mut s = shop(kind, Rules::Yaml(yaml)).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    s.register(
        "dang_ky",
        "phone:84912000401",
        "84912000401",
        None,
        &[],
        t0,
        false,
    )
    .await;
    s.tick(t0).await;
    // Down from Tuesday 08:00 to 15:00.
    let r = s.tick(hcm(2027, 3, 2, 15, 0)).await;
    assert_eq!(s.sms_to("84912000401"), ["một ngày một giờ sau"], "{r}");
    assert_eq!(r.campaigns["dung_gio"].rescheduled, 1, "{r}");
    let m = s.member("dung_gio", "phone:84912000401").await;
    assert_eq!(m.next_at, Some(hcm(2027, 3, 3, 9, 0)));
    s.tick(hcm(2027, 3, 3, 9, 0)).await;
    assert_eq!(
        s.sms_to("84912000401"),
        ["một ngày một giờ sau", "9 giờ sáng"]
    );
    s.stop().await;
}

/// Two instances tick the same instant at once on one PostgreSQL: every message goes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_postgres_send_each_thing_once() {
    let yaml = r#"
rules:
  - id: nhac_nho
    when: {inactive: {min_days: 7, max_days: 14}}
    if: {follows: true}
    do: [{send: {text: "Lâu rồi không gặp!", via: zalo_promotion}}]
  - id: tin_sang
    when: {schedule: "0 9 * * *"}
    if: {has_tag: khach_quen}
    do: [{sms: "Chào buổi sáng"}]
campaigns:
  - id: moi
    enter_on: {tag_added: khach_quen}
    steps:
      - day: 1
        at: "09:00"
        do: [{sms: "Ngày 1"}]
"#;
    let s = shop("postgres", Rules::Yaml(yaml)).await;
    let t0 = hcm(2027, 3, 1, 9, 0);
    // 300 silent followers, 100 of them regulars with a phone number, all in the campaign.
    let mut changes = Vec::new();
    for i in 0..300 {
        let mut ch = ContactChange::new(format!("{}", 7_000_000 + i), t0 - 10 * DAY);
        ch.follows = Some(true);
        ch.interaction_at = Some(t0 - 10 * DAY);
        if i < 100 {
            ch.phone = Some(format!("849100{i:05}"));
            ch.tags_add.push("khach_quen".into());
        }
        changes.push(ch);
    }
    s.store
        .import_contacts(&changes, &[], zaloflow::clock::system_now())
        .await
        .unwrap();
    let members: Vec<zaloflow::store::Decision> = (0..100)
        .map(|i| zaloflow::store::Decision {
            key: None,
            effects: zaloflow::store::Effects {
                campaigns: vec![zaloflow::store::CampaignChange::Enter {
                    campaign: "moi".into(),
                    contact_id: format!("{}", 7_000_000 + i),
                    entered_at: t0 - DAY,
                    step: 0,
                    // As rows from before step ids: the first pass maps the position.
                    step_id: None,
                    next_at: Some(t0),
                }],
                ..Default::default()
            },
        })
        .collect();
    s.store
        .apply_decisions(&members, zaloflow::clock::system_now())
        .await
        .unwrap();
    s.zalo
        .set_now(Some(chrono::DateTime::from_timestamp_millis(t0).unwrap()));
    let a = s.context(t0, "instance-a").await;
    let b = s.context(t0, "instance-b").await;
    let (ra, rb) = tokio::join!(
        zaloflow::scheduler::tick(&a, t0),
        zaloflow::scheduler::tick(&b, t0)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra.ran || rb.ran);
    // And once more each, afterwards: nothing new.
    zaloflow::scheduler::tick(&a, t0).await.unwrap();
    zaloflow::scheduler::tick(&b, t0).await.unwrap();
    let promos = s.zalo.messages();
    assert_eq!(promos.len(), 300, "{ra}\n{rb}");
    let users: std::collections::BTreeSet<_> = promos.iter().map(|m| m.user_id.clone()).collect();
    assert_eq!(users.len(), 300);
    let sms = s.sink_on("/sms");
    assert_eq!(sms.len(), 200, "100 morning + 100 day-1 messages");
    let distinct: std::collections::BTreeSet<String> = sms
        .iter()
        .map(|b| format!("{}|{}", b["to"], b["text"]))
        .collect();
    assert_eq!(distinct.len(), 200);
    s.stop().await;
}

/// `zaloflow tick --at` through the real binary, while `serve` runs on the same SQLite file:
/// one pass with delivery, a readable summary, and nothing new the second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_at_through_the_binary() {
    let mut s = shop("sqlite", Rules::Yaml(SCHEDULES)).await;
    let t0 = hcm(2027, 3, 1, 8, 0);
    s.event(follow("8301", t0)).await;
    s.event(follow("8302", t0)).await;
    let at = hcm(2027, 3, 1, 9, 0);
    s.zalo
        .set_now(Some(chrono::DateTime::from_timestamp_millis(at).unwrap()));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), SCHEDULES).unwrap();
    let run = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_zaloflow"));
        cmd.args(["tick", "--at", "2027-03-01T09:00:00+07:00"])
            .env_clear()
            .env("DATABASE_URL", s.db.url())
            .env("ZALOFLOW_RULES", dir.path())
            .env("ZALO_APP_ID", APP_ID)
            .env("ZALO_OA_SECRET_KEY", OA_KEY)
            .env("ZALOFLOW_CONFIG", "/nonexistent.toml");
        for (k, v) in fake_channels(&s.zalo, &s.sink) {
            cmd.env(k, v);
        }
        // The summary in English (Vietnamese is the default: tests/staff_language.rs).
        cmd.env("ZALOFLOW_LANG", "en");
        cmd.output().unwrap()
    };
    let first = run();
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(
        first.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        out.starts_with("tick at 2027-03-01 09:00 (Asia/Ho_Chi_Minh)"),
        "{out}"
    );
    assert!(
        out.contains("schedule tin_sang at 2027-03-01 09:00: 2 of 2 contacts"),
        "{out}"
    );
    assert!(
        out.contains("delivered: 2 sent, 0 skipped, 0 held, 0 to retry, 0 failed for good"),
        "{out}"
    );
    assert_eq!(s.zalo_to("8301"), [promo("Chào buổi sáng!")]);
    let second = run();
    let out = String::from_utf8_lossy(&second.stdout).to_string();
    assert!(second.status.success(), "{out}");
    assert!(out.contains("nothing was due"), "{out}");
    assert!(out.contains("delivered: 0 sent"), "{out}");
    assert_eq!(s.zalo.messages().len(), 2);
    // serve kept running alongside.
    let h = reqwest::get(format!("{}/healthz", s.app.base))
        .await
        .unwrap();
    assert!(h.status().is_success());
    s.processed().await;
    tokio::time::timeout(Duration::from_secs(20), s.stop())
        .await
        .unwrap();
}

/// Scheduler scans come back every tick, so their rules carry limits of their own: an
/// `inactive` rule runs once per silence even without `once_per`, and a `stop` rule held back
/// by its limit (the SMS sent at the last tick) still keeps the promotion below it from going.
#[test]
fn scan_rules_keep_their_limits_between_ticks() {
    use zaloflow::rules::{EvalInput, MemoryHistory, Stimulus};
    let set = zaloflow::rules::load_sources(
        &[(
            std::path::PathBuf::from("r.yaml"),
            r#"
rules:
  - id: sms_truoc
    priority: 10
    when: {inactive: {min_days: 7}}
    if: {field: {name: phone, is_set: true}}
    do: [{sms: "SMS"}, stop]
    once_per: silence
  - id: khuyen_mai
    when: {inactive: {min_days: 7}}
    do: [{send: {text: "KM", via: zalo_promotion}}]
"#
            .to_string(),
        )],
        &zaloflow::rules::LoadOptions::default(),
    )
    .unwrap();
    let t0 = hcm(2027, 3, 1, 10, 0);
    let mut with_phone = zaloflow::store::Contact {
        user_id: "1".into(),
        follows: Some(true),
        last_interaction: Some(t0),
        ..Default::default()
    };
    with_phone.phone = Some("84900000001".into());
    let without = zaloflow::store::Contact {
        user_id: "2".into(),
        phone: None,
        ..with_phone.clone()
    };
    let mut h = MemoryHistory::default();
    let mut run = |c: &zaloflow::store::Contact, at: i64| {
        let e = set.evaluate_cascade(&EvalInput::new(Stimulus::Inactive, c, at, TZ, &h));
        h.record_all(&c.user_id, &e, at);
        e.fired
            .iter()
            .map(|f| f.rule_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&with_phone, t0 + 7 * DAY), ["sms_truoc"]);
    assert!(
        run(&with_phone, t0 + 7 * DAY + MINUTE).is_empty(),
        "no promotion after the SMS"
    );
    assert_eq!(run(&without, t0 + 7 * DAY), ["khuyen_mai"]);
    assert!(
        run(&without, t0 + 8 * DAY).is_empty(),
        "once per silence without once_per"
    );
}

/// `serve` ticks on `ZALOFLOW_TICK` (every minute by default), or not at all with `off`; a bad
/// pattern stops it from starting with the reason.
#[test]
fn serve_cadence_comes_from_zaloflow_tick() {
    let url = "sqlite:///tmp/unused.db";
    let every_minute =
        zaloflow::config::Config::from_map(&[("DATABASE_URL".to_string(), url.to_string())].into())
            .unwrap();
    let cron = zaloflow::tick_cron(&every_minute).unwrap().unwrap();
    assert_eq!(cron.pattern, "* * * * *");
    let t = hcm(2027, 3, 1, 9, 0);
    assert_eq!(cron.next_after(t, TZ), Some(t + MINUTE));
    assert!(
        zaloflow::tick_cron(&config(url, &[("ZALOFLOW_TICK", "off")]))
            .unwrap()
            .is_none()
    );
    let bad = zaloflow::tick_cron(&config(url, &[("ZALOFLOW_TICK", "0 9 * *")])).unwrap_err();
    assert!(bad.to_string().contains("ZALOFLOW_TICK"), "{bad}");
}

/// Issue 29: with no SMS gateway configured, a scheduled SMS is recorded as skipped (status
/// `skipped`, with what to set), never queued nor dead-lettered; the tick's summary counts it
/// apart from what was queued and sent.
async fn tick_summary_counts_skipped_sends_apart(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(SCHEDULES)).await;
    let t0 = hcm(2027, 3, 1, 8, 0); // Monday
    s.event(follow("8301", t0)).await;
    s.event(event_at(
        "user_submit_info",
        "8301",
        t0,
        json!({"info": {"name": "Vy", "phone": "0912000301"}}),
    ))
    .await;
    s.event(event_at(
        "add_user_to_tag",
        "",
        t0,
        json!({"tag": {"name": "vip_customer", "user_ids": ["8301"]}}),
    ))
    .await;
    let no_sms = zaloflow::channels::configured::Configured {
        sms: false,
        ..zaloflow::channels::configured::Configured::all()
    };
    // 09:00: the morning message to followers is queued and sent.
    let r = s.tick(hcm(2027, 3, 1, 9, 0)).await;
    assert_eq!((r.jobs, r.skipped), (1, 0), "{r}");
    // 09:30: the VIPs' SMS, without a gateway.
    let at = hcm(2027, 3, 1, 9, 30);
    s.zalo
        .set_now(Some(chrono::DateTime::from_timestamp_millis(at).unwrap()));
    let ctx = s
        .context(at, "test/tick")
        .await
        .with_engine(std::sync::Arc::new(
            (*s.engine).clone().with_channels(no_sms),
        ));
    let r = zaloflow::scheduler::tick(&ctx, at).await.unwrap();
    assert_eq!((r.jobs, r.skipped), (0, 1), "{r}");
    let text = r.to_string();
    assert!(
        text.contains(
            "  1 tin bỏ qua (xem hàng đợi gửi, status=skipped): 1 kênh chưa được cấu hình"
        ),
        "{text}"
    );
    assert!(!text.contains("không có gì đến hạn"), "{text}");
    assert!(
        text.contains("đã giao: 0 gửi, 0 bỏ qua, 0 giữ lại, 0 thử lại sau, 0 lỗi hẳn"),
        "{text}"
    );
    assert!(s.sms_to("0912000301").is_empty());
    let skipped = s.store.list_jobs(Some("skipped"), 10).await.unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].channel, "sms");
    assert_eq!(skipped[0].rule_id.as_deref(), Some("vip_thu_hai"));
    assert_eq!(skipped[0].skip_reason.as_deref(), Some("not_configured"));
    assert!(skipped[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("set ZALOFLOW_SMS_URL"));
    // A second tick at the same instant records nothing new.
    let again = zaloflow::scheduler::tick(&ctx, at).await.unwrap();
    assert_eq!((again.jobs, again.skipped), (0, 0), "{again}");
    assert_eq!(
        s.store.list_jobs(Some("skipped"), 10).await.unwrap().len(),
        1
    );
}

/// A customer-service message to someone silent for over 7 days (Zalo: -230), or to someone
/// who unfollowed (-213), is not sent: it is a skipped outbox row with its reason, in the
/// contact's timeline and the tick's summary — not only a log line.
async fn sends_zalo_would_refuse_are_recorded_with_their_reason(kind: &str) {
    const RULES: &str = "rules:
  - id: nhac_lai_cs
    when:
      inactive: {min_days: 8, max_days: 20}
    do:
      - send: Lâu rồi không gặp bạn!
  - id: vip_chao
    when:
      tag_added: vip_customer
    do:
      - send: Chào khách VIP!
";
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    s.event(follow("8401", t0)).await;
    s.event(message("8401", "m8401", t0)).await;
    s.event(follow("8402", t0)).await;
    s.event(unfollow("8402", t0 + 60_000)).await;
    s.event(event_at(
        "add_user_to_tag",
        "",
        t0 + 120_000,
        json!({"tag": {"name": "vip_customer", "user_ids": ["8402"]}}),
    ))
    .await;
    let r = s.tick(hcm(2027, 3, 11, 10, 0)).await;
    let text = r.to_string();
    assert!(
        text.contains(
            "1 tin bỏ qua (xem hàng đợi gửi, status=skipped): 1 ngoài cửa sổ 7 ngày của Zalo"
        ),
        "{text}"
    );
    assert!(s.zalo_to("8401").is_empty() && s.zalo_to("8402").is_empty());
    let skipped = s.store.list_jobs(Some("skipped"), 10).await.unwrap();
    let mut reasons: Vec<(&str, &str, Option<&str>)> = skipped
        .iter()
        .map(|j| {
            (
                j.user_id.as_str(),
                j.rule_id.as_deref().unwrap(),
                j.skip_reason.as_deref(),
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("8401", "nhac_lai_cs", Some("window_closed")),
            ("8402", "vip_chao", Some("not_following")),
        ]
    );
    assert!(skipped.iter().all(|j| j
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("Zalo would answer"))));
    // The contact's timeline has it.
    let jobs = s
        .store
        .contact_jobs(&["8401".to_string()], 10)
        .await
        .unwrap();
    assert!(jobs.iter().any(|j| j.status == "skipped"), "{jobs:?}");
    s.stop().await;
}

/// A promotion planned at night (a rule without its own hours) is moved to 07:00, the start of
/// the hours Zalo takes promotions in (PROTOCOL.md §5), never dropped; it goes out as a template.
async fn promotions_planned_at_night_go_out_at_seven(kind: &str) {
    let yaml = r#"
rules:
  - id: nhac_nho
    when: {inactive: {min_days: 7, max_days: 14}}
    if: {follows: true}
    do: [{send: {text: "Lâu rồi không gặp! Ghé shop nhé.", via: zalo_promotion}}]
"#;
    let s = shop(kind, Rules::Yaml(yaml)).await;
    let night = hcm(2027, 3, 1, 23, 0);
    let user = "7100001";
    let mut ch = ContactChange::new(user, night - 10 * DAY);
    ch.follows = Some(true);
    ch.interaction_at = Some(night - 10 * DAY);
    s.zalo.add_user(zaloflow::fakes::zalo::FakeUser::new(
        user,
        "Khách",
        chrono::DateTime::from_timestamp_millis(night - 10 * DAY).unwrap(),
    ));
    s.store
        .import_contacts(&[ch], &[], zaloflow::clock::system_now())
        .await
        .unwrap();
    let r = s.tick(night).await;
    assert_eq!(r.jobs, 1, "{r}");
    assert!(s.zalo_to(user).is_empty(), "not at 23:00");
    // Planned for 07:00, not tried and refused at night (-234).
    assert!(
        s.zalo
            .arrivals_on(zaloflow::fakes::zalo::PROMOTION_PATH)
            .is_empty(),
        "no call to Zalo at night"
    );
    s.tick(hcm(2027, 3, 2, 6, 30)).await;
    assert!(s.zalo_to(user).is_empty(), "not at 06:30");
    s.tick(hcm(2027, 3, 2, 7, 0)).await;
    assert_eq!(
        s.zalo_to(user),
        [promo("Lâu rồi không gặp! Ghé shop nhé.")],
        "at 07:00, as a promotion template"
    );
    s.stop().await;
}

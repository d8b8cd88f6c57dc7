//! Issue 26: campaigns edited while they run, follow-ups on the campaign's weekdays, and special
//! days for contacts who qualify later the same day — on both backends, the tick driven at
//! chosen instants as `zaloflow tick --at` drives it.

mod common;
mod sched;

use std::sync::Arc;

use common::*;
use sched::*;
use zaloflow::i18n::Lang;

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    deleting_the_first_step_of_a_running_campaign,
    members_stored_by_position_are_mapped_once,
    reordering_steps_sends_nothing_twice,
    follow_ups_cross_the_weekend_to_monday,
    a_birthday_registered_after_the_days_pass_is_greeted_that_day,
);

const A: &str = "84911111111";
const B: &str = "84922222222";

fn drip(first_step: bool) -> String {
    let chao = if first_step {
        r#"
      - id: chao
        day: 0
        at: "18:00"
        do: [{sms: "Chào bạn"}]"#
    } else {
        ""
    };
    format!(
        r#"
campaigns:
  - id: drip
    enter_on:
      form_submitted: dang_ky
    steps:{chao}
      - id: ngay_1
        day: 1
        at: "09:00"
        do: [{{sms: "Ngày 1"}}]
      - id: ngay_3
        day: 3
        at: "09:00"
        do: [{{sms: "Ngày 3"}}]
"#
    )
}

/// Swaps the rules the ticks run (as a reload of the folder does), from the shop's rule file.
fn reload(s: &mut Shop, yaml: &str) {
    let dir = s.config.rules_dir.clone();
    std::fs::write(dir.join("t.yaml"), yaml).unwrap();
    let set = zaloflow::rules::load_dir(&dir, &zaloflow::rules::LoadOptions::default())
        .unwrap_or_else(|d| panic!("{d:?}"));
    s.engine = Arc::new(zaloflow::engine::Engine::with_rule_set(Arc::new(set), TZ));
}

/// The first step of a running campaign is deleted. B, who had it and waits for `ngay_1`, gets
/// `ngay_1` on its day (not `ngay_3` two days early, as when members were kept by position);
/// A, who waited for the deleted step, moves to `ngay_1`, no earlier than A was due; nobody
/// is lost, `rules check --against` says beforehand what the reload will do, and the tick
/// reports it per step.
async fn deleting_the_first_step_of_a_running_campaign(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(&drip(true))).await;
    // Monday 1 March 2027. B registers at 10:00 and gets `chao` at 18:00.
    s.register(
        "dang_ky",
        "phone:b",
        B,
        None,
        &[],
        hcm(2027, 3, 1, 10, 0),
        false,
    )
    .await;
    s.tick(hcm(2027, 3, 1, 10, 0)).await;
    s.tick(hcm(2027, 3, 1, 18, 0)).await;
    assert_eq!(s.sms_to(B), ["Chào bạn"]);
    // A registers at 19:00: `chao` is due Tuesday 18:00.
    s.register(
        "dang_ky",
        "phone:a",
        A,
        None,
        &[],
        hcm(2027, 3, 1, 19, 0),
        false,
    )
    .await;
    s.tick(hcm(2027, 3, 1, 19, 0)).await;
    let a = s.member("drip", "phone:a").await;
    assert_eq!(a.step_id.as_deref(), Some("chao"));
    assert_eq!(a.next_at, Some(hcm(2027, 3, 2, 18, 0)));
    assert_eq!(
        s.member("drip", "phone:b").await.step_id.as_deref(),
        Some("ngay_1")
    );

    // The shop deletes `chao`. `rules check --against` tells what will happen, changing nothing.
    std::fs::write(s.config.rules_dir.join("t.yaml"), drip(false)).unwrap();
    let (out, ok) = zaloflow::scheduler::check_against(&s.config.rules_dir, s.db.url(), Lang::En)
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("campaign `drip`: step `chao` removed: its members move to step `ngay_1`")
            && out.contains("(1 member waiting for it now)"),
        "{out}"
    );
    assert!(out.contains("t.yaml:"), "path:line:col: {out}");
    assert_eq!(
        s.member("drip", "phone:a").await.step_id.as_deref(),
        Some("chao"),
        "the check changes nothing"
    );

    reload(&mut s, &drip(false));
    // Tuesday 09:00: B gets day 1 (with members kept by position, B got day 3 here).
    let r = s.tick(hcm(2027, 3, 2, 9, 0)).await;
    assert_eq!(s.sms_to(B), ["Chào bạn", "Ngày 1"], "{r}");
    assert!(
        r.campaigns["drip"]
            .edits
            .iter()
            .any(|e| e.contains("bước `chao` bị xóa") && e.contains("(1 người)")),
        "{r}"
    );
    assert!(r.to_string().contains("chiến dịch drip đã được sửa"), "{r}");
    // A is not given `ngay_1` before A's `chao` was due (Tuesday 18:00): the next 09:00.
    assert_eq!(s.sms_to(A), Vec::<String>::new(), "{r}");
    let a = s.member("drip", "phone:a").await;
    assert_eq!(
        (a.step_id.as_deref(), a.next_at, a.status.as_str()),
        (Some("ngay_1"), Some(hcm(2027, 3, 3, 9, 0)), "active")
    );
    s.tick(hcm(2027, 3, 2, 18, 0)).await;
    assert_eq!(s.sms_to(A), Vec::<String>::new());
    s.tick(hcm(2027, 3, 3, 9, 0)).await;
    assert_eq!(s.sms_to(A), ["Ngày 1"]);
    assert_eq!(s.sms_to(B), ["Chào bạn", "Ngày 1"], "nothing early for B");
    // Thursday 09:00: day 3 for both; then both are done.
    let r = s.tick(hcm(2027, 3, 4, 9, 0)).await;
    assert_eq!(s.sms_to(A), ["Ngày 1", "Ngày 3"], "{r}");
    assert_eq!(s.sms_to(B), ["Chào bạn", "Ngày 1", "Ngày 3"], "{r}");
    for c in ["phone:a", "phone:b"] {
        assert_eq!(s.member("drip", c).await.status, "done", "{c}");
    }
    // The edit was applied once: later passes report nothing about it.
    let r = s.tick(hcm(2027, 3, 5, 9, 0)).await;
    assert!(
        r.campaigns.get("drip").is_none_or(|c| c.edits.is_empty()),
        "{r}"
    );
    s.stop().await;
}

/// Rows written before step ids (position only) wait for the step at their position in the
/// campaign as the first pass finds it; one past the last step is done.
async fn members_stored_by_position_are_mapped_once(kind: &str) {
    let s = shop(kind, Rules::Yaml(&drip(true))).await;
    let t0 = hcm(2027, 3, 1, 10, 0);
    let enter = |c: &str, step: i64| zaloflow::store::Decision {
        key: None,
        effects: zaloflow::store::Effects {
            campaigns: vec![zaloflow::store::CampaignChange::Enter {
                campaign: "drip".into(),
                contact_id: c.into(),
                entered_at: t0 - DAY,
                step,
                step_id: None,
                next_at: Some(t0 + HOUR),
            }],
            ..Default::default()
        },
    };
    s.store
        .apply_decisions(
            &[enter("x1", 1), enter("x2", 2), enter("x3", 3)],
            zaloflow::clock::system_now(),
        )
        .await
        .unwrap();
    let (out, _) = zaloflow::scheduler::check_against(&s.config.rules_dir, s.db.url(), Lang::En)
        .await
        .unwrap();
    assert!(
        out.contains(
            "1 member stored at step place 2 (from before step ids) will wait for step `ngay_1`"
        ) && out.contains("place 4 (from before step ids) will finish the campaign"),
        "{out}"
    );
    s.tick(t0).await;
    let m = |c: &'static str| {
        let store = s.store.clone();
        async move {
            store
                .campaign_members("drip")
                .await
                .unwrap()
                .into_iter()
                .find(|m| m.contact_id == c)
                .unwrap()
        }
    };
    assert_eq!(m("x1").await.step_id.as_deref(), Some("ngay_1"));
    assert_eq!(m("x2").await.step_id.as_deref(), Some("ngay_3"));
    assert_eq!(m("x3").await.status, "done");
    assert_eq!(
        s.store.campaign_steps("drip").await.unwrap(),
        ["chao", "ngay_1", "ngay_3"]
    );
    s.stop().await;
}

/// II.4 for follow-ups: a Monday–Saturday campaign's welcome email goes out on Saturday. The
/// "not opened within 24 hours" SMS falls due on Sunday: it goes on Monday at the same time,
/// not on Sunday. A thank-you beside the step, guarded by `weekdays: [mon … fri]`, is moved to
/// Monday too instead of being dropped.
async fn follow_ups_cross_the_weekend_to_monday(kind: &str) {
    let yaml = r#"
campaigns:
  - id: cs
    enter_on: {form_submitted: dang_ky}
    weekdays: [mon, tue, wed, thu, fri, sat]
    steps:
      - id: chao
        do: [{email: {subject: "Chào bạn", html: "<p>Chào bạn</p>"}}]
rules:
  - id: chua_mo
    when: {email_not_opened: {within_hours: 24, email: cs/chao}}
    do: [{sms: "Bạn chưa mở email của shop"}]
  - id: cam_on
    when: {after_step: {campaign: cs, step: chao}}
    if: {weekdays: [mon, tue, wed, thu, fri]}
    do: [{sms: "Cảm ơn bạn đã đăng ký"}]
"#;
    let mut s = shop_with(kind, Rules::Yaml(yaml), true).await;
    // Saturday 6 March 2027, 10:00.
    let sat = hcm(2027, 3, 6, 10, 0);
    s.register(
        "dang_ky",
        "phone:a",
        A,
        Some("a@shop.test"),
        &[],
        sat,
        false,
    )
    .await;
    s.tick(sat).await;
    assert_eq!(
        s.smtp.as_ref().unwrap().messages().len(),
        1,
        "the email, on Saturday"
    );
    assert!(
        s.sms_to(A).is_empty(),
        "the guarded thank-you waits for Monday"
    );
    // Sunday 10:00: the email was not opened for 24 hours; the reminder is decided, not sent.
    let r = s.tick(hcm(2027, 3, 7, 10, 0)).await;
    assert_eq!(r.not_opened.get("chua_mo").map(|n| n.fired), Some(1), "{r}");
    s.tick(hcm(2027, 3, 7, 23, 59)).await;
    assert!(
        s.sms_to(A).is_empty(),
        "nothing on Sunday: {:?}",
        s.sms_to(A)
    );
    // Monday: both, at 10:00 (not a minute before).
    s.tick(hcm(2027, 3, 8, 9, 59)).await;
    assert!(s.sms_to(A).is_empty());
    s.tick(hcm(2027, 3, 8, 10, 0)).await;
    let mut got = s.sms_to(A);
    got.sort();
    assert_eq!(got, ["Bạn chưa mở email của shop", "Cảm ơn bạn đã đăng ký"]);
    s.stop().await;
}

/// Special days: the day's pass greets the contacts whose birthday it is; a contact who
/// registers later that day with today's birthday is greeted at the next pass that day, once;
/// a birthday of tomorrow waits for tomorrow.
async fn a_birthday_registered_after_the_days_pass_is_greeted_that_day(kind: &str) {
    let yaml = r#"
rules:
  - id: sinh_nhat
    when: {special_day: {field: birthday}}
    do: [{sms: "Chúc mừng sinh nhật {{display_name}}"}]
"#;
    const C: &str = "84933333333";
    let mut s = shop(kind, Rules::Yaml(yaml)).await;
    // Sunday 7 March 2027.
    let sat = hcm(2027, 3, 6, 12, 0);
    s.register(
        "dang_ky",
        "phone:a",
        A,
        None,
        &[("birthday", "07/03/1990")],
        sat,
        false,
    )
    .await;
    let r = s.tick(hcm(2027, 3, 7, 9, 0)).await;
    assert_eq!(s.sms_to(A), ["Chúc mừng sinh nhật Lan"], "{r}");
    // After that pass: B registers with today's birthday, C with tomorrow's.
    let sun = hcm(2027, 3, 7, 15, 0);
    s.register(
        "dang_ky",
        "phone:b",
        B,
        None,
        &[("birthday", "1995-03-07")],
        sun,
        false,
    )
    .await;
    s.register(
        "dang_ky",
        "phone:c",
        C,
        None,
        &[("birthday", "08/03/2001")],
        sun,
        false,
    )
    .await;
    let r = s.tick(hcm(2027, 3, 7, 15, 1)).await;
    assert_eq!(s.sms_to(B), ["Chúc mừng sinh nhật Lan"], "{r}");
    assert!(s.sms_to(C).is_empty(), "{r}");
    // Later passes that day and the next day: nobody twice; C on C's day.
    s.tick(hcm(2027, 3, 7, 16, 0)).await;
    s.tick(hcm(2027, 3, 8, 9, 0)).await;
    assert_eq!(s.sms_to(A).len(), 1);
    assert_eq!(s.sms_to(B).len(), 1);
    assert_eq!(s.sms_to(C), ["Chúc mừng sinh nhật Lan"]);
    s.stop().await;
}

/// `zaloflow rules check --against` through the real binary, on the database of DATABASE_URL:
/// the edit per step, and exit 0; the database is left as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_check_against_the_database_through_the_binary() {
    let mut s = shop("sqlite", Rules::Yaml(&drip(true))).await;
    s.register(
        "dang_ky",
        "phone:a",
        A,
        None,
        &[],
        hcm(2027, 3, 1, 19, 0),
        false,
    )
    .await;
    s.tick(hcm(2027, 3, 1, 19, 0)).await;
    std::fs::write(s.config.rules_dir.join("t.yaml"), drip(false)).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .args(["rules", "check", "--against"])
        .env("ZALOFLOW_LANG", "en")
        .env("DATABASE_URL", s.db.url())
        .env("ZALOFLOW_RULES", &s.config.rules_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (Channel findings of this deployment may come first, as warnings.)
    assert!(stdout.lines().any(|l| l.starts_with("ok: ")), "{stdout}");
    assert!(
        stdout.contains("t.yaml:")
            && stdout.contains("step `chao` removed: its members move to step `ngay_1`")
            && stdout.contains("(1 member waiting for it now)"),
        "{stdout}"
    );
    assert_eq!(
        s.member("drip", "phone:a").await.step_id.as_deref(),
        Some("chao")
    );
    s.stop().await;
}

/// Steps reordered under a running campaign: a member keeps waiting for its step, then gets
/// the steps after it in the new order; a step it already had, now later, is passed over (not
/// sent twice, and the member does not stop there).
async fn reordering_steps_sends_nothing_twice(kind: &str) {
    let step = |id: &str, day: u32, at: &str| {
        format!("\n      - id: {id}\n        day: {day}\n        at: \"{at}\"\n        do: [{{sms: \"{id}\"}}]")
    };
    let file = |steps: &[String]| {
        format!(
            "campaigns:\n  - id: drip\n    enter_on:\n      form_submitted: dang_ky\n    steps:{}\n",
            steps.concat()
        )
    };
    let (a, b, c) = (
        step("a", 0, "18:00"),
        step("b", 1, "09:00"),
        step("c", 3, "09:00"),
    );
    let mut s = shop(kind, Rules::Yaml(&file(&[a.clone(), b.clone(), c.clone()]))).await;
    s.register(
        "dang_ky",
        "phone:a",
        A,
        None,
        &[],
        hcm(2027, 3, 1, 10, 0),
        false,
    )
    .await;
    s.tick(hcm(2027, 3, 1, 18, 0)).await;
    assert_eq!(s.sms_to(A), ["a"]);
    // Now b, a, c.
    reload(&mut s, &file(&[b, a, c]));
    let r = s.tick(hcm(2027, 3, 2, 9, 0)).await;
    assert_eq!(s.sms_to(A), ["a", "b"], "{r}");
    assert!(
        r.campaigns["drip"]
            .edits
            .iter()
            .any(|e| e.contains("bước `a` chuyển từ vị trí 1 sang vị trí 2")),
        "{r}"
    );
    // `a` comes after `b` now: passed over at its time, and `c` on day 3.
    let r = s.tick(hcm(2027, 3, 2, 18, 0)).await;
    assert_eq!(s.sms_to(A), ["a", "b"], "{r}");
    assert_eq!(
        s.member("drip", "phone:a").await.step_id.as_deref(),
        Some("c"),
        "{r}"
    );
    s.tick(hcm(2027, 3, 4, 9, 0)).await;
    assert_eq!(s.sms_to(A), ["a", "b", "c"]);
    assert_eq!(s.member("drip", "phone:a").await.status, "done");
    s.stop().await;
}

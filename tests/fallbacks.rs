//! `try:` — fallback chains (Zalo's 2026 message rules), on both backends, through the real
//! service, the tick's sender and the fake Zalo (which refuses as PROTOCOL.md §5 says):
//! at planning time the first choice Zalo will accept for the contact is made (consultation
//! inside the 7-day window, else a template message by user id to a follower, else a template
//! by phone, else SMS), and a choice Zalo refuses when it is sent (-230, -249, -213) gives way
//! to the next one, once, with the refusal recorded where staff look. The rules' loader
//! refuses a template without its tag and a `try:` that is not a list of sends.

mod common;
mod sched;

use common::*;
use sched::*;
use serde_json::json;
use zaloflow::store::{ContactChange, Job};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    planning_picks_the_first_choice_zalo_accepts,
    refusals_when_sent_go_on_to_the_next_choice,
);

const RULES: &str = r#"tags:
  nhac: nhắc khách
  nhac_mau: nhắc bằng tin mẫu
  khuyen_mai: nhận khuyến mãi
rules:
  - id: nhac
    when:
      tag_added: nhac
    do:
      - try:
          - send: Shop nhắc nhẹ nè!
          - template: {id: "T-CARE", tag: customer_care, data: {ten: "{{display_name | \"bạn\"}}"}}
          - template: {id: "T-PHONE", tag: customer_care, by: phone, data: {ten: "{{display_name | \"bạn\"}}"}}
          - sms: Shop nhắc bạn nè!
  - id: nhac_mau
    when:
      tag_added: nhac_mau
    do:
      - try:
          - template: {id: "T-PHONE", tag: customer_care, data: {ten: "{{display_name | \"bạn\"}}"}}
          - template: {id: "T-PHONE", tag: customer_care, by: phone, data: {ten: "{{display_name | \"bạn\"}}"}}
  - id: khuyen_mai
    when:
      tag_added: khuyen_mai
    do:
      - try:
          - send: {text: Ưu đãi! Giảm 20%., via: zalo_promotion}
          - sms: Ưu đãi! Giảm 20%.
"#;

fn tagged(tag: &str, user: &str, ts: i64) -> String {
    event_at(
        "add_user_to_tag",
        "",
        ts,
        json!({"tag": {"name": tag, "user_ids": [user]}}),
    )
}

/// A contact zaloflow knows (as a follower sync or an import leaves it): following or not,
/// last interacting at `last`, with a phone number or not.
async fn known(s: &Shop, user: &str, follows: bool, last: i64, phone: Option<&str>) {
    let mut ch = ContactChange::new(user, last);
    ch.display_name = Some(format!("Khách {user}"));
    ch.follows = Some(follows);
    ch.interaction_at = Some(last);
    ch.phone = phone.map(str::to_string);
    s.store.import_contacts(&[ch], &[], last).await.unwrap();
    // The fake Zalo knows them the same way.
    s.zalo.touch_user(user, at(last));
    s.zalo.set_follower(user, follows);
}

fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

async fn jobs_of(s: &Shop, user: &str) -> Vec<Job> {
    let mut v = s.store.contact_jobs(&[user.into()], 50).await.unwrap();
    v.sort_by_key(|j| j.id);
    v
}

fn shape(j: &Job) -> (String, String, Option<String>) {
    (
        j.channel.clone(),
        j.status.clone(),
        j.send_class.clone().or(j.skip_reason.clone()),
    )
}

fn s3(channel: &str, status: &str, class: &str) -> (String, String, Option<String>) {
    (channel.into(), status.into(), Some(class.into()))
}

async fn planning_picks_the_first_choice_zalo_accepts(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    s.zalo.add_template("T-CARE", 2, true);
    s.zalo.add_template("T-PHONE", 2, false);
    let t0 = hcm(2027, 3, 1, 10, 0);
    // Wrote an hour ago: a consultation message, free.
    known(&s, "9101", true, t0 - HOUR, None).await;
    // Silent 10 days, still following: the template by user id.
    known(&s, "9102", true, t0 - 10 * DAY, None).await;
    // Unfollowed, phone known: the template by phone.
    known(&s, "9103", false, t0 - 10 * DAY, Some("0912000103")).await;
    // Unfollowed, no phone: nothing can go out, and the record says why.
    known(&s, "9104", false, t0 - 10 * DAY, None).await;
    for u in ["9101", "9102", "9103", "9104"] {
        s.event(tagged("nhac", u, t0)).await;
    }
    let r = s.tick(t0 + MINUTE).await;
    let d = r.delivered.clone().unwrap();
    let all = s.store.list_jobs(None, 50).await.unwrap();
    assert_eq!(d.sent, 3, "{r}\n{all:#?}");

    let j = jobs_of(&s, "9101").await;
    assert_eq!(
        j.iter().map(shape).collect::<Vec<_>>(),
        vec![s3("zalo", "sent", "consultation_free")]
    );
    // The later choices that can reach them ride along, for a refusal when it is sent: the
    // template by user id (no phone number for the other two).
    let rest = zaloflow_core::job::fallbacks(&j[0].payload);
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0].summary(), "template message T-CARE by Zalo user id");

    let j = jobs_of(&s, "9102").await;
    assert_eq!(
        j.iter().map(shape).collect::<Vec<_>>(),
        vec![s3("zns", "sent", "template_user")]
    );
    assert_eq!(j[0].cost_vnd, Some(165));
    let sent = s.zalo.messages();
    let to_9102 = sent
        .iter()
        .find(|m| m.user_id.as_deref() == Some("9102"))
        .unwrap();
    assert_eq!(to_9102.kind, "template");
    assert_eq!(
        to_9102.message["template_data"],
        json!({"ten": "Khách 9102"})
    );

    let j = jobs_of(&s, "9103").await;
    assert_eq!(
        j.iter().map(shape).collect::<Vec<_>>(),
        vec![s3("zns", "sent", "template_phone")]
    );
    let by_phone = sent
        .iter()
        .find(|m| m.phone.as_deref() == Some("84912000103"))
        .expect("the template by phone went to 9103's number");
    assert_eq!(by_phone.kind, "zns");
    assert_eq!(by_phone.message["template_id"], "T-PHONE");

    let j = jobs_of(&s, "9104").await;
    assert_eq!(j.len(), 1, "{j:?}");
    assert_eq!(j[0].status, "skipped");
    assert_eq!(j[0].skip_reason.as_deref(), Some("not_following"));
    let why = j[0].last_error.clone().unwrap();
    assert!(
        why.starts_with("skipped: no choice of `try:` can go out:")
            && why.contains("-213")
            && why.contains("no phone number"),
        "{why}"
    );
    // No call was made to the user who unfollowed.
    assert_eq!(s.zalo_calls_to("9104"), 0);
    assert_eq!(s.zalo_calls_to("9103"), 0);
    // The tick counted the skip apart from the sends.
    assert!(r.to_string().contains("bỏ qua"), "{r}");
    // `zaloflow report` lists the send not made with its reason.
    let report = zaloflow::report::make(&s.store, t0 - DAY, None, t0 + DAY, TZ)
        .await
        .unwrap();
    let not_sent: Vec<(&str, &str, i64)> = report
        .spend
        .not_sent
        .iter()
        .map(|l| (l.rule.as_str(), l.reason.as_str(), l.jobs))
        .collect();
    assert_eq!(not_sent, vec![("nhac", "not_following", 1)]);
    let text = zaloflow::report::render::text(&report, TZ, zaloflow::i18n::Lang::En);
    assert!(
        text.contains("not sent    1 nhac: not following the OA"),
        "{text}"
    );
}

async fn refusals_when_sent_go_on_to_the_next_choice(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    s.zalo.add_template("T-CARE", 2, true);
    s.zalo.add_template("T-PHONE", 2, false);
    let t0 = hcm(2027, 3, 1, 10, 0);
    // zaloflow believes 9201 wrote an hour ago; Zalo knows it was 10 days ago: -230.
    known(&s, "9201", true, t0 - HOUR, None).await;
    s.zalo.touch_user("9201", at(t0 - 10 * DAY));
    // T-PHONE cannot go by user id: -249, then by phone.
    known(&s, "9202", true, t0 - HOUR, Some("0912000202")).await;
    // zaloflow believes 9203 follows; they unfollowed: -213, then the SMS.
    known(&s, "9203", true, t0 - HOUR, Some("0912000203")).await;
    s.zalo.set_follower("9203", false);

    s.event(tagged("nhac", "9201", t0)).await;
    s.event(tagged("nhac_mau", "9202", t0)).await;
    s.event(tagged("khuyen_mai", "9203", t0)).await;
    s.tick(t0 + MINUTE).await;
    // The fallbacks queued by the first tick's refusals go out (the same tick drains them,
    // or the next one does).
    s.tick(t0 + 2 * MINUTE).await;

    let j = jobs_of(&s, "9201").await;
    assert_eq!(
        j.iter().map(shape).collect::<Vec<_>>(),
        vec![
            s3("zalo", "skipped", "fell_back"),
            s3("zns", "sent", "template_user")
        ],
        "{j:#?}"
    );
    let why = j[0].last_error.clone().unwrap();
    assert!(
        why.contains("-230")
            && why.contains("sent instead: template message T-CARE by Zalo user id"),
        "{why}"
    );
    assert_eq!(j[1].rule_id.as_deref(), Some("nhac"));
    assert_eq!(j[1].source, format!("fallback:{}", j[0].id));
    // Nothing after it could reach 9201 (no phone number): the chain ends there.
    assert!(zaloflow_core::job::fallbacks(&j[1].payload).is_empty());

    let j = jobs_of(&s, "9202").await;
    assert_eq!(
        j.iter().map(shape).collect::<Vec<_>>(),
        vec![
            s3("zns", "skipped", "fell_back"),
            s3("zns", "sent", "template_phone")
        ],
        "{j:#?}"
    );
    assert!(j[0].last_error.as_deref().unwrap().contains("-249"));

    let j = jobs_of(&s, "9203").await;
    assert_eq!(
        j.iter().map(shape).collect::<Vec<_>>(),
        vec![s3("zalo", "skipped", "fell_back"), s3("sms", "sent", "sms")],
        "{j:#?}"
    );
    assert_eq!(
        s.sms_to("0912000203"),
        vec!["Ưu đãi! Giảm 20%.".to_string()]
    );
    // Zalo's -213 taught zaloflow the user no longer follows.
    let c = s.store.get_contact("9203").await.unwrap().unwrap();
    assert_eq!(c.follows, Some(false));

    // The report counts the refused sends whose next choice went.
    let report = zaloflow::report::make(&s.store, t0 - DAY, None, t0 + DAY, TZ)
        .await
        .unwrap();
    let fell_back: i64 = report
        .spend
        .not_sent
        .iter()
        .filter(|l| l.reason == "fell_back")
        .map(|l| l.jobs)
        .sum();
    assert_eq!(fell_back, 3);

    // Nothing twice: another tick sends nothing more.
    let before = s.zalo.messages().len();
    s.tick(t0 + HOUR).await;
    assert_eq!(s.zalo.messages().len(), before);
    assert_eq!(s.sms_to("0912000203").len(), 1);
}

fn load_errors(yaml: &str) -> Vec<String> {
    match zaloflow::rules::load_sources(
        &[(std::path::PathBuf::from("t.yaml"), yaml.to_string())],
        &zaloflow::rules::LoadOptions::default(),
    ) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn templates_and_choices_are_checked_with_line_and_column() {
    let rule = |action: &str| format!("rules:\n  - id: r\n    when: follow\n    do:\n{action}");
    let cases: &[(&str, &str)] = &[
        (
            "      - template: {id: \"T1\", data: {ten: \"{{display_name}}\"}}\n",
            "t.yaml:5:19: `template` needs `tag:`",
        ),
        (
            "      - template: {id: \"T1\", tag: promo}\n",
            "t.yaml:5:35: unknown template tag `promo`",
        ),
        (
            "      - template: {id: \"T1\", tag: promotion, data: {ten: \"\"}}\n",
            "template parameter `ten` has no value",
        ),
        (
            "      - template: {id: \"T1\", tag: 1, phone: \"0912\"}\n",
            "`phone:` is for `by: phone`",
        ),
        (
            "      - try:\n          - send: hi\n",
            "`try:` needs at least two sends",
        ),
        (
            "      - try:\n          - send: hi\n          - tag: x\n",
            "`tag` cannot be a choice of `try:`",
        ),
    ];
    for (action, want) in cases {
        let errors = load_errors(&rule(action));
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{action}: want {want:?}, got {errors:#?}"
        );
    }
    // What loads: a tag by name or number, by user or phone.
    assert!(load_errors(&rule(
        "      - try:\n          - template: {id: \"T1\", tag: 2}\n          - template: {id: \"T1\", tag: customer_care, by: phone}\n          - sms: hi\n"
    ))
    .is_empty());
}

//! The rule language end to end: loader diagnostics with their exact positions, the shipped
//! rules' behaviour, loops and cascades, templates, simulate (the real binary), hot reload,
//! and a property test that the matcher never panics.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use proptest::prelude::*;
use zaloflow::channels::{Payload, ZaloKind};
use zaloflow::rules::{
    load_dir, load_sources, ActionPlan, Diagnostic, EvalInput, Evaluation, LoadOptions,
    MemoryHistory, NoHistory, RuleSet, RuleWatcher, Stimulus, CASCADE_DEPTH,
};
use zaloflow::store::Contact;
use zaloflow::zalo::event::{self, Event};

const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;
const DAY: i64 = 86_400_000;

fn manifest(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn shipped() -> RuleSet {
    load_dir(&manifest("rules"), &english()).unwrap_or_else(|d| {
        panic!(
            "shipped rules do not check:\n{}",
            d.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

fn rules(yaml: &str) -> RuleSet {
    load_sources(&[(PathBuf::from("t.yaml"), yaml.to_string())], &english())
        .unwrap_or_else(|d| panic!("{d:?}"))
}

/// Local wall-clock time in the OA time zone, as ms.
fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    TZ.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

fn ev(json: &str) -> Event {
    event::parse(json.as_bytes()).unwrap()
}

fn text_message(user: &str, text: &str, at: i64) -> Event {
    ev(&format!(
        r#"{{"event_name":"user_send_text","sender":{{"id":"{user}"}},"recipient":{{"id":"1"}},"message":{{"text":"{text}","msg_id":"m{at}"}},"timestamp":"{at}"}}"#
    ))
}

fn contact(user: &str) -> Contact {
    Contact {
        user_id: user.into(),
        follows: Some(true),
        ..Contact::default()
    }
}

fn eval_event(set: &RuleSet, e: &Event, c: &Contact, at: i64, h: &MemoryHistory) -> Evaluation {
    set.evaluate_cascade(&EvalInput::new(Stimulus::Event(e), c, at, TZ, h))
}

/// The Zalo texts an evaluation would send, in order.
/// What each planned Zalo message says (a promotion's template: its header and text).
fn zalo_texts(e: &Evaluation) -> Vec<String> {
    e.actions()
        // A `try:`'s first choice counts as its text.
        .filter_map(|(_, a)| match a.payload("") {
            Some(Payload::Zalo {
                text, attachment, ..
            }) => text.clone().or_else(|| {
                attachment
                    .as_ref()
                    .and_then(zaloflow_core::job::promotion_text)
            }),
            _ => None,
        })
        .collect()
}

fn fired_ids(e: &Evaluation) -> Vec<&str> {
    e.fired.iter().map(|f| f.rule_id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// Loader diagnostics: every kind, with its exact line and column.

fn check_fixture(name: &str) -> Vec<Diagnostic> {
    let path = manifest("tests/fixtures/rules/broken").join(name);
    let src = std::fs::read_to_string(&path).unwrap();
    match load_sources(&[(PathBuf::from(name), src)], &english()) {
        Ok(_) => panic!("{name} loaded without a problem"),
        Err(d) => d,
    }
}

#[test]
fn every_loader_error_kind_has_its_line_and_column() {
    let cases: &[(&str, u32, u32, &str)] = &[
        ("yaml_syntax.yaml", 4, 4, "YAML syntax"),
        ("braces_unquoted.yaml", 5, 32, "must be written in quotes"),
        (
            "unknown_key.yaml",
            3,
            5,
            "unknown key `descripton` in a rule: did you mean `description`?",
        ),
        (
            "wrong_type.yaml",
            3,
            15,
            "`priority` must be a whole number",
        ),
        (
            "unknown_trigger.yaml",
            3,
            11,
            "unknown trigger `mesage`: did you mean `message`?",
        ),
        (
            "unknown_action.yaml",
            6,
            9,
            "unknown action `sned`: did you mean `send`?",
        ),
        (
            "unknown_condition.yaml",
            5,
            7,
            "unknown condition `has_tags`: did you mean `has_tag`?",
        ),
        ("unknown_list.yaml", 6, 16, "unknown list `khach_si`"),
        (
            "unknown_channel.yaml",
            7,
            20,
            "unknown chat channel `sales`",
        ),
        ("bad_duration.yaml", 6, 15, "bad duration `2x`"),
        ("bad_time.yaml", 5, 31, "bad time `25:00`"),
        ("bad_cron.yaml", 4, 17, "bad cron `0 9 * *`: write 5 fields"),
        (
            "bad_regex.yaml",
            5,
            16,
            "bad regex `(gia|price`: unclosed group",
        ),
        (
            "duplicate_id.yaml",
            6,
            5,
            "duplicate rule id `a` (first used at duplicate_id.yaml:2:5)",
        ),
        (
            "unknown_variable.yaml",
            5,
            52,
            "unknown template variable `ma_giam_gia`",
        ),
        (
            "unknown_variable_block.yaml",
            7,
            41,
            "unknown template variable `qua`",
        ),
        ("missing_parts.yaml", 2, 5, "a rule needs `when:`"),
        (
            "period_without_window.yaml",
            6,
            15,
            "`once_per: period` needs a `time_between`",
        ),
        (
            "option_outside_action.yaml",
            6,
            9,
            "`via` belongs inside `send:`",
        ),
        (
            "bad_enum.yaml",
            7,
            16,
            "`via` must be zalo, zalo_promotion or zalo_transaction",
        ),
    ];
    for (file, line, col, msg) in cases {
        let diags = check_fixture(file);
        let d = &diags[0];
        assert_eq!(
            (d.pos.line, d.pos.col),
            (*line, *col),
            "{file}: wrong position in {d}"
        );
        assert!(d.message.contains(msg), "{file}: {d}");
        assert_eq!(d.to_string(), format!("{file}:{line}:{col}: {}", d.message));
    }
    // Several problems of one file are all reported, in order.
    let cron = check_fixture("bad_cron.yaml");
    assert_eq!(cron.len(), 2);
    assert_eq!((cron[1].pos.line, cron[1].pos.col), (9, 17));
    assert!(cron[1].message.contains("bad cron `61 9 * * *`"));
    let missing = check_fixture("missing_parts.yaml");
    assert!(
        missing[1].message.contains("a rule needs `do:`"),
        "{missing:?}"
    );
    // Every fixture in the folder is covered by a case.
    let files: BTreeSet<String> = std::fs::read_dir(manifest("tests/fixtures/rules/broken"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let covered: BTreeSet<String> = cases.iter().map(|c| c.0.to_string()).collect();
    assert_eq!(files, covered);
}

#[test]
fn names_are_checked_across_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "lists: [khach_si]\nchat_channels: [agents]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "rules:\n  - id: x\n    when: message\n    if: {in_list: khach_si}\n    do:\n      - notify: {channel: agents, text: hi}\n      - list: {move: khach_vip, from: khach_si}\n",
    )
    .unwrap();
    let err = load_dir(dir.path(), &english()).unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!((err[0].pos.line, err[0].pos.col), (7, 22));
    assert!(err[0].message.contains("unknown list `khach_vip`"));
    let opts = LoadOptions {
        extra_lists: vec!["khach_vip".into()],
        ..english()
    };
    assert!(load_dir(dir.path(), &opts).is_ok());
    // Duplicate ids across files point at the second one.
    std::fs::write(
        dir.path().join("c.yaml"),
        "- id: x\n  when: follow\n  do: [stop]\n",
    )
    .unwrap();
    let err = load_dir(dir.path(), &opts).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err[0].path.ends_with("c.yaml"));
    assert!(err[0].message.contains("duplicate rule id `x`"));
}

#[test]
fn rules_check_command_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_zaloflow");
    let ok = std::process::Command::new(bin)
        .args(["rules", "check", "--rules"])
        .env("ZALOFLOW_LANG", "en")
        .arg(manifest("rules"))
        .output()
        .unwrap();
    assert!(ok.status.success());
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("ok: "), "{out}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        manifest("tests/fixtures/rules/broken/bad_cron.yaml"),
        dir.path().join("bad_cron.yaml"),
    )
    .unwrap();
    let bad = std::process::Command::new(bin)
        .args(["rules", "check", "--rules"])
        .env("ZALOFLOW_LANG", "en")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let out = String::from_utf8_lossy(&bad.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[2].starts_with("failed: 2 problems in "), "{out}");
    assert!(lines[0].ends_with("bad_cron.yaml:4:17: bad cron `0 9 * *`: write 5 fields (minute hour day month weekday), e.g. \"0 9 * * *\"; found 4"), "{out}");

    let schema = std::process::Command::new(bin)
        .args(["rules", "schema"])
        .output()
        .unwrap();
    assert!(schema.status.success());
    let v: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(v["title"], "zaloflow rule file");
}

// ---------------------------------------------------------------------------------------
// The shipped rules.

const MORNING: &str = "Chào bạn! Bắt đầu ngày mới với ưu đãi 20% cho đơn hàng sáng nay.";
const NOON: &str = "Đã đến giờ nghỉ trưa rồi! Ghé OA để nhận voucher ăn trưa nhé.";
const EVENING: &str = "Hello! Cùng review những sản phẩm hot nhất trong ngày nào!";

#[test]
fn greetings_by_time_of_day_verbatim_once_per_period() {
    let set = shipped();
    let mut h = MemoryHistory::default();
    let c = contact("u1");
    let say = |h: &mut MemoryHistory, at: i64| -> Vec<String> {
        let e = text_message("u1", "xin chào", at);
        let out = eval_event(&set, &e, &c, at, h);
        h.record_all("u1", &out, at);
        zalo_texts(&out)
    };
    assert_eq!(say(&mut h, local(2024, 5, 1, 5, 0)), vec![MORNING]);
    assert_eq!(
        say(&mut h, local(2024, 5, 1, 10, 59)),
        Vec::<String>::new(),
        "once per period"
    );
    assert_eq!(say(&mut h, local(2024, 5, 1, 11, 0)), vec![NOON]);
    assert_eq!(say(&mut h, local(2024, 5, 1, 13, 30)), Vec::<String>::new());
    assert_eq!(
        say(&mut h, local(2024, 5, 1, 15, 0)),
        Vec::<String>::new(),
        "nothing at 15:00"
    );
    assert_eq!(say(&mut h, local(2024, 5, 1, 17, 0)), vec![EVENING]);
    assert_eq!(say(&mut h, local(2024, 5, 1, 21, 59)), Vec::<String>::new());
    assert_eq!(say(&mut h, local(2024, 5, 1, 22, 0)), Vec::<String>::new());
    assert_eq!(
        say(&mut h, local(2024, 5, 2, 7, 45)),
        vec![MORNING],
        "again the next day"
    );
    // Judged in the OA time zone: 01:00 UTC is 08:00 in Ho Chi Minh City.
    let utc_1am = chrono::Utc
        .with_ymd_and_hms(2024, 5, 3, 1, 0, 0)
        .unwrap()
        .timestamp_millis();
    assert_eq!(say(&mut h, utc_1am), vec![MORNING]);
    // Another user is greeted independently.
    let e = text_message("u2", "hi", local(2024, 5, 1, 9, 0));
    let out = eval_event(&set, &e, &contact("u2"), local(2024, 5, 1, 9, 0), &h);
    assert_eq!(zalo_texts(&out), vec![MORNING]);
    // The greeting is a customer-service message to the user.
    let (_, a) = out.actions().next().unwrap();
    assert!(
        matches!(&a.action, ActionPlan::Outbound { payload: Payload::Zalo { user_id, kind: ZaloKind::Cs, .. } } if user_id == "u2")
    );
}

#[test]
fn follow_and_chat_now_welcome_and_tag_new_user() {
    let set = shipped();
    let h = MemoryHistory::default();
    let at = local(2024, 5, 1, 15, 0);
    let f = ev(&format!(
        r#"{{"event_name":"follow","oa_id":"1","follower":{{"id":"u9"}},"source":"oa_profile","timestamp":"{at}"}}"#
    ));
    let mut c = contact("u9");
    c.display_name = Some("Lan".into());
    let out = eval_event(&set, &f, &c, at, &h);
    assert_eq!(fired_ids(&out), vec!["chao_mung_theo_doi"]);
    let texts = zalo_texts(&out);
    assert!(
        texts[0].starts_with("Chào mừng Lan đến với OA!"),
        "{texts:?}"
    );
    let tag = out.fired[0]
        .actions
        .iter()
        .find(|a| matches!(a.action, ActionPlan::Tag { .. }))
        .unwrap();
    assert_eq!(
        tag.action,
        ActionPlan::Tag {
            tag: "new_user".into(),
            add: true
        }
    );
    // Mirrored to Zalo.
    assert_eq!(
        tag.payload("u9"),
        Some(Payload::ZaloTag {
            user_id: "u9".into(),
            tag: "new_user".into(),
            add: true
        })
    );
    // Without a name, the fallback reads naturally.
    let out = eval_event(&set, &f, &contact("u9"), at, &h);
    assert!(zalo_texts(&out)[0].starts_with("Chào mừng bạn đến với OA!"));

    let chat = ev(&format!(
        r#"{{"event_name":"user_click_chatnow","oa_id":"1","user_id":"u9","timestamp":"{at}"}}"#
    ));
    let mut h = MemoryHistory::default();
    let out = eval_event(&set, &chat, &contact("u9"), at, &h);
    assert_eq!(fired_ids(&out), vec!["chao_mung_nhan_tin"]);
    assert_eq!(
        zalo_texts(&out),
        vec!["Xin chào bạn! Bạn cần chúng mình tư vấn gì ạ?"]
    );
    h.record_all("u9", &out, at);
    let again = eval_event(&set, &chat, &contact("u9"), at + DAY, &h);
    assert!(again.fired.is_empty(), "once ever");
}

#[test]
fn price_question_tags_interested_and_vip_tag_notifies_agents() {
    let set = shipped();
    let h = MemoryHistory::default();
    let at = local(2024, 5, 1, 15, 0);
    let e = text_message("u3", "Cho mình hỏi GIÁ sản phẩm", at);
    let out = eval_event(&set, &e, &contact("u3"), at, &h);
    assert_eq!(fired_ids(&out), vec!["quan_tam_hoi_gia"]);

    let tag = ev(&format!(
        r#"{{"event_name":"add_user_to_tag","oa_id":"1","tag":{{"name":"vip_customer","user_ids":["u3"]}},"timestamp":"{at}"}}"#
    ));
    let mut c = contact("u3");
    c.display_name = Some("Lan".into());
    c.tags.insert("vip_customer".into());
    let out = eval_event(&set, &tag, &c, at, &h);
    assert_eq!(fired_ids(&out), vec!["vip_nhan_dien"]);
    let chat = out
        .actions()
        .find_map(|(_, a)| match &a.action {
            ActionPlan::Outbound {
                payload: Payload::Chat { channel, text, .. },
            } => Some((channel.clone(), text.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(chat.0.as_deref(), Some("agents"));
    assert!(
        chat.1.contains("Khách VIP mới: Lan — SĐT chưa có."),
        "{}",
        chat.1
    );

    // A VIP's message: a priority handoff with a 2-hour deadline.
    let m = text_message("u3", "cần hỗ trợ", at);
    let out = eval_event(&set, &m, &c, at, &h);
    assert_eq!(out.fired[1].rule_id, "vip_tin_nhan_uu_tien");
    match &out.fired[1].actions[0].action {
        ActionPlan::Handoff {
            team, deadline_at, ..
        } => {
            assert_eq!(team.as_deref(), Some("agents"));
            assert_eq!(*deadline_at, at + 2 * 3_600_000);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reactivation_stages_once_per_silence_via_promotion() {
    let set = shipped();
    let mut h = MemoryHistory::default();
    let start = local(2024, 5, 1, 9, 0);
    let mut c = contact("u5");
    c.last_interaction = Some(start);
    let scan = |h: &MemoryHistory, c: &Contact, at: i64| {
        set.evaluate_cascade(&EvalInput::new(Stimulus::Inactive, c, at, TZ, h))
    };
    assert!(
        scan(&h, &c, start + 6 * DAY).fired.is_empty(),
        "6 days: nothing yet"
    );
    let s1 = scan(&h, &c, start + 7 * DAY);
    assert_eq!(fired_ids(&s1), vec!["kich_hoat_giai_doan_1"]);
    // A promotion first, an SMS if it cannot go (`try:`).
    let ActionPlan::FirstOf(choices) = &s1.fired[0].actions[0].action else {
        panic!("{:?}", s1.fired[0].actions[0].action);
    };
    match &choices[0] {
        ActionPlan::Outbound {
            payload:
                Payload::Zalo {
                    kind,
                    text,
                    attachment,
                    ..
                },
        } => {
            assert_eq!(
                *kind,
                ZaloKind::Promotion,
                "cs messages are refused after 7 days"
            );
            // A promotion is Zalo's template, not a bare text.
            assert_eq!(text, &None);
            assert_eq!(
                attachment.as_ref().and_then(zaloflow_core::job::promotion_text).as_deref(),
                Some("Hello bạn! Dạo này bạn khỏe không? OA có nhiều ưu đãi và nội dung hay lắm, ghé thăm mình nhé!")
            );
        }
        other => panic!("{other:?}"),
    }
    h.record_all("u5", &s1, start + 7 * DAY);
    assert!(
        scan(&h, &c, start + 8 * DAY).fired.is_empty(),
        "once per silence"
    );
    let s2 = scan(&h, &c, start + 15 * DAY);
    assert_eq!(fired_ids(&s2), vec!["kich_hoat_giai_doan_2"]);
    assert_eq!(
        zalo_texts(&s2),
        vec!["Ưu đãi dành riêng cho bạn! Giảm 30% cho đơn hàng đầu tiên trong tuần này."]
    );
    h.record_all("u5", &s2, start + 15 * DAY);
    assert!(
        scan(&h, &c, start + 31 * DAY).fired.is_empty(),
        "past 30 days"
    );
    // The user writes again: a new silence, and stage 1 can come again.
    c.last_interaction = Some(start + 40 * DAY);
    assert_eq!(
        fired_ids(&scan(&h, &c, start + 48 * DAY)),
        vec!["kich_hoat_giai_doan_1"]
    );
    // Never to users who unfollowed.
    c.follows = Some(false);
    assert!(scan(&h, &c, start + 48 * DAY).fired.is_empty());
}

// ---------------------------------------------------------------------------------------
// Loops and cascades.

#[test]
fn oa_echoes_never_start_message_rules() {
    let set = shipped();
    let h = NoHistory;
    let at = local(2024, 5, 1, 8, 0);
    for body in [
        format!(
            r#"{{"event_name":"oa_send_text","sender":{{"id":"1"}},"recipient":{{"id":"u1"}},"message":{{"text":"Chào bạn! giá","msg_id":"x"}},"timestamp":"{at}"}}"#
        ),
        format!(
            r#"{{"event_name":"oa_send_text","sender":{{"id":"1","admin_id":"a1"}},"recipient":{{"id":"u1"}},"message":{{"text":"giá 100k","msg_id":"y"}},"timestamp":"{at}"}}"#
        ),
    ] {
        let e = ev(&body);
        let out = set.evaluate_cascade(&EvalInput::new(
            Stimulus::Event(&e),
            &contact("u1"),
            at,
            TZ,
            &h,
        ));
        assert!(out.fired.is_empty(), "{body}: {out:?}");
    }
    // A person's reply starts oa_reply rules, the OA's automated echo does not.
    let set = rules("rules:\n  - id: agent_replied\n    when: oa_reply\n    do:\n      - set_field: {name: answered, value: \"yes\"}\n");
    let human = ev(&format!(
        r#"{{"event_name":"oa_send_text","sender":{{"id":"1","admin_id":"a1"}},"recipient":{{"id":"u1"}},"message":{{"text":"ok","msg_id":"z"}},"timestamp":"{at}"}}"#
    ));
    let robot = ev(&format!(
        r#"{{"event_name":"oa_send_text","sender":{{"id":"1"}},"recipient":{{"id":"u1"}},"message":{{"text":"ok","msg_id":"w"}},"timestamp":"{at}"}}"#
    ));
    let c = contact("u1");
    assert_eq!(
        fired_ids(&set.evaluate(&EvalInput::new(Stimulus::Event(&human), &c, at, TZ, &h))),
        vec!["agent_replied"]
    );
    assert!(set
        .evaluate(&EvalInput::new(Stimulus::Event(&robot), &c, at, TZ, &h))
        .fired
        .is_empty());
}

#[test]
fn tag_cascade_is_bounded() {
    // t0 -> t1 -> t2 -> t3 -> t4 -> t5: each rule tags the next.
    let mut yaml = String::from("rules:\n");
    for i in 0..5 {
        yaml.push_str(&format!(
            "  - id: r{i}\n    when: {{tag_added: t{i}}}\n    do:\n      - tag: t{}\n",
            i + 1
        ));
    }
    let set = rules(&yaml);
    let at = local(2024, 5, 1, 9, 0);
    let e = ev(&format!(
        r#"{{"event_name":"add_user_to_tag","tag":{{"name":"t0","user_ids":["u1"]}},"timestamp":"{at}"}}"#
    ));
    let c = contact("u1");
    let out = set.evaluate_cascade(&EvalInput::new(Stimulus::Event(&e), &c, at, TZ, &NoHistory));
    // r0 at depth 0, then r1..r3 at depths 1..=3; r4 would be depth 4.
    assert_eq!(fired_ids(&out), vec!["r0", "r1", "r2", "r3"]);
    assert_eq!(
        out.fired.iter().map(|f| f.depth).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert_eq!(CASCADE_DEPTH, 3);
    assert!(out.cascade_truncated);
    assert_eq!(out.fired[1].cause, "tag_added t1 (by a rule)");

    // A loop (a -> b -> a) ends: a tag already set causes nothing.
    let set = rules("rules:\n  - id: a\n    when: {tag_added: x}\n    do:\n      - tag: y\n  - id: b\n    when: {tag_added: y}\n    do:\n      - tag: x\n      - untag: y\n  - id: c\n    when: {tag_removed: y}\n    do:\n      - tag: y\n");
    let e = ev(&format!(
        r#"{{"event_name":"add_user_to_tag","tag":{{"name":"x","user_ids":["u1"]}},"timestamp":"{at}"}}"#
    ));
    let mut c = contact("u1");
    c.tags.insert("x".into());
    let out = set.evaluate_cascade(&EvalInput::new(Stimulus::Event(&e), &c, at, TZ, &NoHistory));
    assert!(out.fired.len() <= 1 + 3 * 3, "{out:?}");
    assert_eq!(out.fired[0].rule_id, "a");
    // Without cascade, only the event's own rules.
    let single = set.evaluate(&EvalInput::new(Stimulus::Event(&e), &c, at, TZ, &NoHistory));
    assert_eq!(fired_ids(&single), vec!["a"]);
}

#[test]
fn priority_stop_wait_and_templates() {
    let set = rules(
        r##"
lists: [khach_vip]
rules:
  - id: low
    when: message
    do:
      - send: "low"
  - id: high
    priority: 10
    when:
      message: {contains: [đặt hàng, order]}
    if:
      any:
        - has_tag: vip_customer
        - field: {name: city, equals: Hà Nội}
    do:
      - send: |
          Cảm ơn {{display_name | "bạn"}}! Đơn của bạn ({{field.city}}) đã nhận.
      - wait: 30m
      - send:
          text: Bạn hài lòng chứ {{display_name}}?
          buttons:
            - {title: Có, query: "#hai_long"}
            - {title: Gọi shop, phone: "0912345678"}
      - wait: {until: "09:00"}
      - sms: {text: "Mã: {{field.code | 'KM2024'}}", to: "{{phone}}"}
      - list: {add: khach_vip}
      - stop
"##,
    );
    let at = local(2024, 5, 1, 20, 0);
    let e = text_message("u1", "Mình muốn ĐẶT HÀNG", at);
    let mut c = contact("u1");
    c.fields.insert("city".into(), "hà nội".into());
    c.phone = Some("84912345678".into());
    let out = set.evaluate(&EvalInput::new(Stimulus::Event(&e), &c, at, TZ, &NoHistory));
    assert_eq!(
        fired_ids(&out),
        vec!["high"],
        "stop keeps `low` from running"
    );
    assert!(out.fired[0].stopped);
    let acts = &out.fired[0].actions;
    assert_eq!(acts[0].run_at, at);
    assert_eq!(
        zalo_texts(&out)[0],
        "Cảm ơn bạn! Đơn của bạn (hà nội) đã nhận."
    );
    assert_eq!(acts[1].run_at, at + 30 * 60_000);
    assert_eq!(zalo_texts(&out)[1], "Bạn hài lòng chứ?");
    match &acts[1].action {
        ActionPlan::Outbound {
            payload:
                Payload::Zalo {
                    attachment: Some(a),
                    ..
                },
        } => {
            assert_eq!(a["payload"]["buttons"][0]["type"], "oa.query.show");
            assert_eq!(
                a["payload"]["buttons"][1]["payload"]["phone_code"],
                "0912345678"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        acts[2].run_at,
        local(2024, 5, 2, 9, 0),
        "until the next 09:00"
    );
    assert_eq!(
        acts[2].action,
        ActionPlan::Outbound {
            payload: Payload::Sms {
                to: "84912345678".into(),
                text: "Mã: KM2024".into()
            }
        }
    );
    assert!(
        matches!(&acts[3].action, ActionPlan::List { op: "add", list, .. } if list == "khach_vip")
    );
    // Without the tag or the city: only the low rule.
    let out = set.evaluate(&EvalInput::new(
        Stimulus::Event(&e),
        &contact("u1"),
        at,
        TZ,
        &NoHistory,
    ));
    assert_eq!(fired_ids(&out), vec!["low"]);
    // An SMS without a phone number is skipped, not sent to nobody.
    let set = rules("rules:\n  - id: s\n    when: follow\n    do:\n      - sms: hi\n");
    let f = ev(r#"{"event_name":"follow","follower":{"id":"u1"},"timestamp":"1"}"#);
    let out = set.evaluate(&EvalInput::new(
        Stimulus::Event(&f),
        &contact("u1"),
        1,
        TZ,
        &NoHistory,
    ));
    assert!(matches!(
        out.fired[0].actions[0].action,
        ActionPlan::Skipped { action: "sms", .. }
    ));
}

#[test]
fn cooldown_and_once_per_day_use_the_history() {
    let set = rules("rules:\n  - id: cd\n    when: message\n    do: [{send: a}]\n    cooldown: 6h\n  - id: daily\n    when: message\n    do: [{send: b}]\n    once_per: day\n");
    let mut h = MemoryHistory::default();
    let c = contact("u1");
    let go = |h: &mut MemoryHistory, at: i64| {
        let e = text_message("u1", "x", at);
        let out = set.evaluate(&EvalInput::new(Stimulus::Event(&e), &c, at, TZ, h));
        h.record_all("u1", &out, at);
        fired_ids(&out)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let t = local(2024, 5, 1, 8, 0);
    assert_eq!(go(&mut h, t), vec!["cd", "daily"]);
    assert!(go(&mut h, t + 5 * 3_600_000).is_empty());
    assert_eq!(go(&mut h, t + 6 * 3_600_000), vec!["cd"]);
    assert!(go(&mut h, t + 7 * 3_600_000).is_empty());
    // Past local midnight: a new day; the cooldown ran out long ago.
    assert_eq!(go(&mut h, local(2024, 5, 2, 0, 1)), vec!["cd", "daily"]);
    assert_eq!(go(&mut h, local(2024, 5, 2, 0, 2)), Vec::<String>::new());
}

#[test]
fn scheduler_triggers_match_their_rules() {
    let set = rules(
        r#"
rules:
  - id: bday
    when: {special_day: {field: dob, days_before: 1}}
    do: [{send: "Mai là sinh nhật bạn!"}]
  - id: gift
    when: {field_changed: {field: qua, to: Áo thun}}
    do: [{sms: "Nhận áo tại cửa hàng"}]
  - id: morning_news
    when: {schedule: "0 9 * * mon-fri"}
    do: [{send: news}]
  - id: form
    when: {form_submitted: dang_ky}
    do: [{tag: potential}]
"#,
    );
    let mut c = contact("u1");
    c.fields.insert("dob".into(), "02/05/1990".into());
    c.phone = Some("84900000000".into());
    let at = local(2024, 5, 1, 0, 5);
    let run = |s: Stimulus| {
        fired_ids(&set.evaluate(&EvalInput::new(s, &c, at, TZ, &NoHistory)))
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(run(Stimulus::SpecialDay { field: "dob" }), vec!["bday"]);
    assert_eq!(
        run(Stimulus::FieldChanged {
            field: "qua",
            value: Some("áo thun")
        }),
        vec!["gift"]
    );
    assert!(run(Stimulus::FieldChanged {
        field: "qua",
        value: Some("Ba lô")
    })
    .is_empty());
    assert_eq!(
        run(Stimulus::Schedule {
            rule_id: "morning_news"
        }),
        vec!["morning_news"]
    );
    assert_eq!(
        run(Stimulus::FormSubmitted { form: "dang_ky" }),
        vec!["form"]
    );
    assert!(run(Stimulus::FormSubmitted { form: "khac" }).is_empty());
    let (_, cron) = set.scheduled().next().unwrap();
    // Wednesday 1 May 2024 00:05 -> 09:00 the same day, local time.
    assert_eq!(cron.next_after(at, TZ), Some(local(2024, 5, 1, 9, 0)));
}

// ---------------------------------------------------------------------------------------
// simulate: the real binary.

#[test]
fn simulate_prints_matches_and_actions() {
    let bin = env!("CARGO_BIN_EXE_zaloflow");
    let out = std::process::Command::new(bin)
        .arg("simulate")
        .env("ZALOFLOW_LANG", "en")
        .arg(manifest("tests/fixtures/rules/events/message_morning.json"))
        .arg("--rules")
        .arg(manifest("rules"))
        .env("ZALOFLOW_TZ", "Asia/Ho_Chi_Minh")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("At:    2024-05-01 07:30 Wed (Asia/Ho_Chi_Minh)"),
        "{stdout}"
    );
    assert!(stdout.contains("2 rules match:"), "{stdout}");
    assert!(stdout.contains("1. chao_buoi_sang"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "07:30  send via zalo (customer-service message): \"{MORNING}\""
        )),
        "{stdout}"
    );
    assert!(stdout.contains("2. quan_tam_hoi_gia"), "{stdout}");
    assert!(stdout.contains("tag interested (also in Zalo)"), "{stdout}");
    assert!(stdout.contains("Dry run: nothing was sent or recorded."));

    // --at moves the event to 15:00: no greeting, only the tag.
    let out = std::process::Command::new(bin)
        .arg("simulate")
        .env("ZALOFLOW_LANG", "en")
        .arg(manifest("tests/fixtures/rules/events/message_morning.json"))
        .args(["--at", "2024-05-01T15:00:00+07:00", "--rules"])
        .arg(manifest("rules"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 rule match:") && !stdout.contains("chao_buoi"),
        "{stdout}"
    );

    // A scheduler trigger with a contact given in the file.
    let out = std::process::Command::new(bin)
        .arg("simulate")
        .env("ZALOFLOW_LANG", "en")
        .arg(manifest("tests/fixtures/rules/events/silent_10_days.json"))
        .args(["--at", "2024-05-01T15:00:00+07:00", "--rules"])
        .arg(manifest("rules"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("kich_hoat_giai_doan_1"), "{stdout}");
    assert!(
        stdout.contains("send via zalo_promotion: \"Hello bạn!"),
        "{stdout}"
    );

    // A bad input file: exit 2 with a reason.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"contact\": {}}").unwrap();
    let out = std::process::Command::new(bin)
        .arg("simulate")
        .env("ZALOFLOW_LANG", "en")
        .arg(&bad)
        .arg("--rules")
        .arg(manifest("rules"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("exactly one of \"event\" and \"trigger\"")
    );
}

// ---------------------------------------------------------------------------------------
// Hot reload.

#[test]
fn hot_reload_keeps_the_last_good_rules() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.yaml");
    std::fs::write(
        &file,
        "rules:\n  - id: one\n    when: follow\n    do: [{send: a}]\n",
    )
    .unwrap();
    let w = RuleWatcher::load(dir.path(), english(), 1).unwrap();
    assert_eq!(w.current().len(), 1);
    assert_eq!(w.check(2), zaloflow::rules::watch::Reload::Unchanged);

    // A good change is picked up.
    std::fs::write(&file, "rules:\n  - id: one\n    when: follow\n    do: [{send: a}]\n  - id: two\n    when: unfollow\n    do: [{send: b}]\n").unwrap();
    assert_eq!(w.check(3), zaloflow::rules::watch::Reload::Reloaded);
    assert_eq!(w.current().len(), 2);
    assert_eq!(w.status().reloads, 1);

    // A broken change is reported and the old rules keep running.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "rules:\n  - id: three\n    when: mesage\n    do: [{send: c}]\n",
    )
    .unwrap();
    match w.check(4) {
        zaloflow::rules::watch::Reload::Failed(d) => {
            assert_eq!(d.len(), 1);
            assert_eq!((d[0].pos.line, d[0].pos.col), (3, 11));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.current().len(), 2, "last good rules still running");
    assert!(w.current().get("two").is_some());
    let st = w.status();
    assert!(!w.is_clean());
    assert_eq!(st.failed_at, Some(4));
    assert!(st.errors[0].ends_with("broken.yaml:3:11: unknown trigger `mesage`: did you mean `message`? (known: message, follow, unfollow, chat_now, tag_added, tag_removed, info_submitted, oa_reply, schedule, inactive, special_day, field_changed, form_submitted, email_opened, email_not_opened, email_clicked, after_step)"), "{st:?}");
    // Unchanged broken files are not re-reported every poll.
    assert_eq!(w.check(5), zaloflow::rules::watch::Reload::Unchanged);

    // Fixing it brings the new rules in.
    std::fs::write(
        dir.path().join("broken.yaml"),
        "rules:\n  - id: three\n    when: message\n    do: [{send: c}]\n",
    )
    .unwrap();
    assert_eq!(w.check(6), zaloflow::rules::watch::Reload::Reloaded);
    assert_eq!(w.current().len(), 3);
    assert!(w.is_clean());

    // An emptied file (a slip in the editor, a cut-off upload) does not take its rules away.
    std::fs::write(&file, "# \n").unwrap();
    match w.check(7) {
        zaloflow::rules::watch::Reload::Failed(d) => {
            assert!(d[0].message.starts_with("this file is empty"), "{d:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.current().len(), 3, "last good rules still running");
    assert!(!w.is_clean());
}

#[test]
fn the_commonest_yaml_mistakes_say_how_to_write_the_line() {
    let check = |src: &str| {
        load_sources(&[(PathBuf::from("x.yaml"), src.into())], &english()).unwrap_err()[0]
            .to_string()
    };
    let colon = check(
        "rules:\n  - id: a\n    when: message\n    do:\n      - send: Voucher cho bạn: mã TRUA50\n",
    );
    assert!(
        colon.starts_with("x.yaml:5:30: YAML syntax: mapping values are not allowed"),
        "{colon}"
    );
    assert!(
        colon.ends_with("write it as:\n    - send: \"Voucher cho bạn: mã TRUA50\""),
        "{colon}"
    );
    let quotes = check(
        "rules:\n  - id: a\n    when: message\n    do:\n      - send: \"Chào \"bạn\" nhé\"\n",
    );
    assert!(
        quotes.contains("a quote mark inside the quotes"),
        "{quotes}"
    );
    assert!(
        quotes.ends_with("\n    - send: 'Chào \"bạn\" nhé'"),
        "{quotes}"
    );
    // The suggested lines load.
    for fixed in [
        "- send: \"Voucher cho bạn: mã TRUA50\"",
        "- send: 'Chào \"bạn\" nhé'",
    ] {
        let src = format!("rules:\n  - id: a\n    when: message\n    do:\n      {fixed}\n");
        assert!(load_sources(&[(PathBuf::from("x.yaml"), src)], &english()).is_ok());
    }
    assert!(check("").starts_with("x.yaml:1:1: this file is empty"));
    assert!(load_sources(
        &[(PathBuf::from("x.yaml"), "rules: []\n".into())],
        &english()
    )
    .is_ok());
}

#[tokio::test]
async fn the_watcher_task_polls_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "- id: one\n  when: follow\n  do: [stop]\n",
    )
    .unwrap();
    let w = std::sync::Arc::new(RuleWatcher::load(dir.path(), english(), 0).unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(
        w.clone()
            .run(std::time::Duration::from_millis(20), stop.clone()),
    );
    std::fs::write(
        dir.path().join("s.yaml"),
        "- id: two\n  when: follow\n  do: [stop]\n",
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while w.current().len() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "not reloaded");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Property: random rule sets and random events never panic the matcher.

fn arb_trigger() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("message".to_string()),
        Just("follow".to_string()),
        Just("unfollow".to_string()),
        Just("chat_now".to_string()),
        Just("oa_reply".to_string()),
        Just("info_submitted".to_string()),
        "[a-c]".prop_map(|t| format!("{{tag_added: {t}}}")),
        "[a-c]".prop_map(|t| format!("{{tag_removed: {t}}}")),
        "[a-zà-ỹ][a-zà-ỹ ]{0,5}".prop_map(|s| format!("{{message: {{contains: \"{s}\"}}}}")),
        "[a-z]{1,4}".prop_map(|s| format!("{{message: {{equals: \"{s}\", attachment: any}}}}")),
        Just("{message: {regex: \"^(a|b)+$\"}}".to_string()),
        (0u32..40, 0u32..40).prop_map(|(a, b)| format!(
            "{{inactive: {{min_days: {}, max_days: {}}}}}",
            a.min(b),
            a.max(b)
        )),
        (0u32..5).prop_map(|d| format!("{{special_day: {{field: dob, days_before: {d}}}}}")),
        Just("{schedule: \"*/5 * * * *\"}".to_string()),
    ]
}

fn arb_condition() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (0u32..24, 0u32..60, 0u32..24, 0u32..60).prop_map(|(a, b, c, d)| format!(
            "{{time_between: [\"{a:02}:{b:02}\", \"{c:02}:{d:02}\"]}}"
        )),
        Just("{weekdays: [mon, sat, cn]}".to_string()),
        (0u32..20).prop_map(|d| format!("{{silent_for: {{min_days: {d}}}}}")),
        "[a-c]".prop_map(|t| format!("{{has_tag: {t}}}")),
        "[a-c]".prop_map(|t| format!("{{lacks_tag: [{t}, z]}}")),
        any::<bool>().prop_map(|b| format!("{{follows: {b}}}")),
        Just("{field: {name: dob, is_set: true}}".to_string()),
        Just("{last_interaction_within: 3d}".to_string()),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3)
                .prop_map(|v| format!("{{any: [{}]}}", v.join(", "))),
            inner.prop_map(|c| format!("{{not: {c}}}")),
        ]
    })
}

fn arb_action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{send: \"Chào {{display_name | 'bạn'}} {{tags}}\"}".to_string()),
        Just("{send: {text: \"x {{field.dob}}\", via: zalo_promotion, buttons: [{title: a, url: \"https://e.vn/{{user_id}}\"}]}}".to_string()),
        "[a-c]".prop_map(|t| format!("{{tag: {t}}}")),
        "[a-c]".prop_map(|t| format!("{{untag: {t}}}")),
        Just("{sms: \"{{phone}}\"}".to_string()),
        Just("{email: {subject: s, html: \"<b>{{display_name}}</b>\"}}".to_string()),
        Just("{zns: {template_id: \"1\", data: {name: \"{{display_name}}\"}}}".to_string()),
        Just("{notify: {text: \"{{display_name}}\"}}".to_string()),
        Just("{task: {title: t, due_in: 1d}}".to_string()),
        Just("{set_field: {name: f, value: v}}".to_string()),
        Just("{handoff: {deadline: 2h, priority: urgent}}".to_string()),
        Just("{wait: 90m}".to_string()),
        Just("{wait: {until: \"09:00\"}}".to_string()),
        Just("stop".to_string()),
    ]
}

fn arb_rule(i: usize) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(arb_trigger(), 1..3),
        prop::collection::vec(arb_condition(), 0..3),
        prop::collection::vec(arb_action(), 1..4),
        prop_oneof![Just(""), Just("once_per: day"), Just("once_per: silence"), Just("once_per: ever"), Just("cooldown: 1h")],
        -3i64..3,
    )
        .prop_map(move |(t, c, a, limit, prio)| {
            let conds = if c.is_empty() { String::new() } else { format!("    if: [{}]\n", c.join(", ")) };
            format!(
                "  - id: r{i}\n    priority: {prio}\n    when: [{}]\n{conds}    do: [{}]\n    {limit}\n",
                t.join(", "),
                a.join(", ")
            )
        })
}

fn arb_event() -> impl Strategy<Value = String> {
    let user = "u1";
    prop_oneof![
        "[a-zà-ỹ ]{0,8}".prop_map(move |t| format!(r#"{{"event_name":"user_send_text","sender":{{"id":"{user}"}},"message":{{"text":"{t}","msg_id":"m"}}}}"#)),
        Just(format!(r#"{{"event_name":"user_send_image","sender":{{"id":"{user}"}},"message":{{"attachments":[{{"type":"image","payload":{{"url":"u"}}}}]}}}}"#)),
        Just(format!(r#"{{"event_name":"follow","follower":{{"id":"{user}"}}}}"#)),
        Just(format!(r#"{{"event_name":"unfollow","follower":{{"id":"{user}"}}}}"#)),
        Just(format!(r#"{{"event_name":"user_click_chatnow","user_id":"{user}"}}"#)),
        "[a-c]".prop_map(move |t| format!(r#"{{"event_name":"add_user_to_tag","tag":{{"name":"{t}","user_ids":["{user}"]}}}}"#)),
        "[a-c]".prop_map(move |t| format!(r#"{{"event_name":"remove_user_from_tag","tag":{{"name":"{t}","user_ids":["{user}"]}}}}"#)),
        Just(format!(r#"{{"event_name":"oa_send_text","sender":{{"id":"1","admin_id":"9"}},"recipient":{{"id":"{user}"}},"message":{{"text":"hi","msg_id":"x"}}}}"#)),
        Just(format!(r#"{{"event_name":"user_submit_info","sender":{{"id":"{user}"}},"info":{{"name":"A","phone":"0912345678"}}}}"#)),
        Just(r#"{"event_name":"something_new"}"#.to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn random_rules_and_events_never_panic(
        rule_src in (1usize..6).prop_flat_map(|n| (0..n).map(arb_rule).collect::<Vec<_>>()),
        event_src in arb_event(),
        at in -10_000_000_000_000i64..10_000_000_000_000i64,
        silent in prop::option::of(0i64..60),
        tags in prop::collection::btree_set("[a-c]", 0..3),
        dob in prop::option::of("[0-9/-]{0,10}"),
        scheduled in any::<bool>(),
    ) {
        let yaml = format!("rules:\n{}", rule_src.join(""));
        let set = load_sources(&[(PathBuf::from("p.yaml"), yaml.clone())], &english())
            .map_err(|d| TestCaseError::fail(format!("{yaml}\n{d:?}")))?;
        let e = ev(&event_src);
        let mut c = contact("u1");
        c.tags = tags;
        c.last_interaction = silent.map(|d| at - d * DAY);
        if let Some(d) = dob { c.fields.insert("dob".into(), d); }
        let mut h = MemoryHistory::default();
        for _ in 0..2 {
            let stim = if scheduled { Stimulus::Inactive } else { Stimulus::Event(&e) };
            let out = set.evaluate_cascade(&EvalInput::new(stim, &c, at, TZ, &h));
            for f in &out.fired {
                prop_assert!(f.depth <= CASCADE_DEPTH);
                for a in &f.actions { prop_assert!(a.run_at >= at); }
            }
            h.record_all("u1", &out, at);
            let _ = set.evaluate(&EvalInput::new(Stimulus::SpecialDay { field: "dob" }, &c, at, TZ, &h));
            let _ = set.evaluate(&EvalInput::new(Stimulus::Schedule { rule_id: "r0" }, &c, at, TZ, &h));
        }
    }

    #[test]
    fn random_text_never_panics_the_loader(src in "[ -~\\n:{}\\[\\]\\-à-ỹ]{0,200}") {
        let _ = load_sources(&[(PathBuf::from("x.yaml"), src)], &english());
    }
}

#[test]
fn many_contains_rules_match_like_few() {
    // Past 64 keywords the matcher uses a literal set; results must not change.
    for n in [10, 200] {
        let mut y = String::from("rules:\n");
        for i in 0..n {
            y.push_str(&format!(
                "  - id: k{i}\n    when:\n      message: {{contains: [\"mã {i}#\", \"CODE{i}#\"]}}\n    do: [{{tag: k{i}}}]\n"
            ));
        }
        y.push_str("  - id: any_message\n    when: message\n    do: [{tag: seen}]\n");
        let set = rules(&y);
        let at = local(2024, 5, 1, 9, 0);
        let e = text_message("u1", "Cho mình mã 7# và code3# nhé", at);
        let out = set.evaluate(&EvalInput::new(
            Stimulus::Event(&e),
            &contact("u1"),
            at,
            TZ,
            &NoHistory,
        ));
        assert_eq!(fired_ids(&out), vec!["k3", "k7", "any_message"], "n = {n}");
        let e = text_message("u1", "không có gì", at);
        let out = set.evaluate(&EvalInput::new(
            Stimulus::Event(&e),
            &contact("u1"),
            at,
            TZ,
            &NoHistory,
        ));
        assert_eq!(fired_ids(&out), vec!["any_message"], "n = {n}");
    }
}

#[test]
fn shipped_price_rule_finds_words_not_parts_of_words() {
    let set = shipped();
    let h = MemoryHistory::default();
    let at = local(2024, 5, 1, 15, 0);
    let fires = |text: &str| {
        let e = text_message("u9", text, at);
        fired_ids(&eval_event(&set, &e, &contact("u9"), at, &h)).contains(&"quan_tam_hoi_gia")
    };
    // Questions about a price, with and without dấu, in any case, decomposed accents too.
    for yes in [
        "Giá bao nhiêu vậy shop?",
        "gia bao nhieu",
        "GIÁ BAO NHIÊU",
        "cái này bao nhieu tien a",
        "gia\u{301} bao nhiêu",
    ] {
        assert!(fires(yes), "{yes:?} should tag interested");
    }
    // Words that merely contain the letters, and a review, are not price questions.
    for no in [
        "Chúc shop Giáng sinh vui vẻ!",
        "đánh giá 5 sao nhé",
        "shop giao hàng nhanh",
    ] {
        assert!(!fires(no), "{no:?} should not tag interested");
    }
}

#[test]
fn contains_is_whole_words_and_contains_text_is_anywhere() {
    let set = rules(
        "rules:\n  - id: words\n    when:\n      message: {contains: giá}\n    do: [{tag: a}]\n  - id: inside\n    when:\n      message: {contains_text: giá}\n    do: [{tag: b}]\n  - id: bare\n    when:\n      message: {contains: gia, accents: optional}\n    do: [{tag: c}]\n  - id: exact\n    when:\n      message: {equals: Menu, accents: optional}\n    do: [{tag: d}]\n",
    );
    let at = local(2024, 5, 1, 9, 0);
    let ids = |text: &str| {
        let e = text_message("u1", text, at);
        let out = set.evaluate(&EvalInput::new(
            Stimulus::Event(&e),
            &contact("u1"),
            at,
            TZ,
            &NoHistory,
        ));
        fired_ids(&out)
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids("Giá?"), ["words", "inside", "bare"]);
    assert_eq!(ids("Giáng sinh"), ["inside"]);
    assert_eq!(ids("gia re"), ["bare"]);
    assert_eq!(ids("  MENU "), ["exact"]);
    let bad = load_sources(
        &[(
            PathBuf::from("x.yaml"),
            "rules:\n  - id: x\n    when:\n      message: {contains: giá, accents: maybe}\n    do: [{tag: a}]\n".into(),
        )],
        &english(),
    )
    .unwrap_err();
    assert!(
        bad[0]
            .to_string()
            .starts_with("x.yaml:4:41: `accents` is `required`"),
        "{}",
        bad[0]
    );
}

#[test]
fn tags_are_held_against_the_vocabulary_or_the_rules_that_set_them() {
    let load = |src: &str| load_sources(&[(PathBuf::from("x.yaml"), src.into())], &english());
    // No vocabulary: a tag nobody sets is a warning with a suggestion.
    let set = load("rules:\n  - id: a\n    when: follow\n    do: [{tag: vip_customer}]\n  - id: b\n    when: {tag_added: vip_custmer}\n    do: [{send: hi}]\n").unwrap();
    let w: Vec<String> = zaloflow::rules::hygiene::check(&set)
        .iter()
        .map(|w| w.to_string())
        .collect();
    assert_eq!(
        w,
        ["x.yaml:6:23: warning: no rule sets the tag `vip_custmer`; did you mean `vip_customer`? — if staff or Zalo set it, list it under `tags:` in a rule file"],
    );
    // With a vocabulary: every tag must be in it, an error with a suggestion.
    let d = load("tags: [vip_customer]\nrules:\n  - id: b\n    when: {tag_added: vip_custmer}\n    do: [{send: hi}]\n").unwrap_err();
    assert_eq!(
        d[0].to_string(),
        "x.yaml:4:23: unknown tag `vip_custmer`; did you mean `vip_customer`? (add it under `tags:` if it is a new tag)"
    );
    let ok = load("tags: {vip_customer: khách VIP}\nrules:\n  - id: b\n    when: {tag_added: vip_customer}\n    do: [{send: hi}]\n").unwrap();
    assert!(zaloflow::rules::hygiene::check(&ok).is_empty());
}

#[test]
fn triggers_read_as_staff_write_them() {
    let set = shipped();
    let shown: Vec<String> = set
        .rules()
        .iter()
        .flat_map(|r| r.triggers.iter().map(|t| t.to_string()))
        .collect();
    for want in [
        "tag_added: vip_customer",
        "inactive: 7–14 days",
        "special_day: field dob",
        "message: {contains: [giá bao nhiêu, bao nhiêu, giá sao, giá thế nào, giá bn, hỏi giá, báo giá, xin giá, giá bán, giá sỉ, price], accents: optional}",
    ] {
        assert!(shown.iter().any(|s| s == want), "{want:?} not in {shown:#?}");
    }
    // Nothing in Rust's debug notation.
    for s in &shown {
        assert!(
            !s.contains("Some(") && !s.contains("Field(") && !s.contains('"')
                || s.starts_with("schedule"),
            "{s}"
        );
    }
}

#[test]
fn email_triggers_name_an_email_and_its_links() {
    let errors = |yaml: &str| -> Vec<String> {
        match load_sources(&[(PathBuf::from("t.yaml"), yaml.to_string())], &english()) {
            Ok(_) => Vec::new(),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        }
    };
    let base = r#"rules:
  - id: thu
    when: follow
    do:
      - email:
          subject: Ưu đãi
          html: '<a href="https://shop.vn/uu-dai">Xem</a>'
          links: {uu_dai: "https://shop.vn/uu-dai"}
  - id: chao
    when: follow
    do:
      - send: Chào bạn
"#;
    let with = |trigger: &str| {
        format!("{base}  - id: theo_doi\n    when:\n      {trigger}\n    do:\n      - tag: da_mo\n")
    };
    // The link exists: loads.
    assert_eq!(
        errors(&with("email_clicked: {email: thu, link: uu_dai}")),
        Vec::<String>::new()
    );
    // A typo in the link: where it is written, with a suggestion.
    let e = errors(&with("email_clicked: {email: thu, link: uu_daii}"));
    assert!(
        e.iter().any(|m| m.starts_with("t.yaml:15:30:")
            && m.contains("the email of `thu` has no link `uu_daii`: did you mean `uu_dai`?")),
        "{e:#?}"
    );
    // A rule that sends no email can never be opened.
    let e = errors(&with("email_opened: {email: chao}"));
    assert!(
        e.iter()
            .any(|m| m.contains("`chao` sends no email, so this trigger can never fire")),
        "{e:#?}"
    );
}

#[test]
fn a_vip_has_their_own_flow_at_any_hour() {
    let set = shipped();
    let mut h = MemoryHistory::default();
    let mut c = contact("v1");
    c.display_name = Some("Minh".into());
    c.tags.insert("vip_customer".into());
    // 11:00 (lunch greeting hours), 15:00 (no greeting hours), 23:30 (night): each time the
    // acknowledgement naming the 2-hour promise and the handoff, never a greeting on top.
    for (day, hour, minute) in [(1, 11, 0), (2, 15, 0), (3, 23, 30)] {
        let at = local(2024, 5, day, hour, minute);
        let out = eval_event(&set, &text_message("v1", "cần hỗ trợ", at), &c, at, &h);
        assert_eq!(
            fired_ids(&out),
            vec!["vip_xac_nhan", "vip_tin_nhan_uu_tien"],
            "{hour}:{minute}"
        );
        assert_eq!(
            zalo_texts(&out),
            vec!["Dạ shop đã nhận được tin nhắn của Minh. Tư vấn viên riêng sẽ trả lời bạn trong vòng 2 giờ ạ!"]
        );
        h.record_all("v1", &out, at);
        // A second message within 2 hours: attached to the handoff, no second acknowledgement.
        let later = at + 30 * 60_000;
        let again = eval_event(&set, &text_message("v1", "shop ơi", later), &c, later, &h);
        assert_eq!(fired_ids(&again), vec!["vip_tin_nhan_uu_tien"]);
        assert!(zalo_texts(&again).is_empty());
        h.record_all("v1", &again, later);
    }
    // A customer who is not a VIP still gets the lunch greeting.
    let at = local(2024, 5, 4, 11, 0);
    let out = eval_event(
        &set,
        &text_message("n1", "chào shop", at),
        &contact("n1"),
        at,
        &h,
    );
    assert_eq!(fired_ids(&out), vec!["chao_buoi_trua"]);
}

#[test]
fn a_broken_campaign_is_reported_once_not_by_every_rule_naming_it() {
    let yaml = r#"campaigns:
  - id: dang_ky
    enter_on:
      form_submitted: dang_ky
    steps:
      - id: day_0
        day: zero
        do: [{sms: "Cảm ơn bạn"}]
rules:
  - id: sau_buoc_1
    when:
      after_step: {campaign: dang_ky, step: day_0}
    do: [{tag: da_nhan}]
  - id: sau_buoc_2
    when:
      after_step: {campaign: dang_ky, step: day_0}
    do: [{tag: da_nhan_2}]
"#;
    let errors: Vec<String> =
        match load_sources(&[(PathBuf::from("t.yaml"), yaml.to_string())], &english()) {
            Ok(_) => panic!("the campaign has a mistake"),
            Err(d) => d.iter().map(|d| d.to_string()).collect(),
        };
    // The campaign's own mistake, where it is; nothing misleading where the rules name it.
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].starts_with("t.yaml:7:14:"), "{errors:#?}");
    assert!(errors.iter().all(|e| !e.contains("unknown campaign")));
}

/// Load options whose messages are in English (the product's default is Vietnamese): the
/// assertions of this file name English words.
fn english() -> zaloflow::rules::LoadOptions {
    zaloflow::rules::LoadOptions {
        lang: zaloflow::i18n::Lang::En,
        ..Default::default()
    }
}

//! Rule hygiene (`zaloflow rules check` warnings): each warning at its exact position on a
//! small rule file, the shipped rules free of warnings (the real binary), and
//! `--deny-warnings`.

use std::path::{Path, PathBuf};
use std::process::Command;

use zaloflow::rules::{hygiene, load_sources};

/// The warnings of a small rule file, less "no rule sets the tag" (its files name tags that
/// staff set; tests/rules.rs covers that warning).
fn warnings(yaml: &str) -> Vec<String> {
    let set = load_sources(&[(PathBuf::from("t.yaml"), yaml.to_string())], &english())
        .unwrap_or_else(|d| panic!("{d:?}"));
    hygiene::check(&set)
        .iter()
        .map(ToString::to_string)
        .filter(|w| !w.contains("no rule sets the tag"))
        .collect()
}

fn rules_check(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .args(["rules", "check", "--rules"])
        .env("ZALOFLOW_LANG", "en")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const TWO_SENDS: &str = r#"rules:
  - id: chao
    when: message
    do:
      - send: Chào bạn!
    once_per: day
  - id: khuyen_mai
    when:
      message: {contains: [giá]}
    do:
      - send: Giảm 10% hôm nay!
    cooldown: 1h
"#;

#[test]
fn two_rules_that_both_message_the_customer_for_one_event() {
    assert_eq!(
        warnings(TWO_SENDS),
        [
            "t.yaml:7:5: warning: rules `chao` (t.yaml:2:5) and `khuyen_mai` can both fire on the \
          same `message` event and both message the customer, who would get two messages: make \
          their conditions exclude each other, or end the first with `stop`"
        ]
    );
    // An SMS is a second message too, and a later rule's `stop` does not help.
    let sms = TWO_SENDS.replace(
        "      - send: Giảm 10% hôm nay!\n",
        "      - sms: Giảm 10% hôm nay!\n      - stop\n",
    );
    assert_eq!(warnings(&sms).len(), 1, "{sms}");

    // Not when they exclude each other: time of day (across midnight too), tags, follow
    // status, texts, or the first one stops.
    let exclusive = [
        TWO_SENDS
            .replace(
                "    when: message\n",
                "    when: message\n    if: {time_between: [\"22:00\", \"04:59\"]}\n",
            )
            .replace(
                "    cooldown: 1h",
                "    if: {time_between: [\"05:00\", \"21:59\"]}\n    cooldown: 1h",
            ),
        TWO_SENDS
            .replace(
                "    when: message\n",
                "    when: message\n    if: {has_tag: vip_customer}\n",
            )
            .replace(
                "    cooldown: 1h",
                "    if: {not: {has_tag: vip_customer}}\n    cooldown: 1h",
            ),
        TWO_SENDS
            .replace(
                "    when: message\n",
                "    when: message\n    if: {follows: true}\n",
            )
            .replace(
                "    cooldown: 1h",
                "    if: {follows: false}\n    cooldown: 1h",
            ),
        TWO_SENDS.replace(
            "    when: message\n",
            "    when:\n      message: {equals: [hi, xin chào]}\n",
        ),
        // The first stops whenever it fires (only for new users: it shadows nothing).
        TWO_SENDS.replace(
            "      - send: Chào bạn!\n",
            "      - send: Chào bạn!\n      - stop\n    if: {has_tag: new_user}\n",
        ),
    ];
    for y in exclusive {
        assert_eq!(warnings(&y), Vec::<String>::new(), "{y}");
    }
    // Overlapping windows still overlap; a disabled rule never fires.
    let overlap = TWO_SENDS
        .replace(
            "    when: message\n",
            "    when: message\n    if: {time_between: [\"08:00\", \"12:00\"]}\n",
        )
        .replace(
            "    cooldown: 1h",
            "    if: {time_between: [\"12:00\", \"13:00\"]}\n    cooldown: 1h",
        );
    assert_eq!(warnings(&overlap).len(), 1, "{overlap}");
    let disabled = TWO_SENDS.replace("    cooldown: 1h", "    enabled: false\n    cooldown: 1h");
    assert_eq!(warnings(&disabled), Vec::<String>::new());
}

#[test]
fn other_triggers_overlap_by_their_values() {
    let two = |a: &str, b: &str| {
        format!(
            "rules:\n  - id: a\n    when:\n      {a}\n    do:\n      - send: A\n  - id: b\n    when:\n      {b}\n    do:\n      - sms: B\n"
        )
    };
    for (a, b, n) in [
        ("tag_added: vip", "tag_added: vip", 1),
        ("tag_added: vip", "tag_added: moi", 0),
        (
            "inactive: {min_days: 7, max_days: 14}",
            "inactive: {min_days: 14, max_days: 30}",
            1,
        ),
        (
            "inactive: {min_days: 7, max_days: 14}",
            "inactive: {min_days: 15, max_days: 30}",
            0,
        ),
        (
            "field_changed: {field: gift, to: Áo thun}",
            "field_changed: {field: gift, to: Ba lô}",
            0,
        ),
        (
            "field_changed: {field: gift}",
            "field_changed: {field: gift, to: Ba lô}",
            1,
        ),
        ("schedule: \"0 9 * * fri\"", "schedule: \"0  9 * * fri\"", 1),
        ("schedule: \"0 9 * * fri\"", "schedule: \"0 11 * * fri\"", 0),
        (
            "special_day: {field: dob}",
            "special_day: {field: dob, days_before: 3}",
            0,
        ),
        ("follow", "chat_now", 0),
    ] {
        // Re-activation sends go as promotions here, to test only the overlap.
        let y = two(a, b).replace("- send: A", "- send: {text: A, via: zalo_promotion}");
        let w = warnings(&y);
        assert_eq!(w.len(), n, "{y}\n{w:#?}");
        if n == 1 {
            assert!(
                w[0].starts_with("t.yaml:7:5: warning: rules `a` (t.yaml:2:5) and `b`"),
                "{w:?}"
            );
        }
    }
}

const SHADOWED: &str = r#"rules:
  - id: vip_truoc
    priority: 10
    when: message
    if:
      has_tag: vip_customer
    do:
      - tag: can_goi
      - stop
  - id: vip_hoi_gia
    when:
      message: {contains: [giá, bao nhiêu]}
    if:
      has_tag: vip_customer
      follows: true
    do:
      - tag: hoi_gia
"#;

#[test]
fn a_rule_shadowed_by_an_earlier_rule_that_stops() {
    assert_eq!(
        warnings(SHADOWED),
        ["t.yaml:10:5: warning: rule `vip_hoi_gia` can never fire: `vip_truoc` (t.yaml:2:5) runs \
          before it (priority 10 ≥ 0), matches every event it matches and ends with `stop`"]
    );
    // Not when the rule that stops asks for something the other does not.
    let narrower = SHADOWED.replace(
        "      has_tag: vip_customer\n    do:\n      - tag: can_goi",
        "      has_tag: vip_customer\n      time_between: [\"08:00\", \"17:00\"]\n    do:\n      - tag: can_goi",
    );
    assert_eq!(warnings(&narrower), Vec::<String>::new(), "{narrower}");
    let other_tag = SHADOWED.replace(
        "      has_tag: vip_customer\n      follows: true",
        "      has_tag: active_buyer\n      follows: true",
    );
    assert_eq!(warnings(&other_tag), Vec::<String>::new());
    // Nor when it runs after it.
    let after = SHADOWED.replace("    priority: 10\n", "    priority: -1\n");
    assert_eq!(warnings(&after), Vec::<String>::new());
    // A narrower window inside the one that stops is shadowed.
    let window = SHADOWED
        .replace(
            "      has_tag: vip_customer\n    do:\n      - tag: can_goi",
            "      time_between: [\"08:00\", \"17:00\"]\n    do:\n      - tag: can_goi",
        )
        .replace(
            "      has_tag: vip_customer\n      follows: true",
            "      time_between: [\"09:00\", \"10:00\"]",
        );
    assert_eq!(warnings(&window).len(), 1, "{window}");
}

#[test]
fn a_message_trigger_send_without_a_frequency_limit() {
    let y = "rules:
  - id: tra_loi
    when: message
    do:
      - tag: da_nhan
      - send: Cảm ơn bạn đã nhắn tin!
";
    assert_eq!(
        warnings(y),
        ["t.yaml:6:9: warning: rule `tra_loi`: `send` on a `message` trigger without `once_per` \
          or `cooldown`: the customer gets it again for every message they write; add e.g. \
          `cooldown: 1h` or `once_per: day`"]
    );
    assert!(warnings(&format!("{y}    cooldown: 30m\n")).is_empty());
    assert!(warnings(&format!("{y}    once_per: ever\n")).is_empty());
    // Any message to the customer counts; other actions do not.
    let sms = y.replace("- send:", "- sms:");
    assert_eq!(warnings(&sms).len(), 1);
    assert!(warnings(&sms)[0].contains("`sms` on a `message` trigger"));
    let notify = y.replace("- send:", "- task:");
    assert!(warnings(&notify).is_empty());
    // Another trigger needs no limit.
    assert!(warnings(&y.replace("when: message", "when: follow")).is_empty());
}

#[test]
fn a_reactivation_send_through_a_customer_service_message() {
    let y = "rules:
  - id: nhac_lai
    when:
      inactive: {min_days: 7, max_days: 14}
    do:
      - send:
          text: Lâu rồi không gặp bạn!
    once_per: silence
";
    assert_eq!(
        warnings(y),
        ["t.yaml:6:9: warning: rule `nhac_lai` reaches customers silent for 7 days or more, but \
          this `send` is a customer-service message, which Zalo refuses 7 days after the last \
          interaction (-230; the service skips it): use `via: zalo_promotion`, or `sms`, `zns` \
          or `email`"]
    );
    // Accepted: a promotion, an SMS; a silence that ends before the window closes.
    assert!(warnings(&y.replace(
        "          text: Lâu rồi không gặp bạn!\n",
        "          text: Lâu rồi không gặp bạn!\n          via: zalo_promotion\n"
    ))
    .is_empty());
    assert!(warnings(&y.replace(
        "      - send:\n          text: Lâu rồi không gặp bạn!",
        "      - sms: Lâu rồi không gặp bạn!"
    ))
    .is_empty());
    assert!(
        warnings(&y.replace("{min_days: 7, max_days: 14}", "{min_days: 3, max_days: 6}"))
            .is_empty()
    );
    assert_eq!(
        warnings(&y.replace("{min_days: 7, max_days: 14}", "{min_days: 3}")).len(),
        1
    );
    // A scheduled message to customers silent for 10+ days is a re-activation too.
    let scheduled = y.replace(
        "      inactive: {min_days: 7, max_days: 14}\n",
        "      schedule: \"0 9 * * mon\"\n    if:\n      silent_for: {min_days: 10}\n",
    );
    let w = warnings(&scheduled);
    assert_eq!(w.len(), 1, "{scheduled}");
    assert!(
        w[0].starts_with("t.yaml:8:9: warning: rule `nhac_lai` reaches"),
        "{w:?}"
    );
}

#[test]
fn texts_over_zalos_length_limit() {
    let long = "x".repeat(2001);
    let ok = "x".repeat(2000);
    // The literal part of a template: "Chào " + "! " + 1994 = 2001 characters.
    let template = format!("Chào {{{{display_name | \"bạn\"}}}}! {}", "y".repeat(1994));
    let y = format!(
        "rules:
  - id: dai
    when: follow
    do:
      - send: \"{long}\"
  - id: vua_du
    when:
      tag_added: x
    do:
      - send: \"{ok}\"
  - id: dai_mau
    when: chat_now
    do:
      - send:
          text: '{template}'
"
    );
    assert_eq!(
        warnings(&y),
        [
            "t.yaml:5:15: warning: rule `dai`: this text is 2001 characters; Zalo accepts at \
             most 2000 in one message: shorten it or split it into two `send`s",
            "t.yaml:15:17: warning: rule `dai_mau`: the literal part of this text (without its \
             {{…}} values) is already 2001 characters; Zalo accepts at most 2000 in one \
             message: shorten it or split it into two `send`s",
        ]
    );
    // Characters, not bytes: 2000 Vietnamese letters are fine.
    let viet = "ở".repeat(2000);
    assert!(warnings(&format!(
        "rules:\n  - id: v\n    when: follow\n    do:\n      - send: \"{viet}\"\n"
    ))
    .is_empty());
}

#[test]
fn campaign_step_texts_are_measured_too() {
    let long = "z".repeat(2100);
    let y = format!(
        "campaigns:
  - id: c
    enter_on: follow
    steps:
      - day: 1
        do:
          - send: {long}
"
    );
    let w = warnings(&y);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("t.yaml:7:19: warning: rule `c/day1`: this text is 2100 characters"),
        "{w:?}"
    );
}

#[test]
fn shipped_rules_have_no_warnings() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let (code, out) = rules_check(&rules, &["--deny-warnings"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    assert!(out.trim_end().ends_with(", no warnings"), "{out}");
}

#[test]
fn warnings_keep_exit_0_unless_denied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), TWO_SENDS).unwrap();
    std::fs::write(dir.path().join("u.yaml"), SHADOWED).unwrap();
    // Staff set vip_customer in the OA console: declared, so no "no rule sets the tag".
    std::fs::write(
        dir.path().join("v.yaml"),
        "tags: [vip_customer, can_goi, hoi_gia]\n",
    )
    .unwrap();
    let (code, out) = rules_check(dir.path(), &[]);
    assert_eq!(code, Some(0), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let t = dir.path().join("t.yaml");
    let u = dir.path().join("u.yaml");
    assert!(
        lines[0].starts_with(&format!("{}:7:5: warning: rules `chao`", t.display())),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}:10:5: warning: rule `vip_hoi_gia` can never fire",
            u.display()
        )),
        "{out}"
    );
    assert_eq!(
        lines[2],
        format!(
            "ok: 4 rules in 3 files in {}, 2 warnings",
            dir.path().display()
        )
    );

    let (code, out) = rules_check(dir.path(), &["--deny-warnings"]);
    assert_eq!(code, Some(1), "{out}");
    let last = out.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "failed: 4 rules in 3 files in {}, 2 warnings (--deny-warnings)",
            dir.path().display()
        )
    );

    // Errors still fail, with a summary.
    std::fs::write(
        dir.path().join("v.yaml"),
        "- id: x\n  when: mesage\n  do: [stop]\n",
    )
    .unwrap();
    let (code, out) = rules_check(dir.path(), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("v.yaml:2:9: unknown trigger"),
        "{out}"
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("failed: 1 problem in "),
        "{out}"
    );
}

#[test]
fn hot_reload_loads_rules_with_warnings_and_keeps_them_in_its_status() {
    use zaloflow::rules::watch::Reload;
    use zaloflow::rules::RuleWatcher;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), TWO_SENDS).unwrap();
    let w = RuleWatcher::load(dir.path(), english(), 1).unwrap();
    assert_eq!(w.current().len(), 2);
    let st = w.status();
    assert!(st.errors.is_empty());
    assert_eq!(st.warnings.len(), 1, "{:?}", st.warnings);
    assert_eq!((st.warnings[0].pos.line, st.warnings[0].pos.col), (7, 5));
    // A change that removes the overlap reloads, and the warning goes.
    std::fs::write(
        dir.path().join("t.yaml"),
        TWO_SENDS.replace("    cooldown: 1h", "    enabled: false\n    cooldown: 1h"),
    )
    .unwrap();
    assert_eq!(w.reload(2), Reload::Reloaded);
    assert!(w.status().warnings.is_empty());
    // And one that adds a warning still loads.
    std::fs::write(dir.path().join("u.yaml"), SHADOWED).unwrap();
    assert_eq!(w.reload(3), Reload::Reloaded);
    assert_eq!(w.current().len(), 4);
    let shadowed = w
        .status()
        .warnings
        .iter()
        .filter(|w| !w.message.contains("no rule sets the tag"))
        .count();
    assert_eq!(shadowed, 1);
}

#[test]
fn a_tag_that_starts_another_rule_that_messages_too() {
    let y = "rules:
  - id: chao_vip
    when: follow
    do:
      - send: Chào bạn!
      - tag: vip_customer
  - id: vip_moi
    when:
      tag_added: vip_customer
    do:
      - send: Bạn là khách VIP!
";
    assert_eq!(
        warnings(y),
        [
            "t.yaml:7:5: warning: rule `chao_vip` (t.yaml:2:5) messages the customer and adds the \
          tag `vip_customer`, which starts rule `vip_moi` in the same event, and it messages \
          them too: they would get two messages; drop one of the messages, or `wait` before \
          the tag"
        ]
    );
    // A tag after a `wait` is a later event; a rule that only tags is fine.
    assert!(warnings(&y.replace(
        "      - tag: vip_customer\n",
        "      - wait: 1d\n      - tag: vip_customer\n"
    ))
    .is_empty());
    assert!(warnings(&y.replace("      - send: Chào bạn!\n", "")).is_empty());
}

/// Load options whose messages are in English (the product's default is Vietnamese): the
/// assertions of this file name English words.
fn english() -> zaloflow::rules::LoadOptions {
    zaloflow::rules::LoadOptions {
        lang: zaloflow::i18n::Lang::En,
        ..Default::default()
    }
}

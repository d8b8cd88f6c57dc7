//! Matching speed with 10,000 rules, and loading/checking them.
//!
//! `cargo bench --bench rules` (criterion). The rule set mixes what a large shop could have:
//! keyword auto-replies (`message: {equals: …}`), a few dozen `contains` rules, the shipped
//! greetings, thousands of tag rules over hundreds of tags, form, follow and scheduler rules.
//! A second set puts all 10,000 rules on `message` with `contains` (the worst case: every
//! rule is a candidate for every message; a literal set finds the keywords in one pass).
//!
//! Figures (median, 2 shared cores; this crate at opt-level 3, dependencies at opt-level 1
//! because the workplace forbids release builds of the whole tree):
//!
//! ```text
//! CARGO_PROFILE_DEV_OPT_LEVEL=3 CARGO_PROFILE_DEV_DEBUG=0 \
//!   cargo bench --profile dev --bench rules -- --warm-up-time 1 --measurement-time 3
//!
//! mixed 10,000: text message (greeting fires)          0.70 µs
//! mixed 10,000: keyword message (equals index hit)     0.84 µs
//! mixed 10,000: tag_added (8 rules fire, notify)       2.6 µs
//! mixed 10,000: follow (500 follow rules checked)      4.9 µs
//! 10,000 contains rules: no keyword in the text        0.40 µs
//! 10,000 contains rules: 3 keywords in the text        7.0 µs
//! load and check 10,000 mixed rules                    89 ms
//! ```

use std::hint::black_box;
use std::path::PathBuf;

use chrono::TimeZone;
use criterion::{criterion_group, criterion_main, Criterion};
use zaloflow::rules::{load_sources, EvalInput, LoadOptions, NoHistory, RuleSet, Stimulus};
use zaloflow::store::Contact;
use zaloflow::zalo::event::{self, Event};

const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;

/// 10,000 rules of mixed triggers.
pub fn mixed_rules() -> String {
    let mut y = String::from("rules:\n");
    let mut n = 0;
    let mut push = |y: &mut String, body: String| {
        y.push_str(&format!("  - id: r{n}\n{body}"));
        n += 1;
    };
    for (from, to, text) in [
        ("05:00", "10:59", "Chào buổi sáng"),
        ("11:00", "13:59", "Chào buổi trưa"),
        ("17:00", "21:59", "Chào buổi tối"),
    ] {
        push(&mut y, format!("    when: message\n    if:\n      time_between: [\"{from}\", \"{to}\"]\n    do:\n      - send: {text} {{{{display_name | \"bạn\"}}}}!\n    once_per: period\n"));
    }
    for i in 0..40 {
        push(&mut y, format!("    when:\n      message: {{contains: [từ khóa {i}, keyword{i}]}}\n    do:\n      - tag: kw{i}\n"));
    }
    for i in 0..2_000 {
        push(&mut y, format!("    when:\n      message: {{equals: menu {i}}}\n    do:\n      - send: Thực đơn số {i}\n"));
    }
    for i in 0..4_000 {
        let tag = i % 500;
        push(&mut y, format!("    when: {{tag_added: tag{tag}}}\n    if:\n      follows: true\n    do:\n      - notify: Khách {{{{display_name}}}} có thẻ tag{tag}\n"));
    }
    for i in 0..1_000 {
        let tag = i % 500;
        push(&mut y, format!("    when: {{tag_removed: tag{tag}}}\n    do:\n      - set_field: {{name: f{i}, value: removed}}\n"));
    }
    for i in 0..1_000 {
        push(&mut y, format!("    when: {{form_submitted: form{}}}\n    do:\n      - tag: from_form\n      - wait: 1d\n      - sms: Cảm ơn bạn đã đăng ký\n", i % 400));
    }
    for i in 0..500 {
        push(&mut y, format!("    when: follow\n    if:\n      has_tag: segment{i}\n    do:\n      - send: Chào mừng nhóm {i}\n"));
    }
    for i in 0..500 {
        push(&mut y, format!("    when: chat_now\n    if:\n      lacks_tag: seen{i}\n    do:\n      - tag: seen{i}\n    once_per: ever\n"));
    }
    for i in 0..957 {
        push(&mut y, format!("    when:\n      inactive: {{min_days: {}, max_days: {}}}\n    if:\n      follows: true\n    do:\n      - send:\n          text: Lâu rồi không gặp {i}\n          via: zalo_promotion\n    once_per: silence\n", 7 + i % 20, 30 + i % 20));
    }
    assert_eq!(n, 10_000);
    y
}

/// 10,000 rules all on `message` with `contains`: every rule is a candidate.
pub fn message_rules() -> String {
    let mut y = String::from("rules:\n");
    for i in 0..10_000 {
        y.push_str(&format!("  - id: m{i}\n    when:\n      message: {{contains: từ khóa {i}}}\n    do:\n      - send: Trả lời {i}\n"));
    }
    y
}

fn load(src: &str) -> RuleSet {
    load_sources(
        &[(PathBuf::from("bench.yaml"), src.to_string())],
        &LoadOptions::default(),
    )
    .expect("bench rules check")
}

fn event(json: &str) -> Event {
    event::parse(json.as_bytes()).expect("event")
}

fn bench(c: &mut Criterion) {
    let mixed_src = mixed_rules();
    let mixed = load(&mixed_src);
    let worst = load(&message_rules());
    let at = TZ
        .with_ymd_and_hms(2024, 5, 1, 8, 30, 0)
        .unwrap()
        .timestamp_millis();
    let mut contact = Contact {
        user_id: "246845883529197922".into(),
        display_name: Some("Lan".into()),
        follows: Some(true),
        last_interaction: Some(at - 86_400_000),
        ..Contact::default()
    };
    contact.tags.insert("tag7".into());
    let msg = event(&format!(
        r#"{{"event_name":"user_send_text","sender":{{"id":"246845883529197922"}},"recipient":{{"id":"1"}},"message":{{"text":"Cho mình hỏi giá áo thun màu đỏ size M","msg_id":"m1"}},"timestamp":"{at}"}}"#
    ));
    let menu = event(&format!(
        r#"{{"event_name":"user_send_text","sender":{{"id":"246845883529197922"}},"recipient":{{"id":"1"}},"message":{{"text":"Menu 1234","msg_id":"m2"}},"timestamp":"{at}"}}"#
    ));
    let tag = event(&format!(
        r#"{{"event_name":"add_user_to_tag","tag":{{"name":"tag7","user_ids":["246845883529197922"]}},"timestamp":"{at}"}}"#
    ));
    let follow = event(&format!(
        r#"{{"event_name":"follow","follower":{{"id":"246845883529197922"}},"timestamp":"{at}"}}"#
    ));
    let hit = event(&format!(
        r#"{{"event_name":"user_send_text","sender":{{"id":"246845883529197922"}},"recipient":{{"id":"1"}},"message":{{"text":"Cho mình hỏi TỪ KHÓA 123 nhé","msg_id":"m3"}},"timestamp":"{at}"}}"#
    ));
    let h = NoHistory;

    // Sanity: the scenarios do what they say.
    let fired = |set: &RuleSet, e: &Event| {
        set.evaluate(&EvalInput::new(Stimulus::Event(e), &contact, at, TZ, &h))
            .fired
            .len()
    };
    assert_eq!(fired(&mixed, &msg), 1, "morning greeting");
    assert_eq!(fired(&mixed, &menu), 2, "greeting + menu reply");
    assert_eq!(fired(&mixed, &tag), 8, "8 rules on tag7");
    assert_eq!(fired(&worst, &msg), 0);
    assert_eq!(fired(&worst, &hit), 3, "từ khóa 1, 12, 123");

    let mut g = c.benchmark_group("match one event, 10,000 rules");
    for (name, set, e) in [
        ("mixed: text message", &mixed, &msg),
        ("mixed: keyword message", &mixed, &menu),
        ("mixed: tag_added", &mixed, &tag),
        ("mixed: follow", &mixed, &follow),
        ("all contains: no keyword in the text", &worst, &msg),
        ("all contains: 3 keywords in the text", &worst, &hit),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(set.evaluate(&EvalInput::new(
                    Stimulus::Event(black_box(e)),
                    &contact,
                    at,
                    TZ,
                    &h,
                )))
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("load and check");
    g.sample_size(10);
    g.bench_function("10,000 mixed rules", |b| {
        b.iter(|| black_box(load(&mixed_src)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

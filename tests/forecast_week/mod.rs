//! The recorded week of the forecast tests (tests/forecast.rs, tests/forecast_page.rs): the
//! running rules, the one-rule draft, and a week three customers follow, write and are tagged
//! in, with the shop ticking every hour.
#![allow(dead_code)]

use serde_json::json;

use super::common::*;
use super::sched::*;

/// The running rules (the shop's `t.yaml`).
pub const RULES: &str = "tags:
  uu_dai: nhận ưu đãi
rules:
  - id: tra_loi
    when: message
    do:
      - send: Dạ shop nhận được rồi ạ!
  - id: chao
    when: follow
    do:
      - wait: 2h
      - send: Chào bạn mới!
  - id: nhac_lai
    when:
      inactive: {min_days: 2, max_days: 5}
    do:
      - send: Lâu rồi không thấy bạn, shop có hàng mới!
  - id: km
    when:
      tag_added: uu_dai
    do:
      - send: {text: Ưu đãi! Giảm 10%., via: zalo_promotion}
";

/// The draft's one more rule: a thank-you to every message (5 in the week).
pub const EXTRA: &str = "  - id: cam_on
    when: message
    do:
      - send: Cảm ơn bạn đã nhắn!
";

pub fn tagged(tag: &str, user: &str, ts: i64) -> String {
    event_at(
        "add_user_to_tag",
        "",
        ts,
        json!({"tag": {"name": tag, "user_ids": [user]}}),
    )
}

/// The week: three customers follow, write and are tagged; the shop ticks every hour.
pub async fn run_week(s: &mut Shop, from: i64) {
    let mut events: Vec<(i64, String)> = vec![
        (from + 10 * HOUR, follow("7701", from + 10 * HOUR)),
        (
            from + 10 * HOUR + 5 * MINUTE,
            message("7701", "a1", from + 10 * HOUR + 5 * MINUTE),
        ),
        (
            from + 10 * HOUR + 20 * MINUTE,
            message("7701", "a2", from + 10 * HOUR + 20 * MINUTE),
        ),
        (from + DAY + 9 * HOUR, follow("7702", from + DAY + 9 * HOUR)),
        (
            from + DAY + 9 * HOUR + 30 * MINUTE,
            message("7702", "b1", from + DAY + 9 * HOUR + 30 * MINUTE),
        ),
        (
            from + 2 * DAY + 15 * HOUR,
            message("7703", "c1", from + 2 * DAY + 15 * HOUR),
        ),
        (
            from + 3 * DAY + 11 * HOUR,
            tagged("uu_dai", "7702", from + 3 * DAY + 11 * HOUR),
        ),
        (
            from + 4 * DAY + 11 * HOUR,
            message("7701", "a3", from + 4 * DAY + 11 * HOUR),
        ),
    ];
    events.sort_by_key(|(t, _)| *t);
    let mut next = events.into_iter().peekable();
    let mut at = from + HOUR;
    while at <= from + 7 * DAY {
        while next.peek().is_some_and(|(t, _)| *t < at) {
            let (_, body) = next.next().unwrap();
            s.event(body).await;
        }
        s.tick(at).await;
        at += HOUR;
    }
}

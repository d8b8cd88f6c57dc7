//! The shipped rules end to end over real HTTP: a signed webhook in, the right message out at
//! the fake Zalo (or the agents' chat), on both backends.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::store;

const MORNING: &str = "Chào bạn! Bắt đầu ngày mới với ưu đãi 20% cho đơn hàng sáng nay.";
const NOON: &str = "Đã đến giờ nghỉ trưa rồi! Ghé OA để nhận voucher ăn trưa nhé.";
const EVENING: &str = "Hello! Cùng review những sản phẩm hot nhất trong ngày nào!";

struct Shop {
    _db: Db,
    app: TestApp,
    zalo: FakeZalo,
    sink: HttpSink,
    store: store::DynStore,
    sent: usize,
}

async fn shop(kind: &str, rules_dir: &str) -> Shop {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = HttpSink::start().await.unwrap();
    let mut extra = fake_channels(&zalo, &sink);
    extra.push(("ZALOFLOW_RULES".into(), rules_dir.into()));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn(config(db.url(), &extra)).await;
    let store = store::open(db.url()).await.unwrap();
    Shop {
        _db: db,
        app,
        zalo,
        sink,
        store,
        sent: 0,
    }
}

impl Shop {
    /// Posts the event and waits until it is processed and every job it caused has an outcome.
    async fn deliver(&mut self, body: String) {
        let r = self.app.post_webhook(&body).await;
        assert_eq!(r.status(), 200);
        self.sent += 1;
        let (s, n) = (&self.store, self.sent as i64);
        wait_until(Duration::from_secs(15), || async move {
            let st = s.inbox_stats().await.unwrap();
            let busy = s
                .job_counts()
                .await
                .unwrap()
                .iter()
                .any(|(_, status, c)| (status == "pending" || status == "sending") && *c > 0);
            st.done == n && !busy
        })
        .await;
    }

    fn texts_to(&self, user: &str) -> Vec<String> {
        self.zalo
            .messages()
            .iter()
            .filter(|m| m.user_id.as_deref() == Some(user))
            .filter_map(|m| m.text().map(str::to_string))
            .collect()
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(greetings_by_time_of_day, welcome_tags_and_vip);

async fn greetings_by_time_of_day(kind: &str) {
    let mut s = shop(kind, "rules").await;
    let u = "5001";
    let msg = |id: &str, ts: i64| {
        event_at(
            "user_send_text",
            u,
            ts,
            json!({"message": {"text": "shop ơi", "msg_id": id}}),
        )
    };
    s.deliver(msg("m1", hcm(2026, 11, 17, 8, 0))).await;
    assert_eq!(s.texts_to(u), [MORNING]);
    // Once per period: a second message the same morning gets no second greeting.
    s.deliver(msg("m2", hcm(2026, 11, 17, 9, 30))).await;
    assert_eq!(s.texts_to(u).len(), 1);
    // Nothing at 15:00.
    s.deliver(msg("m3", hcm(2026, 11, 17, 15, 0))).await;
    assert_eq!(s.texts_to(u).len(), 1);
    s.deliver(msg("m4", hcm(2026, 11, 17, 12, 15))).await;
    s.deliver(msg("m5", hcm(2026, 11, 17, 18, 45))).await;
    s.deliver(msg("m6", hcm(2026, 11, 17, 21, 59))).await;
    assert_eq!(s.texts_to(u), [MORNING, NOON, EVENING]);
    // Again the next day.
    s.deliver(msg("m7", hcm(2026, 11, 18, 10, 59))).await;
    assert_eq!(s.texts_to(u), [MORNING, NOON, EVENING, MORNING]);
    // The OA's own sends never start message rules (no loop).
    s.deliver(event_at(
        "oa_send_text",
        u,
        hcm(2026, 11, 19, 8, 0),
        json!({"message": {"text": MORNING, "msg_id": "echo1"}}),
    ))
    .await;
    assert_eq!(s.texts_to(u).len(), 4);
    s.app.shutdown().await;
}

async fn welcome_tags_and_vip(kind: &str) {
    let mut s = shop(kind, "rules").await;
    s.deliver(event_at(
        "follow",
        "6001",
        hcm(2026, 11, 17, 15, 0),
        json!({"source": "oa_profile"}),
    ))
    .await;
    let texts = s.texts_to("6001");
    assert_eq!(texts.len(), 1);
    assert!(
        texts[0].starts_with("Chào mừng bạn đến với OA!"),
        "{texts:?}"
    );
    let c = s.store.get_contact("6001").await.unwrap().unwrap();
    assert!(c.tags.contains("new_user"));
    // The tag is mirrored to Zalo.
    let tagged = s
        .zalo
        .arrivals()
        .iter()
        .any(|a| a.path.ends_with("/tag/tagfollower") && a.body["tag_name"] == "new_user");
    assert!(tagged);
    // The "Nhắn tin" button (flat layout).
    s.deliver(event_at(
        "user_click_chatnow",
        "6002",
        hcm(2026, 11, 17, 15, 5),
        json!({}),
    ))
    .await;
    assert_eq!(
        s.texts_to("6002"),
        ["Xin chào bạn! Bạn cần chúng mình tư vấn gì ạ?"]
    );
    // A VIP tag from Zalo: the agents' chat hears of it.
    s.deliver(event_at(
        "add_user_to_tag",
        "",
        hcm(2026, 11, 17, 15, 10),
        json!({"tag": {"name": "vip_customer", "user_ids": ["6001"]}}),
    ))
    .await;
    let agents: Vec<_> = s
        .sink
        .requests()
        .into_iter()
        .filter(|r| r.path == "/agents")
        .collect();
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert!(agents[0].body["text"]
        .as_str()
        .unwrap()
        .contains("Khách VIP mới"));
    // The same tag again (a bulk re-tag, or Zalo echoing it): no second welcome or ping.
    s.deliver(event_at(
        "add_user_to_tag",
        "",
        hcm(2026, 11, 17, 15, 20),
        json!({"tag": {"name": "vip_customer", "user_ids": ["6001"]}}),
    ))
    .await;
    let agents = s
        .sink
        .requests()
        .into_iter()
        .filter(|r| r.path == "/agents")
        .count();
    assert_eq!(agents, 1, "a tag the customer already has starts nothing");
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_change_keeps_the_last_good_rules() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir("rules").unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    let mut s = shop("sqlite", dir.path().to_str().unwrap()).await;
    let broken = "rules:\n  - id: hong\n    when: mesage\n    do:\n      - send: x\n";
    std::fs::write(dir.path().join("zz_broken.yaml"), broken).unwrap();
    let base = s.app.base.clone();
    wait_until(Duration::from_secs(10), || {
        let base = base.clone();
        async move {
            let v: serde_json::Value = reqwest::get(format!("{base}/readyz"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            !v["rules"]["pending_errors"].as_array().unwrap().is_empty()
        }
    })
    .await;
    let v: serde_json::Value = reqwest::get(format!("{base}/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let err = v["rules"]["pending_errors"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains("zz_broken.yaml, dòng 3, cột 11"), "{err}");
    // The greetings still run.
    s.deliver(event_at(
        "user_send_text",
        "7001",
        hcm(2026, 11, 17, 8, 0),
        json!({"message": {"text": "hi", "msg_id": "b1"}}),
    ))
    .await;
    assert_eq!(s.texts_to("7001"), [MORNING]);
    s.app.shutdown().await;
}

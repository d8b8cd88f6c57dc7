//! VIP care end to end over real HTTP (issue 6): signed webhooks in, the agents' and
//! supervisors' chats (an HTTP sink) and the fake Zalo OA out, on SQLite and PostgreSQL —
//! handoffs with their 2-hour deadline, what meets it and what does not, escalation once per
//! breach, working hours, VIP priority in the inbox queue, the admin API, and the agents'
//! board in real headless Chromium.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use zaloflow::config::Config;
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::handoff::{self, escalate_due, Handoff};
use zaloflow::store::{self, ContactChange, DynStore, Effects, NewInboxEvent};

const TOKEN: &str = "vip-test-admin-token-1234";
const PUBLIC: &str = "https://shop.example";
const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const VIP: &str = "7001";

/// A local time (Hồ Chí Minh City) `days` days before today: in the past, so everything it
/// causes is due at once, and within Zalo's 7-day window.
fn day(days: i64, h: u32, m: u32) -> i64 {
    use chrono::TimeZone;
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let d = chrono::Utc::now().with_timezone(&tz).date_naive() - chrono::Duration::days(days);
    tz.from_local_datetime(&d.and_hms_opt(h, m, 0).unwrap())
        .unwrap()
        .timestamp_millis()
}

struct Shop {
    db: Db,
    app: TestApp,
    zalo: FakeZalo,
    sink: HttpSink,
    store: DynStore,
    /// The configuration the app runs with (what the scheduler's tick would pass).
    config: Config,
    posted: i64,
}

fn env(zalo: &FakeZalo, sink: &HttpSink, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut e = fake_channels(zalo, sink);
    e.push(("ZALOFLOW_RULES".into(), "rules".into()));
    e.push(("ZALOFLOW_ADMIN_TOKEN".into(), TOKEN.into()));
    e.push(("ZALOFLOW_PUBLIC_URL".into(), PUBLIC.into()));
    // Tests call the escalation themselves, at chosen instants.
    e.push(("ZALOFLOW_ESCALATION_INTERVAL".into(), "0".into()));
    for (k, v) in extra {
        e.retain(|(x, _)| x != k);
        e.push((k.to_string(), v.to_string()));
    }
    e
}

async fn shop(kind: &str, extra: &[(&str, &str)]) -> Shop {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = HttpSink::start().await.unwrap();
    let e = env(&zalo, &sink, extra);
    let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn(config(db.url(), &pairs)).await;
    let store = store::open(db.url()).await.unwrap();
    Shop {
        config: config(db.url(), &pairs),
        db,
        app,
        zalo,
        sink,
        store,
        posted: 0,
    }
}

impl Shop {
    /// Posts the event and waits until it is processed and every job it caused has gone out.
    async fn deliver(&mut self, body: String) {
        self.post_and_process(body).await;
        self.settle().await;
    }

    /// Posts the event and waits until it is processed.
    async fn post_and_process(&mut self, body: String) {
        let r = self.app.post_webhook(&body).await;
        assert_eq!(r.status(), 200, "{body}");
        self.posted += 1;
        let (s, n) = (&self.store, self.posted);
        wait_until(Duration::from_secs(20), || async move {
            s.inbox_stats().await.unwrap().done == n
        })
        .await;
    }

    /// Waits until no job is pending or in flight.
    async fn settle(&self) {
        let s = &self.store;
        wait_until(Duration::from_secs(20), || async move {
            !s.job_counts()
                .await
                .unwrap()
                .iter()
                .any(|(_, status, c)| (status == "pending" || status == "sending") && *c > 0)
        })
        .await;
    }

    /// The texts posted to a chat channel (`/agents`, `/supervisors`).
    fn chat(&self, path: &str) -> Vec<String> {
        self.sink
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn handoffs(&self) -> Vec<Handoff> {
        self.store.list_handoffs(&[], 100).await.unwrap()
    }

    async fn only_handoff(&self) -> Handoff {
        let hs = self.handoffs().await;
        assert_eq!(hs.len(), 1, "{hs:#?}");
        hs.into_iter().next().unwrap()
    }

    /// One escalation pass at `now` (what the scheduler's tick does), then its sends.
    async fn escalate(&self, now: i64) -> usize {
        let s = escalate_due(
            &*self.store,
            now,
            &self.config.handoffs,
            &self.config.handoff_policy(),
        )
        .await
        .unwrap();
        self.settle().await;
        s.escalated
    }

    async fn tag_vip(&mut self, user: &str, at: i64) {
        self.deliver(event_at(
            "add_user_to_tag",
            "",
            at,
            json!({"tag": {"name": "vip_customer", "user_ids": [user]}}),
        ))
        .await;
    }

    async fn named(&mut self, user: &str, name: &str, at: i64) {
        self.deliver(event_at(
            "user_submit_info",
            user,
            at,
            json!({"info": {"name": name, "phone": "0912345678"}}),
        ))
        .await;
    }

    async fn say(&mut self, user: &str, msg_id: &str, text: &str, at: i64) {
        self.deliver(event_at(
            "user_send_text",
            user,
            at,
            json!({"message": {"text": text, "msg_id": msg_id}}),
        ))
        .await;
    }

    /// An `oa_send_text` echo; `admin_id` None is the OA's own API send.
    async fn echo(
        &mut self,
        user: &str,
        admin_id: Option<&str>,
        msg_id: &str,
        text: &str,
        at: i64,
    ) {
        let mut sender = json!({"id": "388613280878808645"});
        if let Some(a) = admin_id {
            sender["admin_id"] = a.into();
        }
        self.deliver(event_at(
            "oa_send_text",
            user,
            at,
            json!({"sender": sender, "message": {"text": text, "msg_id": msg_id}}),
        ))
        .await;
    }

    fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        client()
            .request(method, format!("{}{path}", self.app.base))
            .bearer_auth(TOKEN)
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    tagging_a_vip_tells_the_agents_and_raises_their_inbox_priority,
    a_vip_message_opens_a_handoff_and_tells_the_agents,
    an_agent_reply_in_the_oa_meets_the_deadline,
    no_reply_escalates_exactly_once,
    automated_sends_do_not_meet_the_deadline,
    claim_and_resolve_through_the_api,
    vip_events_overtake_a_backlog_of_ordinary_ones,
    an_earlier_ordinary_event_of_a_new_vip_still_goes_first,
    a_contacts_timeline_shows_the_staff_notices_about_them,
    tag_rules_fire_only_on_a_real_change_of_the_tags,
);

/// `tag_added` / `tag_removed` fire only when the contact's tags really change (issue 30): the
/// VIP tag again (Zalo echoing it, a re-tag), or in a bulk tag with a new VIP, sends the known
/// VIP no second welcome and the agents no second ping; the new VIP gets theirs; removing a
/// tag a contact does not have changes nothing; removed and added again is a real change.
async fn tag_rules_fire_only_on_a_real_change_of_the_tags(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.say("7100", "m0", "chào shop", day(2, 15, 0)).await;
    s.say("7101", "m1", "chào shop", day(2, 15, 0)).await;
    let welcomes = |s: &Shop, user: &str| {
        s.zalo
            .messages()
            .iter()
            .filter(|m| m.user_id.as_deref() == Some(user))
            .filter(|m| {
                m.shown()
                    .is_some_and(|t| t.contains("trở thành khách hàng VIP"))
            })
            .count()
    };
    s.tag_vip("7100", day(2, 15, 1)).await;
    assert_eq!(welcomes(&s, "7100"), 1);
    assert_eq!(s.chat("/agents").len(), 1);
    // Zalo echoes the tag; staff re-tag the customer.
    s.tag_vip("7100", day(2, 15, 2)).await;
    s.tag_vip("7100", day(2, 15, 3)).await;
    // A bulk tag: one known VIP, one new.
    s.deliver(event_at(
        "add_user_to_tag",
        "",
        day(2, 15, 4),
        json!({"tag": {"name": "vip_customer", "user_ids": ["7100", "7101"]}}),
    ))
    .await;
    assert_eq!(welcomes(&s, "7100"), 1, "no second welcome");
    assert_eq!(welcomes(&s, "7101"), 1, "the new VIP is welcomed");
    assert_eq!(s.chat("/agents").len(), 2, "{:?}", s.chat("/agents"));
    // Removing a tag 7101 does not have; then removing and adding VIP again: a real change.
    let untag = |user: &str, tag: &str, at: i64| {
        event_at(
            "remove_user_from_tag",
            "",
            at,
            json!({"tag": {"name": tag, "user_ids": [user]}}),
        )
    };
    s.deliver(untag("7101", "khong_co", day(2, 15, 5))).await;
    s.deliver(untag("7100", "vip_customer", day(2, 15, 6)))
        .await;
    s.tag_vip("7100", day(2, 15, 7)).await;
    assert_eq!(welcomes(&s, "7100"), 2, "removed, then added again");
    assert_eq!(s.chat("/agents").len(), 3);
    s.app.shutdown().await;
}

/// A contact's timeline (`GET /admin/contacts/{id}`) shows every job about them: the team-chat
/// notice the VIP tag sent to the agents (a job with no recipient lane) beside the sends to
/// them; another contact's timeline does not show it.
async fn a_contacts_timeline_shows_the_staff_notices_about_them(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.say("7100", "m0", "chào shop", day(2, 15, 0)).await;
    s.say("7101", "m1", "chào shop", day(2, 15, 0)).await;
    s.tag_vip("7100", day(2, 15, 1)).await;
    assert_eq!(s.chat("/agents").len(), 1);
    // The VIP writes: a handoff opens, and its notice names the contact as `contact`.
    s.say("7100", "m2", "đơn của mình đâu rồi?", day(2, 15, 5))
        .await;
    let timeline = |user: &'static str| {
        let r = s.api(reqwest::Method::GET, &format!("/admin/contacts/{user}"));
        async move {
            let v: Value = r.send().await.unwrap().json().await.unwrap();
            v["timeline"].as_array().unwrap().clone()
        }
    };
    let channels = |t: &[Value]| -> Vec<String> {
        t.iter()
            .filter(|e| e["kind"] == "send")
            .map(|e| e["job"]["channel"].as_str().unwrap().to_string())
            .collect()
    };
    let vip = timeline("7100").await;
    let chat: Vec<&Value> = vip
        .iter()
        .filter(|e| e["job"]["channel"] == "chat")
        .collect();
    assert_eq!(chat.len(), 2, "{vip:#?}");
    let says = |needle: &str| {
        chat.iter()
            .any(|c| c["job"]["payload"].to_string().contains(needle))
    };
    assert!(says("Khách VIP mới"), "{chat:?}");
    assert!(
        says("Khách VIP cần hỗ trợ"),
        "the handoff's notice: {chat:?}"
    );
    assert!(channels(&vip).contains(&"zalo".to_string()), "{vip:#?}");
    let other = timeline("7101").await;
    assert!(
        !channels(&other).contains(&"chat".to_string()),
        "{other:#?}"
    );
    s.app.shutdown().await;
}

async fn tagging_a_vip_tells_the_agents_and_raises_their_inbox_priority(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.say("7100", "m0", "chào shop", day(2, 15, 0)).await;
    s.tag_vip("7100", day(2, 15, 1)).await;
    let agents = s.chat("/agents");
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert!(agents[0].contains("Khách VIP mới"), "{agents:?}");
    // The processor that committed the tag updated the in-memory VIP set at once: this
    // user's next webhook is stored with VIP priority, another user's is not.
    s.say("7100", "m1", "shop ơi", day(2, 15, 2)).await;
    s.say("7101", "m2", "shop ơi", day(2, 15, 3)).await;
    let rows = inbox_rows(s.db.url()).await;
    let prio = |user: &str| -> Vec<i32> {
        rows.iter()
            .filter(|(_, u, _)| u == user)
            .map(|(_, _, p)| *p)
            .collect()
    };
    assert_eq!(prio("7100"), [0, 0, zaloflow::engine::VIP_PRIORITY]);
    assert_eq!(prio("7101"), [0]);
    s.app.shutdown().await;
}

async fn a_vip_message_opens_a_handoff_and_tells_the_agents(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.named(VIP, "Lan Nguyễn", day(2, 14, 50)).await;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    let t = day(2, 15, 0);
    let text = "Cho mình hỏi đơn hàng #123 đã giao chưa ạ?";
    s.say(VIP, "v1", text, t).await;
    let h = s.only_handoff().await;
    assert_eq!(h.user_id, VIP);
    assert_eq!(h.status, "open");
    assert_eq!(h.deadline_at, t + 2 * HOUR, "2 hours for VIPs");
    assert_eq!(h.first_text.as_deref(), Some(text));
    assert_eq!(h.priority, 1, "priority: high");
    assert_eq!(h.team.as_deref(), Some("agents"));
    assert_eq!(h.rule_id.as_deref(), Some("vip_tin_nhan_uu_tien"));
    let agents = s.chat("/agents");
    assert_eq!(
        agents.len(),
        2,
        "VIP announcement, then the handoff: {agents:?}"
    );
    let n = &agents[1];
    assert!(n.contains("Khách VIP cần hỗ trợ: Lan Nguyễn"), "{n}");
    assert!(n.contains(text), "the message text: {n}");
    let due = handoff::local_time(t + 2 * HOUR, chrono_tz::Asia::Ho_Chi_Minh);
    assert!(
        n.contains(&format!("Hạn trả lời: {due}")),
        "the deadline: {n}"
    );
    assert!(
        n.contains(&format!("{PUBLIC}/admin/board/handoffs/{}/claim", h.id)),
        "{n}"
    );
    assert!(n.contains(&format!("{PUBLIC}/admin/board/handoffs/{}/resolve", h.id)));
    // The chat payload carries the same facts as data (for templated chat bodies).
    let req = s
        .sink
        .requests()
        .into_iter()
        .filter(|r| r.path == "/agents")
        .nth(1)
        .unwrap();
    assert!(req.body["text"].is_string());

    // A second message attaches to the open handoff: no second notification.
    s.say(VIP, "v2", "Mình cần gấp nhé", t + 10 * MIN).await;
    let h = s.only_handoff().await;
    assert_eq!(h.messages, 2);
    assert_eq!(h.last_message_at, Some(t + 10 * MIN));
    assert_eq!(s.chat("/agents").len(), 2);
    let msgs = s.store.handoff_messages(h.id).await.unwrap();
    assert_eq!(
        msgs.iter()
            .map(|m| m.text.clone().unwrap())
            .collect::<Vec<_>>(),
        [text, "Mình cần gấp nhé"]
    );

    // An ordinary customer's message opens nothing.
    s.say("7200", "o1", "Shop mở cửa mấy giờ?", t + 11 * MIN)
        .await;
    assert_eq!(s.handoffs().await.len(), 1);

    // Once resolved, the VIP's next message opens a new handoff (and a new notification).
    let r = s
        .api(
            reqwest::Method::POST,
            &format!("/admin/handoffs/{}/resolve", h.id),
        )
        .json(&json!({"agent": "Minh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    s.say(VIP, "v3", "Cảm ơn shop, cho mình hỏi thêm", t + 3 * HOUR)
        .await;
    let open = s.store.list_handoffs(&["open"], 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_ne!(open[0].id, h.id);
    assert_eq!(open[0].deadline_at, t + 5 * HOUR);
    assert_eq!(s.chat("/agents").len(), 3);
    s.app.shutdown().await;
}

async fn an_agent_reply_in_the_oa_meets_the_deadline(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    let t = day(2, 15, 0);
    s.say(VIP, "v1", "Cho mình đổi size áo", t).await;
    // An agent answers from the OA console 30 minutes later.
    s.echo(
        VIP,
        Some("8309393969855402319"),
        "a1",
        "Dạ em đổi ngay cho chị ạ",
        t + 30 * MIN,
    )
    .await;
    let h = s.only_handoff().await;
    assert_eq!(h.responded_by.as_deref(), Some("8309393969855402319"));
    assert_eq!(h.responded_at, Some(t + 30 * MIN));
    assert_eq!(h.response_via.as_deref(), Some("oa"));
    assert_eq!(h.met(t + 3 * HOUR), Some(true));
    // Past the deadline: nothing to escalate.
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 0);
    assert_eq!(s.escalate(t + 6 * HOUR).await, 0);
    assert!(s.chat("/supervisors").is_empty());
    let v: Value = s
        .api(reqwest::Method::GET, &format!("/admin/handoffs/{}", h.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["handoff"]["deadline_met"], true);
    assert_eq!(v["messages"][1]["direction"], "out");
    assert_eq!(v["messages"][1]["admin_id"], "8309393969855402319");
    assert_eq!(v["breaches"], json!([]));
    s.app.shutdown().await;
}

async fn no_reply_escalates_exactly_once(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.named(VIP, "Lan Nguyễn", day(2, 14, 50)).await;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    let t = day(2, 15, 0);
    s.say(VIP, "v1", "Shop ơi trả lời mình với", t).await;
    let id = s.only_handoff().await.id;
    // Before the deadline: nothing.
    assert_eq!(s.escalate(t + 2 * HOUR - MIN).await, 0);
    assert!(s.chat("/supervisors").is_empty());
    // Past it: one escalation; again, and later again: still one.
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 1);
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 0);
    assert_eq!(s.escalate(t + 2 * HOUR + 30 * MIN).await, 0);
    assert_eq!(
        s.escalate(t + 9 * HOUR).await,
        0,
        "no second level configured"
    );
    let sup = s.chat("/supervisors");
    assert_eq!(sup.len(), 1, "{sup:?}");
    assert!(
        sup[0].starts_with("⚠️ Quá hạn trả lời: khách VIP Lan Nguyễn"),
        "{}",
        sup[0]
    );
    assert!(sup[0].contains("Shop ơi trả lời mình với"), "{}", sup[0]);
    assert!(sup[0].contains("đã quá 1 phút"), "{}", sup[0]);
    assert!(
        sup[0].contains(&format!("{PUBLIC}/admin/board/handoffs/{id}/claim")),
        "{}",
        sup[0]
    );
    let h = s.only_handoff().await;
    assert_eq!(h.escalation_level, 1);
    let breaches = s.store.handoff_breaches(id).await.unwrap();
    assert_eq!(breaches.len(), 1);
    assert_eq!(breaches[0].due_at, t + 2 * HOUR);
    assert_eq!(breaches[0].recorded_at, t + 2 * HOUR + MIN);
    // Two passes at once (two instances, or the tick and serve): still one.
    let mut s2 = shop(kind, &[]).await;
    s2.tag_vip(VIP, day(2, 14, 55)).await;
    s2.say(VIP, "v1", "alo", t).await;
    let p2 = s2.config.handoff_policy();
    let (a, b) = tokio::join!(
        escalate_due(&*s2.store, t + 3 * HOUR, &s2.config.handoffs, &p2),
        escalate_due(&*s2.store, t + 3 * HOUR, &s2.config.handoffs, &p2)
    );
    assert_eq!(a.unwrap().escalated + b.unwrap().escalated, 1);
    s2.settle().await;
    assert_eq!(s2.chat("/supervisors").len(), 1);
    s2.app.shutdown().await;
    s.app.shutdown().await;
}

async fn automated_sends_do_not_meet_the_deadline(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.tag_vip(VIP, day(2, 7, 55)).await;
    // 08:00: the shipped VIP acknowledgement goes out through the outbox (a VIP gets it
    // instead of the morning greeting), and the message opens a handoff.
    let t = day(2, 8, 0);
    s.say(VIP, "v1", "Shop ơi", t).await;
    let sent = s.zalo.wait_for_messages(1, Duration::from_secs(10)).await;
    let greeting = sent
        .iter()
        .find(|m| m.user_id.as_deref() == Some(VIP))
        .expect("the VIP acknowledgement was sent");
    let greeting_text = greeting.text().unwrap().to_string();
    assert!(
        greeting_text.starts_with("Dạ shop đã nhận được tin nhắn của bạn. Tư vấn viên riêng sẽ trả lời bạn trong vòng 2 giờ"),
        "{greeting_text}"
    );
    // Its echo without an admin id (an API send): not a person.
    s.echo(VIP, None, &greeting.message_id, &greeting_text, t + MIN)
        .await;
    // Even with an admin id, an echo of a message the outbox sent is ours (its msg id is the
    // message_id Zalo answered the send with).
    let ack = "Dạ shop đã nhận được tin nhắn của bạn.";
    let job = zaloflow::outbox::job(
        &zaloflow::channels::Payload::Zalo {
            user_id: VIP.into(),
            kind: Default::default(),
            text: Some(ack.into()),
            attachment: None,
        },
        t + MIN,
        "test",
    );
    s.store.enqueue_jobs(&[job], t + MIN).await.unwrap();
    s.settle().await;
    let sent = s
        .zalo
        .messages()
        .into_iter()
        .find(|m| m.text() == Some(ack))
        .expect("sent through the outbox");
    s.echo(VIP, Some("99"), &sent.message_id, ack, t + 2 * MIN)
        .await;
    // And an echo that arrives while our send is still in flight (its outcome, with Zalo's
    // message id, not recorded yet) is recognised by its text.
    let job = zaloflow::outbox::job(
        &zaloflow::channels::Payload::Zalo {
            user_id: VIP.into(),
            kind: Default::default(),
            text: Some("Cảm ơn bạn đã nhắn tin!".into()),
            attachment: None,
        },
        t + 365 * 24 * HOUR, // far ahead: the app's sender leaves it alone
        "test",
    );
    s.store.enqueue_jobs(&[job], t).await.unwrap();
    let claimed = s
        .store
        .claim_jobs(
            "test-sender",
            t + 365 * 24 * HOUR,
            zaloflow::clock::system_now(),
            3_600_000,
            10,
            store::JobLane::All,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    s.post_and_process(event_at(
        "oa_send_text",
        VIP,
        t + 3 * MIN,
        json!({"message": {"text": "Cảm ơn bạn đã nhắn tin!", "msg_id": "unrecorded-id"}}),
    ))
    .await;
    // Its outcome comes in after the echo.
    s.store
        .finish_jobs(
            "test-sender",
            &[store::JobOutcome {
                id: claimed[0].id,
                result: store::JobResult::Sent {
                    provider_id: Some("unrecorded-id".into()),
                    cost: None,
                },
                contact: None,
            }],
            t + 4 * MIN,
        )
        .await
        .unwrap();
    let h = s.only_handoff().await;
    assert_eq!(h.responded_at, None, "{h:#?}");
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 1);
    assert_eq!(s.chat("/supervisors").len(), 1);
    // A person's late reply is recorded — the deadline stays missed.
    s.echo(
        VIP,
        Some("99"),
        "a1",
        "Dạ xin lỗi chị, em trả lời muộn",
        t + 3 * HOUR,
    )
    .await;
    let h = s.only_handoff().await;
    assert_eq!(h.responded_at, Some(t + 3 * HOUR));
    assert_eq!(h.met(t + 4 * HOUR), Some(false));
    s.app.shutdown().await;
}

async fn claim_and_resolve_through_the_api(kind: &str) {
    let mut s = shop(kind, &[]).await;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    let t = day(2, 15, 0);
    s.say(VIP, "v1", "Cần tư vấn", t).await;
    let id = s.only_handoff().await.id;
    // Without the token: 401 JSON.
    let r = client()
        .post(format!("{}/admin/handoffs/{id}/claim", s.app.base))
        .json(&json!({"agent": "Minh"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (status, v) = take(&s, id, "claim", None).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], "bad_agent");
    let (status, v) = take(&s, id, "claim", Some("Minh")).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "claimed");
    assert_eq!(v["claimed_by"], "Minh");
    assert_eq!(v["responded_by"], "Minh");
    assert_eq!(v["response_via"], "claim");
    // Claiming again what one holds is fine; someone else gets 409.
    assert_eq!(take(&s, id, "claim", Some("Minh")).await.0, 200);
    let (status, v) = take(&s, id, "claim", Some("Lan")).await;
    assert_eq!(status, 409);
    assert_eq!(v["error"]["code"], "already_claimed");
    // The claim comes long after the deadline (two days ago): the deadline counts as missed,
    // but a claimed handoff is never escalated.
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 0);
    let (status, v) = take(&s, id, "resolve", Some("Lan")).await;
    assert_eq!(status, 200);
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["resolved_by"], "Lan");
    assert_eq!(v["claimed_by"], "Minh");
    assert_eq!(take(&s, id, "resolve", Some("Lan")).await.0, 409);
    assert_eq!(take(&s, 999_999, "claim", Some("Lan")).await.0, 404);

    // Reports: a fresh handoff claimed within its deadline, by the board's API.
    let now = zaloflow::clock::system_now();
    s.say("7300", "x", "hi", now).await; // not a VIP: nothing
    s.tag_vip("7301", now - MIN).await;
    s.say("7301", "y", "Shop ơi", now).await;
    let fresh = s.store.list_handoffs(&["open"], 10).await.unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(take(&s, fresh[0].id, "claim", Some("Minh")).await.0, 200);
    let v: Value = s
        .api(reqwest::Method::GET, "/admin/handoffs?status=resolved")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["handoffs"].as_array().unwrap().len(), 1);
    assert_eq!(v["handoffs"][0]["id"], id);
    let sum = &v["summary"];
    assert_eq!(sum["total"], 2);
    assert_eq!(sum["deadlines_met"], 1);
    assert_eq!(sum["deadlines_missed"], 1);
    assert!(sum["first_response_p50_seconds"].as_f64().is_some());
    assert!(sum["first_response_p90_seconds"].as_f64().unwrap() > 3600.0);
    let v: Value = s
        .api(reqwest::Method::GET, "/admin/handoffs?status=active")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["handoffs"][0]["status"], "claimed");
    let r = s
        .api(reqwest::Method::GET, "/admin/handoffs?status=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Metrics: time to first response, met vs missed, open handoffs by age (at scrape).
    let m = client()
        .get(format!("{}/metrics", s.app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("zaloflow_handoff_first_response_seconds_bucket"),
        "{m}"
    );
    assert!(
        m.contains("zaloflow_handoff_deadlines_total{outcome=\"met\"}"),
        "{m}"
    );
    assert!(
        m.contains("zaloflow_handoffs_open{age=\"lt_30m\"} 1"),
        "{m}"
    );
    s.app.shutdown().await;
}

/// `POST /admin/handoffs/{id}/{action}` as `agent` (none: `{}`): the status and the JSON.
async fn take(s: &Shop, id: i64, action: &str, agent: Option<&str>) -> (u16, Value) {
    let body = agent.map_or(json!({}), |a| json!({ "agent": a }));
    let r = s
        .api(
            reqwest::Method::POST,
            &format!("/admin/handoffs/{id}/{action}"),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The inbox as stored: (id, user, priority).
async fn inbox_rows(url: &str) -> Vec<(i64, String, i32)> {
    let q = "SELECT id, user_id, priority FROM inbox ORDER BY id";
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

/// The queue order, measured: an instance that only takes webhooks in
/// (`ZALOFLOW_INBOX_WORKERS=0`) stores a backlog of ordinary events, then a VIP's; the
/// processors' own claim (`claim_inbox`) hands out the VIP's first.
async fn vip_events_overtake_a_backlog_of_ordinary_ones(kind: &str) {
    let db = Db::new(kind).await;
    let st = store::open(db.url()).await.unwrap();
    st.migrate().await.unwrap();
    // A known VIP (tagged before this instance starts: it loads the VIP set).
    let mut vip = ContactChange::new(VIP, 1);
    vip.tags_add.push("vip_customer".into());
    st.apply_effects(
        &Effects {
            contacts: vec![vip],
            ..Default::default()
        },
        1,
    )
    .await
    .unwrap();
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let e = env(&zalo, &sink, &[("ZALOFLOW_INBOX_WORKERS", "0")]);
    let pairs: Vec<(&str, &str)> = e.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = TestApp::spawn(config(db.url(), &pairs)).await;

    let t = day(1, 10, 0);
    const BACKLOG: usize = 300;
    let msg = |user: String, id: String, at: i64| {
        event_at(
            "user_send_text",
            &user,
            at,
            json!({"message": {"text": "hello", "msg_id": id}}),
        )
    };
    let bodies: Vec<String> = (0..BACKLOG)
        .map(|i| msg(format!("{}", 8_000_000 + i), format!("o{i}"), t + i as i64))
        .collect();
    post_all(&app.base, bodies).await;
    for k in 0..3 {
        let r = app
            .post_webhook(&msg(VIP.into(), format!("v{k}"), t + 1000 + k))
            .await;
        assert_eq!(r.status(), 200);
    }
    // More ordinary traffic after the VIP's.
    post_all(
        &app.base,
        (0..50)
            .map(|i| {
                msg(
                    format!("{}", 9_000_000 + i),
                    format!("p{i}"),
                    t + 2000 + i as i64,
                )
            })
            .collect(),
    )
    .await;
    let total = BACKLOG + 3 + 50;
    assert_eq!(st.inbox_stats().await.unwrap().pending, total as i64);

    // Drain the queue as the processors do, in batches, and note when each event comes out.
    let rows = inbox_rows(db.url()).await;
    let arrival: std::collections::HashMap<i64, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, (id, _, _))| (*id, i))
        .collect();
    let first = st
        .claim_inbox("measure", zaloflow::clock::system_now(), 60_000, 3)
        .await
        .unwrap();
    let firsts: Vec<&str> = first.iter().map(|e| e.user_id.as_str()).collect();
    assert_eq!(firsts, [VIP, VIP, VIP], "the VIP's events come out first");
    let vip_arrivals: Vec<usize> = first.iter().map(|e| arrival[&e.id]).collect();
    let mut order: Vec<usize> = vip_arrivals.clone();
    loop {
        let batch = st
            .claim_inbox("measure", zaloflow::clock::system_now(), 60_000, 64)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        order.extend(batch.iter().map(|e| arrival[&e.id]));
    }
    assert_eq!(order.len(), total);
    // Measured: the VIP's events arrived behind 300 others and left first; everyone else kept
    // arrival order.
    eprintln!(
        "queue order: VIP events arrived at positions {vip_arrivals:?} of {total}, were claimed at positions [0, 1, 2]"
    );
    assert_eq!(vip_arrivals, [BACKLOG, BACKLOG + 1, BACKLOG + 2]);
    let rest: Vec<usize> = order[3..].to_vec();
    let mut sorted = rest.clone();
    sorted.sort_unstable();
    assert_eq!(rest, sorted, "ordinary events in arrival order");
    app.shutdown().await;
}

/// Posts many webhooks, 16 at a time.
async fn post_all(base: &str, bodies: Vec<String>) {
    use futures_util::stream::{self, StreamExt};
    let base = base.to_string();
    let statuses: Vec<u16> = stream::iter(bodies)
        .map(|b| {
            let base = base.clone();
            async move { post_signed(&base, &b).await.status().as_u16() }
        })
        .buffered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// A user who becomes a VIP while their earlier (ordinary-priority) event still waits: the
/// VIP-priority event behind it must not overtake it (one user's events stay in order).
async fn an_earlier_ordinary_event_of_a_new_vip_still_goes_first(kind: &str) {
    let db = Db::new(kind).await;
    let st = store::open(db.url()).await.unwrap();
    st.migrate().await.unwrap();
    let ev = |key: &str, user: &str, priority: i32| NewInboxEvent {
        dedupe_key: key.into(),
        event_name: "user_send_text".into(),
        user_id: user.into(),
        priority,
        body: "{}".into(),
        event_ts: None,
        received_at: 1,
    };
    let mut batch = vec![ev("tag", "u1", 0)];
    batch.extend((0..20).map(|i| ev(&format!("o{i}"), &format!("x{i}"), 0)));
    batch.push(ev("vip-msg", "u1", zaloflow::engine::VIP_PRIORITY));
    batch.push(ev("other-vip", "u2", zaloflow::engine::VIP_PRIORITY));
    st.insert_inbox(&batch).await.unwrap();
    let first = st.claim_inbox("w", 10, 60_000, 1).await.unwrap();
    assert_eq!(first[0].dedupe_key, "other-vip", "{first:?}");
    let next = st.claim_inbox("w", 10, 60_000, 1).await.unwrap();
    assert_eq!(next[0].dedupe_key, "tag", "u1's earlier event first");
    // Its later VIP event waits while the earlier one is held.
    let more = st.claim_inbox("w2", 10, 60_000, 100).await.unwrap();
    assert!(more.iter().all(|e| e.user_id != "u1"), "{more:?}");
}

// --- SQLite only: configuration-dependent behaviour ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_hours_shift_the_deadline() {
    let mut s = shop("sqlite", &[("ZALOFLOW_WORKING_HOURS", "08:00-21:00")]).await;
    s.tag_vip(VIP, day(3, 20, 0)).await;
    // 20:30: half an hour of working time today, the other 90 minutes from 08:00 tomorrow.
    let t = day(3, 20, 30);
    s.say(VIP, "v1", "Shop còn làm việc không?", t).await;
    let h = s.only_handoff().await;
    let due = day(2, 9, 30);
    assert_eq!(h.deadline_at, due);
    let n = s.chat("/agents").pop().unwrap();
    let shown = handoff::local_time(due, chrono_tz::Asia::Ho_Chi_Minh);
    assert!(n.contains(&format!("Hạn trả lời: {shown}")), "{n}");
    assert!(n.contains("giờ làm việc 08:00–21:00"), "{n}");
    // Two wall-clock hours later it is night: not overdue.
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 0);
    assert_eq!(s.escalate(due - MIN).await, 0);
    assert_eq!(s.escalate(due + MIN).await, 1);
    // A message at night starts counting at the next opening.
    s.tag_vip("7002", day(3, 22, 0)).await;
    s.say("7002", "n1", "alo", day(3, 23, 15)).await;
    let night = s
        .handoffs()
        .await
        .into_iter()
        .find(|h| h.user_id == "7002")
        .unwrap();
    assert_eq!(night.deadline_at, day(2, 10, 0));
    s.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_level_follows_after_a_further_delay() {
    let mut s = shop(
        "sqlite",
        &[
            ("ZALOFLOW_ESCALATION_SECOND_AFTER", "1h"),
            ("ZALOFLOW_ESCALATION_SECOND_CHANNEL", "agents"),
        ],
    )
    .await;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    let t = day(2, 15, 0);
    s.say(VIP, "v1", "alo shop", t).await;
    let agents_before = s.chat("/agents").len();
    assert_eq!(s.escalate(t + 2 * HOUR + MIN).await, 1);
    assert_eq!(s.escalate(t + 3 * HOUR - MIN).await, 0);
    assert_eq!(s.escalate(t + 3 * HOUR + MIN).await, 1);
    assert_eq!(s.escalate(t + 3 * HOUR + MIN).await, 0);
    assert_eq!(s.escalate(t + 10 * HOUR).await, 0);
    assert_eq!(s.chat("/supervisors").len(), 1);
    let agents = s.chat("/agents");
    assert_eq!(agents.len(), agents_before + 1);
    assert!(
        agents.last().unwrap().starts_with("🚨 NHẮC LẦN 2"),
        "{agents:?}"
    );
    let h = s.only_handoff().await;
    assert_eq!(h.escalation_level, 2);
    assert_eq!(s.store.handoff_breaches(h.id).await.unwrap().len(), 2);
    s.app.shutdown().await;
}

/// Until the scheduler's tick calls it, `serve` runs the escalation on an interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_escalates_missed_deadlines_on_its_own() {
    let mut s = shop("sqlite", &[("ZALOFLOW_ESCALATION_INTERVAL", "1s")]).await;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    s.say(VIP, "v1", "alo", day(2, 15, 0)).await; // its deadline passed two days ago
    let sink = &s.sink;
    wait_until(Duration::from_secs(15), || async move {
        sink.requests().iter().any(|r| r.path == "/supervisors")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // two more passes
    assert_eq!(s.chat("/supervisors").len(), 1);
    s.app.shutdown().await;
}

/// VIP offers first: the same scheduled offer reaches VIPs at 09:00 with VIP priority in the
/// outbox, everyone else two hours later (the shipped `uu_dai_*` rules, switched on).
#[test]
fn vip_offers_reach_vips_before_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir("rules").unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&f).unwrap();
            std::fs::write(
                dir.path().join(f.file_name().unwrap()),
                text.replace(
                    "    enabled: false\n    when:\n      schedule:",
                    "    when:\n      schedule:",
                ),
            )
            .unwrap();
        }
    }
    let set = zaloflow::rules::load_dir(dir.path(), &Default::default()).unwrap();
    for id in ["uu_dai_vip_truoc", "uu_dai_moi_nguoi"] {
        assert!(
            set.get(id).unwrap().enabled,
            "{id} switched on for the test"
        );
    }
    let engine = zaloflow::engine::Engine::with_rule_set(
        std::sync::Arc::new(set),
        chrono_tz::Asia::Ho_Chi_Minh,
    );
    let at = hcm(2026, 11, 20, 9, 0); // a Friday
    let mut state = zaloflow::engine::BatchState::default();
    let mut vip = store::Contact {
        user_id: "1".into(),
        follows: Some(true),
        last_interaction: Some(at - 86_400_000),
        ..Default::default()
    };
    vip.tags.insert("vip_customer".into());
    let other = store::Contact {
        user_id: "2".into(),
        tags: Default::default(),
        ..vip.clone()
    };
    state.contacts.insert("1".into(), vip);
    state.contacts.insert("2".into(), other);
    let mut jobs = Vec::new();
    for user in ["1", "2"] {
        for rule in ["uu_dai_vip_truoc", "uu_dai_moi_nguoi"] {
            let fx = engine.stimulate(
                user,
                zaloflow::rules::Stimulus::Schedule { rule_id: rule },
                at,
                "tick:test",
                &mut state,
            );
            jobs.extend(fx.jobs);
        }
    }
    assert_eq!(jobs.len(), 2, "{jobs:#?}");
    let vip_job = jobs.iter().find(|j| j.user_id == "1").unwrap();
    let other_job = jobs.iter().find(|j| j.user_id == "2").unwrap();
    assert_eq!(vip_job.run_at, at);
    assert_eq!(vip_job.priority, zaloflow::engine::VIP_PRIORITY);
    assert!(vip_job.payload.contains("Dành riêng khách VIP"));
    assert_eq!(other_job.run_at, at + 2 * HOUR);
    assert_eq!(other_job.priority, 0);
}

// --- the agents' board in real headless Chromium ---

#[path = "common/webdriver.rs"]
mod webdriver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_in_chromium_claims_a_handoff() {
    let mut s = shop("sqlite", &[]).await;
    let now = zaloflow::clock::system_now();
    s.named(VIP, "Nguyễn Thị Lan", now - 20 * MIN).await;
    s.tag_vip(VIP, now - 15 * MIN).await;
    s.say(
        VIP,
        "v1",
        "Cho mình hỏi <b>đơn #123</b> & phí ship?",
        now - 10 * MIN,
    )
    .await;
    // An ordinary customer's handoff, overdue (the board lists it first).
    s.say("7400", "o1", "alo", now - 3 * HOUR).await;
    let late = {
        let mut e = Effects::default();
        let c = store::Contact {
            user_id: "7400".into(),
            display_name: Some("Trần Văn Bình".into()),
            ..Default::default()
        };
        e.handoffs
            .push(handoff::HandoffChange::Open(Box::new(handoff::plan(
                &handoff::HandoffPolicy::default(),
                handoff::HandoffRequest {
                    user_id: "7400",
                    contact: &c,
                    rule_id: "manual",
                    team: Some("agents"),
                    advisor: None,
                    opened_at: now - 3 * HOUR,
                    response_ms: 2 * HOUR,
                    priority: zaloflow::rules::model::Priority::Normal,
                    note: None,
                    message: None,
                    source: "test",
                    job_priority: 0,
                },
            ))));
        e
    };
    s.store.apply_effects(&late, now).await.unwrap();
    let vip_id = s
        .handoffs()
        .await
        .into_iter()
        .find(|h| h.user_id == VIP)
        .unwrap()
        .id;

    // Without the token or a session: the login page, not the board.
    let r = client()
        .get(format!("{}/admin/board", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("Mã truy cập"));

    let b = webdriver::Browser::start().await;
    // The token in the URL once: a session cookie, and the bare URL.
    b.goto(&format!("{}/admin/board?token={TOKEN}", s.app.base))
        .await;
    assert_eq!(b.url().await, format!("{}/admin/board", s.app.base));
    let text = b.text().await;
    assert!(text.contains("Bảng hỗ trợ khách hàng"), "{text}");
    assert!(text.contains("Nguyễn Thị Lan"), "{text}");
    // Customer text is shown as text, never as markup.
    assert!(
        text.contains("Cho mình hỏi <b>đơn #123</b> & phí ship?"),
        "{text}"
    );
    assert!(text.contains("Quá hạn 1 giờ"), "{text}");
    assert!(text.contains("Còn 1 giờ 4"), "{text}");
    let src = b.source().await;
    let overdue_at = src.find("Trần Văn Bình").unwrap();
    let vip_at = src.find("Nguyễn Thị Lan").unwrap();
    assert!(overdue_at < vip_at, "most urgent first");
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    b.screenshot(&shots.join("board-before.png")).await;

    // Claim the VIP's handoff as "Minh".
    let input = b.find(&format!("#h{vip_id} input[name=agent]")).await;
    b.type_into(&input, "Minh").await;
    let claim = b.find(&format!("#h{vip_id} button.claim")).await;
    b.click(&claim).await;
    let start = std::time::Instant::now();
    loop {
        let t = b.text().await;
        if t.contains(&format!("Bạn đã nhận xử lý #{vip_id}")) {
            assert!(t.contains("Đang xử lý: Minh"), "{t}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshot(&shots.join("board-after.png")).await;
    let h = s.store.get_handoff(vip_id).await.unwrap().unwrap();
    assert_eq!(h.status, "claimed");
    assert_eq!(h.claimed_by.as_deref(), Some("Minh"));
    assert_eq!(h.responded_by.as_deref(), Some("Minh"));
    assert_eq!(h.met(now), Some(true));

    // The chat link's page: one button; resolving there (the name is remembered).
    b.goto(&format!(
        "{}/admin/board/handoffs/{vip_id}/resolve",
        s.app.base
    ))
    .await;
    let agent = b.find("input[name=agent]").await;
    assert_eq!(b.value_of(&agent).await, "Minh", "the name is remembered");
    let button = b.find("form.act button.resolve").await;
    b.click(&button).await;
    let start = std::time::Instant::now();
    loop {
        let t = b.text().await;
        if t.contains(&format!("Đã đánh dấu xong #{vip_id}")) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = s.store.get_handoff(vip_id).await.unwrap().unwrap();
    assert_eq!(h.status, "resolved");
    assert_eq!(h.resolved_by.as_deref(), Some("Minh"));
    b.quit().await;

    // A form posted from another site is refused even with the session cookie.
    let cookie = format!(
        "{}={}",
        zaloflow::http::board::SESSION_COOKIE,
        zaloflow::http::board::session_value(TOKEN)
    );
    let other = s
        .handoffs()
        .await
        .into_iter()
        .find(|h| h.user_id == "7400")
        .unwrap();
    let r = client()
        .post(format!(
            "{}/admin/board/handoffs/{}/claim",
            s.app.base, other.id
        ))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("agent", "Mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        s.store.get_handoff(other.id).await.unwrap().unwrap().status,
        "open"
    );
    s.app.shutdown().await;
}

/// A dedicated advisor with a chat channel of their own hears of the handoff first: their
/// notification is enqueued first and ahead of the team's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_advisor_is_told_first() {
    let sink = HttpSink::start().await.unwrap();
    let channels = format!(
        "agents={},supervisors={},minh={}",
        sink.url("/agents"),
        sink.url("/supervisors"),
        sink.url("/minh")
    );
    let mut s = shop("sqlite", &[("ZALOFLOW_CHAT_CHANNELS", &channels)]).await;
    s.sink = sink;
    s.tag_vip(VIP, day(2, 14, 55)).await;
    let mut advisor = ContactChange::new(VIP, day(2, 14, 56));
    advisor.fields_set.push(("advisor".into(), "minh".into()));
    s.store
        .apply_effects(
            &Effects {
                contacts: vec![advisor],
                ..Default::default()
            },
            day(2, 14, 56),
        )
        .await
        .unwrap();
    s.say(VIP, "v1", "Anh Minh ơi, em cần tư vấn", day(2, 15, 0))
        .await;
    let h = s.only_handoff().await;
    assert_eq!(h.advisor.as_deref(), Some("minh"));
    let minh = s.chat("/minh");
    assert_eq!(minh.len(), 1, "{minh:?}");
    assert!(minh[0].contains("Anh Minh ơi, em cần tư vấn"));
    assert!(s
        .chat("/agents")
        .last()
        .unwrap()
        .contains("Tư vấn viên riêng: minh"));
    let jobs = s.store.list_jobs(Some("sent"), 100).await.unwrap();
    let notice = |ch: &str| {
        jobs.iter()
            .find(|j| {
                j.source.starts_with("inbox:")
                    && j.payload.contains(&format!("\"chat_channel\":\"{ch}\""))
                    && j.payload.contains("Tư vấn")
            })
            .unwrap_or_else(|| panic!("{ch}: {jobs:#?}"))
            .clone()
    };
    let (to_minh, to_team) = (notice("minh"), notice("agents"));
    assert!(to_minh.id < to_team.id, "enqueued first");
    assert!(to_minh.priority > to_team.priority, "ahead in the queue");
    s.app.shutdown().await;
}

/// The birthday gift: on a VIP's special day (the scheduler finds it), a promotion message.
#[test]
fn vips_get_a_birthday_gift_on_their_special_day() {
    let set =
        zaloflow::rules::load_dir(std::path::Path::new("rules"), &Default::default()).unwrap();
    let engine = zaloflow::engine::Engine::with_rule_set(
        std::sync::Arc::new(set),
        chrono_tz::Asia::Ho_Chi_Minh,
    );
    let at = hcm(2026, 10, 30, 8, 0);
    let mut state = zaloflow::engine::BatchState::default();
    let mut vip = store::Contact {
        user_id: "1".into(),
        display_name: Some("Lan".into()),
        follows: Some(true),
        last_interaction: Some(at - 30 * 86_400_000),
        ..Default::default()
    };
    vip.fields.insert("dob".into(), "30/10/1990".into());
    let plain = store::Contact {
        user_id: "2".into(),
        ..vip.clone()
    };
    vip.tags.insert("vip_customer".into());
    state.contacts.insert("1".into(), vip);
    state.contacts.insert("2".into(), plain);
    let gift = |user: &str, state: &mut zaloflow::engine::BatchState| {
        engine
            .stimulate(
                user,
                zaloflow::rules::Stimulus::SpecialDay { field: "dob" },
                at,
                "tick:test",
                state,
            )
            .jobs
    };
    let jobs = gift("1", &mut state);
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let p: Value = serde_json::from_str(&jobs[0].payload).unwrap();
    // A promotion is a template (Zalo refuses a bare text): the wishes are its header.
    assert!(p.get("text").is_none(), "{p}");
    assert_eq!(
        p["attachment"]["payload"]["template_type"], "promotion",
        "{p}"
    );
    assert!(
        p["attachment"]["payload"]["elements"]
            .to_string()
            .contains("Chúc mừng sinh nhật Lan"),
        "{p}"
    );
    assert_eq!(
        p["kind"], "promotion",
        "past the 7-day window: a promotion message"
    );
    assert_eq!(jobs[0].priority, zaloflow::engine::VIP_PRIORITY);
    assert!(gift("2", &mut state).is_empty(), "VIPs only");
    assert!(gift("1", &mut state).is_empty(), "once that day");
}

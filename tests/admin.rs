//! The admin API over real HTTP, on SQLite and PostgreSQL: contacts (search, timeline, edit
//! with tags mirrored to Zalo, erase that leaves nothing behind), lists, rules (list, check a
//! draft, reload), and the token.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use zaloflow::channels::Payload;
use zaloflow::store::{
    self, ContactChange, DynStore, Effects, ListChange, NewInboxEvent, RuleFire,
};

const TOKEN: &str = "admin-t0ken-for-tests";
const LAN: &str = "8012345678901234567";
const LAN_PHONE: &str = "84912345678";
const LAN_EMAIL: &str = "lan.nguyen@example.vn";
const MINH: &str = "8098765432109876543";
const FORM_ONLY: &str = "phone:84987654321";

/// A running app with a token, and a store on the same database.
struct Admin {
    app: TestApp,
    store: DynStore,
    _db: Db,
}

impl Admin {
    async fn start(kind: &str, extra: &[(&str, &str)]) -> Admin {
        let db = Db::new(kind).await;
        let mut env = vec![("ZALOFLOW_ADMIN_TOKEN", TOKEN)];
        env.extend_from_slice(extra);
        let app = TestApp::spawn(config(db.url(), &env)).await;
        let store = store::open(db.url()).await.unwrap();
        Admin {
            app,
            store,
            _db: db,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.app.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        answer(client().get(self.url(path)).bearer_auth(TOKEN)).await
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = client()
            .request(method.parse().unwrap(), self.url(path))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(req).await
    }
}

async fn answer(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, v)
}

/// Every error has the stable shape, with this code.
fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

/// Lan (a Zalo follower with phone, email, tags, a birthday, lists, rule history, a form
/// registration, events and sends on every channel), Minh, and a contact known only by phone.
async fn seed(s: &DynStore) {
    let now = zaloflow::clock::system_now();
    let mut lan = ContactChange::new(LAN, now - 86_400_000);
    lan.display_name = Some("Lan Nguyễn".into());
    lan.phone = Some(LAN_PHONE.into());
    lan.email = Some(LAN_EMAIL.into());
    lan.follows = Some(true);
    lan.interaction_at = Some(now - 3_600_000);
    lan.interactions = 3;
    lan.tags_add = vec!["new_user".into(), "vip_customer".into()];
    lan.fields_set = vec![("birthday".into(), "1990-05-01".into())];
    let mut minh = ContactChange::new(MINH, now - 86_400_000);
    minh.display_name = Some("Minh".into());
    minh.follows = Some(true);
    minh.tags_add = vec!["new_user".into()];
    let mut form = ContactChange::new(FORM_ONLY, now);
    form.phone = Some("84987654321".into());
    form.display_name = Some("Hoa".into());
    let fire = |u: &str| RuleFire {
        user_id: u.into(),
        rule_id: "welcome".into(),
        period_key: "ever".into(),
        fired_at: now - 1000,
    };
    let job = |p: Payload, rule: &str| zaloflow::store::NewJob {
        rule_id: Some(rule.into()),
        ..zaloflow::outbox::job(&p, now + 3_600_000, "inbox:1")
    };
    let effects = Effects {
        contacts: vec![lan, minh, form],
        jobs: vec![
            job(
                Payload::Zalo {
                    user_id: LAN.into(),
                    kind: Default::default(),
                    text: Some("Chào Lan!".into()),
                    attachment: None,
                },
                "welcome",
            ),
            job(
                Payload::Sms {
                    to: LAN_PHONE.into(),
                    text: "Mã giảm giá".into(),
                },
                "sms_offer",
            ),
            job(
                Payload::Email {
                    to: LAN_EMAIL.into(),
                    subject: "Xin chào".into(),
                    html: "<p>Chào Lan</p>".into(),
                    text: "Chào Lan".into(),
                    track: None,
                },
                "drip",
            ),
            job(
                Payload::Chat {
                    channel: None,
                    text: "Cần nhân viên hỗ trợ: Lan Nguyễn".into(),
                    data: json!({"contact": LAN, "rule": "vip"}),
                },
                "vip",
            ),
            // A staff task naming her only by phone and email.
            job(
                Payload::Task {
                    title: format!("Gọi lại {LAN_PHONE}"),
                    description: format!("email {LAN_EMAIL}"),
                    contact: None,
                    due_at: None,
                },
                "callback",
            ),
            job(
                Payload::Zalo {
                    user_id: MINH.into(),
                    kind: Default::default(),
                    text: Some("Chào Minh!".into()),
                    attachment: None,
                },
                "welcome",
            ),
        ],
        lists: vec![
            ListChange::Add {
                list: "vip-leads".into(),
                user_id: LAN.into(),
            },
            ListChange::Add {
                list: "vip-leads".into(),
                user_id: MINH.into(),
            },
            ListChange::Add {
                list: "newsletter".into(),
                user_id: LAN.into(),
            },
        ],
        fires: vec![fire(LAN), fire(MINH)],
        // Lan wrote something that went to the agents.
        handoffs: vec![zaloflow::handoff::HandoffChange::Open(Box::new(
            zaloflow::handoff::NewHandoff {
                user_id: LAN.into(),
                contact_name: Some("Lan Nguyễn".into()),
                priority: 1,
                team: Some("agents".into()),
                advisor: None,
                rule_id: Some("vip".into()),
                note: None,
                opened_at: now,
                deadline_at: now + 7_200_000,
                message: Some(zaloflow::handoff::HandoffMessage {
                    msg_id: Some("m-lan-1".into()),
                    text: Some(format!("Gọi mình số {LAN_PHONE} nhé")),
                    at: now,
                }),
                notices: vec![],
                source: "inbox:1".into(),
            },
        ))],
        ..Default::default()
    };
    s.apply_effects(&effects, now).await.unwrap();
    s.record_form_submission("signup", LAN, now).await.unwrap();
    let ev = |key: &str, lane: &str, body: Value, at: i64| NewInboxEvent {
        dedupe_key: key.into(),
        event_name: body["event_name"].as_str().unwrap().into(),
        user_id: lane.into(),
        priority: 0,
        body: body.to_string(),
        event_ts: Some(at),
        received_at: at,
    };
    let msg = |id: &str, text: &str, at: i64| {
        json!({"app_id": APP_ID, "event_name": "user_send_text", "sender": {"id": LAN},
               "recipient": {"id": "388613280878808645"}, "timestamp": at.to_string(),
               "message": {"text": text, "msg_id": id}})
    };
    s.insert_inbox(&[
        ev(
            "m1",
            LAN,
            msg("m1", "Chào shop, số mình là 0912345678", now - 7_200_000),
            now - 7_200_000,
        ),
        ev(
            "m2",
            LAN,
            msg("m2", "Còn hàng không?", now - 60_000),
            now - 60_000,
        ),
        // Minh passing on her email.
        ev(
            "m3",
            MINH,
            json!({"app_id": APP_ID, "event_name": "user_send_text", "sender": {"id": MINH},
                   "recipient": {"id": "388613280878808645"}, "timestamp": (now - 40_000).to_string(),
                   "message": {"text": format!("Email của chị tôi: {LAN_EMAIL}"), "msg_id": "m3"}}),
            now - 40_000,
        ),
        // A tag event whose lane is Minh's but which names Lan too.
        ev(
            "t1",
            MINH,
            json!({"app_id": APP_ID, "event_name": "add_user_to_tag", "oa_id": "388613280878808645",
                   "timestamp": (now - 30_000).to_string(),
                   "tag": {"name": "khach_quen", "user_ids": [MINH, LAN]}}),
            now - 30_000,
        ),
    ])
    .await
    .unwrap();
    // The running app processes the events (no rules: contact updates only).
    wait_until(Duration::from_secs(20), || async {
        s.inbox_stats().await.unwrap().pending == 0
    })
    .await;
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("sqlite").await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name("postgres").await
                }
            )*
        }
    };
}

both_backends!(
    contacts_search_by_name_phone_tag_with_pages,
    contact_timeline_shows_events_and_sends_newest_first,
    edit_contact_sets_fields_and_mirrors_tags_to_zalo,
    erase_contact_leaves_nothing_with_its_id_phone_or_email,
    lists_with_counts_members_add_and_remove,
);

async fn contacts_search_by_name_phone_tag_with_pages(kind: &str) {
    let a = Admin::start(kind, &[]).await;
    seed(&a.store).await;

    let ids = |v: &Value| -> Vec<String> {
        v["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["user_id"].as_str().unwrap().to_string())
            .collect()
    };
    // Name: any part, any case (ASCII letters on SQLite).
    let (st, v) = a.get("/admin/contacts?name=NGUY").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(ids(&v), [LAN]);
    assert_eq!(v["contacts"][0]["phone"], LAN_PHONE);
    // khach_quen came from Zalo's tag event.
    assert_eq!(
        v["contacts"][0]["tags"],
        json!(["khach_quen", "new_user", "vip_customer"])
    );
    assert_eq!(v["contacts"][0]["fields"]["birthday"], "1990-05-01");
    assert_eq!(v["next"], Value::Null);
    // Phone: the way a person types it.
    let (_, v) = a.get("/admin/contacts?phone=0912%20345%20678").await;
    assert_eq!(ids(&v), [LAN]);
    let (_, v) = a.get("/admin/contacts?phone=%2B84987654321").await;
    assert_eq!(ids(&v), [FORM_ONLY]);
    // Tag, and every filter at once.
    let (_, v) = a.get("/admin/contacts?tag=new_user").await;
    assert_eq!(ids(&v), [LAN, MINH]);
    let (_, v) = a.get("/admin/contacts?tag=new_user&name=minh").await;
    assert_eq!(ids(&v), [MINH]);
    let (_, v) = a.get("/admin/contacts?tag=nobody").await;
    assert!(ids(&v).is_empty());
    // A name with LIKE wildcards matches them literally.
    let (_, v) = a.get("/admin/contacts?name=%25").await;
    assert!(ids(&v).is_empty(), "{v}");
    // Pages.
    let (_, p1) = a.get("/admin/contacts?limit=2").await;
    assert_eq!(ids(&p1).len(), 2);
    let next = p1["next"].as_str().unwrap().to_string();
    let (_, p2) = a
        .get(&format!("/admin/contacts?limit=2&after={next}"))
        .await;
    let mut all = ids(&p1);
    all.extend(ids(&p2));
    let mut expected = vec![LAN.to_string(), MINH.to_string(), FORM_ONLY.to_string()];
    expected.sort();
    assert_eq!(all, expected);
    // Bad queries are 400 in the error shape.
    let (st, v) = a.get("/admin/contacts?phone=call-me").await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_query");
    let (st, v) = a.get("/admin/contacts?limit=0").await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_query");
    let (st, v) = a.get("/admin/contacts?limit=many").await;
    assert_eq!(st, 400);
    assert_error(&v, "bad_query");
    a.app.shutdown().await;
}

async fn contact_timeline_shows_events_and_sends_newest_first(kind: &str) {
    let a = Admin::start(kind, &[]).await;
    seed(&a.store).await;
    // A busy shop: 2,500 sends to other customers and a notice about someone else came after
    // the notice about her. It is still found (staff jobs are not looked for among the latest
    // jobs only).
    let now = zaloflow::clock::system_now();
    let mut busy: Vec<zaloflow::store::NewJob> = (0..2_500)
        .map(|i| {
            let p = Payload::Zalo {
                user_id: format!("other-{i}"),
                kind: Default::default(),
                text: Some(format!("Chào bạn {i}")),
                attachment: None,
            };
            zaloflow::outbox::job(&p, now + 3_600_000, "busy")
        })
        .collect();
    let other = Payload::Chat {
        channel: None,
        text: "Cần nhân viên hỗ trợ: Minh".into(),
        data: json!({"user_id": MINH, "rule": "vip"}),
    };
    busy.push(zaloflow::outbox::job(&other, now + 3_600_000, "busy"));
    a.store.enqueue_jobs(&busy, now).await.unwrap();
    let (st, v) = a.get(&format!("/admin/contacts/{LAN}")).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["contact"]["display_name"], "Lan Nguyễn");
    assert_eq!(v["lists"], json!(["newsletter", "vip-leads"]));
    let tl = v["timeline"].as_array().unwrap();
    let at: Vec<i64> = tl.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    let events: Vec<&Value> = tl.iter().filter(|e| e["kind"] == "event").collect();
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"]["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["Còn hàng không?", "Chào shop, số mình là 0912345678"]
    );
    // Sends to the contact on every channel: by id, by phone, by email.
    let mut channels: Vec<&str> = tl
        .iter()
        .filter(|e| e["kind"] == "send")
        .map(|e| e["job"]["channel"].as_str().unwrap())
        .collect();
    channels.sort();
    // …and the team-chat notice about her (a handoff's notice names her as `contact`).
    assert_eq!(channels, ["chat", "email", "sms", "zalo"]);
    let chat = tl.iter().find(|e| e["job"]["channel"] == "chat").unwrap();
    assert_eq!(chat["job"]["payload"]["data"]["contact"], LAN);
    let zalo = tl.iter().find(|e| e["job"]["channel"] == "zalo").unwrap();
    assert_eq!(zalo["job"]["payload"]["text"], "Chào Lan!");
    assert_eq!(zalo["job"]["rule_id"], "welcome");
    // The limit bounds each side: events, sends to her, staff notices about her.
    let (_, v) = a.get(&format!("/admin/contacts/{LAN}?limit=1")).await;
    assert_eq!(v["timeline"].as_array().unwrap().len(), 3);
    let (st, v) = a.get("/admin/contacts/nobody").await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    a.app.shutdown().await;
}

async fn edit_contact_sets_fields_and_mirrors_tags_to_zalo(kind: &str) {
    let a = Admin::start(kind, &[]).await;
    seed(&a.store).await;
    let path = format!("/admin/contacts/{LAN}");
    let (st, v) = a
        .send(
            "PATCH",
            &path,
            Some(json!({
                "display_name": "  Nguyễn Thị Lan ",
                "phone": "+84 912 000 111",
                "fields": {"birthday": "02/09/1991", "size": "M"},
                "add_tags": ["vip_customer", "than_thiet"],
                "remove_tags": ["new_user", "never_had_it"],
            })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let c = &v["contact"];
    assert_eq!(c["display_name"], "Nguyễn Thị Lan");
    assert_eq!(c["phone"], "84912000111");
    assert_eq!(c["fields"], json!({"birthday": "1991-09-02", "size": "M"}));
    assert_eq!(
        c["tags"],
        json!(["khach_quen", "than_thiet", "vip_customer"])
    );
    // Only real changes are mirrored: than_thiet added, new_user removed.
    assert_eq!(v["zalo_jobs"], 2);
    let stored = a.store.get_contact(LAN).await.unwrap().unwrap();
    assert!(stored.tags.contains("than_thiet") && !stored.tags.contains("new_user"));
    let jobs = a.store.contact_jobs(&[LAN.to_string()], 50).await.unwrap();
    let mut mirrored: Vec<(String, bool)> = jobs
        .iter()
        .filter(|j| j.source == "admin")
        .map(
            |j| match serde_json::from_str::<Payload>(&j.payload).unwrap() {
                Payload::ZaloTag { user_id, tag, add } => {
                    assert_eq!(user_id, LAN);
                    (tag, add)
                }
                other => panic!("{other:?}"),
            },
        )
        .collect();
    mirrored.sort();
    assert_eq!(
        mirrored,
        [
            ("new_user".to_string(), false),
            ("than_thiet".to_string(), true)
        ]
    );
    // A contact that is not a Zalo user gets its tag, and nothing goes to Zalo.
    let (st, v) = a
        .send(
            "PATCH",
            &format!("/admin/contacts/{FORM_ONLY}"),
            Some(json!({"add_tags": ["lead"]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["zalo_jobs"], 0);
    assert_eq!(v["contact"]["tags"], json!(["lead"]));
    // Refusals, each in the error shape.
    for (body, code) in [
        (json!({"email": "not-an-email"}), "invalid"),
        (json!({"phone": "12"}), "invalid"),
        (json!({"fields": {"birthday": "yesterday"}}), "invalid"),
        (json!({"fields": {"tags": "x"}}), "invalid"),
        (json!({"add_tags": ["a"], "remove_tags": ["a"]}), "invalid"),
        (json!({"add_tags": [" "]}), "invalid"),
        (json!({"nickname": "x"}), "invalid"),
        (json!({"add_tags": "vip"}), "invalid"),
    ] {
        let (st, v) = a.send("PATCH", &path, Some(body.clone())).await;
        assert_eq!(st, 422, "{body}: {v}");
        assert_error(&v, code);
    }
    let r = client()
        .patch(a.url(&path))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_error(&r.json().await.unwrap(), "bad_json");
    let (st, v) = a
        .send(
            "PATCH",
            "/admin/contacts/nobody",
            Some(json!({"add_tags": ["x"]})),
        )
        .await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    // Nothing of the refused edits was stored.
    let after = a.store.get_contact(LAN).await.unwrap().unwrap();
    assert_eq!(after, stored);
    a.app.shutdown().await;
}

/// Every row of every table as text (PostgreSQL: `t::text`; SQLite: columns joined).
async fn every_row_as_text(url: &str) -> Vec<(String, String)> {
    use sqlx::Connection;
    let mut out = Vec::new();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (t,) in tables {
            let cols: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT name FROM pragma_table_info('{t}')"))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            let joined = cols
                .iter()
                .map(|(n,)| format!("COALESCE(CAST(\"{n}\" AS TEXT), '')"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            // Bytes, not text: a column may hold a blob (the migrations' checksums).
            let rows: Vec<(Vec<u8>,)> =
                sqlx::query_as(&format!("SELECT CAST({joined} AS BLOB) FROM \"{t}\""))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
            out.extend(
                rows.into_iter()
                    .map(|(r,)| (t.clone(), String::from_utf8_lossy(&r).into_owned())),
            );
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for (t,) in tables {
            let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT x::text FROM \"{t}\" x"))
                .fetch_all(&mut c)
                .await
                .unwrap();
            out.extend(rows.into_iter().map(|(r,)| (t.clone(), r)));
        }
    }
    out
}

fn mentions(rows: &[(String, String)], needles: &[&str]) -> Vec<String> {
    rows.iter()
        .filter(|(_, r)| needles.iter().any(|n| r.contains(n)))
        .map(|(t, r)| format!("{t}: {r}"))
        .collect()
}

async fn erase_contact_leaves_nothing_with_its_id_phone_or_email(kind: &str) {
    let a = Admin::start(kind, &[]).await;
    seed(&a.store).await;
    let lan = [LAN, LAN_PHONE, "0912345678", LAN_EMAIL];
    // The seed put Lan everywhere (so the scan below can see her).
    let before = mentions(&every_row_as_text(a._db.url()).await, &lan);
    let tables: std::collections::BTreeSet<&str> = before
        .iter()
        .map(|r| r.split(':').next().unwrap())
        .collect();
    for t in [
        "contacts",
        "contact_tags",
        "contact_fields",
        "list_members",
        "rule_state",
        "form_submissions",
        "inbox",
        "outbox",
        "handoffs",
        "handoff_messages",
    ] {
        assert!(
            tables.contains(t),
            "seed has no {t} row about Lan: {before:#?}"
        );
    }
    let (st, v) = a
        .send("DELETE", &format!("/admin/contacts/{LAN}"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["erased"], true);
    assert_eq!(v["contact"], 1);
    assert_eq!(v["tags"], 3);
    assert_eq!(v["list_memberships"], 2);
    assert_eq!(v["form_submissions"], 1);
    assert_eq!(
        v["inbox_redacted"], 4,
        "her two messages, Minh's naming her email, the tag event naming her"
    );
    assert_eq!(
        v["jobs_deleted"], 5,
        "zalo, sms, email, the staff chat naming her, the task naming her phone"
    );

    let left = mentions(&every_row_as_text(a._db.url()).await, &lan);
    assert!(left.is_empty(), "still stored about Lan: {left:#?}");
    // Minh is untouched: his contact, list, job and rule state.
    let minh = a.store.get_contact(MINH).await.unwrap().unwrap();
    assert_eq!(minh.display_name.as_deref(), Some("Minh"));
    assert_eq!(a.store.lists_of_contact(MINH).await.unwrap(), ["vip-leads"]);
    assert_eq!(
        a.store
            .contact_jobs(&[MINH.to_string()], 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        a.store
            .load_rule_state(&[MINH.to_string()])
            .await
            .unwrap()
            .len(),
        1
    );
    // The redacted events are not waiting for processing, and nothing brings her back.
    wait_until(Duration::from_secs(10), || async {
        a.store.inbox_stats().await.unwrap().pending == 0
    })
    .await;
    assert!(a.store.get_contact(LAN).await.unwrap().is_none());
    let (st, v) = a.get(&format!("/admin/contacts/{LAN}")).await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    let (st, v) = a
        .send("DELETE", &format!("/admin/contacts/{LAN}"), None)
        .await;
    assert_eq!(st, 404, "{v}");
    assert_error(&v, "not_found");
    // A late retry of one of her webhooks is still recognised as a duplicate.
    let again = a
        .store
        .insert_inbox(&[NewInboxEvent {
            dedupe_key: "m1".into(),
            event_name: "user_send_text".into(),
            user_id: LAN.into(),
            priority: 0,
            body: "{}".into(),
            event_ts: None,
            received_at: 0,
        }])
        .await
        .unwrap();
    assert_eq!(again, [store::Inserted::Duplicate]);
    a.app.shutdown().await;
}

async fn lists_with_counts_members_add_and_remove(kind: &str) {
    let a = Admin::start(kind, &[]).await;
    seed(&a.store).await;
    let (st, v) = a.get("/admin/lists").await;
    assert_eq!(st, 200, "{v}");
    let counts: Vec<(String, i64)> = v["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().into(),
                l["members"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("newsletter".to_string(), 1), ("vip-leads".to_string(), 2)]
    );
    // Members, a page at a time.
    let (st, p1) = a.get("/admin/lists/vip-leads/members?limit=1").await;
    assert_eq!(st, 200, "{p1}");
    assert_eq!(p1["members"][0]["user_id"], LAN);
    let next = p1["next"].as_str().unwrap();
    let (_, p2) = a
        .get(&format!(
            "/admin/lists/vip-leads/members?limit=1&after={next}"
        ))
        .await;
    assert_eq!(p2["members"][0]["user_id"], MINH);
    let (_, p3) = a
        .get(&format!(
            "/admin/lists/vip-leads/members?limit=1&after={MINH}"
        ))
        .await;
    assert_eq!(p3["members"], json!([]));
    assert_eq!(p3["next"], Value::Null);
    let (st, v) = a.get("/admin/lists/nope/members").await;
    assert_eq!(st, 404);
    assert_error(&v, "not_found");
    // Add: a new list is made by its first members; unknown contacts are refused whole.
    let (st, v) = a
        .send(
            "POST",
            "/admin/lists/Khách%20mới/members",
            Some(json!({"user_ids": [MINH, FORM_ONLY]})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["list"], "Khách mới");
    assert_eq!(v["members"], 2);
    let (st, v) = a
        .send(
            "POST",
            "/admin/lists/vip-leads/members",
            Some(json!({"user_ids": [FORM_ONLY, "ghost"]})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert_error(&v, "invalid");
    assert!(v["error"]["message"].as_str().unwrap().contains("ghost"));
    assert_eq!(
        a.store.lists_of_contact(FORM_ONLY).await.unwrap(),
        ["Khách mới"]
    );
    let (st, v) = a
        .send(
            "POST",
            "/admin/lists/vip-leads/members",
            Some(json!({"user_ids": []})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = a
        .send(
            "POST",
            "/admin/lists/%20/members",
            Some(json!({"user_ids": [MINH]})),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    // Remove.
    let (st, v) = a
        .send(
            "DELETE",
            &format!("/admin/lists/vip-leads/members/{MINH}"),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["members"], 1);
    let (st, v) = a
        .send(
            "DELETE",
            &format!("/admin/lists/vip-leads/members/{MINH}"),
            None,
        )
        .await;
    assert_eq!(st, 404, "{v}");
    assert_error(&v, "not_found");
    assert_eq!(a.store.lists_of_contact(MINH).await.unwrap(), ["Khách mới"]);
    a.app.shutdown().await;
}

const GOOD_RULES: &str = "rules:
  - id: welcome
    description: Chào người mới
    when: follow
    do:
      - send: \"Cảm ơn bạn đã quan tâm!\"
      - tag: new_user
  - id: vip_start
    when:
      tag_added: vip_customer
    do:
      - tag: vip_welcomed
tags: [new_user, vip_customer, vip_welcomed]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_listed_drafts_checked_without_saving_and_reloaded() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("main.yaml"), GOOD_RULES).unwrap();
    let dir = rules.path().to_str().unwrap().to_string();
    // The messages asserted below are the English ones (the default is Vietnamese).
    let a = Admin::start(
        "sqlite",
        &[("ZALOFLOW_RULES", dir.as_str()), ("ZALOFLOW_LANG", "en")],
    )
    .await;

    let (st, v) = a.get("/admin/rules").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["loaded"], true);
    let listed: Vec<(String, Vec<String>, String, u64)> = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().into(),
                serde_json::from_value(r["triggers"].clone()).unwrap(),
                r["file"].as_str().unwrap().into(),
                r["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "welcome".into(),
                vec!["follow".into()],
                "main.yaml".into(),
                2
            ),
            (
                "vip_start".into(),
                vec!["tag_added: vip_customer".into()],
                "main.yaml".into(),
                8
            ),
        ]
    );
    assert_eq!(v["rules"][0]["description"], "Chào người mới");
    assert_eq!(v["rules"][0]["enabled"], true);

    // A draft with a typo: its line and column.
    let bad = "rules:\n  - id: late\n    when: mesage\n    do:\n      - send: hi\n";
    let (st, v) = a
        .send(
            "POST",
            "/admin/rules/check",
            Some(json!({"files": {"new.yaml": bad}})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ok"], false);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["col"].as_u64()),
        (Some("new.yaml"), Some(3), Some(11)),
        "{v}"
    );
    assert_eq!(d["draft"], true);
    assert!(d["message"].as_str().unwrap().contains("mesage"), "{d}");
    // Checked together with the folder: an id used in main.yaml is a duplicate.
    let dup = "rules:\n  - id: welcome\n    when: message\n    do:\n      - send: hi\n";
    let (_, v) = a
        .send(
            "POST",
            "/admin/rules/check",
            Some(json!({"files": {"other.yaml": dup}})),
        )
        .await;
    assert_eq!(v["ok"], false, "{v}");
    assert!(
        v["diagnostics"].as_array().unwrap().iter().any(
            |d| d["file"] == "other.yaml" && d["message"].as_str().unwrap().contains("welcome")
        ),
        "{v}"
    );
    // The same text standing in for main.yaml is fine; so is a good new file.
    let (_, v) = a
        .send(
            "POST",
            "/admin/rules/check",
            Some(json!({"files": {"main.yaml": dup}})),
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["summary"], "1 rule in 1 file");
    // It loads, with a hygiene warning that does not block it: a reply to every message.
    let w = &v["warnings"][0];
    assert_eq!(
        (w["file"].as_str(), w["line"].as_u64(), w["col"].as_u64()),
        (Some("main.yaml"), Some(5), Some(9)),
        "{v}"
    );
    assert_eq!(w["draft"], true);
    assert!(w["message"].as_str().unwrap().contains("cooldown"), "{w}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    let (_, v) = a
        .send(
            "POST",
            "/admin/rules/check",
            Some(json!({"files": {"more.yml": dup.replace("welcome", "hello")}})),
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["summary"], "3 rules in 2 files");
    // Nothing was saved, nothing changed in what runs.
    let names: Vec<String> = std::fs::read_dir(rules.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["main.yaml"]);
    assert_eq!(
        std::fs::read_to_string(rules.path().join("main.yaml")).unwrap(),
        GOOD_RULES
    );
    let (_, v) = a.get("/admin/rules").await;
    assert_eq!(v["rules"].as_array().unwrap().len(), 2);
    // Refused drafts.
    for body in [
        json!({"files": {}}),
        json!({"files": {"../evil.yaml": "rules: []"}}),
        json!({"files": {"notes.txt": "x"}}),
    ] {
        let (st, v) = a
            .send("POST", "/admin/rules/check", Some(body.clone()))
            .await;
        assert_eq!(st, 422, "{body}: {v}");
        assert_error(&v, "invalid");
    }

    // Reload: a broken folder keeps the running rules and says why.
    std::fs::write(rules.path().join("broken.yaml"), bad).unwrap();
    let (st, v) = a.send("POST", "/admin/rules/reload", None).await;
    assert_eq!(st, 422, "{v}");
    assert_error(&v, "rules_invalid");
    let d = &v["error"]["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64()),
        (Some("broken.yaml"), Some(3)),
        "{v}"
    );
    let (_, v) = a.get("/admin/rules").await;
    assert_eq!(v["rules"].as_array().unwrap().len(), 2);
    assert!(!v["status"]["errors"].as_array().unwrap().is_empty());
    // Fixed: reloaded now.
    std::fs::write(
        rules.path().join("broken.yaml"),
        dup.replace("welcome", "hello"),
    )
    .unwrap();
    let (st, v) = a.send("POST", "/admin/rules/reload", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["outcome"], "reloaded");
    assert_eq!(v["status"]["rules"], 3);
    assert_eq!(v["status"]["errors"], json!([]));
    // The running rules' hygiene warnings come along, without blocking the reload.
    let w = &v["status"]["warnings"];
    assert_eq!(w.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        (
            w[0]["file"].as_str(),
            w[0]["line"].as_u64(),
            w[0]["col"].as_u64()
        ),
        (Some("broken.yaml"), Some(5), Some(9)),
        "{v}"
    );
    let ready: Value = client()
        .get(a.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let w = ready["rules"]["warnings"][0].as_str().unwrap();
    assert!(
        w.contains("broken.yaml:5:9: warning: rule `hello`"),
        "{ready}"
    );
    let (_, v) = a.get("/admin/rules").await;
    assert_eq!(v["rules"].as_array().unwrap().len(), 3);
    a.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_without_a_folder() {
    let a = Admin::start("sqlite", &[]).await;
    let (st, v) = a.get("/admin/rules").await;
    assert_eq!(st, 200);
    assert_eq!(v["loaded"], false);
    assert_eq!(v["rules"], json!([]));
    let (st, v) = a.send("POST", "/admin/rules/reload", None).await;
    assert_eq!(st, 409, "{v}");
    assert_error(&v, "no_rules_folder");
    // A draft is still checked, on its own.
    let (st, v) = a
        .send(
            "POST",
            "/admin/rules/check",
            Some(json!({"files": {"a.yaml": GOOD_RULES}})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["ok"], true, "{v}");
    a.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_are_refused_and_no_token_disables_the_api() {
    let a = Admin::start("sqlite", &[]).await;
    seed(&a.store).await;
    let path = format!("/admin/contacts/{LAN}");
    for auth in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("bearer {TOKEN}")),
        Some(format!("Basic {TOKEN}")),
        Some(TOKEN.to_string()),
    ] {
        for (method, p) in [
            ("GET", path.as_str()),
            ("DELETE", path.as_str()),
            ("POST", "/admin/rules/reload"),
        ] {
            let mut req = client().request(method.parse().unwrap(), a.url(p));
            if let Some(h) = &auth {
                req = req.header("authorization", h);
            }
            let (st, v) = answer(req).await;
            assert_eq!(st, 401, "{method} {p} with {auth:?}");
            assert_error(&v, "unauthorized");
        }
    }
    // Nothing was erased by the refused DELETEs.
    assert!(a.store.get_contact(LAN).await.unwrap().is_some());
    // The description is public.
    let r = client()
        .get(a.url("/admin/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    a.app.shutdown().await;

    // Without ZALOFLOW_ADMIN_TOKEN the API answers 403 to everyone.
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    for auth in [None, Some("Bearer ")] {
        let mut req = client().get(format!("{}/admin/contacts", app.base));
        if let Some(h) = auth {
            req = req.header("authorization", h);
        }
        let (st, v) = answer(req).await;
        assert_eq!(st, 403);
        assert_error(&v, "admin_disabled");
    }
    app.shutdown().await;
}

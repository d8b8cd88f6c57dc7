//! `POST /forms/{form}` over real HTTP against the running service, contact lists in the
//! store, and the webhook's refusal of internal event names — on both backends.

mod common;

use common::*;
use serde_json::{json, Value};
use zaloflow::store::{self, Completion, Effects, ListChange, NewInboxEvent};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    json_form_creates_contact_and_processed_event,
    urlencoded_form_by_email,
    repeat_registration_is_flagged_and_contact_stays_one,
    form_finds_existing_zalo_contact_by_phone,
    invalid_form_is_422_per_field,
    lists_add_copy_move_remove,
    list_effects_commit_with_their_event,
    webhook_refuses_internal_event_names,
);

/// A rules folder (kept for the test run) that declares the forms these tests post to.
pub fn declared_forms_dir() -> String {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("zaloflow-forms-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("forms.yaml"),
            "forms: [spring-sale, newsletter, vip-day, other, f]\n",
        )
        .unwrap();
        d.display().to_string()
    })
    .clone()
}

fn forms_config(db_url: &str, extra: &[(&str, &str)]) -> zaloflow::config::Config {
    let dir = declared_forms_dir();
    let mut all: Vec<(&str, &str)> = vec![("ZALOFLOW_RULES", dir.as_str())];
    all.extend_from_slice(extra);
    config(db_url, &all)
}

async fn store_of(db: &Db) -> store::DynStore {
    let s = store::open(db.url()).await.unwrap();
    s.migrate().await.unwrap();
    s
}

async fn post_json(app: &TestApp, form: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/forms/{form}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn json_form_creates_contact_and_processed_event(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(forms_config(db.url(), &[])).await;
    let store = store_of(&db).await;
    let (status, body) = post_json(
        &app,
        "spring-sale",
        json!({"name": "Nguyễn Thị Lan", "phone": "0912 345 678", "email": "Lan@Example.VN",
               "gift": "Áo thun", "age": 31, "subscribed": true}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["repeat"], false);
    assert_eq!(body["contact_id"], "phone:84912345678");

    wait_done(&store, 1).await;
    let c = store
        .get_contact("phone:84912345678")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Nguyễn Thị Lan"));
    assert_eq!(c.phone.as_deref(), Some("84912345678"));
    assert_eq!(c.email.as_deref(), Some("lan@example.vn"));
    assert_eq!(c.fields["gift"], "Áo thun");
    assert_eq!(c.fields["age"], "31");
    assert_eq!(c.fields["subscribed"], "true");
    // A web form is not a Zalo interaction (the 7-day window stays closed).
    assert_eq!(c.last_interaction, None);

    let events = inbox_bodies(&db, "zaloflow.form_submitted").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["form"], "spring-sale");
    assert_eq!(events[0]["data"]["repeat"], false);
    assert_eq!(store.inbox_stats().await.unwrap().failed, 0);
    app.shutdown().await;
}

async fn urlencoded_form_by_email(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(forms_config(db.url(), &[])).await;
    let store = store_of(&db).await;
    let r = client()
        .post(format!("{}/forms/newsletter", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Minh&email=minh%40example.vn&phone=&interests=shoes&interests=bags")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["contact_id"], "email:minh@example.vn");
    wait_done(&store, 1).await;
    let c = store
        .get_contact("email:minh@example.vn")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Minh"));
    assert_eq!(c.phone, None);
    assert_eq!(c.fields["interests"], "shoes, bags");

    // Neither JSON nor form data.
    let r = client()
        .post(format!("{}/forms/newsletter", app.base))
        .header("content-type", "text/plain")
        .body("email=x@y.vn")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    app.shutdown().await;
}

async fn repeat_registration_is_flagged_and_contact_stays_one(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(forms_config(db.url(), &[])).await;
    let store = store_of(&db).await;
    let (s1, b1) = post_json(&app, "vip-day", json!({"phone": "0987654321"})).await;
    assert_eq!((s1, b1["repeat"].clone()), (201, json!(false)));
    // Same person, other spelling, more data: a repeat on this form...
    let (s2, b2) = post_json(
        &app,
        "vip-day",
        json!({"phone": "+84 987 654 321", "name": "Hoa", "email": "hoa@example.vn"}),
    )
    .await;
    assert_eq!(s2, 200, "{b2}");
    assert_eq!(b2["repeat"], true);
    assert_eq!(b2["contact_id"], b1["contact_id"]);
    // ...but a first registration on another form; found again by email this time (once
    // the registration that brought the email has been processed).
    wait_done(&store, 2).await;
    let (s3, b3) = post_json(&app, "other", json!({"email": "HOA@example.vn"})).await;
    assert_eq!((s3, b3["repeat"].clone()), (201, json!(false)));
    assert_eq!(b3["contact_id"], b1["contact_id"]);

    wait_done(&store, 3).await;
    let events = inbox_bodies(&db, "zaloflow.form_submitted").await;
    let repeats: Vec<bool> = events
        .iter()
        .map(|e| e["data"]["repeat"].as_bool().unwrap())
        .collect();
    assert_eq!(repeats, vec![false, true, false]);
    let ids = store.contact_ids_page(None, None, 100).await.unwrap();
    assert_eq!(ids, vec!["phone:84987654321".to_string()]);
    let c = store
        .get_contact("phone:84987654321")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.display_name.as_deref(), Some("Hoa"));
    assert_eq!(c.email.as_deref(), Some("hoa@example.vn"));
    app.shutdown().await;
}

async fn form_finds_existing_zalo_contact_by_phone(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(forms_config(db.url(), &[])).await;
    let store = store_of(&db).await;
    // A Zalo user shared their phone in the OA (user_submit_info).
    let submit = json!({
        "app_id": APP_ID, "event_name": "user_submit_info", "timestamp": "1700000000000",
        "sender": {"id": "6142494823000000001"}, "recipient": {"id": "1"},
        "info": {"name": "Lan", "phone": "0912345678"}
    })
    .to_string();
    assert_eq!(app.post_webhook(&submit).await.status(), 200);
    wait_done(&store, 1).await;
    let (status, body) = post_json(&app, "spring-sale", json!({"phone": "84912345678"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["contact_id"], "6142494823000000001");
    wait_done(&store, 2).await;
    assert_eq!(
        store.contact_ids_page(None, None, 10).await.unwrap(),
        vec!["6142494823000000001".to_string()]
    );
    app.shutdown().await;
}

async fn invalid_form_is_422_per_field(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(forms_config(db.url(), &[])).await;
    let store = store_of(&db).await;
    let (status, body) = post_json(
        &app,
        "spring-sale",
        json!({"phone": "12-34", "email": "lan@", "birthday": "31/02/2000",
               "tags": "vip_customer", "nested": {"a": 1}}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_form");
    let fields = body["error"]["fields"].as_object().unwrap();
    for f in ["phone", "email", "birthday", "tags", "nested"] {
        assert!(fields.contains_key(f), "{f} missing in {body}");
    }
    assert!(fields["phone"].as_str().unwrap().contains("phone number"));

    let (status, body) = post_json(&app, "spring-sale", json!({"name": "Lan"})).await;
    assert_eq!(status, 422);
    assert!(body["error"]["fields"]["phone"]
        .as_str()
        .unwrap()
        .contains("required"));

    let r = client()
        .post(format!("{}/forms/spring-sale", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = post_json(&app, "bad%20name", json!({"phone": "0912345678"})).await;
    assert_eq!(status, 404);

    // Nothing was stored for any of them.
    let st = store.inbox_stats().await.unwrap();
    assert_eq!(st.pending + st.done + st.failed, 0);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_are_rate_limited_per_ip() {
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(forms_config(
        db.url(),
        &[("ZALOFLOW_PUBLIC_RATE_PER_MINUTE", "3")],
    ))
    .await;
    for i in 0..3 {
        let (status, body) = post_json(&app, "f", json!({"phone": format!("091234567{i}")})).await;
        assert_eq!(status, 201, "{body}");
    }
    let r = client()
        .post(format!("{}/forms/f", app.base))
        .json(&json!({"phone": "0912345679"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Invalid requests count too: the limit is on the address, not on what it sends.
    let (status, _) = post_json(&app, "f", json!({})).await;
    assert_eq!(status, 429);
    app.shutdown().await;
}

async fn lists_add_copy_move_remove(kind: &str) {
    let db = Db::new(kind).await;
    let s = store_of(&db).await;
    let now = 1_700_000_000_000;
    for u in ["u1", "u2", "u3"] {
        s.add_to_list("Khách mới", u, now).await.unwrap();
    }
    s.add_to_list("Khách mới", "u1", now + 1).await.unwrap(); // twice: still once
    s.apply_list_changes(
        &[ListChange::Create {
            list: "Khách mới".into(),
            description: Some("sign-ups".into()),
        }],
        now,
    )
    .await
    .unwrap();
    let members = |list: &'static str| {
        let s = s.clone();
        async move {
            s.list_members(list, None, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.user_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(members("Khách mới").await, ["u1", "u2", "u3"]);

    // Copy the whole list: the source keeps its members.
    s.copy_list("Khách mới", "B", None, now).await.unwrap();
    assert_eq!(members("B").await, ["u1", "u2", "u3"]);
    assert_eq!(members("Khách mới").await, ["u1", "u2", "u3"]);
    // Move one contact: gone from the source, in the target.
    s.move_list("Khách mới", "C", Some("u1"), now)
        .await
        .unwrap();
    assert_eq!(members("Khách mới").await, ["u2", "u3"]);
    assert_eq!(members("C").await, ["u1"]);
    // Remove one.
    s.remove_from_list("Khách mới", "u2", now).await.unwrap();
    assert_eq!(members("Khách mới").await, ["u3"]);
    assert_eq!(s.lists_of_contact("u1").await.unwrap(), ["B", "C"]);
    assert_eq!(s.lists_of_contact("u3").await.unwrap(), ["B", "Khách mới"]);

    // Paging by user id.
    let page = s.list_members("B", None, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    let rest = s
        .list_members("B", Some(&page[1].user_id), 2)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].user_id, "u3");
    assert_eq!(page[0].added_at, now);

    // Move everyone; copying or moving a list onto itself changes nothing.
    s.move_list("B", "D", None, now).await.unwrap();
    assert!(members("B").await.is_empty());
    assert_eq!(members("D").await, ["u1", "u2", "u3"]);
    s.move_list("D", "D", None, now).await.unwrap();
    s.copy_list("D", "D", Some("u9"), now).await.unwrap();
    assert_eq!(members("D").await, ["u1", "u2", "u3"]);

    let lists = s.contact_lists().await.unwrap();
    let summary: Vec<(&str, i64)> = lists.iter().map(|l| (l.name.as_str(), l.members)).collect();
    assert_eq!(summary, [("B", 0), ("C", 1), ("D", 3), ("Khách mới", 1)]);
    let k = lists.iter().find(|l| l.name == "Khách mới").unwrap();
    assert_eq!(k.description.as_deref(), Some("sign-ups"));
    assert!(s.add_to_list("  ", "u1", now).await.is_err());
}

async fn list_effects_commit_with_their_event(kind: &str) {
    let db = Db::new(kind).await;
    let s = store_of(&db).await;
    let now = 1_700_000_000_000;
    let ev = |key: &str, user: &str| NewInboxEvent {
        dedupe_key: key.into(),
        event_name: "zaloflow.form_submitted".into(),
        user_id: user.into(),
        priority: 0,
        body: "{}".into(),
        event_ts: Some(now),
        received_at: now,
    };
    s.insert_inbox(&[ev("k1", "u1"), ev("k2", "u2")])
        .await
        .unwrap();
    let claimed = s.claim_inbox("w", now, 60_000, 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let done: Vec<Completion> = claimed
        .iter()
        .map(|row| Completion {
            inbox_id: row.id,
            effects: Effects {
                lists: vec![
                    ListChange::Add {
                        list: "A".into(),
                        user_id: row.user_id.clone(),
                    },
                    ListChange::Move {
                        from: "A".into(),
                        to: "B".into(),
                        user_id: Some("u1".into()),
                    },
                ],
                ..Default::default()
            },
        })
        .collect();
    s.complete_inbox("w", &done, now).await.unwrap();
    assert_eq!(s.inbox_stats().await.unwrap().done, 2);
    assert_eq!(s.lists_of_contact("u1").await.unwrap(), ["B"]);
    assert_eq!(s.lists_of_contact("u2").await.unwrap(), ["A"]);

    // A lost lease applies nothing.
    s.insert_inbox(&[ev("k3", "u3")]).await.unwrap();
    let claimed = s.claim_inbox("w", now, 60_000, 10).await.unwrap();
    let c = Completion {
        inbox_id: claimed[0].id,
        effects: Effects {
            lists: vec![ListChange::Add {
                list: "A".into(),
                user_id: "u3".into(),
            }],
            ..Default::default()
        },
    };
    assert!(s.complete_inbox("someone-else", &[c], now).await.is_err());
    assert!(s.lists_of_contact("u3").await.unwrap().is_empty());
}

async fn webhook_refuses_internal_event_names(kind: &str) {
    let db = Db::new(kind).await;
    let app = TestApp::spawn(forms_config(db.url(), &[])).await;
    let store = store_of(&db).await;
    for name in [
        "zaloflow.form_submitted",
        "zaloflow.email_clicked",
        "ZaloFlow.email_opened",
    ] {
        // Correctly signed, so only the name is wrong.
        let body = json!({
            "app_id": APP_ID, "event_name": name, "timestamp": "1700000000000",
            "data": {"contact_id": "u1", "job_id": 1, "url": "https://evil.example/"}
        })
        .to_string();
        let r = app.post_webhook(&body).await;
        assert_eq!(r.status(), 400, "{name}");
    }
    let st = store.inbox_stats().await.unwrap();
    assert_eq!(st.pending + st.done + st.failed, 0);
    // An ordinary event still goes through.
    let r = app.post_webhook(&text_event("u1", "m1", "hi")).await;
    assert_eq!(r.status(), 200);
    app.shutdown().await;
}

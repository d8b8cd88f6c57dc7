//! Contacts and their lists: import, lookups, searches, scans, form registrations.

use zaloflow::store::{ContactChange, ContactScan, ContactSearch, ListChange};

use super::open;

both!(
    contacts_are_found_by_key_search_and_scan,
    lists_take_adds_copies_and_moves,
    form_registrations_count_and_undo,
);

fn contact(id: &str, at: i64) -> ContactChange {
    ContactChange {
        user_id: id.into(),
        seen_at: at,
        ..Default::default()
    }
}

/// u1 Anh (follows, vip, city Hanoi, active at 1000), u2 Binh (follows, active at 2000),
/// u3 Chi (unfollowed, city Hue, active at 3000).
async fn three(s: &zaloflow::store::DynStore) {
    let mut u1 = contact("u1", 10);
    u1.display_name = Some("Anh".into());
    u1.phone = Some("84901000001".into());
    u1.email = Some("Anh@Example.vn".into());
    u1.follows = Some(true);
    u1.interaction_at = Some(1000);
    u1.tags_add = vec!["vip".into()];
    u1.fields_set = vec![("city".into(), "Hanoi".into())];
    let mut u2 = contact("u2", 20);
    u2.display_name = Some("Binh".into());
    u2.follows = Some(true);
    u2.interaction_at = Some(2000);
    let mut u3 = contact("u3", 30);
    u3.display_name = Some("Chi".into());
    u3.follows = Some(false);
    u3.interaction_at = Some(3000);
    u3.fields_set = vec![
        ("city".into(), "Hue".into()),
        ("plan".into(), "gold".into()),
    ];
    s.import_contacts(
        &[u1, u2, u3],
        &[ListChange::Add {
            list: "buyers".into(),
            user_id: "u2".into(),
        }],
        500,
    )
    .await
    .unwrap();
}

async fn contacts_are_found_by_key_search_and_scan(kind: &str) {
    let (_db, s) = open(kind).await;
    three(&s).await;
    let u1 = s.get_contact("u1").await.unwrap().unwrap();
    assert_eq!(u1.display_name.as_deref(), Some("Anh"));
    assert!(u1.tags.contains("vip"));

    let keys = s
        .find_contact_keys(
            &["84901000001".into(), "84999".into()],
            &["anh@example.vn".into()],
        )
        .await
        .unwrap();
    assert_eq!(
        keys.by_phone.get("84901000001").map(String::as_str),
        Some("u1")
    );
    assert_eq!(keys.by_phone.len(), 1);
    assert_eq!(
        keys.by_email.get("anh@example.vn").map(String::as_str),
        Some("u1")
    );
    let mut ids = s
        .existing_contact_ids(&["u3".into(), "u9".into(), "u1".into()])
        .await
        .unwrap();
    ids.sort();
    assert_eq!(ids, ["u1", "u3"]);

    assert_eq!(s.contact_field_names().await.unwrap(), ["city", "plan"]);
    assert_eq!(s.users_with_tag("vip").await.unwrap(), ["u1"]);
    assert!(s.users_with_tag("nobody").await.unwrap().is_empty());
    assert_eq!(
        s.contacts_with_field_like("city", &["Ha%".into()])
            .await
            .unwrap(),
        ["u1"]
    );
    let mut both = s
        .contacts_with_field_like("city", &["Ha%".into(), "%ue".into()])
        .await
        .unwrap();
    both.sort();
    assert_eq!(both, ["u1", "u3"]);
    let ups = s.field_updates(&["city".into()], 0, 10_000).await.unwrap();
    let mut cities: Vec<(&str, &str)> = ups
        .iter()
        .map(|f| (f.user_id.as_str(), f.value.as_str()))
        .collect();
    cities.sort();
    assert_eq!(cities, [("u1", "Hanoi"), ("u3", "Hue")]);
    assert!(s
        .field_updates(&["city".into()], 0, 500)
        .await
        .unwrap()
        .is_empty());

    let search = |name: Option<&str>, tag: Option<&str>, after: Option<&str>| ContactSearch {
        name: name.map(Into::into),
        phone: None,
        tag: tag.map(Into::into),
        after: after.map(Into::into),
        limit: 10,
    };
    assert_eq!(
        s.search_contacts(&search(Some("an"), None, None))
            .await
            .unwrap(),
        ["u1"]
    );
    assert_eq!(
        s.search_contacts(&search(None, Some("vip"), None))
            .await
            .unwrap(),
        ["u1"]
    );
    assert_eq!(
        s.search_contacts(&search(None, None, Some("u1")))
            .await
            .unwrap(),
        ["u2", "u3"]
    );
    let by_phone = ContactSearch {
        phone: Some("84901000001".into()),
        ..search(None, None, None)
    };
    assert_eq!(s.search_contacts(&by_phone).await.unwrap(), ["u1"]);

    assert_eq!(
        s.contact_ids_page(None, None, 10).await.unwrap(),
        ["u1", "u2", "u3"]
    );
    assert_eq!(
        s.contact_ids_page(None, Some("u1"), 1).await.unwrap(),
        ["u2"]
    );
    assert_eq!(
        s.contact_ids_page(Some("buyers"), None, 10).await.unwrap(),
        ["u2"]
    );

    assert_eq!(
        s.scan_contact_ids(&ContactScan::Followers, None, 10)
            .await
            .unwrap(),
        ["u1", "u2"]
    );
    assert_eq!(
        s.scan_contact_ids(&ContactScan::Followers, Some("u1"), 10)
            .await
            .unwrap(),
        ["u2"]
    );
    assert_eq!(
        s.scan_contact_ids(&ContactScan::Tagged("vip".into()), None, 10)
            .await
            .unwrap(),
        ["u1"]
    );
    assert_eq!(
        s.scan_contact_ids(&ContactScan::InList("buyers".into()), None, 10)
            .await
            .unwrap(),
        ["u2"]
    );

    let mut quiet = s.inactive_contact_ids(0, 2500, None, None).await.unwrap();
    quiet.sort();
    assert_eq!(quiet, ["u1", "u2"]);
    assert_eq!(
        s.inactive_contact_ids(1500, 4000, Some(true), None)
            .await
            .unwrap(),
        ["u2"]
    );
    assert!(
        s.inactive_contact_ids(0, 4000, Some(false), None)
            .await
            .unwrap()
            == ["u3"]
    );
}

async fn lists_take_adds_copies_and_moves(kind: &str) {
    let (_db, s) = open(kind).await;
    three(&s).await;
    s.apply_list_changes(
        &[ListChange::Create {
            list: "news".into(),
            description: Some("the newsletter".into()),
        }],
        600,
    )
    .await
    .unwrap();
    s.add_to_list("news", "u1", 700).await.unwrap();
    s.add_to_list("news", "u3", 710).await.unwrap();
    s.remove_from_list("news", "u3", 720).await.unwrap();
    let members = s.list_members("news", None, 10).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user_id.as_str(), m.added_at))
            .collect::<Vec<_>>(),
        [("u1", 700)]
    );
    s.copy_list("buyers", "news", None, 800).await.unwrap();
    let names: Vec<String> = s
        .list_members("news", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(names, ["u1", "u2"]);
    let after: Vec<String> = s
        .list_members("news", Some("u1"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    assert_eq!(after, ["u2"]);
    s.move_list("news", "vip", Some("u1"), 900).await.unwrap();
    assert_eq!(s.lists_of_contact("u1").await.unwrap(), ["vip"]);
    assert_eq!(s.lists_of_contact("u2").await.unwrap(), ["buyers", "news"]);
    let lists = s.contact_lists().await.unwrap();
    let summary: Vec<(&str, Option<&str>, i64)> = lists
        .iter()
        .map(|l| (l.name.as_str(), l.description.as_deref(), l.members))
        .collect();
    assert_eq!(
        summary,
        [
            ("buyers", None, 1),
            ("news", Some("the newsletter"), 1),
            ("vip", None, 1)
        ]
    );
    let joins = s.list_joins("news", 750, 850).await.unwrap();
    assert_eq!(
        joins.iter().map(|m| m.user_id.as_str()).collect::<Vec<_>>(),
        ["u2"]
    );
    assert!(s.list_joins("news", 0, 700).await.unwrap().is_empty());
}

async fn form_registrations_count_and_undo(kind: &str) {
    let (_db, s) = open(kind).await;
    assert_eq!(s.form_submission_count("f", "c1").await.unwrap(), 0);
    assert_eq!(s.record_form_submission("f", "c1", 1).await.unwrap(), 1);
    assert_eq!(s.record_form_submission("f", "c1", 2).await.unwrap(), 2);
    assert_eq!(s.record_form_submission("g", "c1", 2).await.unwrap(), 1);
    assert_eq!(s.form_submission_count("f", "c1").await.unwrap(), 2);
    s.undo_form_submission("f", "c1").await.unwrap();
    assert_eq!(s.form_submission_count("f", "c1").await.unwrap(), 1);
    s.undo_form_submission("f", "c1").await.unwrap();
    assert_eq!(s.form_submission_count("f", "c1").await.unwrap(), 0);
    assert_eq!(s.form_submission_count("g", "c1").await.unwrap(), 1);
}

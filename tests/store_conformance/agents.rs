//! Agents' accounts and board sessions (issue 30): every method of the `Agents` area.

use super::open;

both!(
    agents_are_created_once_listed_and_read,
    a_session_counts_until_it_expires,
    disabling_ends_sessions_at_once_and_enabling_lets_sign_in_again,
    revoking_a_new_password_and_signing_out_end_sessions,
    expired_sessions_are_purged,
);

const T0: i64 = 1_800_000_000_000;
const HOUR: i64 = 3_600_000;

async fn agents_are_created_once_listed_and_read(kind: &str) {
    let (_db, s) = open(kind).await;
    assert!(s.list_agents(T0).await.unwrap().is_empty());
    let minh = s.create_agent("Minh", "$argon2id$minh", T0).await.unwrap();
    let minh = minh.expect("a new name is created");
    assert_eq!(minh.name, "Minh");
    assert_eq!(minh.created_at, T0);
    assert_eq!((minh.disabled_at, minh.sessions), (None, 0));
    // The name is taken: nothing changes.
    assert_eq!(
        s.create_agent("Minh", "$argon2id$other", T0 + 1)
            .await
            .unwrap(),
        None
    );
    let lan = s
        .create_agent("Nguyễn Thị Lan", "$argon2id$lan", T0 + 2)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(lan.id, minh.id);
    let names: Vec<String> = s
        .list_agents(T0)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["Minh", "Nguyễn Thị Lan"]);
    assert_eq!(s.get_agent("Minh", T0).await.unwrap(), Some(minh.clone()));
    assert_eq!(
        s.get_agent("minh", T0).await.unwrap(),
        None,
        "names are exact"
    );
    let creds = s.agent_credentials("Minh").await.unwrap().unwrap();
    assert_eq!(
        (creds.id, creds.name.as_str(), creds.password_hash.as_str()),
        (minh.id, "Minh", "$argon2id$minh")
    );
    assert_eq!(creds.disabled_at, None);
    assert!(s.agent_credentials("Nobody").await.unwrap().is_none());
}

async fn a_session_counts_until_it_expires(kind: &str) {
    let (_db, s) = open(kind).await;
    let minh = s.create_agent("Minh", "h", T0).await.unwrap().unwrap();
    s.start_session(minh.id, "sha-1", T0, T0 + 12 * HOUR)
        .await
        .unwrap();
    let live = s.session_agent("sha-1", T0 + HOUR).await.unwrap().unwrap();
    assert_eq!(
        (live.agent_id, live.name.as_str(), live.expires_at),
        (minh.id, "Minh", T0 + 12 * HOUR)
    );
    assert_eq!(s.get_agent("Minh", T0).await.unwrap().unwrap().sessions, 1);
    assert!(s.session_agent("sha-2", T0).await.unwrap().is_none());
    // At its expiry it no longer counts, nor in the list.
    assert!(s
        .session_agent("sha-1", T0 + 12 * HOUR)
        .await
        .unwrap()
        .is_none());
    assert_eq!(s.list_agents(T0 + 12 * HOUR).await.unwrap()[0].sessions, 0);
}

async fn disabling_ends_sessions_at_once_and_enabling_lets_sign_in_again(kind: &str) {
    let (_db, s) = open(kind).await;
    let minh = s.create_agent("Minh", "h", T0).await.unwrap().unwrap();
    let lan = s.create_agent("Lan", "h", T0).await.unwrap().unwrap();
    for (id, sha) in [(minh.id, "m1"), (minh.id, "m2"), (lan.id, "l1")] {
        s.start_session(id, sha, T0, T0 + HOUR).await.unwrap();
    }
    assert!(s.disable_agent("Minh", T0 + 1).await.unwrap());
    assert!(!s.disable_agent("Nobody", T0 + 1).await.unwrap());
    assert!(s.session_agent("m1", T0 + 2).await.unwrap().is_none());
    assert!(s.session_agent("m2", T0 + 2).await.unwrap().is_none());
    assert!(s.session_agent("l1", T0 + 2).await.unwrap().is_some());
    let m = s.get_agent("Minh", T0 + 2).await.unwrap().unwrap();
    assert_eq!((m.disabled_at, m.sessions), (Some(T0 + 1), 0));
    // Disabling again keeps the first time.
    assert!(s.disable_agent("Minh", T0 + 5).await.unwrap());
    let creds = s.agent_credentials("Minh").await.unwrap().unwrap();
    assert_eq!(creds.disabled_at, Some(T0 + 1));
    // A session started while disabled (a race with sign-in) does not count either.
    s.start_session(minh.id, "m3", T0 + 6, T0 + HOUR)
        .await
        .unwrap();
    assert!(s.session_agent("m3", T0 + 7).await.unwrap().is_none());
    assert!(s.enable_agent("Minh", T0 + 8).await.unwrap());
    assert!(!s.enable_agent("Nobody", T0 + 8).await.unwrap());
    assert_eq!(
        s.agent_credentials("Minh")
            .await
            .unwrap()
            .unwrap()
            .disabled_at,
        None
    );
    s.start_session(minh.id, "m4", T0 + 9, T0 + HOUR)
        .await
        .unwrap();
    assert!(s.session_agent("m4", T0 + 10).await.unwrap().is_some());
}

async fn revoking_a_new_password_and_signing_out_end_sessions(kind: &str) {
    let (_db, s) = open(kind).await;
    let minh = s.create_agent("Minh", "old", T0).await.unwrap().unwrap();
    let lan = s.create_agent("Lan", "h", T0).await.unwrap().unwrap();
    for (id, sha) in [(minh.id, "m1"), (minh.id, "m2"), (lan.id, "l1")] {
        s.start_session(id, sha, T0, T0 + HOUR).await.unwrap();
    }
    assert_eq!(s.revoke_agent_sessions("Minh").await.unwrap(), Some(2));
    assert_eq!(s.revoke_agent_sessions("Minh").await.unwrap(), Some(0));
    assert_eq!(s.revoke_agent_sessions("Nobody").await.unwrap(), None);
    assert!(s.session_agent("m1", T0 + 1).await.unwrap().is_none());
    assert!(s.session_agent("l1", T0 + 1).await.unwrap().is_some());

    s.start_session(minh.id, "m3", T0, T0 + HOUR).await.unwrap();
    assert!(s.set_agent_password("Minh", "new", T0 + 2).await.unwrap());
    assert!(!s.set_agent_password("Nobody", "new", T0 + 2).await.unwrap());
    assert_eq!(
        s.agent_credentials("Minh")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new"
    );
    assert!(s.session_agent("m3", T0 + 3).await.unwrap().is_none());

    assert!(s.end_session("l1").await.unwrap());
    assert!(!s.end_session("l1").await.unwrap());
    assert!(s.session_agent("l1", T0 + 3).await.unwrap().is_none());
}

async fn expired_sessions_are_purged(kind: &str) {
    let (_db, s) = open(kind).await;
    let minh = s.create_agent("Minh", "h", T0).await.unwrap().unwrap();
    s.start_session(minh.id, "old", T0, T0 + HOUR)
        .await
        .unwrap();
    s.start_session(minh.id, "new", T0, T0 + 3 * HOUR)
        .await
        .unwrap();
    assert_eq!(s.purge_sessions(T0 + HOUR).await.unwrap(), 1);
    assert_eq!(s.purge_sessions(T0 + HOUR).await.unwrap(), 0);
    assert!(s.session_agent("new", T0 + HOUR).await.unwrap().is_some());
    // Its row is gone, not only out of date: ending it finds nothing.
    assert!(!s.end_session("old").await.unwrap());
}

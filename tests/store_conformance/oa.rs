//! The OA's connection, tokens, OAuth flows, stored secrets; the store's own methods.

use zaloflow::store::{Backend, NewJob, OauthState};
use zaloflow_core::token::TokenPair;

use super::open;

both!(
    the_store_says_what_it_is_and_answers,
    connecting_revoking_and_refreshing_the_oa,
    an_oauth_state_is_taken_once,
    the_first_secret_wins,
);

async fn the_store_says_what_it_is_and_answers(kind: &str) {
    let (_db, s) = open(kind).await;
    let want = if kind == "sqlite" {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(s.backend(), want);
    s.ping().await.unwrap();
}

fn pair(access: &str, expires: i64) -> TokenPair {
    TokenPair {
        access_token: access.into(),
        refresh_token: format!("r-{access}"),
        expires_at_ms: expires,
    }
}

fn notice(key: &str) -> NewJob {
    NewJob {
        channel: "chat".into(),
        user_id: String::new(),
        payload: "{}".into(),
        priority: 0,
        run_at: 10,
        rule_id: None,
        source: "oa".into(),
        dedupe_key: Some(key.into()),
        variant: None,
        skip: None,
    }
}

async fn connecting_revoking_and_refreshing_the_oa(kind: &str) {
    let (_db, s) = open(kind).await;
    assert_eq!(s.oa_connection().await.unwrap().oa_id, None, "nothing yet");
    assert!(s.load_tokens().await.unwrap().is_none());
    s.save_connected_tokens(&pair("a1", 5_000), "oa-1", 100)
        .await
        .unwrap();
    let c = s.oa_connection().await.unwrap();
    assert_eq!(
        (c.oa_id.as_deref(), c.connected_at, c.revoked_at),
        (Some("oa-1"), Some(100), None)
    );
    assert_eq!(s.load_tokens().await.unwrap(), Some(pair("a1", 5_000)));
    s.save_tokens(&pair("a2", 9_000), 200).await.unwrap();
    assert_eq!(s.load_tokens().await.unwrap(), Some(pair("a2", 9_000)));

    s.record_token_refresh(300, Some("invalid refresh token"))
        .await
        .unwrap();
    let c = s.oa_connection().await.unwrap();
    assert_eq!(
        (c.last_refresh_at, c.last_refresh_error.as_deref()),
        (Some(300), Some("invalid refresh token"))
    );
    s.record_token_refresh(400, None).await.unwrap();
    let c = s.oa_connection().await.unwrap();
    assert_eq!((c.last_refresh_at, c.last_refresh_error), (Some(400), None));

    // A revocation seen before the connection does not count.
    assert!(!s.revoke_oa(50, "old", &[notice("n0")], 500).await.unwrap());
    assert!(s
        .revoke_oa(150, "revoked", &[notice("n1")], 500)
        .await
        .unwrap());
    assert!(
        !s.revoke_oa(160, "again", &[notice("n2")], 600)
            .await
            .unwrap(),
        "already revoked"
    );
    let c = s.oa_connection().await.unwrap();
    assert_eq!(
        (c.revoked_at, c.revoked_reason.as_deref()),
        (Some(500), Some("revoked"))
    );
    let jobs = s.list_jobs(None, 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "the notice goes with the change only");
    assert_eq!(jobs[0].source, "oa");
    // Connecting again clears the revocation.
    s.save_connected_tokens(&pair("a3", 9_500), "oa-1", 700)
        .await
        .unwrap();
    let c = s.oa_connection().await.unwrap();
    assert_eq!(
        (c.connected_at, c.revoked_at, c.revoked_reason),
        (Some(700), None, None)
    );
}

async fn an_oauth_state_is_taken_once(kind: &str) {
    let (_db, s) = open(kind).await;
    let st = |h: &str, exp: i64| OauthState {
        state_hash: h.into(),
        session_hash: format!("sess-{h}"),
        code_verifier: format!("cv-{h}"),
        expires_at: exp,
    };
    s.put_oauth_state(&st("old", 50), 10).await.unwrap();
    s.put_oauth_state(&st("s1", 1_000), 100).await.unwrap();
    assert!(
        s.take_oauth_state("old").await.unwrap().is_none(),
        "expired states go when another is put"
    );
    let got = s.take_oauth_state("s1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.session_hash.as_str(),
            got.code_verifier.as_str(),
            got.expires_at
        ),
        ("sess-s1", "cv-s1", 1_000)
    );
    assert!(
        s.take_oauth_state("s1").await.unwrap().is_none(),
        "used once"
    );
}

async fn the_first_secret_wins(kind: &str) {
    let (_db, s) = open(kind).await;
    assert_eq!(
        s.get_or_create_secret("k", "first", 1).await.unwrap(),
        "first"
    );
    assert_eq!(
        s.get_or_create_secret("k", "second", 2).await.unwrap(),
        "first"
    );
    assert_eq!(
        s.get_or_create_secret("j", "other", 3).await.unwrap(),
        "other"
    );
}

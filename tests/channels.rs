//! The outbound channels over real HTTP/SMTP against the in-process fakes (and a real SMTP
//! server, aiosmtpd). Tests wait on conditions, never on fixed sleeps.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use zaloflow::channels::{Channel, Channels, ChannelsConfig, Payload, SendError, ZaloKind};
use zaloflow::fakes::http_sink::{HttpSink, SinkResponse};
use zaloflow::fakes::zalo::{
    Failure, FakeUser, FakeZalo, FakeZaloOptions, CS_PATH, OAUTH_PATH, PROMOTION_PATH,
    TRANSACTION_PATH, ZNS_PATH,
};
use zaloflow::zalo::token::{MemoryTokenStore, TokenPair, TokenStore};

const WAIT: Duration = Duration::from_secs(10);

fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

fn zalo_config(fake: &FakeZalo, opts: &FakeZaloOptions) -> ChannelsConfig {
    ChannelsConfig {
        zalo_api_base: fake.base_url().to_string(),
        zalo_oauth_base: fake.base_url().to_string(),
        zalo_zns_base: fake.base_url().to_string(),
        app_id: Some(opts.app_id.clone()),
        app_secret: Some(opts.app_secret.clone()),
        access_token: Some(opts.access_token.clone()),
        refresh_token: Some(opts.refresh_token.clone()),
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

struct ZaloSetup {
    fake: FakeZalo,
    opts: FakeZaloOptions,
    store: Arc<MemoryTokenStore>,
    channels: Arc<Channels>,
}

async fn zalo_setup(opts: FakeZaloOptions) -> ZaloSetup {
    let fake = FakeZalo::start(opts.clone())
        .await
        .expect("fake zalo starts");
    fake.add_user(FakeUser::new("1001", "Lan", days_ago(1)));
    let store = Arc::new(MemoryTokenStore::new(None));
    let channels = Channels::new(&zalo_config(&fake, &opts), store.clone()).expect("channels");
    ZaloSetup {
        fake,
        opts,
        store,
        channels: Arc::new(channels),
    }
}

fn cs_text(user_id: &str, text: &str) -> Payload {
    Payload::Zalo {
        user_id: user_id.into(),
        kind: ZaloKind::Cs,
        text: Some(text.into()),
        attachment: None,
    }
}

#[tokio::test]
async fn cs_text_is_delivered() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    let delivered = s
        .channels
        .send(&cs_text("1001", "Chào buổi sáng, Lan!"))
        .await
        .expect("delivered");
    let messages = s.fake.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].kind, "cs");
    assert_eq!(messages[0].user_id.as_deref(), Some("1001"));
    assert_eq!(messages[0].text(), Some("Chào buổi sáng, Lan!"));
    assert_eq!(
        delivered.provider_id.as_deref(),
        Some(messages[0].message_id.as_str())
    );
    let arrival = &s.fake.arrivals_on(CS_PATH)[0];
    assert_eq!(arrival.access_token.as_deref(), Some("fake-access-0"));
    assert_eq!(
        arrival.body,
        json!({"recipient": {"user_id": "1001"}, "message": {"text": "Chào buổi sáng, Lan!"}})
    );
    assert_eq!(s.fake.refresh_count(), 0);
}

/// Today 10:00 in Hồ Chí Minh City: promotions go out between 07:00 and 22:00 only.
/// The latest 10:00 in Vietnam at or before now: a day later is still within the fake's
/// access-token life (25 h from now), whatever the hour the suite runs at.
fn daytime() -> DateTime<Utc> {
    use chrono::TimeZone;
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let now = Utc::now();
    let day = now.with_timezone(&tz).date_naive();
    let ten = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(10, 0, 0).unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    match ten(day) {
        t if t <= now => t,
        _ => ten(day.pred_opt().unwrap()),
    }
}

#[tokio::test]
async fn attachments_promotions_and_transactions_use_their_endpoints() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.set_now(Some(daytime()));
    // silent for 20 days: cs is closed, promotion/transaction are not
    s.fake.add_user(FakeUser::new("2002", "Minh", days_ago(20)));
    let attachment = json!({"type": "template", "payload": {"template_type": "media",
        "elements": [{"media_type": "image", "url": "https://img.example/a.png"}]}});
    let p = Payload::Zalo {
        user_id: "2002".into(),
        kind: ZaloKind::Transaction,
        text: None,
        attachment: Some(attachment.clone()),
    };
    s.channels.send(&p).await.expect("delivered");
    let arrivals = s.fake.arrivals_on(TRANSACTION_PATH);
    assert_eq!(arrivals.len(), 1);
    assert_eq!(
        arrivals[0].body["message"],
        json!({ "attachment": attachment })
    );
    // A promotion is sent as Zalo's promotion template, whatever the job held: the text's
    // first sentence is the header, the image the banner.
    let promotion = Payload::Zalo {
        user_id: "2002".into(),
        kind: ZaloKind::Promotion,
        text: Some("Ưu đãi cuối tuần! Giảm 20% mọi đơn.".into()),
        attachment: Some(attachment.clone()),
    };
    s.channels.send(&promotion).await.expect("delivered");
    let arrivals = s.fake.arrivals_on(PROMOTION_PATH);
    assert_eq!(arrivals.len(), 1);
    assert_eq!(
        arrivals[0].body["message"]["attachment"]["payload"],
        json!({"template_type": "promotion", "language": "VI", "buttons": [], "elements": [
            {"type": "banner", "image_url": "https://img.example/a.png"},
            {"type": "header", "content": "Ưu đãi cuối tuần!"},
            {"type": "text", "align": "left", "content": "Giảm 20% mọi đơn."},
        ]})
    );
    assert!(arrivals[0].body["message"].get("text").is_none());
    let kinds: Vec<String> = s.fake.messages().into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds, ["transaction", "promotion"]);
    let empty = Payload::Zalo {
        user_id: "2002".into(),
        kind: ZaloKind::Cs,
        text: Some("  ".into()),
        attachment: None,
    };
    assert!(matches!(
        s.channels.send(&empty).await,
        Err(SendError::Permanent { .. })
    ));
    assert!(s.fake.arrivals_on(CS_PATH).is_empty(), "nothing sent");
}

/// The fake refuses promotions as PROTOCOL.md §5 says Zalo does: a bare text (-201), a
/// template outside 07:00–22:00 (-234), a second one to the same user the same day (-211).
#[tokio::test]
async fn the_fake_refuses_promotions_as_zalo_does() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.add_user(FakeUser::new("2002", "Minh", days_ago(20)));
    let post = |body: Value| {
        let url = format!("{}{PROMOTION_PATH}", s.fake.base_url());
        let token = s.opts.access_token.clone();
        async move {
            let r: Value = reqwest::Client::new()
                .post(url)
                .header("access_token", token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["error"].as_i64().unwrap()
        }
    };
    let to = json!({"user_id": "2002"});
    let template = zaloflow_core::job::promotion_template("Ưu đãi! Giảm 10%.", None, vec![]);
    s.fake.set_now(Some(daytime()));
    assert_eq!(
        post(json!({"recipient": to, "message": {"text": "KM"}})).await,
        -201
    );
    let empty =
        json!({"type": "template", "payload": {"template_type": "promotion", "elements": []}});
    assert_eq!(
        post(json!({"recipient": to, "message": {"attachment": empty}})).await,
        -201
    );
    s.fake
        .set_now(Some(daytime() + chrono::Duration::hours(13))); // 23:00
    assert_eq!(
        post(json!({"recipient": to, "message": {"attachment": template}})).await,
        -234
    );
    s.fake.set_now(Some(daytime() - chrono::Duration::hours(4))); // 06:00
    assert_eq!(
        post(json!({"recipient": to, "message": {"attachment": template}})).await,
        -234
    );
    s.fake.set_now(Some(daytime()));
    assert_eq!(
        post(json!({"recipient": to, "message": {"attachment": template}})).await,
        0
    );
    assert_eq!(
        post(json!({"recipient": to, "message": {"attachment": template}})).await,
        -211
    );
    s.fake.set_now(Some(daytime() + chrono::Duration::days(1)));
    assert_eq!(
        post(json!({"recipient": to, "message": {"attachment": template}})).await,
        0
    );
    assert_eq!(s.fake.messages().len(), 2);
}

#[tokio::test]
async fn transient_zalo_codes_are_transient() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    for code in [-32, -100, -211, -218] {
        s.fake.fail_next_with_code(1, code);
        match s.channels.send(&cs_text("1001", "hi")).await {
            Err(SendError::Transient { code: c, .. }) => assert_eq!(c, Some(code)),
            other => panic!("{code}: {other:?}"),
        }
    }
    // and the next call goes through
    s.channels.send(&cs_text("1001", "hi")).await.unwrap();
}

#[tokio::test]
async fn permanent_zalo_codes_are_permanent() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    for code in [-201, -213, -217, -227, -230, -232, -240, -244] {
        s.fake.fail_next_with_code(1, code);
        match s.channels.send(&cs_text("1001", "hi")).await {
            Err(SendError::Permanent { code: c, .. }) => assert_eq!(c, Some(code)),
            other => panic!("{code}: {other:?}"),
        }
    }
    s.fake.fail_next_with_code(1, -234);
    let before = Utc::now();
    match s.channels.send(&cs_text("1001", "hi")).await {
        Err(SendError::NotBefore { code, at, .. }) => {
            assert_eq!(code, Some(-234));
            assert!(at > before && at <= before + chrono::Duration::hours(24));
            let local = at.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh);
            assert_eq!(local.format("%H:%M:%S").to_string(), "06:00:00");
        }
        other => panic!("{other:?}"),
    }
    assert!(s.fake.messages().is_empty());
}

#[tokio::test]
async fn zalo_http_500_is_transient() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.fail_next(1, Failure::Http(500));
    match s.channels.send(&cs_text("1001", "hi")).await {
        Err(SendError::Transient { code, .. }) => assert_eq!(code, Some(500)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn expired_token_is_refreshed_once_and_the_call_retried() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.expire_access_tokens();
    s.channels
        .send(&cs_text("1001", "hi"))
        .await
        .expect("delivered after one refresh");
    assert_eq!(s.fake.refresh_count(), 1);
    assert_eq!(s.channels.zalo_client().tokens().refresh_count(), 1);
    let calls = s.fake.arrivals_on(CS_PATH);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].error, -216);
    assert_eq!(calls[0].access_token.as_deref(), Some("fake-access-0"));
    assert_eq!(calls[1].error, 0);
    assert_eq!(calls[1].access_token.as_deref(), Some("fake-access-1"));
    // persisted: exactly the pair the fake issued
    let history = s.store.history();
    assert_eq!(history.len(), 1);
    let (access, refresh) = s.fake.current_tokens();
    assert_eq!(Some(history[0].access_token.clone()), access);
    assert_eq!(Some(history[0].refresh_token.clone()), refresh);
    assert!(history[0].expires_at_ms > Utc::now().timestamp_millis() + 80_000_000);
    // the OAuth call was made as PROTOCOL.md says
    let oauth = s.fake.arrivals_on(OAUTH_PATH);
    assert_eq!(
        oauth[0].body,
        json!({"app_id": s.opts.app_id, "grant_type": "refresh_token", "refresh_token": "fake-refresh-0"})
    );
    assert_eq!(oauth[0].error, 0);
}

#[tokio::test]
async fn a_token_still_rejected_after_the_refresh_is_not_refreshed_again() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.fail_next_with_code(2, -216);
    match s.channels.send(&cs_text("1001", "hi")).await {
        Err(SendError::Transient { code, .. }) => assert_eq!(code, Some(-216)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.fake.arrivals_on(CS_PATH).len(), 2, "one retry only");
    assert_eq!(s.fake.refresh_count(), 1, "one refresh only");
}

#[tokio::test]
async fn concurrent_rejections_cause_one_refresh() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.expire_access_tokens();
    // hold every answer a little so that all first attempts are in flight together
    s.fake.set_delay(Duration::from_millis(200));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let channels = s.channels.clone();
        tasks.spawn(async move { channels.send(&cs_text("1001", &format!("m{i}"))).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().expect("delivered");
    }
    assert_eq!(s.fake.refresh_count(), 1);
    assert_eq!(s.fake.arrivals_on(OAUTH_PATH).len(), 1);
    let calls = s.fake.arrivals_on(CS_PATH);
    assert_eq!(calls.iter().filter(|a| a.error == -216).count(), 12);
    assert_eq!(calls.iter().filter(|a| a.error == 0).count(), 12);
    assert_eq!(s.fake.messages().len(), 12);
}

#[tokio::test]
async fn two_instances_on_one_store_refresh_once() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    // a second "instance": its own token manager and cache, the same store
    let other = Arc::new(Channels::new(&zalo_config(&s.fake, &s.opts), s.store.clone()).unwrap());
    s.fake.expire_access_tokens();
    s.fake.set_delay(Duration::from_millis(200));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let channels = if i % 2 == 0 {
            s.channels.clone()
        } else {
            other.clone()
        };
        tasks.spawn(async move { channels.send(&cs_text("1001", &format!("m{i}"))).await });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().expect("delivered");
    }
    assert_eq!(s.fake.refresh_count(), 1);
    let refreshes = s.channels.zalo_client().tokens().refresh_count()
        + other.zalo_client().tokens().refresh_count();
    assert_eq!(refreshes, 1);
    assert_eq!(s.fake.messages().len(), 8);
}

#[tokio::test]
async fn refresh_tokens_are_single_use_and_the_client_never_reuses_one() {
    let opts = FakeZaloOptions::default();
    let fake = FakeZalo::start(opts.clone()).await.unwrap();
    // the fake refuses a second use
    let http = reqwest::Client::new();
    let refresh = |token: &str| {
        http.post(format!("{}{OAUTH_PATH}", fake.base_url()))
            .header("secret_key", &opts.app_secret)
            .form(&[
                ("app_id", opts.app_id.as_str()),
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
            ])
            .send()
    };
    let first: Value = refresh("fake-refresh-0")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        first["expires_in"],
        json!("90000"),
        "expires_in is a string"
    );
    let again: Value = refresh("fake-refresh-0")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(again["error"], json!(0));
    assert!(again.get("access_token").is_none());

    // the client: three refreshes, each with the refresh token the previous one answered
    let s = zalo_setup(opts).await;
    for _ in 0..3 {
        s.fake.expire_access_tokens();
        s.channels.send(&cs_text("1001", "hi")).await.unwrap();
    }
    let used: Vec<String> = s
        .fake
        .arrivals_on(OAUTH_PATH)
        .iter()
        .map(|a| a.body["refresh_token"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(used, ["fake-refresh-0", "fake-refresh-1", "fake-refresh-2"]);
    assert!(s.fake.arrivals_on(OAUTH_PATH).iter().all(|a| a.error == 0));
    assert_eq!(s.store.history().len(), 3);
}

#[tokio::test]
async fn a_refused_refresh_token_is_not_sent_again_and_leaks_nothing() {
    let opts = FakeZaloOptions::default();
    let fake = FakeZalo::start(opts.clone()).await.unwrap();
    fake.add_user(FakeUser::new("1001", "Lan", days_ago(1)));
    fake.expire_access_tokens();
    let cfg = ChannelsConfig {
        refresh_token: Some("S3CR3T-stale-refresh".into()),
        access_token: Some("S3CR3T-stale-access".into()),
        ..zalo_config(&fake, &opts)
    };
    let channels = Channels::new(&cfg, Arc::new(MemoryTokenStore::new(None))).unwrap();
    for _ in 0..3 {
        match channels.send(&cs_text("1001", "hi")).await {
            Err(e @ SendError::Transient { .. }) => {
                let shown = format!("{e} {e:?}");
                assert!(shown.contains("re-authorise"), "{shown}");
                assert!(!shown.contains("S3CR3T"), "{shown}");
                assert!(!shown.contains(&opts.app_secret), "{shown}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        fake.arrivals_on(OAUTH_PATH).len(),
        1,
        "refused token sent once"
    );
    assert!(fake.messages().is_empty());
}

#[tokio::test]
async fn refreshed_pair_is_persisted_before_use_and_wins_over_the_environment() {
    let s = zalo_setup(FakeZaloOptions::default()).await;

    // a persistence failure: the new pair must not be used at all
    s.store.fail_next_persist();
    s.fake.expire_access_tokens();
    assert!(matches!(
        s.channels.send(&cs_text("1001", "hi")).await,
        Err(SendError::Transient { .. })
    ));
    let (granted, _) = s.fake.current_tokens();
    let granted = granted.expect("the fake granted a pair");
    assert!(
        s.fake
            .arrivals()
            .iter()
            .all(|a| a.access_token.as_deref() != Some(granted.as_str())),
        "an unpersisted token was used"
    );

    // a healthy store: the second setup refreshes, persists, then uses
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.expire_access_tokens();
    s.channels.send(&cs_text("1001", "one")).await.unwrap();
    let persisted = s.store.load().await.unwrap().expect("persisted");
    assert_eq!(persisted.access_token, "fake-access-1");

    // a new process on the same store: the env's (dead) pair loses to the persisted one
    let before = s.fake.arrivals_on(CS_PATH).len();
    let again = Channels::new(&zalo_config(&s.fake, &s.opts), s.store.clone()).unwrap();
    again.send(&cs_text("1001", "two")).await.unwrap();
    assert_eq!(s.fake.refresh_count(), 1, "no second refresh");
    let calls = s.fake.arrivals_on(CS_PATH);
    assert_eq!(
        calls.len(),
        before + 1,
        "the env's dead token was tried first"
    );
    assert_eq!(calls[before].access_token.as_deref(), Some("fake-access-1"));
    assert_eq!(calls[before].error, 0);
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_call() {
    let opts = FakeZaloOptions::default();
    let fake = FakeZalo::start(opts.clone()).await.unwrap();
    fake.add_user(FakeUser::new("1001", "Lan", days_ago(1)));
    let soon = TokenPair {
        access_token: opts.access_token.clone(),
        refresh_token: opts.refresh_token.clone(),
        expires_at_ms: Utc::now().timestamp_millis() + 60_000,
    };
    let store = Arc::new(MemoryTokenStore::new(Some(soon)));
    let cfg = ChannelsConfig {
        access_token: None,
        refresh_token: None,
        ..zalo_config(&fake, &opts)
    };
    let channels = Channels::new(&cfg, store.clone()).unwrap();
    channels.send(&cs_text("1001", "hi")).await.unwrap();
    let paths: Vec<String> = fake.arrivals().into_iter().map(|a| a.path).collect();
    assert_eq!(paths, [OAUTH_PATH, CS_PATH]);
    assert!(fake.arrivals().iter().all(|a| a.error == 0), "no -216 seen");
    assert_eq!(store.history().len(), 1);

    // when that early refresh fails, the still-valid token is used all the same
    let (access, _) = fake.current_tokens();
    let refused = TokenPair {
        access_token: access.unwrap(),
        refresh_token: "not-a-refresh-token".into(),
        expires_at_ms: Utc::now().timestamp_millis() + 60_000,
    };
    let channels = Channels::new(&cfg, Arc::new(MemoryTokenStore::new(Some(refused)))).unwrap();
    channels.send(&cs_text("1001", "still fine")).await.unwrap();
    let oauth = fake.arrivals_on(OAUTH_PATH);
    assert_eq!(oauth.len(), 2);
    assert_ne!(oauth[1].error, 0);
    assert_eq!(fake.messages().len(), 2);
}

#[tokio::test]
async fn cs_window_non_followers_and_unknown_users() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.add_user(FakeUser::new("stale", "Hoa", days_ago(8)));
    s.fake
        .add_user(FakeUser::new("recent", "Tuan", days_ago(6)));
    s.fake.add_user(FakeUser::new("gone", "Nam", days_ago(1)));
    s.fake.set_follower("gone", false);
    match s.channels.send(&cs_text("stale", "hi")).await {
        Err(SendError::Permanent { code, .. }) => assert_eq!(code, Some(-230)),
        other => panic!("{other:?}"),
    }
    s.channels.send(&cs_text("recent", "hi")).await.unwrap();
    match s.channels.send(&cs_text("gone", "hi")).await {
        Err(SendError::Permanent { code, .. }) => assert_eq!(code, Some(-213)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        s.channels.send(&cs_text("nobody", "hi")).await,
        Err(SendError::Permanent {
            code: Some(-201),
            ..
        })
    ));
    // the fake's clock moves the window: 2 more days and "recent" is stale too
    s.fake.set_now(Some(Utc::now() + chrono::Duration::days(2)));
    assert!(matches!(
        s.channels.send(&cs_text("recent", "hi")).await,
        Err(SendError::Permanent {
            code: Some(-230),
            ..
        })
    ));
    let delivered: Vec<Option<String>> = s.fake.messages().into_iter().map(|m| m.user_id).collect();
    assert_eq!(delivered, [Some("recent".to_string())]);
}

#[tokio::test]
async fn rate_limits_answer_32_as_transient() {
    let opts = FakeZaloOptions {
        max_calls_per_minute: Some(3),
        ..Default::default()
    };
    let s = zalo_setup(opts).await;
    let mut results = Vec::new();
    for i in 0..5 {
        results.push(s.channels.send(&cs_text("1001", &format!("m{i}"))).await);
    }
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    for r in &results[3..] {
        match r {
            Err(SendError::Transient {
                code, retry_after, ..
            }) => {
                assert_eq!(*code, Some(-32));
                assert_eq!(*retry_after, Some(Duration::from_secs(60)));
            }
            other => panic!("{other:?}"),
        }
    }

    // per second: a burst over the limit is refused in part
    s.fake.set_rate_limits(Some(2), None);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let channels = s.channels.clone();
        tasks.spawn(async move { channels.send(&cs_text("1001", &format!("b{i}"))).await });
    }
    let mut limited = 0;
    while let Some(r) = tasks.join_next().await {
        if let Err(SendError::Transient {
            code: Some(-32), ..
        }) = r.unwrap()
        {
            limited += 1;
        }
    }
    assert!(
        limited >= 1,
        "a burst of 8 over a limit of 2/s was not limited"
    );
    assert!(s.fake.max_calls_in_one_second() >= 8);
}

#[tokio::test]
async fn a_slow_zalo_times_out_as_transient() {
    let opts = FakeZaloOptions::default();
    let fake = FakeZalo::start(opts.clone()).await.unwrap();
    fake.add_user(FakeUser::new("1001", "Lan", days_ago(1)));
    fake.set_delay(Duration::from_secs(5));
    let cfg = ChannelsConfig {
        timeout: Duration::from_millis(300),
        ..zalo_config(&fake, &opts)
    };
    let channels = Channels::new(&cfg, Arc::new(MemoryTokenStore::new(None))).unwrap();
    let started = Instant::now();
    match channels.send(&cs_text("1001", "hi")).await {
        Err(SendError::Transient { message, .. }) => {
            assert!(message.contains("timeout"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn zns_is_delivered_and_shares_the_refreshed_token() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    s.fake.expire_access_tokens();
    let p = Payload::Zns {
        phone: "0912 345 678".into(),
        template_id: "231456".into(),
        template_data: json!({"customer_name": "Lan", "order_code": "A-17"}),
        tracking_id: "job-42".into(),
        user_id: None,
        tag: None,
    };
    let delivered = s.channels.send(&p).await.expect("zns delivered");
    let messages = s.fake.messages();
    assert_eq!(messages[0].kind, "zns");
    assert_eq!(messages[0].phone.as_deref(), Some("84912345678"));
    assert_eq!(
        delivered.provider_id.as_deref(),
        Some(messages[0].message_id.as_str())
    );
    let call = s.fake.arrivals_on(ZNS_PATH).pop().unwrap();
    assert_eq!(
        call.body,
        json!({"phone": "84912345678", "template_id": "231456",
               "template_data": {"customer_name": "Lan", "order_code": "A-17"},
               "tracking_id": "job-42"})
    );
    // the OA client uses the token the ZNS call refreshed
    s.channels.send(&cs_text("1001", "hi")).await.unwrap();
    assert_eq!(s.fake.refresh_count(), 1);
    s.fake.fail_next_with_code(1, -201);
    assert!(matches!(
        s.channels.send(&p).await,
        Err(SendError::Permanent {
            code: Some(-201),
            ..
        })
    ));
    let bad_phone = Payload::Zns {
        phone: "12".into(),
        template_id: "231456".into(),
        template_data: json!({}),
        tracking_id: "job-43".into(),
        user_id: None,
        tag: None,
    };
    assert!(matches!(
        s.channels.send(&bad_phone).await,
        Err(SendError::Permanent { .. })
    ));
}

#[tokio::test]
async fn tags_user_detail_and_quota() {
    let s = zalo_setup(FakeZaloOptions::default()).await;
    let tag = |add: bool, tag: &str| Payload::ZaloTag {
        user_id: "1001".into(),
        tag: tag.into(),
        add,
    };
    s.channels.send(&tag(true, "new_user")).await.unwrap();
    s.channels.send(&tag(true, "vip_customer")).await.unwrap();
    s.channels.send(&tag(false, "new_user")).await.unwrap();
    assert_eq!(
        s.fake
            .user("1001")
            .unwrap()
            .tags
            .into_iter()
            .collect::<Vec<_>>(),
        ["vip_customer"]
    );
    let interacted = Utc::now() - chrono::Duration::days(3);
    s.fake.touch_user("1001", interacted);
    let detail = s.channels.zalo_client().user_detail("1001").await.unwrap();
    assert_eq!(detail.display_name.as_deref(), Some("Lan"));
    assert_eq!(detail.is_follower, Some(true));
    assert_eq!(detail.tags, ["vip_customer"]);
    assert_eq!(
        detail.last_interaction,
        Some(
            interacted
                .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
                .date_naive()
        )
    );
    let query = &s.fake.arrivals_on("/v3.0/oa/user/detail")[0];
    assert_eq!(query.method, "GET");
    assert_eq!(query.body, json!({"user_id": "1001"}));
    let quota = s.channels.zalo_client().quota().await.unwrap();
    assert!(quota.is_object());
    let unknown = s.channels.zalo_client().user_detail("nobody").await;
    assert_eq!(unknown.unwrap_err().code(), Some(-201));
}

fn sink_config(sink: &HttpSink) -> ChannelsConfig {
    ChannelsConfig {
        sms_url: Some(sink.url("/sms/send")),
        sms_headers: vec![
            ("Authorization".into(), "Bearer sms-key".into()),
            ("X-Account".into(), "shop-1".into()),
        ],
        chat_webhook_url: Some(sink.url("/chat/default")),
        chat_channels: BTreeMap::from([("vip".to_string(), sink.url("/chat/vip"))]),
        task_webhook_url: Some(sink.url("/tasks")),
        allow_private_urls: true, // the sink listens on 127.0.0.1
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn sink_channels(cfg: &ChannelsConfig) -> Channels {
    Channels::new(cfg, Arc::new(MemoryTokenStore::new(None))).unwrap()
}

#[tokio::test]
async fn sms_posts_json_with_the_configured_headers() {
    let sink = HttpSink::start().await.unwrap();
    let channels = sink_channels(&sink_config(&sink));
    let delivered = channels
        .send(&Payload::Sms {
            to: "+84912345678".into(),
            text: "Mã của bạn: 1234".into(),
        })
        .await
        .unwrap();
    assert_eq!(delivered.provider_id.as_deref(), Some("sink-1"));
    let requests = sink.wait_for_requests(1, WAIT).await;
    let r = &requests[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/sms/send"));
    assert_eq!(
        r.body,
        json!({"to": "+84912345678", "text": "Mã của bạn: 1234"})
    );
    assert_eq!(r.header("authorization"), Some("Bearer sms-key"));
    assert_eq!(r.header("x-account"), Some("shop-1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn chat_goes_to_the_named_or_default_channel() {
    let sink = HttpSink::start().await.unwrap();
    let channels = sink_channels(&sink_config(&sink));
    let chat = |channel: Option<&str>, text: &str| Payload::Chat {
        channel: channel.map(String::from),
        text: text.into(),
        data: json!({"user_id": "1001"}),
    };
    channels.send(&chat(None, "hello team")).await.unwrap();
    channels
        .send(&chat(Some("vip"), "VIP is waiting"))
        .await
        .unwrap();
    let requests = sink.wait_for_requests(2, WAIT).await;
    assert_eq!(requests[0].path, "/chat/default");
    assert_eq!(requests[0].body, json!({"text": "hello team"}));
    assert_eq!(requests[1].path, "/chat/vip");
    assert_eq!(requests[1].body, json!({"text": "VIP is waiting"}));
    // A name without a URL of its own goes to the default webhook (CONTRACT.md; issue 29).
    channels.send(&chat(Some("nope"), "x")).await.unwrap();
    let requests = sink.wait_for_requests(3, WAIT).await;
    assert_eq!(requests[2].path, "/chat/default");
}

#[tokio::test]
async fn chat_body_template_substitutes_text_and_channel() {
    let sink = HttpSink::start().await.unwrap();
    let cfg = ChannelsConfig {
        chat_body_template: Some(
            r#"{"chat_id": "-100200", "text": "[{{channel}}] {{text}}", "meta": {{data}}}"#.into(),
        ),
        ..sink_config(&sink)
    };
    let channels = sink_channels(&cfg);
    channels
        .send(&Payload::Chat {
            channel: Some("vip".into()),
            text: "Khách \"VIP\" hỏi:\nship khi nào?".into(),
            data: json!({"user_id": "1001"}),
        })
        .await
        .unwrap();
    let r = &sink.wait_for_requests(1, WAIT).await[0];
    assert_eq!(
        r.body,
        json!({"chat_id": "-100200", "text": "[vip] Khách \"VIP\" hỏi:\nship khi nào?",
               "meta": {"user_id": "1001"}})
    );
    let bad = ChannelsConfig {
        chat_body_template: Some(r#"{"text": {{text}}}"#.into()),
        ..sink_config(&sink)
    };
    let err = Channels::new(&bad, Arc::new(MemoryTokenStore::new(None))).unwrap_err();
    assert!(err.to_string().contains("chat body template"), "{err}");
}

#[tokio::test]
async fn task_posts_title_description_contact_due_at() {
    let sink = HttpSink::start().await.unwrap();
    let channels = sink_channels(&sink_config(&sink));
    channels
        .send(&Payload::Task {
            title: "Call back Lan".into(),
            description: "VIP asked about delivery".into(),
            contact: Some("1001".into()),
            due_at: Some("2024-05-01T10:00:00+07:00".into()),
        })
        .await
        .unwrap();
    let r = &sink.wait_for_requests(1, WAIT).await[0];
    assert_eq!(r.path, "/tasks");
    assert_eq!(
        r.body,
        json!({"title": "Call back Lan", "description": "VIP asked about delivery",
               "contact": "1001", "due_at": "2024-05-01T10:00:00+07:00"})
    );
}

#[tokio::test]
async fn webhook_statuses_are_sorted() {
    let sink = HttpSink::start().await.unwrap();
    let channels = sink_channels(&sink_config(&sink));
    let sms = Payload::Sms {
        to: "0912".into(),
        text: "t".into(),
    };
    sink.respond_next(1, SinkResponse::status(500, "boom"));
    sink.respond_next(
        1,
        SinkResponse::status(429, "slow down").with_header("Retry-After", "7"),
    );
    sink.respond_next(
        1,
        SinkResponse::status(503, "").with_header("Retry-After", "86400"),
    );
    sink.respond_next(1, SinkResponse::status(408, ""));
    sink.respond_next(1, SinkResponse::status(400, &"invalid number ".repeat(40)));
    sink.respond_next(1, SinkResponse::status(401, "bad key"));
    let mut results = Vec::new();
    for _ in 0..7 {
        results.push(channels.send(&sms).await);
    }
    assert!(
        matches!(&results[0], Err(SendError::Transient { code: Some(500), retry_after: None, message })
        if message.contains("boom"))
    );
    assert!(
        matches!(&results[1], Err(SendError::Transient { code: Some(429), retry_after: Some(d), .. })
        if *d == Duration::from_secs(7))
    );
    assert!(
        matches!(&results[2], Err(SendError::Transient { code: Some(503), retry_after: Some(d), .. })
        if *d == Duration::from_secs(3600))
    );
    assert!(matches!(
        &results[3],
        Err(SendError::Transient {
            code: Some(408),
            ..
        })
    ));
    match &results[4] {
        Err(SendError::Permanent { code, message }) => {
            assert_eq!(*code, Some(400));
            assert!(message.contains("invalid number"));
            assert!(message.chars().count() < 230, "{}", message.len());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        &results[5],
        Err(SendError::Permanent {
            code: Some(401),
            ..
        })
    ));
    assert!(results[6].is_ok());
    assert_eq!(sink.requests().len(), 7);
}

#[tokio::test]
async fn webhook_timeouts_and_refused_connections_are_transient_without_the_url() {
    let sink = HttpSink::start().await.unwrap();
    sink.set_delay(Duration::from_secs(5));
    let cfg = ChannelsConfig {
        chat_webhook_url: Some(sink.url("/hooks/S3CR3T-TOKEN")),
        allow_private_urls: true,
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let channels = sink_channels(&cfg);
    let chat = Payload::Chat {
        channel: None,
        text: "x".into(),
        data: Value::Null,
    };
    match channels.send(&chat).await {
        Err(SendError::Transient { message, .. }) => {
            assert!(message.contains("timeout"), "{message}");
            assert!(!message.contains("S3CR3T"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // a port nobody listens on
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = ChannelsConfig {
        task_webhook_url: Some(format!("http://127.0.0.1:{port}/S3CR3T-PATH")),
        allow_private_urls: true,
        ..Default::default()
    };
    let channels = sink_channels(&cfg);
    let task = Payload::Task {
        title: "t".into(),
        description: "d".into(),
        contact: None,
        due_at: None,
    };
    match channels.send(&task).await {
        Err(e @ SendError::Transient { .. }) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("S3CR3T"), "{shown}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unconfigured_channels_say_so() {
    let channels = sink_channels(&ChannelsConfig::default());
    let payloads = [
        (
            Payload::Sms {
                to: "1".into(),
                text: "t".into(),
            },
            "sms",
        ),
        (
            Payload::Email {
                to: "a@b.vn".into(),
                subject: "s".into(),
                html: "h".into(),
                text: "t".into(),
                track: None,
            },
            "email",
        ),
        (
            Payload::Chat {
                channel: None,
                text: "t".into(),
                data: Value::Null,
            },
            "chat",
        ),
        (
            Payload::Task {
                title: "t".into(),
                description: "d".into(),
                contact: None,
                due_at: None,
            },
            "task",
        ),
        (cs_text("1", "t"), "zalo"),
    ];
    for (p, name) in payloads {
        let err = channels.send(&p).await.unwrap_err();
        assert_eq!(err, SendError::NotConfigured { channel: name });
        assert!(!err.is_retryable());
        assert!(err.to_string().contains(name));
    }
}

/// A real SMTP server (aiosmtpd) writing each message as JSON into a folder; killed on drop.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    async fn start() -> SmtpServer {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output();
        match check {
            Ok(out) if out.status.success() => {}
            Ok(out) => panic!(
                "the email test needs aiosmtpd: run `pip install aiosmtpd` ({})",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            ),
            Err(e) => panic!(
                "the email test needs python3 with aiosmtpd: install python3, then `pip install aiosmtpd` ({e})"
            ),
        }
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        let tests_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "smtp_server.SaveToDir"])
            .arg(dir.path())
            .env("PYTHONPATH", &tests_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 starts");
        let mut server = SmtpServer { child, port, dir };
        let deadline = Instant::now() + WAIT;
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("aiosmtpd exited at start ({status}); is `pip install aiosmtpd` done?");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.port = port;
        server
    }

    /// Waits for the n-th message file and parses it.
    async fn message(&self, n: usize) -> Value {
        let path: PathBuf = self.dir.path().join(format!("{n}.json"));
        let deadline = Instant::now() + WAIT;
        while !path.exists() {
            assert!(Instant::now() < deadline, "no message {n} within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_both_parts() {
    let smtp = SmtpServer::start().await;
    let cfg = ChannelsConfig {
        smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
        smtp_from: Some("Shop Hoa <shop@hoa.example>".into()),
        ..Default::default()
    };
    let channels = sink_channels(&cfg);
    let html = "<html><body><p>Chào <b>Lan</b>, quà sinh nhật của bạn!</p></body></html>";
    let delivered = channels
        .send(&Payload::Email {
            to: "lan@example.vn".into(),
            subject: "Chúc mừng sinh nhật 🎂".into(),
            html: html.into(),
            text: "Chào Lan, quà sinh nhật của bạn!".into(),
            track: None,
        })
        .await
        .expect("sent");
    let m = smtp.message(1).await;
    assert_eq!(m["rcpt_tos"], json!(["lan@example.vn"]));
    assert_eq!(m["mail_from"], json!("shop@hoa.example"));
    assert_eq!(m["subject"], json!("Chúc mừng sinh nhật 🎂"));
    assert!(m["to"].as_str().unwrap().contains("lan@example.vn"));
    assert_eq!(m["content_type"], json!("multipart/alternative"));
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["content_type"], json!("text/plain"));
    assert_eq!(
        parts[0]["content"].as_str().unwrap().trim_end(),
        "Chào Lan, quà sinh nhật của bạn!"
    );
    assert_eq!(parts[1]["content_type"], json!("text/html"));
    assert_eq!(parts[1]["content"].as_str().unwrap().trim_end(), html);
    assert_eq!(
        delivered.provider_id.as_deref(),
        m["message_id"].as_str(),
        "the Message-ID is the provider id"
    );

    // a recipient that is not an address is permanent, before any SMTP traffic
    let bad = channels
        .send(&Payload::Email {
            to: "not an address".into(),
            subject: "s".into(),
            html: "h".into(),
            text: "t".into(),
            track: None,
        })
        .await;
    assert!(matches!(bad, Err(SendError::Permanent { .. })), "{bad:?}");
}

#[tokio::test]
async fn email_to_a_dead_smtp_server_is_transient() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cfg = ChannelsConfig {
        smtp_url: Some(format!("smtp://user:S3CR3T-PW@127.0.0.1:{port}")),
        timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let channels = sink_channels(&cfg);
    match channels
        .send(&Payload::Email {
            to: "a@b.vn".into(),
            subject: "s".into(),
            html: "h".into(),
            text: "t".into(),
            track: None,
        })
        .await
    {
        Err(e @ SendError::Transient { .. }) => {
            assert!(!format!("{e} {e:?}").contains("S3CR3T"));
        }
        other => panic!("{other:?}"),
    }
}

/// "Trust the operator, guard the rest": webhook URLs the operator sets (environment,
/// zaloflow.toml) are trusted wherever they point — loopback, private networks, Fly's
/// `fdaa::/16` and `*.internal` included — whether or not private URLs are allowed; only their
/// scheme is checked. The SSRF guard still refuses internal addresses for URLs from rules and the
/// admin API (see `untrusted_urls_are_guarded` and tests/config.rs), and its resolver refuses
/// names of internal hosts for any fetch made with the guarded client.
#[tokio::test]
async fn ssrf_guard_trusts_operator_webhook_urls_wherever_they_point() {
    let sink = HttpSink::start().await.unwrap();
    let port = sink
        .url("/")
        .split(':')
        .next_back()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let deny = |cfg: ChannelsConfig| ChannelsConfig {
        allow_private_urls: false,
        ..cfg
    };
    // IP literals and internal names: the service starts (it used to refuse them).
    for (name, cfg) in [
        (
            "sms on loopback",
            ChannelsConfig {
                sms_url: Some(format!("http://127.0.0.1:{port}/sms")),
                ..Default::default()
            },
        ),
        (
            "metadata",
            ChannelsConfig {
                task_webhook_url: Some("http://169.254.169.254/latest/meta-data/".into()),
                ..Default::default()
            },
        ),
        (
            "ipv6 loopback",
            ChannelsConfig {
                chat_webhook_url: Some(format!("http://[::1]:{port}/chat")),
                ..Default::default()
            },
        ),
        (
            "fly private network",
            ChannelsConfig {
                sms_url: Some("http://[fdaa:0:1:a7b:1::2]:9000/send".into()),
                task_webhook_url: Some("http://tasks.internal:8080/hook".into()),
                ..Default::default()
            },
        ),
        (
            "named chat channel",
            ChannelsConfig {
                chat_channels: BTreeMap::from([("vip".into(), "http://10.1.2.3/hook".into())]),
                ..Default::default()
            },
        ),
    ] {
        Channels::new(&deny(cfg), Arc::new(MemoryTokenStore::new(None)))
            .unwrap_or_else(|e| panic!("{name}: refused an operator URL: {e}"));
    }
    // Only the scheme is checked.
    let err = Channels::new(
        &ChannelsConfig {
            sms_url: Some("file:///etc/passwd".into()),
            ..Default::default()
        },
        Arc::new(MemoryTokenStore::new(None)),
    )
    .expect_err("a file:// SMS URL");
    assert!(err.to_string().contains("ZALOFLOW_SMS_URL"), "{err}");
    // Sends reach an operator URL on 127.0.0.1 and one named `localhost` (which the guarded
    // resolver would refuse).
    let cfg = deny(ChannelsConfig {
        sms_url: Some(format!("http://localhost:{port}/sms")),
        task_webhook_url: Some(format!("http://127.0.0.1:{port}/task")),
        ..Default::default()
    });
    let ch = Channels::new(&cfg, Arc::new(MemoryTokenStore::new(None))).unwrap();
    let sms = Payload::Sms {
        to: "84901234567".into(),
        text: "hi".into(),
    };
    ch.send(&sms).await.unwrap();
    ch.send(&Payload::Task {
        title: "t".into(),
        description: "d".into(),
        contact: None,
        due_at: None,
    })
    .await
    .unwrap();
    assert_eq!(sink.requests().len(), 2);
}

/// The guard of URLs that do not come from the operator: internal literals and names are
/// refused (unless allowed), and the guarded client's resolver refuses a name of loopback at
/// the connection, so nothing reaches the sink.
#[tokio::test]
async fn untrusted_urls_are_guarded() {
    use zaloflow::channels::guard;
    let sink = HttpSink::start().await.unwrap();
    let url = sink.url("/x").replace("127.0.0.1", "localhost");
    for u in [
        sink.url("/x"),
        url.clone(),
        "http://[fdaa::3]/".into(),
        "http://app.internal/".into(),
        "http://169.254.169.254/".into(),
    ] {
        let e = guard::check_untrusted(&u, false).unwrap_err();
        assert!(e.contains("ZALOFLOW_ALLOW_PRIVATE_URLS"), "{u}: {e}");
        guard::check_untrusted(&u, true).unwrap();
    }
    let client = guard::webhook_client(Duration::from_secs(5), false);
    let e = client.post(&url).send().await.unwrap_err();
    assert!(guard::is_blocked(&e), "{e}");
    assert!(sink.requests().is_empty());
}

/// Issue 29: a named chat channel without a URL of its own goes to ZALOFLOW_CHAT_WEBHOOK_URL,
/// as the contract says (it was dead-lettered: `chat channel "agents" is not configured`); a
/// channel with its own URL still goes there; with no chat at all the send is "not configured".
#[tokio::test]
async fn named_chat_channels_fall_back_to_the_default_webhook() {
    let sink = HttpSink::start().await.unwrap();
    let notice = |channel: Option<&str>| Payload::Chat {
        channel: channel.map(str::to_string),
        text: "⭐ Khách VIP mới".into(),
        data: Value::Null,
    };
    let only_default = ChannelsConfig {
        chat_webhook_url: Some(sink.url("/chat/default")),
        ..Default::default()
    };
    let ch = Channels::new(&only_default, Arc::new(MemoryTokenStore::new(None))).unwrap();
    ch.send(&notice(Some("agents"))).await.unwrap();
    ch.send(&notice(None)).await.unwrap();
    let both = ChannelsConfig {
        chat_channels: BTreeMap::from([("supervisors".into(), sink.url("/chat/sup"))]),
        ..only_default
    };
    let ch = Channels::new(&both, Arc::new(MemoryTokenStore::new(None))).unwrap();
    ch.send(&notice(Some("supervisors"))).await.unwrap();
    ch.send(&notice(Some("agents"))).await.unwrap();
    let paths: Vec<String> = sink.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/chat/default",
            "/chat/default",
            "/chat/sup",
            "/chat/default"
        ]
    );
    let none = Channels::new(
        &ChannelsConfig {
            chat_channels: BTreeMap::from([("supervisors".into(), sink.url("/chat/sup"))]),
            ..Default::default()
        },
        Arc::new(MemoryTokenStore::new(None)),
    )
    .unwrap();
    assert_eq!(
        none.send(&notice(Some("agents"))).await,
        Err(SendError::NotConfigured { channel: "chat" })
    );
}

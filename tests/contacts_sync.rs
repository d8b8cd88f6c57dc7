//! Knowing the OA's followers (issue 29, item 2), on both backends, against the fake Zalo:
//! a shop with 500 followers who never wrote, synced by `serve` and re-activated by the
//! shipped rules at the right stages, never messaging the users Zalo lists as not following;
//! the merge rule (a later interaction zaloflow saw itself wins); `zaloflow contacts sync`
//! SIGKILLed half-way and run again: resumed, nothing counted twice, nobody lost; a user seen
//! for the first time gets their name on the agents' board without delaying the webhook.

mod common;
#[path = "common/i18n.rs"]
mod i18n_check;
mod sched;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::TimeZone;
use common::*;
use sched::*;
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeUser, FakeZalo, FakeZaloOptions, DETAIL_PATH};
use zaloflow::store::{self, ContactChange, ContactSync, DynStore};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    a_synced_shop_reactivates_its_old_followers_at_their_stages,
    a_killed_sync_resumes_without_duplicates,
    first_sight_puts_the_name_on_the_board,
    csv_import_takes_follows_and_last_interaction,
    sync_and_sends_share_one_rate_limit,
    a_token_expiring_mid_sync_is_refreshed_once,
    the_command_hands_the_sync_to_a_running_serve,
);

const STAGE_1: &str =
    "Hello bạn! Dạo này bạn khỏe không? OA có nhiều ưu đãi và nội dung hay lắm, ghé thăm mình nhé!";
const STAGE_2: &str = "Ưu đãi dành riêng cho bạn! Giảm 30% cho đơn hàng đầu tiên trong tuần này.";

fn at(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap()
}

/// 10:00 local, `days` days from today (OA time zone).
fn local_ten(days: i64) -> i64 {
    let today = chrono::Utc::now().with_timezone(&TZ).date_naive();
    let d = today + chrono::Duration::days(days);
    TZ.from_local_datetime(&d.and_hms_opt(10, 0, 0).unwrap())
        .unwrap()
        .timestamp_millis()
}

async fn wait_for_run(store: &DynStore, limit: Duration) -> ContactSync {
    let start = Instant::now();
    loop {
        if let Some(r) = store.contact_sync().await.unwrap() {
            if r.status == "done" {
                return r;
            }
        }
        if start.elapsed() >= limit {
            panic!(
                "the sync did not finish in {limit:?}: {:?}",
                store.contact_sync().await.unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Promotion texts the fake accepted for `user`.
fn promos(s: &Shop, user: &str) -> Vec<String> {
    s.zalo
        .messages()
        .iter()
        .filter(|m| m.user_id.as_deref() == Some(user) && m.kind == "promotion")
        .map(|m| m.shown().unwrap_or_default())
        .collect()
}

/// Message calls (any kind, refused ones too) to `user`.
fn message_calls(s: &Shop, user: &str) -> usize {
    s.zalo
        .arrivals()
        .iter()
        .filter(|a| a.user_id.as_deref() == Some(user) && a.path.contains("/message/"))
        .count()
}

async fn a_synced_shop_reactivates_its_old_followers_at_their_stages(kind: &str) {
    let mut s = shop(kind, Rules::Shipped).await;
    // Tomorrow 10:00 is "t0"; each group's last interaction, by Zalo's day-resolution date.
    let t0 = local_ten(1);
    let id = |i: usize| format!("93000000000{i:05}");
    let last = |i: usize| {
        at(match i {
            0..200 => t0 - 10 * DAY,   // stage 1 at t0
            200..400 => t0 - 20 * DAY, // stage 2 at t0
            400..450 => t0 - 3 * DAY,  // stage 1 five days later
            _ => t0 - 40 * DAY,        // silent too long for both stages
        })
    };
    for i in 0..500 {
        let mut u = FakeUser::new(&id(i), &format!("Khách {i}"), last(i));
        if i % 100 == 0 {
            u.tags.insert("khach_quen".into());
        }
        s.zalo.add_user(u);
    }
    // 20 users who unfollowed: Zalo lists them with is_follower=false.
    let gone = |i: usize| format!("93900000000{i:05}");
    for i in 0..20 {
        let mut u = FakeUser::new(&gone(i), &format!("Cũ {i}"), at(t0 - 10 * DAY));
        u.follower = false;
        s.zalo.add_user(u);
    }
    // zaloflow saw follower 0 write yesterday (later than Zalo's date): that fact wins.
    s.event(message(&id(0), "m-0", t0 - DAY)).await;
    let mut zero = s.zalo.user(&id(0)).unwrap();
    zero.last_interaction = last(0);
    s.zalo.add_user(zero);
    // zaloflow saw follower 2 unfollow after the sync will read Zalo's profile (which still
    // says follower): the event zaloflow saw wins.
    s.event(unfollow(&id(2), t0 - HOUR)).await;
    s.zalo.set_follower(&id(2), true);
    // Follower 1 was known under another name: Zalo's name refreshes it.
    let mut old = ContactChange::new(id(1), t0 - 30 * DAY);
    old.display_name = Some("tên cũ".into());
    s.store
        .import_contacts(&[old], &[], t0 - 30 * DAY)
        .await
        .unwrap();

    // The sync, as the admin API or the schedule starts it: `serve` runs it.
    let (run, new) = s
        .store
        .start_contact_sync("test", zaloflow::clock::system_now())
        .await
        .unwrap();
    assert!(new);
    let done = wait_for_run(&s.store, Duration::from_secs(60)).await;
    assert_eq!(done.id, run.id);
    assert_eq!((done.listed, done.unreadable), (520, 0), "{done:?}");
    assert_eq!((done.created, done.updated), (517, 3), "{done:?}");
    assert_eq!(done.total, Some(500));
    // Zalo refuses pages over 50: the sync never asked for more.
    for a in s.zalo.arrivals_on(zaloflow::fakes::zalo::GETLIST_PATH) {
        assert_eq!(a.error, 0, "{a:?}");
        assert!(a.body["count"].as_u64().unwrap() <= 50);
    }

    let ids: Vec<String> = (0..500).map(id).chain((0..20).map(gone)).collect();
    let contacts = s.store.load_contacts(&ids).await.unwrap();
    assert_eq!(contacts.len(), 520);
    assert_eq!(
        contacts[&id(2)].follows,
        Some(false),
        "the later unfollow wins"
    );
    for i in 0..500 {
        let c = &contacts[&id(i)];
        assert_eq!(c.follows, Some(i != 2), "{c:?}");
        assert_eq!(
            c.display_name.as_deref(),
            Some(format!("Khách {i}").as_str())
        );
        assert_eq!(c.tags.contains("khach_quen"), i % 100 == 0, "{c:?}");
        if i > 0 {
            // The end of Zalo's day, in the OA time zone.
            let day = last(i).with_timezone(&TZ).date_naive();
            let end = TZ
                .from_local_datetime(
                    &(day + chrono::Duration::days(1))
                        .and_hms_opt(0, 0, 0)
                        .unwrap(),
                )
                .unwrap()
                .timestamp_millis()
                - 1;
            assert_eq!(c.last_interaction, Some(end), "{i}");
        }
    }
    assert_eq!(
        contacts[&id(0)].last_interaction,
        Some(t0 - DAY),
        "the webhook's time wins"
    );
    for i in 0..20 {
        assert_eq!(contacts[&gone(i)].follows, Some(false));
    }

    // t0: stage 1 to the 10-day group (not follower 0, who wrote yesterday), stage 2 to the
    // 20-day group; nothing to the others.
    let r = s.tick(t0).await;
    assert_eq!(r.reactivation["kich_hoat_giai_doan_1"].fired, 198, "{r}");
    assert_eq!(r.reactivation["kich_hoat_giai_doan_2"].fired, 200, "{r}");
    for i in 0..500 {
        let want: Vec<String> = match i {
            2 => vec![],
            1..200 => vec![STAGE_1.into()],
            200..400 => vec![STAGE_2.into()],
            _ => vec![],
        };
        assert_eq!(promos(&s, &id(i)), want, "follower {i} at t0");
    }
    // Five days later: the 3-day group reaches 7 silent days; nobody gets a stage twice.
    let r = s.tick(t0 + 5 * DAY).await;
    assert_eq!(r.reactivation["kich_hoat_giai_doan_1"].fired, 50, "{r}");
    for i in 400..450 {
        assert_eq!(promos(&s, &id(i)), vec![STAGE_1.to_string()], "{i}");
    }
    // Eleven days later the 10-day group is 20 days silent: stage 2.
    s.tick(t0 + 11 * DAY).await;
    assert_eq!(
        promos(&s, &id(1)),
        vec![STAGE_1.to_string(), STAGE_2.to_string()]
    );
    // Never a message, nor even a refused call, to a user Zalo lists as not following.
    for i in 0..20 {
        assert_eq!(message_calls(&s, &gone(i)), 0, "{}", gone(i));
    }
    assert_eq!(message_calls(&s, &id(2)), 0);
    // A second sync refreshes and creates nothing.
    s.store
        .start_contact_sync("test", zaloflow::clock::system_now())
        .await
        .unwrap();
    let again = wait_for_run(&s.store, Duration::from_secs(60)).await;
    assert_eq!((again.created, again.updated), (0, 520), "{again:?}");
    s.stop().await;
}

/// `zaloflow contacts sync` against the fake, with the test's database.
fn sync_command(db_url: &str, zalo: &FakeZalo) -> Command {
    let o = FakeZaloOptions::default();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zaloflow"));
    cmd.args(["contacts", "sync"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", db_url)
        .env("ZALOFLOW_CONFIG", "/nonexistent.toml")
        .env("ZALO_API_BASE", zalo.base_url())
        .env("ZALO_OAUTH_BASE", zalo.base_url())
        .env("ZALO_ZNS_BASE", zalo.base_url())
        .env("ZALO_APP_ID", APP_ID)
        .env("ZALO_APP_SECRET", o.app_secret)
        .env("ZALO_ACCESS_TOKEN", o.access_token)
        .env("ZALO_REFRESH_TOKEN", o.refresh_token)
        .env("ZALOFLOW_ZALO_RATE", "400")
        .env("ZALOFLOW_ZALO_RATE_PER_MINUTE", "0")
        // A killed run's hold on the OA expires quickly.
        .env("ZALOFLOW_SEND_TIMEOUT", "2s")
        .env("ZALOFLOW_OUTBOX_LEASE", "5s")
        .env("RUST_LOG", "warn")
        .env("ZALOFLOW_LANG", "en")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

async fn a_killed_sync_resumes_without_duplicates(kind: &str) {
    let db = Db::new(kind).await;
    let store = store::open(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    let n = 600;
    zalo.seed_followers(
        "94000000000",
        n,
        |i| chrono::Utc::now() - chrono::Duration::days(i as i64 % 40),
        |_| vec![],
    );
    // Slow enough answers that the run is still going when it is killed.
    zalo.set_delay(Duration::from_millis(15));

    let mut first = sync_command(db.url(), &zalo).spawn().unwrap();
    let start = Instant::now();
    let killed_at = loop {
        let r = store.contact_sync().await.unwrap();
        if let Some(r) = r.filter(|r| r.listed >= 150) {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no progress");
        assert!(
            first.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert!(killed_at.status == "running" && killed_at.listed < n as i64);
    let at_kill = store.contact_sync().await.unwrap().unwrap();
    assert_eq!(at_kill.status, "running", "{at_kill:?}");

    zalo.set_delay(Duration::ZERO);
    let out = tokio::task::spawn_blocking({
        let mut cmd = sync_command(db.url(), &zalo);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("contacts sync #{} resumed", at_kill.id)),
        "{stdout}"
    );
    assert!(stdout.contains("done: 600 users read"), "{stdout}");

    let done = store.contact_sync().await.unwrap().unwrap();
    assert_eq!(done.id, at_kill.id, "the same run, resumed");
    assert_eq!(done.status, "done");
    // Counted once each: the page in flight at the kill was not committed, so it was read
    // again and counted then.
    assert_eq!(
        (done.listed, done.created, done.updated, done.unreadable),
        (600, 600, 0, 0),
        "{done:?}"
    );
    let ids: Vec<String> = (0..n).map(|i| format!("94000000000{i}")).collect();
    let contacts = store.load_contacts(&ids).await.unwrap();
    assert_eq!(contacts.len(), n, "nobody lost");
    assert!(contacts
        .values()
        .all(|c| c.follows == Some(true) && c.display_name.is_some()));
    // Profiles read again: at most the page in flight at the kill (50 users), once more.
    let mut reads: HashMap<String, usize> = HashMap::new();
    for a in zalo.arrivals_on(DETAIL_PATH) {
        *reads.entry(a.user_id.unwrap_or_default()).or_default() += 1;
    }
    assert_eq!(reads.len(), n);
    assert!(reads.values().all(|&r| r <= 2), "{reads:?}");
    let twice = reads.values().filter(|&&r| r == 2).count();
    assert!(twice <= 50, "{twice} profiles read twice");
    // The rate held across both processes (400/s, and one at a time).
    assert!(zalo.max_calls_in_one_second() <= 400);

    // Staff who read Vietnamese (the default) read the next run in Vietnamese.
    let out = tokio::task::spawn_blocking({
        let mut cmd = sync_command(db.url(), &zalo);
        cmd.env("ZALOFLOW_LANG", "vi");
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let next = done.id + 1;
    assert!(
        stdout.contains(&format!("đồng bộ khách hàng #{next} bắt đầu"))
            && stdout.contains("xong: đã đọc 600 người từ Zalo"),
        "{stdout}"
    );
    i18n_check::assert_one_language(&stdout, zaloflow::i18n::Lang::Vi);
}

async fn first_sight_puts_the_name_on_the_board(kind: &str) {
    const TOKEN: &str = "sync-test-admin-token-1234";
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    let sink = HttpSink::start().await.unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("handoff.yaml"),
        "rules:\n  - id: moi_tin_nhan\n    when: message\n    do:\n      - handoff:\n          team: agents\n          deadline: 2h\n",
    )
    .unwrap();
    let user = "9500000000000000001";
    zalo.add_user(FakeUser::new(user, "Chị Hoa <b>", chrono::Utc::now()));
    let mut extra = fake_channels(&zalo, &sink);
    extra.push(("ZALOFLOW_RULES".into(), rules.path().display().to_string()));
    extra.push(("ZALOFLOW_ADMIN_TOKEN".into(), TOKEN.into()));
    extra.push(("ZALOFLOW_CONTACTS_LOOKUP".into(), "true".into()));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn(config(db.url(), &extra)).await;
    let store = store::open(db.url()).await.unwrap();

    // Zalo answers slowly: the webhook's 200 does not wait for the lookup.
    zalo.set_delay(Duration::from_millis(1500));
    let started = Instant::now();
    let r = app
        .post_webhook(&text_event(user, "m-1", "cho mình hỏi"))
        .await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );

    let board = || async {
        client()
            .get(format!("{}/admin/board", app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    wait_until(Duration::from_secs(20), || async {
        store
            .get_contact(user)
            .await
            .unwrap()
            .is_some_and(|c| c.display_name.is_some())
    })
    .await;
    let html = board().await;
    assert!(
        html.contains("Chị Hoa &lt;b&gt;"),
        "the name, escaped: {html}"
    );
    assert!(!html.contains("Chị Hoa <b>"));
    let c = store.get_contact(user).await.unwrap().unwrap();
    assert_eq!(c.follows, Some(true));
    // A user Zalo has no profile for (-201): asked once, then never again.
    zalo.set_delay(Duration::ZERO);
    let stranger = "9500000000000000002";
    let r = app.post_webhook(&text_event(stranger, "m-s", "hi")).await;
    assert_eq!(r.status(), 200);
    let refused = || {
        zalo.arrivals_on(DETAIL_PATH)
            .iter()
            .any(|a| a.user_id.as_deref() == Some(stranger) && a.error == -201)
    };
    wait_until(Duration::from_secs(20), || async { refused() }).await;
    // Looked up once: a second message does not look again.
    let r = app.post_webhook(&text_event(user, "m-2", "alo")).await;
    assert_eq!(r.status(), 200);
    wait_done(&store, 3).await;
    wait_until(Duration::from_secs(20), || async {
        store
            .profiles_due(zaloflow::clock::system_now() + DAY, 10)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let due = store
        .profiles_due(zaloflow::clock::system_now() + DAY, 10)
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");
    assert_eq!(zalo.arrivals_on(DETAIL_PATH).len(), 2, "one lookup each");
    assert_eq!(
        store
            .get_contact(stranger)
            .await
            .unwrap()
            .unwrap()
            .display_name,
        None
    );
    app.shutdown().await;
}

async fn csv_import_takes_follows_and_last_interaction(kind: &str) {
    use zaloflow::contacts::csv::{import, ImportOptions};
    let db = Db::new(kind).await;
    let store = store::open(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let now = hcm(2027, 3, 10, 12, 0);
    // A contact zaloflow saw write on 9 March: the file's older date does not move it back.
    let mut seen = ContactChange::new("9600000000000000005", now - 2 * DAY);
    seen.interaction_at = Some(hcm(2027, 3, 9, 15, 30));
    store.import_contacts(&[seen], &[], now).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("followers.csv");
    std::fs::write(
        &path,
        "user_id,name,follows,last_interaction
9600000000000000001,An,true,2027-03-01
9600000000000000002,Bình,không,01/03/2027
9600000000000000003,Chi,Yes,2027-03-02T09:30:00+07:00
9600000000000000004,Dũng,,2027-03-03 08:15
9600000000000000005,Em,1,2027-03-01
9600000000000000006,Bad follows,maybe,2027-03-01
9600000000000000007,Bad date,true,31/02/2027
9600000000000000008,Future,true,2027-04-01
",
    )
    .unwrap();
    let opts = ImportOptions {
        lang: zaloflow::i18n::Lang::En,
        ..ImportOptions::default()
    };
    let r = import(&store, &path, &opts, now).await.unwrap();
    let rejected: Vec<(u64, String)> = r
        .rejected
        .iter()
        .map(|x| (x.line, x.reason.clone()))
        .collect();
    assert_eq!(
        rejected,
        vec![
            (
                7,
                "follows (column 3) \"maybe\" is not a follow status (true/false, yes/no, 1/0, có/không)".to_string()
            ),
            (
                8,
                "last_interaction (column 4) \"31/02/2027\" is not a time (2027-03-01T09:30:00+07:00, 2027-03-01 09:30, 2027-03-01 or 01/03/2027)".to_string()
            ),
            (9, "last_interaction (column 4) \"2027-04-01\" is in the future".to_string()),
        ]
    );
    let ids: Vec<String> = (1..=8).map(|i| format!("960000000000000000{i}")).collect();
    let c = store.load_contacts(&ids).await.unwrap();
    let end_of = |d: u32| hcm(2027, 3, d + 1, 0, 0) - 1;
    let got = |i: usize| {
        let x = &c[&ids[i - 1]];
        (x.follows, x.last_interaction)
    };
    assert_eq!(got(1), (Some(true), Some(end_of(1))));
    assert_eq!(got(2), (Some(false), Some(end_of(1))));
    assert_eq!(got(3), (Some(true), Some(hcm(2027, 3, 2, 9, 30))));
    assert_eq!(got(4), (None, Some(hcm(2027, 3, 3, 8, 15))));
    assert_eq!(
        got(5),
        (Some(true), Some(hcm(2027, 3, 9, 15, 30))),
        "the later fact stays"
    );
    assert!(!c.contains_key(&ids[5]) && !c.contains_key(&ids[6]) && !c.contains_key(&ids[7]));
}

/// The fake answers the follower list as PROTOCOL.md section 5 says: pages of at most 50, a
/// larger count refused inside HTTP 200, a valid access token required.
#[tokio::test]
async fn the_fake_lists_followers_as_zalo_does() {
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    zalo.seed_followers("97", 60, |_| chrono::Utc::now(), |_| vec![]);
    let mut gone = FakeUser::new("98", "Cũ", chrono::Utc::now());
    gone.follower = false;
    zalo.add_user(gone);
    let get = |data: serde_json::Value, token: &'static str| {
        let url = format!("{}/v3.0/oa/user/getlist", zalo.base_url());
        async move {
            client()
                .get(url)
                .query(&[("data", data.to_string())])
                .header("access_token", token)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let token = "fake-access-0";
    let page = get(
        serde_json::json!({"offset": 50, "count": 50, "is_follower": "true"}),
        token,
    )
    .await;
    assert_eq!(page["error"], 0);
    assert_eq!(page["data"]["total"], 60);
    assert_eq!(page["data"]["users"].as_array().unwrap().len(), 10);
    let others = get(
        serde_json::json!({"offset": 0, "count": 50, "is_follower": "false"}),
        token,
    )
    .await;
    assert_eq!(
        others["data"]["users"],
        serde_json::json!([{"user_id": "98"}])
    );
    let big = get(serde_json::json!({"offset": 0, "count": 51}), token).await;
    assert_eq!(big["error"], -201, "{big}");
    let bad = get(serde_json::json!({"offset": 0, "count": 5}), "wrong").await;
    assert_eq!(bad["error"], -216, "{bad}");
}

/// While `serve` syncs, its replies go out too: sync calls and sends share the sender's limiter,
/// so Zalo never sees more than `ZALOFLOW_ZALO_RATE` calls in a second (the fake answers -32
/// above it).
async fn sync_and_sends_share_one_rate_limit(kind: &str) {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        max_calls_per_second: Some(30),
        ..Default::default()
    })
    .await
    .unwrap();
    zalo.seed_followers("96000000000", 150, |_| chrono::Utc::now(), |_| vec![]);
    let sink = HttpSink::start().await.unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("reply.yaml"),
        "rules:\n  - id: tra_loi\n    when: message\n    do:\n      - send: Chào bạn, shop đã nhận tin nhắn!\n    once_per: day\n",
    )
    .unwrap();
    let mut extra = fake_channels(&zalo, &sink);
    extra.push(("ZALOFLOW_RULES".into(), rules.path().display().to_string()));
    extra.push(("ZALOFLOW_ZALO_RATE".into(), "30".into()));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn(config(db.url(), &extra)).await;
    let store = store::open(db.url()).await.unwrap();
    store
        .start_contact_sync("test", zaloflow::clock::system_now())
        .await
        .unwrap();
    for i in 0..40 {
        let r = app
            .post_webhook(&text_event(
                &format!("96000000000{i}"),
                &format!("m-{i}"),
                "shop ơi",
            ))
            .await;
        assert_eq!(r.status(), 200);
    }
    let run = wait_for_run(&store, Duration::from_secs(90)).await;
    assert_eq!(run.listed, 150, "{run:?}");
    zalo.wait_for_messages(40, Duration::from_secs(60)).await;
    assert_eq!(zalo.messages().len(), 40);
    let over: Vec<_> = zalo
        .arrivals()
        .into_iter()
        .filter(|a| a.error == -32)
        .collect();
    assert!(
        over.is_empty(),
        "Zalo had to refuse calls over the rate: {over:?}"
    );
    assert!(zalo.max_calls_in_one_second() <= 30);
    app.shutdown().await;
}

/// Zalo expires the access token while a sync and replies run side by side in `serve`: the
/// single-use refresh token is spent once (the sync's client and the sender's take the refresh
/// lease under owners of their own), and both go on with the new token.
async fn a_token_expiring_mid_sync_is_refreshed_once(kind: &str) {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        app_id: APP_ID.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    zalo.seed_followers("96100000000", 300, |_| chrono::Utc::now(), |_| vec![]);
    zalo.set_delay(Duration::from_millis(5));
    let sink = HttpSink::start().await.unwrap();
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("reply.yaml"),
        "rules:\n  - id: tra_loi\n    when: message\n    do:\n      - send: Chào bạn!\n    once_per: day\n",
    )
    .unwrap();
    let mut extra = fake_channels(&zalo, &sink);
    extra.push(("ZALOFLOW_RULES".into(), rules.path().display().to_string()));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn(config(db.url(), &extra)).await;
    let store = store::open(db.url()).await.unwrap();
    store
        .start_contact_sync("test", zaloflow::clock::system_now())
        .await
        .unwrap();
    wait_until(Duration::from_secs(30), || async {
        store
            .contact_sync()
            .await
            .unwrap()
            .is_some_and(|r| r.listed >= 50)
    })
    .await;
    zalo.expire_access_tokens();
    for i in 0..20 {
        let r = app
            .post_webhook(&text_event(
                &format!("96100000000{i}"),
                &format!("m-{i}"),
                "alo",
            ))
            .await;
        assert_eq!(r.status(), 200);
    }
    let run = wait_for_run(&store, Duration::from_secs(60)).await;
    assert_eq!((run.listed, run.unreadable), (300, 0), "{run:?}");
    zalo.wait_for_messages(20, Duration::from_secs(30)).await;
    assert_eq!(zalo.messages().len(), 20);
    assert_eq!(zalo.refresh_count(), 1, "the refresh token was spent once");
    let dead = store.list_jobs(Some("dead"), 10).await.unwrap();
    assert!(dead.is_empty(), "{dead:?}");
    app.shutdown().await;
}

/// With `serve` running (holding the OA), `zaloflow contacts sync` makes no OA call itself: it
/// starts the run, `serve` runs it, the command follows to the end and prints the summary.
async fn the_command_hands_the_sync_to_a_running_serve(kind: &str) {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions::default()).await.unwrap();
    zalo.seed_followers("96200000000", 120, |_| chrono::Utc::now(), |_| vec![]);
    let sink = HttpSink::start().await.unwrap();
    let extra = fake_channels(&zalo, &sink);
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let app = TestApp::spawn(config(db.url(), &extra)).await;
    let store = store::open(db.url()).await.unwrap();
    // serve's sender holds the OA once it has run a pass.
    wait_until(Duration::from_secs(20), || async {
        !store
            .try_lease(
                "zalo-sender",
                "someone-else",
                zaloflow::clock::system_now(),
                1,
            )
            .await
            .unwrap()
    })
    .await;
    let out = tokio::task::spawn_blocking({
        let mut cmd = sync_command(db.url(), &zalo);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("another zaloflow process holds the OA"),
        "{stderr}"
    );
    assert!(stdout.contains("done: 120 users read"), "{stdout}");
    let run = store.contact_sync().await.unwrap().unwrap();
    assert_eq!(
        (run.requested_by.as_str(), run.listed, run.created),
        ("cli", 120, 120)
    );
    app.shutdown().await;
}

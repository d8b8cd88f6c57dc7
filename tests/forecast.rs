//! Issue 28: what-if forecasts, on both backends, against a shop that really ran a week
//! (the real service, its ticks, the fake Zalo): the week replayed with the running rules sends
//! exactly what the outbox sent; a draft with one more rule shows exactly that rule's sends; a
//! broken draft is refused with line:col; the live database is unchanged by a forecast; the
//! coming week projected from the contacts as they are shows a new re-activation stage.

mod common;
mod forecast_week;
mod sched;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use forecast_week::*;
use sched::*;
use serde_json::json;
use zaloflow::forecast::{self, tally::SendKey, Settings, Window};

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    the_admin_api_and_the_page_forecast_a_draft,
    a_recorded_week_replays_send_for_send_a_draft_shows_its_extra_sends_and_the_next_week_its_new_stage,
    a_broken_draft_is_refused_with_line_and_column,
    a_database_not_set_up_is_refused_with_the_fix_and_left_as_it_was,
    a_tag_added_in_the_window_is_not_there_when_it_starts,
    the_sends_in_memory_are_decided_as_the_outbox_table_decides_them,
    the_contacts_state_kept_in_memory_is_the_copys,
);

/// A new re-activation stage for those silent a week (a priced promotion).
const STAGE: &str = "  - id: nhac_tuan
    when:
      inactive: {min_days: 6, max_days: 9}
    do:
      - send: {text: Một tuần rồi! Giảm 15% cho bạn., via: zalo_promotion}
";

fn settings(s: &Shop) -> Settings {
    let mut st = Settings::from_config(&s.config);
    st.every_ms = HOUR;
    st.keep_sends = true;
    st
}

fn rules_of(yaml: &str) -> Arc<zaloflow::rules::RuleSet> {
    Arc::new(
        zaloflow::rules::load_sources(
            &[("t.yaml".into(), yaml.to_string())],
            &zaloflow::rules::LoadOptions::default(),
        )
        .unwrap_or_else(|d| panic!("{d:?}")),
    )
}

/// The same rules (as current and draft) over `window`, once with each of two settings.
async fn replay_twice(
    s: &Shop,
    yaml: &str,
    window: Window,
    one: &Settings,
    other: &Settings,
) -> (forecast::Forecast, forecast::Forecast) {
    let mut out = Vec::new();
    for st in [one, other] {
        let f = forecast::replay_window(&s.store, rules_of(yaml), rules_of(yaml), window, st, None)
            .await
            .unwrap();
        out.push(f);
    }
    let other = out.pop().unwrap();
    (out.pop().unwrap(), other)
}

fn sorted(mut v: Vec<SendKey>) -> Vec<SendKey> {
    v.sort();
    v
}

/// Every row of every table, as text (a checksum of the database's content).
async fn dump(kind: &str, url: &str) -> BTreeMap<String, String> {
    use sqlx::{Connection, Row};
    let mut out = BTreeMap::new();
    if kind == "sqlite" {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for t in tables {
            let cols: Vec<String> = sqlx::query(&format!("PRAGMA table_info(\"{t}\")"))
                .fetch_all(&mut c)
                .await
                .unwrap()
                .iter()
                .map(|r| format!("quote(\"{}\")", r.get::<String, _>("name")))
                .collect();
            let sql = format!(
                "SELECT COALESCE(group_concat(r, '|'), '') FROM (SELECT {} AS r FROM \"{t}\" ORDER BY 1)",
                cols.join("||','||")
            );
            let v: String = sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap();
            out.insert(t, v);
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
        )
        .fetch_all(&mut c)
        .await
        .unwrap();
        for t in tables {
            let sql = format!(
                "SELECT COALESCE(string_agg(x::text, '|' ORDER BY x::text), '') FROM \"{t}\" x"
            );
            let v: String = sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap();
            out.insert(t, v);
        }
    }
    out
}

async fn a_recorded_week_replays_send_for_send_a_draft_shows_its_extra_sends_and_the_next_week_its_new_stage(
    kind: &str,
) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    let from = hcm(2027, 3, 1, 0, 0);
    run_week(&mut s, from).await;
    let window = Window {
        from,
        to: from + 7 * DAY,
    };
    let before = dump(kind, s.db.url()).await;
    let f = forecast::replay_window(
        &s.store,
        rules_of(RULES),
        rules_of(&format!("{RULES}{EXTRA}")),
        window,
        &settings(&s),
        None,
    )
    .await
    .unwrap();
    // Nothing in the live database changed.
    assert_eq!(dump(kind, s.db.url()).await, before);

    // The running rules replayed: send for send what the outbox sent.
    let actual = f.actual.clone().unwrap();
    let sent = sorted(actual.sends.clone());
    assert_eq!(sent.len(), 12, "{sent:#?}");
    assert_eq!(sorted(f.current.sends.clone()), sent);
    assert_eq!(f.current.total().vnd, actual.total().vnd);
    assert!(actual.total().vnd > 0, "the promotion is priced");

    // The draft: exactly one more send per message, from the new rule; the rest as before.
    let mut extra = sorted(f.draft.sends.clone());
    extra.retain(|k| !sent.contains(k));
    assert_eq!(extra.len(), 5, "{extra:#?}");
    assert!(extra.iter().all(|k| k.rule == "cam_on"), "{extra:#?}");
    let (cur, new) = (f.current.per_rule(), f.draft.per_rule());
    for rule in ["tra_loi", "chao", "nhac_lai", "km"] {
        assert_eq!(cur[rule].sent(), new[rule].sent(), "{rule}");
    }
    assert_eq!(new["cam_on"].fires, 5);
    assert_eq!(cur["tra_loi"].fires, 5);
    assert_eq!(cur["tra_loi"].fires, actual.per_rule()["tra_loi"].fires);
    assert_eq!(cur["nhac_lai"].sent(), 4, "{cur:#?}");

    let text = forecast::text::report(&f, TZ, zaloflow::i18n::Lang::En);
    assert!(text.contains("cam_on"), "{text}");
    assert!(text.contains("0 → 5 (+5)"), "{text}");
    let short = forecast::text::short(&f, TZ, zaloflow::i18n::Lang::Vi);
    assert!(short.contains("cam_on: +5"), "{short}");

    // A re-activation that sends twice: its past outcomes (a customer came back after it) give
    // the expected returns of the extra sends as a range, never a point.
    let twice = RULES.replace(
        "      - send: Lâu rồi không thấy bạn, shop có hàng mới!\n",
        "      - send: Lâu rồi không thấy bạn, shop có hàng mới!\n      - send: Ghé shop nhé!\n",
    );
    let g = forecast::replay_window(
        &s.store,
        rules_of(RULES),
        rules_of(&twice),
        window,
        &settings(&s),
        None,
    )
    .await
    .unwrap();
    let e = g
        .outlook
        .iter()
        .find(|e| e.rule == "nhac_lai")
        .unwrap_or_else(|| panic!("{:?}", g.outlook));
    assert_eq!((e.extra_sends, e.past_sends), (4, 4), "{e:?}");
    assert!(e.past_returns >= 1, "{e:?}");
    assert!(e.returns.0 < e.returns.1 && e.returns.1 <= 4, "{e:?}");
    let text = forecast::text::report(&g, TZ, zaloflow::i18n::Lang::En);
    assert!(
        text.contains(&format!(
            "nhac_lai: +4 extra sends → {}–{} replies",
            e.replies.0, e.replies.1
        )),
        "{text}"
    );

    // The coming week from the contacts as they are: the new stage messages the three
    // customers as their silence reaches six days, at a promotion's price each.
    let before = dump(kind, s.db.url()).await;
    let ahead = forecast::project_ahead(
        &s.store,
        rules_of(RULES),
        rules_of(&format!("{RULES}{STAGE}")),
        window.to,
        7 * DAY,
        &settings(&s),
        None,
    )
    .await
    .unwrap();
    assert_eq!(dump(kind, s.db.url()).await, before);
    assert_eq!(ahead.contacts, 3);
    let (cur, new) = (ahead.current.per_rule(), ahead.draft.per_rule());
    let stage = &new["nhac_tuan"];
    assert_eq!(stage.sent(), 3, "{new:#?}");
    assert_eq!(stage.classes.get("promotion"), Some(&3), "{stage:?}");
    assert!(stage.vnd > 0);
    assert_eq!(
        ahead.draft.total().vnd - ahead.current.total().vnd,
        stage.vnd
    );
    assert!(!cur.contains_key("nhac_tuan"));
    let users: Vec<&str> = ahead
        .draft
        .sends
        .iter()
        .filter(|k| k.rule == "nhac_tuan")
        .map(|k| k.user.as_str())
        .collect();
    assert_eq!(users.len(), 3, "{users:?}");
    s.stop().await;
}

/// A customer seen before the window is tagged in it: the replay starts without the tag and
/// meets it when it was added, so a draft rule on the tag answers only her later message (the
/// tag copied as it is now would have answered the earlier one too).
async fn a_tag_added_in_the_window_is_not_there_when_it_starts(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(RULES)).await;
    // A past week, so that the tag's time (when the service took the event: now) falls in it.
    let from = zaloflow::forecast::day_start(zaloflow::clock::system_now() - 8 * DAY, TZ);
    s.event(message("7705", "x0", from - 2 * DAY)).await;
    s.tick(from - 2 * DAY + HOUR).await;
    for (at, body) in [
        (from + DAY, message("7705", "x1", from + DAY)),
        (from + 3 * DAY, tagged("khach_vip", "7705", from + 3 * DAY)),
        (from + 5 * DAY, message("7705", "x2", from + 5 * DAY)),
    ] {
        s.event(body).await;
        s.tick(at + HOUR).await;
    }
    let rules = RULES.replace("tags:\n", "tags:\n  khach_vip: khách VIP\n");
    let draft = format!(
        "{rules}  - id: vip_tra_loi
    when: message
    if:
      has_tag: khach_vip
    do:
      - send: Chào khách VIP!
"
    );
    let f = forecast::replay_window(
        &s.store,
        rules_of(RULES),
        rules_of(&draft),
        Window {
            from,
            to: from + 7 * DAY,
        },
        &settings(&s),
        None,
    )
    .await
    .unwrap();
    let vip: Vec<&SendKey> = f
        .draft
        .sends
        .iter()
        .filter(|k| k.rule == "vip_tra_loi")
        .collect();
    assert_eq!(vip.len(), 1, "{vip:#?}");
    let day = chrono::DateTime::from_timestamp_millis(from + 5 * DAY)
        .unwrap()
        .with_timezone(&TZ)
        .date_naive();
    assert_eq!(vip[0].day, day, "{vip:#?}");
    s.stop().await;
}

async fn a_broken_draft_is_refused_with_line_and_column(kind: &str) {
    let s = shop(kind, Rules::Yaml(RULES)).await;
    let dir = tempfile::tempdir().unwrap();
    let broken = RULES.replace("when: follow", "when: folow");
    std::fs::write(dir.path().join("t.yaml"), broken).unwrap();
    let (out, code) = forecast::command(
        &s.config,
        &forecast::Request {
            draft: dir.path().to_path_buf(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("t.yaml:9:11"), "{out}");
    s.stop().await;
}

/// The first day: `forecast`, `rules check --forecast` and `rules check --against` on a
/// database that does not exist yet (SQLite), that no zaloflow ever migrated, and that an
/// older version migrated (one migration short). Each is refused with what to do, in the
/// staff's language, and the database is left as it was — the missing file not created, the
/// tables not made. Once migrated, the forecast runs on the empty history.
async fn a_database_not_set_up_is_refused_with_the_fix_and_left_as_it_was(kind: &str) {
    let db = Db::new(kind).await;
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("t.yaml"), RULES).unwrap();
    let rules_dir = rules.path().display().to_string();
    let config = common::config(
        db.url(),
        &[("ZALOFLOW_LANG", "en"), ("ZALOFLOW_RULES", &rules_dir)],
    );
    let req = forecast::Request {
        draft: rules.path().to_path_buf(),
        ..Default::default()
    };
    // What the three commands say now.
    let refusals = || async {
        let (out, code) = forecast::command(&config, &req).await;
        assert_eq!(code, 2, "{out}");
        let short = forecast::short_command(&config, rules.path())
            .await
            .unwrap_err()
            .to_string();
        let against =
            zaloflow::scheduler::check_against(rules.path(), db.url(), zaloflow::i18n::Lang::En)
                .await
                .unwrap_err()
                .to_string();
        assert!(
            out.contains(&short) && out.contains(&against),
            "{out}\n{short}\n{against}"
        );
        out
    };
    let file = match &db {
        Db::Sqlite(dir, _) => Some(dir.path().join("zaloflow.db")),
        Db::Pg(_) => None,
    };
    if let Some(file) = &file {
        let out = refusals().await;
        assert!(out.contains("There is no database at"), "{out}");
        assert!(out.contains("zaloflow migrate"), "{out}");
        assert!(!file.exists(), "the missing database was created");
        // A file that is some other program's database.
        let conn = rusqlite::Connection::open(file).unwrap();
        conn.execute_batch("CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('a');")
            .unwrap();
        drop(conn);
    }
    let before = file.as_ref().map(|f| std::fs::read(f).unwrap());
    let out = refusals().await;
    assert!(
        out.contains("The database has not been set up by this version of zaloflow"),
        "{out}"
    );
    assert!(out.contains("zaloflow migrate"), "{out}");
    if let (Some(f), Some(before)) = (&file, before) {
        assert_eq!(std::fs::read(f).unwrap(), before, "the file changed");
    }
    let store = zaloflow::store::open(db.url()).await.unwrap();
    let pending = store.pending_migrations().await.unwrap();
    assert!(pending > 10, "never migrated: {pending}");
    if kind == "postgres" {
        let (made,): (Option<String>,) =
            sqlx::query_as("SELECT to_regclass('_sqlx_migrations')::text")
                .fetch_one(
                    &mut <sqlx::PgConnection as sqlx::Connection>::connect(db.url())
                        .await
                        .unwrap(),
                )
                .await
                .unwrap();
        assert_eq!(made, None, "the migrations table was made");
    }

    // An older version's database: its newest migration is not there.
    store.migrate().await.unwrap();
    assert_eq!(store.pending_migrations().await.unwrap(), 0);
    let newest = "(SELECT max(version) FROM _sqlx_migrations)";
    sql(
        &db,
        &format!("UPDATE _sqlx_migrations SET success = false WHERE version = {newest}"),
    )
    .await;
    let out = refusals().await;
    assert!(
        out.contains(": 1 changes to its tables are not applied"),
        "{out}"
    );
    sql(
        &db,
        "UPDATE _sqlx_migrations SET success = true WHERE NOT success",
    )
    .await;

    // Migrated: the first day's forecast is an empty history, not an error.
    store.migrate().await.unwrap();
    let (out, code) = forecast::command(&config, &req).await;
    assert_eq!(code, 0, "{out}");
}

/// Staff mistype what they ask of `zaloflow forecast`: each is told in their language, with
/// what they typed, exit 2, before any database is opened (the file named is not created).
/// `--ahead 14đ` (a unit wider than a byte) made the command panic; the messages were English.
#[test]
fn a_mistyped_request_is_told_in_the_staffs_language() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("t.yaml"), RULES).unwrap();
    let db = tempfile::tempdir().unwrap();
    let file = db.path().join("zaloflow.db");
    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["--ahead", "14đ"],
            "“14đ” không phải một khoảng thời gian",
            "“14đ” is not a length of time",
        ),
        (
            &["--ahead", "2 tuần"],
            "“2 tuần” không phải một khoảng thời gian",
            "“2 tuần” is not a length of time",
        ),
        (
            &["--ahead", "0d"],
            "“0d” phải dài hơn 0",
            "“0d” must be longer than nothing",
        ),
        (
            &["--ahead", "99999999999999d"],
            "không phải một khoảng thời gian",
            "is not a length of time",
        ),
        (
            &["--from", "hôm qua"],
            "“hôm qua” không phải một ngày",
            "“hôm qua” is neither a date",
        ),
        (
            &["--from", "2027-03-10", "--to", "2027-03-01"],
            "ngày kết thúc (--to) phải sau ngày bắt đầu (--from)",
            "the end (--to) must come after the start (--from)",
        ),
    ];
    for (args, vi, en) in cases {
        for (lang, expected) in [("vi", vi), ("en", en)] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_zaloflow"))
                .arg("forecast")
                .arg("--rules")
                .arg(rules.path())
                .args(args)
                .env("DATABASE_URL", format!("sqlite://{}", file.display()))
                .env("ZALOFLOW_RULES", rules.path())
                .env("ZALOFLOW_LANG", lang)
                .output()
                .unwrap();
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert_eq!(
                out.status.code(),
                Some(2),
                "{args:?} {lang}: {stdout}{stderr}"
            );
            assert!(stdout.contains(expected), "{args:?} {lang}: {stdout}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            assert!(!file.exists(), "{args:?}: the database was created");
        }
    }
}

/// Runs the test's own statement on either backend.
async fn sql(db: &Db, statement: &str) {
    use sqlx::Connection;
    match db {
        Db::Sqlite(dir, _) => {
            let conn = rusqlite::Connection::open(dir.path().join("zaloflow.db")).unwrap();
            conn.execute_batch(statement).unwrap();
        }
        Db::Pg(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query(statement).execute(&mut conn).await.unwrap();
        }
    }
}

const TOKEN: &str = "forecast-admin-token-0123456789";

async fn the_admin_api_and_the_page_forecast_a_draft(kind: &str) {
    let mut s = shop_settings(
        kind,
        Rules::Yaml(RULES),
        false,
        &[("ZALOFLOW_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    let from = hcm(2027, 3, 1, 0, 0);
    run_week(&mut s, from).await;
    let http = reqwest::Client::new();
    // The draft file stands in for the running folder's t.yaml.
    let r = http
        .post(format!("{}/admin/forecast", s.app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"files": {"t.yaml": format!("{RULES}{EXTRA}")}, "from": "2027-03-01", "to": "2027-03-07", "every": "1h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["mode"], "replay");
    assert_eq!(v["days"].as_array().unwrap().len(), 7, "{v}");
    let cam_on = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "cam_on")
        .unwrap();
    assert_eq!(cam_on["current"]["sends"], 0);
    assert_eq!(cam_on["draft"]["sends"], 5);
    assert_eq!(cam_on["actual"]["sends"], 0);
    assert_eq!(
        v["total"]["current"]["sends"], v["total"]["actual"]["sends"],
        "{v}"
    );
    assert!(!v["cannot_know"].as_array().unwrap().is_empty());

    // The same in the background: answered at once, followed to the same result.
    let body = json!({"files": {"t.yaml": format!("{RULES}{EXTRA}")}, "from": "2027-03-01", "to": "2027-03-07", "every": "1h"});
    let start = || {
        http.post(format!("{}/admin/forecasts", s.app.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let r = start().await.unwrap();
    assert_eq!(r.status(), 202);
    let run: serde_json::Value = r.json().await.unwrap();
    assert_eq!(run["state"], "running", "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    // One at a time: a second while the first runs is refused, naming the first.
    let r = start().await.unwrap();
    assert_eq!(r.status(), 409);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "forecast_running");
    assert!(e["error"]["message"].as_str().unwrap().contains(&id), "{e}");
    // The page says so too, with a link to the run under way, the draft kept in its form.
    let r = http
        .post(format!("{}/admin/forecast.html", s.app.base))
        .bearer_auth(TOKEN)
        .form(&[("name", "t.yaml"), ("yaml", "rules: []\n# <b>x</b>\n")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Một dự báo khác đang chạy"), "{html}");
    assert!(
        html.contains(&format!("href=\"/admin/forecast.html?run={id}\"")),
        "{html}"
    );
    assert!(html.contains("# &lt;b&gt;x&lt;/b&gt;"), "{html}");
    let done = follow_run(&http, &s, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    for part in ["rules", "days", "total", "events", "contacts"] {
        assert_eq!(done["result"][part], v[part], "{part}");
    }
    // Each rule set's last step: the whole window, every event.
    let steps = done["progress"].as_array().unwrap();
    assert_eq!(
        steps
            .iter()
            .map(|p| p["run"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["current", "draft"],
        "{done}"
    );
    for p in steps {
        assert_eq!(p["share"], 1.0, "{done}");
        assert_eq!(p["events"], v["events"], "{done}");
    }
    let r = http
        .get(format!("{}/admin/forecasts/00ff00ff00ff00ff", s.app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // A broken draft: its problems, with line:col.
    let r = http
        .post(format!("{}/admin/forecast", s.app.base))
        .bearer_auth(TOKEN)
        .json(&json!({"files": {"t.yaml": RULES.replace("when: follow", "when: folow")}}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["ok"], false);
    assert!(
        v["problems"][0].as_str().unwrap().contains("t.yaml:9:11"),
        "{v}"
    );

    // The page: the form, then a forecast of what it holds; what staff typed is escaped.
    let page = format!("{}/admin/forecast.html", s.app.base);
    let r = http.get(&page).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(&page).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<form method=\"post\""));
    let yaml = format!("{RULES}{EXTRA}# </textarea><script>alert(1)</script>\n");
    let r = http
        .post(&page)
        .bearer_auth(TOKEN)
        .form(&[("name", "t.yaml"), ("yaml", yaml.as_str()), ("ahead", "2d")])
        .send()
        .await
        .unwrap();
    // Sent on to the run's page, which refreshes itself until the result is there.
    assert_eq!(r.status(), 200);
    let mut at = r.url().clone();
    assert!(at.as_str().contains("?run="), "{at}");
    let mut html = r.text().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while html.contains("http-equiv=\"refresh\"") {
        assert!(html.contains("class=\"progress\""), "{html}");
        assert!(std::time::Instant::now() < deadline, "{html}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let r = http
            .get(at.clone())
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        at = r.url().clone();
        html = r.text().await.unwrap();
    }
    assert!(html.contains("<svg"), "{html}");
    assert!(html.contains("Dự báo"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains("&lt;script&gt;alert"), "{html}");

    // `rules check --forecast` prints the short form (the last 28 days of the wall clock).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.yaml"), format!("{RULES}{EXTRA}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zaloflow"))
        .args(["rules", "check", "--forecast", "--rules"])
        .arg(dir.path())
        .env("DATABASE_URL", s.db.url())
        .env("ZALOFLOW_RULES", s.config.rules_dir.as_os_str())
        .env("ZALOFLOW_LANG", "en")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Forecast of the last 28 days"), "{text}");
    s.stop().await;
}

/// Polls a background forecast until it is no longer running.
async fn follow_run(http: &reqwest::Client, s: &Shop, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let r = http
            .get(format!("{}/admin/forecasts/{id}", s.app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        if v["state"] != "running" {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{v}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Rules that meet what holds a send back or stops it: Zalo's cap of one promotion a day per
/// user (the held one holding back that user's later sends), the OA's daily template quota,
/// the daily budget, a channel not configured, re-activation decided by the scheduler.
const HOLDS: &str = r#"rules:
  - id: tra_loi
    when: message
    do:
      - send: Dạ shop nhận được rồi ạ!
  - id: km
    when: message
    do:
      - send: {text: Ưu đãi! Giảm 10%., via: zalo_promotion}
      - send: Cảm ơn bạn đã quan tâm!
  - id: mau
    when: message
    do:
      - template: {id: "231456", tag: customer_care, data: {ten: "{{display_name | \"bạn\"}}"}}
  - id: goi_lai
    when: message
    do:
      - task: {title: Gọi lại cho khách, due_in: 1d}
  - id: nhac_lai
    when:
      inactive: {min_days: 2, max_days: 5}
    do:
      - send: {text: Lâu rồi không thấy bạn!, via: zalo_promotion}
"#;

/// The copy's sends decided in memory (the default) and through its store's outbox table (as
/// before) come to the same tally, day by day and rule by rule, send for send — over holds
/// of every kind, which the table path has been tested against live sends with.
async fn the_sends_in_memory_are_decided_as_the_outbox_table_decides_them(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(HOLDS)).await;
    let from = hcm(2027, 3, 1, 0, 0);
    s.store.set_daily_quota(Some(3), from - DAY).await.unwrap();
    for d in 0..5 {
        for u in 0..6 {
            let user = format!("78{u:02}");
            // Users 4 and 5 are quiet after the second day (re-activation finds them).
            if u >= 4 && d >= 2 {
                continue;
            }
            let at = from + d * DAY + (9 + u) * HOUR;
            s.event(message(&user, &format!("h{d}{u}a"), at)).await;
            if u % 2 == 0 {
                let later = at + 30 * MINUTE;
                s.event(message(&user, &format!("h{d}{u}b"), later)).await;
            }
        }
    }
    let window = Window {
        from,
        to: from + 7 * DAY,
    };
    let run = |in_memory: bool| {
        let mut st = settings(&s);
        st.sends_in_memory = in_memory;
        st.cost.daily_budget_vnd = Some(1_500);
        st.channels = zaloflow::channels::configured::Configured {
            task: false,
            ..zaloflow::channels::configured::Configured::all()
        };
        st
    };
    let (memory, table) = (run(true), run(false));
    let (m, t) = replay_twice(&s, HOLDS, window, &memory, &table).await;
    let total = m.current.total();
    // What the comparison must cover, or it proves nothing.
    assert!(
        total.skips.get("held").copied().unwrap_or(0) >= 10,
        "{total:#?}"
    );
    assert!(
        total.skips.get("not_configured").copied().unwrap_or(0) > 0,
        "{total:#?}"
    );
    assert!(
        total.classes.get("promotion").copied().unwrap_or(0) > 5,
        "{total:#?}"
    );
    assert!(
        total.classes.get("consultation_free").copied().unwrap_or(0) > 5,
        "{total:#?}"
    );
    assert!(total.templates >= 3 && total.vnd > 0, "{total:#?}");
    assert!(
        m.current
            .per_rule()
            .get("nhac_lai")
            .is_some_and(|c| c.sent() > 0),
        "{:#?}",
        m.current.per_rule()
    );
    let differ: Vec<_> = m
        .current
        .days
        .iter()
        .flat_map(|(d, rules)| rules.iter().map(move |(r, c)| (d, r, c)))
        .filter(|(d, r, c)| t.current.days.get(*d).and_then(|x| x.get(*r)) != Some(*c))
        .map(|(d, r, c)| {
            format!(
                "{d} {r}: memory {c:?}\n  table {:?}",
                t.current.days.get(d).and_then(|x| x.get(r))
            )
        })
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    assert_eq!(
        sorted(m.current.sends.clone()),
        sorted(t.current.sends.clone())
    );
    assert_eq!(m.draft.days, t.draft.days);
    s.stop().await;
}

/// Rules that read and change everything a contact's state holds: tags (by rules, by the
/// scheduler, by Zalo), fields, lists (add, move), a campaign's steps, follows, limits.
const STATES: &str = r#"lists: [khach_moi, da_cham]
rules:
  - id: chao
    when: follow
    do:
      - send: Chào bạn!
      - list: {add: khach_moi}
  - id: hoi
    when: message
    once_per: day
    do:
      - send: Dạ shop nghe ạ!
      - tag: quan_tam
      - set_field: {name: lan_hoi, value: "có"}
  - id: moi
    when: message
    if:
      has_tag: quan_tam
      in_list: khach_moi
      field: {name: lan_hoi, is_set: true}
    once_per: ever
    do:
      - send: Bạn đang quan tâm, shop gửi ưu đãi nhé!
      - list: {move: da_cham, from: khach_moi}
  - id: nhac
    when:
      inactive: {min_days: 2, max_days: 5}
    do:
      - send: Lâu rồi không thấy bạn!
      - tag: im_lang
  - id: quay_lai
    when: message
    if:
      has_tag: im_lang
    do:
      - send: Mừng bạn quay lại!
      - untag: im_lang
  - id: vip
    when: {tag_added: khach_vip}
    do:
      - send: Cảm ơn khách VIP!
campaigns:
  - id: lam_quen
    enter_on: follow
    steps:
      - id: ngay_0
        do: [{send: "Ngày 0"}]
      - id: ngay_1
        day: 1
        at: "09:00"
        do: [{send: "Ngày 1"}, {set_field: {name: buoc, value: "1"}}]
      - id: ngay_3
        day: 3
        at: "09:00"
        do: [{send: "Ngày 3"}, {list: {add: da_cham}}]
"#;

/// The contacts' state kept in memory between batches (the default) decides what reading it
/// back from the copy every batch decides, day by day, rule by rule, send for send. (In debug
/// builds, which the tests are, every state the cache gives is also checked against the
/// copy's, contact by contact: a difference fails the run.)
async fn the_contacts_state_kept_in_memory_is_the_copys(kind: &str) {
    let mut s = shop(kind, Rules::Yaml(STATES)).await;
    let from = hcm(2027, 3, 1, 0, 0);
    for u in 0..8 {
        let user = format!("88{u:02}");
        let t = from + (8 + u) * HOUR;
        s.event(follow(&user, t)).await;
        for d in 0..6 {
            // Users 6 and 7 fall silent after the first day; user 5 comes back on day 5.
            if (u >= 6 && d >= 1) || (u == 5 && (1..5).contains(&d)) {
                continue;
            }
            let at = t + d * DAY + 20 * MINUTE;
            s.event(message(&user, &format!("s{d}{u}a"), at)).await;
            if u % 3 == 0 {
                s.event(message(&user, &format!("s{d}{u}b"), at + 2 * HOUR))
                    .await;
            }
        }
    }
    s.event(tagged("khach_vip", "8801", from + 2 * DAY + 15 * HOUR))
        .await;
    s.event(unfollow("8802", from + 3 * DAY + 11 * HOUR)).await;
    s.event(follow("8802", from + 4 * DAY + 11 * HOUR)).await;
    let window = Window {
        from,
        to: from + 7 * DAY,
    };
    let run = |states: usize| {
        let mut st = settings(&s);
        st.states_in_memory = states;
        st.every_ms = 10 * MINUTE;
        st
    };
    let (kept, read) = (run(forecast::STATES_IN_MEMORY), run(0));
    let (k, r) = replay_twice(&s, STATES, window, &kept, &read).await;
    // Every rule and step fired, or the comparison proves nothing.
    let per_rule = k.current.per_rule();
    for rule in [
        "chao",
        "hoi",
        "moi",
        "nhac",
        "quay_lai",
        "vip",
        "lam_quen/ngay_1",
        "lam_quen/ngay_3",
    ] {
        assert!(
            per_rule.get(rule).is_some_and(|c| c.sent() > 0),
            "{rule}: {per_rule:#?}"
        );
    }
    assert_eq!(k.current.days, r.current.days);
    assert_eq!(
        sorted(k.current.sends.clone()),
        sorted(r.current.sends.clone())
    );
    s.stop().await;
}

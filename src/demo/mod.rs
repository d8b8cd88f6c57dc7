//! `zaloflow demo`: the whole product on this machine with no account. A temporary SQLite
//! database, the shipped `rules/`, the real service (`run_with_clock`) and in-process fakes of
//! Zalo, an SMS gateway and the team chat; a scripted week of a shop replayed on a scripted
//! clock, printed as a timeline a person can read.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use chrono::TimeZone;
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::config::Config;
use crate::fakes::http_sink::HttpSink;
use crate::fakes::smtp::SmtpSink;
use crate::fakes::zalo::{FakeZalo, FakeZaloOptions};
use crate::store::DynStore;
use crate::zalo::signature;

pub const APP_ID: &str = "4318079521684321000";
pub const OA_SECRET_KEY: &str = "demo-oa-secret-key";
pub const ADMIN_TOKEN: &str = "demo-admin-token";
const OA_ID: &str = "388613280878808645";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep serving after the replay (post your own webhooks, open the board).
    pub serve: bool,
    pub port: u16,
    pub color: bool,
    /// The rules folder (default: `rules` if it exists, else the shipped rules built in).
    pub rules: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            serve: false,
            port: 8080,
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            rules: None,
        }
    }
}

/// The shipped rules, built into the binary so the demo also runs outside the repository.
const SHIPPED_RULES: &[(&str, &str)] = &[
    ("campaigns.yaml", include_str!("../../rules/campaigns.yaml")),
    ("gifts.yaml", include_str!("../../rules/gifts.yaml")),
    ("greetings.yaml", include_str!("../../rules/greetings.yaml")),
    (
        "reactivation.yaml",
        include_str!("../../rules/reactivation.yaml"),
    ),
    (
        "special_days.yaml",
        include_str!("../../rules/special_days.yaml"),
    ),
    ("tags.yaml", include_str!("../../rules/tags.yaml")),
    ("vip.yaml", include_str!("../../rules/vip.yaml")),
    ("welcome.yaml", include_str!("../../rules/welcome.yaml")),
];

/// A person of the scripted week.
#[derive(Clone, Copy)]
struct Persona {
    name: &'static str,
    user_id: &'static str,
}

const LAN: Persona = Persona {
    name: "Lan",
    user_id: "5100000000000000001",
};
const MINH: Persona = Persona {
    name: "Minh",
    user_id: "5100000000000000002",
};
const HUY: Persona = Persona {
    name: "Huy",
    user_id: "5100000000000000003",
};
const TRANG: Persona = Persona {
    name: "Trang",
    user_id: "5100000000000000004",
};
const BAO: Persona = Persona {
    name: "Bảo",
    user_id: "5100000000000000005",
};
const CHAU: Persona = Persona {
    name: "Châu",
    user_id: "5100000000000000006",
};
const HOA: &str = "Hoa";

fn persona_name(user_id: &str) -> String {
    [LAN, MINH, HUY, TRANG, BAO, CHAU]
        .iter()
        .find(|p| p.user_id == user_id)
        .map(|p| p.name.to_string())
        .unwrap_or_else(|| user_id.to_string())
}

/// What happens at one instant of the week.
enum Step {
    /// A title line for a new day.
    Day(&'static str),
    Text(Persona, &'static str),
    Follow(Persona),
    ChatNow(Persona),
    /// Staff tag the user in the OA console (Zalo sends `add_user_to_tag`).
    Tag(Persona, &'static str),
    /// The user shares name and phone (and birthday) through Zalo's info form.
    SubmitInfo(Persona, &'static str, &'static str, Option<&'static str>),
    /// Someone registers on the shop's landing page (`POST /forms/dang_ky`).
    Form(&'static str, &'static str, &'static str),
    /// The user unfollows while the webhook is down and Zalo has given up retrying: Zalo knows,
    /// zaloflow does not (the next send to them is refused with -213).
    UnfollowUnseen(Persona),
    /// The scheduler's pass at this instant (what `zaloflow tick --at` runs).
    Tick,
    /// The look for missed handoff deadlines (part of every `serve` minute).
    Escalate,
}

/// The transcript of a run, in plain text (the terminal gets it coloured).
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    pub lines: Vec<String>,
    pub inbound: usize,
    pub zalo_messages: usize,
    pub staff_notifications: usize,
    pub sms: usize,
    pub emails: usize,
}

struct Printer {
    color: bool,
    t: Transcript,
}

impl Printer {
    fn line(&mut self, style: &str, text: String) {
        let painted = match (self.color, style) {
            (false, _) | (_, "") => text.clone(),
            (true, s) => format!("\x1b[{s}m{text}\x1b[0m"),
        };
        println!("{painted}");
        self.t.lines.push(text);
    }
}

/// Runs the demo; returns what it printed.
pub async fn run(opts: DemoOptions) -> anyhow::Result<Transcript> {
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let work = tempfile::tempdir()?;
    let rules_dir = rules_dir(opts.rules.as_ref(), work.path())?;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        app_id: APP_ID.into(),
        ..FakeZaloOptions::default()
    })
    .await?;
    let sink = HttpSink::start().await?;
    let smtp = SmtpSink::start().await?;
    let db_url = format!("sqlite://{}", work.path().join("demo.db").display());
    let m = demo_settings(&db_url, &rules_dir, &zalo, &sink, &smtp, opts.port);
    let config = Config::from_map(&m)?;
    let tick_config = config.clone();
    let addr = if opts.serve {
        format!("127.0.0.1:{}", opts.port)
    } else {
        "127.0.0.1:0".to_string()
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let base = format!("http://{}", listener.local_addr()?);

    // Day 0 is Monday 23 November 2026, in Hồ Chí Minh City.
    let at = |day: i64, h: u32, mi: u32| {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("date")
            + chrono::Duration::days(day);
        tz.from_local_datetime(&d.and_hms_opt(h, mi, 0).expect("time"))
            .single()
            .expect("valid local time")
            .timestamp_millis()
    };
    let clock = Clock::fixed(at(0, 7, 0));
    zalo.set_now(Some(clock.now_utc()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::run_with_clock(
        config,
        listener,
        async move {
            let _ = stop_rx.await;
        },
        clock.clone(),
    ));
    let http = reqwest::Client::new();
    wait_healthy(&http, &base).await;
    let store = crate::store::open(&db_url).await?;

    let mut p = Printer {
        color: opts.color,
        t: Transcript::default(),
    };
    intro(&mut p, &rules_dir);

    let mut seen_refusals = std::collections::BTreeSet::new();
    let mut week = week(&at);
    week.sort_by_key(|(t, _)| *t);
    for (when, step) in week {
        clock.set(when);
        zalo.set_now(Some(clock.now_utc()));
        let stamp = crate::clock::to_utc(when)
            .with_timezone(&tz)
            .format("%a %H:%M");
        let before = (
            zalo.messages().len(),
            sink.requests().len(),
            smtp.mails().len(),
        );
        let body = match step {
            Step::Day(title) => {
                p.line("", String::new());
                p.line("1;4", title.to_string());
                continue;
            }
            Step::Text(..)
            | Step::Follow(_)
            | Step::ChatNow(_)
            | Step::Tag(..)
            | Step::SubmitInfo(..) => {
                p.t.inbound += 1;
                inbound(&mut p, &step, &stamp.to_string(), when)
            }
            Step::Form(name, phone, email) => {
                p.line("36", format!("{stamp}  {HOA} registers on the landing page (form dang_ky: {name}, {phone}, {email})"));
                p.t.inbound += 1;
                let r = http
                    .post(format!("{base}/forms/dang_ky"))
                    .json(&json!({"name": name, "phone": phone, "email": email}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "form answered {}", r.status());
                settle(&store, &clock).await?;
                report(&mut p, &zalo, &sink, &smtp, before);
                continue;
            }
            Step::UnfollowUnseen(who) => {
                p.line(
                    "36",
                    format!("{stamp}  {} unfollows the OA — the webhook was down and Zalo gave up retrying, so zaloflow still counts them as a follower", who.name),
                );
                zalo.set_follower(who.user_id, false);
                continue;
            }
            Step::Tick => {
                p.line("35", format!("{stamp}  scheduler tick"));
                let at = crate::clock::to_utc(when).with_timezone(&tz).to_rfc3339();
                let summary = crate::scheduler::command(&tick_config, Some(&at)).await?;
                for l in summary.lines().filter(|l| !l.trim().is_empty()) {
                    p.line("2", format!("           · {}", l.trim()));
                }
                settle(&store, &clock).await?;
                refusals(&mut p, &*store, &mut seen_refusals).await?;
                report(&mut p, &zalo, &sink, &smtp, before);
                continue;
            }
            Step::Escalate => {
                p.line(
                    "35",
                    format!("{stamp}  scheduler tick — no agent has answered Minh yet; Bảo has been quiet for 8 days, Châu for 18; Minh's birthday is in 3 days"),
                );
                let at = crate::clock::to_utc(when).with_timezone(&tz).to_rfc3339();
                crate::scheduler::command(&tick_config, Some(&at)).await?;
                settle(&store, &clock).await?;
                refusals(&mut p, &*store, &mut seen_refusals).await?;
                report(&mut p, &zalo, &sink, &smtp, before);
                continue;
            }
        };
        post_webhook(&http, &base, &body).await?;
        settle(&store, &clock).await?;
        report(&mut p, &zalo, &sink, &smtp, before);
    }

    summary(&mut p, &*store).await?;

    if opts.serve {
        clock.follow_system();
        zalo.set_now(None);
        print_serve_help(&base, opts.port);
        crate::shutdown_signal().await;
    }
    let _ = stop_tx.send(());
    server.await??;
    Ok(p.t)
}

/// The scripted week: what happens, when (`at(day, hour, minute)`, day 0 the Monday).
fn week(at: &dyn Fn(i64, u32, u32) -> i64) -> Vec<(i64, Step)> {
    vec![
        (
            at(-16, 7, 0),
            Step::Day("Before the week: two customers write, then go quiet"),
        ),
        (at(-16, 15, 55), Step::Follow(CHAU)),
        (
            at(-16, 16, 0),
            Step::Text(CHAU, "Shop còn mẫu áo khoác không?"),
        ),
        (at(-6, 15, 55), Step::Follow(BAO)),
        (
            at(-6, 16, 0),
            Step::Text(BAO, "Cảm ơn shop, mình nhận được hàng rồi"),
        ),
        (
            at(-6, 16, 2),
            Step::SubmitInfo(BAO, "Bảo Ngô", "0938111222", None),
        ),
        (at(0, 7, 0), Step::Day("Monday 23/11")),
        (at(0, 8, 0), Step::Follow(MINH)),
        (
            at(0, 8, 1),
            Step::SubmitInfo(MINH, "Minh Trần", "0987654321", Some("28/11/1990")),
        ),
        (at(0, 8, 5), Step::Follow(LAN)),
        (
            at(0, 8, 10),
            Step::Text(LAN, "Chào shop, áo thun này giá bao nhiêu ạ?"),
        ),
        (at(0, 9, 40), Step::Text(LAN, "Có size M không shop?")),
        (
            at(0, 12, 20),
            Step::Text(MINH, "Trưa nay shop có giao hàng không?"),
        ),
        (at(0, 15, 0), Step::Text(HUY, "Cho mình xem mẫu mới với")),
        (
            at(0, 19, 30),
            Step::Text(HUY, "Tối rồi, shop còn mở không?"),
        ),
        (at(1, 7, 0), Step::Day("Tuesday 24/11")),
        (at(1, 9, 0), Step::ChatNow(TRANG)),
        (
            at(1, 9, 5),
            Step::SubmitInfo(TRANG, "Trang Phạm", "0912345678", None),
        ),
        (at(1, 10, 15), Step::Text(LAN, "Chào buổi sáng shop!")),
        (at(1, 20, 0), Step::UnfollowUnseen(BAO)),
        (at(2, 7, 0), Step::Day("Wednesday 25/11")),
        (at(2, 9, 0), Step::Tag(MINH, "vip_customer")),
        (
            at(2, 14, 0),
            Step::Text(MINH, "Mình cần đổi size đơn hôm qua, gấp ạ"),
        ),
        (
            at(2, 10, 0),
            Step::Form("Hoa Lê", "0903123456", "hoa.le@example.vn"),
        ),
        (at(2, 14, 40), Step::Text(MINH, "Shop ơi?")),
        (at(2, 16, 30), Step::Escalate),
        (
            at(3, 7, 0),
            Step::Day("Thursday 26/11 — day 1 of Hoa's registration emails"),
        ),
        (at(3, 9, 0), Step::Tick),
        (at(4, 7, 0), Step::Day("Friday 27/11")),
        (at(4, 9, 0), Step::Tick),
        (at(5, 7, 0), Step::Day("Saturday 28/11 — Minh's birthday")),
        (at(5, 8, 0), Step::Tick),
        (at(5, 9, 0), Step::Tick),
    ]
}

/// The service's settings in the demo: the in-process fakes, and no schedule beside the script.
fn demo_settings(
    db_url: &str,
    rules_dir: &std::path::Path,
    zalo: &FakeZalo,
    sink: &HttpSink,
    smtp: &SmtpSink,
    port: u16,
) -> BTreeMap<String, String> {
    let fake = FakeZaloOptions::default();
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in [
        ("DATABASE_URL", db_url.to_string()),
        ("ZALO_APP_ID", APP_ID.into()),
        ("ZALO_OA_SECRET_KEY", OA_SECRET_KEY.into()),
        ("ZALOFLOW_RULES", rules_dir.display().to_string()),
        ("ZALO_API_BASE", zalo.base_url().into()),
        ("ZALO_OAUTH_BASE", zalo.base_url().into()),
        ("ZALO_ZNS_BASE", zalo.base_url().into()),
        ("ZALO_APP_SECRET", fake.app_secret.clone()),
        ("ZALO_ACCESS_TOKEN", fake.access_token.clone()),
        ("ZALO_REFRESH_TOKEN", fake.refresh_token.clone()),
        ("ZALOFLOW_ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ("ZALOFLOW_CHAT_WEBHOOK_URL", sink.url("/chat/default")),
        (
            "ZALOFLOW_CHAT_CHANNELS",
            format!(
                "agents={},supervisors={}",
                sink.url("/chat/agents"),
                sink.url("/chat/supervisors")
            ),
        ),
        ("ZALOFLOW_SMS_URL", sink.url("/sms")),
        ("ZALOFLOW_TASK_WEBHOOK_URL", sink.url("/task")),
        // The in-process fakes listen on 127.0.0.1.
        ("ZALOFLOW_ALLOW_PRIVATE_URLS", "true".into()),
        ("ZALOFLOW_ZALO_RATE", "0".into()),
        ("ZALOFLOW_SMTP_URL", smtp.url()),
        ("ZALOFLOW_SMTP_FROM", "shop@example.vn".into()),
        // The demo runs the scheduler and the escalation look itself, at scripted instants.
        ("ZALOFLOW_TICK", "off".into()),
        ("ZALOFLOW_ESCALATION_INTERVAL", "0".into()),
        // The scripted week is the timeline: no follower sync or profile lookups beside it.
        ("ZALOFLOW_CONTACTS_SYNC", "off".into()),
        ("ZALOFLOW_CONTACTS_LOOKUP", "false".into()),
        ("ZALOFLOW_PUBLIC_URL", format!("http://localhost:{}", port)),
    ] {
        m.insert(k.to_string(), v);
    }
    m
}

/// A customer's (or staff's) step as the webhook Zalo would send, its line printed.
fn inbound(p: &mut Printer, step: &Step, stamp: &str, when: i64) -> String {
    match *step {
        Step::Text(who, text) => {
            p.line("36", format!("{stamp}  {} → OA: “{text}”", who.name));
            event(
                "user_send_text",
                who.user_id,
                when,
                json!({"message": {"text": text, "msg_id": format!("demo-{when}-{}", who.user_id)}}),
            )
        }
        Step::Follow(who) => {
            p.line("36", format!("{stamp}  {} follows the OA", who.name));
            event("follow", who.user_id, when, json!({"source": "oa_profile"}))
        }
        Step::ChatNow(who) => {
            p.line("36", format!("{stamp}  {} taps “Nhắn tin”", who.name));
            event("user_click_chatnow", who.user_id, when, json!({}))
        }
        Step::Tag(who, tag) => {
            p.line(
                "36",
                format!("{stamp}  staff tag {} as {tag} in the OA console", who.name),
            );
            event(
                "add_user_to_tag",
                who.user_id,
                when,
                json!({"tag": {"name": tag, "user_ids": [who.user_id]}}),
            )
        }
        Step::SubmitInfo(who, name, phone, dob) => {
            p.line(
                "36",
                format!(
                    "{stamp}  {} shares name and phone ({name}, {phone})",
                    who.name
                ),
            );
            let mut info = json!({"name": name, "phone": phone});
            if let Some(d) = dob {
                info["user_dob"] = d.into();
            }
            event("user_submit_info", who.user_id, when, json!({"info": info}))
        }
        _ => unreachable!("not an inbound step"),
    }
}

/// The week's last line: what went in and out, dead letters included.
async fn summary(p: &mut Printer, store: &dyn crate::store::Store) -> anyhow::Result<()> {
    p.line("", String::new());
    let counts = store.job_counts().await?;
    let dead: i64 = counts
        .iter()
        .filter(|(_, s, _)| s == "dead")
        .map(|(_, _, n)| n)
        .sum();
    p.line(
        "1",
        format!(
            "Summary: {} customer events in, {} Zalo messages out, {} SMS, {} emails, {} staff notifications, {} dead letters.",
            p.t.inbound, p.t.zalo_messages, p.t.sms, p.t.emails, p.t.staff_notifications, dead
        ),
    );
    // What the week cost, at the default prices (ZALOFLOW_PRICES_VND): the class of each send
    // was recorded when it was sent.
    let spend = crate::report::spend::build(
        &store.spend_rows(0).await?,
        None,
        chrono_tz::Asia::Ho_Chi_Minh,
    );
    let top: Vec<String> = spend
        .by_rule
        .iter()
        .filter(|l| l.vnd > 0)
        .take(3)
        .map(|l| format!("{} {}", l.key, crate::report::spend::vnd(l.vnd)))
        .collect();
    let top = if top.is_empty() {
        String::new()
    } else {
        format!(" Costliest rules: {}.", top.join(", "))
    };
    p.line(
        "1",
        format!(
            "Cost: {}.{top} (`zaloflow report` shows it per rule, channel and day.)",
            crate::report::spend::headline(&spend, crate::i18n::Lang::En)
        ),
    );
    Ok(())
}

/// Waits (up to 5 s) until the service answers `/healthz`.
async fn wait_healthy(http: &reqwest::Client, base: &str) {
    for _ in 0..200 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The rules the demo runs: `--rules`, else `./rules`, else the shipped rules written out.
fn rules_dir(rules: Option<&PathBuf>, work: &std::path::Path) -> anyhow::Result<PathBuf> {
    Ok(match rules {
        Some(d) => d.clone(),
        None if PathBuf::from("rules").is_dir() => PathBuf::from("rules"),
        None => {
            let d = work.join("rules");
            std::fs::create_dir_all(&d)?;
            for (name, text) in SHIPPED_RULES {
                std::fs::write(d.join(name), text)?;
            }
            d
        }
    })
}

fn event(name: &str, user: &str, ts: i64, extra: Value) -> String {
    let mut v = json!({"app_id": APP_ID, "event_name": name, "timestamp": ts.to_string()});
    match name {
        "follow" | "unfollow" => {
            v["follower"] = json!({"id": user});
            v["oa_id"] = OA_ID.into();
        }
        "user_click_chatnow" | "add_user_to_tag" => v["oa_id"] = OA_ID.into(),
        _ => {
            v["sender"] = json!({"id": user});
            v["recipient"] = json!({"id": OA_ID});
        }
    }
    if name == "user_click_chatnow" {
        v["user_id"] = user.into();
    }
    if let (Some(o), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            o.insert(k.clone(), x.clone());
        }
    }
    v.to_string()
}

async fn post_webhook(http: &reqwest::Client, base: &str, body: &str) -> anyhow::Result<()> {
    let ts = serde_json::from_str::<Value>(body)?["timestamp"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let r = http
        .post(format!("{base}/webhooks/zalo"))
        .header(
            "X-ZEvent-Signature",
            signature::header_value(APP_ID, body.as_bytes(), &ts, OA_SECRET_KEY),
        )
        .body(body.to_string())
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "webhook answered {}", r.status());
    Ok(())
}

/// Waits until every stored event is processed and every job due by the scripted clock has
/// an outcome.
async fn settle(store: &DynStore, clock: &Clock) -> anyhow::Result<()> {
    for _ in 0..1000 {
        let inbox = store.inbox_stats().await?;
        let sending = store
            .job_counts()
            .await?
            .iter()
            .any(|(_, s, n)| s == "sending" && *n > 0);
        let due = store
            .next_job_due()
            .await?
            .is_some_and(|t| t <= clock.now());
        if inbox.pending == 0 && !sending && !due {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("the service did not settle within 10 s")
}

/// Prints what went out since `before` (messages at the fake Zalo, requests at the sink).
/// The demo's first lines: what it is and what is real in it.
fn intro(p: &mut Printer, rules_dir: &std::path::Path) {
    p.line(
        "1",
        "zaloflow demo — one week of a shop on Zalo, replayed in seconds".into(),
    );
    p.line(
        "2",
        format!(
            "(real service and shipped rules from {}; fake Zalo, SMS gateway and team chat in this process; clock scripted)",
            rules_dir.display()
        ),
    );
}

/// Sends Zalo refused whose next choice (`try:`) went instead, not shown before.
async fn refusals(
    p: &mut Printer,
    store: &dyn crate::store::Store,
    seen: &mut std::collections::BTreeSet<i64>,
) -> anyhow::Result<()> {
    let mut jobs = store.list_jobs(Some("skipped"), 100).await?;
    jobs.sort_by_key(|j| j.id);
    for j in jobs {
        if j.skip_reason.as_deref() != Some(crate::outbox::sender::FELL_BACK) || !seen.insert(j.id)
        {
            continue;
        }
        let why = j.last_error.unwrap_or_default();
        let why = why.strip_prefix("skipped: ").unwrap_or(&why);
        p.line(
            "31",
            format!(
                "           ✗ {} ({}): {why}",
                persona_name(&j.user_id),
                j.rule_id.unwrap_or_default()
            ),
        );
    }
    Ok(())
}

fn report(
    p: &mut Printer,
    zalo: &FakeZalo,
    sink: &HttpSink,
    smtp: &SmtpSink,
    before: (usize, usize, usize),
) {
    for m in smtp.mails().into_iter().skip(before.2) {
        p.t.emails += 1;
        p.line(
            "32",
            format!("           email → {}: “{}”", m.to.join(", "), m.subject),
        );
    }
    for m in zalo.messages().into_iter().skip(before.0) {
        let who = m.user_id.as_deref().map(persona_name).unwrap_or_default();
        let via = match m.kind.as_str() {
            "cs" => "Zalo message",
            "promotion" => "Zalo promotion",
            "transaction" => "Zalo transaction",
            other => other,
        };
        let text = m
            .shown()
            .unwrap_or_else(|| "(template)".into())
            .trim()
            .replace('\n', " ");
        p.t.zalo_messages += 1;
        p.line("32", format!("           OA → {who} [{via}]: “{text}”"));
    }
    for r in sink.requests().into_iter().skip(before.1) {
        let text = r.body["text"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .replace('\n', " ");
        if let Some(ch) = r.path.strip_prefix("/chat/") {
            p.t.staff_notifications += 1;
            p.line("33", format!("           team chat #{ch}: {text}"));
        } else if r.path == "/sms" {
            p.t.sms += 1;
            p.line(
                "32",
                format!(
                    "           SMS → {}: “{text}”",
                    r.body["to"].as_str().unwrap_or("")
                ),
            );
        } else if r.path == "/task" {
            p.t.staff_notifications += 1;
            p.line(
                "33",
                format!(
                    "           task created: {}",
                    r.body["title"].as_str().unwrap_or("")
                ),
            );
        }
    }
}

fn print_serve_help(base: &str, port: u16) {
    let ts = crate::clock::system_now().to_string();
    let body = json!({
        "app_id": APP_ID, "event_name": "user_send_text", "timestamp": ts,
        "sender": {"id": "5100000000000000099"}, "recipient": {"id": OA_ID},
        "message": {"text": "Chào shop!", "msg_id": format!("try-{ts}")},
    })
    .to_string();
    let sig = signature::header_value(APP_ID, body.as_bytes(), &ts, OA_SECRET_KEY);
    println!();
    println!("The demo keeps running on {base} (ctrl-c to stop). Try a webhook of your own:");
    println!();
    println!(
        "  curl -s -X POST http://localhost:{port}/webhooks/zalo -H 'X-ZEvent-Signature: {sig}' -H 'Content-Type: application/json' -d '{body}'"
    );
    println!();
    println!("  Admin API:  curl -s -H 'Authorization: Bearer {ADMIN_TOKEN}' http://localhost:{port}/admin/outbox");
    println!(
        "  Readiness:  http://localhost:{port}/readyz    Metrics: http://localhost:{port}/metrics"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_shipped_rule_file_is_built_in() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let built_in: Vec<String> = super::SHIPPED_RULES
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(on_disk, built_in, "add new rule files to SHIPPED_RULES");
    }
}

//! The rig of the scheduler and campaign tests: the real service (`serve`, its own ticks off)
//! takes events over HTTP and processes them; the tests tick at chosen instants with
//! `scheduler::tick` — the function `zaloflow tick --at` calls — whose delivery pass sends to
//! the fake Zalo, an HTTP sink (SMS, team chat, tasks) and, when asked, a real SMTP server.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use zaloflow::clock::Clock;
use zaloflow::config::Config;
use zaloflow::engine::Engine;
use zaloflow::fakes::http_sink::HttpSink;
use zaloflow::fakes::zalo::{FakeZalo, FakeZaloOptions};
use zaloflow::scheduler::{self, TickContext, TickReport};
use zaloflow::store::{self, DynStore, NewInboxEvent};
use zaloflow::zalo::event::{internal_body, EventKind};

use super::common::*;

pub const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;
pub const DAY: i64 = 86_400_000;
pub const HOUR: i64 = 3_600_000;
pub const MINUTE: i64 = 60_000;

pub enum Rules<'a> {
    /// The shipped `rules/` folder.
    Shipped,
    /// One file with this YAML.
    Yaml(&'a str),
}

pub struct Shop {
    pub db: Db,
    pub app: TestApp,
    pub store: DynStore,
    pub zalo: FakeZalo,
    pub sink: HttpSink,
    pub config: Config,
    pub engine: Arc<Engine>,
    pub smtp: Option<SmtpServer>,
    _rules: Option<tempfile::TempDir>,
    events: i64,
}

pub async fn shop(kind: &str, rules: Rules<'_>) -> Shop {
    shop_with(kind, rules, false).await
}

pub async fn shop_with(kind: &str, rules: Rules<'_>, with_smtp: bool) -> Shop {
    shop_settings(kind, rules, with_smtp, &[]).await
}

/// `shop_with`, the service and the tick's sender configured with `settings` as well.
pub async fn shop_settings(
    kind: &str,
    rules: Rules<'_>,
    with_smtp: bool,
    settings: &[(&str, &str)],
) -> Shop {
    let db = Db::new(kind).await;
    let zalo = FakeZalo::start(FakeZaloOptions {
        accept_unknown_users: true,
        // Tests tick at instants years ahead: tokens outlive them.
        expires_in_secs: 20 * 365 * 86_400,
        ..Default::default()
    })
    .await
    .unwrap();
    let sink = HttpSink::start().await.unwrap();
    let (dir, tmp) = match rules {
        Rules::Shipped => (Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"), None),
        Rules::Yaml(y) => {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join("t.yaml"), y).unwrap();
            (d.path().to_path_buf(), Some(d))
        }
    };
    let smtp = if with_smtp {
        Some(SmtpServer::start().await)
    } else {
        None
    };
    let mut extra = fake_channels(&zalo, &sink);
    extra.push(("ZALOFLOW_RULES".into(), dir.display().to_string()));
    extra.push(("ZALOFLOW_TICK".into(), "off".into()));
    extra.push(("ZALOFLOW_PUBLIC_RATE_PER_MINUTE".into(), "0".into()));
    extra.push(("ZALOFLOW_PUBLIC_URL".into(), "http://shop.test".into()));
    if let Some(s) = &smtp {
        extra.push((
            "ZALOFLOW_SMTP_URL".into(),
            format!("smtp://127.0.0.1:{}", s.port),
        ));
        extra.push(("ZALOFLOW_SMTP_FROM".into(), "Shop <shop@shop.test>".into()));
    }
    extra.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let config = config(db.url(), &extra);
    let app = TestApp::spawn(config.clone()).await;
    let store = store::open(db.url()).await.unwrap();
    let set = zaloflow::rules::load_dir(
        &dir,
        &zaloflow::rules::LoadOptions {
            extra_chat_channels: config.chat_channels.keys().cloned().collect(),
            extra_lists: Vec::new(),
            ..Default::default()
        },
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let engine = Arc::new(Engine::with_rule_set(Arc::new(set), TZ));
    Shop {
        db,
        app,
        store,
        zalo,
        sink,
        config,
        engine,
        smtp,
        _rules: tmp,
        events: 0,
    }
}

impl Shop {
    /// Stores a webhook delivery (as the webhook route does) and waits until it is processed.
    pub async fn event(&mut self, body: String) {
        // The fake Zalo learns of the user's interactions too (its 7-day window).
        let v: Value = serde_json::from_str(&body).unwrap();
        let name = v["event_name"].as_str().unwrap_or("");
        if name.starts_with("user_send") || name == "follow" || name == "user_submit_info" {
            let user = v["sender"]["id"]
                .as_str()
                .or(v["follower"]["id"].as_str())
                .unwrap_or("");
            let ts: i64 = v["timestamp"].as_str().unwrap_or("0").parse().unwrap_or(0);
            self.zalo
                .touch_user(user, chrono::DateTime::from_timestamp_millis(ts).unwrap());
        }
        // Received at its own time, as the service would in the simulated time: an event
        // stamped ahead of the service's clock is processed as of when it arrived (issue 29),
        // and these tests stamp events months ahead of the wall clock.
        let ev = zaloflow::zalo::event::normalise(&v).unwrap();
        let ts = ev.timestamp_ms.unwrap_or_else(zaloflow::clock::system_now);
        self.store
            .insert_inbox(&[NewInboxEvent {
                dedupe_key: zaloflow::zalo::event::dedupe_key(&ev, &v),
                event_name: ev.name.clone(),
                user_id: ev.user_id().unwrap_or_default().to_string(),
                priority: 0,
                body: body.clone(),
                event_ts: ev.timestamp_ms,
                received_at: ts,
            }])
            .await
            .unwrap();
        self.events += 1;
        self.processed().await;
    }

    /// One of the service's own events (a form registration, an open…) at `ts`, stored as the
    /// HTTP routes store it, then processed.
    pub async fn internal(&mut self, kind: EventKind, ts: i64, dedupe_key: &str) {
        let (name, body) = internal_body(&kind, ts).unwrap();
        let user = zaloflow::zalo::event::parse(body.as_bytes())
            .unwrap()
            .user_id()
            .unwrap_or("")
            .to_string();
        self.store
            .insert_inbox(&[NewInboxEvent {
                dedupe_key: dedupe_key.into(),
                event_name: name.into(),
                user_id: user,
                priority: 0,
                body,
                event_ts: Some(ts),
                received_at: ts,
            }])
            .await
            .unwrap();
        self.events += 1;
        self.processed().await;
    }

    /// A registration on `form` at `ts` (`repeat`: the contact registered there before).
    #[allow(clippy::too_many_arguments)]
    pub async fn register(
        &mut self,
        form: &str,
        contact: &str,
        phone: &str,
        email: Option<&str>,
        fields: &[(&str, &str)],
        ts: i64,
        repeat: bool,
    ) {
        let kind = EventKind::FormSubmitted {
            contact_id: contact.into(),
            form: form.into(),
            name: Some("Lan".into()),
            phone: Some(phone.into()),
            email: email.map(str::to_string),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            repeat,
        };
        self.internal(kind, ts, &format!("form:{form}:{contact}:{ts}"))
            .await;
    }

    /// Waits until every event stored so far is processed.
    pub async fn processed(&self) {
        let (s, n) = (&self.store, self.events);
        wait_until(Duration::from_secs(20), || async move {
            let st = s.inbox_stats().await.unwrap();
            st.done + st.failed >= n && st.pending == 0
        })
        .await;
    }

    /// The tick's context at `at`: delivery through a sender whose clock reads `at`.
    pub async fn context(&self, at: i64, owner: &str) -> TickContext {
        let sender =
            zaloflow::build_sender(&self.config, self.store.clone(), Clock::fixed(at), owner)
                .unwrap()
                .with_tracking(
                    zaloflow::email_tracking(&self.config, &self.store)
                        .await
                        .unwrap(),
                );
        TickContext::new(self.store.clone(), self.engine.clone(), owner).with_sender(sender)
    }

    /// One tick at `at` (the fake Zalo's clock set to it, for its 7-day window).
    pub async fn tick(&self, at: i64) -> TickReport {
        self.tick_in_chunks(at, scheduler::TickOptions::default().page)
            .await
    }

    /// `tick`, deciding and writing contacts `page` at a time.
    pub async fn tick_in_chunks(&self, at: i64, page: usize) -> TickReport {
        self.zalo
            .set_now(Some(chrono::DateTime::from_timestamp_millis(at).unwrap()));
        let ctx = self
            .context(at, "test/tick")
            .await
            .with_options(scheduler::TickOptions {
                page,
                ..scheduler::TickOptions::default()
            });
        let r = scheduler::tick(&ctx, at).await.unwrap();
        assert!(r.ran, "{r}");
        r
    }

    /// The chat notices staff got (any chat channel) that contain `needle`.
    pub fn notices(&self, needle: &str) -> usize {
        self.sink
            .requests()
            .iter()
            .filter(|r| r.raw_body.contains(needle))
            .count()
    }

    /// SMS texts to `phone`, in order.
    pub fn sms_to(&self, phone: &str) -> Vec<String> {
        self.sink
            .requests()
            .into_iter()
            .filter(|r| r.path == "/sms" && r.body["to"] == phone)
            .map(|r| r.body["text"].as_str().unwrap_or("").to_string())
            .collect()
    }

    pub fn sink_on(&self, path: &str) -> Vec<Value> {
        self.sink
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| r.body)
            .collect()
    }

    /// (kind, text) of the Zalo messages to `user`, in order.
    pub fn zalo_to(&self, user: &str) -> Vec<(String, String)> {
        self.zalo
            .messages()
            .iter()
            .filter(|m| m.user_id.as_deref() == Some(user))
            .map(|m| (m.kind.clone(), m.shown().unwrap_or_default()))
            .collect()
    }

    /// Every Zalo API call to `user` (refused ones too).
    pub fn zalo_calls_to(&self, user: &str) -> usize {
        self.zalo
            .arrivals()
            .iter()
            .filter(|a| a.user_id.as_deref() == Some(user) && !a.path.contains("tag"))
            .count()
    }

    pub async fn member(&self, campaign: &str, contact: &str) -> zaloflow::store::CampaignMember {
        self.store
            .campaign_members(campaign)
            .await
            .unwrap()
            .into_iter()
            .find(|m| m.contact_id == contact)
            .unwrap_or_else(|| panic!("{contact} is not a member of {campaign}"))
    }

    pub async fn stop(self) {
        self.app.shutdown().await;
    }
}

/// A follower who wrote at `ts`.
pub fn message(user: &str, id: &str, ts: i64) -> String {
    event_at(
        "user_send_text",
        user,
        ts,
        serde_json::json!({"message": {"text": "shop ơi", "msg_id": id}}),
    )
}

pub fn follow(user: &str, ts: i64) -> String {
    event_at(
        "follow",
        user,
        ts,
        serde_json::json!({"source": "oa_profile"}),
    )
}

pub fn unfollow(user: &str, ts: i64) -> String {
    event_at(
        "unfollow",
        user,
        ts,
        serde_json::json!({"source": "oa_profile"}),
    )
}

/// A real SMTP server (aiosmtpd, `tests/smtp_server.py`) writing each message as JSON.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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
            .expect("the email tests need python3 with aiosmtpd (pip install aiosmtpd)");
        let mut server = SmtpServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("aiosmtpd exited at start ({status}); is `pip install aiosmtpd` done?");
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.port = port;
        server
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for n in 1.. {
            let path: PathBuf = self.dir.path().join(format!("{n}.json"));
            match std::fs::read_to_string(&path) {
                Ok(s) => out.push(serde_json::from_str(&s).unwrap()),
                Err(_) => break,
            }
        }
        out
    }

    /// The HTML part of a message.
    pub fn html(msg: &Value) -> String {
        msg["parts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["content_type"] == "text/html")
            .map(|p| p["content"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// The first `http…/t/o/…` or `/t/c/…` URL in `html` (of that kind).
pub fn tracking_url(html: &str, kind: char) -> Option<String> {
    let needle = format!("/t/{kind}/");
    let at = html.find(&needle)?;
    let start = html[..at].rfind('"')? + 1;
    let end = at + html[at..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

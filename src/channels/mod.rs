//! Outbound channels: one [`Channel`] trait, one client per channel, and the [`Channels`] router
//! that the outbox calls with a job's [`Payload`].
//!
//! Every failure is sorted into [`SendError`]: transient (retry later), not-before (retry at an
//! instant), permanent (never retry) or not configured. Secrets (tokens, passwords, webhook URLs,
//! header values) never reach `Debug` output, logs or error messages.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::zalo::client::ZaloClient;
use crate::zalo::token::{self, TokenConfig, TokenManager, TokenPair, TokenStore};

pub mod chat;
pub mod configured;
pub mod email;
pub mod guard;
pub mod sms;
pub mod task;
pub mod zalo;
pub mod zns;

pub use crate::zalo::client::ZaloKind;
pub use zalo::classify_zalo;
pub use zaloflow_core::job::{EmailTrack, Payload};

/// A successful send.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered {
    /// The provider's id for what was sent (Zalo message_id, ZNS msg_id, SMTP Message-ID…).
    pub provider_id: Option<String>,
    /// What the provider answered (for the outbox's record).
    pub detail: Value,
}

/// Why a send failed, and what the outbox should do about it. `code` is Zalo's error code, or
/// the HTTP status for webhooks, or the SMTP reply code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// Try again later (timeouts, connection errors, HTTP 5xx/408/429, Zalo -32 -211 -218 -100).
    #[error("transient failure{}: {message}", fmt_code(*.code))]
    Transient {
        code: Option<i64>,
        message: String,
        retry_after: Option<Duration>,
    },
    /// Try again not before `at` (Zalo -234 "not at night" -> next 06:00 in the OA time zone).
    #[error("deferred until {at}{}: {message}", fmt_code(*.code))]
    NotBefore {
        code: Option<i64>,
        message: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// Never retry (HTTP 4xx other than 408/429; Zalo -201 -213 -217 -227 -230 -232 -240 -244).
    #[error("permanent failure{}: {message}", fmt_code(*.code))]
    Permanent { code: Option<i64>, message: String },
    /// The channel is not configured (e.g. no `ZALOFLOW_SMS_URL`): permanent.
    #[error("channel {channel} is not configured")]
    NotConfigured { channel: &'static str },
}

fn fmt_code(code: Option<i64>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}

impl SendError {
    /// True for the failures a retry may cure (transient and not-before).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SendError::Transient { .. } | SendError::NotBefore { .. }
        )
    }

    /// The provider's code, if any.
    pub fn code(&self) -> Option<i64> {
        match self {
            SendError::Transient { code, .. }
            | SendError::NotBefore { code, .. }
            | SendError::Permanent { code, .. } => *code,
            SendError::NotConfigured { .. } => None,
        }
    }

    pub(crate) fn permanent(message: impl Into<String>) -> SendError {
        SendError::Permanent {
            code: None,
            message: message.into(),
        }
    }
}

/// One outbound channel.
#[async_trait]
pub trait Channel: Send + Sync {
    fn name(&self) -> &'static str;
    async fn send(&self, p: &Payload) -> Result<Delivered, SendError>;
}

/// The clock used to decide "not before" instants; the system clock unless replaced (demo, tick).
pub use crate::clock::Clock;

/// What the channels need from the configuration. `Debug` redacts every secret: tokens, the app
/// secret, the SMTP password, header values and webhook URLs (shown as scheme://host only).
#[derive(Clone)]
pub struct ChannelsConfig {
    /// `ZALO_API_BASE`
    pub zalo_api_base: String,
    /// `ZALO_OAUTH_BASE`
    pub zalo_oauth_base: String,
    /// `ZALO_ZNS_BASE`
    pub zalo_zns_base: String,
    /// `ZALO_APP_ID`
    pub app_id: Option<String>,
    /// `ZALO_APP_SECRET`
    pub app_secret: Option<String>,
    /// `ZALO_ACCESS_TOKEN` (the persisted pair wins over it)
    pub access_token: Option<String>,
    /// `ZALO_REFRESH_TOKEN` (the persisted pair wins over it)
    pub refresh_token: Option<String>,
    /// `ZALOFLOW_SMS_URL`
    pub sms_url: Option<String>,
    /// extra headers of every SMS request (e.g. `Authorization`)
    pub sms_headers: Vec<(String, String)>,
    /// `ZALOFLOW_SMTP_URL`: `smtp://user:pass@host:port` (plain only to localhost, STARTTLS
    /// required elsewhere unless `?tls=none`), `smtps://…` (TLS from the start)
    pub smtp_url: Option<String>,
    /// `From:` of emails; defaults to the SMTP user when it is an address, else
    /// `zaloflow@<smtp host>`
    pub smtp_from: Option<String>,
    /// `ZALOFLOW_CHAT_WEBHOOK_URL`: the default team-chat target
    pub chat_webhook_url: Option<String>,
    /// named team-chat targets: name -> URL
    pub chat_channels: BTreeMap<String, String>,
    /// JSON body template for chat webhooks; `{{text}}` and `{{channel}}` are replaced by
    /// JSON-escaped strings (write them inside quotes), `{{data}}` by the payload's `data` JSON.
    /// None: Slack-compatible `{"text": …}`.
    pub chat_body_template: Option<String>,
    /// `ZALOFLOW_TASK_WEBHOOK_URL`
    pub task_webhook_url: Option<String>,
    /// `ZALOFLOW_TZ`: the OA's time zone
    pub tz: chrono_tz::Tz,
    /// total timeout of one outbound call (the connect timeout is at most 10 s of it)
    pub timeout: Duration,
    /// `ZALOFLOW_ALLOW_PRIVATE_URLS`: URLs from rule files or the admin API may reach internal
    /// addresses (default false: the SSRF guard of [`guard`] refuses them). The webhook URLs
    /// above are the operator's and trusted either way.
    pub allow_private_urls: bool,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            zalo_api_base: "https://openapi.zalo.me".into(),
            zalo_oauth_base: "https://oauth.zaloapp.com".into(),
            zalo_zns_base: "https://business.openapi.zalo.me".into(),
            app_id: None,
            app_secret: None,
            access_token: None,
            refresh_token: None,
            sms_url: None,
            sms_headers: Vec::new(),
            smtp_url: None,
            smtp_from: None,
            chat_webhook_url: None,
            chat_channels: BTreeMap::new(),
            chat_body_template: None,
            task_webhook_url: None,
            tz: chrono_tz::Asia::Ho_Chi_Minh,
            timeout: Duration::from_secs(15),
            allow_private_urls: false,
        }
    }
}

const REDACTED: &str = "<redacted>";

fn redact_opt(v: &Option<String>) -> Option<&'static str> {
    v.as_ref().map(|_| REDACTED)
}

/// A URL as it may be shown: scheme, host and port only (paths and queries of webhook URLs are
/// often the secret itself, and userinfo holds passwords).
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path() != "/" || u.query().is_some() {
                "/…"
            } else {
                ""
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => REDACTED.to_string(),
    }
}

impl fmt::Debug for ChannelsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        f.debug_struct("ChannelsConfig")
            .field("zalo_api_base", &self.zalo_api_base)
            .field("zalo_oauth_base", &self.zalo_oauth_base)
            .field("zalo_zns_base", &self.zalo_zns_base)
            .field("app_id", &self.app_id)
            .field("app_secret", &redact_opt(&self.app_secret))
            .field("access_token", &redact_opt(&self.access_token))
            .field("refresh_token", &redact_opt(&self.refresh_token))
            .field("sms_url", &url(&self.sms_url))
            .field(
                "sms_headers",
                &self
                    .sms_headers
                    .iter()
                    .map(|(k, _)| (k.as_str(), REDACTED))
                    .collect::<Vec<_>>(),
            )
            .field("smtp_url", &url(&self.smtp_url))
            .field("smtp_from", &self.smtp_from)
            .field("chat_webhook_url", &url(&self.chat_webhook_url))
            .field(
                "chat_channels",
                &self
                    .chat_channels
                    .iter()
                    .map(|(k, v)| (k.as_str(), redact_url(v)))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("chat_body_template", &self.chat_body_template)
            .field("task_webhook_url", &url(&self.task_webhook_url))
            .field("tz", &self.tz)
            .field("timeout", &self.timeout)
            .field("allow_private_urls", &self.allow_private_urls)
            .finish()
    }
}

/// One client per channel; dispatches a [`Payload`] to the right one. Build it once and share it.
pub struct Channels {
    zalo_client: Arc<ZaloClient>,
    zalo: zalo::ZaloChannel,
    zns: zns::ZnsChannel,
    sms: Option<sms::SmsChannel>,
    email: Option<email::EmailChannel>,
    chat: Option<chat::ChatChannel>,
    task: Option<task::TaskChannel>,
}

impl fmt::Debug for Channels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Channels")
            .field("sms", &self.sms.is_some())
            .field("email", &self.email.is_some())
            .field("chat", &self.chat.is_some())
            .field("task", &self.task.is_some())
            .finish_non_exhaustive()
    }
}

impl Channels {
    /// Builds every configured channel. The Zalo token pair comes from `store` first, then from
    /// the configuration. Fails on a configuration that can never work (bad SMTP URL, chat
    /// template that is not JSON, invalid header), naming the setting but not its secret.
    pub fn new(cfg: &ChannelsConfig, store: Arc<dyn TokenStore>) -> anyhow::Result<Channels> {
        let http = token::http_client(cfg.timeout);
        let tokens = Arc::new(TokenManager::new(
            http.clone(),
            TokenConfig {
                oauth_base: cfg.zalo_oauth_base.clone(),
                app_id: cfg.app_id.clone(),
                app_secret: cfg.app_secret.clone(),
                env_pair: TokenPair::from_env(
                    cfg.access_token.as_deref(),
                    cfg.refresh_token.as_deref(),
                ),
            },
            store,
        ));
        let zalo_client = Arc::new(ZaloClient::new(
            http.clone(),
            &cfg.zalo_api_base,
            &cfg.zalo_zns_base,
            tokens,
        ));
        // These webhook URLs are the operator's (environment, zaloflow.toml): trusted wherever
        // they point — an SMS gateway beside the service, another app on the private network.
        // Only their scheme is checked. URLs from rule files or the admin API go through the
        // SSRF guard instead (see [`guard`]).
        let urls = [
            ("ZALOFLOW_SMS_URL", &cfg.sms_url),
            ("ZALOFLOW_CHAT_WEBHOOK_URL", &cfg.chat_webhook_url),
            ("ZALOFLOW_TASK_WEBHOOK_URL", &cfg.task_webhook_url),
        ];
        for (setting, url) in urls {
            if let Some(url) = url {
                guard::check_url(setting, url, true)?;
            }
        }
        for (name, url) in &cfg.chat_channels {
            guard::check_url(&format!("ZALOFLOW_CHAT_CHANNELS ({name})"), url, true)?;
        }
        let webhook_http = guard::webhook_client(cfg.timeout, true);
        let sms = match &cfg.sms_url {
            Some(url) => Some(sms::SmsChannel::new(
                webhook_http.clone(),
                url.clone(),
                cfg.sms_headers.clone(),
            )?),
            None => None,
        };
        let email = match &cfg.smtp_url {
            Some(url) => Some(email::EmailChannel::new(
                url,
                cfg.smtp_from.as_deref(),
                cfg.timeout,
            )?),
            None => None,
        };
        let chat = if cfg.chat_webhook_url.is_some() || !cfg.chat_channels.is_empty() {
            Some(chat::ChatChannel::new(
                webhook_http.clone(),
                cfg.chat_webhook_url.clone(),
                cfg.chat_channels.clone(),
                cfg.chat_body_template.clone(),
            )?)
        } else {
            None
        };
        let task = cfg
            .task_webhook_url
            .as_ref()
            .map(|url| task::TaskChannel::new(webhook_http.clone(), url.clone()));
        Ok(Channels {
            zalo: zalo::ZaloChannel::new(zalo_client.clone(), cfg.tz),
            zns: zns::ZnsChannel::new(zalo_client.clone(), cfg.tz),
            zalo_client,
            sms,
            email,
            chat,
            task,
        })
    }

    /// Replaces the clock used for "not before" instants (demo, `tick --at`).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.zalo = self.zalo.with_clock(clock.clone());
        self.zns = self.zns.with_clock(clock);
        self
    }

    /// The Zalo OA client (user detail, quota, tags) with its token manager.
    pub fn zalo_client(&self) -> &Arc<ZaloClient> {
        &self.zalo_client
    }

    /// Whether the channel with this name is configured. Zalo and ZNS always count as
    /// configured here: their tokens may come from the store.
    pub fn is_configured(&self, name: &str) -> bool {
        match name {
            zalo::NAME | zns::NAME => true,
            sms::NAME => self.sms.is_some(),
            email::NAME => self.email.is_some(),
            chat::NAME => self.chat.is_some(),
            task::NAME => self.task.is_some(),
            _ => false,
        }
    }

    fn channel_for(&self, p: &Payload) -> Result<&dyn Channel, SendError> {
        fn opt<'a, C: Channel>(
            c: &'a Option<C>,
            name: &'static str,
        ) -> Result<&'a dyn Channel, SendError> {
            c.as_ref()
                .map(|c| c as &dyn Channel)
                .ok_or(SendError::NotConfigured { channel: name })
        }
        match p {
            Payload::Zalo { .. } | Payload::ZaloTag { .. } => Ok(&self.zalo),
            Payload::Zns { .. } => Ok(&self.zns),
            Payload::Sms { .. } => opt(&self.sms, sms::NAME),
            Payload::Email { .. } => opt(&self.email, email::NAME),
            Payload::Chat { .. } => opt(&self.chat, chat::NAME),
            Payload::Task { .. } => opt(&self.task, task::NAME),
        }
    }
}

#[async_trait]
impl Channel for Channels {
    fn name(&self) -> &'static str {
        "channels"
    }

    #[tracing::instrument(skip_all, fields(channel = p.channel_name()))]
    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        let result = self.channel_for(p)?.send(p).await;
        match &result {
            Ok(d) => tracing::debug!(provider_id = ?d.provider_id, "delivered"),
            Err(e) => tracing::warn!(error = %e, "send failed"),
        }
        result
    }
}

/// The answer a channel gives for a payload of another channel (a routing bug).
pub(crate) fn wrong_payload(channel: &'static str, p: &Payload) -> SendError {
    SendError::permanent(format!(
        "the {channel} channel cannot send a {} payload",
        p.channel_name()
    ))
}

/// POSTs JSON to a webhook and sorts the answer: 2xx delivered; 408/429/5xx, timeouts and
/// connection errors transient (honouring `Retry-After`, at most 1 h); other statuses permanent
/// with the body's first 200 characters. The URL never appears in an error.
pub(crate) async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(String, String)],
    body: &Value,
) -> Result<Delivered, SendError> {
    let mut request = http.post(url).json(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let response = request.send().await.map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let retry_after = crate::zalo::client::retry_after(response.headers());
    let text = response.text().await.map_err(|e| transport_error(&e))?;
    if (200..300).contains(&status) {
        let answer = serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|_| Value::String(token::truncate(&text, 200)));
        let provider_id =
            ["id", "message_id", "msg_id", "ts"]
                .iter()
                .find_map(|k| match answer.get(*k) {
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                });
        return Ok(Delivered {
            provider_id,
            detail: serde_json::json!({ "status": status, "answer": answer }),
        });
    }
    Err(classify_http(status, retry_after, &text))
}

/// Sorts a non-2xx HTTP status (see [`post_json`]).
pub fn classify_http(status: u16, retry_after: Option<Duration>, body: &str) -> SendError {
    let message = format!("HTTP {status}: {}", token::truncate(body.trim(), 200));
    if status == 408 || status == 429 || status >= 500 {
        SendError::Transient {
            code: Some(status.into()),
            message,
            retry_after: retry_after.map(|d| d.min(Duration::from_secs(3600))),
        }
    } else {
        SendError::Permanent {
            code: Some(status.into()),
            message,
        }
    }
}

pub(crate) fn transport_error(e: &reqwest::Error) -> SendError {
    if guard::is_blocked(e) {
        // The host resolved only to internal addresses: retrying would not change that.
        let host = e
            .url()
            .and_then(|u| u.host_str())
            .unwrap_or("the host")
            .to_string();
        return SendError::permanent(guard::Blocked { host }.to_string());
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = format!("{kind}: {e}");
    if let Some(url) = e.url() {
        // reqwest names the URL in its message; webhook URLs are secrets
        message = message.replace(url.as_str(), &redact_url(url.as_str()));
    }
    SendError::Transient {
        code: None,
        message,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_json_shapes_round_trip() {
        let payloads = vec![
            Payload::Zalo {
                user_id: "123".into(),
                kind: ZaloKind::Promotion,
                text: None,
                attachment: Some(json!({"type":"template"})),
            },
            Payload::ZaloTag {
                user_id: "1".into(),
                tag: "vip".into(),
                add: true,
            },
            Payload::Sms {
                to: "+84900".into(),
                text: "hi".into(),
            },
            Payload::Email {
                to: "a@b.c".into(),
                subject: "s".into(),
                html: "<p>h</p>".into(),
                text: "h".into(),
                track: None,
            },
            Payload::Zns {
                phone: "84900".into(),
                template_id: "t".into(),
                template_data: json!({"a":1}),
                tracking_id: "tr".into(),
                user_id: None,
                tag: None,
            },
            Payload::Chat {
                channel: Some("vip".into()),
                text: "t".into(),
                data: json!({"x":1}),
            },
            Payload::Task {
                title: "t".into(),
                description: "d".into(),
                contact: None,
                due_at: Some("2024-01-01T00:00:00Z".into()),
            },
        ];
        for p in payloads {
            let s = serde_json::to_string(&p).unwrap();
            let back: Payload = serde_json::from_str(&s).unwrap();
            assert_eq!(back, p, "{s}");
        }
        let chat = serde_json::to_value(Payload::Chat {
            channel: Some("vip".into()),
            text: "t".into(),
            data: Value::Null,
        })
        .unwrap();
        assert_eq!(chat["channel"], "chat");
        assert_eq!(chat["chat_channel"], "vip");
        let minimal: Payload =
            serde_json::from_str(r#"{"channel":"zalo","user_id":"9","text":"hi"}"#).unwrap();
        assert_eq!(
            minimal,
            Payload::Zalo {
                user_id: "9".into(),
                kind: ZaloKind::Cs,
                text: Some("hi".into()),
                attachment: None
            }
        );
    }

    #[test]
    fn http_statuses_are_sorted() {
        let long = "x".repeat(500);
        for s in [408u16, 429, 500, 502, 503] {
            assert!(classify_http(s, None, "").is_retryable(), "{s}");
        }
        match classify_http(400, None, &long) {
            SendError::Permanent { code, message } => {
                assert_eq!(code, Some(400));
                assert!(message.chars().count() <= 200 + 20, "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!classify_http(404, None, "").is_retryable());
        assert_eq!(
            classify_http(429, Some(Duration::from_secs(9999)), ""),
            SendError::Transient {
                code: Some(429),
                message: "HTTP 429: ".into(),
                retry_after: Some(Duration::from_secs(3600))
            }
        );
    }

    #[test]
    fn config_debug_redacts_secrets() {
        let cfg = ChannelsConfig {
            app_id: Some("APPID".into()),
            app_secret: Some("S3CR3T-APP".into()),
            access_token: Some("S3CR3T-ACCESS".into()),
            refresh_token: Some("S3CR3T-REFRESH".into()),
            sms_url: Some("https://sms.example/send?key=S3CR3T-Q".into()),
            sms_headers: vec![("Authorization".into(), "Bearer S3CR3T-H".into())],
            smtp_url: Some("smtp://user:S3CR3T-PW@mail.example:587".into()),
            chat_webhook_url: Some("https://hooks.example/services/S3CR3T-PATH".into()),
            chat_channels: [(
                "vip".to_string(),
                "https://hooks.example/S3CR3T-VIP".to_string(),
            )]
            .into(),
            task_webhook_url: Some("https://tasks.example/hook/S3CR3T-T".into()),
            ..Default::default()
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("S3CR3T"), "{shown}");
        assert!(shown.contains("APPID") && shown.contains("mail.example:587"));
        assert_eq!(redact_url("https://h.example/"), "https://h.example");
        assert_eq!(redact_url("not a url"), REDACTED);
    }
}

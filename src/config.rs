//! Configuration: environment variables, optionally a `zaloflow.toml` with the same keys.
//! The environment wins. Secrets are wrapped in [`Secret`] so `Debug` never prints them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// A value that must never appear in logs: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every key of the contract (CONTRACT.md), in the spelling of its environment variable.
pub const KEYS: &[&str] = &[
    "PORT",
    "DATABASE_URL",
    "ZALOFLOW_RULES",
    "ZALOFLOW_TZ",
    "ZALO_APP_ID",
    "ZALO_OA_SECRET_KEY",
    "ZALO_APP_SECRET",
    "ZALO_ACCESS_TOKEN",
    "ZALO_REFRESH_TOKEN",
    "ZALO_API_BASE",
    "ZALO_OAUTH_BASE",
    "ZALO_ZNS_BASE",
    "ZALOFLOW_ADMIN_TOKEN",
    "ZALOFLOW_CHAT_WEBHOOK_URL",
    "ZALOFLOW_TASK_WEBHOOK_URL",
    "ZALOFLOW_SMS_URL",
    "ZALOFLOW_SMTP_URL",
    "ZALOFLOW_PUBLIC_URL",
    "ZALOFLOW_LOG_FORMAT",
    "ZALOFLOW_CHAT_CHANNELS",
    "ZALOFLOW_CHAT_BODY",
    "ZALOFLOW_SMS_HEADERS",
    "ZALOFLOW_SMTP_FROM",
    "ZALOFLOW_OUTBOX_RETRY",
    "ZALOFLOW_ZALO_RATE",
    "ZALOFLOW_ZALO_RATE_PER_MINUTE",
    "ZALOFLOW_SEND_TIMEOUT",
    "ZALOFLOW_PUBLIC_RATE_PER_MINUTE",
    "ZALOFLOW_TRACKING_KEY",
    "ZALOFLOW_CLIENT_IP_HEADER",
    "ZALOFLOW_WORKING_HOURS",
    "ZALOFLOW_ESCALATION_CHANNEL",
    "ZALOFLOW_ESCALATION_SECOND_AFTER",
    "ZALOFLOW_ESCALATION_SECOND_CHANNEL",
    "ZALOFLOW_INBOX_WORKERS",
    "ZALOFLOW_ESCALATION_INTERVAL",
    "ZALOFLOW_TICK",
    "ZALOFLOW_ALLOW_PRIVATE_URLS",
    "ZALOFLOW_OUTBOX_LEASE",
    "ZALOFLOW_INBOX_LEASE",
    "ZALOFLOW_STRICT_CONFIG",
    "ZALOFLOW_CONTACTS_SYNC",
    "ZALOFLOW_CONTACTS_LOOKUP",
    // Added after CONTRACT.md (docs/configuration.md): Zalo's 2026 rules and the staff's
    // language. Without them here, the environment and zaloflow.toml could not set them.
    "ZALOFLOW_PROMOTION_HOURS",
    "ZALOFLOW_PRICES_VND",
    "ZALOFLOW_FREE_TIER",
    "ZALOFLOW_DAILY_BUDGET_VND",
    "ZALOFLOW_LANG",
];

/// Set by Fly.io on every machine: the service runs behind Fly's proxy.
pub const FLY_APP_NAME: &str = "FLY_APP_NAME";

#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub database_url: Secret,
    pub rules_dir: PathBuf,
    pub tz: chrono_tz::Tz,
    pub zalo_app_id: Option<String>,
    pub zalo_oa_secret_key: Option<Secret>,
    pub zalo_app_secret: Option<Secret>,
    pub zalo_access_token: Option<Secret>,
    pub zalo_refresh_token: Option<Secret>,
    pub zalo_api_base: String,
    pub zalo_oauth_base: String,
    pub zalo_zns_base: String,
    pub admin_token: Option<Secret>,
    pub chat_webhook_url: Option<String>,
    pub task_webhook_url: Option<String>,
    pub sms_url: Option<String>,
    pub smtp_url: Option<Secret>,
    pub public_url: String,
    pub log_json: bool,
    /// Named team-chat targets (`agents=https://…,supervisors=https://…`).
    pub chat_channels: BTreeMap<String, Secret>,
    /// JSON body template of chat notifications (`{{text}}`, `{{channel}}`, `{{data}}`).
    pub chat_body: Option<String>,
    /// Extra headers of SMS gateway calls (`Authorization: Bearer …; X-Key: …`).
    pub sms_headers: Vec<(String, Secret)>,
    pub smtp_from: Option<String>,
    pub outbox_retry: crate::outbox::RetryPolicy,
    /// Outbound Zalo OA calls per second / per minute (0 = no limit).
    pub zalo_rate_per_second: u32,
    pub zalo_rate_per_minute: u32,
    pub send_timeout: std::time::Duration,
    /// Requests per minute and client IP on each public route family (forms; tracking).
    /// 0 = no limit.
    pub public_rate_per_minute: u32,
    /// HMAC key of email tracking links; `None`: generated once and kept in the database.
    pub tracking_key: Option<Secret>,
    /// A header set by the proxy in front (e.g. `Fly-Client-IP`) that carries the client's IP;
    /// `None`: the TCP peer address. Only set it behind a proxy that overwrites it.
    pub client_ip_header: Option<String>,
    /// Handoff deadlines and escalation: working hours, the supervisors' channel, a second
    /// level (`ZALOFLOW_WORKING_HOURS`, `ZALOFLOW_ESCALATION_*`).
    pub handoffs: crate::handoff::HandoffConfig,
    /// Inbox processor tasks of this instance (`ZALOFLOW_INBOX_WORKERS`, default 2); 0 makes
    /// an instance that only takes webhooks in while others process them.
    pub inbox_workers: usize,
    /// When `serve` ticks the scheduler: a 5-field cron in the OA time zone (default every
    /// minute); `None` (`ZALOFLOW_TICK=off`): never (run `zaloflow tick` from elsewhere).
    pub tick_cron: Option<String>,
    /// URLs from rule files and the admin API may name loopback, private, link-local and other
    /// internal hosts (`ZALOFLOW_ALLOW_PRIVATE_URLS=true`; default false: the SSRF guard
    /// refuses them). URLs set here by the operator are trusted either way.
    pub allow_private_urls: bool,
    /// How long a claimed outbox job is held before another instance may take it again after a
    /// crash (`ZALOFLOW_OUTBOX_LEASE`, default 60s; longer than `ZALOFLOW_SEND_TIMEOUT`).
    pub outbox_lease: std::time::Duration,
    /// The same for claimed inbox events (`ZALOFLOW_INBOX_LEASE`, default 15s).
    pub inbox_lease: std::time::Duration,
    /// `ZALOFLOW_STRICT_CONFIG=true`: a rule action whose channel is not configured refuses
    /// the start and the reload (default: reported, and recorded as skipped when it runs).
    pub strict_config: bool,
    /// `ZALOFLOW_PUBLIC_URL` was set explicitly (tracked email needs it).
    pub public_url_set: bool,
    /// A deployment configuration was found (a `zaloflow.toml`, or settings in the
    /// environment): `rules check` checks the channels only then.
    pub deployment_found: bool,
    /// When `serve` reads the OA's followers from Zalo (`ZALOFLOW_CONTACTS_SYNC`, a 5-field cron
    /// in the OA time zone, default `0 3 * * *`; `None` = `off`). See docs/contacts-sync.md.
    pub contacts_sync_cron: Option<String>,
    /// Look up the Zalo profile of a user seen for the first time (`ZALOFLOW_CONTACTS_LOOKUP`,
    /// default true).
    pub contacts_lookup: bool,
    /// When promotion messages may go out, local minutes `[from, until)`
    /// (`ZALOFLOW_PROMOTION_HOURS`, default `07:00-22:00`).
    pub promotion_hours: (u32, u32),
    /// Prices, the free tier and the daily budget (`ZALOFLOW_PRICES_VND`,
    /// `ZALOFLOW_FREE_TIER`, `ZALOFLOW_DAILY_BUDGET_VND`). See docs/zalo-2026.md.
    pub cost: zaloflow_core::cost::CostPolicy,
    /// The language of staff-facing words (`ZALOFLOW_LANG`: `vi`, the default, or `en`).
    pub lang: crate::i18n::Lang,
}

impl Config {
    /// What the handoff module needs to know of the deployment.
    pub fn handoff_policy(&self) -> crate::handoff::HandoffPolicy {
        crate::handoff::HandoffPolicy {
            tz: self.tz,
            lang: self.lang,
            board_url: self.board_url(),
            working_hours: self.handoffs.working_hours,
            chat_channels: self.chat_channels.keys().cloned().collect(),
        }
    }

    /// `ZALOFLOW_TRACKING_KEY`, when set.
    pub fn tracking_key(&self) -> Option<&str> {
        self.tracking_key.as_ref().map(|k| k.expose())
    }

    /// `ZALOFLOW_PUBLIC_URL` + `/admin/board`.
    pub fn board_url(&self) -> String {
        format!("{}/admin/board", self.public_url)
    }

    /// Reads `zaloflow.toml` (or the file named by `ZALOFLOW_CONFIG`) if present, then the
    /// process environment on top.
    pub fn load() -> anyhow::Result<Config> {
        let file = std::env::var("ZALOFLOW_CONFIG").unwrap_or_else(|_| "zaloflow.toml".into());
        let mut values = if Path::new(&file).exists() {
            read_toml(Path::new(&file))?
        } else {
            BTreeMap::new()
        };
        let found_file = !values.is_empty() || Path::new(&file).exists();
        let mut found_env = false;
        for key in KEYS {
            if let Ok(v) = std::env::var(key) {
                // The rules folder, the log format and the language alone are not a deployment.
                found_env |= !v.trim().is_empty()
                    && !matches!(
                        *key,
                        "ZALOFLOW_RULES" | "ZALOFLOW_LOG_FORMAT" | "ZALOFLOW_LANG"
                    );
                values.insert((*key).to_string(), v);
            }
        }
        if let Ok(v) = std::env::var(FLY_APP_NAME) {
            values.insert(FLY_APP_NAME.to_string(), v);
            found_env = true;
        }
        let mut config = Config::from_map(&values)?;
        config.deployment_found = found_file || found_env;
        Ok(config)
    }

    /// Builds a configuration from key/value pairs (environment spelling); unset keys take
    /// their defaults. Empty values count as unset.
    pub fn from_map(values: &BTreeMap<String, String>) -> anyhow::Result<Config> {
        let get = |k: &str| values.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let port = match get("PORT") {
            Some(p) => p
                .parse()
                .with_context(|| format!("PORT={p:?} is not a port number"))?,
            None => 8080,
        };
        let tz_name = get("ZALOFLOW_TZ").unwrap_or("Asia/Ho_Chi_Minh");
        let tz: chrono_tz::Tz = tz_name
            .parse()
            .map_err(|_| anyhow::anyhow!("ZALOFLOW_TZ={tz_name:?} is not an IANA time zone"))?;
        let database_url = get("DATABASE_URL").unwrap_or("sqlite://zaloflow.db");
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            bail!("DATABASE_URL must start with sqlite:// or postgres://");
        }
        let log_json = matches!(get("ZALOFLOW_LOG_FORMAT"), Some("json"));
        let chat_channels = chat_channels(get("ZALOFLOW_CHAT_CHANNELS"))?;
        let sms_headers = sms_headers(get("ZALOFLOW_SMS_HEADERS"))?;
        let outbox_retry = match get("ZALOFLOW_OUTBOX_RETRY") {
            Some(s) => crate::outbox::RetryPolicy::parse(s)
                .map_err(|e| anyhow::anyhow!("ZALOFLOW_OUTBOX_RETRY: {e}"))?,
            None => crate::outbox::RetryPolicy::default(),
        };
        let num = |k: &str, d: u32| -> anyhow::Result<u32> {
            get(k).map_or(Ok(d), |v| {
                v.parse()
                    .with_context(|| format!("{k}={v:?} is not a whole number"))
            })
        };
        let send_timeout = match get("ZALOFLOW_SEND_TIMEOUT") {
            Some(v) => crate::outbox::retry::parse_duration(v).with_context(|| {
                format!("ZALOFLOW_SEND_TIMEOUT={v:?} is not a duration like 15s")
            })?,
            None => std::time::Duration::from_secs(15),
        };
        let duration = |k: &str, d: u64| -> anyhow::Result<std::time::Duration> {
            get(k).map_or(Ok(std::time::Duration::from_secs(d)), |v| {
                crate::outbox::retry::parse_duration(v)
                    .with_context(|| format!("{k}={v:?} is not a duration like 15s"))
            })
        };
        let outbox_lease = duration("ZALOFLOW_OUTBOX_LEASE", 60)?;
        if outbox_lease <= send_timeout {
            bail!(
                "ZALOFLOW_OUTBOX_LEASE ({outbox_lease:?}) must be longer than ZALOFLOW_SEND_TIMEOUT ({send_timeout:?})"
            );
        }
        let inbox_lease = duration("ZALOFLOW_INBOX_LEASE", 15)?;
        let flag = |k: &str| -> anyhow::Result<bool> {
            match get(k) {
                None | Some("false") | Some("0") => Ok(false),
                Some("true") | Some("1") => Ok(true),
                Some(v) => bail!("{k}={v:?} is not true or false"),
            }
        };
        let allow_private_urls = flag("ZALOFLOW_ALLOW_PRIVATE_URLS")?;
        let strict_config = flag("ZALOFLOW_STRICT_CONFIG")?;
        // Behind Fly's proxy the TCP peer is the proxy: the client's address is in the header
        // it sets. `none` turns the header off.
        let client_ip_header = match get("ZALOFLOW_CLIENT_IP_HEADER") {
            Some(h) if h.eq_ignore_ascii_case("none") => None,
            Some(h) => Some(h.to_ascii_lowercase()),
            None if get(FLY_APP_NAME).is_some() => Some("fly-client-ip".to_string()),
            None => None,
        };
        Ok(Config {
            port,
            database_url: Secret::new(database_url),
            rules_dir: PathBuf::from(get("ZALOFLOW_RULES").unwrap_or("rules")),
            tz,
            zalo_app_id: get("ZALO_APP_ID").map(str::to_string),
            zalo_oa_secret_key: get("ZALO_OA_SECRET_KEY").map(Secret::new),
            zalo_app_secret: get("ZALO_APP_SECRET").map(Secret::new),
            zalo_access_token: get("ZALO_ACCESS_TOKEN").map(Secret::new),
            zalo_refresh_token: get("ZALO_REFRESH_TOKEN").map(Secret::new),
            zalo_api_base: get("ZALO_API_BASE")
                .unwrap_or("https://openapi.zalo.me")
                .trim_end_matches('/')
                .to_string(),
            zalo_oauth_base: get("ZALO_OAUTH_BASE")
                .unwrap_or("https://oauth.zaloapp.com")
                .trim_end_matches('/')
                .to_string(),
            zalo_zns_base: get("ZALO_ZNS_BASE")
                .unwrap_or("https://business.openapi.zalo.me")
                .trim_end_matches('/')
                .to_string(),
            admin_token: get("ZALOFLOW_ADMIN_TOKEN").map(Secret::new),
            chat_webhook_url: get("ZALOFLOW_CHAT_WEBHOOK_URL").map(str::to_string),
            task_webhook_url: get("ZALOFLOW_TASK_WEBHOOK_URL").map(str::to_string),
            sms_url: get("ZALOFLOW_SMS_URL").map(str::to_string),
            smtp_url: get("ZALOFLOW_SMTP_URL").map(Secret::new),
            public_url: get("ZALOFLOW_PUBLIC_URL")
                .unwrap_or("http://localhost:8080")
                .trim_end_matches('/')
                .to_string(),
            log_json,
            chat_channels,
            chat_body: get("ZALOFLOW_CHAT_BODY").map(str::to_string),
            sms_headers,
            smtp_from: get("ZALOFLOW_SMTP_FROM").map(str::to_string),
            outbox_retry,
            zalo_rate_per_second: num("ZALOFLOW_ZALO_RATE", 10)?,
            zalo_rate_per_minute: num("ZALOFLOW_ZALO_RATE_PER_MINUTE", 600)?,
            send_timeout,
            public_rate_per_minute: num("ZALOFLOW_PUBLIC_RATE_PER_MINUTE", 60)?,
            tracking_key: match get("ZALOFLOW_TRACKING_KEY") {
                Some(k) if k.len() < 16 => {
                    bail!("ZALOFLOW_TRACKING_KEY must be at least 16 characters")
                }
                k => k.map(Secret::new),
            },
            client_ip_header,
            handoffs: crate::handoff::HandoffConfig::from_values(get)?,
            inbox_workers: num("ZALOFLOW_INBOX_WORKERS", 2)? as usize,
            tick_cron: match get("ZALOFLOW_TICK").map(str::trim) {
                None | Some("") => Some("* * * * *".to_string()),
                Some("off") => None,
                Some(c) => Some(c.to_string()),
            },
            allow_private_urls,
            outbox_lease,
            inbox_lease,
            strict_config,
            public_url_set: get("ZALOFLOW_PUBLIC_URL").is_some(),
            deployment_found: false,
            contacts_sync_cron: contacts_sync_cron(get("ZALOFLOW_CONTACTS_SYNC"))?,
            promotion_hours: promotion_hours(get("ZALOFLOW_PROMOTION_HOURS"))?,
            lang: match get("ZALOFLOW_LANG") {
                Some(v) => v
                    .parse()
                    .map_err(|e| anyhow::anyhow!("ZALOFLOW_LANG: {e}"))?,
                None => crate::i18n::Lang::default(),
            },
            cost: cost_policy(get)?,
            contacts_lookup: match get("ZALOFLOW_CONTACTS_LOOKUP") {
                None | Some("true") | Some("1") => true,
                Some("false") | Some("0") | Some("off") => false,
                Some(v) => bail!("ZALOFLOW_CONTACTS_LOOKUP={v:?} is not true or false"),
            },
        })
    }

    /// The channels this configuration sets, as plain data for the rule checker and the
    /// engine. `zalo_tokens` counts the environment's tokens only; `serve` adds a pair kept in
    /// the database.
    pub fn configured_channels(&self) -> crate::channels::configured::Configured {
        crate::channels::configured::Configured {
            sms: self.sms_url.is_some(),
            email: self.smtp_url.is_some(),
            task: self.task_webhook_url.is_some(),
            chat_default: self.chat_webhook_url.is_some(),
            chat_named: self.chat_channels.keys().cloned().collect(),
            zalo_tokens: self.zalo_access_token.is_some() || self.zalo_refresh_token.is_some(),
            public_url: self.public_url_set,
        }
    }

    /// Where each operator-set URL points (scheme, host and port; never a path or secret),
    /// for the log at start: these are trusted wherever they point.
    pub fn outbound_targets(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, u: Option<&str>| {
            if let Some(u) = u {
                out.push((k.to_string(), crate::channels::redact_url(u)));
            }
        };
        push("ZALOFLOW_SMS_URL", self.sms_url.as_deref());
        push(
            "ZALOFLOW_CHAT_WEBHOOK_URL",
            self.chat_webhook_url.as_deref(),
        );
        push(
            "ZALOFLOW_TASK_WEBHOOK_URL",
            self.task_webhook_url.as_deref(),
        );
        push(
            "ZALOFLOW_SMTP_URL",
            self.smtp_url.as_ref().map(Secret::expose),
        );
        for (name, url) in &self.chat_channels {
            push(
                &format!("ZALOFLOW_CHAT_CHANNELS ({name})"),
                Some(url.expose()),
            );
        }
        push("ZALO_API_BASE", Some(&self.zalo_api_base));
        push("ZALO_OAUTH_BASE", Some(&self.zalo_oauth_base));
        push("ZALO_ZNS_BASE", Some(&self.zalo_zns_base));
        out
    }

    /// What the outbound channels need.
    pub fn channels_config(&self) -> crate::channels::ChannelsConfig {
        let expose = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_string());
        crate::channels::ChannelsConfig {
            zalo_api_base: self.zalo_api_base.clone(),
            zalo_oauth_base: self.zalo_oauth_base.clone(),
            zalo_zns_base: self.zalo_zns_base.clone(),
            app_id: self.zalo_app_id.clone(),
            app_secret: expose(&self.zalo_app_secret),
            access_token: expose(&self.zalo_access_token),
            refresh_token: expose(&self.zalo_refresh_token),
            sms_url: self.sms_url.clone(),
            sms_headers: self
                .sms_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            smtp_url: expose(&self.smtp_url),
            smtp_from: self.smtp_from.clone(),
            chat_webhook_url: self.chat_webhook_url.clone(),
            chat_channels: self
                .chat_channels
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect(),
            chat_body_template: self.chat_body.clone(),
            task_webhook_url: self.task_webhook_url.clone(),
            tz: self.tz,
            timeout: self.send_timeout,
            allow_private_urls: self.allow_private_urls,
        }
    }

    /// The webhook signature keys, when both are configured.
    pub fn webhook_keys(&self) -> Option<(&str, &Secret)> {
        match (&self.zalo_app_id, &self.zalo_oa_secret_key) {
            (Some(id), Some(key)) => Some((id.as_str(), key)),
            _ => None,
        }
    }
}

fn read_toml(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let key = k.to_ascii_uppercase();
        if !KEYS.contains(&key.as_str()) {
            bail!("{}: unknown key {k:?}", path.display());
        }
        let value = match v {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!(
                "{}: key {k:?} must be a string, not {other}",
                path.display()
            ),
        };
        out.insert(key, value);
    }
    Ok(out)
}

/// `ZALOFLOW_CHAT_CHANNELS`: `name=url,name=url`.
fn chat_channels(value: Option<&str>) -> anyhow::Result<BTreeMap<String, Secret>> {
    let mut out = BTreeMap::new();
    for part in value.unwrap_or("").split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (name, url) = part
            .split_once('=')
            .with_context(|| format!("ZALOFLOW_CHAT_CHANNELS: {part:?} is not name=url"))?;
        out.insert(name.trim().to_string(), Secret::new(url.trim()));
    }
    Ok(out)
}

/// `ZALOFLOW_SMS_HEADERS`: `Name: value; Name: value`.
fn sms_headers(value: Option<&str>) -> anyhow::Result<Vec<(String, Secret)>> {
    let mut out = Vec::new();
    for part in value.unwrap_or("").split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once(':')
            .with_context(|| "ZALOFLOW_SMS_HEADERS: expected `Name: value; Name: value`")?;
        out.push((k.trim().to_string(), Secret::new(v.trim())));
    }
    Ok(out)
}

/// `ZALOFLOW_PROMOTION_HOURS`: `HH:MM-HH:MM` (default `07:00-22:00`, PROTOCOL.md §5).
fn promotion_hours(value: Option<&str>) -> anyhow::Result<(u32, u32)> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(zaloflow_core::job::PROMOTION_HOURS);
    };
    let minute = |s: &str| -> Option<u32> {
        let (h, m) = s.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    match v
        .split_once('-')
        .and_then(|(a, b)| Some((minute(a)?, minute(b)?)))
    {
        Some((from, until)) if from < until => Ok((from, until)),
        _ => bail!("ZALOFLOW_PROMOTION_HOURS={v:?} is not a time range like 07:00-22:00"),
    }
}

/// `ZALOFLOW_PRICES_VND` (`class=price, …`), `ZALOFLOW_FREE_TIER` (`8/48h`: free consultation
/// messages per hours after the last interaction) and `ZALOFLOW_DAILY_BUDGET_VND` (unset: no
/// budget). Defaults from PROTOCOL.md §5; docs/zalo-2026.md gives the sources.
fn cost_policy<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> anyhow::Result<zaloflow_core::cost::CostPolicy> {
    use zaloflow_core::cost::{CostPolicy, FreeTier, Prices};
    let set = |k: &str| get(k).map(str::trim).filter(|v| !v.is_empty());
    let prices = match set("ZALOFLOW_PRICES_VND") {
        Some(v) => Prices::parse(v).map_err(|e| anyhow::anyhow!("ZALOFLOW_PRICES_VND: {e}"))?,
        None => Prices::default(),
    };
    let free_tier = match set("ZALOFLOW_FREE_TIER") {
        None => FreeTier::default(),
        Some(v) => {
            let parsed = v.split_once('/').and_then(|(n, h)| {
                let count: i64 = n.trim().parse().ok()?;
                let hours: i64 = h.trim().strip_suffix('h')?.trim().parse().ok()?;
                (count >= 0 && hours > 0).then_some(FreeTier {
                    count,
                    window_ms: hours * 3_600_000,
                })
            });
            parsed.ok_or_else(|| {
                anyhow::anyhow!(
                    "ZALOFLOW_FREE_TIER={v:?} is not `messages/hours` like 8/48h (8 free consultation messages within 48 hours of the user's last interaction)"
                )
            })?
        }
    };
    let daily_budget_vnd = match set("ZALOFLOW_DAILY_BUDGET_VND") {
        None => None,
        Some(v) => Some(v.replace(['.', '_', ' '], "").parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            anyhow::anyhow!("ZALOFLOW_DAILY_BUDGET_VND={v:?} is not a whole number of VND (e.g. 200000)")
        })?),
    };
    Ok(CostPolicy {
        prices,
        free_tier,
        daily_budget_vnd,
    })
}

/// `ZALOFLOW_CONTACTS_SYNC`: a 5-field cron (default `0 3 * * *`) or `off`.
fn contacts_sync_cron(value: Option<&str>) -> anyhow::Result<Option<String>> {
    match value {
        None => Ok(Some("0 3 * * *".to_string())),
        Some("off") => Ok(None),
        Some(c) => {
            croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .year(croner::parser::Year::Disallowed)
                .build()
                .parse(c)
                .map_err(|e| {
                    anyhow::anyhow!("ZALOFLOW_CONTACTS_SYNC={c:?} is not a 5-field cron (e.g. \"0 3 * * *\") or off: {e}")
                })?;
            Ok(Some(c.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(c.port, 8080);
        assert_eq!(c.database_url.expose(), "sqlite://zaloflow.db");
        assert_eq!(c.tz, chrono_tz::Asia::Ho_Chi_Minh);
        assert_eq!(c.zalo_api_base, "https://openapi.zalo.me");
        assert!(c.webhook_keys().is_none());
    }

    #[test]
    fn every_setting_read_is_a_key_the_environment_can_set() {
        // `load` reads only KEYS from the environment and zaloflow.toml: a setting read by
        // `from_map` (or the handoff settings) but missing there could never be set.
        let mut sources = String::from(include_str!("config.rs"));
        sources.push_str(include_str!("handoff/mod.rs"));
        let mut read = Vec::new();
        for (i, _) in sources.match_indices("(\"ZALO") {
            let name: String = sources[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let before = &sources.as_bytes()[i.saturating_sub(8)..i];
            if [&b"get"[..], b"set", b"num", b"flag", b"duration"]
                .iter()
                .any(|f| before.ends_with(f))
            {
                read.push(name);
            }
        }
        assert!(read.len() > 30, "{read:?}");
        for name in read {
            assert!(
                KEYS.contains(&name.as_str()),
                "{name} is read but not in KEYS"
            );
        }
    }

    #[test]
    fn language_defaults_to_vietnamese_and_is_checked() {
        use crate::i18n::Lang;
        assert_eq!(Config::from_map(&map(&[])).unwrap().lang, Lang::Vi);
        let c = Config::from_map(&map(&[("ZALOFLOW_LANG", "en")])).unwrap();
        assert_eq!(c.lang, Lang::En);
        let e = Config::from_map(&map(&[("ZALOFLOW_LANG", "fr")])).unwrap_err();
        assert!(e.to_string().contains("ZALOFLOW_LANG"), "{e}");
    }

    #[test]
    fn promotion_hours_default_to_seven_until_ten_and_are_checked() {
        let c = Config::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(c.promotion_hours, (7 * 60, 22 * 60));
        let c = Config::from_map(&map(&[("ZALOFLOW_PROMOTION_HOURS", "08:00-21:30")])).unwrap();
        assert_eq!(c.promotion_hours, (8 * 60, 21 * 60 + 30));
        for bad in ["22:00-07:00", "8-21", "08:00", "25:00-26:00"] {
            let e = Config::from_map(&map(&[("ZALOFLOW_PROMOTION_HOURS", bad)])).unwrap_err();
            assert!(
                e.to_string().contains("ZALOFLOW_PROMOTION_HOURS"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config::from_map(&map(&[
            ("ZALO_OA_SECRET_KEY", "very-secret-key"),
            ("ZALO_APP_ID", "123"),
            ("DATABASE_URL", "postgres://u:hunter2@db/x"),
            ("ZALOFLOW_ADMIN_TOKEN", "admintoken42"),
        ]))
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("very-secret-key"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("admintoken42"), "{dbg}");
        assert!(dbg.contains("[redacted]"));
    }

    #[test]
    fn bad_values_are_reported() {
        assert!(Config::from_map(&map(&[("PORT", "eighty")])).is_err());
        assert!(Config::from_map(&map(&[("ZALOFLOW_TZ", "Mars/Olympus")])).is_err());
        assert!(Config::from_map(&map(&[("DATABASE_URL", "mysql://x")])).is_err());
    }

    #[test]
    fn behind_fly_the_client_ip_comes_from_fly_client_ip() {
        assert_eq!(Config::from_map(&map(&[])).unwrap().client_ip_header, None);
        let fly = Config::from_map(&map(&[("FLY_APP_NAME", "shop")])).unwrap();
        assert_eq!(fly.client_ip_header.as_deref(), Some("fly-client-ip"));
        let own = Config::from_map(&map(&[
            ("FLY_APP_NAME", "shop"),
            ("ZALOFLOW_CLIENT_IP_HEADER", "X-Real-IP"),
        ]))
        .unwrap();
        assert_eq!(own.client_ip_header.as_deref(), Some("x-real-ip"));
        let off = Config::from_map(&map(&[
            ("FLY_APP_NAME", "shop"),
            ("ZALOFLOW_CLIENT_IP_HEADER", "none"),
        ]))
        .unwrap();
        assert_eq!(off.client_ip_header, None);
    }

    #[test]
    fn strict_mode_and_the_channels_configured() {
        let c = Config::from_map(&map(&[])).unwrap();
        assert!(!c.strict_config && !c.public_url_set);
        assert_eq!(
            c.configured_channels(),
            crate::channels::configured::Configured::default()
        );
        let c = Config::from_map(&map(&[
            ("ZALOFLOW_STRICT_CONFIG", "true"),
            ("ZALOFLOW_CHAT_WEBHOOK_URL", "http://127.0.0.1:9/chat"),
            ("ZALOFLOW_CHAT_CHANNELS", "vip=http://10.0.0.2/v"),
            ("ZALOFLOW_PUBLIC_URL", "https://shop.example"),
            ("ZALO_REFRESH_TOKEN", "r"),
        ]))
        .unwrap();
        assert!(c.strict_config);
        let ch = c.configured_channels();
        assert!(ch.chat_default && ch.chat_named.contains("vip") && ch.public_url);
        assert!(ch.zalo_tokens && !ch.sms && !ch.email && !ch.task);
        assert!(Config::from_map(&map(&[("ZALOFLOW_STRICT_CONFIG", "yes")])).is_err());
        // Where operator URLs point is logged without their paths (often the secret).
        let targets = c.outbound_targets();
        assert!(targets.contains(&(
            "ZALOFLOW_CHAT_WEBHOOK_URL".into(),
            "http://127.0.0.1:9/…".into()
        )));
        assert!(!format!("{targets:?}").contains("/chat"));
    }

    #[test]
    fn contacts_sync_settings() {
        let c = Config::from_map(&BTreeMap::new()).unwrap();
        assert_eq!(c.contacts_sync_cron.as_deref(), Some("0 3 * * *"));
        assert!(c.contacts_lookup);
        let c = Config::from_map(&map(&[
            ("ZALOFLOW_CONTACTS_SYNC", "off"),
            ("ZALOFLOW_CONTACTS_LOOKUP", "false"),
        ]))
        .unwrap();
        assert_eq!(c.contacts_sync_cron, None);
        assert!(!c.contacts_lookup);
        let e = Config::from_map(&map(&[("ZALOFLOW_CONTACTS_SYNC", "daily")])).unwrap_err();
        assert!(e.to_string().contains("ZALOFLOW_CONTACTS_SYNC"), "{e}");
        assert!(Config::from_map(&map(&[("ZALOFLOW_CONTACTS_LOOKUP", "maybe")])).is_err());
    }

    #[test]
    fn toml_file_is_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zaloflow.toml");
        std::fs::write(&p, "port = 9000\nzalo_app_id = \"42\"\n").unwrap();
        let m = read_toml(&p).unwrap();
        assert_eq!(m["PORT"], "9000");
        assert_eq!(m["ZALO_APP_ID"], "42");
        std::fs::write(&p, "prot = 9000\n").unwrap();
        assert!(read_toml(&p).is_err());
    }
}

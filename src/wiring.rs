//! How the parts are put together from the configuration: the store, the rules, the channels,
//! the outbox sender. `serve` ([`crate::run`]), `tick`, `contacts sync` and the admin API build
//! theirs here, so each is built one way.

use std::sync::Arc;

use crate::clock::{self, Clock};
use crate::config::Config;
use crate::store::{self, DynStore};
use crate::{channels, outbox, rules, tracking, zalo};

/// Opens and migrates the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    let store = store::open(config.database_url.expose()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the database for a command that must change nothing in it (`forecast`, `rules check
/// --against`), or says in `lang` why it cannot and what to do: a SQLite file that does not
/// exist is not created, and a database this version has not migrated (a first day before
/// `serve`, or a new version before its first start) is not migrated here.
pub async fn open_unchanged(url: &str, lang: crate::i18n::Lang) -> anyhow::Result<DynStore> {
    use crate::i18n::words;
    match store::open_unchanged(url).await? {
        Ok(store) => Ok(store),
        Err(store::NotReady::Missing(path)) => anyhow::bail!(
            "{}",
            words(
                lang,
                "common.db_missing",
                &[("path", path.display().to_string())]
            )
        ),
        Err(store::NotReady::Unmigrated(n)) => anyhow::bail!(
            "{}",
            words(lang, "common.db_unmigrated", &[("n", n.to_string())])
        ),
    }
}

/// The channels this deployment has, logged: where each operator-set URL points (trusted
/// wherever that is), and whether the OA's tokens are in the environment or the database.
pub async fn deployment_channels(
    config: &Config,
    store: &DynStore,
    clock: &Clock,
) -> channels::configured::Configured {
    for (setting, target) in config.outbound_targets() {
        tracing::info!(%setting, %target, "outbound target (set by the operator: trusted)");
    }
    let mut c = config.configured_channels();
    if !c.zalo_tokens {
        let tokens = crate::zalo::stored_tokens::DbTokenStore::new(
            store.clone(),
            "startup".into(),
            clock.clone(),
        );
        c.zalo_tokens = matches!(zalo::token::TokenStore::load(&*tokens).await, Ok(Some(_)));
    }
    c
}

/// Loads the rules folder and keeps watching it. A missing folder means no rules (with a
/// warning); a broken one refuses to start, each problem printed as `path:line:col: message`.
pub fn load_rules(config: &Config, now: i64) -> anyhow::Result<Option<Arc<rules::RuleWatcher>>> {
    load_rules_checked(config, None, now)
}

/// [`load_rules`], checking the rules against the deployment's `channels` at the load and every
/// reload: findings are logged (and listed by `/readyz`), or refuse the start under
/// `ZALOFLOW_STRICT_CONFIG=true`.
pub fn load_rules_checked(
    config: &Config,
    channels: Option<channels::configured::Configured>,
    now: i64,
) -> anyhow::Result<Option<Arc<rules::RuleWatcher>>> {
    let dir = &config.rules_dir;
    if !dir.is_dir() {
        tracing::warn!(dir = %dir.display(), "rules folder not found: running without rules");
        return Ok(None);
    }
    let check = rules::ChannelCheck {
        channels,
        strict: config.strict_config,
    };
    let strict = check.strict && check.channels.is_some();
    match rules::RuleWatcher::load_with(dir, rule_load_options(config), check, now) {
        Ok(w) => {
            let st = w.status();
            tracing::info!(rules = st.rules, files = st.files, dir = %dir.display(), "rules loaded");
            Ok(Some(Arc::new(w)))
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{}", d.render(config.lang));
            }
            if strict && diags.iter().all(rules::findings::is_strict_refusal) {
                anyhow::bail!(
                    "ZALOFLOW_STRICT_CONFIG=true: {} rule action(s) in {} cannot run with this configuration (listed above); set the variables they name, or remove ZALOFLOW_STRICT_CONFIG to start and record them as skipped",
                    diags.len(),
                    dir.display()
                )
            }
            anyhow::bail!(
                "{} problem(s) in the rules folder {}",
                diags.len(),
                dir.display()
            )
        }
    }
}

/// What the rule checker knows besides the files: the chat channels configured here.
pub fn rule_load_options(config: &Config) -> rules::LoadOptions {
    rules::LoadOptions {
        extra_chat_channels: config.chat_channels.keys().cloned().collect(),
        extra_lists: Vec::new(),
        allow_private_urls: config.allow_private_urls,
        lang: config.lang,
    }
}

/// The outbox sender of this configuration: real channels, tokens kept in the database, the
/// configured rate limit and retry schedule.
pub fn build_sender(
    config: &Config,
    store: DynStore,
    clock: Clock,
    instance: &str,
) -> anyhow::Result<outbox::Sender> {
    let tokens = crate::zalo::stored_tokens::DbTokenStore::with_notice(
        store.clone(),
        format!("{instance}/tokens"),
        clock.clone(),
        oa_notice(config).jobs(outbox::oa::REFRESH_REFUSED, 0),
    );
    let channels =
        channels::Channels::new(&config.channels_config(), tokens)?.with_clock(clock.clone());
    let limiter = outbox::Limiter::new(config.zalo_rate_per_second, config.zalo_rate_per_minute);
    channels.zalo_client().limit_retries(limiter.clone());
    Ok(
        outbox::Sender::new(store, Arc::new(channels), format!("{instance}/outbox"))
            .with_limiter(limiter)
            .with_retry(config.outbox_retry.clone())
            .with_clock(clock)
            .with_options(outbox::SenderOptions {
                lease: config.outbox_lease,
                cost: outbox::cost::CostGuard::new(config.cost, config.tz, config.promotion_hours)
                    .with_chat_channel(oa_notice(config).chat_channel)
                    .with_lang(config.lang),
                ..outbox::SenderOptions::default()
            }),
    )
}

/// Where staff hear that the OA must be connected again: the escalation channel when it is
/// configured, else the default chat webhook; with a link to the connect page.
pub fn oa_notice(config: &Config) -> outbox::oa::OaNotice {
    let esc = &config.handoffs.escalation_channel;
    outbox::oa::OaNotice {
        chat_channel: config.chat_channels.contains_key(esc).then(|| esc.clone()),
        connect_url: format!(
            "{}/admin/zalo/connect",
            config.public_url.trim_end_matches('/')
        ),
        lang: config.lang,
    }
}

/// The key and base URL of email open/click tracking (the key is generated once and kept in the
/// database unless `ZALOFLOW_TRACKING_KEY` sets it).
pub async fn email_tracking(
    config: &Config,
    store: &DynStore,
) -> anyhow::Result<outbox::EmailTracking> {
    let key =
        tracking::TrackingKey::load(config.tracking_key(), store, clock::system_now()).await?;
    Ok(outbox::EmailTracking {
        key,
        public_url: config.public_url.clone(),
    })
}

/// The cadence of `serve`'s scheduler (`ZALOFLOW_TICK`), checked.
pub fn tick_cron(config: &Config) -> anyhow::Result<Option<rules::model::Cron>> {
    let Some(pattern) = &config.tick_cron else {
        return Ok(None);
    };
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    let cron = parser
        .parse(pattern)
        .map_err(|e| anyhow::anyhow!("ZALOFLOW_TICK={pattern:?} is not a 5-field cron: {e}"))?;
    Ok(Some(rules::model::Cron {
        pattern: pattern.clone(),
        cron,
    }))
}

/// A name for this process's leases: host and pid, unique enough across instances.
pub fn instance_id() -> String {
    let host = fly_machine_id()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "local".into());
    format!("{host}:{}", std::process::id())
}

/// This machine's id on Fly.io (`FLY_MACHINE_ID`, set by Fly), elsewhere none.
pub fn fly_machine_id() -> Option<String> {
    std::env::var("FLY_MACHINE_ID")
        .ok()
        .filter(|m| !m.is_empty())
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("ctrl-c: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

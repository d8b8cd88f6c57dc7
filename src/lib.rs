//! zaloflow: customer care automation for a Zalo Official Account.
//!
//! Data flows one way — `http → inbox → engine → store` — and each stage is its own module.
//! [`run`] wires them together for `zaloflow serve`; tests call it with a listener on port 0.

pub mod channels;
pub mod clock;
pub mod config;
pub mod contacts;
pub mod demo;
pub mod engine;
pub mod fakes;
pub mod handoff;
pub mod http;
pub mod inbox;
pub mod outbox;
pub mod report;
pub mod rules;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod tracking;
pub mod zalo;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::inbox::{Intake, Processor};
use crate::store::{Backend, DynStore};

/// Opens and migrates the configured database.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    let store = store::open(config.database_url.expose()).await?;
    store.migrate().await?;
    Ok(store)
}

/// Runs the service on `listener` until `shutdown` resolves: stops accepting, lets requests in
/// flight finish, drains the intake queue and the batch in hand, gives back leases, returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with_clock(config, listener, shutdown, Clock::system()).await
}

/// [`run`] on a given clock: the demo replays its scripted week on a clock it moves.
pub async fn run_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Clock,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    if config.webhook_keys().is_none() {
        tracing::warn!("ZALO_APP_ID and ZALO_OA_SECRET_KEY are not both set: webhooks will be refused with 503 until they are");
    }
    let store = open_store(&config).await?;
    let metrics = telemetry::metrics_handle();

    let stop = CancellationToken::new();
    let stored = Arc::new(Notify::new());
    let mut writers = JoinSet::new();
    let writer_count = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 4,
    };
    let instance = instance_id();
    // The first inbox processor takes what this instance stores straight from the intake.
    let (handoff, handed) = if config.inbox_workers > 0 {
        let (handoff, rx) =
            inbox::Handoff::new(inbox_owner(&instance, 0), config.inbox_lease, HANDOFF_ROOM);
        (Some(handoff), Some(rx))
    } else {
        (None, None)
    };
    let intake = Intake::start(
        store.clone(),
        writer_count,
        Duration::from_millis(1500),
        stored.clone(),
        handoff,
        &mut writers,
    );

    let mut workers = JoinSet::new();
    let rules = load_rules(&config, clock.now())?;
    let engine = Arc::new(
        match &rules {
            Some(w) => Engine::with_rules(w.clone(), config.tz),
            None => Engine::new(),
        }
        .with_handoff_policy(handoff::HandoffPolicy::from_config(&config)),
    );
    if let Some(w) = &rules {
        workers.spawn(w.clone().run(Duration::from_secs(1), stop.clone()));
    }
    let jobs_enqueued = Arc::new(Notify::new());
    // VIPs' webhooks go ahead in the inbox: who is a VIP is kept in memory.
    let vip = handoff::VipSet::default();
    if let Err(e) = vip.refresh(&*store).await {
        tracing::warn!(error = %e, "could not load the VIP list; retrying in the background");
    }
    workers.spawn(
        vip.clone()
            .run(store.clone(), Duration::from_secs(5), stop.clone()),
    );
    let mut handed = handed;
    for n in 0..config.inbox_workers {
        let mut p = Processor::new(
            store.clone(),
            engine.clone(),
            clock.clone(),
            inbox_owner(&instance, n),
        );
        p.jobs_enqueued = jobs_enqueued.clone();
        p.lease = config.inbox_lease;
        p.vip = Some(vip.clone());
        workers.spawn(p.run(stored.clone(), handed.take(), stop.clone()));
    }
    // Missed handoff deadlines are escalated by the tick; this runs only when a finer
    // cadence is configured (ZALOFLOW_ESCALATION_INTERVAL).
    workers.spawn(handoff::run_escalations(
        store.clone(),
        config.clone(),
        clock.clone(),
        jobs_enqueued.clone(),
        stop.clone(),
    ));
    let mut sender = build_sender(&config, store.clone(), clock.clone(), &instance)?;
    sender.options.tracking = Some(email_tracking(&config, &store).await?);
    workers.spawn(sender.run(jobs_enqueued.clone(), stop.clone()));
    if let Some(cron) = tick_cron(&config)? {
        let mut ctx =
            scheduler::TickContext::new(store.clone(), engine.clone(), format!("{instance}/tick"));
        ctx.handoffs = Some(config.clone());
        workers.spawn(scheduler::run(ctx, cron, stop.clone()));
    }

    let app = http::router(http::AppState {
        config: config.clone(),
        store: store.clone(),
        intake,
        metrics,
        jobs_enqueued,
        rules,
        vip,
        clock: clock.clone(),
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?store.backend(), "zaloflow listening");
    let http_stop = stop.clone();
    http::server::serve(listener, app, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = http_stop.cancelled() => {}
        }
    })
    .await?;
    tracing::info!("HTTP stopped; draining");
    // The router (and with it every Intake sender) is gone: writers finish the queue and stop.
    while writers.join_next().await.is_some() {}
    stop.cancel();
    while workers.join_next().await.is_some() {}
    tracing::info!("stopped cleanly");
    Ok(())
}

/// How many stored events may wait in memory for the first inbox processor (a few MB at most);
/// past that the intake stores unleased and the processors claim from the table.
const HANDOFF_ROOM: usize = 8192;

/// The lease owner of this instance's `n`th inbox processor.
fn inbox_owner(instance: &str, n: usize) -> String {
    format!("{instance}/inbox-{n}")
}

/// Loads the rules folder and keeps watching it. A missing folder means no rules (with a
/// warning); a broken one refuses to start, each problem printed as `path:line:col: message`.
pub fn load_rules(config: &Config, now: i64) -> anyhow::Result<Option<Arc<rules::RuleWatcher>>> {
    let dir = &config.rules_dir;
    if !dir.is_dir() {
        tracing::warn!(dir = %dir.display(), "rules folder not found: running without rules");
        return Ok(None);
    }
    match rules::RuleWatcher::load(dir, rule_load_options(config), now) {
        Ok(w) => {
            let st = w.status();
            tracing::info!(rules = st.rules, files = st.files, dir = %dir.display(), "rules loaded");
            Ok(Some(Arc::new(w)))
        }
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
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
    let tokens = store::tokens::DbTokenStore::new(
        store.clone(),
        format!("{instance}/tokens"),
        clock.clone(),
    );
    let channels =
        channels::Channels::new(&config.channels_config(), tokens)?.with_clock(clock.clone());
    let limiter = outbox::Limiter::new(config.zalo_rate_per_second, config.zalo_rate_per_minute);
    channels.zalo_client().limit_retries(limiter.clone());
    Ok(outbox::Sender {
        store,
        channels: Arc::new(channels),
        limiter,
        retry: config.outbox_retry.clone(),
        clock,
        owner: format!("{instance}/outbox"),
        options: outbox::SenderOptions {
            lease: config.outbox_lease,
            ..outbox::SenderOptions::default()
        },
        held: outbox::HeldLease::default(),
    })
}

/// The key and base URL of email open/click tracking (the key is generated once and kept in the
/// database unless `ZALOFLOW_TRACKING_KEY` sets it).
pub async fn email_tracking(
    config: &Config,
    store: &DynStore,
) -> anyhow::Result<outbox::EmailTracking> {
    let key = tracking::TrackingKey::load(config, store, clock::system_now()).await?;
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
    let host = std::env::var("FLY_MACHINE_ID")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "local".into());
    format!("{host}:{}", std::process::id())
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

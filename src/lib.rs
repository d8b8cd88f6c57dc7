//! zaloflow: customer care automation for a Zalo Official Account.
//!
//! Data flows one way — `http → inbox → engine → store` — and each stage is its own module.
//! [`run`] wires them together for `zaloflow serve`; tests call it with a listener on port 0.

pub mod agents;
pub mod channels;
pub mod config;
pub mod contacts;
pub mod demo;
pub mod engine;
pub mod fakes;
pub mod forecast;
pub mod handoff;
pub mod http;
pub mod i18n;
pub mod inbox;
pub mod outbox;
pub mod report;
pub mod rules;
pub mod scheduler;
pub mod telemetry;
pub mod tracking;
pub mod wiring;
pub mod zalo;

pub use wiring::{
    build_sender, deployment_channels, email_tracking, instance_id, load_rules, load_rules_checked,
    oa_notice, open_store, rule_load_options, shutdown_signal, tick_cron,
};
pub use zaloflow_core::clock;

// Staff-facing words (src/i18n.rs): locales/*.yml, English where a key lacks a language
// (tests/i18n.rs makes sure none does).
rust_i18n::i18n!("locales", fallback = "en");
pub use zaloflow_store as store;

/// The allocator of every binary that links zaloflow (the service, its tests and benchmarks):
/// mimalloc. With glibc's, allocating and freeing took about a quarter of a forecast's CPU time
/// (docs/benchmarks.md, 2026-12-05).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let (relay, handed) = if config.inbox_workers > 0 {
        let (relay, rx) =
            inbox::Relay::new(inbox_owner(&instance, 0), config.inbox_lease, RELAY_ROOM);
        (Some(relay), Some(rx))
    } else {
        (None, None)
    };
    let intake = Intake::start(
        store.clone(),
        writer_count,
        Duration::from_millis(1500),
        stored.clone(),
        relay,
        &mut writers,
    );

    let mut workers = JoinSet::new();
    let channels = deployment_channels(&config, &store, &clock).await;
    let rules = load_rules_checked(&config, Some(channels.clone()), clock.now())?;
    let engine = Arc::new(
        match &rules {
            Some(w) => Engine::with_rules(w.clone(), config.tz),
            None => Engine::new(),
        }
        .with_handoff_policy(config.handoff_policy())
        .with_promotion_hours(config.promotion_hours)
        .with_channels(channels),
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
    let oa_gate = outbox::oa::OaGate::default();
    for n in 0..config.inbox_workers {
        let p = Processor::new(
            store.clone(),
            engine.clone(),
            clock.clone(),
            inbox_owner(&instance, n),
        )
        .with_jobs_enqueued(jobs_enqueued.clone())
        .with_lease(config.inbox_lease)
        .with_vip(vip.clone())
        .with_oa(oa_notice(&config), oa_gate.clone());
        workers.spawn(p.run(stored.clone(), handed.take(), stop.clone()));
    }
    // Missed handoff deadlines are escalated by the tick; this runs only when a finer
    // cadence is configured (ZALOFLOW_ESCALATION_INTERVAL).
    workers.spawn(handoff::run_escalations(
        store.clone(),
        config.handoffs.clone(),
        config.handoff_policy(),
        clock.clone(),
        jobs_enqueued.clone(),
        stop.clone(),
    ));
    let sender = build_sender(&config, store.clone(), clock.clone(), &instance)?
        .with_tracking(email_tracking(&config, &store).await?)
        .with_oa_gate(oa_gate);
    workers.spawn(contacts_sync(
        &config,
        &store,
        &sender,
        &instance,
        stop.clone(),
    )?);
    workers.spawn(sender.run(jobs_enqueued.clone(), stop.clone()));
    if let Some(cron) = tick_cron(&config)? {
        let ctx =
            scheduler::TickContext::new(store.clone(), engine.clone(), format!("{instance}/tick"))
                .with_escalation(config.handoffs.clone(), config.handoff_policy());
        workers.spawn(scheduler::run(ctx, cron, stop.clone()));
    }

    // The board's event streams end when the service stops (graceful shutdown waits for them).
    let board_live = http::live::BoardLive::default();
    let app = http::router(http::AppState {
        config: config.clone(),
        store: store.clone(),
        intake,
        metrics,
        jobs_enqueued,
        rules,
        vip,
        clock: clock.clone(),
        board_live: board_live.clone(),
        forecasts: Arc::new(http::admin::forecast_runs::ForecastRuns::new(
            wiring::fly_machine_id(),
        )),
    });
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?store.backend(), "zaloflow listening");
    let http_stop = stop.clone();
    http::server::serve(listener, app, async move {
        tokio::select! {
            _ = shutdown => {}
            _ = http_stop.cancelled() => {}
        }
        board_live.close();
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
const RELAY_ROOM: usize = 8192;

/// The follower sync of `serve`: it calls Zalo only while this instance's sender holds the OA,
/// and through the sender's limiter (docs/contacts-sync.md).
fn contacts_sync(
    config: &Config,
    store: &DynStore,
    sender: &outbox::Sender,
    instance: &str,
    stop: CancellationToken,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    let sync_client = contacts::sync::zalo_client(config, store.clone(), instance)?;
    sync_client.limit_retries(sender.limiter().clone());
    Ok(contacts::sync::worker(
        contacts::sync::Syncer {
            store: store.clone(),
            client: sync_client,
            limiter: sender.limiter().clone(),
            tz: config.tz,
            page_size: contacts::sync::Syncer::page_size_for(
                config.zalo_rate_per_second,
                config.outbox_lease,
            ),
        },
        sender.held().clone(),
        config.outbox_lease,
        config
            .contacts_sync_cron
            .as_deref()
            .map(contacts::sync::parse_cron)
            .transpose()
            .map_err(|e| anyhow::anyhow!("ZALOFLOW_CONTACTS_SYNC: {e}"))?,
        config.contacts_lookup,
        stop,
    ))
}

/// The lease owner of this instance's `n`th inbox processor.
fn inbox_owner(instance: &str, n: usize) -> String {
    format!("{instance}/inbox-{n}")
}

/// What the unit tests of several modules share.
#[cfg(test)]
pub(crate) mod test_support {
    /// A migrated SQLite store in a new temporary folder (kept while the folder guard lives).
    pub async fn temp_store() -> (tempfile::TempDir, crate::store::DynStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }
}

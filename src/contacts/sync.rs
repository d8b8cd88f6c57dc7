//! `zaloflow contacts sync`: the OA's followers (and the users Zalo lists as not following)
//! read from Zalo into the contacts — display name, follower flag, last interaction day,
//! tags — page by page, through the rate limiter of every OA call, with a cursor kept in the
//! database (`contact_syncs`) so an interrupted run resumes where it stopped.
//!
//! Who makes the calls: only the holder of the `zalo-sender` lease calls Zalo, so the rate
//! limit stays global. In `serve` the sync runs beside the sender and shares its limiter; the
//! command runs it itself when no `serve` holds the lease, and otherwise hands it to `serve`
//! and follows its progress. See `docs/contacts-sync.md`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use futures_util::stream::{self, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::clock::system_now;
use crate::outbox::sender::ZALO_SENDER_LEASE;
use crate::outbox::{HeldLease, Limiter};
use crate::store::{ContactSync, DynStore, StoreError, SyncPage, ZaloProfile};
use crate::zalo::client::{UserDetail, ZaloClient, ZaloError};

/// Zalo serves at most 50 users a page (PROTOCOL.md section 5).
pub const PAGE_MAX: u64 = 50;
pub const PHASE_FOLLOWERS: &str = "followers";
pub const PHASE_OTHERS: &str = "others";
pub const PHASE_DONE: &str = "done";
/// Profile lookups in flight at once (each still waits for the limiter).
const CONCURRENCY: usize = 4;

/// Why a page could not be read (the run stays where it was and is resumed later).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("Zalo: {0}")]
    Zalo(#[from] ZaloError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether the sync may go on with its next page: the caller still holds the OA (the
/// `zalo-sender` lease) and was not asked to stop.
#[async_trait]
pub trait Gate: Send + Sync {
    async fn may_continue(&self) -> bool;
}

/// Reads pages of users and their profiles into the store.
#[derive(Clone)]
pub struct Syncer {
    pub store: DynStore,
    pub client: Arc<ZaloClient>,
    /// The limiter every OA call of this process goes through.
    pub limiter: Limiter,
    pub tz: Tz,
    /// Users per page (at most [`PAGE_MAX`]).
    pub page_size: u64,
}

impl Syncer {
    /// Page size such that a page's calls (one list, `n` profiles) take at most a fifth of
    /// the `zalo-sender` lease at the per-second rate: the lease is checked between pages.
    pub fn page_size_for(rate_per_second: u32, lease: Duration) -> u64 {
        if rate_per_second == 0 {
            return PAGE_MAX;
        }
        let calls = u64::from(rate_per_second) * lease.as_secs().max(5) / 5;
        calls.saturating_sub(1).clamp(1, PAGE_MAX)
    }

    /// Runs `run` page by page while `gate` allows; answers the run as it then stands (its
    /// `status` is `done` once every page is in).
    pub async fn run(
        &self,
        mut run: ContactSync,
        gate: &dyn Gate,
        on_page: &(dyn Fn(&ContactSync) + Send + Sync),
    ) -> Result<ContactSync, SyncError> {
        while run.status == "running" {
            if !gate.may_continue().await {
                break;
            }
            run = self.step(run).await?;
            on_page(&run);
        }
        Ok(run)
    }

    /// One page of `run`, or its end once every page is in.
    pub async fn step(&self, run: ContactSync) -> Result<ContactSync, SyncError> {
        metrics::gauge!("zaloflow_contacts_sync_running").set(1.0);
        let result = if run.phase == PHASE_DONE {
            self.finish(run).await
        } else {
            self.page(run).await
        };
        match &result {
            Ok(r) if r.status == "running" => {}
            Ok(_) => metrics::gauge!("zaloflow_contacts_sync_running").set(0.0),
            Err(_) => metrics::counter!("zaloflow_contacts_sync_errors_total").increment(1),
        }
        result
    }

    async fn finish(&self, mut run: ContactSync) -> Result<ContactSync, SyncError> {
        let now = system_now();
        self.store.end_contact_sync(run.id, true, None, now).await?;
        run.status = "done".into();
        run.finished_at = Some(now);
        tracing::info!(
            run = run.id,
            listed = run.listed,
            created = run.created,
            updated = run.updated,
            unreadable = run.unreadable,
            "contacts sync done"
        );
        Ok(run)
    }

    /// Looks up the profiles of up to `limit` contacts never read from Zalo (first seen in a
    /// webhook, imported…); answers how many were due.
    pub async fn look_up_due(&self, limit: i64) -> Result<usize, SyncError> {
        let ids = self.store.profiles_due(system_now(), limit).await?;
        let details: Vec<(String, Result<UserDetail, ZaloError>)> =
            stream::iter(ids.iter().cloned())
                .map(|id| async move {
                    let _permit = self.limiter.acquire().await;
                    let d = self.client.user_detail(&id).await;
                    (id, d)
                })
                .buffered(CONCURRENCY)
                .collect()
                .await;
        let mut profiles = Vec::new();
        let mut failure = None;
        for (id, d) in details {
            let outcome = match d {
                Ok(d) => {
                    let mut p = profile_of(&d, None, self.tz, system_now());
                    p.user_id = id;
                    profiles.push(p);
                    "found"
                }
                Err(e) if is_unreadable(&e) => {
                    tracing::info!(user = %id, error = %e, "profile lookup: Zalo gave no profile");
                    self.store.profile_lookup_failed(&id, None).await?;
                    "refused"
                }
                Err(e) => {
                    let retry = system_now() + 60_000;
                    self.store.profile_lookup_failed(&id, Some(retry)).await?;
                    failure = Some(e);
                    "failed"
                }
            };
            metrics::counter!("zaloflow_contacts_lookups_total", "outcome" => outcome).increment(1);
        }
        if !profiles.is_empty() {
            self.store
                .apply_zalo_profiles(&profiles, None, system_now())
                .await?;
            tracing::info!(
                profiles = profiles.len(),
                "profiles of new contacts read from Zalo"
            );
        }
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(ids.len()),
        }
    }

    /// One page: list, look every user up, apply the profiles and move the cursor in one
    /// transaction.
    async fn page(&self, mut run: ContactSync) -> Result<ContactSync, SyncError> {
        let followers = run.phase == PHASE_FOLLOWERS;
        let offset = run.next_offset.max(0) as u64;
        let page = {
            let _permit = self.limiter.acquire().await;
            self.client
                .user_page(offset, self.page_size, followers)
                .await?
        };
        let details: Vec<(String, Result<UserDetail, ZaloError>)> =
            stream::iter(page.user_ids.iter().cloned())
                .map(|id| async move {
                    let _permit = self.limiter.acquire().await;
                    let d = self.client.user_detail(&id).await;
                    (id, d)
                })
                .buffered(CONCURRENCY)
                .collect()
                .await;
        let mut profiles = Vec::with_capacity(details.len());
        let mut unreadable = 0;
        for (id, d) in details {
            match d {
                Ok(d) => profiles.push(profile_of(&d, Some(followers), self.tz, system_now())),
                Err(e) if is_unreadable(&e) => {
                    tracing::warn!(user = %id, error = %e, "contacts sync: Zalo gave no profile; skipped");
                    unreadable += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
        let listed = page.user_ids.len() as u64;
        let total = page.total.map(|t| t as i64);
        let end_of_list = listed == 0
            || listed < self.page_size
            || page.total.is_some_and(|t| offset + listed >= t);
        let (phase, next_offset) = match (end_of_list, followers) {
            (false, _) => (run.phase.clone(), (offset + listed) as i64),
            (true, true) => (PHASE_OTHERS.to_string(), 0),
            (true, false) => (PHASE_DONE.to_string(), 0),
        };
        let step = SyncPage {
            run_id: run.id,
            from_phase: run.phase.clone(),
            from_offset: run.next_offset,
            phase: phase.clone(),
            next_offset,
            // the bar's length: Zalo's count of followers
            total: if followers { total } else { None },
            listed: listed as i64,
            unreadable,
        };
        let counts = self
            .store
            .apply_zalo_profiles(&profiles, Some(&step), system_now())
            .await?;
        metrics::counter!("zaloflow_contacts_sync_profiles_total", "outcome" => "created")
            .increment(counts.created as u64);
        metrics::counter!("zaloflow_contacts_sync_profiles_total", "outcome" => "updated")
            .increment(counts.updated as u64);
        metrics::counter!("zaloflow_contacts_sync_profiles_total", "outcome" => "unreadable")
            .increment(unreadable as u64);
        if followers && total.is_some() {
            run.total = total;
        }
        run.phase = phase;
        run.next_offset = next_offset;
        run.listed += listed as i64;
        run.created += counts.created;
        run.updated += counts.updated;
        run.unreadable += unreadable;
        run.error = None;
        metrics::gauge!("zaloflow_contacts_sync_listed").set(run.listed as f64);
        tracing::info!(
            run = run.id,
            list = if followers { PHASE_FOLLOWERS } else { PHASE_OTHERS },
            offset,
            users = listed,
            listed = run.listed,
            total = ?run.total,
            created = run.created,
            updated = run.updated,
            unreadable = run.unreadable,
            "contacts sync page"
        );
        Ok(run)
    }
}

/// A refusal that concerns this one user (invalid id, banned…): skipped and counted. Rate
/// limits, token problems, timeouts and server errors stop the page instead.
fn is_unreadable(e: &ZaloError) -> bool {
    matches!(e, ZaloError::Api { code, .. } if !matches!(code, -32 | -216 | -220 | -211 | -218))
}

/// Zalo's last interaction day (`DD/MM/YYYY`, OA time zone) as `(start of that day, the instant
/// counted as the interaction)`: the day's last millisecond, or `read_at` when earlier.
pub fn interaction_day(day: NaiveDate, tz: Tz, read_at: i64) -> (i64, i64) {
    let start = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        tz.from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.timestamp_millis())
            .unwrap_or_else(|| midnight.and_utc().timestamp_millis())
    };
    let day_start = start(day);
    let next = day.succ_opt().map(start).unwrap_or(day_start + 86_400_000);
    (day_start, (next - 1).min(read_at).max(day_start))
}

/// What a profile tells zaloflow. `listed_as_follower` is the list it came from, if any, used
/// when the profile itself has no follower flag.
pub fn profile_of(
    d: &UserDetail,
    listed_as_follower: Option<bool>,
    tz: Tz,
    read_at: i64,
) -> ZaloProfile {
    let display_name = d
        .display_name
        .as_deref()
        .and_then(|n| super::parse_name(n).ok().flatten());
    let mut tags: Vec<String> = d
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty() && t.chars().count() <= 100)
        .collect();
    tags.sort();
    tags.dedup();
    ZaloProfile {
        user_id: d.user_id.clone(),
        display_name,
        follows: d.is_follower.or(listed_as_follower),
        interaction_day: d
            .last_interaction
            .map(|day| interaction_day(day, tz, read_at)),
        tags,
        read_at,
    }
}

/// The lease checks of a `serve` instance: its sender holds `zalo-sender`, and it is not
/// stopping.
pub struct ServeGate {
    pub held: HeldLease,
    pub margin_ms: i64,
    pub stop: CancellationToken,
}

#[async_trait]
impl Gate for ServeGate {
    async fn may_continue(&self) -> bool {
        !self.stop.is_cancelled() && self.held.holds(system_now(), self.margin_ms)
    }
}

/// The lease checks of the command: it takes (and renews) `zalo-sender` itself.
pub struct CliGate {
    pub store: DynStore,
    pub owner: String,
    pub ttl_ms: i64,
    pub stop: CancellationToken,
}

#[async_trait]
impl Gate for CliGate {
    async fn may_continue(&self) -> bool {
        if self.stop.is_cancelled() {
            return false;
        }
        self.store
            .try_lease(ZALO_SENDER_LEASE, &self.owner, system_now(), self.ttl_ms)
            .await
            .unwrap_or(false)
    }
}

/// Backoff after a failed page: 5 s doubling to 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs((5u64 << failures.min(6)).min(300))
}

/// `ZALOFLOW_CONTACTS_SYNC` as a 5-field cron.
pub fn parse_cron(pattern: &str) -> Result<crate::rules::model::Cron, String> {
    let parser = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build();
    let cron = parser.parse(pattern).map_err(|e| {
        format!("{pattern:?} is not a 5-field cron (e.g. \"0 3 * * *\") or off: {e}")
    })?;
    Ok(crate::rules::model::Cron {
        pattern: pattern.to_string(),
        cron,
    })
}

/// A Zalo client of this configuration, its tokens kept in the database as the sender's are.
/// Its refreshes take the refresh lease under an owner of their own: two token managers under
/// one owner would both pass the lease and spend the single-use refresh token twice.
pub fn zalo_client(
    config: &crate::config::Config,
    store: DynStore,
    instance: &str,
) -> anyhow::Result<Arc<ZaloClient>> {
    let clock = crate::clock::Clock::system();
    let tokens = crate::zalo::stored_tokens::DbTokenStore::new(
        store,
        format!("{instance}/sync-tokens"),
        clock,
    );
    let channels = crate::channels::Channels::new(&config.channels_config(), tokens)?;
    Ok(channels.zalo_client().clone())
}

/// The name of the scheduler watermark: the last schedule occurrence a sync was started for.
const SCHEDULE_MARK: &str = "contacts_sync:schedule";

/// `serve`'s side: starts a run at the schedule's times (catching up one missed while the
/// service was down, and the first one on a database that never had a run), and runs any
/// unfinished run — from the schedule, the admin API or the command — while this instance's
/// sender holds the `zalo-sender` lease, sharing its limiter.
pub async fn worker(
    syncer: Syncer,
    held: HeldLease,
    lease: Duration,
    schedule: Option<crate::rules::model::Cron>,
    lookups: bool,
    stop: CancellationToken,
) {
    let gate = ServeGate {
        held,
        margin_ms: lease.as_millis() as i64 / 4,
        stop: stop.clone(),
    };
    let mut failures = 0u32;
    let mut pause = Duration::from_secs(1);
    let mut told_no_token = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
        pause = Duration::from_secs(2);
        if !gate.may_continue().await {
            continue;
        }
        // No token at all (none in the environment, the OA not connected yet): nothing to do
        // until there is one; runs and lookups wait where they are.
        if let Err(crate::zalo::token::TokenError::NotConfigured) =
            syncer.client.tokens().current().await
        {
            if !told_no_token {
                told_no_token = true;
                tracing::info!(
                    "no Zalo token yet: the follower sync and profile lookups wait for one"
                );
            }
            pause = Duration::from_secs(30);
            continue;
        }
        told_no_token = false;
        if let Some(cron) = &schedule {
            if let Err(e) = start_when_due(&syncer.store, cron, syncer.tz).await {
                tracing::warn!(error = %e, "contacts sync schedule: could not start a run");
            }
        }
        let mut more = false;
        let mut failed = None;
        // First-sight lookups go between the pages of a sync: names show within seconds.
        if lookups {
            match syncer.look_up_due(PAGE_MAX as i64).await {
                Ok(n) => more |= n as u64 == PAGE_MAX,
                Err(e) => failed = Some(format!("profile lookups: {e}")),
            }
        }
        match syncer.store.contact_sync().await {
            Ok(Some(run)) if run.status == "running" && failed.is_none() => {
                let id = run.id;
                match syncer.step(run).await {
                    Ok(r) => more |= r.status == "running",
                    Err(e) => {
                        let _ = syncer
                            .store
                            .end_contact_sync(id, false, Some(&e.to_string()), system_now())
                            .await;
                        failed = Some(format!("contacts sync #{id}: {e}"));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => failed = Some(format!("contacts sync state: {e}")),
        }
        match failed {
            Some(e) => {
                failures += 1;
                pause = backoff(failures - 1);
                tracing::warn!(error = %e, retry_in_s = pause.as_secs(), "Zalo profile reads paused; they resume where they stopped");
            }
            None => {
                failures = 0;
                if more {
                    pause = Duration::ZERO;
                }
            }
        }
    }
}

/// Starts a scheduled run when an occurrence has come since the last one started.
async fn start_when_due(
    store: &DynStore,
    cron: &crate::rules::model::Cron,
    tz: Tz,
) -> Result<(), StoreError> {
    let now = system_now();
    let due = match store.scheduler_value(SCHEDULE_MARK).await? {
        // The occurrence after the last one handled has come (or came while we were down).
        Some(last) => cron.next_after(last, tz).filter(|&next| next <= now),
        // Never scheduled: a fresh install syncs at once, unless a run exists already.
        None if store.contact_sync().await?.is_none() => Some(now),
        None => None,
    };
    let Some(occurrence) = due else {
        if store.scheduler_value(SCHEDULE_MARK).await?.is_none() {
            store.set_scheduler_value(SCHEDULE_MARK, now, now).await?;
        }
        return Ok(());
    };
    // The latest occurrence up to now: one run for everything missed.
    let mut latest = occurrence;
    while let Some(n) = cron.next_after(latest, tz).filter(|&n| n <= now) {
        latest = n;
    }
    store
        .set_scheduler_value(SCHEDULE_MARK, latest, now)
        .await?;
    let (run, new) = store.start_contact_sync("schedule", now).await?;
    if new {
        tracing::info!(run = run.id, schedule = %cron.pattern, "contacts sync started by the schedule");
    }
    Ok(())
}

/// `zaloflow contacts sync`: starts a run (or resumes the unfinished one) and runs it here
/// when no `serve` holds the OA, else follows `serve` running it. Prints a progress bar on a
/// terminal and a summary at the end.
pub async fn command(config: &crate::config::Config) -> anyhow::Result<()> {
    let store = crate::wiring::open_store(config).await?;
    let instance = crate::wiring::instance_id();
    let owner = format!("{instance}/contacts-sync");
    let lang = config.lang;
    let say = |key: &str, args: &[(&str, String)]| crate::i18n::words(lang, key, args);
    let (mut run, new) = store.start_contact_sync("cli", system_now()).await?;
    let id = run.id.to_string();
    if new {
        println!("{}", say("contacts.sync.started", &[("id", id.clone())]));
    } else {
        println!(
            "{}",
            say(
                "contacts.sync.resumed",
                &[
                    ("id", id.clone()),
                    ("phase", run.phase.clone()),
                    ("offset", run.next_offset.to_string()),
                    ("listed", run.listed.to_string()),
                ]
            )
        );
    }
    let lease = config.outbox_lease.max(Duration::from_secs(5));
    let limiter = Limiter::new(config.zalo_rate_per_second, config.zalo_rate_per_minute);
    let client = zalo_client(config, store.clone(), &instance)?;
    client.limit_retries(limiter.clone());
    let syncer = Syncer {
        store: store.clone(),
        client,
        limiter,
        tz: config.tz,
        page_size: Syncer::page_size_for(config.zalo_rate_per_second, lease),
    };
    let stop = CancellationToken::new();
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        });
    }
    let bar = progress_bar(lang);
    let show = |r: &ContactSync| {
        bar.set_length(r.total.unwrap_or(0).max(r.listed) as u64);
        bar.set_position(r.listed as u64);
        bar.set_message(say(
            "contacts.sync.progress",
            &[
                ("new", r.created.to_string()),
                ("known", r.updated.to_string()),
                ("unreadable", r.unreadable.to_string()),
            ],
        ));
    };
    show(&run);
    let gate = CliGate {
        store: store.clone(),
        owner: owner.clone(),
        ttl_ms: lease.as_millis() as i64,
        stop: stop.clone(),
    };
    let mut failures = 0u32;
    let mut following = false;
    let result = loop {
        if stop.is_cancelled() {
            break Err(anyhow::anyhow!(
                "{}",
                say("contacts.sync.interrupted", &[("id", id.clone())])
            ));
        }
        if run.status == "done" {
            break Ok(());
        }
        if gate.may_continue().await {
            following = false;
            match syncer.run(run.clone(), &gate, &show).await {
                Ok(r) => {
                    run = r;
                    failures = 0;
                    continue;
                }
                Err(e) => {
                    failures += 1;
                    let _ = store
                        .end_contact_sync(run.id, false, Some(&e.to_string()), system_now())
                        .await;
                    if failures >= 5 {
                        break Err(anyhow::anyhow!(
                            "{}",
                            say(
                                "contacts.sync.gave_up",
                                &[
                                    ("id", id.clone()),
                                    ("n", failures.to_string()),
                                    ("error", e.to_string())
                                ]
                            )
                        ));
                    }
                    let retrying = say("contacts.sync.retrying", &[("error", e.to_string())]);
                    bar.suspend(|| eprintln!("{retrying}"));
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::time::sleep(backoff(failures - 1)) => {}
                    }
                }
            }
        } else {
            if !following {
                following = true;
                let following = say("contacts.sync.following", &[]);
                bar.suspend(|| eprintln!("{following}"));
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        if let Some(latest) = store.contact_sync().await? {
            if latest.id == run.id {
                run = latest;
                show(&run);
            } else if latest.id > run.id {
                run.status = "done".into(); // a newer run exists: this one ended
            }
        }
    };
    let _ = store.release_lease(ZALO_SENDER_LEASE, &owner).await;
    bar.finish_and_clear();
    result?;
    println!("{}", done_line(&run, lang));
    Ok(())
}

/// The command's progress bar on a terminal (users read of Zalo's count), else a hidden one.
fn progress_bar(lang: crate::i18n::Lang) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {} {{msg}}",
            crate::i18n::tr(lang, "contacts.sync.users")
        ))
        .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// The command's last line: what the run read and changed.
fn done_line(run: &ContactSync, lang: crate::i18n::Lang) -> String {
    crate::i18n::words(
        lang,
        "contacts.sync.done",
        &[
            ("id", run.id.to_string()),
            ("listed", run.listed.to_string()),
            (
                "total",
                run.total.map_or("?".to_string(), |t| t.to_string()),
            ),
            ("created", run.created.to_string()),
            ("updated", run.updated.to_string()),
            ("unreadable", run.unreadable.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_counts_from_its_end_but_never_after_the_read() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let day = NaiveDate::from_ymd_opt(2027, 3, 5).unwrap();
        let start = tz
            .with_ymd_and_hms(2027, 3, 5, 0, 0, 0)
            .unwrap()
            .timestamp_millis();
        let far = start + 30 * 86_400_000;
        assert_eq!(
            interaction_day(day, tz, far),
            (start, start + 86_400_000 - 1)
        );
        assert_eq!(
            interaction_day(day, tz, start + 1000),
            (start, start + 1000)
        );
    }

    #[tokio::test]
    async fn the_schedule_starts_a_fresh_install_then_each_missed_occurrence_once() {
        let (_dir, store) = crate::test_support::temp_store().await;
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let cron = parse_cron("0 3 * * *").unwrap();
        // Never synced: a run at once.
        start_when_due(&store, &cron, tz).await.unwrap();
        let first = store.contact_sync().await.unwrap().unwrap();
        assert_eq!(first.requested_by, "schedule");
        store
            .end_contact_sync(first.id, true, None, system_now())
            .await
            .unwrap();
        // Again now: the next 03:00 has not come.
        start_when_due(&store, &cron, tz).await.unwrap();
        assert_eq!(store.contact_sync().await.unwrap().unwrap().id, first.id);
        // Down for three days: one run for all the missed occurrences.
        let now = system_now();
        store
            .set_scheduler_value(SCHEDULE_MARK, now - 3 * 86_400_000, now)
            .await
            .unwrap();
        start_when_due(&store, &cron, tz).await.unwrap();
        let second = store.contact_sync().await.unwrap().unwrap();
        assert!(second.id > first.id && second.status == "running");
        start_when_due(&store, &cron, tz).await.unwrap();
        assert_eq!(store.contact_sync().await.unwrap().unwrap().id, second.id);
        assert!(parse_cron("daily").is_err());
    }

    #[test]
    fn page_sizes_fit_a_fifth_of_the_lease() {
        assert_eq!(Syncer::page_size_for(10, Duration::from_secs(60)), 50);
        assert_eq!(Syncer::page_size_for(1, Duration::from_secs(60)), 11);
        assert_eq!(Syncer::page_size_for(0, Duration::from_secs(60)), 50);
        assert_eq!(Syncer::page_size_for(1, Duration::from_secs(5)), 1);
    }
}

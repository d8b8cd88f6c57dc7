//! One rule set's run over a window, in a scratch copy: the live events of the window fed in
//! order to the real inbox processor (handed over, not stored in the copy's inbox), the
//! scheduler's passes at its cadence on a moved clock, each pass deciding what is due: the
//! sends kept in memory (`outbox`, by default), and those left in the copy's outbox table
//! (emails, staff notices) through channels that send nothing (`dry`). The live store is read
//! a page at a time: memory does not grow with the number of events.

use std::sync::Arc;

use crate::clock::Clock;
use crate::engine::{state::StateCache, Engine};
use crate::inbox::Processor;
use crate::outbox::{cost::CostGuard, Sender, SenderOptions};
use crate::rules::RuleSet;
use crate::scheduler::{self, TickContext, TickOptions};
use crate::store::{DynStore, InboxEvent};

use super::dry::DryChannel;
use super::outbox::MemOutbox;
use super::scratch::{Scratch, Seed};
use super::tally::{self, Tally};
use super::{day_start, Progress, Settings, Window};

/// What a run did.
pub struct Run {
    pub tally: Tally,
    pub events: u64,
    pub contacts: u64,
}

/// The parts of a run: the scratch, its engine, processor and tick context, on one clock.
struct Rig {
    scratch: Scratch,
    clock: Clock,
    processor: Processor,
    ctx: TickContext,
    /// What the run decided, but for the sends in memory (which `mem` tallies).
    tally: Tally,
    /// The copy's sends in memory (`Settings::sends_in_memory`).
    mem: Option<Arc<MemOutbox>>,
    /// Email opens and clicks waiting for the pass that sends their email in the copy.
    waiting: Vec<InboxEvent>,
}

impl Rig {
    async fn new(rules: Arc<RuleSet>, settings: &Settings, window: Window) -> anyhow::Result<Rig> {
        let scratch = Scratch::create(settings.scratch_dir.as_deref()).await?;
        let store = scratch.store.clone();
        let clock = Clock::fixed(window.from);
        let engine = Arc::new(
            Engine::with_rule_set(rules, settings.tz)
                .with_handoff_policy(settings.handoff_policy.clone())
                .with_promotion_hours(settings.promotion_hours)
                .with_channels(settings.channels.clone()),
        );
        let guard = || CostGuard::new(settings.cost, settings.tz, settings.promotion_hours);
        let tally = Tally::new(settings.tz)
            .within(window)
            .keeping_sends(settings.keep_sends);
        let mem = settings.sends_in_memory.then(|| {
            Arc::new(MemOutbox::new(
                store.clone(),
                settings.channels.clone(),
                guard(),
                ("forecast/outbox", settings.page),
                tally.clone(),
            ))
        });
        let mut processor = Processor::new(
            store.clone(),
            engine.clone(),
            clock.clone(),
            "forecast/inbox".into(),
        );
        let sender = Sender::new(
            store.clone(),
            Arc::new(DryChannel::new(settings.channels.clone())),
            "forecast/outbox",
        )
        .with_clock(clock.clone())
        .with_options(SenderOptions {
            cost: guard(),
            // Nothing is called: a pass's sends are claimed, priced and recorded a page at a
            // time rather than the live sender's 200 (a claim, two pricing reads and the
            // outcomes per batch).
            batch: settings.page,
            // One send at a time: which sends a budget or the template quota lets through
            // must not depend on which of them finished first (a forecast comes out the same
            // every time; nothing waits on a network here).
            concurrency: 1,
            ..SenderOptions::default()
        });
        let mut ctx = TickContext::new(store, engine, "forecast/tick")
            .with_sender(sender)
            .with_escalation(settings.handoffs.clone(), settings.handoff_policy.clone())
            .with_options(TickOptions {
                lease_wait: std::time::Duration::ZERO,
                ..TickOptions::default()
            });
        ctx.clock = clock.clone();
        if let Some(mem) = &mem {
            processor.sink = Some(mem.clone());
            ctx = ctx.with_sink(mem.clone());
        }
        if settings.states_in_memory > 0 {
            let cache = Arc::new(StateCache::new(settings.states_in_memory));
            processor.cache = Some(cache.clone());
            ctx = ctx.with_state_cache(cache);
        }
        Ok(Rig {
            scratch,
            clock,
            processor,
            ctx,
            tally,
            mem,
            waiting: Vec::new(),
        })
    }

    /// One scheduler pass at `at` (deciding, then delivering what is due), then the email
    /// opens and clicks that waited for it.
    async fn tick(&mut self, live: &DynStore, at: i64) -> anyhow::Result<()> {
        self.clock.set(at);
        let r = scheduler::tick(&self.ctx, at).await?;
        anyhow::ensure!(r.ran, "the scratch copy's tick did not run");
        if let Some(mem) = &self.mem {
            if mem.deliver(at).await? {
                // Staff were told of a hold: the store's sender delivers it in this pass.
                if let Some(sender) = &self.ctx.sender {
                    sender
                        .deliver(&tokio_util::sync::CancellationToken::new())
                        .await?;
                }
            }
        }
        if !self.waiting.is_empty() {
            let waiting = std::mem::take(&mut self.waiting);
            let f = super::emails::follow(live, &self.scratch.store, waiting, false).await?;
            self.processor.replay(f.ready).await?;
        }
        Ok(())
    }

    /// Processes `events` (in id order) as of the latest: handed to the processor as they
    /// are, not stored in the scratch's inbox (`Processor::replay`), but for email opens and
    /// clicks, moved onto the scratch's emails first or left to wait for the next pass
    /// (`emails::follow`).
    async fn feed(&mut self, live: &DynStore, events: Vec<InboxEvent>) -> anyhow::Result<()> {
        let Some(latest) = events.iter().map(|e| e.received_at).max() else {
            return Ok(());
        };
        self.clock.set(latest);
        let f = super::emails::follow(live, &self.scratch.store, events, true).await?;
        self.waiting.extend(f.waiting);
        self.processor.replay(f.ready).await?;
        Ok(())
    }

    /// The tally of everything the run recorded in its scratch outbox.
    async fn finish(self, window: Window, settings: &Settings) -> anyhow::Result<Tally> {
        let Rig {
            scratch,
            processor,
            ctx,
            tally,
            mem,
            ..
        } = self;
        // The processor and the tick context hold the memory outbox too.
        drop((processor, ctx));
        let mut tally = match mem {
            Some(mem) => Arc::try_unwrap(mem)
                .map_err(|_| anyhow::anyhow!("the forecast's outbox is still in use"))?
                .finish(),
            None => tally,
        };
        tally::add_scratch(&mut tally, &scratch.store, window, settings.page).await?;
        Ok(tally)
    }
}

/// A past window (its stored events fed in) or the coming days from the contacts as they are
/// now (the scheduler's passes alone: no customer writes in a projection).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Past,
    Ahead,
}

/// Runs `window` against `rules`: the stored events `events` hands over (a past window; none
/// ahead) and the scheduler's passes.
pub async fn run(
    live: &DynStore,
    rules: Arc<RuleSet>,
    window: Window,
    settings: &Settings,
    label: &'static str,
    progress: Option<Progress>,
    events: Option<Pages>,
) -> anyhow::Result<Run> {
    let mode = if events.is_some() {
        Mode::Past
    } else {
        Mode::Ahead
    };
    let mut rig = Rig::new(rules, settings, window).await?;
    let contacts = rig
        .scratch
        .seed(
            live,
            Seed {
                at: window.from,
                as_now: mode == Mode::Ahead,
                page: settings.page,
            },
        )
        .await?;
    let mut feed = Feed {
        pages: events,
        pending: Vec::new(),
        events: 0,
    };
    let mut t = window.from;
    let mut day = day_start(window.from, settings.tz);
    while t < window.to {
        let next = (t + settings.every_ms).min(window.to);
        feed.until(live, &mut rig, next).await?;
        let next_day = day_start(next, settings.tz);
        rig.tick(live, next).await?;
        if next_day != day {
            day = next_day;
            if let Some(p) = &progress {
                p(super::Step {
                    run: label,
                    events: feed.events,
                    share: (next - window.from) as f64 / (window.to - window.from).max(1) as f64,
                });
            }
        }
        t = next;
    }
    let tally = rig.finish(window, settings).await?;
    Ok(Run {
        tally,
        events: feed.events,
        contacts,
    })
}

/// A page of the window's stored events, or why the live store could not be read.
type Page = Result<Vec<InboxEvent>, String>;

/// The pages of the window's stored events one run is handed, in id order.
pub type Pages = tokio::sync::mpsc::Receiver<Page>;

/// Reads the window's stored events from the live store a page at a time, once, and hands
/// each page to every run (`runs` of them), at most two pages ahead of the slowest: memory
/// does not grow with the number of events. A run that stopped is handed nothing more.
pub fn read_events(live: DynStore, window: Window, page: i64, runs: usize) -> Vec<Pages> {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..runs).map(|_| tokio::sync::mpsc::channel(2)).unzip();
    tokio::spawn(async move {
        let mut after = 0;
        loop {
            let read = live
                .inbox_window(after, window.from, window.to, page)
                .await
                .map_err(|e| format!("reading the live events: {e}"));
            let last = match &read {
                Ok(rows) => rows.last().map(|r| r.id),
                Err(_) => None,
            };
            let more = matches!(&read, Ok(rows) if rows.len() as i64 == page);
            // A run that stopped has dropped its receiver: it needs nothing more.
            if let Some((last_run, others)) = txs.split_last() {
                for tx in others {
                    let _ = tx.send(read.clone()).await;
                }
                let _ = last_run.send(read).await;
            }
            match (last, more) {
                // No run left to hand pages to: stop reading.
                _ if txs.iter().all(|tx| tx.is_closed()) => return,
                (Some(id), true) => after = id,
                _ => return,
            }
        }
    });
    rxs
}

/// The window's stored events, handed over a page at a time.
struct Feed {
    /// `None`: no events (the coming days), or every page was handed over.
    pages: Option<Pages>,
    /// Read but received after the pass being fed.
    pending: Vec<InboxEvent>,
    /// How many were fed.
    events: u64,
}

impl Feed {
    /// Feeds the events received before `next` (the coming pass) to the rig.
    async fn until(&mut self, live: &DynStore, rig: &mut Rig, next: i64) -> anyhow::Result<()> {
        loop {
            if self.pending.is_empty() {
                let Some(pages) = &mut self.pages else {
                    return Ok(());
                };
                match pages.recv().await {
                    Some(page) => self.pending = page.map_err(|e| anyhow::anyhow!(e))?,
                    None => {
                        self.pages = None;
                        return Ok(());
                    }
                }
                if self.pending.is_empty() {
                    return Ok(());
                }
            }
            // Ids and arrival times agree but for a few out of order: what arrived later
            // waits for its pass.
            let (now, later): (Vec<InboxEvent>, Vec<InboxEvent>) =
                self.pending.drain(..).partition(|e| e.received_at < next);
            self.pending = later;
            if now.is_empty() {
                return Ok(());
            }
            self.events += now.len() as u64;
            rig.feed(live, now).await?;
            if !self.pending.is_empty() {
                return Ok(());
            }
        }
    }
}

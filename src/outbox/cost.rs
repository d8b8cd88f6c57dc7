//! What a send costs and what holds it back, decided when it is sent (issue 25): its message
//! class and price, Zalo's caps on promotions (1 a day, 30 a month per user), the optional daily
//! budget, an empty billing account (`-321`) and opt-outs (`-244`). A held send stays in the
//! outbox with the reason in its last error (`held: …`) and goes out when the hold ends; staff
//! hear of a spent budget or an empty billing account once a day.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{Datelike, TimeZone};
use chrono_tz::Tz;
use rust_i18n::t;
use serde_json::json;
use zaloflow_core::cost::{ConsultationHistory, CostPolicy, SendClass, SendCost};

use crate::channels::{Payload, ZaloKind};
use crate::store::{DynStore, NewJob, StoreError};

/// Promotions a user may receive a day and a month (PROTOCOL.md §5: tag 3).
pub const PROMOTIONS_PER_DAY: i64 = 1;
pub const PROMOTIONS_PER_MONTH: i64 = 30;

/// How long a template or promotion send waits after Zalo answered `-321`, before it is tried
/// again (the shop tops the account up meanwhile).
pub const BILLING_RETRY_MS: i64 = 3_600_000;

/// How long a send of a disabled template waits before it is checked again.
pub const TEMPLATE_RETRY_MS: i64 = 3_600_000;

/// The reason code of a send skipped because the user refused its type (`-244`).
pub const OPTED_OUT: &str = "opted_out";

/// The sender's view of costs: the policy, the OA's time zone and promotion hours, where staff
/// hear of holds, and today's spend (shared by a sender's clones).
#[derive(Debug, Clone)]
pub struct CostGuard {
    pub policy: CostPolicy,
    pub tz: Tz,
    /// Local minutes `[from, until)` when promotions may go out.
    pub promotion_hours: (u32, u32),
    /// The chat channel staff hear of holds in (None: `ZALOFLOW_CHAT_WEBHOOK_URL`).
    pub chat_channel: Option<String>,
    /// The language staff hear of holds in (`ZALOFLOW_LANG`).
    pub lang: crate::i18n::Lang,
    /// (local day start, VND spent or reserved that day).
    spent: Arc<Mutex<Option<(i64, i64)>>>,
    /// Sends made in the current batch, per user: their outcomes are committed while the batch
    /// runs, so the store may not show them yet when the user's next send is checked.
    recent: Arc<Mutex<HashMap<String, Vec<RecentSend>>>>,
    /// The claimed batch's users' history, read once for the batch (`prefetch`): a user
    /// missing here is read from the store when their send is checked.
    batch: Arc<Mutex<HashMap<String, UserHistory>>>,
    /// Template messages this sender checked (and so reserved a place in the OA's daily
    /// quota for) since the batch started, less those that did not go out.
    templates_sent: Arc<std::sync::atomic::AtomicI64>,
    /// (local day, template messages the store counted sent that day when this batch first
    /// checked one): with `templates_sent`, each counted once.
    templates_before: Arc<Mutex<Option<(i64, i64)>>>,
    /// What this batch read of the OA's templates: each template's status and the daily quota
    /// (read once per batch, not once per send; a change lands at the next batch).
    templates_read: Arc<Mutex<TemplatesRead>>,
    /// Held while a count that later checks add to (`spent`, `templates_before`) is read from
    /// the store: the sends of a batch are checked side by side, and a second read, answered
    /// after some of the batch's sends were committed, would count those sends twice (once in
    /// the store, once as reserved) and hold sends that had room.
    reading: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Default)]
struct TemplatesRead {
    status: HashMap<String, Option<String>>,
    quota: Option<Option<i64>>,
}

/// A user's history as read for a batch: last interaction and billed sends (id, class, at)
/// since the batch's horizon.
#[derive(Debug, Clone, Default)]
struct UserHistory {
    last_interaction: Option<i64>,
    sends: Vec<RecentSend>,
}

impl Default for CostGuard {
    fn default() -> Self {
        CostGuard {
            policy: CostPolicy::default(),
            tz: chrono_tz::Asia::Ho_Chi_Minh,
            promotion_hours: zaloflow_core::job::PROMOTION_HOURS,
            chat_channel: None,
            lang: crate::i18n::Lang::default(),
            spent: Arc::default(),
            recent: Arc::default(),
            batch: Arc::default(),
            templates_sent: Arc::default(),
            templates_before: Arc::default(),
            templates_read: Arc::default(),
            reading: Arc::default(),
        }
    }
}

/// A send of the running batch: (job id, class, when).
type RecentSend = (i64, SendClass, i64);

/// What the guard says of a send before it is made.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it; this is its class and price (None: not a billed message).
    Go(Option<SendCost>),
    /// Not now: due again at `until`, for the reason staff read.
    /// `reason`: the `zaloflow_jobs_held_total` label (`promotion_cap`, `budget`, `billing`).
    Hold {
        until: i64,
        reason: &'static str,
        why: String,
        /// What staff are told in the team chat, once a day (None: nothing).
        notice: Option<String>,
    },
}

impl CostGuard {
    pub fn new(policy: CostPolicy, tz: Tz, promotion_hours: (u32, u32)) -> CostGuard {
        CostGuard {
            policy,
            tz,
            promotion_hours,
            ..CostGuard::default()
        }
    }

    pub fn with_chat_channel(mut self, channel: Option<String>) -> CostGuard {
        self.chat_channel = channel;
        self
    }

    /// The language staff are told of holds in.
    pub fn with_lang(mut self, lang: crate::i18n::Lang) -> CostGuard {
        self.lang = lang;
        self
    }

    /// Today's spend is read from the store again (at the start of each batch, when a budget
    /// is set): other instances' sends count too.
    pub async fn refresh(&self, store: &DynStore, now: i64) -> Result<(), StoreError> {
        // The previous batch's outcomes are all committed when the next one starts.
        self.recent.lock().expect("poisoned").clear();
        self.batch.lock().expect("poisoned").clear();
        self.templates_sent
            .store(0, std::sync::atomic::Ordering::Relaxed);
        *self.templates_before.lock().expect("poisoned") = None;
        *self.templates_read.lock().expect("poisoned") = TemplatesRead::default();
        if self.policy.daily_budget_vnd.is_none() {
            return Ok(());
        }
        let day = self.day_start(now);
        let spent = store.spent_since(day).await?;
        *self.spent.lock().expect("poisoned") = Some((day, spent));
        Ok(())
    }

    /// Reads, in two statements, the history that prices the Zalo sends of the batch `owner`
    /// has just claimed (`users`: the batch's users with a consultation or promotion send),
    /// instead of one or two reads per send.
    pub async fn prefetch(
        &self,
        store: &DynStore,
        owner: &str,
        users: &[&str],
        now: i64,
    ) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        // What a check looks back at: the month (promotion caps) and the 7-day window in
        // which consultation messages may go out at all.
        let since = self.month_start(now).min(now - 8 * 86_400_000);
        let h = store.claimed_history(owner, since).await?;
        let mut batch: HashMap<String, UserHistory> = users
            .iter()
            .map(|u| (u.to_string(), UserHistory::default()))
            .collect();
        for (user, last) in h.contacts {
            if let Some(u) = batch.get_mut(&user) {
                u.last_interaction = last;
            }
        }
        for (user, id, class, at) in h.sends {
            let (Some(class), Some(u)) = (SendClass::parse(&class), batch.get_mut(&user)) else {
                continue;
            };
            {
                u.sends.push((id, class, at));
            }
        }
        *self.batch.lock().expect("poisoned") = batch;
        Ok(())
    }

    /// The user's last interaction and the store's ids of their sends that `keep`, from the
    /// batch's history when it holds the user.
    fn batch_history(
        &self,
        user_id: &str,
        keep: impl Fn(Option<i64>, SendClass, i64) -> bool,
    ) -> Option<(Option<i64>, Vec<i64>)> {
        let batch = self.batch.lock().expect("poisoned");
        let u = batch.get(user_id)?;
        let ids = u
            .sends
            .iter()
            .filter(|(_, c, at)| keep(u.last_interaction, *c, *at))
            .map(|(id, _, _)| *id)
            .collect();
        Some((u.last_interaction, ids))
    }

    /// Gives back the place in the OA's daily template quota that a checked template send
    /// reserved and did not use.
    pub fn template_unsent(&self) {
        if self.quota_reserved() {
            self.templates_sent
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Why a template message must wait: Zalo disabled its template (`change_template_status`:
    /// tried again every hour, staff were told when the event came), or the OA's daily
    /// template quota (`change_oa_daily_quota`) is used up (the next day).
    async fn template_hold(
        &self,
        store: &DynStore,
        template_id: &str,
        tag: Option<u8>,
        now: i64,
    ) -> Result<Option<Verdict>, StoreError> {
        let cached = self
            .templates_read
            .lock()
            .expect("poisoned")
            .status
            .get(template_id)
            .cloned();
        let status = match cached {
            Some(s) => s,
            None => {
                let s = store.template_status(template_id).await?;
                self.templates_read
                    .lock()
                    .expect("poisoned")
                    .status
                    .insert(template_id.to_string(), s.clone());
                s
            }
        };
        if let Some(status) = status {
            if !zaloflow_core::job::template_usable(&status) {
                return Ok(Some(Verdict::Hold {
                    until: now + TEMPLATE_RETRY_MS,
                    reason: "template_disabled",
                    why: format!(
                        "held: Zalo set template {template_id} to {status}; its sends wait until it is enabled again"
                    ),
                    // Staff were told when Zalo changed it (the inbox).
                    notice: None,
                }));
            }
        }
        let cached = self.templates_read.lock().expect("poisoned").quota;
        let quota = match cached {
            Some(q) => q,
            None => {
                let q = store.daily_quota().await?;
                self.templates_read.lock().expect("poisoned").quota = Some(q);
                q
            }
        };
        let Some(quota) = quota else {
            *self.templates_before.lock().expect("poisoned") = None;
            return Ok(None);
        };
        let day = self.day_start(now);
        let known = || match *self.templates_before.lock().expect("poisoned") {
            Some((d, n)) if d == day => Some(n),
            _ => None,
        };
        // No send of this batch has been let through for `day` before this read (each waits
        // for it): the store's count holds none of them.
        let before = self
            .read_once(known, async {
                let n = store.template_sends_since(day).await?;
                *self.templates_before.lock().expect("poisoned") = Some((day, n));
                Ok(n)
            })
            .await?;
        // Checked and reserved at once: sends to other users run side by side. A send that
        // does not go out gives its place back (`template_unsent`).
        let sent = self
            .templates_sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let used = before + sent;
        if used < quota {
            return Ok(None);
        }
        self.template_unsent();
        let until = match tag {
            Some(2 | 3) => self.next_day_promotion_start(now),
            _ => self.next_day_start(now),
        };
        Ok(Some(Verdict::Hold {
            until,
            reason: "template_quota",
            why: format!(
                "held: the OA's daily quota of {quota} template messages is used up ({used} sent today); it goes out tomorrow"
            ),
            notice: Some(
                t!(
                    "notice.template_quota",
                    locale = self.lang.code(),
                    used = used,
                    quota = quota
                )
                .into_owned(),
            ),
        }))
    }

    /// The class and price of `payload` sent at `now`, or why it must wait.
    pub async fn check(
        &self,
        store: &DynStore,
        user_id: &str,
        payload: &Payload,
        now: i64,
    ) -> Result<Verdict, StoreError> {
        if let Payload::Zns {
            template_id, tag, ..
        } = payload
        {
            match self.template_hold(store, template_id, *tag, now).await? {
                Some(hold) => return Ok(hold),
                None => {
                    let verdict = self.check_class(store, user_id, payload, now).await;
                    if !matches!(verdict, Ok(Verdict::Go(_))) {
                        // Held for another reason (or unpriced): its quota place is free.
                        self.template_unsent();
                    }
                    return verdict;
                }
            }
        }
        self.check_class(store, user_id, payload, now).await
    }

    /// Whether template checks reserve places in a daily quota this batch.
    fn quota_reserved(&self) -> bool {
        self.templates_before.lock().expect("poisoned").is_some()
    }

    /// The class and price of `payload`, or why it must wait: caps, budget.
    async fn check_class(
        &self,
        store: &DynStore,
        user_id: &str,
        payload: &Payload,
        now: i64,
    ) -> Result<Verdict, StoreError> {
        let history = match payload {
            Payload::Zalo {
                kind: ZaloKind::Cs, ..
            } => {
                let cached = self.batch_history(user_id, |last, c, at| {
                    c.is_consultation() && last.is_some_and(|l| at >= l)
                });
                let (last, ids) = match cached {
                    Some(h) => h,
                    None => store.consultation_sends(user_id).await?,
                };
                ConsultationHistory {
                    last_interaction: last,
                    sent_since: last.map_or(0, |last| {
                        self.with_recent(user_id, ids, |c, at| c.is_consultation() && at >= last)
                    }),
                }
            }
            _ => ConsultationHistory::default(),
        };
        let Some(class) = self.policy.class_of(payload, history, now) else {
            return Ok(Verdict::Go(None));
        };
        let vnd = self.policy.prices.of(class);
        if class == SendClass::Promotion {
            // Zalo's caps on promotions per user (tag 3): a day, then a month.
            let caps = [
                (
                    self.day_start(now),
                    PROMOTIONS_PER_DAY,
                    self.next_day_promotion_start(now),
                    "a day",
                    "tomorrow",
                ),
                (
                    self.month_start(now),
                    PROMOTIONS_PER_MONTH,
                    self.next_month_promotion_start(now),
                    "a month",
                    "next month",
                ),
            ];
            for (since, cap, until, per, when) in caps {
                let ids = match self.batch_history(user_id, |_, c, at| c == class && at >= since) {
                    Some((_, ids)) => ids,
                    None => store.class_send_ids(user_id, class.as_str(), since).await?,
                };
                if self.with_recent(user_id, ids, |c, at| c == class && at >= since) >= cap {
                    let noun = if cap == 1 { "promotion" } else { "promotions" };
                    return Ok(Verdict::Hold {
                        until,
                        reason: "promotion_cap",
                        why: format!(
                            "held: Zalo takes {cap} {noun} {per} per user and this user reached it; it goes out {when}"
                        ),
                        notice: None,
                    });
                }
            }
        }
        if let Some(budget) = self.policy.daily_budget_vnd {
            self.load_spent(store, now).await?;
            // Checked and reserved at once: sends to other users run side by side.
            let day = self.day_start(now);
            let spent = {
                let mut s = self.spent.lock().expect("poisoned");
                let (_, spent) = s.get_or_insert((day, 0));
                let before = *spent;
                if !self.policy.over_budget(class, vnd, before) {
                    *spent += vnd;
                }
                before
            };
            if self.policy.over_budget(class, vnd, spent) {
                // A promotion waits for the next day's promotion hours, not midnight.
                let until = if class == SendClass::Promotion {
                    self.next_day_promotion_start(now)
                } else {
                    self.next_day_start(now)
                };
                return Ok(Verdict::Hold {
                    until,
                    reason: "budget",
                    why: format!(
                        "held: today's budget of {budget} VND is spent ({spent} VND); it goes out tomorrow"
                    ),
                    notice: Some(
                        t!(
                            "notice.budget",
                            locale = self.lang.code(),
                            spent = format!("{spent} VND"),
                            budget = format!("{budget} VND")
                        )
                        .into_owned(),
                    ),
                });
            }
        }
        Ok(Verdict::Go(Some(SendCost { class, vnd })))
    }

    /// Notes job `id` sent to `user_id` (its class counts for their next send at once).
    pub fn sent(&self, id: i64, user_id: &str, cost: &SendCost, now: i64) {
        self.recent
            .lock()
            .expect("poisoned")
            .entry(user_id.to_string())
            .or_default()
            .push((id, cost.class, now));
    }

    /// Gives back the budget a send reserved that did not go out.
    pub fn unreserve(&self, cost: &SendCost, now: i64) {
        if self.policy.daily_budget_vnd.is_none() {
            return;
        }
        let day = self.day_start(now);
        if let Some((d, spent)) = self.spent.lock().expect("poisoned").as_mut() {
            if *d == day {
                *spent -= cost.vnd;
            }
        }
    }

    /// How many sends: the store's `ids` and this batch's that `keep`, each once (an outcome
    /// may or may not be committed yet).
    fn with_recent(
        &self,
        user_id: &str,
        ids: Vec<i64>,
        keep: impl Fn(SendClass, i64) -> bool,
    ) -> i64 {
        let mut all: std::collections::BTreeSet<i64> = ids.into_iter().collect();
        if let Some(v) = self.recent.lock().expect("poisoned").get(user_id) {
            all.extend(
                v.iter()
                    .filter(|(_, c, at)| keep(*c, *at))
                    .map(|(id, _, _)| *id),
            );
        }
        all.len() as i64
    }

    /// Reads today's spend from the store unless it is already known for today.
    async fn load_spent(&self, store: &DynStore, now: i64) -> Result<(), StoreError> {
        let day = self.day_start(now);
        let known = || {
            matches!(*self.spent.lock().expect("poisoned"), Some((d, _)) if d == day).then_some(())
        };
        self.read_once(known, async {
            let spent = store.spent_since(day).await?;
            *self.spent.lock().expect("poisoned") = Some((day, spent));
            Ok(())
        })
        .await
    }

    /// What `known` gives, or else `read` (which stores it where `known` looks), one read at a
    /// time (`reading`): a check that waited for another's read finds its result.
    async fn read_once<T>(
        &self,
        known: impl Fn() -> Option<T>,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        if let Some(v) = known() {
            return Ok(v);
        }
        let _reading = self.reading.lock().await;
        match known() {
            Some(v) => Ok(v),
            None => read.await,
        }
    }

    /// Tells staff of a hold once a local day, across instances (a lease named for the hold and
    /// the day, taken by an owner no other call uses).
    pub async fn tell_staff_once(
        &self,
        store: &DynStore,
        hold: &str,
        text: String,
        now: i64,
        owner: &str,
    ) {
        let day = self.day_start(now);
        let name = format!("notice:{hold}:{day}");
        let owner = format!("{owner}:{}", rand::random::<u64>());
        match store.try_lease(&name, &owner, now, 36 * 3_600_000).await {
            Ok(true) => {
                let payload = Payload::Chat {
                    channel: self.chat_channel.clone(),
                    text,
                    data: json!({ "hold": hold }),
                };
                let job: NewJob = super::job(&payload, now, format!("hold:{hold}"));
                if let Err(e) = store.enqueue_jobs(&[job], now).await {
                    tracing::warn!(error = %e, hold, "could not tell staff of the hold");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, hold, "could not tell staff of the hold"),
        }
    }

    fn local(&self, at: i64) -> chrono::DateTime<Tz> {
        zaloflow_core::clock::to_utc(at).with_timezone(&self.tz)
    }

    fn at_local(&self, date: chrono::NaiveDate, minute: u32) -> i64 {
        let t = date
            .and_hms_opt(minute / 60, minute % 60, 0)
            .expect("minutes are checked when read");
        self.tz
            .from_local_datetime(&t)
            .earliest()
            .map_or(0, |t| t.timestamp_millis())
    }

    /// Local midnight of `now`'s day.
    pub fn day_start(&self, now: i64) -> i64 {
        self.at_local(self.local(now).date_naive(), 0)
    }

    fn next_day_start(&self, now: i64) -> i64 {
        self.at_local(self.local(now).date_naive() + chrono::Days::new(1), 0)
    }

    fn month_start(&self, now: i64) -> i64 {
        self.at_local(self.local(now).date_naive().with_day(1).expect("day 1"), 0)
    }

    fn next_day_promotion_start(&self, now: i64) -> i64 {
        let tomorrow = self.local(now).date_naive() + chrono::Days::new(1);
        self.at_local(tomorrow, self.promotion_hours.0)
    }

    fn next_month_promotion_start(&self, now: i64) -> i64 {
        let first = self.local(now).date_naive().with_day(1).expect("day 1");
        let next = first + chrono::Months::new(1);
        self.at_local(next, self.promotion_hours.0)
    }
}

/// The contact field that records a user's opt-out of template messages (`-244` to one).
pub const TEMPLATE_OPT_OUT: &str = "zalo_optout_template";

/// The contact field that records a user's opt-out of a message type (`-244`); the rules'
/// planner skips sends of that type to them.
pub fn opt_out_field(kind: ZaloKind) -> String {
    format!("zalo_optout_{}", kind_name(kind))
}

fn kind_name(kind: ZaloKind) -> &'static str {
    match kind {
        ZaloKind::Cs => "cs",
        ZaloKind::Promotion => "promotion",
        ZaloKind::Transaction => "transaction",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_are_local() {
        let g = CostGuard::default();
        let tz = g.tz;
        let ms = |y, m, d, h, min| {
            tz.with_ymd_and_hms(y, m, d, h, min, 0)
                .unwrap()
                .timestamp_millis()
        };
        let now = ms(2026, 12, 31, 23, 30);
        assert_eq!(g.day_start(now), ms(2026, 12, 31, 0, 0));
        assert_eq!(g.next_day_start(now), ms(2027, 1, 1, 0, 0));
        assert_eq!(g.next_day_promotion_start(now), ms(2027, 1, 1, 7, 0));
        assert_eq!(g.month_start(now), ms(2026, 12, 1, 0, 0));
        assert_eq!(g.next_month_promotion_start(now), ms(2027, 1, 1, 7, 0));
    }
}

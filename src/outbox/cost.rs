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
use crate::store::{DynStore, NewJob, Spend, StoreError, Templates};

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

/// What the cost guard reads of past sends and of the OA's templates: the store's outbox, or
/// a forecast's memory of the sends its copy decided (`forecast::outbox`), which keeps them
/// out of its store.
#[async_trait::async_trait]
pub trait SendHistory: Send + Sync {
    /// The user's last interaction and the ids of their consultation sends since it.
    async fn consultation_sends(
        &self,
        user_id: &str,
    ) -> Result<(Option<i64>, Vec<i64>), StoreError>;
    /// The ids of the user's sends of `class` from `since` on.
    async fn class_send_ids(
        &self,
        user_id: &str,
        class: &str,
        since: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// VND spent from `since` on.
    async fn spent_since(&self, since: i64) -> Result<i64, StoreError>;
    /// Template messages sent from `since` on.
    async fn template_sends_since(&self, since: i64) -> Result<i64, StoreError>;
    /// The template's status as Zalo last told it.
    async fn template_status(&self, id: &str) -> Result<Option<String>, StoreError>;
    /// The OA's daily template quota, when Zalo told it.
    async fn daily_quota(&self) -> Result<Option<i64>, StoreError>;
}

#[async_trait::async_trait]
impl SendHistory for DynStore {
    async fn consultation_sends(
        &self,
        user_id: &str,
    ) -> Result<(Option<i64>, Vec<i64>), StoreError> {
        Spend::consultation_sends(&**self, user_id).await
    }
    async fn class_send_ids(
        &self,
        user_id: &str,
        class: &str,
        since: i64,
    ) -> Result<Vec<i64>, StoreError> {
        Spend::class_send_ids(&**self, user_id, class, since).await
    }
    async fn spent_since(&self, since: i64) -> Result<i64, StoreError> {
        Spend::spent_since(&**self, since).await
    }
    async fn template_sends_since(&self, since: i64) -> Result<i64, StoreError> {
        Templates::template_sends_since(&**self, since).await
    }
    async fn template_status(&self, id: &str) -> Result<Option<String>, StoreError> {
        Templates::template_status(&**self, id).await
    }
    async fn daily_quota(&self) -> Result<Option<i64>, StoreError> {
        Templates::daily_quota(&**self).await
    }
}

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
    /// Per local day this batch checked template messages for: the store's count of that
    /// day's template sends when the batch first checked one, and the places in the OA's
    /// daily quota the batch's checks reserved since (less those that did not go out). Each
    /// send is counted once, and in its own day: a batch that runs over midnight starts the
    /// new day with none of the old day's sends.
    template_days: Arc<Mutex<HashMap<i64, TemplateDay>>>,
    /// What this batch read of the OA's templates: each template's status and the daily quota
    /// (read once per batch, not once per send; a change lands at the next batch).
    templates_read: Arc<Mutex<TemplatesRead>>,
    /// Held while a count that later checks add to (`spent`, `template_days`) is read from
    /// the store: the sends of a batch are checked side by side, and a second read, answered
    /// after some of the batch's sends were committed, would count those sends twice (once in
    /// the store, once as reserved) and hold sends that had room.
    reading: Arc<tokio::sync::Mutex<()>>,
}

/// A local day's template sends as a batch counts them (`CostGuard::template_days`).
#[derive(Debug, Clone, Copy)]
struct TemplateDay {
    before: i64,
    reserved: i64,
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
            template_days: Arc::default(),
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
    pub async fn refresh(&self, store: &dyn SendHistory, now: i64) -> Result<(), StoreError> {
        // The previous batch's outcomes are all committed when the next one starts.
        self.recent.lock().expect("poisoned").clear();
        self.batch.lock().expect("poisoned").clear();
        self.template_days.lock().expect("poisoned").clear();
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

    /// Gives back the place in the OA's daily template quota that a template send checked
    /// at `checked_at` reserved and did not use.
    pub fn template_unsent(&self, checked_at: i64) {
        let day = self.day_start(checked_at);
        if let Some(t) = self.template_days.lock().expect("poisoned").get_mut(&day) {
            t.reserved -= 1;
        }
    }

    /// Why a template message must wait: Zalo disabled its template (`change_template_status`:
    /// tried again every hour, staff were told when the event came), or the OA's daily
    /// template quota (`change_oa_daily_quota`) is used up (the next day).
    async fn template_hold(
        &self,
        store: &dyn SendHistory,
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
            return Ok(None);
        };
        let day = self.day_start(now);
        let known = || {
            let days = self.template_days.lock().expect("poisoned");
            days.get(&day).map(|t| t.before)
        };
        // No send of this batch has been let through for `day` before this read (each waits
        // for it): the store's count holds none of them.
        let before = self
            .read_once(known, async {
                let n = store.template_sends_since(day).await?;
                let fresh = TemplateDay {
                    before: n,
                    reserved: 0,
                };
                self.template_days
                    .lock()
                    .expect("poisoned")
                    .insert(day, fresh);
                Ok(n)
            })
            .await?;
        // Checked and reserved at once: sends to other users run side by side. A send that
        // does not go out gives its place back (`template_unsent`). (The day is there unless
        // another lane's batch started meanwhile and cleared the batch's counts.)
        let used = {
            let mut days = self.template_days.lock().expect("poisoned");
            let t = days.entry(day).or_insert(TemplateDay {
                before,
                reserved: 0,
            });
            t.reserved += 1;
            t.before + t.reserved - 1
        };
        if used < quota {
            return Ok(None);
        }
        self.template_unsent(now);
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
        store: &dyn SendHistory,
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
                        self.template_unsent(now);
                    }
                    return verdict;
                }
            }
        }
        self.check_class(store, user_id, payload, now).await
    }

    /// The class and price of `payload`, or why it must wait: caps, budget.
    async fn check_class(
        &self,
        store: &dyn SendHistory,
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
    async fn load_spent(&self, store: &dyn SendHistory, now: i64) -> Result<(), StoreError> {
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

    /// Local midnight of the first day of `now`'s month.
    pub fn month_start(&self, now: i64) -> i64 {
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

    /// A batch that runs over midnight counts each template send in its own day: the OA's
    /// daily quota (2) is full at 23:59, and a send checked at 00:01 in the same batch goes
    /// out, none of the day before counted against the new day (it was before).
    #[tokio::test]
    async fn a_batch_over_midnight_starts_the_new_day_with_its_own_template_count() {
        let (_dir, store) = crate::test_support::temp_store().await;
        let g = CostGuard::default();
        let at = |d, h, m| {
            g.tz.with_ymd_and_hms(2026, 12, d, h, m, 0)
                .unwrap()
                .timestamp_millis()
        };
        store.set_daily_quota(Some(2), at(1, 8, 0)).await.unwrap();
        let zns = |user: &str| Payload::Zns {
            phone: String::new(),
            template_id: "t1".into(),
            template_data: serde_json::json!({}),
            tracking_id: format!("tr-{user}"),
            user_id: Some(user.into()),
            tag: Some(1),
        };
        let late = at(3, 23, 59);
        g.refresh(&store, late).await.unwrap();
        let mut verdicts = Vec::new();
        for (user, now) in [
            ("u1", late),
            ("u2", late),
            ("u3", late),
            ("u4", at(4, 0, 1)),
        ] {
            let v = g.check(&store, user, &zns(user), now).await.unwrap();
            verdicts.push(matches!(v, Verdict::Go(_)));
        }
        assert_eq!(verdicts, [true, true, false, true]);
        // A send checked before midnight that did not go out gives its place back to its own
        // day, not to the new one.
        g.template_unsent(late);
        let v = g
            .check(&store, "u5", &zns("u5"), at(4, 0, 2))
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Go(_)), "{v:?}");
        let v = g
            .check(&store, "u6", &zns("u6"), at(4, 0, 3))
            .await
            .unwrap();
        assert!(matches!(v, Verdict::Hold { .. }), "{v:?}");
    }
}

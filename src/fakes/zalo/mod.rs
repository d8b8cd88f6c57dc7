//! A fake Zalo: the OA Open API, OAuth v4 and ZNS on one base URL, answering as `PROTOCOL.md`
//! says: errors inside HTTP 200 envelopes, -216 for a wrong or expired access token,
//! single-use refresh tokens, -230 for cs messages to users silent over 7 days, -213 for
//! non-followers, -32 over a call rate, plus scripted failures and delays.
//!
//! Its clock (for interaction windows and token expiry) is the system clock unless
//! [`FakeZalo::set_now`] pins it, so the demo can replay a week in seconds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::Signal;

mod api;
use api::api;

/// OA API paths the fake serves (besides OAuth and ZNS).
pub const CS_PATH: &str = "/v3.0/oa/message/cs";
pub const PROMOTION_PATH: &str = "/v3.0/oa/message/promotion";
pub const TRANSACTION_PATH: &str = "/v3.0/oa/message/transaction";
pub const OAUTH_PATH: &str = "/v4/oa/access_token";
pub const ZNS_PATH: &str = "/message/template";
/// The follower list and a user's profile (PROTOCOL.md sections 2 and 5).
pub const GETLIST_PATH: &str = "/v3.0/oa/user/getlist";
pub const DETAIL_PATH: &str = "/v3.0/oa/user/detail";

/// How the fake starts.
#[derive(Debug, Clone)]
pub struct FakeZaloOptions {
    pub app_id: String,
    pub app_secret: String,
    /// the access token valid at start
    pub access_token: String,
    /// the refresh token valid at start (single-use)
    pub refresh_token: String,
    /// lifetime of access tokens issued by refreshes (and of the first one)
    pub expires_in_secs: i64,
    /// answer -32 once more than this many API calls arrived within one second
    pub max_calls_per_second: Option<u32>,
    /// answer -32 once more than this many API calls arrived within one minute
    pub max_calls_per_minute: Option<u32>,
    /// the OA time zone (for `user_last_interaction_date`)
    pub tz: Tz,
    /// treat users never added as followers who just interacted (handy for the demo);
    /// otherwise they are answered -201
    pub accept_unknown_users: bool,
}

impl Default for FakeZaloOptions {
    fn default() -> Self {
        FakeZaloOptions {
            app_id: "1234567890".into(),
            app_secret: "fake-app-secret".into(),
            access_token: "fake-access-0".into(),
            refresh_token: "fake-refresh-0".into(),
            expires_in_secs: 90_000,
            max_calls_per_second: None,
            max_calls_per_minute: None,
            tz: chrono_tz::Asia::Ho_Chi_Minh,
            accept_unknown_users: false,
        }
    }
}

/// A follower as the fake knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeUser {
    pub user_id: String,
    pub display_name: String,
    pub follower: bool,
    pub last_interaction: DateTime<Utc>,
    pub tags: BTreeSet<String>,
}

impl FakeUser {
    pub fn new(user_id: &str, display_name: &str, last_interaction: DateTime<Utc>) -> Self {
        FakeUser {
            user_id: user_id.into(),
            display_name: display_name.into(),
            follower: true,
            last_interaction,
            tags: BTreeSet::new(),
        }
    }
}

/// One request as it arrived, with what the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// since the fake started (real time)
    pub elapsed: Duration,
    /// the fake's clock when it arrived
    pub at: DateTime<Utc>,
    pub method: String,
    pub path: String,
    /// JSON body, the `data` query parameter of GETs, or the OAuth form as an object
    pub body: Value,
    pub user_id: Option<String>,
    pub access_token: Option<String>,
    /// HTTP status answered
    pub status: u16,
    /// Zalo `error` answered (0 = success)
    pub error: i64,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeMessage {
    /// `cs`, `promotion`, `transaction` or `zns`
    pub kind: String,
    pub user_id: Option<String>,
    pub phone: Option<String>,
    /// the `message` object (OA) or the whole body (ZNS)
    pub message: Value,
    pub message_id: String,
    pub at: DateTime<Utc>,
}

impl FakeMessage {
    /// The message's text, if it has one.
    pub fn text(&self) -> Option<&str> {
        self.message.get("text").and_then(Value::as_str)
    }

    /// What the user reads: the text, or a template's header and text elements joined by a
    /// space (a promotion is a template).
    pub fn shown(&self) -> Option<String> {
        if let Some(t) = self.text() {
            return Some(t.to_string());
        }
        let parts: Vec<&str> = self
            .message
            .pointer("/attachment/payload/elements")?
            .as_array()?
            .iter()
            .filter(|e| {
                matches!(
                    e.get("type").and_then(Value::as_str),
                    Some("header" | "text")
                )
            })
            .filter_map(|e| e.get("content").and_then(Value::as_str))
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// A scripted answer for the next API calls.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// HTTP 200 with `{"error": code, "message": message}`
    Zalo { code: i64, message: String },
    /// this HTTP status with a plain body
    Http(u16),
}

struct Inner {
    opts: FakeZaloOptions,
    access_tokens: HashMap<String, DateTime<Utc>>,
    refresh_token: Option<String>,
    used_refresh_tokens: BTreeSet<String>,
    refreshes: u64,
    issued: u64,
    users: BTreeMap<String, FakeUser>,
    arrivals: Vec<Arrival>,
    messages: Vec<FakeMessage>,
    scripted: VecDeque<Failure>,
    delay: Duration,
    now: Option<DateTime<Utc>>,
    window: VecDeque<Instant>,
    next_id: u64,
    connect: super::zalo_oauth::ConnectState,
    /// (user id, message kind) pairs the user refused: answered -244.
    opted_out: BTreeSet<(String, String)>,
    /// The OA's billing account is empty: promotions and template messages answer -321.
    billing_empty: bool,
    /// The OA's approved templates (ZBS); a template not listed may go by phone only, as a
    /// tag-1 ZNS did.
    templates: BTreeMap<String, FakeTemplate>,
    /// The OA's daily template quota (None: unlimited): past it, template sends answer -211.
    template_quota: Option<usize>,
}

/// An approved template as the fake knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeTemplate {
    /// 1 transaction, 2 customer care, 3 promotion.
    pub tag: u8,
    /// May be sent by Zalo user id (else -249).
    pub by_user_id: bool,
    /// Enabled (a disabled template answers -201).
    pub enabled: bool,
}

impl Inner {
    fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }
}

struct Shared {
    inner: Mutex<Inner>,
    signal: Signal,
    started: Instant,
}

/// A running fake Zalo; stops when dropped.
pub struct FakeZalo {
    base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeZalo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeZalo {
    /// Starts the fake on `127.0.0.1:0`.
    pub async fn start(opts: FakeZaloOptions) -> anyhow::Result<FakeZalo> {
        let now = Utc::now();
        let inner = Inner {
            access_tokens: HashMap::from([(
                opts.access_token.clone(),
                now + chrono::Duration::seconds(opts.expires_in_secs),
            )]),
            refresh_token: Some(opts.refresh_token.clone()),
            opts,
            used_refresh_tokens: BTreeSet::new(),
            refreshes: 0,
            issued: 0,
            users: BTreeMap::new(),
            arrivals: Vec::new(),
            messages: Vec::new(),
            scripted: VecDeque::new(),
            delay: Duration::ZERO,
            now: None,
            window: VecDeque::new(),
            next_id: 1,
            connect: Default::default(),
            opted_out: BTreeSet::new(),
            templates: BTreeMap::new(),
            template_quota: None,
            billing_empty: false,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            signal: Signal::default(),
            started: Instant::now(),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let (base_url, task) = super::serve(router).await?;
        Ok(FakeZalo {
            base_url,
            shared,
            task,
        })
    }

    /// The base of every endpoint: use it as API, OAuth and ZNS base alike.
    /// Real time since the fake started, on the same scale as [`Arrival::elapsed`].
    pub fn elapsed(&self) -> Duration {
        self.shared.started.elapsed()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.shared.inner.lock().expect("poisoned"))
    }

    /// Adds (or replaces) a user.
    pub fn add_user(&self, user: FakeUser) {
        self.with(|i| i.users.insert(user.user_id.clone(), user));
    }

    /// The user as the fake knows it now.
    pub fn user(&self, user_id: &str) -> Option<FakeUser> {
        self.with(|i| i.users.get(user_id).cloned())
    }

    /// Records a user interaction at `at` (a message from the user), adding unknown users.
    pub fn touch_user(&self, user_id: &str, at: DateTime<Utc>) {
        self.with(|i| {
            i.users
                .entry(user_id.to_string())
                .or_insert_with(|| FakeUser::new(user_id, user_id, at))
                .last_interaction = at;
        });
    }

    /// Adds `n` followers `{prefix}{i}` (i = 0..n) named `Khách {i}`, each last interacting
    /// at `last_interaction(i)` and tagged `tags(i)`: an OA with existing followers.
    pub fn seed_followers(
        &self,
        prefix: &str,
        n: usize,
        last_interaction: impl Fn(usize) -> DateTime<Utc>,
        tags: impl Fn(usize) -> Vec<String>,
    ) {
        self.with(|inner| {
            for i in 0..n {
                let id = format!("{prefix}{i}");
                let mut u = FakeUser::new(&id, &format!("Khách {i}"), last_interaction(i));
                u.tags = tags(i).into_iter().collect();
                inner.users.insert(id, u);
            }
        });
    }

    /// Marks a user follower or not (non-followers are answered -213).
    pub fn set_follower(&self, user_id: &str, follower: bool) {
        self.with(|i| {
            if let Some(u) = i.users.get_mut(user_id) {
                u.follower = follower;
            }
        });
    }

    /// The user refuses messages of `kind` (`cs`, `promotion`, `transaction`): Zalo answers
    /// -244 to them (PROTOCOL.md §5).
    pub fn opt_out(&self, user_id: &str, kind: &str) {
        self.with(|i| i.opted_out.insert((user_id.to_string(), kind.to_string())));
    }

    /// Approves template `id` with `tag`, sendable by user id or by phone only.
    pub fn add_template(&self, id: &str, tag: u8, by_user_id: bool) {
        self.with(|i| {
            i.templates.insert(
                id.to_string(),
                FakeTemplate {
                    tag,
                    by_user_id,
                    enabled: true,
                },
            )
        });
    }

    /// The OA's daily template quota (None: unlimited): past it, template sends answer -211.
    pub fn set_template_quota(&self, quota: Option<usize>) {
        self.with(|i| i.template_quota = quota);
    }

    /// Enables or disables an approved template (a disabled one is refused).
    pub fn set_template_enabled(&self, id: &str, enabled: bool) {
        self.with(|i| {
            if let Some(t) = i.templates.get_mut(id) {
                t.enabled = enabled;
            }
        });
    }

    /// Empties (true) or tops up (false) the OA's billing account: while empty, promotions and
    /// template messages answer -321 (PROTOCOL.md §5).
    pub fn set_billing_empty(&self, empty: bool) {
        self.with(|i| i.billing_empty = empty);
    }

    /// Pins the fake's clock (None: the system clock).
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        self.with(|i| i.now = now);
    }

    /// The fake's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.with(|i| i.now())
    }

    /// Answers the next `n` API calls (OA and ZNS, not OAuth) with `failure`.
    pub fn fail_next(&self, n: usize, failure: Failure) {
        self.with(|i| i.scripted.extend(std::iter::repeat_n(failure, n)));
    }

    /// Shortcut: the next `n` API calls answer Zalo error `code` inside HTTP 200.
    pub fn fail_next_with_code(&self, n: usize, code: i64) {
        self.fail_next(
            n,
            Failure::Zalo {
                code,
                message: format!("scripted error {code}"),
            },
        );
    }

    /// Delays every API answer by `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|i| i.delay = delay);
    }

    /// Changes the rate limits.
    pub fn set_rate_limits(&self, per_second: Option<u32>, per_minute: Option<u32>) {
        self.with(|i| {
            i.opts.max_calls_per_second = per_second;
            i.opts.max_calls_per_minute = per_minute;
        });
    }

    /// Makes every access token issued so far invalid (next call: -216), as Zalo does when a
    /// token expires or is revoked.
    pub fn expire_access_tokens(&self) {
        self.with(|i| i.access_tokens.clear());
    }

    /// The access token valid now (the latest issued), and the refresh token that works now.
    pub fn current_tokens(&self) -> (Option<String>, Option<String>) {
        self.with(|i| {
            let access = i
                .access_tokens
                .iter()
                .max_by_key(|(_, exp)| **exp)
                .map(|(t, _)| t.clone());
            (access, i.refresh_token.clone())
        })
    }

    /// The connect side (permission page, codes, revocation): see [`super::zalo_oauth`].
    pub fn connect<T>(&self, f: impl FnOnce(&mut super::zalo_oauth::ConnectState) -> T) -> T {
        self.with(|i| f(&mut i.connect))
    }

    /// The shop takes the permission back: every token stops working (calls -216, refreshes
    /// refused) and `permission_revoked` goes, signed, to `webhook_url`; answers its status.
    pub async fn revoke_permission(
        &self,
        webhook_url: &str,
        app_id: &str,
        oa_secret_key: &str,
    ) -> anyhow::Result<u16> {
        let (oa_id, now) = self.with(|i| {
            i.access_tokens.clear();
            i.refresh_token = None;
            i.connect.revoked = true;
            (i.connect.oa_id.clone(), i.now())
        });
        super::zalo_oauth::send_revoked(webhook_url, app_id, oa_secret_key, &oa_id, now).await
    }

    /// How many refreshes the fake granted.
    pub fn refresh_count(&self) -> u64 {
        self.with(|i| i.refreshes)
    }

    /// Every arrival so far, oldest first.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.with(|i| i.arrivals.clone())
    }

    /// The arrivals on one path.
    pub fn arrivals_on(&self, path: &str) -> Vec<Arrival> {
        self.with(|i| {
            i.arrivals
                .iter()
                .filter(|a| a.path == path)
                .cloned()
                .collect()
        })
    }

    /// The most API calls (OA and ZNS) that arrived within any one second.
    pub fn max_calls_in_one_second(&self) -> usize {
        let times: Vec<Duration> = self.with(|i| {
            i.arrivals
                .iter()
                .filter(|a| a.path != OAUTH_PATH)
                .map(|a| a.elapsed)
                .collect()
        });
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end] - times[start] >= Duration::from_secs(1) {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    /// Every message accepted so far, oldest first.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.with(|i| i.messages.clone())
    }

    /// Waits until `cond` holds over the fake (checked after each arrival) or `timeout` passes;
    /// answers whether it holds.
    pub async fn wait_until(&self, timeout: Duration, cond: impl Fn(&FakeZalo) -> bool) -> bool {
        self.shared.signal.wait_until(timeout, || cond(self)).await
    }

    /// Waits until at least `n` messages were accepted; answers them.
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<FakeMessage> {
        self.wait_until(timeout, |f| f.with(|i| i.messages.len() >= n))
            .await;
        self.messages()
    }
}

/// An answer before it is recorded.
struct Answer {
    status: u16,
    error: i64,
    body: Value,
}

impl Answer {
    fn ok(data: Value) -> Answer {
        Answer {
            status: 200,
            error: 0,
            body: json!({ "error": 0, "message": "Success", "data": data }),
        }
    }

    fn zalo(code: i64, message: &str) -> Answer {
        Answer {
            status: 200,
            error: code,
            body: json!({ "error": code, "message": message }),
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let access_token = headers
        .get("access_token")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (recorded_body, answer, delay) = {
        let mut inner = shared.inner.lock().expect("poisoned");
        if path == super::zalo_oauth::PERMISSION_PATH && method == Method::GET {
            let (app_id, now) = (inner.opts.app_id.clone(), inner.now());
            return super::zalo_oauth::permission_page(&mut inner.connect, &app_id, &uri, now);
        }
        if path == OAUTH_PATH {
            let form: BTreeMap<String, String> = axum::extract::Query::try_from_uri(
                &format!("/?{}", String::from_utf8_lossy(&body))
                    .parse::<Uri>()
                    .unwrap_or_default(),
            )
            .map(|q: axum::extract::Query<BTreeMap<String, String>>| q.0)
            .unwrap_or_default();
            let secret = headers.get("secret_key").and_then(|v| v.to_str().ok());
            let answer = oauth(&mut inner, &method, secret, &form);
            (json!(form), answer, Duration::ZERO)
        } else {
            let request = parse_request(&method, &uri, &body);
            let answer = api(
                &mut inner,
                &method,
                &path,
                access_token.as_deref(),
                &request,
            );
            (request, answer, inner.delay)
        }
    };
    {
        let mut inner = shared.inner.lock().expect("poisoned");
        let at = inner.now();
        let user_id = recorded_body
            .pointer("/recipient/user_id")
            .or_else(|| recorded_body.get("user_id"))
            .and_then(Value::as_str)
            .map(String::from);
        inner.arrivals.push(Arrival {
            elapsed: shared.started.elapsed(),
            at,
            method: method.to_string(),
            path: path.clone(),
            body: recorded_body,
            user_id,
            access_token,
            status: answer.status,
            error: answer.error,
        });
    }
    shared.signal.wake();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        (status, axum::Json(answer.body)).into_response()
    } else {
        (status, "internal error").into_response()
    }
}

/// The JSON body of a POST, or the `data` query parameter of a GET.
fn parse_request(method: &Method, uri: &Uri, body: &Bytes) -> Value {
    if method == Method::GET {
        let query: BTreeMap<String, String> = axum::extract::Query::try_from_uri(uri)
            .map(|q: axum::extract::Query<BTreeMap<String, String>>| q.0)
            .unwrap_or_default();
        query
            .get("data")
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(body).unwrap_or(Value::Null)
    }
}

fn oauth(
    inner: &mut Inner,
    method: &Method,
    secret: Option<&str>,
    form: &BTreeMap<String, String>,
) -> Answer {
    let refused = |code: i64, name: &str, description: &str| Answer {
        status: 200,
        error: code,
        body: json!({
            "error": code,
            "error_name": name,
            "error_reason": description,
            "error_description": description,
        }),
    };
    if method != Method::POST {
        return refused(-14001, "Invalid request", "POST is required");
    }
    if secret != Some(inner.opts.app_secret.as_str()) {
        return refused(-14002, "Invalid secret key", "secret_key header is wrong");
    }
    if form.get("app_id") != Some(&inner.opts.app_id) {
        return refused(-14003, "Invalid app id", "app_id is wrong");
    }
    if form.get("grant_type").map(String::as_str) == Some("authorization_code") {
        let now = inner.now();
        return match inner.connect.take_code(form, now) {
            Ok(()) => issue_pair(inner, false),
            Err((code, name, why)) => refused(code, name, why),
        };
    }
    if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return refused(
            -14004,
            "Invalid grant type",
            "grant_type must be refresh_token",
        );
    }
    let given = form.get("refresh_token").cloned().unwrap_or_default();
    if inner.refresh_token.as_deref() != Some(given.as_str()) || given.is_empty() {
        let why = if inner.used_refresh_tokens.contains(&given) {
            "refresh token was already used"
        } else {
            "refresh token is invalid"
        };
        return refused(-14014, "Invalid refresh token", why);
    }
    inner.used_refresh_tokens.insert(given);
    issue_pair(inner, true)
}

/// A new pair (a refresh, or a code exchanged): earlier access tokens stop working.
fn issue_pair(inner: &mut Inner, refresh: bool) -> Answer {
    if refresh {
        inner.refreshes += 1;
    }
    inner.issued += 1;
    let access = format!("fake-access-{}", inner.issued);
    let refresh = format!("fake-refresh-{}", inner.issued);
    // the previous access tokens stop working: stricter than needed, so tests see stale use
    inner.access_tokens.clear();
    let expires = inner.opts.expires_in_secs;
    inner.access_tokens.insert(
        access.clone(),
        inner.now() + chrono::Duration::seconds(expires),
    );
    inner.refresh_token = Some(refresh.clone());
    Answer {
        status: 200,
        error: 0,
        body: json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": expires.to_string(),
        }),
    }
}

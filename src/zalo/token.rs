//! OA access tokens and their refresh (Zalo OAuth v4).
//!
//! Zalo's refresh tokens are **single-use**: every refresh answers a new pair and the old refresh
//! token stops working. Losing the new pair locks the OA out until a person re-authorises it, so
//! the refresh runs inside [`TokenStore::with_refresh_lock`], which excludes every other instance
//! and persists the new pair before anybody may use it.
//!
//! Inside one process [`TokenManager`] adds single-flight: concurrent callers that all see an
//! expired token cause one refresh, and a caller whose rejected token was already replaced just
//! uses the replacement.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
pub use zaloflow_core::token::{fingerprint, TokenPair, REFRESH_MARGIN_MS, UNKNOWN_EXPIRY_MS};

/// How long the manager trusts the pair it read before reading the store again, so a pair
/// stored by the connect page (or another instance) is picked up without a restart.
const RELOAD_AFTER: Duration = Duration::from_secs(2);

/// Access tokens live about 25 h; used when Zalo's answer has no usable `expires_in`.
const DEFAULT_EXPIRES_IN_SECS: i64 = 90_000;

/// A boxed, sendable future (keeps [`TokenStore`] object-safe).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The work run under the store's lock: gets the pair persisted now (if any) and answers the pair
/// to persist (the same one when no refresh turned out to be needed).
pub type RefreshFn =
    Box<dyn FnOnce(Option<TokenPair>) -> BoxFuture<anyhow::Result<TokenPair>> + Send + 'static>;

/// Where the token pair lives between runs and between instances.
///
/// Implementations: [`MemoryTokenStore`] here (tests, demo); SQLite (`BEGIN IMMEDIATE`) and
/// PostgreSQL (`pg_advisory_xact_lock`) in the storage layer.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// The persisted pair, if any. It wins over the environment's.
    async fn load(&self) -> anyhow::Result<Option<TokenPair>>;

    /// Runs `refresh` while holding a lock that excludes every other instance: re-reads the
    /// persisted pair under the lock, passes it in, and persists what `refresh` answers before
    /// the lock is released (atomically; skipping the write when nothing changed is fine). When
    /// `refresh` fails nothing is written and its error is answered. Returns the pair now
    /// persisted.
    async fn with_refresh_lock(&self, refresh: RefreshFn) -> anyhow::Result<TokenPair>;

    /// Notes a refresh sent to Zalo at `at_ms` and its error (None: it worked); `refused`
    /// when Zalo's OAuth server said no, so a person must connect the OA again. Default:
    /// nothing (the database store keeps it for the connect page and pauses OA calls).
    async fn record_refresh(&self, _at_ms: i64, _error: Option<String>, _refused: bool) {}
}

/// A [`TokenStore`] in memory (one process): tests and the demo.
#[derive(Default)]
pub struct MemoryTokenStore {
    pair: tokio::sync::Mutex<Option<TokenPair>>,
    history: StdMutex<Vec<TokenPair>>,
    fail_next_persist: std::sync::atomic::AtomicBool,
}

impl MemoryTokenStore {
    pub fn new(initial: Option<TokenPair>) -> Self {
        MemoryTokenStore {
            pair: tokio::sync::Mutex::new(initial),
            ..Default::default()
        }
    }

    /// Every pair persisted so far, oldest first.
    pub fn history(&self) -> Vec<TokenPair> {
        self.history.lock().expect("poisoned").clone()
    }

    /// Makes the next write fail, as a database outage would (for tests).
    pub fn fail_next_persist(&self) {
        self.fail_next_persist.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self) -> anyhow::Result<Option<TokenPair>> {
        Ok(self.pair.lock().await.clone())
    }

    async fn with_refresh_lock(&self, refresh: RefreshFn) -> anyhow::Result<TokenPair> {
        let mut guard = self.pair.lock().await;
        let new = refresh(guard.clone()).await?;
        if guard.as_ref() != Some(&new) {
            if self.fail_next_persist.swap(false, Ordering::SeqCst) {
                anyhow::bail!("token store: simulated persistence failure");
            }
            *guard = Some(new.clone());
            self.history.lock().expect("poisoned").push(new.clone());
        }
        Ok(new)
    }
}

/// Why no access token could be had.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TokenError {
    /// Neither the store nor the environment holds a token.
    #[error("no Zalo access or refresh token configured (ZALO_ACCESS_TOKEN / ZALO_REFRESH_TOKEN)")]
    NotConfigured,
    /// Zalo's OAuth server refused the refresh token: a person must re-authorise the OA.
    #[error("Zalo refused the token refresh (code {code:?}): {message}; re-authorise the OA")]
    Rejected { code: Option<i64>, message: String },
    /// The refresh could not be done now (network, 5xx, store outage); may work later.
    #[error("token refresh failed: {message}")]
    Unavailable { message: String },
}

/// What the manager needs to refresh tokens. `Debug` redacts the secret and the tokens.
#[derive(Clone)]
pub struct TokenConfig {
    /// e.g. `https://oauth.zaloapp.com`
    pub oauth_base: String,
    pub app_id: Option<String>,
    pub app_secret: Option<String>,
    /// The environment's pair ([`TokenPair::from_env`]); the persisted one wins over it.
    pub env_pair: Option<TokenPair>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("oauth_base", &self.oauth_base)
            .field("app_id", &self.app_id)
            .field(
                "app_secret",
                &self.app_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("env_pair", &self.env_pair)
            .finish()
    }
}

/// Milliseconds since the epoch, as the manager's clock reads them.
pub use crate::clock::Clock as MsClock;

/// Hands out the current access token and refreshes it (see the module docs).
pub struct TokenManager {
    http: reqwest::Client,
    cfg: Arc<TokenConfig>,
    store: Arc<dyn TokenStore>,
    /// the pair in use and when it was read (or made)
    cached: StdMutex<Option<(TokenPair, std::time::Instant)>>,
    /// single-flight: one refresh at a time in this process
    gate: tokio::sync::Mutex<()>,
    /// a refresh token the OAuth server refused: never sent again
    refused: Arc<StdMutex<Option<String>>>,
    refreshes: Arc<AtomicU64>,
    clock: MsClock,
}

impl fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManager")
            .field("cfg", &self.cfg)
            .field("refreshes", &self.refreshes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// `http` should carry connect and total timeouts.
    pub fn new(http: reqwest::Client, cfg: TokenConfig, store: Arc<dyn TokenStore>) -> Self {
        TokenManager {
            http,
            cfg: Arc::new(cfg),
            store,
            cached: StdMutex::new(None),
            gate: tokio::sync::Mutex::new(()),
            refused: Arc::new(StdMutex::new(None)),
            refreshes: Arc::new(AtomicU64::new(0)),
            clock: MsClock::system(),
        }
    }

    /// Replaces the wall clock (milliseconds since the epoch) used to judge expiry.
    pub fn with_clock(mut self, clock: MsClock) -> Self {
        self.clock = clock;
        self
    }

    /// How many refresh calls this manager has sent to Zalo's OAuth server.
    pub fn refresh_count(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// The pair in use now (store first, then environment), without refreshing. The store is
    /// read again once the pair in hand is [`RELOAD_AFTER`] old (the one in hand is used when
    /// the store cannot be read).
    pub async fn current(&self) -> Result<TokenPair, TokenError> {
        let held = self.cached.lock().expect("poisoned").clone();
        if let Some((pair, at)) = &held {
            if at.elapsed() < RELOAD_AFTER {
                return Ok(pair.clone());
            }
        }
        let loaded = match self.store.load().await {
            Ok(loaded) => loaded,
            Err(_) if held.is_some() => return Ok(held.expect("checked").0),
            Err(e) => {
                return Err(TokenError::Unavailable {
                    message: format!("token store: {e:#}"),
                })
            }
        };
        let pair = loaded
            .or_else(|| self.cfg.env_pair.clone())
            .ok_or(TokenError::NotConfigured)?;
        self.keep(&pair);
        Ok(pair)
    }

    fn keep(&self, pair: &TokenPair) {
        *self.cached.lock().expect("poisoned") = Some((pair.clone(), std::time::Instant::now()));
    }

    /// An access token to use now, refreshed first when it is about to expire. When that early
    /// refresh fails but the token has not expired yet, the token is used as it is.
    pub async fn access_token(&self) -> Result<String, TokenError> {
        let pair = self.current().await?;
        let now = self.clock.now();
        if !pair.needs_refresh(now) {
            return Ok(pair.access_token);
        }
        match self.refresh_replacing(&pair.access_token).await {
            Ok(token) => Ok(token),
            Err(e) if !pair.access_token.is_empty() && pair.expires_at_ms > now => {
                tracing::warn!(error = %e, "early token refresh failed; using the current token");
                Ok(pair.access_token)
            }
            Err(e) => Err(e),
        }
    }

    /// Zalo rejected `rejected` (-216/-220): answers its replacement, refreshing only if nobody
    /// (in this process or another instance) has replaced it yet.
    pub async fn refresh_replacing(&self, rejected: &str) -> Result<String, TokenError> {
        let _flight = self.gate.lock().await;
        let now = self.clock.now();
        if let Some((cached, _)) = self.cached.lock().expect("poisoned").clone() {
            if cached.access_token != rejected && !cached.needs_refresh(now) {
                return Ok(cached.access_token);
            }
        }
        let job = RefreshJob {
            http: self.http.clone(),
            cfg: self.cfg.clone(),
            rejected: rejected.to_string(),
            refused: self.refused.clone(),
            refreshes: self.refreshes.clone(),
            clock: self.clock.clone(),
        };
        let (sent_before, started) = (self.refreshes.load(Ordering::SeqCst), self.clock.now());
        let result = self
            .store
            .with_refresh_lock(Box::new(move |persisted| Box::pin(job.run(persisted))))
            .await;
        let result = match result {
            Ok(pair) => {
                tracing::debug!(token = %pair.fingerprint(), "access token in use");
                self.keep(&pair);
                Ok(pair.access_token)
            }
            Err(e) => match e.downcast::<TokenError>() {
                Ok(token_error) => Err(token_error),
                Err(other) => Err(TokenError::Unavailable {
                    message: format!("token store: {other:#}"),
                }),
            },
        };
        if self.refreshes.load(Ordering::SeqCst) != sent_before {
            // Zalo answered this refresh: the connect page shows it, and a refusal (with the
            // app's id and secret set, so not a configuration gap) pauses OA calls.
            let configured = self.cfg.app_id.is_some() && self.cfg.app_secret.is_some();
            let (error, refused) = match &result {
                Ok(_) => (None, false),
                Err(e) => (
                    Some(e.to_string()),
                    configured && matches!(e, TokenError::Rejected { .. }),
                ),
            };
            self.store.record_refresh(started, error, refused).await;
        }
        result
    }
}

/// The part of a refresh that runs under the store's lock.
struct RefreshJob {
    http: reqwest::Client,
    cfg: Arc<TokenConfig>,
    rejected: String,
    refused: Arc<StdMutex<Option<String>>>,
    refreshes: Arc<AtomicU64>,
    clock: MsClock,
}

impl RefreshJob {
    async fn run(self, persisted: Option<TokenPair>) -> anyhow::Result<TokenPair> {
        let base = persisted
            .or_else(|| self.cfg.env_pair.clone())
            .ok_or(TokenError::NotConfigured)?;
        if base.access_token != self.rejected && !base.needs_refresh(self.clock.now()) {
            // another instance refreshed while we waited for the lock
            return Ok(base);
        }
        if base.refresh_token.is_empty() {
            return Err(TokenError::Rejected {
                code: None,
                message: "no refresh token (ZALO_REFRESH_TOKEN) to renew the access token".into(),
            }
            .into());
        }
        if self.refused.lock().expect("poisoned").as_deref() == Some(base.refresh_token.as_str()) {
            return Err(TokenError::Rejected {
                code: None,
                message: "the stored refresh token was already refused".into(),
            }
            .into());
        }
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        let outcome =
            oauth_refresh(&self.http, &self.cfg, &base.refresh_token, self.clock.now()).await;
        match outcome {
            Ok(pair) => {
                tracing::info!(token = %pair.fingerprint(), "Zalo access token refreshed");
                Ok(pair)
            }
            Err(e) => {
                if matches!(e, TokenError::Rejected { .. }) {
                    *self.refused.lock().expect("poisoned") = Some(base.refresh_token.clone());
                }
                tracing::error!(error = %e, "Zalo token refresh failed");
                Err(e.into())
            }
        }
    }
}

/// `POST {oauth_base}/v4/oa/access_token` with the refresh grant. Never puts a secret in an error.
pub async fn oauth_refresh(
    http: &reqwest::Client,
    cfg: &TokenConfig,
    refresh_token: &str,
    now_ms: i64,
) -> Result<TokenPair, TokenError> {
    oauth_grant(
        http,
        cfg,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
        now_ms,
    )
    .await
}

/// `POST {oauth_base}/v4/oa/access_token` with `app_id` and the `grant` fields (refresh, or
/// the authorization code of [`crate::zalo::connect`]); the answer as a pair.
pub async fn oauth_grant(
    http: &reqwest::Client,
    cfg: &TokenConfig,
    grant: &[(&str, &str)],
    now_ms: i64,
) -> Result<TokenPair, TokenError> {
    let (Some(app_id), Some(secret)) = (cfg.app_id.as_deref(), cfg.app_secret.as_deref()) else {
        return Err(TokenError::Rejected {
            code: None,
            message: "ZALO_APP_ID and ZALO_APP_SECRET are needed to get a token".into(),
        });
    };
    let mut form = vec![("app_id", app_id)];
    form.extend_from_slice(grant);
    let url = format!(
        "{}/v4/oa/access_token",
        cfg.oauth_base.trim_end_matches('/')
    );
    let response = http
        .post(url)
        .header("secret_key", secret)
        .form(&form)
        .send()
        .await
        .map_err(|e| TokenError::Unavailable {
            message: format!(
                "OAuth request: {}{}",
                if e.is_timeout() { "timeout: " } else { "" },
                e.without_url()
            ),
        })?;
    let status = response.status();
    let text = response.text().await.map_err(|e| TokenError::Unavailable {
        message: format!("OAuth answer: {}", e.without_url()),
    })?;
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        return Err(TokenError::Unavailable {
            message: format!("OAuth server answered HTTP {status}"),
        });
    }
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
        let message = format!("OAuth server answered HTTP {status} with a body that is not JSON");
        if status.is_success() {
            TokenError::Unavailable { message }
        } else {
            TokenError::Rejected {
                code: None,
                message,
            }
        }
    })?;
    let code = body.get("error").and_then(as_i64).filter(|c| *c != 0);
    let access = body.get("access_token").and_then(|v| v.as_str());
    let refresh = body.get("refresh_token").and_then(|v| v.as_str());
    match (code, access, refresh) {
        (None, Some(access), Some(refresh)) if !access.is_empty() && !refresh.is_empty() => {
            let expires_in = body
                .get("expires_in")
                .and_then(as_i64)
                .filter(|s| *s > 0)
                .unwrap_or(DEFAULT_EXPIRES_IN_SECS);
            Ok(TokenPair {
                access_token: access.to_string(),
                refresh_token: refresh.to_string(),
                expires_at_ms: now_ms.saturating_add(expires_in.saturating_mul(1000)),
            })
        }
        _ => {
            // Zalo's OAuth errors carry error_name / error_description / message; never echo
            // the body itself (it could hold a token).
            let message = ["error_name", "error_description", "error_reason", "message"]
                .iter()
                .filter_map(|k| body.get(*k).and_then(|v| v.as_str()))
                .filter(|s| !s.is_empty())
                .take(2)
                .collect::<Vec<_>>()
                .join(": ");
            Err(TokenError::Rejected {
                code,
                message: if message.is_empty() {
                    format!("OAuth server answered HTTP {status} without a new token pair")
                } else {
                    truncate(&message, 200)
                },
            })
        }
    }
}

/// A JSON number or a string holding one (Zalo sends `expires_in` as a string).
pub(crate) fn as_i64(v: &serde_json::Value) -> Option<i64> {
    match v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Builds the HTTP client used for Zalo calls: connect and total timeouts, no redirects.
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("zaloflow/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a reqwest client with rustls builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let pair = TokenPair {
            access_token: "ACCESS-SECRET".into(),
            refresh_token: "REFRESH-SECRET".into(),
            expires_at_ms: 5,
        };
        let shown = format!("{pair:?}");
        assert!(!shown.contains("ACCESS-SECRET") && !shown.contains("REFRESH-SECRET"));
        assert!(shown.contains(&pair.fingerprint()));
        let cfg = TokenConfig {
            oauth_base: "http://x".into(),
            app_id: Some("1".into()),
            app_secret: Some("APP-SECRET".into()),
            env_pair: Some(pair),
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn env_pair_and_expiry() {
        assert_eq!(TokenPair::from_env(None, Some("  ")), None);
        let only_refresh = TokenPair::from_env(None, Some("r")).unwrap();
        assert!(only_refresh.needs_refresh(0));
        let both = TokenPair::from_env(Some("a"), Some("r")).unwrap();
        assert!(!both.needs_refresh(i64::MAX - 1));
        let timed = TokenPair {
            expires_at_ms: 1_000_000,
            ..both
        };
        assert!(!timed.needs_refresh(1_000_000 - REFRESH_MARGIN_MS - 1));
        assert!(timed.needs_refresh(1_000_000 - REFRESH_MARGIN_MS + 1));
    }

    #[test]
    fn numbers_as_strings() {
        assert_eq!(as_i64(&serde_json::json!("90000")), Some(90000));
        assert_eq!(as_i64(&serde_json::json!(-216)), Some(-216));
        assert_eq!(as_i64(&serde_json::json!("x")), None);
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[tokio::test]
    async fn memory_store_persists_only_changes_and_not_on_error() {
        let store = MemoryTokenStore::new(None);
        let pair = TokenPair::from_env(Some("a"), Some("r")).unwrap();
        let p = pair.clone();
        let got = store
            .with_refresh_lock(Box::new(move |old| {
                Box::pin(async move {
                    assert_eq!(old, None);
                    Ok(p)
                })
            }))
            .await
            .unwrap();
        assert_eq!(got, pair);
        let err = store
            .with_refresh_lock(Box::new(|_| Box::pin(async { anyhow::bail!("boom") })))
            .await;
        assert!(err.is_err());
        let p = pair.clone();
        store
            .with_refresh_lock(Box::new(move |old| {
                Box::pin(async move {
                    assert_eq!(old.as_ref(), Some(&p));
                    Ok(p)
                })
            }))
            .await
            .unwrap();
        assert_eq!(store.history().len(), 1);
        assert_eq!(store.load().await.unwrap(), Some(pair));
    }
}

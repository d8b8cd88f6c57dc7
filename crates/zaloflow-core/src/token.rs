//! The OA's token pair (Zalo OAuth v4): an access token and the single-use refresh token that
//! replaces it.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `expires_at_ms` of a pair whose lifetime is unknown (an access token given in the
/// environment): it is used until Zalo rejects it.
pub const UNKNOWN_EXPIRY_MS: i64 = i64::MAX;

/// Refresh when less than this is left on the access token.
pub const REFRESH_MARGIN_MS: i64 = 5 * 60 * 1000;

/// An access token with the refresh token that replaces it. `Debug` never shows the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// When the access token expires (ms since the epoch); [`UNKNOWN_EXPIRY_MS`] when unknown.
    pub expires_at_ms: i64,
}

impl TokenPair {
    /// The pair given in the environment (`ZALO_ACCESS_TOKEN`, `ZALO_REFRESH_TOKEN`), if any.
    /// Without an access token the pair counts as expired, so the first call refreshes it.
    pub fn from_env(access_token: Option<&str>, refresh_token: Option<&str>) -> Option<TokenPair> {
        let access = access_token.map(str::trim).filter(|s| !s.is_empty());
        let refresh = refresh_token.map(str::trim).filter(|s| !s.is_empty());
        if access.is_none() && refresh.is_none() {
            return None;
        }
        Some(TokenPair {
            access_token: access.unwrap_or_default().to_string(),
            refresh_token: refresh.unwrap_or_default().to_string(),
            expires_at_ms: if access.is_some() {
                UNKNOWN_EXPIRY_MS
            } else {
                0
            },
        })
    }

    /// True when the access token is missing or has less than [`REFRESH_MARGIN_MS`] left.
    pub fn needs_refresh(&self, now_ms: i64) -> bool {
        self.access_token.is_empty()
            || (self.expires_at_ms != UNKNOWN_EXPIRY_MS
                && self.expires_at_ms.saturating_sub(now_ms) < REFRESH_MARGIN_MS)
    }

    /// First 8 hex digits of the access token's SHA-256: enough to tell pairs apart in logs.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.access_token)
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field(
                "access_token",
                &format_args!("<redacted {}>", self.fingerprint()),
            )
            .field("refresh_token", &format_args!("<redacted>"))
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// First 8 hex digits of a secret's SHA-256 (safe to log).
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    hex::encode(&digest[..4])
}

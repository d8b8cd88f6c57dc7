//! Connecting an OA: Zalo's OAuth v4 authorisation with PKCE (PROTOCOL.md §5 "Connecting an
//! OA"). The shop owner's browser goes to [`permission_url`]; Zalo sends it back to our
//! callback with `code`, `oa_id` and `state`; [`exchange_code`] trades the code and the
//! verifier for the first token pair.
//!
//! `code_challenge = base64url(sha256(code_verifier))` without padding (RFC 7636 `S256`), as
//! Zalo's SDKs compute it (zalo-php-sdk `ZaloHelper`, zalo-java-sdk's `getAuthorizationURL`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::token::{oauth_grant, TokenConfig, TokenError, TokenPair};

/// How long a started connection may take (Zalo's codes live about 10 minutes).
pub const FLOW_TTL_MS: i64 = 10 * 60 * 1000;

/// The path of our callback (`ZALOFLOW_PUBLIC_URL` + this is the app's callback URL at Zalo).
pub const CALLBACK_PATH: &str = "/admin/zalo/connect/callback";

/// 32 random bytes, base64url without padding (43 characters: a valid PKCE verifier, and
/// unguessable as a state or a session binding).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// `base64url(sha256(verifier))`, no padding.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// SHA-256 hex: how states and session bindings are kept (never in the clear).
pub fn hash(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// `{oauth_base}/v4/oa/permission?app_id=…&redirect_uri=…&code_challenge=…&state=…`
pub fn permission_url(
    oauth_base: &str,
    app_id: &str,
    redirect_uri: &str,
    challenge: &str,
    state: &str,
) -> String {
    let query = serde_urlencoded::to_string([
        ("app_id", app_id),
        ("redirect_uri", redirect_uri),
        ("code_challenge", challenge),
        ("state", state),
    ])
    .expect("strings encode");
    format!(
        "{}/v4/oa/permission?{query}",
        oauth_base.trim_end_matches('/')
    )
}

/// The callback URL registered at Zalo: `ZALOFLOW_PUBLIC_URL` + [`CALLBACK_PATH`].
pub fn redirect_uri(public_url: &str) -> String {
    format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'))
}

/// Trades an authorization code and its verifier for the first pair
/// (`grant_type=authorization_code`).
pub async fn exchange_code(
    http: &reqwest::Client,
    cfg: &TokenConfig,
    code: &str,
    verifier: &str,
    now_ms: i64,
) -> Result<TokenPair, TokenError> {
    oauth_grant(
        http,
        cfg,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
        ],
        now_ms,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token());
    }

    #[test]
    fn permission_url_is_encoded() {
        let u = permission_url(
            "https://oauth.zaloapp.com/",
            "123",
            "https://shop.example/admin/zalo/connect/callback",
            "abc",
            "s t",
        );
        assert_eq!(
            u,
            "https://oauth.zaloapp.com/v4/oa/permission?app_id=123&redirect_uri=https%3A%2F%2Fshop.example%2Fadmin%2Fzalo%2Fconnect%2Fcallback&code_challenge=abc&state=s+t"
        );
        assert_eq!(
            redirect_uri("https://shop.example/"),
            "https://shop.example/admin/zalo/connect/callback"
        );
    }
}

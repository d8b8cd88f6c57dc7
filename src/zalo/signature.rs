//! The webhook signature: `X-ZEvent-Signature: mac=<hex>` where the hex is
//! `sha256(app_id + raw_body + timestamp + oa_secret_key)` (plain SHA-256, not HMAC; PROTOCOL.md §1).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-ZEvent-Signature header")]
    Missing,
    #[error("malformed X-ZEvent-Signature header")]
    Malformed,
    #[error("signature does not match")]
    Mismatch,
}

/// The mac Zalo computes for a delivery.
pub fn compute(app_id: &str, raw_body: &[u8], timestamp: &str, oa_secret_key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(app_id.as_bytes());
    h.update(raw_body);
    h.update(timestamp.as_bytes());
    h.update(oa_secret_key.as_bytes());
    h.finalize().into()
}

/// The header value Zalo would send for this delivery (used by tests, the demo and the load script).
pub fn header_value(app_id: &str, raw_body: &[u8], timestamp: &str, oa_secret_key: &str) -> String {
    format!(
        "mac={}",
        hex::encode(compute(app_id, raw_body, timestamp, oa_secret_key))
    )
}

/// Parses `mac=<64 hex>` (case-insensitive hex, surrounding spaces allowed).
pub fn parse_header(value: Option<&[u8]>) -> Result<[u8; 32], SignatureError> {
    let value = value.ok_or(SignatureError::Missing)?;
    let value = std::str::from_utf8(value).map_err(|_| SignatureError::Malformed)?;
    let hex_part = value
        .trim()
        .strip_prefix("mac=")
        .ok_or(SignatureError::Malformed)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part.trim(), &mut out).map_err(|_| SignatureError::Malformed)?;
    Ok(out)
}

/// Checks a delivery in constant time. `timestamp` is the string value of the body's
/// `timestamp` field; the caller extracts it from the raw bytes without trusting them further.
pub fn verify(
    expected_app_id: &str,
    oa_secret_key: &str,
    raw_body: &[u8],
    timestamp: &str,
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let given = parse_header(header)?;
    let want = compute(expected_app_id, raw_body, timestamp, oa_secret_key);
    if bool::from(want.ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = include_str!("../../tests/fixtures/zalo/signature_vector.txt");

    fn vector() -> (String, String, String, String, String) {
        let get = |k: &str| {
            VECTOR
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        (
            get("app_id"),
            get("oa_secret_key"),
            get("timestamp"),
            get("body"),
            get("X-ZEvent-Signature"),
        )
    }

    #[test]
    fn fixture_vector_verifies() {
        let (app, key, ts, body, header) = vector();
        assert_eq!(header_value(&app, body.as_bytes(), &ts, &key), header);
        assert_eq!(
            verify(&app, &key, body.as_bytes(), &ts, Some(header.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn wrong_mac_missing_header_and_tampered_body_are_refused() {
        let (app, key, ts, body, header) = vector();
        let mut wrong = header.clone();
        wrong.replace_range(wrong.len() - 1.., "0");
        assert_eq!(
            verify(&app, &key, body.as_bytes(), &ts, Some(wrong.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&app, &key, body.as_bytes(), &ts, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(&app, &key, body.as_bytes(), &ts, Some(b"sha256=abc")),
            Err(SignatureError::Malformed)
        );
        let tampered = body.replace("hello", "hellO");
        assert_eq!(
            verify(
                &app,
                &key,
                tampered.as_bytes(),
                &ts,
                Some(header.as_bytes())
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(
                &app,
                "another key",
                body.as_bytes(),
                &ts,
                Some(header.as_bytes())
            ),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn raw_bytes_are_signed_not_a_reserialisation() {
        // Spaces and \u escapes: the mac covers exactly these bytes.
        let body = r#"{ "app_id": "1", "event_name": "user_send_text", "message": {"text": "Ch\u00e0o b\u1ea1n", "msg_id": "m1"}, "timestamp": "1700000000000" }"#;
        let h = header_value("1", body.as_bytes(), "1700000000000", "k");
        assert!(verify(
            "1",
            "k",
            body.as_bytes(),
            "1700000000000",
            Some(h.as_bytes())
        )
        .is_ok());
        let reserialised =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(body).unwrap())
                .unwrap();
        assert_ne!(reserialised, body);
        assert_eq!(
            verify(
                "1",
                "k",
                reserialised.as_bytes(),
                "1700000000000",
                Some(h.as_bytes())
            ),
            Err(SignatureError::Mismatch)
        );
    }
}

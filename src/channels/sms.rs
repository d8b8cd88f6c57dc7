//! SMS through an HTTP gateway: `POST {sms_url}` with JSON `{"to","text"}` and configurable extra
//! headers (the gateway's authentication).

use async_trait::async_trait;
use serde_json::json;

use super::{post_json, wrong_payload, Channel, Delivered, Payload, SendError};

pub const NAME: &str = "sms";

/// Sends [`Payload::Sms`].
pub struct SmsChannel {
    http: reqwest::Client,
    url: String,
    headers: Vec<(String, String)>,
}

impl SmsChannel {
    /// Fails when a header name or value cannot be sent (the value is not shown).
    pub fn new(
        http: reqwest::Client,
        url: String,
        headers: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        reqwest::Url::parse(&url)
            .map_err(|e| anyhow::anyhow!("ZALOFLOW_SMS_URL is not a URL: {e}"))?;
        for (name, value) in &headers {
            reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| anyhow::anyhow!("SMS header name {name:?} is invalid"))?;
            reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| anyhow::anyhow!("the value of SMS header {name:?} is invalid"))?;
        }
        Ok(SmsChannel { http, url, headers })
    }
}

#[async_trait]
impl Channel for SmsChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        let Payload::Sms { to, text } = p else {
            return Err(wrong_payload(NAME, p));
        };
        if to.trim().is_empty() {
            return Err(SendError::permanent("no SMS recipient"));
        }
        post_json(
            &self.http,
            &self.url,
            &self.headers,
            &json!({ "to": to, "text": text }),
        )
        .await
    }
}

//! ZNS template notifications by phone number (same tokens and envelope as the OA API).

use std::sync::Arc;

use async_trait::async_trait;
use chrono_tz::Tz;

use super::{wrong_payload, Channel, Clock, Delivered, Payload, SendError};
use crate::zalo::client::{ZaloClient, ZnsRequest};

pub const NAME: &str = "zns";

/// Sends [`Payload::Zns`] through `POST {zns_base}/message/template`.
pub struct ZnsChannel {
    client: Arc<ZaloClient>,
    tz: Tz,
    clock: Clock,
}

impl ZnsChannel {
    pub fn new(client: Arc<ZaloClient>, tz: Tz) -> Self {
        ZnsChannel {
            client,
            tz,
            clock: Clock::system(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// A Vietnamese phone number in ZNS's form (`84…`, digits only): accepts `+84 90…`, `0090…`,
/// `090-…` and the like. None when it cannot be a phone number.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '.' | '-' | '(' | ')' | '+'))
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let national = if let Some(rest) = digits.strip_prefix("0084") {
        format!("84{rest}")
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("84{rest}")
    } else {
        digits
    };
    (10..=13).contains(&national.len()).then_some(national)
}

#[async_trait]
impl Channel for ZnsChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        let Payload::Zns {
            phone,
            template_id,
            template_data,
            tracking_id,
            user_id,
            ..
        } = p
        else {
            return Err(wrong_payload(NAME, p));
        };
        let phone = match user_id {
            Some(_) => String::new(),
            None => normalize_phone(phone)
                .ok_or_else(|| SendError::permanent("not a phone number ZNS can reach"))?,
        };
        if template_id.trim().is_empty() {
            return Err(SendError::permanent("no ZNS template_id"));
        }
        let request = ZnsRequest {
            phone,
            template_id: template_id.clone(),
            template_data: template_data.clone(),
            tracking_id: tracking_id.clone(),
            user_id: user_id.clone(),
            development: false,
        };
        let sent = self
            .client
            .send_zns(&request)
            .await
            .map_err(|e| super::zalo::send_error(&e, self.clock.now_utc(), self.tz))?;
        Ok(Delivered {
            provider_id: sent.message_id,
            detail: sent.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_phone;

    #[test]
    fn phones_take_the_84_form() {
        assert_eq!(
            normalize_phone("0912 345 678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalize_phone("+84 912-345-678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalize_phone("0084912345678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(
            normalize_phone("84912345678").as_deref(),
            Some("84912345678")
        );
        assert_eq!(normalize_phone("12"), None);
        assert_eq!(normalize_phone("09x2345678"), None);
        assert_eq!(normalize_phone(""), None);
    }
}

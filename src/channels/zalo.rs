//! Zalo OA messages and tags, and the sorting of Zalo's error codes.

use std::sync::Arc;
use std::time::Duration;
use zaloflow_core::job::{is_promotion_template, promotion_template, ZaloKind};

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};

use super::{wrong_payload, Channel, Clock, Delivered, Payload, SendError};
use crate::zalo::client::{OutgoingMessage, ZaloClient, ZaloError};
use crate::zalo::token::TokenError;

pub const NAME: &str = "zalo";

/// How long to wait after a per-minute rate limit (-32).
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(60);
/// How long to wait after Zalo refused the refresh token: a person must re-authorise the OA.
const REAUTHORISE_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// Sorts a Zalo error code (PROTOCOL.md's table) into what the outbox should do.
///
/// - transient: -32 (rate limit, retry after 60 s), -100 (attachment expired), -211/-218
///   (quota), -216/-220 (token still rejected after the one refresh);
/// - not before: -234 (no sends 22:00–06:00) -> the next 06:00 in `tz` after `now`;
/// - permanent: -201 -213 -217 -227 -230 -232 -240 -244, and any code not in the table (an
///   unknown refusal is not retried blindly; the dead letter shows it).
pub fn classify_zalo(code: i64, message: &str, now: DateTime<Utc>, tz: Tz) -> SendError {
    let meaning = match code {
        -32 => "rate limit reached",
        -100 => "attachment_id expired",
        -201 => "invalid parameter",
        -211 => "out of send quota",
        -213 => "user does not follow the OA",
        -216 => "access token invalid",
        -217 => "user blocked the OA",
        -218 => "out of receive quota",
        -220 => "access token expired",
        -227 => "user banned or inactive for over 45 days",
        -230 => "user has not interacted in the past 7 days",
        -232 => "interaction expired",
        -234 => "cannot send at night (22:00-06:00)",
        -240 => "v2 message API shut down",
        -244 => "user restricted this message type",
        -321 => "the billing account is out of money",
        _ => "unknown Zalo error",
    };
    let message = if message.is_empty() {
        meaning.to_string()
    } else {
        format!("{meaning}: {message}")
    };
    let code = Some(code);
    match code {
        Some(-32) => SendError::Transient {
            code,
            message,
            retry_after: Some(RATE_LIMIT_BACKOFF),
        },
        Some(-100 | -211 | -218 | -216 | -220) => SendError::Transient {
            code,
            message,
            retry_after: None,
        },
        Some(-234) => SendError::NotBefore {
            code,
            message,
            at: next_local_time(now, tz, NaiveTime::from_hms_opt(6, 0, 0).expect("06:00")),
        },
        _ => SendError::Permanent { code, message },
    }
}

/// The first instant strictly after `now` whose wall-clock time in `tz` is `at` (skipping
/// forward past a DST gap).
pub fn next_local_time(now: DateTime<Utc>, tz: Tz, at: NaiveTime) -> DateTime<Utc> {
    let mut date = now.with_timezone(&tz).date_naive();
    loop {
        let naive = date.and_time(at);
        let local = tz.from_local_datetime(&naive).earliest().or_else(|| {
            tz.from_local_datetime(&(naive + chrono::Duration::hours(1)))
                .earliest()
        });
        if let Some(local) = local {
            let utc = local.with_timezone(&Utc);
            if utc > now {
                return utc;
            }
        }
        date = date.succ_opt().expect("a date before year 262143");
    }
}

/// Sorts any failure of the Zalo client.
pub fn send_error(e: &ZaloError, now: DateTime<Utc>, tz: Tz) -> SendError {
    match e {
        ZaloError::Api { code, message } => classify_zalo(*code, message, now, tz),
        ZaloError::Http {
            status,
            body,
            retry_after,
        } => super::classify_http(*status, *retry_after, body),
        ZaloError::Transport { .. } | ZaloError::Decode { .. } => SendError::Transient {
            code: None,
            message: e.to_string(),
            retry_after: None,
        },
        ZaloError::Token(TokenError::NotConfigured) => SendError::NotConfigured { channel: NAME },
        ZaloError::Token(TokenError::Rejected { .. }) => SendError::Transient {
            code: None,
            message: e.to_string(),
            retry_after: Some(REAUTHORISE_BACKOFF),
        },
        ZaloError::Token(TokenError::Unavailable { .. }) => SendError::Transient {
            code: None,
            message: e.to_string(),
            retry_after: None,
        },
    }
}

/// Sends [`Payload::Zalo`] and [`Payload::ZaloTag`].
pub struct ZaloChannel {
    client: Arc<ZaloClient>,
    tz: Tz,
    clock: Clock,
}

impl ZaloChannel {
    pub fn new(client: Arc<ZaloClient>, tz: Tz) -> Self {
        ZaloChannel {
            client,
            tz,
            clock: Clock::system(),
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn fail(&self, e: ZaloError) -> SendError {
        send_error(&e, self.clock.now_utc(), self.tz)
    }
}

/// A promotion given as text (and a media template's image and buttons) as the promotion
/// template Zalo accepts: jobs queued before promotions were templates.
fn as_promotion(text: Option<&String>, media: Option<&Value>) -> Result<Value, SendError> {
    let payload = media.and_then(|m| m.get("payload"));
    let image = payload
        .and_then(|p| p.get("elements"))
        .and_then(Value::as_array)
        .and_then(|els| {
            els.iter()
                .find_map(|e| e.get("url").and_then(Value::as_str))
        });
    let buttons = payload
        .and_then(|p| p.get("buttons"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = text.map_or("", String::as_str);
    if text.trim().is_empty() {
        return Err(SendError::permanent(
            "a promotion needs a text: Zalo sends it as a template with a header",
        ));
    }
    Ok(promotion_template(text, image, buttons))
}

#[async_trait]
impl Channel for ZaloChannel {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn send(&self, p: &Payload) -> Result<Delivered, SendError> {
        match p {
            Payload::Zalo {
                user_id,
                kind,
                text,
                attachment,
            } => {
                if user_id.trim().is_empty() {
                    return Err(SendError::permanent("no Zalo user_id"));
                }
                let text = text.as_ref().filter(|t| !t.trim().is_empty());
                if text.is_none() && attachment.is_none() {
                    return Err(SendError::permanent(
                        "a Zalo message needs a text or an attachment",
                    ));
                }
                // A promotion queued as a bare text (before promotions were templates) goes
                // out as the template Zalo accepts.
                let message = match (kind, attachment) {
                    (ZaloKind::Promotion, a) if !a.as_ref().is_some_and(is_promotion_template) => {
                        OutgoingMessage {
                            text: None,
                            attachment: Some(as_promotion(text, a.as_ref())?),
                        }
                    }
                    _ => OutgoingMessage {
                        text: text.cloned(),
                        attachment: attachment.clone(),
                    },
                };
                let sent = self
                    .client
                    .send_message(*kind, user_id, &message)
                    .await
                    .map_err(|e| match self.fail(e) {
                        // Promotions go out from 07:00 (PROTOCOL.md §5), not 06:00.
                        SendError::NotBefore { code, message, at }
                            if *kind == ZaloKind::Promotion =>
                        {
                            SendError::NotBefore {
                                code,
                                message,
                                at: at + chrono::Duration::hours(1),
                            }
                        }
                        other => other,
                    })?;
                Ok(Delivered {
                    provider_id: sent.message_id,
                    detail: sent.data,
                })
            }
            Payload::ZaloTag { user_id, tag, add } => {
                if tag.trim().is_empty() {
                    return Err(SendError::permanent("empty tag name"));
                }
                let result = if *add {
                    self.client.tag_follower(user_id, tag).await
                } else {
                    self.client.untag_follower(user_id, tag).await
                };
                let data = result.map_err(|e| self.fail(e))?;
                Ok(Delivered {
                    provider_id: None,
                    detail: json!({ "tag": tag, "add": add, "data": data }),
                })
            }
            other => Err(wrong_payload(NAME, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const TZ: Tz = chrono_tz::Asia::Ho_Chi_Minh;

    #[test]
    fn every_protocol_code_is_sorted() {
        let now = at("2024-05-01T10:00:00Z");
        for code in [-32, -100, -211, -218, -216, -220] {
            match classify_zalo(code, "m", now, TZ) {
                SendError::Transient { code: c, .. } => assert_eq!(c, Some(code)),
                other => panic!("{code}: {other:?}"),
            }
        }
        for code in [-201, -213, -217, -227, -230, -232, -240, -244] {
            match classify_zalo(code, "m", now, TZ) {
                SendError::Permanent { code: c, message } => {
                    assert_eq!(c, Some(code));
                    assert!(message.ends_with(": m"), "{message}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        assert!(matches!(
            classify_zalo(-234, "", now, TZ),
            SendError::NotBefore {
                code: Some(-234),
                ..
            }
        ));
        assert!(matches!(
            classify_zalo(-999, "", now, TZ),
            SendError::Permanent {
                code: Some(-999),
                ..
            }
        ));
        assert_eq!(
            classify_zalo(-32, "", now, TZ),
            SendError::Transient {
                code: Some(-32),
                message: "rate limit reached".into(),
                retry_after: Some(Duration::from_secs(60))
            }
        );
    }

    #[test]
    fn night_defers_to_next_six_local() {
        // 23:30 in Ho Chi Minh (UTC+7) -> 06:00 the next day = 23:00 UTC the same day
        let late = at("2024-05-01T16:30:00Z");
        match classify_zalo(-234, "night", late, TZ) {
            SendError::NotBefore { at: when, .. } => assert_eq!(when, at("2024-05-01T23:00:00Z")),
            other => panic!("{other:?}"),
        }
        // 02:00 local -> 06:00 the same local day
        let small_hours = at("2024-05-01T19:00:00Z");
        assert_eq!(
            next_local_time(small_hours, TZ, NaiveTime::from_hms_opt(6, 0, 0).unwrap()),
            at("2024-05-01T23:00:00Z")
        );
        // exactly 06:00 local -> the next day's 06:00 (strictly after now)
        let six = at("2024-05-01T23:00:00Z");
        assert_eq!(
            next_local_time(six, TZ, NaiveTime::from_hms_opt(6, 0, 0).unwrap()),
            at("2024-05-02T23:00:00Z")
        );
        // a DST gap: 02:30 does not exist in New York on 2024-03-10 -> 03:30 EDT
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            next_local_time(
                at("2024-03-10T05:00:00Z"),
                ny,
                NaiveTime::from_hms_opt(2, 30, 0).unwrap()
            ),
            at("2024-03-10T07:30:00Z")
        );
    }

    #[test]
    fn client_failures_are_sorted() {
        let now = at("2024-05-01T10:00:00Z");
        let t = |e: ZaloError| send_error(&e, now, TZ);
        assert!(t(ZaloError::Transport {
            message: "x".into(),
            timeout: true
        })
        .is_retryable());
        assert!(t(ZaloError::Http {
            status: 500,
            body: String::new(),
            retry_after: None
        })
        .is_retryable());
        assert!(!t(ZaloError::Http {
            status: 400,
            body: String::new(),
            retry_after: None
        })
        .is_retryable());
        assert_eq!(
            t(ZaloError::Token(TokenError::NotConfigured)),
            SendError::NotConfigured { channel: "zalo" }
        );
        assert!(t(ZaloError::Token(TokenError::Rejected {
            code: Some(-14014),
            message: "x".into()
        }))
        .is_retryable());
    }
}

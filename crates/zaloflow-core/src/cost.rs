//! What a send costs: its message class (PROTOCOL.md §5), the price table, the free tier of
//! consultation messages and the daily budget. Plain decisions; the sender asks the store for
//! the history they need.

use crate::job::{Payload, ZaloKind};

/// The class a send is billed as. Stored in `outbox.send_class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SendClass {
    /// A customer-service message within the free tier: up to 8 within 48 h of the user's last
    /// interaction.
    ConsultationFree,
    /// A customer-service message past the free tier, until 7 days after the last interaction.
    ConsultationPaid,
    Transaction,
    Promotion,
    /// A template message by phone (ZNS / ZBS).
    TemplatePhone,
    /// A template message (ZBS) by Zalo user id, tag 1 or 2 (tag 3 counts as a promotion).
    TemplateUser,
    Sms,
    Email,
}

impl SendClass {
    pub const ALL: [SendClass; 8] = [
        SendClass::ConsultationFree,
        SendClass::ConsultationPaid,
        SendClass::Transaction,
        SendClass::Promotion,
        SendClass::TemplatePhone,
        SendClass::TemplateUser,
        SendClass::Sms,
        SendClass::Email,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SendClass::ConsultationFree => "consultation_free",
            SendClass::ConsultationPaid => "consultation_paid",
            SendClass::Transaction => "transaction",
            SendClass::Promotion => "promotion",
            SendClass::TemplatePhone => "template_phone",
            SendClass::TemplateUser => "template_user",
            SendClass::Sms => "sms",
            SendClass::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<SendClass> {
        SendClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Consultation messages, free or paid (the free tier counts both).
    pub fn is_consultation(self) -> bool {
        matches!(
            self,
            SendClass::ConsultationFree | SendClass::ConsultationPaid
        )
    }

    /// Transactions are never held back by the budget: a customer waits for them.
    pub fn is_transactional(self) -> bool {
        matches!(self, SendClass::Transaction)
    }
}

/// Prices in VND per send (`ZALOFLOW_PRICES_VND`). Defaults: PROTOCOL.md §5 (consultation paid
/// ~55, transaction ~165); promotion and template prices are not in it and default to the
/// transaction price, an assumption docs/zalo-2026.md states; SMS and email default to 0 (the
/// shop's own providers: set them to count them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    pub consultation_paid: i64,
    pub transaction: i64,
    pub promotion: i64,
    pub template_phone: i64,
    pub template_user: i64,
    pub sms: i64,
    pub email: i64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            consultation_paid: 55,
            transaction: 165,
            promotion: 165,
            template_phone: 165,
            template_user: 165,
            sms: 0,
            email: 0,
        }
    }
}

impl Prices {
    pub fn of(&self, class: SendClass) -> i64 {
        match class {
            SendClass::ConsultationFree => 0,
            SendClass::ConsultationPaid => self.consultation_paid,
            SendClass::Transaction => self.transaction,
            SendClass::Promotion => self.promotion,
            SendClass::TemplatePhone => self.template_phone,
            SendClass::TemplateUser => self.template_user,
            SendClass::Sms => self.sms,
            SendClass::Email => self.email,
        }
    }

    /// `consultation_paid=55, promotion=200`: the classes named change, the rest keep their
    /// defaults. An unknown class or a price that is not a whole number of VND is an error
    /// in words.
    pub fn parse(value: &str) -> Result<Prices, String> {
        let mut p = Prices::default();
        for part in value
            .split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let Some((k, v)) = part.split_once('=') else {
                return Err(format!(
                    "{part:?} is not `class=price` (e.g. consultation_paid=55)"
                ));
            };
            let (k, v) = (k.trim(), v.trim());
            let price: i64 =
                v.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
                    format!("the price of {k} ({v:?}) is not a whole number of VND")
                })?;
            let slot = match k {
                "consultation_paid" => &mut p.consultation_paid,
                "transaction" => &mut p.transaction,
                "promotion" => &mut p.promotion,
                "template_phone" | "zns" => &mut p.template_phone,
                "template_user" => &mut p.template_user,
                "sms" => &mut p.sms,
                "email" => &mut p.email,
                _ => {
                    return Err(format!(
                        "{k:?} is not a message class; the classes with a price are \
                         consultation_paid, transaction, promotion, template_phone, template_user, sms, email"
                    ))
                }
            };
            *slot = price;
        }
        Ok(p)
    }
}

/// The free tier of consultation messages (PROTOCOL.md §5): `count` messages within `window_ms`
/// of the user's last interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeTier {
    pub count: i64,
    pub window_ms: i64,
}

impl Default for FreeTier {
    fn default() -> Self {
        FreeTier {
            count: 8,
            window_ms: 48 * 3_600_000,
        }
    }
}

/// How sends are priced and held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CostPolicy {
    pub prices: Prices,
    pub free_tier: FreeTier,
    /// `ZALOFLOW_DAILY_BUDGET_VND`: past it, sends that are not transactions wait for the next
    /// day (OA time zone).
    pub daily_budget_vnd: Option<i64>,
}

/// What zaloflow knows of a user's consultation messages when it sends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsultationHistory {
    /// The user's last interaction (ms), if known.
    pub last_interaction: Option<i64>,
    /// Consultation messages sent to the user since then.
    pub sent_since: i64,
}

impl CostPolicy {
    /// The class of `payload` sent at `now` (None: not a billed message, e.g. a tag call, a
    /// staff notice). A consultation message is free while the user's last interaction is
    /// under 48 h old and fewer than 8 went out since it.
    pub fn class_of(
        &self,
        payload: &Payload,
        history: ConsultationHistory,
        now: i64,
    ) -> Option<SendClass> {
        Some(match payload {
            Payload::Zalo { kind, .. } => match kind {
                ZaloKind::Cs => {
                    let fresh = history
                        .last_interaction
                        .is_some_and(|t| now - t <= self.free_tier.window_ms);
                    if fresh && history.sent_since < self.free_tier.count {
                        SendClass::ConsultationFree
                    } else {
                        SendClass::ConsultationPaid
                    }
                }
                ZaloKind::Promotion => SendClass::Promotion,
                ZaloKind::Transaction => SendClass::Transaction,
            },
            // A tag-3 template is a promotion (Zalo's caps count it as one).
            Payload::Zns { tag: Some(3), .. } => SendClass::Promotion,
            Payload::Zns {
                user_id: Some(_), ..
            } => SendClass::TemplateUser,
            Payload::Zns { .. } => SendClass::TemplatePhone,
            Payload::Sms { .. } => SendClass::Sms,
            Payload::Email { .. } => SendClass::Email,
            Payload::ZaloTag { .. } | Payload::Chat { .. } | Payload::Task { .. } => return None,
        })
    }

    /// Whether a send of `class` costing `price` must wait because today's spend is `spent`.
    pub fn over_budget(&self, class: SendClass, price: i64, spent: i64) -> bool {
        match self.daily_budget_vnd {
            Some(budget) => !class.is_transactional() && price > 0 && spent + price > budget,
            None => false,
        }
    }
}

/// The class and price a sent job was recorded with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendCost {
    pub class: SendClass,
    pub vnd: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cs() -> Payload {
        Payload::Zalo {
            user_id: "1".into(),
            kind: ZaloKind::Cs,
            text: Some("hi".into()),
            attachment: None,
        }
    }

    #[test]
    fn consultation_is_free_for_eight_within_48_hours_then_paid() {
        let p = CostPolicy::default();
        let h = 3_600_000;
        let at = |last: i64, sent: i64| ConsultationHistory {
            last_interaction: Some(last),
            sent_since: sent,
        };
        let now = 100 * h;
        assert_eq!(
            p.class_of(&cs(), at(now - 48 * h, 7), now),
            Some(SendClass::ConsultationFree)
        );
        assert_eq!(
            p.class_of(&cs(), at(now - 48 * h, 8), now),
            Some(SendClass::ConsultationPaid),
            "the ninth"
        );
        assert_eq!(
            p.class_of(&cs(), at(now - 48 * h - 1, 0), now),
            Some(SendClass::ConsultationPaid),
            "past 48 h"
        );
        assert_eq!(
            p.class_of(&cs(), ConsultationHistory::default(), now),
            Some(SendClass::ConsultationPaid),
            "no interaction known"
        );
    }

    #[test]
    fn prices_parse_with_words_for_mistakes() {
        let p = Prices::parse("consultation_paid=60; promotion = 300").unwrap();
        assert_eq!(p.consultation_paid, 60);
        assert_eq!(p.promotion, 300);
        assert_eq!(p.transaction, 165, "unnamed classes keep their default");
        assert!(Prices::parse("promo=1")
            .unwrap_err()
            .contains("not a message class"));
        assert!(Prices::parse("sms=1.5")
            .unwrap_err()
            .contains("whole number"));
        assert!(Prices::parse("sms").unwrap_err().contains("class=price"));
    }

    #[test]
    fn the_budget_holds_everything_but_transactions() {
        let p = CostPolicy {
            daily_budget_vnd: Some(1000),
            ..Default::default()
        };
        assert!(!p.over_budget(SendClass::Promotion, 165, 835));
        assert!(p.over_budget(SendClass::Promotion, 165, 836));
        assert!(!p.over_budget(SendClass::Transaction, 165, 5000));
        assert!(!p.over_budget(SendClass::ConsultationFree, 0, 5000));
        assert!(!CostPolicy::default().over_budget(SendClass::Promotion, 165, i64::MAX / 2));
    }
}

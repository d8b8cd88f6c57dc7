//! What the sends cost (issue 25): spend per rule, channel, message class and day, and the
//! share of consultation messages that went out in Zalo's free tier. Each sent job carries its
//! class and price (`outbox.send_class`, `outbox.cost_vnd`), set when it was sent.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::TimeZone;
use serde::Serialize;
use utoipa::ToSchema;
use zaloflow_core::html::esc;

use crate::store::{NotSentRow, SpendRow};

/// Sends and their cost under one key (a rule, a channel, a class or a day).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct SpendLine {
    /// The rule id (`(no rule)` for sends staff made), channel, class or local date.
    #[schema(example = "reactivation_stage_1")]
    pub key: String,
    pub sends: i64,
    pub vnd: i64,
}

/// What the period's sends cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct SpendReport {
    pub total_vnd: i64,
    /// Sends with a class (messages to customers).
    pub sends: i64,
    /// Zalo consultation messages sent, and how many of them in the free tier.
    pub consultation_sends: i64,
    pub consultation_free: i64,
    /// `consultation_free / consultation_sends` (None without consultation messages).
    pub free_share: Option<f64>,
    pub by_rule: Vec<SpendLine>,
    pub by_channel: Vec<SpendLine>,
    pub by_class: Vec<SpendLine>,
    /// Per local date (OA time zone), oldest first.
    pub by_day: Vec<SpendLine>,
    /// Sends not made, per rule and reason (most first): skipped with the reason, or held
    /// (`held`) and still waiting.
    pub not_sent: Vec<NotSentLine>,
}

/// Sends of one rule not made for one reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct NotSentLine {
    #[schema(example = "kich_hoat_giai_doan_1")]
    pub rule: String,
    /// `window_closed`, `not_following`, `opted_out`, `not_configured`, `fell_back`,
    /// `no_recipient`, `not_zalo_user`, or `held` (waiting for a cap, the budget, a quota…).
    #[schema(example = "window_closed")]
    pub reason: String,
    pub jobs: i64,
}

/// Adds the sends not made to the report; only `rule` and its campaign steps when given.
pub fn add_not_sent(r: &mut SpendReport, rows: &[NotSentRow], rule: Option<&str>) {
    r.not_sent = rows
        .iter()
        .filter_map(|row| {
            let rule_id = row.rule_id.as_deref().unwrap_or(NO_RULE);
            let top = rule_id.split('/').next().unwrap_or_default();
            if rule.is_some_and(|only| top != only && rule_id != only) {
                return None;
            }
            Some(NotSentLine {
                rule: rule_id.to_string(),
                reason: row.reason.clone(),
                jobs: row.jobs,
            })
        })
        .collect();
}

/// A reason of a send not made, in the report's words.
pub fn reason_words(reason: &str) -> &str {
    match reason {
        "not_configured" => "channel not configured",
        "window_closed" => "outside Zalo's 7-day window",
        "not_following" => "not following the OA",
        "not_zalo_user" => "not a Zalo user",
        "opted_out" => "the customer refused this type of message",
        "fell_back" => "refused by Zalo, the next choice sent instead",
        "no_recipient" => "no phone number or address",
        "held" => "held (a cap, the budget, a quota or the billing account) and waiting",
        other => other,
    }
}

fn not_sent_text(s: &SpendReport) -> String {
    s.not_sent
        .iter()
        .map(|l| format!("{} {}: {}", l.jobs, l.rule, reason_words(&l.reason)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The label of sends no rule made.
pub const NO_RULE: &str = "(no rule)";

/// Folds the store's hourly rows into the report; only `rule` and its campaign steps when
/// given.
pub fn build(rows: &[SpendRow], rule: Option<&str>, tz: chrono_tz::Tz) -> SpendReport {
    let mut r = SpendReport::default();
    let (mut by_rule, mut by_channel, mut by_class, mut by_day) = (
        BTreeMap::<String, SpendLine>::new(),
        BTreeMap::<String, SpendLine>::new(),
        BTreeMap::<String, SpendLine>::new(),
        BTreeMap::<String, SpendLine>::new(),
    );
    for row in rows {
        let rule_id = row.rule_id.as_deref().unwrap_or(NO_RULE);
        if let Some(only) = rule {
            let top = rule_id.split('/').next().unwrap_or_default();
            if top != only && rule_id != only {
                continue;
            }
        }
        let day = tz
            .timestamp_millis_opt(row.hour * 3_600_000)
            .single()
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        for (map, key) in [
            (&mut by_rule, rule_id),
            (&mut by_channel, row.channel.as_str()),
            (&mut by_class, row.send_class.as_str()),
            (&mut by_day, day.as_str()),
        ] {
            let line = map.entry(key.to_string()).or_insert_with(|| SpendLine {
                key: key.to_string(),
                ..Default::default()
            });
            line.sends += row.sends;
            line.vnd += row.vnd;
        }
        r.total_vnd += row.vnd;
        r.sends += row.sends;
        match row.send_class.as_str() {
            "consultation_free" => {
                r.consultation_sends += row.sends;
                r.consultation_free += row.sends;
            }
            "consultation_paid" => r.consultation_sends += row.sends,
            _ => {}
        }
    }
    r.free_share = (r.consultation_sends > 0)
        .then(|| r.consultation_free as f64 / r.consultation_sends as f64);
    // The costliest first, then by name; days in order.
    let ranked = |m: BTreeMap<String, SpendLine>| {
        let mut v: Vec<SpendLine> = m.into_values().collect();
        v.sort_by(|a, b| b.vnd.cmp(&a.vnd).then(a.key.cmp(&b.key)));
        v
    };
    r.by_rule = ranked(by_rule);
    r.by_channel = ranked(by_channel);
    r.by_class = ranked(by_class);
    r.by_day = by_day.into_values().collect();
    r
}

/// Thousands with dots, as VND is written in Vietnam: `1.234.567`.
pub fn vnd(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push('.');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    format!("{out} VND")
}

fn lines(v: &[SpendLine]) -> String {
    v.iter()
        .map(|l| format!("{} {} ({} sent)", l.key, vnd(l.vnd), l.sends))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The headline: total, sends, free-tier share.
pub fn headline(s: &SpendReport) -> String {
    let free = match s.free_share {
        Some(share) => format!(
            "; {} of {} consultation messages in Zalo's free tier ({:.0}%)",
            s.consultation_free,
            s.consultation_sends,
            share * 100.0
        ),
        None => String::new(),
    };
    format!("{} for {} messages sent{free}", vnd(s.total_vnd), s.sends)
}

/// The section of `zaloflow report`.
pub fn text(s: &SpendReport) -> String {
    let mut out = String::from("\nCost\n");
    if !s.not_sent.is_empty() {
        let _ = writeln!(out, "  not sent    {}", not_sent_text(s));
    }
    if s.sends == 0 {
        out.push_str("  No message was sent in this period.\n");
        return out;
    }
    let _ = writeln!(out, "  {}", headline(s));
    for (name, v) in [
        ("by rule", &s.by_rule),
        ("by channel", &s.by_channel),
        ("by class", &s.by_class),
        ("by day", &s.by_day),
    ] {
        let _ = writeln!(out, "  {name:<11} {}", lines(v));
    }
    out
}

/// The section of the report page.
pub fn html(s: &SpendReport) -> String {
    let mut out = String::from("<section class=\"spend\" id=\"cost\"><h2>Cost</h2>");
    if !s.not_sent.is_empty() {
        out.push_str("<table class=\"not-sent\"><thead><tr><th>Rule</th><th>not sent because</th><th>sends</th></tr></thead><tbody>");
        for l in &s.not_sent {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&l.rule),
                esc(reason_words(&l.reason)),
                l.jobs
            );
        }
        out.push_str("</tbody></table>");
    }
    if s.sends == 0 {
        out.push_str("<p>No message was sent in this period.</p></section>");
        return out;
    }
    let _ = write!(out, "<p>{}</p>", esc(&headline(s)));
    for (name, v) in [
        ("Rule", &s.by_rule),
        ("Channel", &s.by_channel),
        ("Class", &s.by_class),
        ("Day", &s.by_day),
    ] {
        let _ = write!(
            out,
            "<table><thead><tr><th>{name}</th><th>sent</th><th>cost</th></tr></thead><tbody>"
        );
        for l in v {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(&l.key),
                l.sends,
                esc(&vnd(l.vnd))
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rule: Option<&str>, class: &str, hour: i64, sends: i64, vnd: i64) -> SpendRow {
        SpendRow {
            rule_id: rule.map(str::to_string),
            channel: "zalo".into(),
            send_class: class.into(),
            hour,
            sends,
            vnd,
        }
    }

    #[test]
    fn rows_fold_by_rule_channel_class_and_local_day() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        // 2027-03-01 16:00 UTC is 23:00 local; 17:00 UTC is the next local day.
        let h = chrono::Utc
            .with_ymd_and_hms(2027, 3, 1, 16, 0, 0)
            .unwrap()
            .timestamp_millis()
            / 3_600_000;
        let rows = [
            row(Some("tra_loi"), "consultation_free", h, 8, 0),
            row(Some("tra_loi"), "consultation_paid", h, 2, 110),
            row(Some("km/day_1"), "promotion", h + 1, 1, 165),
            row(None, "consultation_paid", h + 1, 1, 55),
        ];
        let s = build(&rows, None, tz);
        assert_eq!((s.total_vnd, s.sends), (330, 12));
        assert_eq!((s.consultation_free, s.consultation_sends), (8, 11));
        assert_eq!(s.by_rule[0].key, "km/day_1");
        assert_eq!(s.by_rule[1].key, "tra_loi");
        assert_eq!(s.by_rule[1].vnd, 110);
        assert_eq!(s.by_rule[2].key, NO_RULE);
        assert_eq!(
            s.by_day,
            vec![
                SpendLine {
                    key: "2027-03-01".into(),
                    sends: 10,
                    vnd: 110
                },
                SpendLine {
                    key: "2027-03-02".into(),
                    sends: 2,
                    vnd: 220
                }
            ]
        );
        let only = build(&rows, Some("km"), tz);
        assert_eq!((only.total_vnd, only.sends), (165, 1));
        assert!(text(&s).contains(
            "330 VND for 12 messages sent; 8 of 11 consultation messages in Zalo's free tier (73%)"
        ));
        assert_eq!(vnd(1_234_567), "1.234.567 VND");
    }

    #[test]
    fn sends_not_made_are_listed_with_their_reason() {
        let mut s = build(&[], None, chrono_tz::Asia::Ho_Chi_Minh);
        let rows = [
            NotSentRow {
                rule_id: Some("kich_hoat/x".into()),
                reason: "window_closed".into(),
                jobs: 3,
            },
            NotSentRow {
                rule_id: Some("<i>km</i>".into()),
                reason: "held".into(),
                jobs: 1,
            },
        ];
        add_not_sent(&mut s, &rows, None);
        assert!(text(&s).contains(
            "not sent    3 kich_hoat/x: outside Zalo's 7-day window · 1 <i>km</i>: held"
        ));
        let page = html(&s);
        assert!(page.contains("&lt;i&gt;km&lt;/i&gt;") && !page.contains("<i>km</i>"));
        add_not_sent(&mut s, &rows, Some("kich_hoat"));
        assert_eq!(s.not_sent.len(), 1);
    }

    #[test]
    fn keys_are_escaped_on_the_page() {
        let rows = [row(Some("<b>x</b>"), "promotion", 1, 1, 165)];
        let page = html(&build(&rows, None, chrono_tz::Asia::Ho_Chi_Minh));
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>x</b>"));
    }
}

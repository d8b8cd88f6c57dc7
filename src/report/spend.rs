//! What the sends cost (issue 25): spend per rule, channel, message class and day, and the
//! share of consultation messages that went out in Zalo's free tier. Each sent job carries its
//! class and price (`outbox.send_class`, `outbox.cost_vnd`), set when it was sent.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::TimeZone;
use rust_i18n::t;
use serde::Serialize;
use utoipa::ToSchema;
use zaloflow_core::html::esc;

use crate::i18n::{tr, Lang};
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

/// The reasons of sends not made that have words of their own (others are shown as stored).
pub const REASONS: [&str; 8] = [
    "not_configured",
    "window_closed",
    "not_following",
    "not_zalo_user",
    "opted_out",
    "fell_back",
    "no_recipient",
    "held",
];

/// A reason of a send not made, in the staff's words (the tick's summary uses them too).
pub fn reason_words(lang: Lang, reason: &str) -> String {
    if REASONS.contains(&reason) {
        tr(lang, &format!("report.reason.{reason}")).into_owned()
    } else {
        reason.to_string()
    }
}

fn not_sent_text(s: &SpendReport, lang: Lang) -> String {
    s.not_sent
        .iter()
        .map(|l| format!("{} {}: {}", l.jobs, l.rule, reason_words(lang, &l.reason)))
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

fn lines(v: &[SpendLine], lang: Lang) -> String {
    v.iter()
        .map(|l| {
            let vnd = vnd(l.vnd);
            t!(
                "report.cost.line",
                locale = lang.code(),
                key = l.key,
                vnd = vnd,
                n = l.sends
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The headline: total, sends, free-tier share.
pub fn headline(s: &SpendReport, lang: Lang) -> String {
    let l = lang.code();
    let free = match s.free_share {
        Some(share) => t!(
            "report.cost.free",
            locale = l,
            free = s.consultation_free,
            all = s.consultation_sends,
            pct = format!("{:.0}", share * 100.0)
        )
        .into_owned(),
        None => String::new(),
    };
    let total = vnd(s.total_vnd);
    t!(
        "report.cost.headline",
        locale = l,
        total = total,
        n = s.sends,
        free = free
    )
    .into_owned()
}

/// The section of `zaloflow report`.
pub fn text(s: &SpendReport, lang: Lang) -> String {
    let mut out = format!("\n{}\n", tr(lang, "report.cost.title"));
    const NAMES: [&str; 5] = [
        "report.cost.not_sent",
        "report.cost.by_rule",
        "report.cost.by_channel",
        "report.cost.by_class",
        "report.cost.by_day",
    ];
    let width = NAMES
        .iter()
        .map(|k| tr(lang, k).chars().count())
        .fold(11, usize::max);
    if !s.not_sent.is_empty() {
        let name = tr(lang, "report.cost.not_sent");
        let _ = writeln!(out, "  {name:<width$} {}", not_sent_text(s, lang));
    }
    if s.sends == 0 {
        let _ = writeln!(out, "  {}", tr(lang, "report.cost.none"));
        return out;
    }
    let _ = writeln!(out, "  {}", headline(s, lang));
    for (key, v) in [
        ("report.cost.by_rule", &s.by_rule),
        ("report.cost.by_channel", &s.by_channel),
        ("report.cost.by_class", &s.by_class),
        ("report.cost.by_day", &s.by_day),
    ] {
        let name = tr(lang, key);
        let _ = writeln!(out, "  {name:<width$} {}", lines(v, lang));
    }
    out
}

/// The section of the report page.
pub fn html(s: &SpendReport, lang: Lang) -> String {
    let mut out = format!(
        "<section class=\"spend\" id=\"cost\"><h2>{}</h2>",
        esc(&tr(lang, "report.cost.title"))
    );
    if !s.not_sent.is_empty() {
        let _ = write!(
            out,
            "<h3>{}</h3><table class=\"not-sent\"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            esc(&tr(lang, "report.not_sent.heading")),
            esc(&tr(lang, "report.cost.col.rule")),
            esc(&tr(lang, "report.cost.col.why")),
            esc(&tr(lang, "report.cost.col.sends"))
        );
        for l in &s.not_sent {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&l.rule),
                esc(&reason_words(lang, &l.reason)),
                l.jobs
            );
        }
        out.push_str("</tbody></table>");
    }
    if s.sends == 0 {
        let _ = write!(
            out,
            "<p>{}</p></section>",
            esc(&tr(lang, "report.cost.none"))
        );
        return out;
    }
    let _ = write!(out, "<p>{}</p>", esc(&headline(s, lang)));
    let (sent, cost) = (
        tr(lang, "report.cost.col.sent"),
        tr(lang, "report.cost.col.cost"),
    );
    for (key, v) in [
        ("report.cost.col.rule", &s.by_rule),
        ("report.cost.col.channel", &s.by_channel),
        ("report.cost.col.class", &s.by_class),
        ("report.cost.col.day", &s.by_day),
    ] {
        let _ = write!(
            out,
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
            esc(&tr(lang, key)),
            esc(&sent),
            esc(&cost)
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
        assert!(text(&s, Lang::En).contains(
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
        assert!(text(&s, Lang::En).contains(
            "not sent    3 kich_hoat/x: outside Zalo's 7-day window · 1 <i>km</i>: held"
        ));
        let page = html(&s, Lang::En);
        assert!(page.contains("&lt;i&gt;km&lt;/i&gt;") && !page.contains("<i>km</i>"));
        add_not_sent(&mut s, &rows, Some("kich_hoat"));
        assert_eq!(s.not_sent.len(), 1);
    }

    #[test]
    fn keys_are_escaped_on_the_page() {
        let rows = [row(Some("<b>x</b>"), "promotion", 1, 1, 165)];
        let page = html(&build(&rows, None, chrono_tz::Asia::Ho_Chi_Minh), Lang::En);
        assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>x</b>"));
    }
}

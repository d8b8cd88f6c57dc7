//! The forecast as staff read it, in their language (`locales/forecast.yml`): the full report
//! of `zaloflow forecast`, and the short form of `rules check --forecast`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::TimeZone;

use crate::i18n::{tr, Lang};
use crate::report::spend::vnd;

use super::tally::{Counts, NO_RULE};
use super::{Forecast, Window};

pub use crate::i18n::words;

/// A signed difference: `+3`, `−2`, `±0`.
pub fn signed(n: i64) -> String {
    match n {
        0 => "±0".into(),
        n if n > 0 => format!("+{n}"),
        n => format!("−{}", -n),
    }
}

/// A signed difference in VND.
pub fn signed_vnd(n: i64) -> String {
    match n {
        0 => "±0 VND".into(),
        n if n > 0 => format!("+{}", vnd(n)),
        n => format!("−{}", vnd(-n)),
    }
}

/// `a → b (±d)`.
fn pair(a: i64, b: i64) -> String {
    if a == b {
        a.to_string()
    } else {
        format!("{a} → {b} ({})", signed(b - a))
    }
}

fn pair_vnd(a: i64, b: i64) -> String {
    if a == b {
        vnd(a)
    } else {
        format!("{} → {} ({})", vnd(a), vnd(b), signed_vnd(b - a))
    }
}

/// The window's first and last local days, and how many days it spans.
pub fn span(w: Window, tz: chrono_tz::Tz) -> (String, String, i64) {
    let d = |at: i64| {
        tz.timestamp_millis_opt(at)
            .single()
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    let days = ((w.to - w.from) as f64 / super::DAY as f64)
        .round()
        .max(1.0) as i64;
    (d(w.from), d(w.to - 1), days)
}

/// A rule's name as shown (customers' words never appear here: rule ids are the shop's).
pub fn rule_name(lang: Lang, rule: &str) -> String {
    if rule == NO_RULE {
        tr(lang, "forecast.no_rule").into_owned()
    } else {
        rule.to_string()
    }
}

/// The full report.
pub fn report(f: &Forecast, tz: chrono_tz::Tz, lang: Lang) -> String {
    let mut out = String::new();
    let (from, to, days) = span(f.window, tz);
    let title = if f.mode == "ahead" {
        "forecast.title.ahead"
    } else {
        "forecast.title.replay"
    };
    let args = [("from", from), ("to", to), ("days", days.to_string())];
    let _ = writeln!(out, "{}", words(lang, title, &args));
    let _ = writeln!(
        out,
        "{}",
        words(
            lang,
            "forecast.scope",
            &[
                ("events", f.events.to_string()),
                ("contacts", f.contacts.to_string())
            ]
        )
    );
    let (cur, new) = (f.current.per_rule(), f.draft.per_rule());
    if cur == new {
        let _ = writeln!(out, "\n{}", tr(lang, "forecast.no_change"));
    }
    rules_section(&mut out, lang, &cur, &new);
    days_section(&mut out, f, lang);
    breakdown(&mut out, lang, &f.current.total(), &f.draft.total());
    quota_line(&mut out, f, lang);
    if let Some(actual) = &f.actual {
        let (a, c) = (actual.total(), f.current.total());
        let args = [
            ("sends", a.sent().to_string()),
            ("cost", vnd(a.vnd)),
            ("replayed", c.sent().to_string()),
            ("replayed_cost", vnd(c.vnd)),
        ];
        let _ = writeln!(out, "\n{}", words(lang, "forecast.actual", &args));
    }
    outlook_section(&mut out, f, lang);
    let _ = writeln!(out, "\n{}:", tr(lang, "forecast.section.unknown"));
    let mut unknown = vec![
        tr(lang, "forecast.unknown.writing").into_owned(),
        tr(lang, "forecast.unknown.delivery").into_owned(),
        tr(lang, "forecast.unknown.past_state").into_owned(),
        words(
            lang,
            "forecast.unknown.cadence",
            &[("every", (f.every_ms / 60_000).to_string())],
        ),
    ];
    if f.mode == "ahead" {
        unknown[0] = tr(lang, "forecast.unknown.ahead").into_owned();
    }
    for u in unknown {
        let _ = writeln!(out, "  - {u}");
    }
    out
}

fn rules_section(
    out: &mut String,
    lang: Lang,
    cur: &BTreeMap<String, Counts>,
    new: &BTreeMap<String, Counts>,
) {
    let _ = writeln!(out, "\n{}:", tr(lang, "forecast.section.rules"));
    let _ = writeln!(
        out,
        "  {:<24} {:<16} {:<18} {:<14} {:<10} {}",
        tr(lang, "forecast.col.rule"),
        tr(lang, "forecast.col.fires"),
        tr(lang, "forecast.col.sends"),
        tr(lang, "forecast.col.skips"),
        tr(lang, "forecast.col.handoffs"),
        tr(lang, "forecast.col.cost"),
    );
    let names: BTreeSet<&String> = cur.keys().chain(new.keys()).collect();
    let empty = Counts::default();
    for rule in names {
        let (a, b) = (
            cur.get(rule).unwrap_or(&empty),
            new.get(rule).unwrap_or(&empty),
        );
        let _ = writeln!(
            out,
            "  {:<24} {:<16} {:<18} {:<14} {:<10} {}",
            rule_name(lang, rule),
            pair(a.fires, b.fires),
            pair(a.sent(), b.sent()),
            pair(a.skipped(), b.skipped()),
            pair(a.handoffs, b.handoffs),
            pair_vnd(a.vnd, b.vnd),
        );
    }
}

fn days_section(out: &mut String, f: &Forecast, lang: Lang) {
    let _ = writeln!(out, "\n{}:", tr(lang, "forecast.section.days"));
    let _ = writeln!(
        out,
        "  {:<12} {:<16} {:<18} {:<14} {:<12} {}",
        tr(lang, "forecast.col.day"),
        tr(lang, "forecast.col.fires"),
        tr(lang, "forecast.col.sends"),
        tr(lang, "forecast.col.skips"),
        tr(lang, "forecast.col.templates"),
        tr(lang, "forecast.col.cost"),
    );
    let (cur, new) = (f.current.per_day(), f.draft.per_day());
    let days: BTreeSet<_> = cur.keys().chain(new.keys()).collect();
    let empty = Counts::default();
    for d in days {
        let (a, b) = (cur.get(d).unwrap_or(&empty), new.get(d).unwrap_or(&empty));
        let _ = writeln!(
            out,
            "  {:<12} {:<16} {:<18} {:<14} {:<12} {}",
            d.format("%Y-%m-%d"),
            pair(a.fires, b.fires),
            pair(a.sent(), b.sent()),
            pair(a.skipped(), b.skipped()),
            pair(a.templates, b.templates),
            pair_vnd(a.vnd, b.vnd),
        );
    }
}

fn breakdown(out: &mut String, lang: Lang, a: &Counts, b: &Counts) {
    let _ = writeln!(out, "\n{}:", tr(lang, "forecast.section.channels"));
    let line = |x: &BTreeMap<String, i64>, y: &BTreeMap<String, i64>| {
        let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
        keys.into_iter()
            .map(|k| {
                let (p, q) = (
                    x.get(k).copied().unwrap_or(0),
                    y.get(k).copied().unwrap_or(0),
                );
                format!("{k} {}", pair(p, q))
            })
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let _ = writeln!(out, "  {}", line(&a.sends, &b.sends));
    let _ = writeln!(out, "  {}", line(&a.classes, &b.classes));
    let _ = writeln!(out, "\n{}:", tr(lang, "forecast.section.skips"));
    let skips = line(&a.skips, &b.skips);
    let _ = writeln!(
        out,
        "  {}",
        if skips.is_empty() { "0".into() } else { skips }
    );
}

fn quota_line(out: &mut String, f: &Forecast, lang: Lang) {
    let days = f.draft.per_day();
    let peak = days.values().map(|c| c.templates).max().unwrap_or(0);
    let _ = writeln!(out);
    match f.template_quota {
        Some(q) => {
            let _ = writeln!(
                out,
                "{}",
                words(
                    lang,
                    "forecast.quota",
                    &[("quota", q.to_string()), ("peak", peak.to_string())]
                )
            );
            let over = days.values().filter(|c| c.templates > q).count();
            if over > 0 {
                let _ = writeln!(
                    out,
                    "{}",
                    words(lang, "forecast.quota_over", &[("days", over.to_string())])
                );
            }
        }
        None => {
            let _ = writeln!(
                out,
                "{}",
                words(
                    lang,
                    "forecast.quota_unknown",
                    &[("peak", peak.to_string())]
                )
            );
        }
    }
}

/// The expected replies and returns of each changed rule, as ranges.
pub fn outlook_lines(f: &Forecast, lang: Lang) -> Vec<String> {
    f.outlook
        .iter()
        .map(|e| {
            words(
                lang,
                "forecast.outlook.line",
                &[
                    ("rule", e.rule.clone()),
                    ("extra", signed(e.extra_sends)),
                    ("r_lo", e.replies.0.to_string()),
                    ("r_hi", e.replies.1.to_string()),
                    ("c_lo", e.returns.0.to_string()),
                    ("c_hi", e.returns.1.to_string()),
                    ("replies", e.past_replies.to_string()),
                    ("returns", e.past_returns.to_string()),
                    ("sends", e.past_sends.to_string()),
                ],
            )
        })
        .collect()
}

fn outlook_section(out: &mut String, f: &Forecast, lang: Lang) {
    let _ = writeln!(out, "\n{}:", tr(lang, "forecast.section.outlook"));
    let lines = outlook_lines(f, lang);
    if lines.is_empty() {
        let _ = writeln!(out, "  {}", tr(lang, "forecast.outlook.none"));
    }
    for l in lines {
        let _ = writeln!(out, "  {l}");
    }
}

/// The short form: one line for the whole, one per rule whose sends change.
pub fn short(f: &Forecast, tz: chrono_tz::Tz, lang: Lang) -> String {
    let (_, _, days) = span(f.window, tz);
    let (a, b) = (f.current.total(), f.draft.total());
    let key = if f.mode == "ahead" {
        "forecast.short.ahead"
    } else {
        "forecast.short.replay"
    };
    let mut out = words(
        lang,
        key,
        &[
            ("days", days.to_string()),
            ("sends", b.sent().to_string()),
            ("diff", signed(b.sent() - a.sent())),
            ("cost", vnd(b.vnd)),
            ("cost_diff", signed_vnd(b.vnd - a.vnd)),
            ("handoffs", b.handoffs.to_string()),
            ("handoffs_diff", signed(b.handoffs - a.handoffs)),
        ],
    );
    out.push('\n');
    let (cur, new) = (f.current.per_rule(), f.draft.per_rule());
    let empty = Counts::default();
    let names: BTreeSet<&String> = cur.keys().chain(new.keys()).collect();
    for rule in names {
        let (x, y) = (
            cur.get(rule).unwrap_or(&empty),
            new.get(rule).unwrap_or(&empty),
        );
        if x.sent() != y.sent() || x.vnd != y.vnd {
            out.push_str(&words(
                lang,
                "forecast.short.rule",
                &[
                    ("rule", rule_name(lang, rule)),
                    ("diff", signed(y.sent() - x.sent())),
                    ("cost_diff", signed_vnd(y.vnd - x.vnd)),
                ],
            ));
            out.push('\n');
        }
    }
    out
}

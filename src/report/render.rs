//! The report as a terminal table ([`text`]) and as a page with one small SVG chart per rule
//! ([`html`]; no JavaScript, readable on a phone).

use std::fmt::Write;

use super::{Comparison, Outcomes, Report, RuleReport};
use zaloflow_core::html::esc;

fn pct(n: i64, of: i64) -> String {
    if of <= 0 {
        format!("{n}")
    } else {
        format!("{n} ({:.0}%)", n as f64 * 100.0 / of as f64)
    }
}

fn date(ms: i64, tz: chrono_tz::Tz) -> String {
    use chrono::TimeZone;
    tz.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn human_seconds(s: f64) -> String {
    crate::handoff::human_duration((s * 1000.0) as i64)
}

/// One line of a comparison, e.g. `replied: b 40% vs a 20%, z=2.10, p=0.036 — significant`.
pub fn comparison_line(c: &Comparison) -> String {
    let stats = match (c.z, c.p_value) {
        (Some(z), Some(p)) => format!(", z={z:.2}, p={p:.3}"),
        _ => String::new(),
    };
    let verdict = match c.verdict.as_str() {
        "significant" => "significant (p < 0.05)".to_string(),
        "not_significant" => "no significant difference".to_string(),
        _ => format!(
            "too few sends to tell (under {} per variant)",
            super::ab::MIN_SENDS
        ),
    };
    format!(
        "{}: {} {:.0}% vs {} {:.0}%{stats} — {verdict}",
        c.outcome.replace('_', " "),
        c.variant,
        c.variant_rate * 100.0,
        c.control,
        c.control_rate * 100.0
    )
}

const HEADERS: [&str; 10] = [
    "rule / step / variant",
    "fired",
    "jobs",
    "sent",
    "failed",
    "delivered",
    "seen",
    "replied 24h",
    "back 7d",
    "clicked",
];

fn cells(label: String, fired: Option<i64>, o: &Outcomes) -> Vec<String> {
    vec![
        label,
        fired.map(|f| f.to_string()).unwrap_or_default(),
        o.jobs.to_string(),
        o.sent.to_string(),
        o.failed.to_string(),
        pct(o.delivered, o.sent),
        pct(o.seen, o.sent),
        pct(o.replied, o.sent),
        pct(o.came_back, o.sent),
        pct(o.clicked, o.sent),
    ]
}

/// Table rows of one rule (its steps and variants), plus notes under it.
fn rule_rows(r: &RuleReport) -> (Vec<Vec<String>>, Vec<String>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let campaign = r.steps.iter().any(|s| s.step.is_some());
    if campaign {
        rows.push(vec![r.rule.clone()]);
    }
    for s in &r.steps {
        let (label, indent) = match &s.step {
            Some(step) => (format!("  {step}"), "    "),
            None => (s.rule_id.clone(), "  "),
        };
        rows.push(cells(label, Some(s.fired), &s.total));
        for v in &s.variants {
            rows.push(cells(
                format!("{indent}variant {}", v.variant),
                None,
                &v.outcomes,
            ));
        }
        for c in &s.comparisons {
            notes.push(format!("{}: A/B {}", s.rule_id, comparison_line(c)));
        }
        for (reason, n) in &s.total.failed_by_reason {
            notes.push(format!("{}: failed ×{n}: {reason}", s.rule_id));
        }
    }
    if let Some(h) = &r.handoffs {
        let mut line = format!(
            "{}: handoffs {} opened, deadline met {}, missed {}, running {}",
            r.rule, h.opened, h.deadlines_met, h.deadlines_missed, h.deadlines_running
        );
        if let Some(p50) = h.first_reply_p50_seconds {
            let _ = write!(line, "; first human reply p50 {}", human_seconds(p50));
        }
        if let Some(p90) = h.first_reply_p90_seconds {
            let _ = write!(line, ", p90 {}", human_seconds(p90));
        }
        notes.push(line);
    }
    (rows, notes)
}

/// The report as a plain-text table.
pub fn text(report: &Report, tz: chrono_tz::Tz) -> String {
    let mut out = String::new();
    let since = if report.since <= 0 {
        "the beginning".to_string()
    } else {
        date(report.since, tz)
    };
    let _ = writeln!(
        out,
        "Effectiveness since {since}{} (made {}, {})",
        report
            .rule
            .as_deref()
            .map(|r| format!(", rule {r}"))
            .unwrap_or_default(),
        date(report.generated_at, tz),
        tz.name()
    );
    if report.rules.is_empty() {
        out.push_str("No rule fired or sent anything in this period.\n");
        out.push_str(&super::spend::text(&report.spend));
        return out;
    }
    let mut rows: Vec<Vec<String>> = vec![HEADERS.iter().map(|h| h.to_string()).collect()];
    let mut notes = Vec::new();
    for r in &report.rules {
        let (rr, nn) = rule_rows(r);
        rows.extend(rr);
        notes.extend(nn);
    }
    let widths: Vec<usize> = (0..HEADERS.len())
        .map(|i| {
            rows.iter()
                .filter(|r| r.len() == HEADERS.len())
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            if i == 0 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str("  ");
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
        if n == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    out.push_str(
        "\nRates are over sent. A reply (24 h) or a return (7 days) counts for the latest send to \
that user only.\n",
    );
    out.push_str(&super::spend::text(&report.spend));
    out
}

/// The rates the chart shows, with their colours.
const SERIES: [(super::OutcomeKind, &str, &str); 4] = [
    (super::OutcomeKind::Delivered, "delivered", "#9ecae1"),
    (super::OutcomeKind::Seen, "seen", "#4292c6"),
    (super::OutcomeKind::Replied, "replied", "#31a354"),
    (super::OutcomeKind::Clicked, "clicked", "#fd8d3c"),
];

/// A small horizontal bar chart: per step/variant, the rates of [`SERIES`] over sent.
pub fn chart(r: &RuleReport) -> String {
    let mut groups: Vec<(String, &Outcomes)> = Vec::new();
    for s in &r.steps {
        let base = s.step.clone().unwrap_or_else(|| "all".into());
        if s.variants.is_empty() {
            groups.push((base, &s.total));
        } else {
            for v in &s.variants {
                let label = match &s.step {
                    Some(step) => format!("{step} · {}", v.variant),
                    None => format!("variant {}", v.variant),
                };
                groups.push((label, &v.outcomes));
            }
        }
    }
    let (label_w, bar_w, bar_h, gap) = (130.0, 220.0, 9.0, 10.0);
    let group_h = bar_h * SERIES.len() as f64 + gap;
    let legend_h = 18.0;
    let height = legend_h + group_h * groups.len() as f64 + 4.0;
    let width = label_w + bar_w + 50.0;
    let mut svg = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{} outcome rates">"#,
        esc(&r.rule)
    );
    let mut x = 0.0;
    for (_, name, colour) in SERIES {
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="3" width="10" height="10" fill="{colour}"/><text x="{}" y="12" font-size="11">{name}</text>"#,
            x + 13.0
        );
        x += 75.0;
    }
    for (gi, (label, o)) in groups.iter().enumerate() {
        let y0 = legend_h + gi as f64 * group_h;
        let _ = write!(
            svg,
            r#"<text class="label" x="0" y="{}" font-size="11">{}</text>"#,
            y0 + bar_h * 2.0 + 3.0,
            esc(label)
        );
        for (si, (kind, name, colour)) in SERIES.iter().enumerate() {
            let rate = o.rate(*kind).unwrap_or(0.0);
            let y = y0 + si as f64 * bar_h;
            let w = (rate * bar_w).max(if rate > 0.0 { 1.0 } else { 0.0 });
            let _ = write!(
                svg,
                r#"<rect class="bar" data-series="{name}" x="{label_w}" y="{y}" width="{w:.1}" height="{}" fill="{colour}"><title>{} {name}: {:.0}%</title></rect><text x="{:.1}" y="{}" font-size="9">{:.0}%</text>"#,
                bar_h - 1.0,
                esc(label),
                rate * 100.0,
                label_w + w + 3.0,
                y + bar_h - 1.5,
                rate * 100.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The report page.
pub fn html(report: &Report, tz: chrono_tz::Tz) -> String {
    let mut body = String::new();
    let since = if report.since <= 0 {
        "the beginning".to_string()
    } else {
        date(report.since, tz)
    };
    let _ = write!(
        body,
        "<h1>Effectiveness</h1><p class=\"meta\">Since {} · made {} ({}) · rates over sent; a reply (24 h) or a return (7 days) counts for the latest send to that user only.</p>",
        esc(&since),
        esc(&date(report.generated_at, tz)),
        esc(tz.name())
    );
    let _ = write!(
        body,
        r#"<form method="get" action="/admin/report.html"><label>Since <input type="date" name="since"></label> <label>Rule <input name="rule" value="{}"></label> <button>Show</button></form>"#,
        esc(report.rule.as_deref().unwrap_or(""))
    );
    if report.rules.is_empty() {
        body.push_str("<p>No rule fired or sent anything in this period.</p>");
    }
    for r in &report.rules {
        let (rows, notes) = rule_rows(r);
        let _ = write!(
            body,
            r#"<section class="rule" id="rule-{id}"><h2>{id}</h2>{}<table><thead><tr>"#,
            chart(r),
            id = esc(&r.rule)
        );
        for h in HEADERS {
            let _ = write!(body, "<th>{}</th>", esc(h));
        }
        body.push_str("</tr></thead><tbody>");
        for row in rows {
            if row.len() != HEADERS.len() {
                continue;
            }
            let class = if row[0].trim_start().starts_with("variant ") {
                " class=\"variant\""
            } else {
                ""
            };
            let _ = write!(body, "<tr{class}>");
            for (i, cell) in row.iter().enumerate() {
                if i == 0 {
                    let _ = write!(body, "<td>{}</td>", esc(cell.trim()));
                } else {
                    let _ = write!(body, "<td class=\"n\">{}</td>", esc(cell));
                }
            }
            body.push_str("</tr>");
        }
        body.push_str("</tbody></table>");
        if !notes.is_empty() {
            body.push_str("<ul class=\"notes\">");
            for n in notes {
                let class = if n.contains("— significant") {
                    " class=\"significant\""
                } else {
                    ""
                };
                let _ = write!(body, "<li{class}>{}</li>", esc(&n));
            }
            body.push_str("</ul>");
        }
        body.push_str("</section>");
    }
    body.push_str(&super::spend::html(&report.spend));
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Effectiveness · zaloflow</title><style>
body{{font-family:system-ui,sans-serif;margin:1rem;color:#222}}
h1{{font-size:1.3rem}} h2{{font-size:1.05rem;margin:1.2rem 0 .3rem}}
.meta{{color:#555;font-size:.85rem}}
table{{border-collapse:collapse;font-size:.8rem;margin:.4rem 0;display:block;overflow-x:auto}}
th,td{{border-bottom:1px solid #ddd;padding:.2rem .4rem;text-align:left;white-space:nowrap}}
td.n{{text-align:right;font-variant-numeric:tabular-nums}}
tr.variant td:first-child{{padding-left:1.2rem;color:#444}}
.notes{{font-size:.8rem;color:#444}} .significant{{color:#1a7f37;font-weight:600}}
svg.chart{{max-width:100%;height:auto}}
</style></head><body>{body}</body></html>"#
    )
}

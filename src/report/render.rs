//! The report as a terminal table ([`text`]) and as a page with one small SVG chart per rule
//! ([`html`]; no JavaScript, readable on a phone).

use std::fmt::Write;

use rust_i18n::t;
use zaloflow_core::html::esc;

use super::{Comparison, Outcomes, Report, RuleReport};
use crate::i18n::{tr, Lang};

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

fn human_seconds(lang: Lang, s: f64) -> String {
    crate::handoff::human_duration(lang, (s * 1000.0) as i64)
}

/// The words of an outcome (`replied`, `came_back`…).
fn outcome_words(lang: Lang, outcome: &str) -> String {
    match outcome {
        "delivered" | "seen" | "replied" | "came_back" | "clicked" => {
            tr(lang, &format!("report.outcome.{outcome}")).into_owned()
        }
        other => other.replace('_', " "),
    }
}

/// One line of a comparison, e.g. `replied: b 40% vs a 20%, z=2.10, p=0.036 — significant`.
pub fn comparison_line(c: &Comparison, lang: Lang) -> String {
    let stats = match (c.z, c.p_value) {
        (Some(z), Some(p)) => format!(", z={z:.2}, p={p:.3}"),
        _ => String::new(),
    };
    let verdict = match c.verdict.as_str() {
        "significant" => tr(lang, "report.ab.significant"),
        "not_significant" => tr(lang, "report.ab.not_significant"),
        _ => t!(
            "report.ab.too_few",
            locale = lang.code(),
            n = super::ab::MIN_SENDS
        ),
    };
    format!(
        "{}: {} {:.0}% {} {} {:.0}%{stats} — {verdict}",
        outcome_words(lang, &c.outcome),
        c.variant,
        c.variant_rate * 100.0,
        tr(lang, "report.ab.vs"),
        c.control,
        c.control_rate * 100.0
    )
}

const HEADERS: [&str; 10] = [
    "report.col.label",
    "report.col.fired",
    "report.col.jobs",
    "report.col.sent",
    "report.col.failed",
    "report.col.delivered",
    "report.col.seen",
    "report.col.replied",
    "report.col.came_back",
    "report.col.clicked",
];

fn headers(lang: Lang) -> Vec<String> {
    HEADERS.iter().map(|k| tr(lang, k).into_owned()).collect()
}

/// A note under a rule's table; `significant` marks an A/B difference that is.
struct Note {
    text: String,
    significant: bool,
}

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
fn rule_rows(r: &RuleReport, lang: Lang) -> (Vec<Vec<String>>, Vec<Note>) {
    let l = lang.code();
    let note = |text: String| Note {
        text,
        significant: false,
    };
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
            let variant = t!("report.variant", locale = l, v = v.variant);
            rows.push(cells(format!("{indent}{variant}"), None, &v.outcomes));
        }
        for c in &s.comparisons {
            let line = comparison_line(c, lang);
            notes.push(Note {
                text: t!("report.note.ab", locale = l, rule = s.rule_id, line = line).into_owned(),
                significant: c.verdict == "significant",
            });
        }
        for (reason, n) in &s.total.failed_by_reason {
            let text = t!(
                "report.note.failed",
                locale = l,
                rule = s.rule_id,
                n = n,
                reason = reason
            );
            notes.push(note(text.into_owned()));
        }
    }
    if let Some(h) = &r.handoffs {
        let mut line = t!(
            "report.note.handoffs",
            locale = l,
            rule = r.rule,
            opened = h.opened,
            met = h.deadlines_met,
            missed = h.deadlines_missed,
            running = h.deadlines_running
        )
        .into_owned();
        if let Some(p50) = h.first_reply_p50_seconds {
            let d = human_seconds(lang, p50);
            line.push_str(&t!("report.note.first_reply_p50", locale = l, d = d));
        }
        if let Some(p90) = h.first_reply_p90_seconds {
            let d = human_seconds(lang, p90);
            line.push_str(&t!("report.note.first_reply_p90", locale = l, d = d));
        }
        notes.push(note(line));
    }
    (rows, notes)
}

fn since_words(report: &Report, tz: chrono_tz::Tz, lang: Lang) -> String {
    if report.since <= 0 {
        tr(lang, "report.the_beginning").into_owned()
    } else {
        date(report.since, tz)
    }
}

/// The report as a plain-text table.
pub fn text(report: &Report, tz: chrono_tz::Tz, lang: Lang) -> String {
    let l = lang.code();
    let mut out = String::new();
    let rule = report
        .rule
        .as_deref()
        .map(|r| t!("report.header_rule", locale = l, rule = r).into_owned())
        .unwrap_or_default();
    let header = t!(
        "report.header",
        locale = l,
        since = since_words(report, tz, lang),
        rule = rule,
        made = date(report.generated_at, tz),
        tz = tz.name()
    );
    let _ = writeln!(out, "{header}");
    if report.rules.is_empty() {
        let _ = writeln!(out, "{}", tr(lang, "report.nothing"));
        out.push_str(&super::spend::text(&report.spend, lang));
        return out;
    }
    let mut rows: Vec<Vec<String>> = vec![headers(lang)];
    let mut notes = Vec::new();
    for r in &report.rules {
        let (rr, nn) = rule_rows(r, lang);
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
            out.push_str(&n.text);
            out.push('\n');
        }
    }
    let _ = write!(
        out,
        "\n{}\n{}\n",
        tr(lang, "report.rates"),
        tr(lang, "report.columns_explained")
    );
    out.push_str(&super::spend::text(&report.spend, lang));
    out
}

/// The rates the chart shows (series name, catalogue key, colour).
const SERIES: [(super::OutcomeKind, &str, &str, &str); 5] = [
    (
        super::OutcomeKind::Delivered,
        "delivered",
        "report.series.delivered",
        "#9ecae1",
    ),
    (
        super::OutcomeKind::Seen,
        "seen",
        "report.series.seen",
        "#4292c6",
    ),
    (
        super::OutcomeKind::Replied,
        "replied",
        "report.series.replied",
        "#31a354",
    ),
    (
        super::OutcomeKind::CameBack,
        "came_back",
        "report.series.came_back",
        "#756bb1",
    ),
    (
        super::OutcomeKind::Clicked,
        "clicked",
        "report.series.clicked",
        "#fd8d3c",
    ),
];

/// A small horizontal bar chart: per step/variant, the rates of [`SERIES`] over sent.
pub fn chart(r: &RuleReport, lang: Lang) -> String {
    let l = lang.code();
    let mut groups: Vec<(String, &Outcomes)> = Vec::new();
    for s in &r.steps {
        let base = s
            .step
            .clone()
            .unwrap_or_else(|| tr(lang, "report.all").into_owned());
        if s.variants.is_empty() {
            groups.push((base, &s.total));
        } else {
            for v in &s.variants {
                let label = match &s.step {
                    Some(step) => format!("{step} · {}", v.variant),
                    None => t!("report.variant", locale = l, v = v.variant).into_owned(),
                };
                groups.push((label, &v.outcomes));
            }
        }
    }
    let (label_w, bar_w, bar_h, gap) = (130.0, 220.0, 9.0, 10.0);
    let group_h = bar_h * SERIES.len() as f64 + gap;
    // The legend: one row per three series (the words are longer in Vietnamese).
    let legend_h = 18.0 * SERIES.len().div_ceil(3) as f64;
    let height = legend_h + group_h * groups.len() as f64 + 4.0;
    let width = label_w + bar_w + 50.0;
    let mut svg = format!(
        r#"<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{}">"#,
        esc(&t!("report.chart_label", locale = l, rule = r.rule))
    );
    for (i, (_, _, key, colour)) in SERIES.iter().enumerate() {
        let (x, y) = ((i % 3) as f64 * 135.0, (i / 3) as f64 * 18.0);
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            y + 3.0,
            x + 13.0,
            y + 12.0,
            esc(&tr(lang, key))
        );
    }
    for (gi, (label, o)) in groups.iter().enumerate() {
        let y0 = legend_h + gi as f64 * group_h;
        let _ = write!(
            svg,
            r#"<text class="label" x="0" y="{}" font-size="11">{}</text>"#,
            y0 + bar_h * 2.0 + 3.0,
            esc(label)
        );
        for (si, (kind, name, key, colour)) in SERIES.iter().enumerate() {
            let rate = o.rate(*kind).unwrap_or(0.0);
            let y = y0 + si as f64 * bar_h;
            let w = (rate * bar_w).max(if rate > 0.0 { 1.0 } else { 0.0 });
            let _ = write!(
                svg,
                r#"<rect class="bar" data-series="{name}" x="{label_w}" y="{y}" width="{w:.1}" height="{}" fill="{colour}"><title>{} {}: {:.0}%</title></rect><text x="{:.1}" y="{}" font-size="9">{:.0}%</text>"#,
                bar_h - 1.0,
                esc(label),
                esc(&tr(lang, key)),
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
pub fn html(report: &Report, tz: chrono_tz::Tz, lang: Lang) -> String {
    let l = lang.code();
    let mut body = String::new();
    let meta = t!(
        "report.meta",
        locale = l,
        since = since_words(report, tz, lang),
        made = date(report.generated_at, tz),
        tz = tz.name()
    );
    let _ = write!(
        body,
        "<h1>{}</h1><p class=\"meta\">{} · {}</p><p class=\"meta\" id=\"columns\">{}</p>",
        esc(&tr(lang, "report.title")),
        esc(&meta),
        esc(&tr(lang, "report.rates")),
        esc(&tr(lang, "report.columns_explained"))
    );
    let _ = write!(
        body,
        r#"<form method="get" action="/admin/report.html"><label>{} <input type="date" name="since"></label> <label>{} <input name="rule" value="{}"></label> <button>{}</button></form>"#,
        esc(&tr(lang, "report.form.since")),
        esc(&tr(lang, "report.form.rule")),
        esc(report.rule.as_deref().unwrap_or("")),
        esc(&tr(lang, "report.form.show"))
    );
    if report.rules.is_empty() {
        let _ = write!(body, "<p>{}</p>", esc(&tr(lang, "report.nothing")));
    }
    let heads = headers(lang);
    for r in &report.rules {
        let (rows, notes) = rule_rows(r, lang);
        let _ = write!(
            body,
            r#"<section class="rule" id="rule-{id}"><h2>{id}</h2>{}<table><thead><tr>"#,
            chart(r, lang),
            id = esc(&r.rule)
        );
        for h in &heads {
            let _ = write!(body, "<th>{}</th>", esc(h));
        }
        body.push_str("</tr></thead><tbody>");
        for row in rows {
            if row.len() != HEADERS.len() {
                continue;
            }
            // A variant's row has no "fired" of its own.
            let class = if row[1].is_empty() {
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
                let class = if n.significant {
                    " class=\"significant\""
                } else {
                    ""
                };
                let _ = write!(body, "<li{class}>{}</li>", esc(&n.text));
            }
            body.push_str("</ul>");
        }
        body.push_str("</section>");
    }
    body.push_str(&super::spend::html(&report.spend, lang));
    let title = esc(&tr(lang, "report.title"));
    format!(
        r#"<!doctype html><html lang="{l}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · zaloflow</title><style>
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

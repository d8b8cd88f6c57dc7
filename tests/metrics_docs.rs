//! `docs/metrics.md` documents every metric the code emits (and nothing else), what a running
//! service exposes on `/metrics` is all documented, and the Grafana dashboard only plots
//! documented metrics and covers webhooks, inbox depth, processing latency, sends by outcome,
//! queue depth and send latency.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Names in the first column of the tables of docs/metrics.md.
fn documented() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let row = regex::Regex::new(r"(?m)^\| `(zaloflow_[a-z0-9_]+)` \|").unwrap();
    row.captures_iter(&text).map(|c| c[1].to_string()).collect()
}

/// Metric names the code emits: `metrics::counter!("zaloflow_…"` and `…_METRIC: &str = "…"`.
fn emitted() -> BTreeSet<String> {
    let call =
        regex::Regex::new(r#"metrics::(?:counter|gauge|histogram)!\(\s*"(zaloflow_[a-z0-9_]+)""#)
            .unwrap();
    let konst = regex::Regex::new(r#"_METRIC: &str = "(zaloflow_[a-z0-9_]+)""#).unwrap();
    let mut out = BTreeSet::new();
    let mut stack = vec![repo().join("src"), repo().join("crates")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for re in [&call, &konst] {
                    out.extend(re.captures_iter(&text).map(|c| c[1].to_string()));
                }
            }
        }
    }
    out
}

/// A sample or series name without the histogram suffixes.
fn family(name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            return base.to_string();
        }
    }
    name.to_string()
}

#[test]
fn every_emitted_metric_is_documented_and_nothing_else() {
    let docs = documented();
    let code = emitted();
    assert!(code.len() >= 15, "{code:?}");
    let undocumented: Vec<_> = code.difference(&docs).collect();
    assert!(
        undocumented.is_empty(),
        "add to docs/metrics.md: {undocumented:?}"
    );
    let stale: Vec<_> = docs.difference(&code).collect();
    assert!(stale.is_empty(), "documented but not emitted: {stale:?}");
}

#[test]
fn the_dashboard_plots_documented_metrics_and_what_an_operator_needs() {
    let text = std::fs::read_to_string(repo().join("docs/grafana-dashboard.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dash["title"], "zaloflow");
    let name = regex::Regex::new(r"zaloflow_[a-z0-9_]+").unwrap();
    let docs = documented();
    let mut plotted = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "panel ids are unique"
        );
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            assert_eq!(
                expr.matches('(').count(),
                expr.matches(')').count(),
                "{expr}"
            );
            for m in name.find_iter(expr) {
                let f = family(m.as_str());
                assert!(docs.contains(&f), "{expr}: {f} is not documented");
                plotted.insert(f);
            }
        }
    }
    for needed in [
        "zaloflow_webhooks_total",
        "zaloflow_inbox_depth",
        "zaloflow_inbox_processing_latency_seconds",
        "zaloflow_outbox_sent_total",
        "zaloflow_outbox_retried_total",
        "zaloflow_outbox_dead_total",
        "zaloflow_outbox_jobs",
        "zaloflow_outbox_send_seconds",
    ] {
        assert!(
            plotted.contains(needed),
            "the dashboard does not plot {needed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_running_service_exposes_is_documented() {
    let db = Db::new("sqlite").await;
    let app = TestApp::spawn(config(db.url(), &[])).await;
    assert_eq!(
        app.post_webhook(&text_event("8012345678901234567", "mx1", "chào"))
            .await
            .status(),
        200
    );
    let store = zaloflow::store::open(db.url()).await.unwrap();
    wait_until(Duration::from_secs(10), || async {
        store.inbox_stats().await.unwrap().done == 1
    })
    .await;
    let body = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let docs = documented();
    let mut seen = BTreeSet::new();
    for line in body.lines().filter(|l| l.starts_with("zaloflow_")) {
        let sample = line.split(['{', ' ']).next().unwrap();
        let f = family(sample);
        assert!(
            docs.contains(&f),
            "/metrics shows {f}, which docs/metrics.md does not list"
        );
        seen.insert(f);
    }
    for f in [
        "zaloflow_webhooks_total",
        "zaloflow_inbox_depth",
        "zaloflow_inbox_processed_total",
        "zaloflow_inbox_processing_latency_seconds",
    ] {
        assert!(seen.contains(f), "{f} missing from /metrics:\n{body}");
    }
    app.shutdown().await;
}

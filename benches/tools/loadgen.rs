//! A fixed-rate (open-loop) webhook load generator: sends pre-signed deliveries
//! (benches/gen_webhooks.py: `<signature>\t<body>` per line) at RATE per second for SECS
//! seconds, whatever the answers' pace, and measures each latency from the instant the request
//! was due (so a stall is counted against every request it delays: no coordinated omission).
//!
//!   cargo run --release --example loadgen -- URL FILE RATE SECS
//!
//! Prints `RESULT rate=… sent=… ok=… non2xx=… errors=… p50_ms=… p90_ms=… p99_ms=… max_ms=…`.

use std::sync::Arc;
use std::time::{Duration, Instant};

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen URL FILE RATE SECS");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let text = std::fs::read_to_string(&args[2]).expect("requests file");
    let rate: u64 = args[3].parse().expect("RATE");
    let secs: u64 = args[4].parse().expect("SECS");
    let reqs: Arc<Vec<(String, axum::body::Bytes)>> = Arc::new(
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(s, b)| (s.to_string(), axum::body::Bytes::from(b.to_string())))
            .collect(),
    );
    assert!(!reqs.is_empty(), "no requests in {}", args[2]);
    // One thread: the generator must take as little of the machine as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(512)
            .http1_only()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        // Warm the connection pool a little (not measured).
        for _ in 0..8 {
            let _ = client.get(url.replace("/webhooks/zalo", "/healthz")).send().await;
        }
        let n = rate * secs;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now() + Duration::from_millis(50);
        let mut tasks = tokio::task::JoinSet::new();
        let mut done: Vec<(f64, Option<u16>)> = Vec::with_capacity(n as usize);
        // The pace is kept by a thread of its own sleeping to each due instant (tokio's timer
        // fires on whole milliseconds: paced by it, requests left in bursts up to 1 ms late,
        // and that lateness, counted from the due instant, was most of a bare handler's p99).
        let (due_tx, mut due_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
        std::thread::spawn(move || {
            for i in 0..n {
                let due = start + interval.mul_f64(i as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if due_tx.send((i, due)).is_err() {
                    return;
                }
            }
        });
        while let Some((i, due)) = due_rx.recv().await {
            let (c, u, reqs) = (client.clone(), url.clone(), reqs.clone());
            tasks.spawn(async move {
                let (sig, body) = &reqs[i as usize % reqs.len()];
                let r = c
                    .post(u)
                    .header("content-type", "application/json")
                    .header("x-zevent-signature", sig.as_str())
                    .body(body.clone())
                    .send()
                    .await;
                let status = match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        Some(s)
                    }
                    Err(_) => None,
                };
                (due.elapsed().as_secs_f64() * 1000.0, status)
            });
            // Collect finished ones as we go so the set stays small.
            while let Some(r) = tasks.try_join_next() {
                done.push(r.expect("task"));
            }
        }
        let sent_secs = start.elapsed().as_secs_f64();
        while let Some(r) = tasks.join_next().await {
            done.push(r.expect("task"));
        }
        let (mut lat, mut ok, mut non2xx, mut errors) = (Vec::with_capacity(n as usize), 0, 0, 0);
        for (ms, status) in done {
            match status {
                Some(200..=299) => {
                    ok += 1;
                    lat.push(ms);
                }
                Some(_) => non2xx += 1,
                None => errors += 1,
            }
        }
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "RESULT rate={rate} achieved={:.0} sent={n} ok={ok} non2xx={non2xx} errors={errors} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            n as f64 / sent_secs,
            pct(&lat, 0.5),
            pct(&lat, 0.9),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(0.0)
        );
    });
}

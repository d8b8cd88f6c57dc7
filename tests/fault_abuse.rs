//! Abuse at the HTTP edge, over raw TCP: slow-loris clients (request heads dribbled byte by
//! byte, idle connections, bodies dribbled), oversized heads and bodies, a flood of badly
//! signed requests — while signed deliveries keep being answered.
//! (Per-IP limits of the public routes are tested in tests/forms.rs and tests/tracking.rs;
//! `scripts/flood-bench` measures the flood's effect on signed traffic.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zaloflow::http::server::HEADER_READ_TIMEOUT;

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (or `limit` passes); answers what was read and
/// when it closed.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut chunk)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&buf).into(), Some(start.elapsed()))
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (String::from_utf8_lossy(&buf).into(), None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_are_cut_and_signed_traffic_goes_on() {
    let (_dir, url) = fresh_sqlite();
    let app = TestApp::spawn(config(&url, &[])).await;
    let a = addr(&app);
    let start = Instant::now();
    // 40 clients dribbling a request head, one byte every 500 ms, and 20 that send nothing.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let a = a.clone();
        tasks.spawn(async move {
            let mut s = TcpStream::connect(&a).await.unwrap();
            let head = format!(
                "POST /webhooks/zalo HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: {}\r\n",
                "a".repeat(200)
            );
            let closed_after = if i < 40 {
                let mut closed = None;
                for b in head.bytes() {
                    if s.write_all(&[b]).await.is_err() {
                        closed = Some(Instant::now());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if start.elapsed() > Duration::from_secs(30) {
                        break;
                    }
                }
                match closed {
                    Some(t) => Some(t - start),
                    None => read_until_closed(&mut s, Duration::from_secs(5))
                        .await
                        .1
                        .map(|_| start.elapsed()),
                }
            } else {
                read_until_closed(&mut s, Duration::from_secs(30)).await.1
            };
            (i, closed_after)
        });
    }
    // Meanwhile, signed deliveries are answered promptly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        let r = app
            .post_webhook(&text_event("1", &format!("loris-{i}"), "hi"))
            .await;
        assert_eq!(r.status(), 200);
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut cut = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (i, closed) = r.unwrap();
        let closed = closed.unwrap_or_else(|| panic!("client {i} was never cut"));
        cut.push(closed);
    }
    let latest = cut.iter().max().unwrap();
    println!(
        "fault_abuse slow-loris: 40 dribbling + 20 idle connections all closed by the server, the last after {latest:?} (header read timeout {HEADER_READ_TIMEOUT:?}); 20 signed deliveries meanwhile, slowest {slowest:?}"
    );
    assert!(*latest < HEADER_READ_TIMEOUT + Duration::from_secs(3));
    assert!(
        slowest < Duration::from_secs(5),
        "signed deliveries held up"
    );
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dribbled_body_times_out_with_408() {
    let (_dir, url) = fresh_sqlite();
    let app = TestApp::spawn(config(&url, &[])).await;
    let mut s = TcpStream::connect(addr(&app)).await.unwrap();
    s.write_all(
        b"POST /webhooks/zalo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-ZEvent-Signature: mac=00\r\nContent-Length: 1000\r\n\r\n{",
    )
    .await
    .unwrap();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let mut s = s;
        for _ in 0..100 {
            if s.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        s
    });
    let mut s = writer.await.unwrap();
    let (answer, closed) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    println!(
        "fault_abuse slow body: answered {:?} after {:?}",
        answer.lines().next(),
        start.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(15));
    let _ = closed;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_bodies_are_refused() {
    let (_dir, url) = fresh_sqlite();
    let app = TestApp::spawn(config(&url, &[])).await;
    let a = addr(&app);
    // one huge header
    let mut s = TcpStream::connect(&a).await.unwrap();
    let head = format!(
        "POST /webhooks/zalo HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let _ = s.write_all(head.as_bytes()).await;
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "huge header: {answer:.80}"
    );
    // too many headers
    let mut s = TcpStream::connect(&a).await.unwrap();
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let _ = s
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .await;
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "200 headers: {answer:.80}"
    );
    // a body over 1 MiB, announced or streamed
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(2 * 1024 * 1024));
    // Announced: written over a socket of its own, as the chunked one below. The server
    // answers 413 from the head and closes without reading the body, so a client still
    // writing it may get a broken pipe before it reads the answer (an HTTP client's request
    // failed that way in CI).
    let mut s = TcpStream::connect(&a).await.unwrap();
    let head = format!(
        "POST /webhooks/zalo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nX-ZEvent-Signature: mac=00\r\n\r\n",
        big.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(big.as_bytes()).await; // the server answered and closed
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "announced body over the limit: {answer:.80}"
    );
    let mut s = TcpStream::connect(&a).await.unwrap();
    s.write_all(
        b"POST /webhooks/zalo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-ZEvent-Signature: mac=00\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).await.is_err() {
            break; // the server answered and closed
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let (answer, _) = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "chunked body over the limit: {answer:.80}"
    );
    // still serving
    assert_eq!(
        app.post_webhook(&text_event("1", "after", "hi"))
            .await
            .status(),
        200
    );
    println!("fault_abuse limits: 200 KiB header -> 431, 200 headers -> 431, 2 MiB body (sized and chunked) -> 413");
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_signatures_stores_nothing_and_signed_deliveries_go_through() {
    let (_dir, url) = fresh_sqlite();
    let app = TestApp::spawn(config(&url, &[])).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (base, stop) = (app.base.clone(), stop.clone());
        flood.spawn(async move {
            let (mut n, mut answered, mut refused) = (0usize, 0usize, 0usize);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = text_event("666", &format!("forged-{t}-{n}"), "spam");
                let mut req = client().post(format!("{base}/webhooks/zalo")).body(body);
                if n % 2 == 0 {
                    req = req.header("X-ZEvent-Signature", format!("mac={}", "0".repeat(64)));
                }
                if let Ok(r) = req.send().await {
                    answered += 1;
                    if r.status() == 401 {
                        refused += 1;
                    }
                }
            }
            (answered, refused)
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut slowest = Duration::ZERO;
    let mut total = Duration::ZERO;
    for i in 0..50 {
        let t = Instant::now();
        let r = app
            .post_webhook(&text_event("2", &format!("real-{i}"), "hi"))
            .await;
        assert_eq!(r.status(), 200);
        slowest = slowest.max(t.elapsed());
        total += t.elapsed();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut sent, mut refused) = (0, 0);
    while let Some(r) = flood.join_next().await {
        let (n, x) = r.unwrap();
        sent += n;
        refused += x;
    }
    let bodies = inbox_bodies(
        &Db::Sqlite(tempfile::tempdir().unwrap(), url.clone()),
        "user_send_text",
    )
    .await;
    let forged = bodies.iter().filter(|b| b["sender"]["id"] == "666").count();
    println!(
        "fault_abuse flood: {sent} forged/unsigned requests ({refused} answered 401), {forged} stored; 50 signed deliveries meanwhile: mean {:?}, slowest {slowest:?}",
        total / 50
    );
    assert_eq!(forged, 0);
    assert_eq!(refused, sent);
    assert_eq!(bodies.len(), 50);
    app.shutdown().await;
}

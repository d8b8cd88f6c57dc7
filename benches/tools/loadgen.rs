//! A fixed-rate (open-loop) webhook load generator: sends pre-signed deliveries
//! (benches/gen_webhooks.py: `<signature>\t<body>` per line) at RATE per second for SECS
//! seconds over CONNS keep-alive connections (default 50), whatever the answers' pace, and
//! measures each latency from the instant the request was due: a request that finds every
//! connection busy waits in the generator and that wait counts against it, so a stall is
//! counted against every request it delays (no coordinated omission).
//!
//!   cargo run --release --example loadgen -- URL FILE RATE SECS [CONNS]
//!
//! Prints `RESULT rate=… achieved=… sent=… ok=… non2xx=… errors=… p50_ms=… p90_ms=… p99_ms=…
//! max_ms=…`.
//!
//! Each connection writes its request and reads the answer itself (HTTP/1.1, one request at a
//! time, `Content-Length` bodies, which is what the service answers): through reqwest, one
//! thread topped out near 17,000 requests/s, short of the 20,000/s the intake is measured at,
//! and its CPU was taken from the two cores the service under test runs on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `http://host:port/path` as (`host:port`, `/path`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    }
}

/// Reads one answer from `conn` into `buf` (cleared first): its status.
async fn read_answer(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    buf.clear();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .ok_or_else(|| bad("answer without Content-Length"))?;
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

type Due = (u64, Instant);

/// One connection: takes the next due request, sends it, reads the answer, and so on until
/// the pacer is done. Returns (latency in ms, status or `None` for a failed exchange).
async fn connection(
    addr: String,
    path: String,
    reqs: Arc<Vec<(String, String)>>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Due>>>,
) -> Vec<(f64, Option<u16>)> {
    let mut out = Vec::new();
    let mut conn: Option<TcpStream> = None;
    let mut req = Vec::with_capacity(2048);
    let mut buf = Vec::with_capacity(4096);
    loop {
        let next = queue.lock().await.recv().await;
        let Some((i, due)) = next else { return out };
        let (sig, body) = &reqs[i as usize % reqs.len()];
        req.clear();
        req.extend_from_slice(
            format!(
                "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
                 x-zevent-signature: {sig}\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        req.extend_from_slice(body.as_bytes());
        let exchange = async {
            if conn.is_none() {
                let c = TcpStream::connect(&addr).await?;
                c.set_nodelay(true)?;
                conn = Some(c);
            }
            let c = conn.as_mut().expect("connected above");
            c.write_all(&req).await?;
            read_answer(c, &mut buf).await
        };
        let status = match tokio::time::timeout(Duration::from_secs(10), exchange).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                conn = None;
                None
            }
        };
        out.push((due.elapsed().as_secs_f64() * 1000.0, status));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen URL FILE RATE SECS [CONNS]");
        std::process::exit(2);
    }
    let (addr, path) = split_url(&args[1]);
    let text = std::fs::read_to_string(&args[2]).expect("requests file");
    let rate: u64 = args[3].parse().expect("RATE");
    let secs: u64 = args[4].parse().expect("SECS");
    let conns: usize = args.get(5).map_or(50, |c| c.parse().expect("CONNS"));
    let reqs: Arc<Vec<(String, String)>> = Arc::new(
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(s, b)| (s.to_string(), b.to_string()))
            .collect(),
    );
    assert!(!reqs.is_empty(), "no requests in {}", args[2]);
    // One thread: the generator must take as little of the machine as it can.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let n = rate * secs;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let start = Instant::now() + Duration::from_millis(50);
        let (due_tx, due_rx) = mpsc::unbounded_channel::<Due>();
        let queue = Arc::new(Mutex::new(due_rx));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..conns {
            tasks.spawn(connection(
                addr.clone(),
                path.clone(),
                reqs.clone(),
                queue.clone(),
            ));
        }
        // The pace is kept by a thread of its own sleeping to each due instant (tokio's timer
        // fires on whole milliseconds: paced by it, requests left in bursts up to 1 ms late,
        // and that lateness, counted from the due instant, was most of a bare handler's p99).
        let pacer = std::thread::spawn(move || {
            for i in 0..n {
                let due = start + interval.mul_f64(i as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if due_tx.send((i, due)).is_err() {
                    break;
                }
            }
            Instant::now()
        });
        let mut done: Vec<(f64, Option<u16>)> = Vec::with_capacity(n as usize);
        while let Some(r) = tasks.join_next().await {
            done.extend(r.expect("connection task"));
        }
        let sent_secs = (pacer.join().expect("pacer") - start).as_secs_f64();
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

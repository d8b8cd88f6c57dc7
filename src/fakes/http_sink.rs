//! A webhook receiver that records every request: stands in for the SMS gateway, team chat and
//! task tool.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Signal;

/// One request as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// header names in lower case, in arrival order
    pub headers: Vec<(String, String)>,
    /// the body parsed as JSON (`Null` when it is not JSON)
    pub body: Value,
    pub raw_body: String,
    /// when it arrived, counted from the sink's start
    pub elapsed: Duration,
}

impl SinkRequest {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkResponse {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

impl SinkResponse {
    pub fn status(status: u16, body: &str) -> Self {
        SinkResponse {
            status,
            body: body.to_string(),
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Default)]
struct Inner {
    requests: Vec<SinkRequest>,
    scripted: VecDeque<SinkResponse>,
    delay: Duration,
}

struct Shared {
    inner: Mutex<Inner>,
    signal: Signal,
    started: Instant,
}

/// A running sink; stops when dropped.
pub struct HttpSink {
    base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpSink {
    /// Starts a sink on `127.0.0.1:0`. Every path and method is accepted.
    pub async fn start() -> anyhow::Result<HttpSink> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            signal: Signal::default(),
            started: Instant::now(),
        });
        let router = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let (base_url, task) = super::serve(router).await?;
        Ok(HttpSink {
            base_url,
            shared,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of `path` (which starts with `/`) on this sink.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Answers the next `n` requests with `response` (after any already scripted).
    pub fn respond_next(&self, n: usize, response: SinkResponse) {
        let mut inner = self.shared.inner.lock().expect("poisoned");
        for _ in 0..n {
            inner.scripted.push_back(response.clone());
        }
    }

    /// Delays every answer by `delay` (timeouts).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.inner.lock().expect("poisoned").delay = delay;
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<SinkRequest> {
        self.shared.inner.lock().expect("poisoned").requests.clone()
    }

    /// Waits until at least `n` requests arrived (or `timeout` passes) and answers them all.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<SinkRequest> {
        self.shared
            .signal
            .wait_until(timeout, || {
                self.shared.inner.lock().expect("poisoned").requests.len() >= n
            })
            .await;
        self.requests()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let request = SinkRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(String::from),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_str(&raw_body).unwrap_or(Value::Null),
        raw_body,
        elapsed: shared.started.elapsed(),
    };
    let (response, delay, n) = {
        let mut inner = shared.inner.lock().expect("poisoned");
        inner.requests.push(request);
        let n = inner.requests.len();
        (inner.scripted.pop_front(), inner.delay, n)
    };
    shared.signal.wake();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match response {
        Some(r) => {
            let status =
                StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut answer = (status, r.body).into_response();
            for (k, v) in r.headers {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    axum::http::HeaderValue::from_str(&v),
                ) {
                    answer.headers_mut().insert(k, v);
                }
            }
            answer
        }
        None => {
            axum::Json(serde_json::json!({ "ok": true, "id": format!("sink-{n}") })).into_response()
        }
    }
}

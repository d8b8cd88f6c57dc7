//! In-process fakes of the outside parties, as real HTTP servers on `127.0.0.1:0`: used by the
//! integration tests and by `zaloflow demo`.
//!
//! - [`zalo::FakeZalo`]: the OA Open API, OAuth v4 and ZNS, answering as `PROTOCOL.md` says.
//! - [`http_sink::HttpSink`]: any webhook (SMS gateway, team chat, task tool): records every
//!   request and answers 200 unless scripted otherwise.
//!
//! Both record every arrival and let a caller wait on a condition (never on a fixed sleep).

use std::time::Duration;

use tokio::sync::Notify;

pub mod http_sink;
pub mod smtp;
pub mod zalo;
pub mod zalo_oauth;

/// Wakes waiters whenever a fake records something.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    notify: Notify,
}

impl Signal {
    pub(crate) fn wake(&self) {
        self.notify.notify_waiters();
    }

    /// Waits until `cond` holds (checked after every recorded event) or `timeout` passes;
    /// answers whether it holds.
    pub(crate) async fn wait_until(&self, timeout: Duration, cond: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if cond() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return cond();
            }
        }
    }
}

/// Binds `127.0.0.1:0`, serves `router` in a task and answers the base URL and the task.
pub(crate) async fn serve(
    router: axum::Router,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "fake server stopped");
        }
    });
    Ok((format!("http://{addr}"), task))
}

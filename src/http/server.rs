//! The HTTP server loop: `axum::serve` plus the limits a public endpoint needs against slow or
//! abusive clients, which `axum::serve` does not set.
//!
//! - **Header read timeout** ([`HEADER_READ_TIMEOUT`]): a client must send a request's whole
//!   head within it, or the connection is closed (slow-loris clients that dribble header bytes,
//!   open connections and send nothing, or keep them idle, cannot hold sockets for long).
//! - **Header size** ([`MAX_HEADER_BYTES`], at most 100 headers): larger heads are answered
//!   431 and the connection closed.
//! - **Request timeout**: the router's `TimeoutLayer` (10 s, `408`) bounds each request once its
//!   head is in, including reading the body, so a body dribbled byte by byte is cut too.
//! - **Body size**: the router's `DefaultBodyLimit` (1 MiB, `413`).
//!
//! Shutdown is graceful as before: stop accepting, let requests in flight finish.

use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Time a client has to send a request's head (request line and headers).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head accepted (hyper's read buffer).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the connections'
/// requests in flight. Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's timer starts with the first byte of a request head; a connection that
            // never sends one would otherwise be held for ever.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(HEADER_READ_TIMEOUT, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

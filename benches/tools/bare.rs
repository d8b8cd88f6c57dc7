//! The ceiling for the webhook figure: a bare axum handler on the same runtime as `zaloflow
//! serve`, reading the body and answering 200 with the webhook's own answer, storing nothing.
//! scripts/bench runs it under the same load as the real service, in the same run.
//!
//!   cargo run --release --example bare-webhook -- PORT

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

async fn webhook(body: Bytes) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    std::hint::black_box(&body);
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        r#"{"ok":true,"outcome":"stored"}"#,
    )
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(18090);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let app = Router::new()
            .route("/webhooks/zalo", post(webhook))
            .route("/readyz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        axum::serve(listener, app).await.expect("serve");
    });
}

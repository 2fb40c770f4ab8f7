//! The operator's admin server: `/metrics`, `/healthz`, and `/readyz` (ready once the
//! caches are filled, so a new replica does not push empty config).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::metrics::Metrics;

/// Serves the admin endpoints forever.
pub async fn serve(listener: TcpListener, metrics: Metrics, ready: Arc<AtomicBool>) {
    // Hyper's timers on: a client that never finishes its headers is dropped.
    let builder = crate::push::builder();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, ready, builder) = (metrics.clone(), ready.clone(), builder.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let response = match req.uri().path() {
                    "/metrics" => (StatusCode::OK, metrics.render()),
                    "/healthz" => (StatusCode::OK, b"ok\n".to_vec()),
                    "/readyz" if ready.load(Ordering::Relaxed) => {
                        (StatusCode::OK, b"ready\n".to_vec())
                    }
                    "/readyz" => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        b"filling caches\n".to_vec(),
                    ),
                    _ => (StatusCode::NOT_FOUND, b"not found\n".to_vec()),
                };
                let mut out = Response::new(Full::new(Bytes::from(response.1)));
                *out.status_mut() = response.0;
                async move { Ok::<_, Infallible>(out) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

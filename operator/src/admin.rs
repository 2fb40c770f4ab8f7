//! The operator's admin server: `/metrics`, `/healthz`, and `/readyz` (ready once the
//! caches are filled, so a new replica does not push empty config). It stops with the
//! operator and backs off on accept errors ([`crate::serving`]).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::metrics::Metrics;
use crate::serving::Server;

/// Serves the admin endpoints until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let make = move |_peer| {
        let (metrics, ready) = (metrics.clone(), ready.clone());
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (status, body) = answer(req.uri().path(), &metrics, &ready);
            let mut out = Response::new(Full::new(Bytes::from(body)));
            *out.status_mut() = status;
            async move { Ok::<_, Infallible>(out) }
        })
    };
    Server::plain("admin").serve(listener, make, shutdown).await;
}

/// The status and body for `path`.
fn answer(path: &str, metrics: &Metrics, ready: &AtomicBool) -> (StatusCode, Vec<u8>) {
    match path {
        "/metrics" => (StatusCode::OK, metrics.render()),
        "/healthz" => (StatusCode::OK, b"ok\n".to_vec()),
        "/readyz" if ready.load(Ordering::Relaxed) => (StatusCode::OK, b"ready\n".to_vec()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            b"filling caches\n".to_vec(),
        ),
        _ => (StatusCode::NOT_FOUND, b"not found\n".to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    /// The server answers until the shutdown signal, then its future completes and
    /// nothing listens any more.
    #[tokio::test]
    async fn the_admin_server_answers_then_stops_on_shutdown() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ready = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Metrics::new().unwrap(),
            ready.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.ends_with("ready\n"));
        assert!(get(addr, "/nope").await.starts_with("HTTP/1.1 404"));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("the admin server did not stop")
            .unwrap();
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}

//! Serving HTTP, one way for the config push and the injection webhook (over TLS) and
//! the admin server (plain): an accept loop that backs off on accept errors, hyper's
//! auto builder (HTTP/1.1 and h2) with its timers on, and a graceful shutdown that stops
//! accepting, asks open connections to finish and waits for them a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a shutdown waits for open connections before it lets them go: a little
/// under what Kubernetes leaves a pod after SIGTERM, less what the rest of the exit takes.
pub const GRACE: Duration = Duration::from_secs(5);
/// A client that does not finish its TLS handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that does not finish its request headers in this time is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause after a failed accept; it doubles up to [`MAX_ACCEPT_PAUSE`].
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(5);
/// The longest pause between failed accepts.
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection builder with hyper's timers on: a client that never finishes its
/// request headers is dropped instead of holding a connection (and a task) forever.
pub fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// One server: what it is called in logs, TLS or not, and its shutdown grace.
#[derive(Clone)]
pub struct Server {
    name: &'static str,
    tls: Option<TlsAcceptor>,
    grace: Duration,
}

impl Server {
    /// A plain HTTP server.
    pub fn plain(name: &'static str) -> Self {
        Server {
            name,
            tls: None,
            grace: GRACE,
        }
    }

    /// An HTTPS server.
    pub fn tls(name: &'static str, config: Arc<rustls::ServerConfig>) -> Self {
        Server {
            tls: Some(TlsAcceptor::from(config)),
            ..Server::plain(name)
        }
    }

    /// Waits this long at shutdown for open connections (default [`GRACE`]).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serves `listener` until `shutdown`, each connection with the service `make`
    /// returns for its peer; then waits up to the grace for open connections.
    pub async fn serve<M, S, B>(
        self,
        listener: TcpListener,
        make: M,
        shutdown: impl Future<Output = ()> + Send,
    ) where
        M: Fn(SocketAddr) -> S + Send + Sync + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let graceful = GracefulShutdown::new();
        let builder = builder();
        let name = self.name;
        let make = Arc::new(make);
        let tls = self.tls.clone();
        accept_loop(
            || listener.accept(),
            |stream, peer| {
                // Subscribed now, so a shutdown that comes during the handshake still
                // reaches the connection (and is waited for).
                let watcher = graceful.watcher();
                let (builder, make, tls) = (builder.clone(), make.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = make(peer);
                    let served = match tls {
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            watcher.watch(conn).await
                        }
                        Some(acceptor) => {
                            let tls = match tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(tls)) => tls,
                                Ok(Err(e)) => {
                                    return tracing::debug!(server = name, %peer, error = %e, "TLS handshake failed");
                                }
                                Err(_) => {
                                    return tracing::debug!(server = name, %peer, "TLS handshake timed out");
                                }
                            };
                            let conn = builder.serve_connection(TokioIo::new(tls), service);
                            watcher.watch(conn).await
                        }
                    };
                    if let Err(e) = served {
                        tracing::debug!(server = name, %peer, error = %e, "connection ended with an error");
                    }
                });
            },
            shutdown,
            name,
        )
        .await;
        drop(listener);
        let open = graceful.count();
        if tokio::time::timeout(self.grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                server = name,
                grace_s = self.grace.as_secs(),
                "connections still open after the shutdown grace; leaving them"
            );
        } else if open > 0 {
            tracing::debug!(server = name, open, "open connections finished");
        }
    }
}

/// Accepts until `shutdown`, handing each connection to `on_conn`. A failed accept (out
/// of file descriptors, say) is followed by a pause, doubling from
/// [`FIRST_ACCEPT_PAUSE`] to [`MAX_ACCEPT_PAUSE`] while failures last, so a lasting
/// error never spins a core; one accept that succeeds starts the pauses over.
async fn accept_loop<T, A, AF>(
    mut accept: A,
    mut on_conn: impl FnMut(T, SocketAddr),
    shutdown: impl Future<Output = ()>,
    name: &str,
) where
    A: FnMut() -> AF,
    AF: Future<Output = std::io::Result<(T, SocketAddr)>>,
{
    tokio::pin!(shutdown);
    let mut pause = FIRST_ACCEPT_PAUSE;
    loop {
        tokio::select! {
            accepted = accept() => match accepted {
                Ok((conn, peer)) => {
                    pause = FIRST_ACCEPT_PAUSE;
                    on_conn(conn, peer);
                }
                Err(e) => {
                    tracing::warn!(server = name, error = %e, retry_in_ms = pause.as_millis(), "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = &mut shutdown => return,
                    }
                    pause = (pause * 2).min(MAX_ACCEPT_PAUSE);
                }
            },
            () = &mut shutdown => return,
        }
    }
}

#[cfg(test)]
#[path = "serving_tests.rs"]
mod tests;

//! The one mock-server core every provider mock runs on.
//!
//! [`Mock<P>`] binds a loopback port, serves HTTP/1.1 and HTTP/2 with hyper, records
//! every request ([`Recorded`]) and answers each from a script of [`Reply`]s: queued
//! ones first-in first-out ([`Mock::enqueue`]), then the default ([`Mock::set_default`],
//! initially [`Reply::ok`]). A [`Provider`] is what makes it a particular provider: it
//! may answer before the script is consulted (unknown paths, failed authentication,
//! requests the provider refuses) and it renders replies in its exact wire format,
//! including the behaviours its `mock-*` model names ask for.
//!
//! Dropping a mock stops it and cuts every connection, including requests held by
//! [`Reply::hang`]. With [`MockConfig::tls`] it serves HTTPS (HTTP/2 or HTTP/1.1 by
//! ALPN), as a self-hosted server behind a private CA does.

mod codec;
mod plain;
mod reply;
mod respond;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub(crate) use codec::{
    first_stop, first_words, header_pair, input_from_schema, max_tokens_for, status_code, to_bytes,
    two_cities, unit_vector, words,
};
pub use codec::{hex, percent_decode, uri_encode};
pub use plain::{MockHttp, Plain};
pub(crate) use reply::Kind;
pub use reply::{Failure, Reply, ToolCall};
pub(crate) use respond::Body;
pub use respond::Resolved;

/// How to run a mock. [`MockConfig::default`] is what every `start()` uses.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Keep every request for [`Mock::requests`]. Off for long-running servers under
    /// load, which would otherwise grow without bound.
    pub record_requests: bool,
    /// Added before the response headers of every answer.
    pub latency: Duration,
    /// Serve HTTPS with this config (e.g. [`crate::tls::TestCa::server_config`])
    /// instead of plain HTTP; [`Mock::base_url`] then starts with `https://`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            record_requests: true,
            latency: Duration::ZERO,
            tls: None,
        }
    }
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request method.
    pub method: Method,
    /// Path and query, e.g. `/v1/chat/completions?api-version=1`.
    pub path: String,
    /// The request headers, as received (with `host` added for HTTP/2, whose requests
    /// carry it in the URI: signatures cover it either way).
    pub headers: HeaderMap,
    /// The complete request body.
    pub body: Bytes,
}

impl Recorded {
    /// The body parsed as JSON, or `Value::Null` when it is not JSON (so a test's
    /// assertion on a field fails readably rather than panicking here).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The path without its query.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }

    /// The query string, empty when there is none.
    pub fn query(&self) -> &str {
        self.path.split_once('?').map_or("", |(_, q)| q)
    }

    /// A header as text, `None` when missing or not visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What makes the core a particular provider's mock.
pub trait Provider: Send + Sync + 'static {
    /// Appended to the mock's origin for [`Mock::base_url`] (`/v1` for OpenAI).
    const BASE_PATH: &'static str = "";

    /// The content type of the provider's JSON bodies.
    const JSON: &'static str = "application/json";

    /// Serializes a scripted JSON body as the provider does (compact by default).
    fn json_body(&self, body: &Value) -> Bytes {
        to_bytes(body)
    }

    /// An answer given before the script is consulted, so refused requests never use up
    /// a queued reply: unknown paths, failed authentication, invalid bodies.
    fn screen(&self, _req: &Recorded) -> Option<Resolved> {
        None
    }

    /// Renders `reply` for `req` in the provider's wire format. JSON, errors, raw
    /// replies and hangs never get here.
    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved;

    /// The provider's error response for a scripted failure.
    fn error(&self, req: &Recorded, failure: &Failure) -> Resolved;

    /// Headers the provider adds to every response, e.g. a request id.
    fn stamp(&self) -> Vec<(http::HeaderName, HeaderValue)> {
        Vec::new()
    }
}

/// A running mock speaking `P`'s wire format.
pub struct Mock<P: Provider> {
    addr: SocketAddr,
    shared: Arc<Shared<P>>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

struct Shared<P> {
    provider: P,
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    count: AtomicUsize,
    config: MockConfig,
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
}

/// A poisoned lock only means a test thread panicked while holding it; what it guards
/// stays consistent, so keep serving.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<P: Provider> Mock<P> {
    /// Starts `provider` as `config` says.
    pub async fn serve(provider: P, config: MockConfig) -> io::Result<Mock<P>> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            provider,
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::ok(),
            }),
            requests: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            config,
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&shared), shutdown_rx));
        Ok(Mock {
            addr,
            shared,
            shutdown,
            task,
        })
    }

    /// Starts `provider` on an ephemeral port of 127.0.0.1, recording requests.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start_with(provider: P) -> Mock<P> {
        match Mock::serve(provider, MockConfig::default()).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` when serving TLS) followed by the
    /// provider's base path: what its clients take as base URL.
    pub fn base_url(&self) -> String {
        let scheme = match self.shared.config.tls {
            Some(_) => "https",
            None => "http",
        };
        format!("{scheme}://{}{}", self.addr, P::BASE_PATH)
    }

    /// Queues `reply` for a future request the provider does not refuse; queued
    /// replies are taken first-in first-out.
    pub fn enqueue(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// Drops the queued replies no request took (after a scripted exchange that failed
    /// part-way, so the next one starts clean); returns how many there were.
    pub fn clear_queue(&self) -> usize {
        let mut script = lock(&self.shared.script);
        let left = script.queue.len();
        script.queue.clear();
        left
    }

    /// What requests get once the queue is empty; initially [`Reply::ok`].
    pub fn set_default(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Every request received so far, in arrival order, refused ones included (empty
    /// when recording is off).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The JSON bodies of [`Mock::requests`].
    pub fn bodies(&self) -> Vec<Value> {
        self.requests().iter().map(Recorded::json).collect()
    }

    /// How many requests have been received (counted even when recording is off).
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// The provider, for its own settings.
    pub(crate) fn provider(&self) -> &P {
        &self.shared.provider
    }
}

impl<P: Provider + Default> Mock<P> {
    /// Starts the provider's mock with its defaults (the documented keys and
    /// credentials) on an ephemeral port of 127.0.0.1, recording requests.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start() -> Mock<P> {
        Mock::start_with(P::default()).await
    }
}

impl<P: Provider> Drop for Mock<P> {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection
        // task; the signal covers HTTP/2 streams, which hyper spawns outside that set.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

async fn accept<P: Provider>(
    listener: TcpListener,
    shared: Arc<Shared<P>>,
    shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let tls = shared
        .config
        .tls
        .clone()
        .map(tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Without it, small stream frames wait on Nagle for the previous
                    // one's ACK and chunk timing is lost.
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let shared = Arc::clone(&shared);
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            answer_unless_stopped(Arc::clone(&shared), shutdown.clone(), req)
                        });
                        // Clients hanging up, refusing our certificate, and our own cuts
                        // are part of the job.
                        let _ = match tls {
                            Some(acceptor) => match acceptor.accept(stream).await {
                                Ok(stream) => {
                                    builder.serve_connection(TokioIo::new(stream), service).await
                                }
                                Err(_) => return,
                            },
                            None => builder.serve_connection(TokioIo::new(stream), service).await,
                        };
                    });
                }
                // Typically EMFILE under load; pausing lets connections close instead
                // of spinning on the error.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer_unless_stopped<P: Provider>(
    shared: Arc<Shared<P>>,
    mut shutdown: watch::Receiver<bool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    tokio::select! {
        response = answer(&shared, req) => response,
        _ = shutdown.wait_for(|&stopped| stopped) => Err(io::Error::other("mock stopped")),
    }
}

async fn answer<P: Provider>(
    shared: &Shared<P>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let req = read(req).await?;
    shared.count.fetch_add(1, Ordering::SeqCst);
    if shared.config.record_requests {
        lock(&shared.requests).push(req.clone());
    }
    let stamp = shared.provider.stamp();
    let (reply, resolved) = match shared.provider.screen(&req) {
        Some(resolved) => (None, resolved),
        None => {
            let reply = {
                let mut script = lock(&shared.script);
                let next = script.queue.pop_front();
                next.unwrap_or_else(|| script.default.clone())
            };
            let resolved = match reply.kind() {
                // Dropping the mock ends this through `answer_unless_stopped`.
                Kind::Hang => return std::future::pending().await,
                Kind::Raw {
                    status,
                    content_type,
                    frames,
                } => Resolved::frames(content_type, frames.to_vec()).with_status(*status),
                Kind::Json(status, body) => {
                    Resolved::whole(*status, P::JSON, shared.provider.json_body(body))
                }
                Kind::Error(failure) => shared.provider.error(&req, failure),
                _ => shared.provider.render(&req, &reply),
            };
            (Some(reply), resolved)
        }
    };
    let delay = shared.config.latency
        + reply.as_ref().map_or(Duration::ZERO, Reply::delay)
        + resolved.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(respond::respond(reply.as_ref(), resolved, stamp))
}

/// Reads a whole request. A client that fails mid-body gets its connection closed, as
/// a real server would.
async fn read(req: Request<Incoming>) -> Result<Recorded, io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let mut headers = parts.headers;
    if !headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(http::header::HOST, value);
    }
    Ok(Recorded {
        method: parts.method,
        path,
        headers,
        body,
    })
}

//! A small generic mock HTTP server for provider mocks: records every request and
//! answers each from a queue of scripted [`MockResponse`]s, or, when the queue is empty,
//! from the provider's own handler. Responses can stream chunk by chunk, pause between
//! chunks, and cut the connection mid-body.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::openai::Recorded;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct MockResponse {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body frames, sent in order.
    pub chunks: Vec<Bytes>,
    /// Pause before each frame.
    pub chunk_delay: Duration,
    /// Abort the connection after this many frames.
    pub cut_after: Option<usize>,
    /// Never answer.
    pub hang: bool,
}

impl MockResponse {
    /// A whole JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> MockResponse {
        MockResponse::raw(
            status,
            "application/json",
            vec![Bytes::from(body.to_string())],
        )
    }

    /// A body of these frames with this content type.
    pub fn raw(status: u16, content_type: &str, chunks: Vec<Bytes>) -> MockResponse {
        let mut response = MockResponse {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: Vec::new(),
            chunks,
            chunk_delay: Duration::ZERO,
            cut_after: None,
            hang: false,
        };
        response = response.with_header("content-type", content_type);
        response
    }

    /// A request that is never answered.
    pub fn hang() -> MockResponse {
        MockResponse {
            hang: true,
            ..MockResponse::raw(200, "application/json", Vec::new())
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> MockResponse {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.retain(|(k, _)| k != n);
            self.headers.push((n, v));
        }
        self
    }

    /// Pauses before each frame.
    pub fn with_chunk_delay(mut self, delay: Duration) -> MockResponse {
        self.chunk_delay = delay;
        self
    }

    /// Cuts the connection after `n` frames.
    pub fn cut_after(mut self, n: usize) -> MockResponse {
        self.cut_after = Some(n);
        self
    }
}

/// Answers requests no script covers.
pub type Handler = Arc<dyn Fn(&Recorded) -> MockResponse + Send + Sync>;

struct Shared {
    queue: Mutex<VecDeque<MockResponse>>,
    requests: Mutex<Vec<Recorded>>,
    handler: Handler,
}

/// A running mock server; dropping it stops it.
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl MockServer {
    /// Starts on an ephemeral loopback port with `handler` as the default.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start(handler: Handler) -> MockServer {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("mock server: cannot bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("mock server: no address: {e}"),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            handler,
        });
        let task = tokio::spawn(accept(listener, shared.clone()));
        MockServer { addr, shared, task }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a response for the next request without one.
    pub fn enqueue(&self, response: MockResponse) {
        lock(&self.shared.queue).push_back(response);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests arrived.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let builder = builder.clone();
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| answer(shared.clone(), req));
                    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

async fn answer(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        headers: parts.headers,
        body,
    };
    lock(&shared.requests).push(recorded.clone());
    let scripted = lock(&shared.queue).pop_front();
    let response = scripted.unwrap_or_else(|| (shared.handler)(&recorded));
    if response.hang {
        std::future::pending::<()>().await;
    }
    let MockResponse {
        status,
        headers,
        chunks,
        chunk_delay,
        cut_after,
        ..
    } = response;
    let frames = futures_util::stream::unfold(
        (chunks.into_iter(), 0usize),
        move |(mut it, sent)| async move {
            if cut_after == Some(sent) {
                // Let hyper flush what was sent before the cut.
                tokio::task::yield_now().await;
                return Some((
                    Err(std::io::Error::other("mock: connection cut")),
                    (it, sent + 1),
                ));
            }
            let chunk = it.next()?;
            if !chunk_delay.is_zero() {
                tokio::time::sleep(chunk_delay).await;
            }
            Some((Ok(Frame::data(chunk)), (it, sent + 1)))
        },
    );
    let mut out = Response::new(StreamBody::new(frames).boxed());
    *out.status_mut() = status;
    for (name, value) in headers {
        out.headers_mut().insert(name, value);
    }
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

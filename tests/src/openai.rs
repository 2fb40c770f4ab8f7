//! A scriptable, in-process mock of OpenAI's HTTP API.
//!
//! [`MockOpenAi::start`] binds an ephemeral port on 127.0.0.1 and answers
//! OpenAI's endpoints in OpenAI's exact wire format. Tests script it two ways:
//!
//! * in process, by queueing [`Reply`]s ([`MockOpenAi::enqueue`]) or changing
//!   the fallback ([`MockOpenAi::set_default`]), then inspecting what arrived
//!   ([`MockOpenAi::requests`]);
//! * by model name, for callers that cannot reach the mock's API (the
//!   `llmesh-mock` binary, benchmarks): with [`Reply::ok`] in effect, models
//!   `mock-error-429`, `mock-error-500`, `mock-error-503`,
//!   `mock-context-length`, `mock-content-filter` and `mock-slow-<ms>` answer
//!   as their names say.

mod wire;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use wire::{EMBEDDING_DIM, Meta, Usage};

/// The body type every mock response uses.
type Body = UnsyncBoxBody<Bytes, io::Error>;

const JSON: &str = "application/json";
/// What OpenAI sends for streams; clients should match on the media type,
/// so the charset parameter is kept to catch exact-string comparisons.
const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// How to run a [`MockOpenAi`]. [`MockConfig::default`] is what
/// [`MockOpenAi::start`] uses.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Keep every request for [`MockOpenAi::requests`]. Off for long-running
    /// servers under load, which would otherwise grow without bound.
    pub record_requests: bool,
    /// Added before the response headers of every reply.
    pub latency: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            record_requests: true,
            latency: Duration::ZERO,
        }
    }
}

/// A running mock OpenAI server. Dropping it stops the server and cuts every
/// open connection, including requests held by [`Reply::hang`].
pub struct MockOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// The request method.
    pub method: Method,
    /// Path and query, e.g. `/v1/chat/completions?api-version=1`.
    pub path: String,
    /// The request headers, as received.
    pub headers: HeaderMap,
    /// The complete request body.
    pub body: Bytes,
}

impl Recorded {
    /// The body parsed as JSON, or `Value::Null` when it is not JSON (so a
    /// test's assertion on a field fails readably rather than panicking here).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What the mock answers to one request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reply(Arc<Spec>);

#[derive(Clone, Debug)]
struct Spec {
    kind: Kind,
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, HeaderValue)>,
    delay: Duration,
    chunk_delay: Duration,
    disconnect_after: Option<usize>,
}

#[derive(Clone, Debug)]
enum Kind {
    /// Whatever a healthy provider answers to this request.
    Ok,
    Json(StatusCode, Bytes),
    Stream(Arc<[String]>),
    Hang,
}

impl Reply {
    fn new(kind: Kind) -> Reply {
        Reply(Arc::new(Spec {
            kind,
            status: None,
            headers: Vec::new(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            disconnect_after: None,
        }))
    }

    fn map(mut self, f: impl FnOnce(&mut Spec)) -> Reply {
        f(Arc::make_mut(&mut self.0));
        self
    }

    /// The success body fitting the request: a `chat.completion` for
    /// `/chat/completions` (content `mock reply to: <last user message>`,
    /// the request's model echoed, usage counting one token per word), or its
    /// `chat.completion.chunk` stream when the request has `"stream": true`;
    /// a `text_completion` (or its stream) for `/completions`; an embeddings
    /// `list` for `/embeddings`; the model list for `/models`. Unknown paths
    /// get OpenAI's 404, unparseable JSON bodies OpenAI's 400.
    ///
    /// This is also where the `mock-*` model names are honoured, whether the
    /// reply was queued or is the default.
    pub fn ok() -> Reply {
        Reply::new(Kind::Ok)
    }

    /// `body` as JSON with `status`.
    pub fn json(status: u16, body: Value) -> Reply {
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        Reply::new(Kind::Json(status_code(status), body))
    }

    /// OpenAI's error body, `{"error":{"message","type","param","code"}}`,
    /// with `param` null, and `status`.
    pub fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
        let body = wire::error(message, Some(kind), None, code);
        Reply::new(Kind::Json(status_code(status), body))
    }

    /// A streamed reply (`text/event-stream`): for a chat request, a
    /// `chat.completion.chunk` announcing the role, one content delta per
    /// piece, one with `finish_reason: "stop"`, then the usage chunk (empty
    /// `choices`) only if the request set `stream_options.include_usage`, then
    /// `data: [DONE]`. Sent to `/completions`, the chunks are legacy
    /// `text_completion` ones instead. Each event is its own body frame.
    pub fn stream(pieces: &[&str]) -> Reply {
        let pieces: Arc<[String]> = pieces.iter().map(|p| (*p).to_owned()).collect();
        Reply::new(Kind::Stream(pieces))
    }

    /// 200 with a JSON content type and a truncated JSON body.
    pub fn malformed() -> Reply {
        Reply::new(Kind::Json(
            StatusCode::OK,
            Bytes::from_static(br#"{"id": "chatcmpl-"#),
        ))
    }

    /// Reads the request and never answers, until the server is dropped.
    pub fn hang() -> Reply {
        Reply::new(Kind::Hang)
    }

    /// Overrides the status code (also of [`Reply::ok`] and
    /// [`Reply::stream`]).
    pub fn with_status(self, status: u16) -> Reply {
        let status = status_code(status);
        self.map(|s| s.status = Some(status))
    }

    /// Adds a response header; the first one of a name replaces the mock's own
    /// (e.g. `content-type`), later ones are appended.
    ///
    /// # Panics
    ///
    /// If `name` or `value` is not a valid header name or value: a broken
    /// test script should fail where it is written.
    pub fn with_header(self, name: &str, value: &str) -> Reply {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
        let value = HeaderValue::try_from(value)
            .unwrap_or_else(|e| panic!("invalid header value {value:?}: {e}"));
        self.map(|s| s.headers.push((name, value)))
    }

    /// Waits `d` before sending the response headers.
    pub fn with_delay(self, d: Duration) -> Reply {
        self.map(|s| s.delay = d)
    }

    /// Waits `d` before each body frame (each SSE event of a stream; the
    /// whole body of a non-streamed reply).
    pub fn with_chunk_delay(self, d: Duration) -> Reply {
        self.map(|s| s.chunk_delay = d)
    }

    /// Sends the headers and the first `chunks` body frames, then fails the
    /// body so the connection is cut mid-response: no `[DONE]`, no clean end
    /// of the chunked encoding. `0` cuts right after the headers; for a
    /// non-streamed reply the body is the one frame.
    pub fn disconnect_after(self, chunks: usize) -> Reply {
        self.map(|s| s.disconnect_after = Some(chunks))
    }
}

/// Status codes out of range are a broken test script; 500 would be a
/// confusing stand-in, so fail loudly.
fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or_else(|_| panic!("invalid HTTP status {status}"))
}

struct Shared {
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    record: bool,
    count: AtomicUsize,
    latency: Duration,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
}

/// A poisoned lock only means a test thread panicked while holding it; the
/// queue and the log stay consistent, so keep serving.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn next_reply(&self) -> Reply {
        let mut script = lock(&self.script);
        match script.queue.pop_front() {
            Some(reply) => reply,
            None => script.default.clone(),
        }
    }
}

impl MockOpenAi {
    /// Starts a mock on an ephemeral port of 127.0.0.1, recording requests.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start() -> MockOpenAi {
        match MockOpenAi::start_with(MockConfig::default()).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock OpenAI: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Starts a mock as `config` says.
    pub async fn start_with(config: MockConfig) -> io::Result<MockOpenAi> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::ok(),
            }),
            requests: Mutex::new(Vec::new()),
            record: config.record_requests,
            count: AtomicUsize::new(0),
            latency: config.latency,
            next_id: AtomicU64::new(1),
            shutdown: shutdown_rx,
        });
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(MockOpenAi {
            addr,
            shared,
            shutdown,
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`, what OpenAI clients take as base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `base_url()` followed by `path`, e.g. `url("/chat/completions")`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/v1{path}", self.addr)
    }

    /// Queues `reply` for a future request: requests (to any path) take
    /// queued replies first-in first-out.
    pub fn enqueue(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// What requests get once the queue is empty; initially [`Reply::ok`].
    pub fn set_default(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Every request received so far, in arrival order (empty when recording
    /// is off).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests have been received (counted even when recording is
    /// off).
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task; the signal covers HTTP/2 streams, which hyper
        // spawns outside that set.
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Without it, small SSE events wait on Nagle for the
                    // previous one's ACK and chunk timing is lost.
                    let _ = stream.set_nodelay(true);
                    let builder = builder.clone();
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            answer_unless_shut_down(Arc::clone(&shared), req)
                        });
                        // Connection errors (clients hanging up, our own
                        // disconnect_after) are part of the job, not failures.
                        let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                // Typically EMFILE under load; pausing lets connections close
                // instead of spinning on the error.
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn answer_unless_shut_down(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, io::Error> {
    let mut shutdown = shared.shutdown.clone();
    tokio::select! {
        response = answer(&shared, req) => response,
        _ = shutdown.wait_for(|&stopped| stopped) => Err(io::Error::other("mock OpenAI stopped")),
    }
}

async fn answer(shared: &Shared, req: Request<Incoming>) -> Result<Response<Body>, io::Error> {
    let (parts, body) = req.into_parts();
    // A client that fails mid-body gets its connection closed, as a real
    // server would.
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    shared.count.fetch_add(1, Ordering::SeqCst);
    let path = parts.uri.path();
    if shared.record {
        let path_and_query = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
        lock(&shared.requests).push(Recorded {
            method: parts.method.clone(),
            path: path_and_query.to_owned(),
            headers: parts.headers,
            body: body.clone(),
        });
    }
    let reply = shared.next_reply();
    let spec = &*reply.0;
    let Some(resolved) = resolve(shared, spec, &parts.method, path, &body) else {
        // Dropping the server ends this via `answer_unless_shut_down`.
        return std::future::pending().await;
    };
    let delay = shared.latency + spec.delay + resolved.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(respond(spec, resolved))
}

/// A reply worked out for one request, before any header delay.
struct Resolved {
    status: StatusCode,
    content_type: &'static str,
    headers: &'static [(HeaderName, &'static str)],
    body: Payload,
    /// Extra wait before the headers (`mock-slow-<ms>`).
    delay: Duration,
}

enum Payload {
    Whole(Bytes),
    Events(Vec<Bytes>),
}

impl Resolved {
    fn json(status: StatusCode, body: Bytes) -> Resolved {
        Resolved {
            status,
            content_type: JSON,
            headers: &[],
            body: Payload::Whole(body),
            delay: Duration::ZERO,
        }
    }

    fn events(events: Vec<Bytes>) -> Resolved {
        Resolved {
            status: StatusCode::OK,
            content_type: EVENT_STREAM,
            headers: &[],
            body: Payload::Events(events),
            delay: Duration::ZERO,
        }
    }

    fn error(
        status: StatusCode,
        message: &str,
        kind: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Resolved {
        Resolved::json(status, wire::error(message, Some(kind), param, code))
    }
}

/// `None` means "never answer".
fn resolve(
    shared: &Shared,
    spec: &Spec,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Option<Resolved> {
    let route = Route::of(method, path);
    match &spec.kind {
        Kind::Hang => None,
        Kind::Json(status, body) => Some(Resolved::json(*status, body.clone())),
        Kind::Stream(pieces) => {
            // Scripted streams answer whatever was sent, so a body that is
            // not a completion request just means defaults.
            let req = ApiRequest::parse(body).unwrap_or_default();
            let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let completion = pieces.iter().map(|p| words(p)).sum();
            Some(Resolved::events(stream_events(
                shared, route, &req, path, &pieces, completion,
            )))
        }
        Kind::Ok => Some(healthy(shared, route, method, path, body)),
    }
}

/// The endpoints the mock knows. Suffix matching lets Azure-style paths
/// (`/openai/deployments/{name}/chat/completions`) work too.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route<'a> {
    Chat,
    Completions,
    Embeddings,
    Models,
    Model(&'a str),
    Unknown,
}

impl<'a> Route<'a> {
    fn of(method: &Method, path: &'a str) -> Route<'a> {
        let post = method == Method::POST;
        let get = method == Method::GET;
        if post && path.ends_with("/chat/completions") {
            Route::Chat
        } else if post && path.ends_with("/completions") {
            Route::Completions
        } else if post && path.ends_with("/embeddings") {
            Route::Embeddings
        } else if get && (path == "/v1/models" || path == "/models") {
            Route::Models
        } else if let Some(id) = path
            .strip_prefix("/v1/models/")
            .filter(|id| get && !id.is_empty())
        {
            Route::Model(id)
        } else {
            Route::Unknown
        }
    }
}

/// The parts of a completion or embeddings request the mock looks at.
#[derive(Deserialize, Default)]
struct ApiRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    encoding_format: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Value>,
}

impl ApiRequest {
    fn parse(body: &[u8]) -> Option<ApiRequest> {
        serde_json::from_slice(body).ok()
    }

    fn streaming(&self) -> bool {
        self.stream == Some(true)
    }

    fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The model to echo: the body's, else an Azure deployment name from
    /// the path (Azure bodies need not name one), else a placeholder.
    fn model<'a>(&'a self, path: &'a str) -> &'a str {
        if let Some(model) = self.model.as_deref() {
            return model;
        }
        path.split_once("/deployments/")
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or("mock-model")
    }

    /// Text of the last user message; array content contributes its text
    /// parts.
    fn last_user_text(&self) -> String {
        self.messages
            .iter()
            .flatten()
            .rev()
            .find(|m| m.role.as_deref() == Some("user"))
            .and_then(|m| m.content.as_ref())
            .map(content_text)
            .unwrap_or_default()
    }

    /// Roughly one token per word of every message, never zero.
    fn chat_prompt_tokens(&self) -> u64 {
        let words: u64 = self
            .messages
            .iter()
            .flatten()
            .filter_map(|m| m.content.as_ref())
            .map(content_words)
            .sum();
        words.max(1)
    }

    /// The prompt of a legacy completion: the string, or the first of a list.
    fn prompt_text(&self) -> &str {
        match &self.prompt {
            Some(Value::String(s)) => s,
            Some(Value::Array(items)) => items.first().and_then(Value::as_str).unwrap_or(""),
            _ => "",
        }
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// `words(&content_text(content))` without building the string, since
/// every message of every request is counted.
fn content_words(content: &Value) -> u64 {
    match content {
        Value::String(s) => words(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(words)
            .sum(),
        _ => 0,
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// What a healthy provider (or a `mock-*` model) answers.
fn healthy(
    shared: &Shared,
    route: Route<'_>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Resolved {
    match route {
        Route::Unknown => {
            let message = format!(
                "Unknown request URL: {method} {path}. Please check the URL for typos, \
                 or see the docs at https://platform.openai.com/docs/api-reference/."
            );
            return Resolved::error(
                StatusCode::NOT_FOUND,
                &message,
                "invalid_request_error",
                None,
                Some("unknown_url"),
            );
        }
        Route::Models => return Resolved::json(StatusCode::OK, wire::models()),
        Route::Model(id) => return Resolved::json(StatusCode::OK, wire::model(id)),
        Route::Chat | Route::Completions | Route::Embeddings => {}
    }
    let Some(req) = ApiRequest::parse(body) else {
        return Resolved::error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
            None,
        );
    };
    let model = req.model(path);
    let mut delay = Duration::ZERO;
    match scripted_by_model(model, &req) {
        Some(ByModel::Answer(resolved)) => return resolved,
        Some(ByModel::Slow(ms)) => delay = ms,
        None => {}
    }
    let mut resolved = match route {
        Route::Chat => chat(shared, &req, path),
        Route::Completions => completion(shared, &req, path),
        _ => embeddings(&req, path),
    };
    resolved.delay = delay;
    resolved
}

enum ByModel {
    Answer(Resolved),
    Slow(Duration),
}

static RATE_LIMIT_HEADERS: [(HeaderName, &str); 4] = [
    (RETRY_AFTER, "1"),
    (HeaderName::from_static("x-ratelimit-limit-requests"), "500"),
    (
        HeaderName::from_static("x-ratelimit-remaining-requests"),
        "0",
    ),
    (HeaderName::from_static("x-ratelimit-reset-requests"), "1s"),
];

fn scripted_by_model(model: &str, req: &ApiRequest) -> Option<ByModel> {
    let answer = match model {
        "mock-error-429" => Resolved {
            headers: &RATE_LIMIT_HEADERS,
            ..Resolved::error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached for mock-error-429 in organization org-mock on requests per \
                 min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s. Visit \
                 https://platform.openai.com/account/rate-limits to learn more.",
                "requests",
                None,
                Some("rate_limit_exceeded"),
            )
        },
        "mock-error-500" => Resolved::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        "mock-error-503" => Resolved::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "That model is currently overloaded with other requests. You can retry your \
             request, or contact us through our help center at help.openai.com if the error \
             persists.",
            "server_error",
            None,
            None,
        ),
        "mock-context-length" => {
            // Always over the limit, by however long the prompt was.
            let limit = 128_000;
            let message = format!(
                "This model's maximum context length is {limit} tokens. However, your messages \
                 resulted in {} tokens. Please reduce the length of the messages.",
                limit + req.chat_prompt_tokens()
            );
            Resolved::error(
                StatusCode::BAD_REQUEST,
                &message,
                "invalid_request_error",
                Some("messages"),
                Some("context_length_exceeded"),
            )
        }
        "mock-content-filter" => {
            Resolved::json(StatusCode::BAD_REQUEST, wire::azure_content_filter())
        }
        _ => {
            let ms = model.strip_prefix("mock-slow-")?.parse().ok()?;
            return Some(ByModel::Slow(Duration::from_millis(ms)));
        }
    };
    Some(ByModel::Answer(answer))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn next_id(shared: &Shared, prefix: &str) -> String {
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}mock{n:020}")
}

/// Splits a reply into word-sized stream pieces that concatenate back to it.
fn pieces_of(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

fn chat(shared: &Shared, req: &ApiRequest, path: &str) -> Resolved {
    let content = format!("mock reply to: {}", req.last_user_text());
    if req.streaming() {
        let pieces = pieces_of(&content);
        let completion = words(&content);
        return Resolved::events(stream_events(
            shared,
            Route::Chat,
            req,
            path,
            &pieces,
            completion,
        ));
    }
    let id = next_id(shared, "chatcmpl-");
    let meta = Meta {
        id: &id,
        created: now(),
        model: req.model(path),
    };
    let usage = Usage::chat(req.chat_prompt_tokens(), words(&content));
    Resolved::json(
        StatusCode::OK,
        wire::chat_completion(&meta, &content, usage),
    )
}

fn completion(shared: &Shared, req: &ApiRequest, path: &str) -> Resolved {
    let text = format!("mock reply to: {}", req.prompt_text());
    if req.streaming() {
        let pieces = pieces_of(&text);
        return Resolved::events(stream_events(
            shared,
            Route::Completions,
            req,
            path,
            &pieces,
            words(&text),
        ));
    }
    let id = next_id(shared, "cmpl-");
    let meta = Meta {
        id: &id,
        created: now(),
        model: req.model(path),
    };
    let usage = Usage::legacy(words(req.prompt_text()).max(1), words(&text));
    Resolved::json(StatusCode::OK, wire::text_completion(&meta, &text, usage))
}

/// The SSE events for `pieces`, in the flavour the route calls for.
fn stream_events(
    shared: &Shared,
    route: Route<'_>,
    req: &ApiRequest,
    path: &str,
    pieces: &[&str],
    completion_tokens: u64,
) -> Vec<Bytes> {
    let model = req.model(path);
    let created = now();
    if route == Route::Completions {
        let id = next_id(shared, "cmpl-");
        let meta = Meta {
            id: &id,
            created,
            model,
        };
        let usage = req
            .include_usage()
            .then(|| Usage::legacy(words(req.prompt_text()).max(1), completion_tokens));
        wire::text_chunks(&meta, pieces, usage)
    } else {
        let id = next_id(shared, "chatcmpl-");
        let meta = Meta {
            id: &id,
            created,
            model,
        };
        let usage = req
            .include_usage()
            .then(|| Usage::chat(req.chat_prompt_tokens(), completion_tokens));
        wire::chat_chunks(&meta, pieces, usage)
    }
}

fn embeddings(req: &ApiRequest, path: &str) -> Resolved {
    // `input` is a string, a token array, or a list of either; one vector
    // per string or token array.
    let inputs: Vec<&Value> = match &req.input {
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            req.input.iter().collect()
        }
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let mut tokens = 0;
    let vectors: Vec<[f32; EMBEDDING_DIM]> = inputs
        .iter()
        .map(|input| {
            tokens += match input {
                Value::String(s) => words(s).max(1),
                Value::Array(ids) => ids.len() as u64,
                _ => 1,
            };
            embedding_of(input)
        })
        .collect();
    let base64 = req.encoding_format.as_deref() == Some("base64");
    Resolved::json(
        StatusCode::OK,
        wire::embeddings(req.model(path), &vectors, tokens, base64),
    )
}

/// A unit vector derived from the input, so equal inputs embed equally and
/// different ones (almost always) differently, as real embeddings do.
fn embedding_of(input: &Value) -> [f32; EMBEDDING_DIM] {
    // FNV-1a over the input's JSON, then xorshift for the components.
    let mut state = 0xcbf2_9ce4_8422_2325_u64;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            state = (state ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    };
    match input {
        Value::String(s) => feed(s.as_bytes()),
        other => feed(other.to_string().as_bytes()),
    }
    let mut vector = [0f32; EMBEDDING_DIM];
    for component in &mut vector {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Top 24 bits into [-1, 1): exactly representable in an f32.
        *component = ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0;
    }
    let norm = vector.iter().map(|c| c * c).sum::<f32>().sqrt();
    if norm > 0.0 {
        for component in &mut vector {
            *component /= norm;
        }
    }
    vector
}

fn respond(spec: &Spec, resolved: Resolved) -> Response<Body> {
    let status = spec.status.unwrap_or(resolved.status);
    let whole = spec.chunk_delay.is_zero() && spec.disconnect_after.is_none();
    let body = match resolved.body {
        Payload::Whole(bytes) if whole => Full::new(bytes)
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
        Payload::Whole(bytes) => drip(vec![bytes], spec),
        Payload::Events(events) => drip(events, spec),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let overridden = |name: &HeaderName| spec.headers.iter().any(|(n, _)| n == name);
    if !overridden(&CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(resolved.content_type),
        );
    }
    for (name, value) in resolved.headers {
        if !overridden(name) {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
    }
    for (name, value) in &spec.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}

/// A body that sends `frames` one per poll, waiting the chunk delay before
/// each, and fails after `disconnect_after` of them.
fn drip(frames: Vec<Bytes>, spec: &Spec) -> Body {
    struct Drip {
        frames: std::vec::IntoIter<Bytes>,
        sent: usize,
        delay: Duration,
        cut_after: Option<usize>,
        finished: bool,
    }
    let state = Drip {
        frames: frames.into_iter(),
        sent: 0,
        delay: spec.chunk_delay,
        cut_after: spec.disconnect_after,
        finished: false,
    };
    let cut = || io::Error::new(io::ErrorKind::ConnectionAborted, "mock: disconnect_after");
    let stream = futures_util::stream::unfold(state, move |mut d| async move {
        if d.finished {
            return None;
        }
        let due = d.cut_after.is_some_and(|n| d.sent >= n);
        let next = if due { None } else { d.frames.next() };
        let Some(bytes) = next else {
            // Out of frames: a clean end, unless a cut was asked for, which
            // happens even if it asked for more frames than there were.
            d.finished = true;
            d.cut_after?;
            // hyper buffers what it has not flushed and discards it when the
            // body fails; one pending poll makes it flush the headers and
            // the frames sent so far, so the client sees them before the cut.
            tokio::task::yield_now().await;
            return Some((Err(cut()), d));
        };
        if !d.delay.is_zero() {
            tokio::time::sleep(d.delay).await;
        }
        d.sent += 1;
        Some((Ok(Frame::data(bytes)), d))
    });
    StreamBody::new(stream).boxed_unsync()
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use serde_json::json;
    use std::time::Instant;

    fn client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn send(
        mock: &MockOpenAi,
        method: Method,
        path: &str,
        body: &[u8],
    ) -> Response<Incoming> {
        let req = Request::builder()
            .method(method)
            .uri(mock.url(path))
            .header(CONTENT_TYPE, JSON)
            .body(Full::new(Bytes::copy_from_slice(body)))
            .expect("request");
        client().request(req).await.expect("response")
    }

    /// Status, headers and whole body of a POST of `body`.
    async fn post(mock: &MockOpenAi, path: &str, body: Value) -> (StatusCode, HeaderMap, Bytes) {
        let response = send(mock, Method::POST, path, body.to_string().as_bytes()).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, body)
    }

    async fn post_json(
        mock: &MockOpenAi,
        path: &str,
        body: Value,
    ) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, body) = post(mock, path, body).await;
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        (status, headers, json)
    }

    /// The data lines of an SSE body, one per event.
    fn events(body: &[u8]) -> Vec<String> {
        std::str::from_utf8(body)
            .expect("utf-8")
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| e.strip_prefix("data: ").expect("data line").to_owned())
            .collect()
    }

    fn parsed(events: &[String]) -> Vec<Value> {
        events
            .iter()
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).expect("chunk json"))
            .collect()
    }

    fn chat_request(model: &str) -> Value {
        json!({
            "model": model,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hello there"}
            ]
        })
    }

    #[tokio::test]
    async fn ok_chat_completion_has_openais_shape() {
        let mock = MockOpenAi::start().await;
        let (status, headers, body) =
            post_json(&mock, "/chat/completions", chat_request("gpt-4o-mini")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], JSON);
        assert_eq!(body["object"], "chat.completion");
        assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
        assert_eq!(body["model"], "gpt-4o-mini");
        let choice = &body["choices"][0];
        assert_eq!(choice["index"], 0);
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(choice["message"]["content"], "mock reply to: hello there");
        assert!(choice["message"]["refusal"].is_null());
        assert_eq!(choice["finish_reason"], "stop");
        assert!(choice["logprobs"].is_null());
        let usage = &body["usage"];
        // "be brief" + "hello there" and "mock reply to: hello there".
        assert_eq!(usage["prompt_tokens"], 4);
        assert_eq!(usage["completion_tokens"], 5);
        assert_eq!(usage["total_tokens"], 9);
        assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    }

    #[tokio::test]
    async fn array_content_parts_are_read_as_text() {
        let mock = MockOpenAi::start().await;
        let request = json!({
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "parts work"}]}]
        });
        let (_, _, body) = post_json(&mock, "/chat/completions", request).await;
        assert_eq!(
            body["choices"][0]["message"]["content"],
            "mock reply to: parts work"
        );
    }

    #[tokio::test]
    async fn ok_stream_when_requested_concatenates_to_the_reply() {
        let mock = MockOpenAi::start().await;
        let mut request = chat_request("gpt-4o");
        request["stream"] = json!(true);
        let (status, headers, body) = post(&mock, "/chat/completions", request).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let events = events(&body);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks = parsed(&events);
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "mock reply to: hello there");
        let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id per stream");
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk")
        );
        assert!(chunks.iter().all(|c| c["model"] == "gpt-4o"));
    }

    #[tokio::test]
    async fn stream_events_arrive_in_order_one_frame_each_and_end_with_done() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(
            Reply::stream(&["Hel", "lo", "!"]).with_chunk_delay(Duration::from_millis(20)),
        );
        let response = send(&mock, Method::POST, "/v1/chat/completions", b"{}").await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.expect("frame").into_data().expect("data frame");
            frames.push(String::from_utf8(data.to_vec()).unwrap());
        }
        // The chunk delay keeps events from sharing a TCP read, so each
        // frame seen here is exactly one of the server's frames.
        assert_eq!(frames.len(), 6, "{frames:?}");
        assert!(
            frames
                .iter()
                .all(|f| f.starts_with("data: ") && f.ends_with("\n\n"))
        );
        let events = events(frames.concat().as_bytes());
        assert_eq!(events[5], "[DONE]");
        let chunks = parsed(&events);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
        let pieces: Vec<&str> = chunks[1..4]
            .iter()
            .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(pieces, ["Hel", "lo", "!"]);
        assert!(
            chunks[..4]
                .iter()
                .all(|c| c["choices"][0]["finish_reason"].is_null())
        );
        assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
    }

    #[tokio::test]
    async fn usage_chunk_only_when_requested() {
        let mock = MockOpenAi::start().await;
        mock.set_default(Reply::stream(&["a", "b"]));

        let plain = json!({"model": "m", "stream": true, "messages": []});
        let (_, _, body) = post(&mock, "/chat/completions", plain).await;
        let chunks = parsed(&events(&body));
        assert_eq!(chunks.len(), 4);
        assert!(
            chunks.iter().all(|c| c.get("usage").is_none()),
            "{chunks:?}"
        );

        let with_usage = json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "count me"}]
        });
        let (_, _, body) = post(&mock, "/chat/completions", with_usage).await;
        let events = events(&body);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let chunks = parsed(&events);
        assert_eq!(chunks.len(), 5);
        // Every chunk but the last says `usage: null`, as OpenAI documents.
        assert!(
            chunks[..4]
                .iter()
                .all(|c| c["usage"].is_null() && c.get("usage").is_some())
        );
        let last = &chunks[4];
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["prompt_tokens"], 2);
        assert_eq!(last["usage"]["completion_tokens"], 2);
        assert_eq!(last["usage"]["total_tokens"], 4);
    }

    #[tokio::test]
    async fn legacy_completions_stream_text_completion_chunks() {
        let mock = MockOpenAi::start().await;
        let request =
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "say hi", "stream": true});
        let (_, _, body) = post(&mock, "/completions", request).await;
        let chunks = parsed(&events(&body));
        assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
        let text: String = chunks
            .iter()
            .map(|c| c["choices"][0]["text"].as_str().unwrap())
            .collect();
        assert_eq!(text, "mock reply to: say hi");
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
    }

    #[tokio::test]
    async fn text_completion_embeddings_and_models() {
        let mock = MockOpenAi::start().await;
        let (status, _, body) = post_json(
            &mock,
            "/completions",
            json!({"model": "gpt-3.5-turbo-instruct", "prompt": "say hi"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["object"], "text_completion");
        assert_eq!(body["choices"][0]["text"], "mock reply to: say hi");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["total_tokens"], 7);

        let (_, _, one) = post_json(
            &mock,
            "/embeddings",
            json!({"model": "text-embedding-3-small", "input": "a b"}),
        )
        .await;
        assert_eq!(one["object"], "list");
        assert_eq!(one["model"], "text-embedding-3-small");
        assert_eq!(one["data"].as_array().unwrap().len(), 1);
        assert_eq!(one["data"][0]["object"], "embedding");
        assert_eq!(one["data"][0]["index"], 0);
        assert_eq!(one["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
        let vector = one["data"][0]["embedding"].as_array().unwrap();
        assert_eq!(vector.len(), EMBEDDING_DIM);

        let (_, _, many) = post_json(
            &mock,
            "/embeddings",
            json!({"model": "e", "input": ["a b", "c", [1, 2, 3]]}),
        )
        .await;
        let data = many["data"].as_array().unwrap();
        assert_eq!(data.len(), 3);
        assert_eq!(data[2]["index"], 2);
        assert_eq!(
            data[0]["embedding"], one["data"][0]["embedding"],
            "deterministic"
        );
        assert_ne!(data[0]["embedding"], data[1]["embedding"]);

        let (_, _, tokens) = post_json(
            &mock,
            "/embeddings",
            json!({"model": "e", "input": [1, 2, 3]}),
        )
        .await;
        assert_eq!(
            tokens["data"].as_array().unwrap().len(),
            1,
            "one token array"
        );

        let (_, _, b64) = post_json(
            &mock,
            "/embeddings",
            json!({"model": "e", "input": "x", "encoding_format": "base64"}),
        )
        .await;
        let encoded = b64["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(encoded.len(), (EMBEDDING_DIM * 4).div_ceil(3) * 4);

        let response = send(&mock, Method::GET, "/models", b"").await;
        assert_eq!(response.status(), StatusCode::OK);
        let list: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(list["object"], "list");
        assert!(
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["object"] == "model")
        );
        assert!(
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["id"] == "mock-error-429")
        );
    }

    #[tokio::test]
    async fn queued_replies_are_consumed_in_order_then_the_default() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(Reply::error(500, "first", "server_error", None));
        mock.enqueue(Reply::json(201, json!({"second": true})));
        let request = || chat_request("m");
        let (status, _, body) = post_json(&mock, "/chat/completions", request()).await;
        assert_eq!(
            (status, &body["error"]["message"]),
            (StatusCode::INTERNAL_SERVER_ERROR, &json!("first"))
        );
        let (status, _, body) = post_json(&mock, "/embeddings", request()).await;
        assert_eq!(
            (status, body),
            (StatusCode::CREATED, json!({"second": true}))
        );
        let (status, _, body) = post_json(&mock, "/chat/completions", request()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["object"], "chat.completion");

        mock.set_default(Reply::error(
            418,
            "teapot",
            "invalid_request_error",
            Some("tea"),
        ));
        for _ in 0..2 {
            let (status, _, body) = post_json(&mock, "/chat/completions", request()).await;
            assert_eq!(status, StatusCode::IM_A_TEAPOT);
            assert_eq!(body["error"]["code"], "tea");
        }
        assert_eq!(mock.request_count(), 5);
    }

    #[tokio::test]
    async fn disconnect_after_fails_the_body_after_n_events() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(Reply::stream(&["a", "b", "c"]).disconnect_after(2));
        let response = send(&mock, Method::POST, "/v1/chat/completions", b"{}").await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut received = Vec::new();
        let error = loop {
            match body.frame().await {
                Some(Ok(frame)) => received.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("body ended cleanly: {}", String::from_utf8_lossy(&received)),
            }
        };
        let events = events(&received);
        assert_eq!(events.len(), 2, "{events:?} then {error}");
        assert!(!events.iter().any(|e| e == "[DONE]"));
    }

    #[tokio::test]
    async fn disconnect_after_zero_cuts_a_json_reply_after_the_headers() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(Reply::ok().disconnect_after(0));
        let response = send(&mock, Method::POST, "/v1/chat/completions", b"{}").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn model_names_script_errors() {
        let mock = MockOpenAi::start().await;

        let (status, headers, body) =
            post_json(&mock, "/chat/completions", chat_request("mock-error-429")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[RETRY_AFTER], "1");
        assert_eq!(body["error"]["type"], "requests");
        assert_eq!(body["error"]["code"], "rate_limit_exceeded");
        assert!(body["error"]["param"].is_null());
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Rate limit reached")
        );

        for (model, status) in [
            ("mock-error-500", StatusCode::INTERNAL_SERVER_ERROR),
            ("mock-error-503", StatusCode::SERVICE_UNAVAILABLE),
        ] {
            let (got, _, body) = post_json(&mock, "/chat/completions", chat_request(model)).await;
            assert_eq!(got, status);
            assert_eq!(body["error"]["type"], "server_error");
            assert!(body["error"]["code"].is_null());
        }

        let (status, _, body) = post_json(
            &mock,
            "/chat/completions",
            chat_request("mock-context-length"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "context_length_exceeded");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "messages");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("This model's maximum context length is 128000 tokens.")
        );

        let (status, _, body) = post_json(
            &mock,
            "/chat/completions",
            chat_request("mock-content-filter"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "content_filter");
        assert_eq!(
            body["error"]["innererror"]["code"],
            "ResponsibleAIPolicyViolation"
        );

        // Streaming requests get the same errors, as JSON, not SSE.
        let mut streaming = chat_request("mock-error-503");
        streaming["stream"] = json!(true);
        let (status, headers, _) = post_json(&mock, "/chat/completions", streaming).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[CONTENT_TYPE], JSON);
    }

    #[tokio::test]
    async fn slow_models_and_delays_wait_before_answering() {
        let mock = MockOpenAi::start().await;
        let start = Instant::now();
        let (status, _, body) =
            post_json(&mock, "/chat/completions", chat_request("mock-slow-150")).await;
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["model"], "mock-slow-150");

        mock.enqueue(Reply::ok().with_delay(Duration::from_millis(100)));
        let start = Instant::now();
        let (status, _, _) = post(&mock, "/chat/completions", chat_request("m")).await;
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn error_shapes_for_scripted_unknown_and_unparseable() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(Reply::error(
            400,
            "bad",
            "invalid_request_error",
            Some("nope"),
        ));
        let (status, _, body) = post_json(&mock, "/chat/completions", json!({})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": "nope"}})
        );

        let (status, _, body) = post_json(&mock, "/nope", json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "unknown_url");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("POST /v1/nope")
        );

        let response = send(&mock, Method::POST, "/chat/completions", b"{not json").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn malformed_status_and_header_overrides() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(Reply::malformed());
        mock.enqueue(Reply::ok().with_status(202).with_header("x-extra", "1"));
        mock.enqueue(
            Reply::error(429, "slow down", "requests", Some("rate_limit_exceeded"))
                .with_header("retry-after", "7")
                .with_header("content-type", "application/problem+json"),
        );
        let (status, headers, body) = post(&mock, "/chat/completions", chat_request("m")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[CONTENT_TYPE], JSON);
        assert_eq!(&body[..], br#"{"id": "chatcmpl-"#);

        let (status, headers, body) =
            post_json(&mock, "/chat/completions", chat_request("m")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(headers["x-extra"], "1");
        assert_eq!(body["object"], "chat.completion");

        let (status, headers, _) = post(&mock, "/chat/completions", chat_request("m")).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[RETRY_AFTER], "7");
        assert_eq!(headers.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
    }

    #[tokio::test]
    async fn requests_are_recorded_in_order() {
        let mock = MockOpenAi::start().await;
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "{}/chat/completions?api-version=2024-10-21",
                mock.base_url()
            ))
            .header("authorization", "Bearer sk-test")
            .body(Full::new(Bytes::from(chat_request("first").to_string())))
            .unwrap();
        client().request(req).await.unwrap();
        send(&mock, Method::GET, "/models", b"").await;

        assert_eq!(mock.request_count(), 2);
        let recorded = mock.requests();
        assert_eq!(recorded.len(), 2);
        assert_eq!(recorded[0].method, Method::POST);
        assert_eq!(
            recorded[0].path,
            "/v1/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(recorded[0].headers["authorization"], "Bearer sk-test");
        assert_eq!(recorded[0].json()["model"], "first");
        assert_eq!(recorded[1].method, Method::GET);
        assert_eq!(recorded[1].path, "/v1/models");
        assert!(recorded[1].body.is_empty());
        assert!(recorded[1].json().is_null());
    }

    #[tokio::test]
    async fn hang_holds_the_request_until_the_server_is_dropped() {
        let mock = MockOpenAi::start().await;
        mock.enqueue(Reply::hang());
        let req = Request::builder()
            .method(Method::POST)
            .uri(mock.url("/chat/completions"))
            .body(Full::new(Bytes::from(chat_request("m").to_string())))
            .unwrap();
        let pending = tokio::spawn(client().request(req));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!pending.is_finished());
        assert_eq!(
            mock.request_count(),
            1,
            "the hung request was still read and recorded"
        );
        drop(mock);
        let outcome = tokio::time::timeout(Duration::from_secs(5), pending)
            .await
            .expect("dropping the server ends the request")
            .unwrap();
        assert!(outcome.is_err());
    }

    #[tokio::test]
    async fn azure_deployment_paths_echo_the_deployment() {
        let mock = MockOpenAi::start().await;
        let body = json!({"messages": [{"role": "user", "content": "hi"}]});
        let response = send(
            &mock,
            Method::POST,
            "/../openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
            body.to_string().as_bytes(),
        )
        .await;
        let json: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(json["model"], "my-gpt");
    }
}

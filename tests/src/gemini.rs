//! A scriptable, in-process mock of Google's Gemini API (AI Studio) and Vertex AI,
//! with the OAuth 2.0 token endpoint Vertex clients get their access tokens from.
//!
//! [`MockGemini::start`] binds an ephemeral port on 127.0.0.1 and serves, in Google's
//! exact wire format:
//!
//! * AI Studio: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//!   (`?alt=sse` gives SSE events, `data: {GenerateContentResponse}` framed with CRLF
//!   and no `[DONE]`; without it Google streams one JSON array), `:embedContent`,
//!   `:batchEmbedContents` — authenticated by `x-goog-api-key` (or `?key=`) equal to
//!   [`API_KEY`];
//! * Vertex AI: `POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:generateContent`,
//!   `:streamGenerateContent`, `:predict` (text embeddings), `:embedContent` —
//!   authenticated by `Authorization: Bearer` with a token this mock issued and that
//!   has not expired; the project must be [`PROJECT`];
//! * `POST /token`: the service-account JWT exchange, verifying the RS256 signature
//!   against the test key and the `iss`, `aud`, `scope`, `iat` and `exp` claims.
//!
//! Requests are checked as strictly as Google checks them (unknown fields, JSON-schema
//! keywords outside Gemini's subset, turn order, function call/response pairing,
//! base64 of inline data; see `validate`), so what passes here is what Google would
//! accept. [`MockGemini::set_strict`] turns that off.
//!
//! Tests script replies by queueing [`Reply`]s ([`MockGemini::enqueue`]) or by model
//! name, with [`Reply::ok`] in effect:
//!
//! | model | answer |
//! |---|---|
//! | anything else | `mock reply to: <last user text>` (images noted as `[mime N bytes]`), stop sequences and `maxOutputTokens` honoured (`MAX_TOKENS`), `candidateCount` candidates, JSON fitting `responseSchema` in JSON mode; mode `ANY` forces a function call |
//! | `mock-tool-call` / `mock-parallel-tools` | one / every declared function called (finish `STOP`: Gemini has no tool-call finish reason), arguments filled from the schema (`"mock-<field>"`, 1, 1.5, true); a turn of function responses is answered `mock saw tool results: name={...}` |
//! | `mock-two-cities` | the first declared function called twice, with `{"city":"Paris"}` and `{"city":"Rome"}` |
//! | `mock-max-tokens` | half the reply, finish `MAX_TOKENS`, whatever the limit |
//! | `mock-thinking` | 7 thinking tokens; a thought part when `thinkingConfig.includeThoughts` |
//! | `mock-cached` | half the prompt reported as `cachedContentTokenCount` |
//! | `mock-blocked` | `promptFeedback.blockReason: SAFETY`, no candidates |
//! | `mock-safety` / `mock-recitation` | finish `SAFETY` (no content, a blocked rating) / `RECITATION` |
//! | `mock-error-<code>` | Google's error for 400/401/403/404/429/500/503/504 (429 with `RetryInfo`) |
//! | `mock-context-length` | 400: input token count exceeds the maximum |
//! | `mock-malformed` | 200 with truncated JSON, or a stream whose first event is garbled |
//! | `mock-garbled-stream` | a stream with one sound chunk, then a garbled one |
//! | `mock-stream-cut` | the connection cut after two chunks (one frame for whole bodies) |
//! | `mock-stream-error` | one chunk, then `data: {"error": {...UNAVAILABLE}}` |
//! | `mock-slow-<ms>` | the normal answer after a wait |

mod auth;
mod behave;
mod embed;
mod handle;
mod oauth;
mod render;
mod server;
mod validate;
mod wire;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::openai::Recorded;
pub use behave::THOUGHT_TEXT;
pub use oauth::{
    CLIENT_EMAIL, PRIVATE_KEY_ID, PROJECT, SCOPE, TEST_PRIVATE_KEY_PEM, service_account_json,
};

use oauth::Issuer;
use server::lock;

/// The API key AI Studio paths accept.
pub const API_KEY: &str = "mock-gemini-api-key";

const JSON: &str = "application/json; charset=UTF-8";
const EVENT_STREAM: &str = "text/event-stream";

/// A running mock. Dropping it stops the server and cuts open connections.
pub struct MockGemini {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What the mock answers to one model request. Cheap to clone.
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
    Ok,
    Json(StatusCode, Bytes),
    Stream(Arc<[Value]>),
    Raw(Arc<[Bytes]>),
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

    /// What a healthy Gemini answers, `mock-*` model names included (see the module
    /// docs).
    pub fn ok() -> Reply {
        Reply::new(Kind::Ok)
    }

    /// `body` as pretty-printed JSON with `status`.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::new(Kind::Json(status_code(status), wire::pretty(&body)))
    }

    /// Google's error body `{"error": {"code", "message", "status"}}` with `status`.
    pub fn error(status: u16, message: &str) -> Reply {
        Reply::new(Kind::Json(
            status_code(status),
            wire::error(status, message, Vec::new()),
        ))
    }

    /// A stream of these `GenerateContentResponse` objects: SSE events for `alt=sse`,
    /// else one JSON array, each element its own body frame.
    pub fn stream(chunks: Vec<Value>) -> Reply {
        Reply::new(Kind::Stream(chunks.into()))
    }

    /// A `text/event-stream` body of exactly these frames, for broken streams.
    pub fn raw_stream(frames: &[&str]) -> Reply {
        let frames: Vec<Bytes> = frames
            .iter()
            .map(|f| Bytes::copy_from_slice(f.as_bytes()))
            .collect();
        Reply::new(Kind::Raw(frames.into()))
    }

    /// 200 with a JSON content type and a truncated JSON body.
    pub fn malformed() -> Reply {
        Reply::new(Kind::Json(
            StatusCode::OK,
            Bytes::from_static(b"{\n  \"candidates\": [\n    {\n      \"content\": {"),
        ))
    }

    /// Reads the request and never answers, until the mock is dropped.
    pub fn hang() -> Reply {
        Reply::new(Kind::Hang)
    }

    /// Overrides the status code.
    pub fn with_status(self, status: u16) -> Reply {
        let status = status_code(status);
        self.map(|s| s.status = Some(status))
    }

    /// Adds a response header; the first of a name replaces the mock's own.
    ///
    /// # Panics
    ///
    /// If `name` or `value` is not a valid header name or value.
    pub fn with_header(self, name: &str, value: &str) -> Reply {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
        let value = HeaderValue::try_from(value)
            .unwrap_or_else(|e| panic!("invalid header value {value:?}: {e}"));
        self.map(|s| s.headers.push((name, value)))
    }

    /// Waits `d` before the response headers.
    pub fn with_delay(self, d: Duration) -> Reply {
        self.map(|s| s.delay = d)
    }

    /// Waits `d` before each body frame.
    pub fn with_chunk_delay(self, d: Duration) -> Reply {
        self.map(|s| s.chunk_delay = d)
    }

    /// Sends the headers and `chunks` body frames, then cuts the connection.
    pub fn disconnect_after(self, chunks: usize) -> Reply {
        self.map(|s| s.disconnect_after = Some(chunks))
    }
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or_else(|_| panic!("invalid HTTP status {status}"))
}

struct Shared {
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    issuer: Issuer,
    strict: AtomicBool,
    token_url: String,
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
}

impl MockGemini {
    /// Starts a mock on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start() -> MockGemini {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap_or_else(|e| panic!("mock Gemini: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("mock Gemini: no local address: {e}"));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::ok(),
            }),
            requests: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            issuer: Issuer::new(),
            strict: AtomicBool::new(true),
            token_url: format!("http://{addr}/token"),
        });
        let handler_shared = Arc::clone(&shared);
        let handler = move |req| handle::answer(Arc::clone(&handler_shared), req);
        let task = tokio::spawn(server::serve(listener, shutdown_rx, handler));
        MockGemini {
            addr,
            shared,
            shutdown,
            task,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, standing in for the host of either API (what the
    /// sidecar takes as a deployment's base URL).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1beta`, standing in for
    /// `https://generativelanguage.googleapis.com/v1beta`.
    pub fn ai_studio_base(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    /// `http://127.0.0.1:PORT`, standing in for `https://{location}-aiplatform.googleapis.com`.
    pub fn vertex_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The token endpoint, `http://127.0.0.1:PORT/token`.
    pub fn token_url(&self) -> String {
        self.shared.token_url.clone()
    }

    /// A service-account key file whose `token_uri` is this mock's.
    pub fn service_account_json(&self) -> String {
        service_account_json(&self.shared.token_url)
    }

    /// Queues `reply` for a future model request (token requests never take one).
    pub fn enqueue(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// What model requests get once the queue is empty; initially [`Reply::ok`].
    pub fn set_default(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Whether requests are checked as Google checks them (on by default).
    pub fn set_strict(&self, strict: bool) {
        self.shared.strict.store(strict, Ordering::SeqCst);
    }

    /// Every request received so far, token requests included, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The requests to model paths (everything but `/token`).
    pub fn model_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path != "/token")
            .collect()
    }

    /// How many requests arrived, token requests included.
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// How long tokens issued from now on live (`expires_in`); 3599 s by default.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.issuer.set_lifetime(lifetime);
    }

    /// Makes every token request fail with this status and OAuth error body, or
    /// succeed again with `None`.
    pub fn fail_token_requests(&self, failure: Option<(u16, Value)>) {
        self.shared.issuer.set_failure(failure);
    }

    /// How many access tokens have been issued.
    pub fn tokens_issued(&self) -> usize {
        self.shared.issuer.issued()
    }

    /// Invalidates every token issued so far.
    pub fn revoke_tokens(&self) {
        self.shared.issuer.revoke_all();
    }
}

impl Drop for MockGemini {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

#[cfg(test)]
mod tests;

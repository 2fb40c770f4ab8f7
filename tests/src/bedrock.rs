//! A scriptable, in-process mock of Amazon Bedrock's runtime API
//! (`bedrock-runtime.{region}.amazonaws.com`) speaking Bedrock's exact formats:
//!
//! * `POST /model/{modelId}/converse`: Converse JSON;
//! * `POST /model/{modelId}/converse-stream`: ConverseStream as binary
//!   `application/vnd.amazon.eventstream` frames with real CRCs;
//! * `POST /model/{modelId}/invoke`: InvokeModel for the Titan and Cohere embedding
//!   models;
//! * errors as `{"message": ...}` with the exception named in `x-amzn-ErrorType`.
//!
//! Like AWS, it authenticates every request before anything else: a SigV4 signature
//! (service `bedrock`, the mock's region and credentials, at most five minutes of clock
//! skew, path segments encoded twice) recomputed with [`sigv4`], or a Bedrock API key as
//! `Authorization: Bearer`. A bad signature is a 403 `InvalidSignatureException` whose
//! message carries the canonical request the mock expected, as AWS's does.
//!
//! Scripting works as for the OpenAI mock: queue [`Reply`]s or set the default, and
//! inspect [`MockBedrock::requests`]. With [`Reply::ok`] in effect, model ids script
//! behaviour (see `converse` for the answers themselves):
//!
//! | model id contains | answer |
//! |---|---|
//! | `mock-tool-call` / `mock-parallel-tools` | a text block, then one / every tool called |
//! | `mock-guardrail` / `mock-content-filtered` | `guardrail_intervened` / `content_filtered` |
//! | `mock-cache` | usage with cache read and write tokens |
//! | `mock-exception-<Name>` | that exception (`mock-exception-ThrottlingException`) |
//! | `mock-context-length` | 400 ValidationException "Input is too long for requested model." |
//! | `mock-slow-<ms>` | waits before answering |
//! | `mock-malformed` | 200 with truncated JSON (Converse) |
//! | `mock-stream-exception-<member>` | two events, then an exception frame (`throttlingException`) |
//! | `mock-stream-error` | two events, then a `:message-type: error` frame |
//! | `mock-stream-bad-crc` / `mock-stream-bad-prelude` | the third frame's message / prelude CRC is wrong |
//! | `mock-stream-cut` | two events and half of the third, then the connection drops |
//! | `mock-stream-malformed` | the third event's payload is not JSON |
//! | `mock-stream-unknown` | an event type Bedrock may add later, after `messageStart` |

pub mod errors;
pub mod eventstream;
pub mod sigv4;

mod converse;
mod embed;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::http_mock::{
    Body, Server, drip, header_pair, lock, percent_decode, response, serve, status_code,
    uri_encode, whole,
};
use crate::openai::Recorded;
use errors::Exception;
use eventstream::Message;
use sigv4::{Credentials, Rejection};

/// The access key id the mock accepts by default.
pub const ACCESS_KEY_ID: &str = "AKIAMOCKBEDROCK00001";
/// The secret that goes with [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "mock/Bedrock+Secret0000000000000000000000";
/// The Bedrock API key (bearer token) the mock accepts by default.
pub const API_KEY: &str = "ABSKbW9jay1iZWRyb2NrLWFwaS1rZXk=";
/// The region the mock serves by default.
pub const REGION: &str = "us-east-1";

const JSON: &str = "application/json";
const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

/// How to run a [`MockBedrock`].
#[derive(Clone, Debug)]
pub struct BedrockConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Keep every request for [`MockBedrock::requests`].
    pub record_requests: bool,
    /// The region signatures must be scoped to.
    pub region: String,
    /// The only credentials whose signatures are accepted.
    pub credentials: Credentials,
    /// A Bedrock API key accepted as `Authorization: Bearer`, if any.
    pub api_key: Option<String>,
}

impl Default for BedrockConfig {
    fn default() -> Self {
        BedrockConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            record_requests: true,
            region: REGION.into(),
            credentials: Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
            api_key: Some(API_KEY.into()),
        }
    }
}

/// A running mock Bedrock. Dropping it stops the server and cuts every connection.
pub struct MockBedrock {
    server: Server,
    shared: Arc<Shared>,
}

/// What the mock answers to one (authenticated) request. Cheap to clone.
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
    rechunk: Option<usize>,
}

#[derive(Clone, Debug)]
enum Kind {
    Ok,
    Json(StatusCode, Bytes),
    Exception(&'static str, String),
    Frames(Vec<Bytes>),
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
            rechunk: None,
        }))
    }

    fn map(mut self, f: impl FnOnce(&mut Spec)) -> Reply {
        f(Arc::make_mut(&mut self.0));
        self
    }

    /// What a healthy Bedrock answers, honouring the `mock-*` model ids.
    pub fn ok() -> Reply {
        Reply::new(Kind::Ok)
    }

    /// `body` as JSON with `status`.
    pub fn json(status: u16, body: Value) -> Reply {
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        Reply::new(Kind::Json(status_code(status), body))
    }

    /// The exception `name` (e.g. `ThrottlingException`) with its status, its
    /// `x-amzn-ErrorType` and `{"message": message}`.
    ///
    /// # Panics
    ///
    /// If the mock does not know `name` (see [`errors::EXCEPTIONS`]).
    pub fn exception(name: &str, message: &str) -> Reply {
        let known =
            errors::exception(name).unwrap_or_else(|| panic!("unknown Bedrock exception {name:?}"));
        Reply::new(Kind::Exception(known.name, message.to_owned()))
    }

    /// A 200 `application/vnd.amazon.eventstream` body of these messages, each its own
    /// body frame.
    pub fn events(messages: &[Message]) -> Reply {
        Reply::frames(messages.iter().map(Message::encode).collect())
    }

    /// A 200 eventstream body of these raw frames (see [`eventstream`] for ways to
    /// break them), each its own body frame.
    pub fn frames(frames: Vec<Bytes>) -> Reply {
        Reply::new(Kind::Frames(frames))
    }

    /// 200 with a JSON content type and a truncated JSON body.
    pub fn malformed() -> Reply {
        Reply::new(Kind::Json(
            StatusCode::OK,
            Bytes::from_static(br#"{"output": {"message": {"role": "assis"#),
        ))
    }

    /// Reads the request and never answers, until the server is dropped.
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
        let pair = header_pair(name, value);
        self.map(|s| s.headers.push(pair))
    }

    /// Waits `d` before sending the response headers.
    pub fn with_delay(self, d: Duration) -> Reply {
        self.map(|s| s.delay = d)
    }

    /// Waits `d` before each body frame.
    pub fn with_chunk_delay(self, d: Duration) -> Reply {
        self.map(|s| s.chunk_delay = d)
    }

    /// Sends the first `frames` body frames, then cuts the connection.
    pub fn disconnect_after(self, frames: usize) -> Reply {
        self.map(|s| s.disconnect_after = Some(frames))
    }

    /// Re-cuts the body into frames of `size` bytes regardless of message boundaries,
    /// as TCP may deliver them, so decoders must reassemble.
    pub fn with_rechunk(self, size: usize) -> Reply {
        self.map(|s| s.rechunk = Some(size.max(1)))
    }
}

struct Shared {
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    count: AtomicUsize,
    next_id: AtomicU64,
    config: BedrockConfig,
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
}

impl Shared {
    fn next_reply(&self) -> Reply {
        let mut script = lock(&self.script);
        script
            .queue
            .pop_front()
            .unwrap_or_else(|| script.default.clone())
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

impl MockBedrock {
    /// Starts a mock on an ephemeral port of 127.0.0.1 with the default credentials.
    ///
    /// # Panics
    ///
    /// If no port can be bound, or outside a Tokio runtime.
    pub async fn start() -> MockBedrock {
        match MockBedrock::start_with(BedrockConfig::default()).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock Bedrock: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Starts a mock as `config` says.
    pub async fn start_with(config: BedrockConfig) -> io::Result<MockBedrock> {
        let listen = config.listen;
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::ok(),
            }),
            requests: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            config,
        });
        let handler_shared = Arc::clone(&shared);
        let server = serve(listen, move |req| {
            let shared = Arc::clone(&handler_shared);
            async move { answer(&shared, req).await }
        })
        .await?;
        Ok(MockBedrock { server, shared })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`, what stands in for
    /// `https://bedrock-runtime.{region}.amazonaws.com`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// The URL of `operation` (`converse`, `converse-stream`, `invoke`) for `model_id`,
    /// with the id percent-encoded as a path segment.
    pub fn url(&self, model_id: &str, operation: &str) -> String {
        format!(
            "{}/model/{}/{operation}",
            self.base_url(),
            uri_encode(model_id)
        )
    }

    /// The region signatures must name.
    pub fn region(&self) -> &str {
        &self.shared.config.region
    }

    /// The credentials the mock accepts.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.config.credentials
    }

    /// Queues `reply` for a future authenticated request.
    pub fn enqueue(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// What requests get once the queue is empty; initially [`Reply::ok`].
    pub fn set_default(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Every request received so far, in arrival order, refused ones included.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests have been received.
    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }
}

/// The operations under `/model/{modelId}/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
}

fn route(method: &Method, path: &str) -> Option<(String, Operation)> {
    if method != Method::POST {
        return None;
    }
    let path = path.split('?').next().unwrap_or(path);
    let rest = path.strip_prefix("/model/")?;
    let (id, op) = rest.split_once('/')?;
    let op = match op {
        "converse" => Operation::Converse,
        "converse-stream" => Operation::ConverseStream,
        "invoke" => Operation::Invoke,
        _ => return None,
    };
    Some((percent_decode(id)?, op))
}

async fn answer(shared: &Shared, req: Recorded) -> Response<Body> {
    shared.count.fetch_add(1, Ordering::SeqCst);
    if shared.config.record_requests {
        lock(&shared.requests).push(req.clone());
    }
    let request_id = format!("{:08x}-mock-4bed-8roc-{:012x}", shared.id(), shared.id());
    if let Err((exception, message)) = authenticate(shared, &req) {
        return error(exception, &message, "", &request_id);
    }
    let reply = shared.next_reply();
    let spec = &*reply.0;
    let resolved = match &spec.kind {
        Kind::Hang => return std::future::pending().await,
        Kind::Json(status, body) => Resolved::whole(*status, JSON, body.clone()),
        Kind::Exception(name, message) => {
            let model = route(&req.method, &req.path).map(|(m, _)| m);
            Resolved::exception(name, message, model.as_deref().unwrap_or(""))
        }
        Kind::Frames(frames) => Resolved {
            status: StatusCode::OK,
            content_type: EVENTSTREAM,
            headers: Vec::new(),
            frames: frames.clone(),
            whole: false,
            cut_after: None,
            delay: Duration::ZERO,
        },
        Kind::Ok => healthy(shared, &req),
    };
    let delay = spec.delay + resolved.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    respond(spec, resolved, &request_id)
}

fn authenticate(shared: &Shared, req: &Recorded) -> Result<(), (Exception, String)> {
    let fail = |name: &str, message: String| {
        let e = errors::exception(name).unwrap_or(errors::EXCEPTIONS[0]);
        Err((e, message))
    };
    let auth = req
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
        return match &shared.config.api_key {
            Some(key) if key == token => Ok(()),
            _ => fail(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ),
        };
    }
    let config = &shared.config;
    match sigv4::verify(
        req,
        &config.credentials,
        &config.region,
        "bedrock",
        SystemTime::now(),
    ) {
        Ok(()) => Ok(()),
        Err(Rejection::Missing) => fail(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token".into(),
        ),
        Err(Rejection::Incomplete(why)) => fail("IncompleteSignatureException", why),
        Err(Rejection::UnknownAccessKey | Rejection::BadSessionToken) => fail(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.".into(),
        ),
        Err(Rejection::Scope(why)) => fail("InvalidSignatureException", why),
        Err(Rejection::ContentHash) => fail(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.".into(),
        ),
        Err(Rejection::Mismatch {
            canonical_request,
            string_to_sign,
        }) => fail(
            "InvalidSignatureException",
            format!(
                "The request signature we calculated does not match the signature you \
                 provided. Check your AWS Secret Access Key and signing method. Consult the \
                 service documentation for details.\n\nThe Canonical String for this request \
                 should have been\n'{canonical_request}'\n\nThe String-to-Sign should have \
                 been\n'{string_to_sign}'\n"
            ),
        ),
    }
}

/// A reply worked out for one request, before the script's modifiers.
struct Resolved {
    status: StatusCode,
    content_type: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
    frames: Vec<Bytes>,
    /// Sent as one body (JSON) rather than frame by frame.
    whole: bool,
    cut_after: Option<usize>,
    delay: Duration,
}

impl Resolved {
    fn whole(status: StatusCode, content_type: &'static str, body: Bytes) -> Resolved {
        Resolved {
            status,
            content_type,
            headers: Vec::new(),
            frames: vec![body],
            whole: true,
            cut_after: None,
            delay: Duration::ZERO,
        }
    }

    fn exception(name: &str, message: &str, model: &str) -> Resolved {
        let e = errors::exception(name).unwrap_or(errors::EXCEPTIONS[0]);
        let mut r = Resolved::whole(e.status_code(), JSON, e.body(message, model));
        r.headers.push(error_type_header(e));
        r
    }

    fn failure(f: converse::Failure, model: &str) -> Resolved {
        Resolved::exception(f.exception, &f.message, model)
    }
}

fn error_type_header(e: Exception) -> (HeaderName, HeaderValue) {
    let value = HeaderValue::from_str(&e.error_type())
        .unwrap_or_else(|_| HeaderValue::from_static("InternalServerException"));
    (HeaderName::from_static("x-amzn-errortype"), value)
}

fn error(e: Exception, message: &str, model: &str, request_id: &str) -> Response<Body> {
    let mut headers = vec![error_type_header(e)];
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.push((HeaderName::from_static("x-amzn-requestid"), id));
    }
    response(
        e.status_code(),
        JSON,
        &headers,
        whole(e.body(message, model)),
    )
}

fn healthy(shared: &Shared, req: &Recorded) -> Resolved {
    let Some((model, op)) = route(&req.method, &req.path) else {
        return Resolved::exception("UnknownOperationException", "Unknown operation.", "");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return Resolved::exception(
            "SerializationException",
            "Start of structure or map found where not expected.",
            &model,
        );
    };
    if op == Operation::Invoke {
        return match embed::invoke(&model, &body, shared.id()) {
            Ok(e) => {
                let mut r = Resolved::whole(StatusCode::OK, JSON, e.body);
                r.headers.push(header_pair(
                    "x-amzn-bedrock-input-token-count",
                    &e.input_tokens.to_string(),
                ));
                r.headers
                    .push(header_pair("x-amzn-bedrock-invocation-latency", "12"));
                r
            }
            Err(f) => Resolved::failure(f, &model),
        };
    }
    let mut delay = Duration::ZERO;
    if let Some(name) = model.split("mock-exception-").nth(1) {
        let message = errors::exception(name).map_or("", |e| e.message);
        return Resolved::exception(name, message, &model);
    }
    if model.contains("mock-context-length") {
        return Resolved::exception(
            "ValidationException",
            "Input is too long for requested model.",
            &model,
        );
    }
    if let Some(ms) = model
        .split("mock-slow-")
        .nth(1)
        .and_then(|ms| ms.parse().ok())
    {
        delay = Duration::from_millis(ms);
    }
    if op == Operation::Converse && model.contains("mock-malformed") {
        let Kind::Json(status, body) = &Reply::malformed().0.kind else {
            unreachable!("malformed() is JSON");
        };
        return Resolved::whole(*status, JSON, body.clone());
    }
    let mut next = || shared.id();
    let answer = match converse::answer(&model, &body, &mut next) {
        Ok(a) => a,
        Err(f) => return Resolved::failure(f, &model),
    };
    let latency = delay.as_millis() as u64 + 42;
    let mut resolved = if op == Operation::Converse {
        Resolved::whole(StatusCode::OK, JSON, converse::to_json(&answer, latency))
    } else {
        let events = converse::to_events(&answer, latency);
        let (frames, cut_after) = scripted_stream(&model, events);
        Resolved {
            status: StatusCode::OK,
            content_type: EVENTSTREAM,
            headers: Vec::new(),
            frames,
            whole: false,
            cut_after,
            delay: Duration::ZERO,
        }
    };
    resolved.delay = delay;
    resolved
}

/// Applies the `mock-stream-*` behaviours to a healthy stream.
fn scripted_stream(model: &str, events: Vec<Message>) -> (Vec<Bytes>, Option<usize>) {
    let mut frames: Vec<Bytes> = events.iter().map(Message::encode).collect();
    if let Some(member) = model.split("mock-stream-exception-").nth(1) {
        let message = errors::EXCEPTIONS
            .iter()
            .find(|e| e.stream_member() == member)
            .map_or("The stream failed.", |e| e.message);
        frames.truncate(2);
        frames.push(Message::exception(member, message).encode());
    } else if model.contains("mock-stream-error") {
        frames.truncate(2);
        frames.push(Message::error("InternalFailure", "An internal error occurred.").encode());
    } else if model.contains("mock-stream-bad-crc") {
        frames[2] = eventstream::with_bad_message_crc(&frames[2]);
    } else if model.contains("mock-stream-bad-prelude") {
        frames[2] = eventstream::with_bad_prelude_crc(&frames[2]);
    } else if model.contains("mock-stream-cut") {
        let half = frames[2].slice(..frames[2].len() / 2);
        frames.truncate(2);
        frames.push(half);
        return (frames, Some(3));
    } else if model.contains("mock-stream-malformed") {
        let mut bad = Message::event("contentBlockDelta", &json!({}));
        bad.payload = br#"{"contentBlockIndex":0,"delta":{"text":"#.to_vec();
        frames[2] = bad.encode();
    } else if model.contains("mock-stream-unknown") {
        let future = Message::event("someFutureEvent", &json!({"anything": [1, 2, 3]}));
        frames.insert(1, future.encode());
    }
    (frames, None)
}

fn respond(spec: &Spec, resolved: Resolved, request_id: &str) -> Response<Body> {
    let status = spec.status.unwrap_or(resolved.status);
    let mut frames = resolved.frames;
    if let Some(size) = spec.rechunk {
        let all: Vec<u8> = frames.concat();
        frames = all.chunks(size).map(Bytes::copy_from_slice).collect();
    }
    let cut_after = spec.disconnect_after.or(resolved.cut_after);
    let body = if resolved.whole && spec.chunk_delay.is_zero() && cut_after.is_none() {
        whole(frames.concat().into())
    } else {
        drip(frames, spec.chunk_delay, cut_after)
    };
    let mut headers = resolved.headers;
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(0, (HeaderName::from_static("x-amzn-requestid"), id));
    }
    headers.extend(spec.headers.iter().cloned());
    response(status, resolved.content_type, &headers, body)
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    fn client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    /// Signs (with `creds`) and sends a POST of `body` to `model`'s `op`.
    async fn call_as(
        mock: &MockBedrock,
        creds: &Credentials,
        model: &str,
        op: &str,
        body: &Value,
    ) -> Response<Incoming> {
        let url: http::Uri = mock.url(model, op).parse().unwrap();
        let mut rec = Recorded {
            method: Method::POST,
            path: url.path().to_owned(),
            headers: http::HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        };
        rec.headers
            .insert("content-type", HeaderValue::from_static(JSON));
        sigv4::sign(
            &mut rec,
            url.authority().unwrap().as_str(),
            creds,
            REGION,
            "bedrock",
            SystemTime::now(),
        );
        let mut builder = http::Request::post(url);
        for (name, value) in &rec.headers {
            builder = builder.header(name, value);
        }
        client()
            .request(builder.body(Full::new(rec.body)).unwrap())
            .await
            .unwrap()
    }

    async fn call(mock: &MockBedrock, model: &str, op: &str, body: &Value) -> Response<Incoming> {
        let creds = mock.credentials().clone();
        call_as(mock, &creds, model, op, body).await
    }

    async fn json_of(response: Response<Incoming>) -> (StatusCode, http::HeaderMap, Value) {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (parts.status, parts.headers, value)
    }

    fn hello() -> Value {
        json!({"messages": [{"role": "user", "content": [{"text": "hello there"}]}]})
    }

    #[tokio::test]
    async fn converse_answers_in_bedrocks_shape() {
        let mock = MockBedrock::start().await;
        let model = "anthropic.claude-3-haiku-20240307-v1:0";
        let (status, headers, body) = json_of(call(&mock, model, "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(headers.contains_key("x-amzn-requestid"));
        assert_eq!(body["output"]["message"]["role"], "assistant");
        assert_eq!(
            body["output"]["message"]["content"][0]["text"],
            "mock reply to: hello there"
        );
        assert_eq!(body["stopReason"], "end_turn");
        assert_eq!(body["usage"]["inputTokens"], 2);
        assert_eq!(body["usage"]["outputTokens"], 5);
        assert_eq!(body["usage"]["totalTokens"], 7);
        assert!(body["metrics"]["latencyMs"].is_u64());
        let recorded = &mock.requests()[0];
        assert_eq!(
            recorded.path,
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
        );
    }

    #[tokio::test]
    async fn converse_stream_sends_valid_frames() {
        let mock = MockBedrock::start().await;
        let response = call(&mock, "mock-tool-call", "converse-stream", &json!({
            "messages": [{"role": "user", "content": [{"text": "weather?"}]}],
            "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}}]}
        }))
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], EVENTSTREAM);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let messages = eventstream::decode_all(&bytes).unwrap();
        let kinds: Vec<&str> = messages
            .iter()
            .map(|m| m.header(":event-type").unwrap())
            .collect();
        assert_eq!(kinds[0], "messageStart");
        assert!(kinds.contains(&"contentBlockStart"));
        assert_eq!(kinds[kinds.len() - 2..], ["messageStop", "metadata"]);
        let input: String = messages
            .iter()
            .filter_map(|m| {
                m.json()["delta"]["toolUse"]["input"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert_eq!(input, r#"{"city":"mock-city"}"#);
        let stop = messages
            .iter()
            .find(|m| m.header(":event-type") == Some("messageStop"))
            .unwrap();
        assert_eq!(stop.json()["stopReason"], "tool_use");
        let meta = messages.last().unwrap().json();
        assert!(meta["usage"]["totalTokens"].as_u64().unwrap() > 0);
    }

    #[tokio::test]
    async fn bad_signatures_are_refused_like_aws() {
        let mock = MockBedrock::start().await;
        let wrong = Credentials::new(ACCESS_KEY_ID, "not-the-secret");
        let (status, headers, body) =
            json_of(call_as(&mock, &wrong, "m", "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            headers["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with("InvalidSignatureException:")
        );
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("/model/m/converse"), "{message}");

        let unknown = Credentials::new("AKIAOTHER", SECRET_ACCESS_KEY);
        let (status, headers, _) =
            json_of(call_as(&mock, &unknown, "m", "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            headers["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with("UnrecognizedClientException")
        );

        let unsigned = http::Request::post(mock.url("m", "converse"))
            .body(Full::new(Bytes::from(hello().to_string())))
            .unwrap();
        let (status, _, body) = json_of(client().request(unsigned).await.unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["message"], "Missing Authentication Token");

        let bearer = http::Request::post(mock.url("m", "converse"))
            .header("authorization", format!("Bearer {API_KEY}"))
            .body(Full::new(Bytes::from(hello().to_string())))
            .unwrap();
        let (status, _, _) = json_of(client().request(bearer).await.unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        // Refused requests never consumed a scripted reply.
        assert_eq!(mock.request_count(), 4);
    }

    #[tokio::test]
    async fn session_tokens_are_checked() {
        let creds =
            Credentials::new("ASIAMOCK", "temp-secret").with_session_token("FwoGZXIvYXdzEMock");
        let mock = MockBedrock::start_with(BedrockConfig {
            credentials: creds.clone(),
            ..BedrockConfig::default()
        })
        .await
        .unwrap();
        let (status, _, _) = json_of(call_as(&mock, &creds, "m", "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::OK);
        let no_token = Credentials::new("ASIAMOCK", "temp-secret");
        let (status, _, _) =
            json_of(call_as(&mock, &no_token, "m", "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn model_ids_script_exceptions() {
        let mock = MockBedrock::start().await;
        for (name, status) in [
            ("ValidationException", 400),
            ("AccessDeniedException", 403),
            ("ResourceNotFoundException", 404),
            ("ModelTimeoutException", 408),
            ("ModelErrorException", 424),
            ("ThrottlingException", 429),
            ("ModelNotReadyException", 429),
            ("InternalServerException", 500),
            ("ServiceUnavailableException", 503),
        ] {
            let model = format!("mock-exception-{name}");
            let (got, headers, body) =
                json_of(call(&mock, &model, "converse", &hello()).await).await;
            assert_eq!(got.as_u16(), status, "{name}");
            assert!(
                headers["x-amzn-errortype"]
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("{name}:")),
                "{name}"
            );
            assert!(body["message"].is_string());
        }
        let (status, _, body) =
            json_of(call(&mock, "mock-context-length", "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["message"], "Input is too long for requested model.");
        let (status, headers, _) =
            json_of(call(&mock, "m", "converse", &json!({"messages": "nope"})).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            headers["x-amzn-errortype"]
                .to_str()
                .unwrap()
                .starts_with("ValidationException")
        );
    }

    #[tokio::test]
    async fn broken_streams_break_as_scripted() {
        let mock = MockBedrock::start().await;
        let bytes_of = |r: Response<Incoming>| async move { r.into_body().collect().await };
        let bad = bytes_of(call(&mock, "mock-stream-bad-crc", "converse-stream", &hello()).await)
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(
            eventstream::decode_all(&bad).unwrap_err(),
            "message CRC mismatch"
        );
        let bad = bytes_of(
            call(
                &mock,
                "mock-stream-bad-prelude",
                "converse-stream",
                &hello(),
            )
            .await,
        )
        .await
        .unwrap()
        .to_bytes();
        assert_eq!(
            eventstream::decode_all(&bad).unwrap_err(),
            "prelude CRC mismatch"
        );
        let cut = bytes_of(call(&mock, "mock-stream-cut", "converse-stream", &hello()).await).await;
        assert!(cut.is_err(), "the connection is cut");
        let exc = bytes_of(
            call(
                &mock,
                "mock-stream-exception-throttlingException",
                "converse-stream",
                &hello(),
            )
            .await,
        )
        .await
        .unwrap()
        .to_bytes();
        let messages = eventstream::decode_all(&exc).unwrap();
        let last = messages.last().unwrap();
        assert_eq!(last.header(":message-type"), Some("exception"));
        assert_eq!(last.header(":exception-type"), Some("throttlingException"));
        let malformed =
            bytes_of(call(&mock, "mock-stream-malformed", "converse-stream", &hello()).await)
                .await
                .unwrap()
                .to_bytes();
        let messages = eventstream::decode_all(&malformed).unwrap();
        assert!(messages[2].json().is_null());
    }

    #[tokio::test]
    async fn scripted_replies_and_rechunking() {
        let mock = MockBedrock::start().await;
        mock.enqueue(
            Reply::exception("ThrottlingException", "slow down").with_header("retry-after", "2"),
        );
        mock.enqueue(
            Reply::events(&[
                Message::event("messageStart", &json!({"role": "assistant"})),
                Message::event("messageStop", &json!({"stopReason": "end_turn"})),
            ])
            .with_rechunk(5),
        );
        let (status, headers, body) = json_of(call(&mock, "m", "converse", &hello()).await).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "2");
        assert_eq!(body, json!({"message": "slow down"}));
        let response = call(&mock, "m", "converse-stream", &hello()).await;
        let mut body = response.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert!(frames.iter().all(|f| f.len() <= 5));
        assert_eq!(eventstream::decode_all(&frames.concat()).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn invoke_model_embeds_with_token_count_header() {
        let mock = MockBedrock::start().await;
        let (status, headers, body) = json_of(
            call(
                &mock,
                "amazon.titan-embed-text-v2:0",
                "invoke",
                &json!({"inputText": "a b c"}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-amzn-bedrock-input-token-count"], "3");
        assert_eq!(body["embedding"].as_array().unwrap().len(), 1024);
        let (status, _, body) = json_of(
            call(
                &mock,
                "cohere.embed-multilingual-v3",
                "invoke",
                &json!({"texts": ["x"], "input_type": "search_query"}),
            )
            .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["response_type"], "embeddings_floats");
    }
}

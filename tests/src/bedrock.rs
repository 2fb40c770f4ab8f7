//! A scriptable, in-process mock of Amazon Bedrock's runtime API
//! (`bedrock-runtime.{region}.amazonaws.com`) speaking Bedrock's exact formats:
//!
//! * `POST /model/{modelId}/converse`: Converse JSON;
//! * `POST /model/{modelId}/converse-stream`: ConverseStream as binary
//!   `application/vnd.amazon.eventstream` frames with real CRCs;
//! * `POST /model/{modelId}/invoke`: InvokeModel for the Titan and Cohere embedding
//!   models, and for Claude (`anthropic.claude…`) with Anthropic's Messages body
//!   (`anthropic_version: "bedrock-2023-05-31"`), answered as Anthropic's mock answers
//!   (a signed `thinking` block first when the body turns `thinking` on);
//! * `POST /model/{modelId}/invoke-with-response-stream`: Claude's Messages stream, each
//!   Anthropic event base64-encoded in an event-stream `chunk` frame;
//! * errors as `{"message": ...}` with the exception named in `x-amzn-ErrorType`.
//!
//! Like AWS, it authenticates every request before anything else: a SigV4 signature
//! (service `bedrock`, the mock's region and credentials, at most five minutes of clock
//! skew, path segments encoded twice) recomputed with [`sigv4`], or a Bedrock API key as
//! `Authorization: Bearer`. Temporary keys the identity mocks issued into its
//! [`keyring`](MockBedrock::keyring) sign too, with their session token; once expired
//! they get a 403 `ExpiredTokenException`, once forgotten `UnrecognizedClientException`. A bad signature is a 403 `InvalidSignatureException` whose
//! message carries the canonical request the mock expected, as AWS's does.
//!
//! Scripting works as for the OpenAI mock: queue [`Reply`]s or set the default, and
//! inspect [`MockBedrock::requests`]. With [`Reply::ok`] in effect, model ids script
//! behaviour (see `converse` for the answers themselves):
//!
//! | model id contains | answer |
//! |---|---|
//! | `mock-tool-call` / `mock-parallel-tools` | a text block, then one / every tool called |
//! | `mock-two-cities` | a text block, then the first tool called for Paris and for Rome |
//! | `mock-max-tokens` | half the reply, `max_tokens` |
//! | `mock-guardrail` / `mock-content-filtered` | `guardrail_intervened` / `content_filtered` |
//! | `mock-cache` | usage with cache read and write tokens |
//! | `mock-exception-<Name>` | that exception (`mock-exception-ThrottlingException`) |
//! | `mock-context-length` | 400 ValidationException "Input is too long for requested model." |
//! | `mock-slow-<ms>` | waits before answering |
//! | `mock-malformed` | 200 with truncated JSON (Converse); a stream whose first frame has a bad prelude CRC |
//! | `mock-stream-exception-<member>` | two events, then an exception frame (`throttlingException`) |
//! | `mock-stream-error` | two events, then a `:message-type: error` frame |
//! | `mock-stream-bad-crc` / `mock-stream-bad-prelude` | the third frame's message / prelude CRC is wrong |
//! | `mock-stream-cut` | two events and half of the third, then the connection drops |
//! | `mock-stream-malformed` | the third event's payload is not JSON |
//! | `mock-stream-unknown` | an event type Bedrock may add later, after `messageStart` |
//! | `mock-redacted` | with reasoning on, a `redactedContent` block after the reasoning text |
//!
//! Model families are told by id as Bedrock knows them (`anthropic.claude…`,
//! `amazon.nova-2…`, `openai.gpt-oss…`): each takes its own
//! `additionalModelRequestFields` and reasons when they turn reasoning on (see
//! `converse`).

pub mod errors;
pub mod eventstream;
pub mod sigv4;

mod converse;
mod embed;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::identity::aws::{Keyring, Standing};
use crate::mock::{
    Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, header_pair, percent_decode,
    uri_encode,
};
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
/// ConverseStream's content type.
pub const EVENTSTREAM: &str = "application/vnd.amazon.eventstream";

/// Bedrock's wire format and authentication, for the mock core.
#[derive(Debug)]
pub struct Bedrock {
    /// The region signatures must be scoped to.
    pub region: String,
    /// The only credentials whose signatures are accepted.
    pub credentials: Credentials,
    /// A Bedrock API key accepted as `Authorization: Bearer`, if any.
    pub api_key: Option<String>,
    /// Temporary keys (STS, EKS Pod Identity) whose signatures are accepted too.
    pub keyring: Keyring,
    next_id: AtomicU64,
}

impl Default for Bedrock {
    fn default() -> Self {
        Bedrock::with_credentials(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY))
    }
}

impl Bedrock {
    /// The default region and API key, with these credentials.
    pub fn with_credentials(credentials: Credentials) -> Bedrock {
        Bedrock {
            region: REGION.into(),
            credentials,
            api_key: Some(API_KEY.into()),
            keyring: Keyring::default(),
            next_id: AtomicU64::new(1),
        }
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// A running mock Bedrock; its base URL stands in for
/// `https://bedrock-runtime.{region}.amazonaws.com`.
pub type MockBedrock = Mock<Bedrock>;

impl Mock<Bedrock> {
    /// The URL of `operation` (`converse`, `converse-stream`, `invoke`) for `model_id`,
    /// with the id percent-encoded as a path segment.
    pub fn url(&self, model_id: &str, operation: &str) -> String {
        let id = uri_encode(model_id);
        format!("{}/model/{id}/{operation}", self.base_url())
    }

    /// The region signatures must name.
    pub fn region(&self) -> &str {
        &self.provider().region
    }

    /// The credentials the mock accepts.
    pub fn credentials(&self) -> &Credentials {
        &self.provider().credentials
    }

    /// The temporary keys it accepts: give it to [`crate::MockSts`] or
    /// [`crate::MockPodIdentity`] to have theirs accepted.
    pub fn keyring(&self) -> &Keyring {
        &self.provider().keyring
    }
}

impl Reply {
    /// Bedrock's exception `name` (e.g. `ThrottlingException`) with its status, its
    /// `x-amzn-ErrorType` and `{"message": message}`.
    ///
    /// # Panics
    ///
    /// If the mock does not know `name` (see [`errors::EXCEPTIONS`]).
    pub fn exception(name: &str, message: &str) -> Reply {
        let known =
            errors::exception(name).unwrap_or_else(|| panic!("unknown Bedrock exception {name:?}"));
        Reply::error(known.status, message, known.name, None)
    }

    /// A 200 `application/vnd.amazon.eventstream` body of these messages, each its own
    /// body frame.
    pub fn events(messages: &[Message]) -> Reply {
        Reply::raw(
            200,
            EVENTSTREAM,
            messages.iter().map(Message::encode).collect(),
        )
    }
}

impl Provider for Bedrock {
    // Like AWS, authenticate every request before anything else.
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        let (exception, message) = authenticate(self, req).err()?;
        Some(exception_answer(exception, &message, ""))
    }

    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        match reply.kind() {
            Kind::Ok => healthy(self, req),
            Kind::Malformed => malformed(),
            _ => Resolved::unsupported("Bedrock", reply),
        }
    }

    fn error(&self, req: &Recorded, failure: &Failure) -> Resolved {
        let model = route(&req.method, &req.path).map(|(m, _)| m);
        let name = failure.kind.as_deref().unwrap_or("InternalServerException");
        let answer = exception_named(name, &failure.message, model.as_deref().unwrap_or(""));
        answer.with_status(failure.status)
    }

    fn stamp(&self) -> Vec<(HeaderName, HeaderValue)> {
        let id = format!("{:08x}-mock-4bed-8roc-{:012x}", self.id(), self.id());
        vec![header_pair("x-amzn-requestid", &id)]
    }
}

/// 200 with a JSON content type and a truncated Converse body.
fn malformed() -> Resolved {
    let body = Bytes::from_static(br#"{"output": {"message": {"role": "assis"#);
    Resolved::whole(StatusCode::OK, JSON, body)
}

/// The exception's status, its `x-amzn-ErrorType` and its body.
fn exception_answer(e: Exception, message: &str, model: &str) -> Resolved {
    let value = HeaderValue::from_str(&e.error_type())
        .unwrap_or_else(|_| HeaderValue::from_static("InternalServerException"));
    let mut answer = Resolved::whole(e.status_code(), JSON, e.body(message, model));
    answer
        .headers
        .push((HeaderName::from_static("x-amzn-errortype"), value));
    answer
}

fn exception_named(name: &str, message: &str, model: &str) -> Resolved {
    let e = errors::exception(name).unwrap_or(errors::EXCEPTIONS[0]);
    exception_answer(e, message, model)
}

fn failure(f: converse::Failure, model: &str) -> Resolved {
    exception_named(f.exception, &f.message, model)
}

/// The operations under `/model/{modelId}/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
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
        "invoke-with-response-stream" => Operation::InvokeStream,
        _ => return None,
    };
    Some((percent_decode(id)?, op))
}

fn authenticate(shared: &Bedrock, req: &Recorded) -> Result<(), (Exception, String)> {
    let fail = |name: &str, message: String| {
        let e = errors::exception(name).unwrap_or(errors::EXCEPTIONS[0]);
        Err((e, message))
    };
    let auth = req
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
        return match &shared.api_key {
            Some(key) if key == token => Ok(()),
            _ => fail(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".into(),
            ),
        };
    }
    // Temporary keys are found by their access key id, as AWS finds them.
    let temporary = auth
        .as_deref()
        .and_then(|a| sigv4::Authorization::parse(a).ok())
        .filter(|a| a.access_key_id != shared.credentials.access_key_id)
        .map(|a| shared.keyring.standing(&a.access_key_id));
    let credentials = match temporary {
        None => shared.credentials.clone(),
        Some(Standing::Valid(credentials)) => credentials,
        Some(Standing::Expired) => {
            return fail(
                "ExpiredTokenException",
                "The security token included in the request is expired".into(),
            );
        }
        Some(Standing::Unknown) => shared.credentials.clone(),
    };
    match sigv4::verify(
        req,
        &credentials,
        &shared.region,
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

/// Claude's answer to a Messages body through InvokeModel: Anthropic's mock's answer,
/// whole, or its events in `chunk` frames.
fn claude(model: &str, body: &Value, stream: bool, request_bytes: usize) -> Resolved {
    use base64::Engine as _;
    if body.get("anthropic_version") != Some(&json!("bedrock-2023-05-31"))
        || body.get("model").is_some()
        || body.get("stream").is_some()
    {
        return exception_named(
            "ValidationException",
            "Malformed input request: the body must carry anthropic_version bedrock-2023-05-31 and no model or stream.",
            model,
        );
    }
    let said = crate::anthropic::last_user_text(body);
    let mut content = json!([{"type": "text", "text": format!("Hello! You said: {said}")}]);
    // Claude thinks first when the body turns thinking on.
    if matches!(
        body["thinking"]["type"].as_str(),
        Some("enabled" | "adaptive")
    ) {
        let thinking = format!("Thinking about: {said}.");
        let signature = converse::signature(&thinking);
        content = json!([
            {"type": "thinking", "thinking": thinking, "signature": signature},
            content[0].clone()
        ]);
    }
    let input_tokens = (request_bytes as u64).div_ceil(4);
    let output_tokens = content.to_string().len() as u64 / 4 + 1;
    if !stream {
        let message =
            crate::anthropic::message(model, content, "end_turn", input_tokens, output_tokens);
        return Resolved::whole(StatusCode::OK, JSON, crate::mock::to_bytes(&message));
    }
    let frames =
        crate::anthropic::stream_events(model, &content, "end_turn", input_tokens, output_tokens)
            .iter()
            .map(|(_, event)| {
                let bytes = base64::engine::general_purpose::STANDARD.encode(event.to_string());
                Message::event("chunk", &json!({"bytes": bytes})).encode()
            })
            .collect();
    Resolved::frames(EVENTSTREAM, frames)
}

fn healthy(shared: &Bedrock, req: &Recorded) -> Resolved {
    let Some((model, op)) = route(&req.method, &req.path) else {
        return exception_named("UnknownOperationException", "Unknown operation.", "");
    };
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return exception_named(
            "SerializationException",
            "Start of structure or map found where not expected.",
            &model,
        );
    };
    if model.contains("anthropic.claude") && body.get("anthropic_version").is_some() {
        return claude(&model, &body, op == Operation::InvokeStream, req.body.len());
    }
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
            Err(f) => failure(f, &model),
        };
    }
    let mut delay = Duration::ZERO;
    if let Some(name) = model.split("mock-exception-").nth(1) {
        let message = errors::exception(name).map_or("", |e| e.message);
        return exception_named(name, message, &model);
    }
    if model.contains("mock-context-length") {
        return exception_named(
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
        return malformed();
    }
    let mut next = || shared.id();
    let answer = match converse::answer(&model, &body, &mut next) {
        Ok(a) => a,
        Err(f) => return failure(f, &model),
    };
    let latency = delay.as_millis() as u64 + 42;
    let mut resolved = if op == Operation::Converse {
        Resolved::whole(StatusCode::OK, JSON, converse::to_json(&answer, latency))
    } else {
        let events = converse::to_events(&answer, latency);
        let (frames, cut_after) = scripted_stream(&model, events);
        let mut stream = Resolved::frames(EVENTSTREAM, frames);
        stream.cut_after = cut_after;
        stream
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
    } else if model.contains("mock-malformed") {
        // Broken before the first event: nothing can reach the client.
        frames[0] = eventstream::with_bad_prelude_crc(&frames[0]);
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

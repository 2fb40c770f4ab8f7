//! A scriptable, in-process mock of Cohere's v2 API (`https://api.cohere.com`):
//! `POST /v2/chat` (JSON, or server-sent events with `"stream": true`) and
//! `POST /v2/embed`, with errors in Cohere's shape, `{"id": ..., "message": ...}`.
//! Requests need `Authorization: Bearer <key>` with the mock's key ([`API_KEY`] by
//! default): none is a 401 "no api key supplied", a wrong one "invalid api token".
//!
//! Script it like the other mocks (queue [`Reply`]s, inspect
//! [`MockCohere::requests`]); with [`Reply::ok`] in effect, model names script
//! behaviour (the answers themselves are described in `chat`):
//!
//! | model contains | answer |
//! |---|---|
//! | `mock-tool-call` / `mock-parallel-tools` | a tool plan, then one / every tool called |
//! | `mock-two-cities` | the first tool called twice, for Paris and for Rome |
//! | `mock-max-tokens` | half the reply, `MAX_TOKENS` |
//! | `mock-cache` | usage with `cached_tokens` |
//! | `mock-error-<status>` | that status with a message Cohere sends for it (400, 401, 402, 404, 429, 499, 500, 503) |
//! | `mock-context-length` | 400 "too many tokens: ..." |
//! | `mock-slow-<ms>` | waits before answering |
//! | `mock-malformed` | 200 with truncated JSON (chat), or the stream of `mock-stream-malformed` |
//! | `mock-stream-malformed` | the third event's data is not JSON |
//! | `mock-stream-cut` | three events, then the connection drops |
//! | `mock-stream-error` | the stream ends with `finish_reason: "ERROR"` |
//! | `mock-stream-citations` | citation events Cohere sends for documents |

mod chat;
mod embed;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::mock::{
    Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, header_pair, status_code, to_bytes,
};

/// The API key the mock accepts by default.
pub const API_KEY: &str = "co-mock-api-key-0000000000000000000000";

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// Cohere's wire format, for the mock core.
#[derive(Debug)]
pub struct Cohere {
    /// The only bearer token accepted.
    pub api_key: String,
    next_id: AtomicU64,
}

impl Default for Cohere {
    fn default() -> Self {
        Cohere::with_key(API_KEY)
    }
}

impl Cohere {
    /// A mock that accepts only `api_key`.
    pub fn with_key(api_key: &str) -> Cohere {
        Cohere {
            api_key: api_key.to_owned(),
            next_id: AtomicU64::new(1),
        }
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Cohere's ids are UUIDs; these look like them and count up.
    fn uuid(&self) -> String {
        format!("c0e1e2e3-0000-4000-8000-{:012x}", self.id())
    }

    fn refuse(&self, status: u16, message: &str) -> Resolved {
        let body = to_bytes(&json!({ "id": self.uuid(), "message": message }));
        Resolved::whole(status_code(status), JSON, body)
    }
}

/// A running mock Cohere; its base URL stands in for `https://api.cohere.com`.
pub type MockCohere = Mock<Cohere>;

impl Mock<Cohere> {
    /// The accepted API key.
    pub fn api_key(&self) -> &str {
        &self.provider().api_key
    }
}

impl Provider for Cohere {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        let auth = req.header("authorization");
        let refused = match auth.and_then(|a| a.strip_prefix("Bearer ")) {
            None => "no api key supplied",
            Some(key) if key != self.api_key => "invalid api token",
            Some(_) => return None,
        };
        Some(self.refuse(401, refused))
    }

    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        match reply.kind() {
            Kind::Ok => healthy(self, req),
            Kind::Chunks(events) => {
                Resolved::frames(EVENT_STREAM, events.iter().map(chat::sse).collect())
            }
            Kind::Malformed => malformed(),
            _ => Resolved::unsupported("Cohere", reply),
        }
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        self.refuse(failure.status.as_u16(), &failure.message)
    }

    fn stamp(&self) -> Vec<(HeaderName, HeaderValue)> {
        vec![header_pair("x-request-id", &self.uuid())]
    }
}

/// 200 with a JSON content type and a truncated JSON body.
fn malformed() -> Resolved {
    let body = Bytes::from_static(br#"{"id": "c14c80c3", "finish_reason": "COMP"#);
    Resolved::whole(StatusCode::OK, JSON, body)
}

/// What Cohere says for each status the mock can be asked for by name.
fn status_message(status: u16, model: &str) -> String {
    match status {
        400 => "invalid request: message must be at least 1 token long or tool results must be specified.".into(),
        401 => "invalid api token".into(),
        402 => "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment to continue".into(),
        404 => format!("model '{model}' not found, make sure the correct model ID was used and that you have access to the model."),
        429 => "You are using a Trial key, which is limited to 20 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key with higher rate limits at 'https://dashboard.cohere.com/api-keys'. Contact us on 'https://discord.gg/XW44jPfYJu' or email us at support@cohere.com with any questions".into(),
        499 => "request cancelled".into(),
        503 => "service unavailable".into(),
        _ => "internal server error, this has been reported to our developers".into(),
    }
}

fn healthy(shared: &Cohere, req: &Recorded) -> Resolved {
    let path = req.path.split('?').next().unwrap_or("");
    let chat = req.method == Method::POST && path == "/v2/chat";
    let embed = req.method == Method::POST && path == "/v2/embed";
    if !chat && !embed {
        return shared.refuse(404, &format!("{} {path} not found", req.method));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return shared.refuse(400, "invalid request: invalid json");
    };
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if let Some(status) = model
        .split("mock-error-")
        .nth(1)
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
    {
        return shared.refuse(status, &status_message(status, &model));
    }
    if model.contains("mock-context-length") {
        return shared.refuse(
            400,
            "too many tokens: total number of tokens in the prompt cannot exceed 128000 - \
             received 128412. Try using a shorter prompt, or enabling prompt truncating.",
        );
    }
    let delay = model
        .split("mock-slow-")
        .nth(1)
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::ZERO, Duration::from_millis);
    let mut resolved = if embed {
        match embed::answer(&body, &shared.uuid()) {
            Ok(bytes) => Resolved::whole(StatusCode::OK, JSON, bytes),
            Err(r) => shared.refuse(r.status, &r.message),
        }
    } else if model.contains("mock-malformed") && body["stream"] != true {
        malformed()
    } else {
        let mut next = || shared.id();
        match chat::answer(&body, &mut next) {
            Err(r) => shared.refuse(r.status, &r.message),
            Ok(a) => {
                let id = shared.uuid();
                if body["stream"] == true {
                    stream(&model, &id, &a)
                } else {
                    Resolved::whole(StatusCode::OK, JSON, chat::to_json(&id, &a))
                }
            }
        }
    };
    resolved.delay = delay;
    resolved
}

fn stream(model: &str, id: &str, answer: &chat::Answer) -> Resolved {
    let mut answer = answer.clone();
    if model.contains("mock-stream-error") {
        answer.finish_reason = "ERROR";
    }
    let mut events = chat::to_events(id, &answer);
    if model.contains("mock-stream-citations") {
        let at = events.len() - 1;
        events.insert(
            at,
            json!({"type": "citation-start", "index": 0, "delta": {"message": {"citations": {
                "start": 0, "end": 4, "text": "mock", "sources": [], "type": "TEXT_CONTENT"
            }}}}),
        );
        events.insert(at + 1, json!({"type": "citation-end", "index": 0}));
    }
    let mut frames: Vec<Bytes> = events.iter().map(chat::sse).collect();
    let mut resolved = Resolved::frames(EVENT_STREAM, Vec::new());
    if model.contains("mock-stream-malformed") || model.contains("mock-malformed") {
        frames[2] = Bytes::from_static(
            b"event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":\n\n",
        );
    } else if model.contains("mock-stream-cut") {
        resolved.cut_after = Some(3);
    }
    resolved.frames = frames;
    resolved
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    fn client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn post(
        mock: &MockCohere,
        path: &str,
        key: Option<&str>,
        body: &Value,
    ) -> (StatusCode, http::HeaderMap, Result<Bytes, hyper::Error>) {
        let mut builder =
            http::Request::post(format!("{}{path}", mock.base_url())).header("content-type", JSON);
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let response = client()
            .request(
                builder
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.map(|c| c.to_bytes());
        (parts.status, parts.headers, bytes)
    }

    fn json_of(bytes: &Result<Bytes, hyper::Error>) -> Value {
        serde_json::from_slice(bytes.as_ref().unwrap()).unwrap_or(Value::Null)
    }

    fn sse_data(bytes: &[u8]) -> Vec<Value> {
        std::str::from_utf8(bytes)
            .unwrap()
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut lines = e.lines();
                let event = lines.next().unwrap().strip_prefix("event: ").unwrap();
                let data: Value =
                    serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap())
                        .unwrap();
                assert_eq!(data["type"], event);
                data
            })
            .collect()
    }

    fn hello(model: &str) -> Value {
        json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
    }

    #[tokio::test]
    async fn chat_needs_the_api_key() {
        let mock = MockCohere::start().await;
        let (status, _, body) = post(&mock, "/v2/chat", None, &hello("command-r")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json_of(&body)["message"], "no api key supplied");
        let (status, _, body) = post(&mock, "/v2/chat", Some("nope"), &hello("command-r")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json_of(&body)["message"], "invalid api token");
        assert!(json_of(&body)["id"].is_string());
        let (status, headers, body) =
            post(&mock, "/v2/chat", Some(API_KEY), &hello("command-r")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.contains_key("x-request-id"));
        let v = json_of(&body);
        assert_eq!(
            v["message"]["content"][0]["text"],
            "mock reply to: hello there"
        );
        assert_eq!(v["finish_reason"], "COMPLETE");
        assert_eq!(v["usage"]["billed_units"]["output_tokens"], 5);
    }

    #[tokio::test]
    async fn chat_streams_sse_events() {
        let mock = MockCohere::start().await;
        let mut body = hello("command-a-03-2025");
        body["stream"] = json!(true);
        let (status, headers, bytes) = post(&mock, "/v2/chat", Some(API_KEY), &body).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], EVENT_STREAM);
        let events = sse_data(&bytes.unwrap());
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds[0], "message-start");
        assert_eq!(kinds[1], "content-start");
        assert_eq!(kinds[kinds.len() - 2..], ["content-end", "message-end"]);
        let text: String = events
            .iter()
            .filter_map(|e| e["delta"]["message"]["content"]["text"].as_str())
            .collect();
        assert_eq!(text, "mock reply to: hello there");
    }

    #[tokio::test]
    async fn model_names_script_errors_and_broken_streams() {
        let mock = MockCohere::start().await;
        for status in [400u16, 401, 402, 404, 429, 499, 500, 503] {
            let (got, _, body) = post(
                &mock,
                "/v2/chat",
                Some(API_KEY),
                &hello(&format!("mock-error-{status}")),
            )
            .await;
            assert_eq!(got.as_u16(), status);
            assert!(json_of(&body)["message"].is_string());
        }
        let (status, _, body) = post(
            &mock,
            "/v2/chat",
            Some(API_KEY),
            &hello("mock-context-length"),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            json_of(&body)["message"]
                .as_str()
                .unwrap()
                .starts_with("too many tokens")
        );
        let (status, _, body) =
            post(&mock, "/v2/chat", Some(API_KEY), &hello("mock-malformed")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(json_of(&body).is_null());
        let mut cut = hello("mock-stream-cut");
        cut["stream"] = json!(true);
        let (_, _, bytes) = post(&mock, "/v2/chat", Some(API_KEY), &cut).await;
        assert!(bytes.is_err());
    }

    #[tokio::test]
    async fn embed_v2() {
        let mock = MockCohere::start().await;
        let (status, _, body) = post(
            &mock,
            "/v2/embed",
            Some(API_KEY),
            &json!({"model": "embed-english-v3.0", "texts": ["hi"], "input_type": "search_query", "embedding_types": ["float"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v = json_of(&body);
        assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 1024);
        assert_eq!(v["meta"]["billed_units"]["input_tokens"], 1);
    }
}

//! The conformance cases, generic over a provider's mock upstream. Every provider runs
//! the same cases through the running sidecar in each inbound API, chat completions
//! ([`chat`]), Anthropic's Messages ([`messages`]) and OpenAI's Responses
//! ([`responses`]); only the mock differs. This module holds what they share: the
//! [`Upstream`] trait, the behaviours a mock is asked for, the sidecar setup and a small
//! client for the Messages and Responses endpoints.

pub mod chat;
pub mod messages;
pub mod responses;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llmesh_sidecar::config::snapshot::{DeploymentSpec, ModelSpec};
use llmesh_tests::Mock;
use llmesh_tests::mock::Provider;
use serde_json::{Value, json};

use crate::support::{Running, model, snapshot};

/// What a mock should do for a request, chosen by the deployment it is sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer with text (echoing the last user message where it can).
    Text,
    /// Call `get_weather` twice in parallel: `{"city":"Paris"}` and `{"city":"Rome"}`.
    Tools,
    /// Stop at the output limit.
    MaxTokens,
    /// Stop at a stop sequence.
    StopSequence,
    /// Fail with this upstream status in the provider's error format.
    Error(u16),
    /// Answer 200 with a body (or stream) that is not the provider's format.
    Malformed,
    /// Stream part of an answer, then cut the connection.
    Cut,
    /// Think (reason) before answering, where the mock can.
    Thinking,
}

/// The model that behaves as asked on the mocks that share the `mock-*` names (OpenAI,
/// Bedrock, Cohere, Gemini), with `text` answering plainly.
pub fn mock_model(behaviour: Behaviour, text: &str) -> String {
    match behaviour {
        Behaviour::Text | Behaviour::StopSequence => text.to_owned(),
        Behaviour::Tools => "mock-two-cities".to_owned(),
        Behaviour::MaxTokens => "mock-max-tokens".to_owned(),
        Behaviour::Error(status) => format!("mock-error-{status}"),
        Behaviour::Malformed => "mock-malformed".to_owned(),
        Behaviour::Cut => "mock-stream-cut".to_owned(),
        Behaviour::Thinking => "mock-thinking".to_owned(),
    }
}

/// A provider's mock upstream, as the suite drives it.
pub trait Upstream: Sized {
    /// Starts the mock.
    async fn start() -> Self;
    /// A deployment pointing at the mock that behaves as asked.
    fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec;
    /// The provider-native request bodies received, in order.
    fn bodies(&self) -> Vec<Value>;
    /// Upstream error statuses the provider uses, each with the status a client sees.
    fn error_statuses(&self) -> Vec<(u16, u16)>;
    /// The JSON schema an upstream request asks the answer to follow, read from the
    /// provider's own structured-output field (`None` when it has none).
    fn structured_schema(&self, sent: &Value) -> Option<Value>;
    /// Where an image inside a tool result sits in the provider's request body, as JSON
    /// paths with `*` for every index (see [`paths_to`]); one of them must match.
    fn tool_image_paths(&self) -> &'static [&'static str];
}

/// A sidecar serving one model per behaviour, named after it.
pub(crate) async fn setup<U: Upstream>(up: &U, extra: Vec<ModelSpec>) -> Running {
    let mut models: Vec<ModelSpec> = [
        ("text", Behaviour::Text),
        ("tools", Behaviour::Tools),
        ("max", Behaviour::MaxTokens),
        ("stop", Behaviour::StopSequence),
        ("malformed", Behaviour::Malformed),
        ("cut", Behaviour::Cut),
        ("thinking", Behaviour::Thinking),
    ]
    .into_iter()
    .map(|(name, b)| model(name, vec![up.deployment(b)]))
    .collect();
    models.extend(extra);
    Running::start(Some(snapshot("conformance", models))).await
}

pub(crate) fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// A 1x1 PNG, base64-encoded.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// One user message of `text` and [`PNG`] as a data URL.
pub fn with_png(text: &str) -> Value {
    json!([{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
    ]}])
}

/// A sidecar serving `deployment` as model `chat`.
pub async fn serving(deployment: DeploymentSpec) -> Running {
    Running::start(Some(snapshot("v1", vec![model("chat", vec![deployment])]))).await
}

/// The JSON body of the last request the mock received.
pub fn last_body<P: Provider>(mock: &Mock<P>) -> Value {
    mock.requests().last().unwrap().json()
}

/// A streamed chat request to `model` of one user message.
pub fn streamed(model: &str, text: &str) -> Value {
    json!({"model": model, "stream": true, "messages": [user(text)]})
}

const TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#;

pub(crate) fn tools() -> Value {
    serde_json::from_str(TOOLS).unwrap()
}

/// The models `error-<status>` failing with each of the provider's error statuses,
/// retried once where the status is retryable.
pub(crate) fn error_models<U: Upstream>(up: &U) -> Vec<ModelSpec> {
    up.error_statuses()
        .iter()
        .map(|(s, _)| {
            let mut m = model(
                &format!("error-{s}"),
                vec![up.deployment(Behaviour::Error(*s))],
            );
            m.retry.rate_limited = 1;
            m.retry.server_error = 1;
            // Long enough to honour a 1 s Retry-After before the retry.
            m.retry.max_backoff_ms = 1_500;
            m
        })
        .collect()
}

/// A model `bad` answering malformed bodies, never retried.
pub(crate) fn malformed_model<U: Upstream>(up: &U) -> ModelSpec {
    let mut m = model("bad", vec![up.deployment(Behaviour::Malformed)]);
    m.retry.server_error = 0;
    m
}

/// The schema the structured-output cases ask for.
pub(crate) fn capital_schema() -> Value {
    json!({"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"], "additionalProperties": false})
}

/// Checks that the upstream request asked for [`capital_schema`] in the provider's own
/// structured-output field.
pub(crate) fn asked_for_capital<U: Upstream>(up: &U) {
    let sent = up.bodies().last().cloned().unwrap();
    let schema = up
        .structured_schema(&sent)
        .unwrap_or_else(|| panic!("no structured output in the upstream request: {sent}"));
    assert!(
        schema["properties"]["capital"].is_object(),
        "the schema reaches the upstream: {schema}"
    );
}

/// Checks that [`PNG`] reached the upstream inside a tool result, in the provider's form.
pub(crate) fn tool_image_arrived<U: Upstream>(up: &U) {
    let sent = up.bodies().last().cloned().unwrap();
    let found = paths_to(&sent, PNG);
    assert!(
        found
            .iter()
            .any(|p| up.tool_image_paths().contains(&p.as_str())),
        "the tool result's image is at {found:?}, expected one of {:?}: {sent}",
        up.tool_image_paths()
    );
}

/// The JSON paths (`$.a[*].b`, indexes as `*`) of every string in `value` containing
/// `needle`.
pub fn paths_to(value: &Value, needle: &str) -> Vec<String> {
    fn walk(value: &Value, at: &str, needle: &str, out: &mut Vec<String>) {
        match value {
            Value::String(s) if s.contains(needle) => out.push(at.to_owned()),
            Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{at}[*]"), needle, out);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, &format!("{at}.{k}"), needle, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, "$", needle, &mut out);
    out
}

/// A POST of `body` to `path` with these headers: status, headers and the whole body.
pub async fn send(
    sidecar: &Running,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = http::Request::post(format!("http://{}{path}", sidecar.api))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

/// A body as JSON, or its text as a JSON string when it is not JSON.
pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The `(event name, data)` of each SSE event, checking each is one named event whose
/// data is JSON of the same `type`.
pub fn named_events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_else(|| panic!("an event without a name: {event:?}"));
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("an event without data: {event:?}"));
            let data: Value = serde_json::from_str(data)
                .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data:?}"));
            assert_eq!(
                data["type"], name,
                "the event's name is its type: {event:?}"
            );
            (name.to_owned(), data)
        })
        .collect()
}

/// The parallel `get_weather` calls, as (id, name, parsed input) in order, are the two
/// the `Tools` behaviour makes, with distinct ids.
pub(crate) fn two_weather_calls(calls: &[(String, String, Value)]) {
    assert_eq!(calls.len(), 2, "{calls:?}");
    for ((_, name, input), city) in calls.iter().zip(["Paris", "Rome"]) {
        assert_eq!(name, "get_weather");
        assert_eq!(input, &json!({"city": city}), "{calls:?}");
    }
    assert!(
        !calls[0].0.is_empty() && calls[0].0 != calls[1].0,
        "ids present and distinct: {calls:?}"
    );
}

/// Generates the Messages cases every provider runs, then `extra` ones.
#[macro_export]
macro_rules! messages_conformance {
    ($upstream:ty $(, $extra:ident)* $(,)?) => {
        mod messages_api {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance!(cases messages, $upstream:
                messages_text,
                messages_tool_calls,
                messages_max_tokens,
                messages_errors,
                messages_malformed,
                messages_cut,
                $($extra),*
            );
        }
    };
}

/// Generates the Responses cases every provider runs, then `extra` ones.
#[macro_export]
macro_rules! responses_conformance {
    ($upstream:ty $(, $extra:ident)* $(,)?) => {
        mod responses_api {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance!(cases responses, $upstream:
                responses_text,
                responses_tool_calls,
                responses_max_output_tokens,
                responses_errors,
                responses_malformed,
                responses_cut,
                $($extra),*
            );
        }
    };
}

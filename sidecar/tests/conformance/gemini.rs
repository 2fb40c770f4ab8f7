//! Google's Gemini API (AI Studio) and Vertex AI through the conformance suite, and the
//! cases only Gemini has: key and token auth, Google's URL layout, schema rewriting,
//! thinking and cache tokens, safety blocks, embeddings, the golden upstream request.
//! `MockGemini` refuses requests as strictly as Google does, so every case also proves
//! the translated request would be accepted.

use std::ops::Deref;
use std::time::Duration;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::{DeploymentSpec, ProviderKind, SecretString};
use llmesh_tests::MockOpenAi;
use llmesh_tests::gemini::{self, MockGemini, Reply};
use serde_json::{Value, json};

use crate::suite::{Behaviour, Upstream, mock_model};
use crate::support::*;

/// Which of Google's APIs a case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Studio,
    Vertex,
}

/// The mock model that behaves as the suite asks.
fn behaviour_model(behaviour: Behaviour) -> String {
    mock_model(behaviour, "gemini-2.5-flash")
}

/// Google's statuses, each with the status a client sees.
fn error_statuses() -> Vec<(u16, u16)> {
    [400, 401, 403, 404, 429, 500, 503, 504]
        .map(|s| (s, s))
        .to_vec()
}

/// The suite's view of the mock through `api`; `$start` wraps a started mock.
macro_rules! google_upstream {
    ($mock:ty, $api:expr, $name:literal, $start:expr) => {
        impl Upstream for $mock {
            async fn start() -> Self {
                $start(MockGemini::start().await)
            }

            fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec {
                deployment(self, $api, $name, &behaviour_model(behaviour))
            }

            fn bodies(&self) -> Vec<Value> {
                self.model_requests().iter().map(|r| r.json()).collect()
            }

            fn error_statuses(&self) -> Vec<(u16, u16)> {
                error_statuses()
            }

            fn structured_schema(&self, sent: &Value) -> Option<Value> {
                // `responseSchema` (or `responseJsonSchema`) in JSON mode.
                let config = &sent["generationConfig"];
                (config["responseMimeType"] == "application/json")
                    .then(|| {
                        config
                            .get("responseSchema")
                            .or(config.get("responseJsonSchema"))
                    })
                    .flatten()
                    .cloned()
            }

            fn tool_image_paths(&self) -> &'static [&'static str] {
                // Inline data in the turn of the function's response.
                &["$.contents[*].parts[*].inlineData.data"]
            }
        }
    };
}

google_upstream!(MockGemini, Api::Studio, "gemini", std::convert::identity);
google_upstream!(MockVertex, Api::Vertex, "vertex", MockVertex);

/// The same mock reached through Vertex AI's paths and service-account tokens.
pub struct MockVertex(MockGemini);

impl Deref for MockVertex {
    type Target = MockGemini;

    fn deref(&self) -> &MockGemini {
        &self.0
    }
}

/// Every suite, against one of Google's APIs.
macro_rules! google_suites {
    ($upstream:ty) => {
        crate::conformance!($upstream);
        crate::messages_conformance!(
            $upstream,
            messages_stop_sequence_via_chat,
            messages_tool_result_image,
            messages_thinking,
            messages_structured_output,
        );
        crate::responses_conformance!(
            $upstream,
            responses_tool_result_image,
            responses_reasoning,
            responses_structured_output,
        );
    };
}

mod ai_studio_suite {
    google_suites!(llmesh_tests::MockGemini);
}

mod vertex_suite {
    google_suites!(crate::gemini::MockVertex);
}

/// A deployment of upstream `model` on the mock through `api`.
pub fn deployment(mock: &MockGemini, api: Api, name: &str, model: &str) -> DeploymentSpec {
    match api {
        Api::Studio => {
            let mut d = DeploymentSpec::new(name, ProviderKind::Gemini, model);
            d.base_url = Some(mock.base_url());
            d.api_key = Some(SecretString::new(gemini::API_KEY));
            d
        }
        Api::Vertex => {
            let mut d = DeploymentSpec::new(name, ProviderKind::Vertex, model);
            d.base_url = Some(mock.base_url());
            d.region = Some("us-central1".into());
            // The key file names Google's token URL; the deployment overrides it.
            d.gcp_service_account = Some(SecretString::new(gemini::service_account_json(
                "https://oauth2.googleapis.com/token",
            )));
            d.token_url = Some(mock.token_url());
            d
        }
    }
}

/// A sidecar serving each `(name, upstream model)` on the mock.
pub async fn sidecar(mock: &MockGemini, api: Api, models: &[(&str, &str)]) -> Running {
    let specs = models
        .iter()
        .map(|(name, upstream)| model(name, vec![deployment(mock, api, "g", upstream)]))
        .collect();
    Running::start(Some(snapshot("v1", specs))).await
}

/// The path the mock saw for a model method.
fn upstream_path(api: Api, model: &str, method: &str) -> String {
    match api {
        Api::Studio => format!("/v1beta/models/{model}:{method}"),
        Api::Vertex => format!(
            "/v1/projects/{}/locations/us-central1/publishers/google/models/{model}:{method}",
            gemini::PROJECT
        ),
    }
}

/// The last model request the mock saw, as JSON.
pub fn last_sent(mock: &MockGemini) -> Value {
    mock.model_requests().last().unwrap().json()
}

async fn chat_ok(sidecar: &Running, body: Value) -> Value {
    let (status, _, out) = post(sidecar.api, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

/// The JSON chunks of a streamed answer, and whether it ended with `[DONE]`.
async fn stream(sidecar: &Running, body: Value) -> (Vec<Value>, bool) {
    let (status, headers, frames) = post_stream(sidecar.api, body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/event-stream"));
    let data = sse_data(&frames);
    let done = data.last().map(String::as_str) == Some("[DONE]");
    let chunks = data
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    (chunks, done)
}

macro_rules! both_apis {
    ($($case:ident),* $(,)?) => {
        mod ai_studio {
            $(#[tokio::test] async fn $case() { super::$case(super::Api::Studio).await })*
        }
        mod vertex {
            $(#[tokio::test] async fn $case() { super::$case(super::Api::Vertex).await })*
        }
    };
}

both_apis!(
    auth_paths_and_body,
    single_and_forced_tool_calls,
    image_urls_by_api,
    structured_output_with_cleaned_schema,
    thinking_and_cached_tokens,
    safety_blocks_are_content_filter,
    gemini_error_details,
    fallbacks_to_and_from_gemini,
    broken_streams_end_with_an_error_event,
    embeddings_single_and_batch,
    unsupported_parameters_are_named_or_dropped,
    upstream_request_matches_golden,
);

const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "additionalProperties": false, "$schema": "http://json-schema.org/draft-07/schema#",
                         "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["C", "F"]}},
                         "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time", "description": "Time in a zone",
          "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
    ])
}

async fn auth_paths_and_body(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", "gemini-2.5-flash")]).await;
    let (status, headers, out) = post(sidecar.api, "/v1/chat/completions", chat("g")).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "1");
    assert_eq!(out["object"], "chat.completion");
    assert!(out["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(out["model"], "gemini-2.5-flash");
    let choice = &out["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "mock reply to: hello");
    assert_eq!(choice["finish_reason"], "stop");
    let seen = mock.model_requests().pop().unwrap();
    assert_eq!(
        seen.path,
        upstream_path(api, "gemini-2.5-flash", "generateContent")
    );
    match api {
        Api::Studio => {
            assert_eq!(seen.headers["x-goog-api-key"], gemini::API_KEY);
            assert!(
                seen.headers.get("authorization").is_none(),
                "the client's key stays home"
            );
        }
        Api::Vertex => {
            let auth = seen.headers["authorization"].to_str().unwrap();
            assert!(auth.starts_with("Bearer ya29.mock-access-token-"), "{auth}");
            assert_eq!(mock.tokens_issued(), 1);
        }
    }
    assert_eq!(
        seen.json(),
        json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]})
    );
    // More calls reuse the same Vertex access token.
    for _ in 0..3 {
        chat_ok(&sidecar, chat("g")).await;
    }
    if api == Api::Vertex {
        assert_eq!(mock.tokens_issued(), 1);
    }
}

async fn single_and_forced_tool_calls(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", "mock-tool-call")]).await;
    let out = chat_ok(
        &sidecar,
        json!({"model": "g", "tools": weather_tools(),
        "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
    )
    .await;
    let choice = &out["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["type"], "function");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock-city", "unit": "C"}));
    // required → ANY forces a call even from a model that would not call.
    let mock_plain = MockGemini::start().await;
    let sidecar = self::sidecar(&mock_plain, api, &[("g", "gemini-2.5-flash")]).await;
    let out = chat_ok(
        &sidecar,
        json!({"model": "g", "tools": weather_tools(),
        "tool_choice": {"type": "function", "function": {"name": "get_time"}},
        "messages": [{"role": "user", "content": "Time?"}]}),
    )
    .await;
    assert_eq!(
        out["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    assert_eq!(
        last_sent(&mock_plain)["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}})
    );
}

async fn image_urls_by_api(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", "gemini-2.5-flash")]).await;
    let out = chat_ok(
        &sidecar,
        json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}]}]}),
    )
    .await;
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "mock reply to: What is this? [image/png 8 bytes]"
    );
    assert_eq!(
        out["usage"]["prompt_tokens"],
        3 + 258,
        "Gemini's flat image rate"
    );
    // AI Studio does not fetch URLs: the sidecar does, behind its SSRF guard (see
    // tests/images.rs), which refuses loopback before anything is sent.
    let url = match api {
        Api::Studio => "http://127.0.0.1/cat.png",
        Api::Vertex => "https://example.com/cat.png",
    };
    let url_image = json!({"model": "g", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": url}}]}]});
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", url_image).await;
    match api {
        Api::Studio => {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"]["code"], "image_url_refused");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("data URL")
            );
        }
        Api::Vertex => {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(
                last_sent(&mock)["contents"][0]["parts"][0],
                json!({"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}})
            );
        }
    }
}

async fn structured_output_with_cleaned_schema(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", "gemini-2.5-flash")]).await;
    let out = chat_ok(&sidecar, json!({"model": "g", "messages": [{"role": "user", "content": "A person"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": {
            "type": "object", "additionalProperties": false,
            "$defs": {"Age": {"type": "integer", "minimum": 0}},
            "properties": {"name": {"type": "string"}, "age": {"$ref": "#/$defs/Age"},
                           "email": {"type": ["string", "null"], "format": "email"}},
            "required": ["name", "age", "email"]}}}}))
    .await;
    let content: Value =
        serde_json::from_str(out["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        content,
        json!({"name": "mock-name", "age": 1, "email": "mock-email"})
    );
    let config = &last_sent(&mock)["generationConfig"];
    assert_eq!(config["responseMimeType"], "application/json");
    assert_eq!(
        config["responseSchema"]["properties"]["age"],
        json!({"type": "INTEGER", "minimum": 0})
    );
}

async fn thinking_and_cached_tokens(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(
        &mock,
        api,
        &[("think", "mock-thinking"), ("cache", "mock-cached")],
    )
    .await;
    let mut body = chat("think");
    body["reasoning_effort"] = json!("low");
    let out = chat_ok(&sidecar, body.clone()).await;
    let message = &out["choices"][0]["message"];
    assert_eq!(
        message["reasoning_content"],
        llmesh_tests::gemini::THOUGHT_TEXT
    );
    assert_eq!(message["content"], "mock reply to: hello");
    assert_eq!(out["usage"]["completion_tokens"], 4 + 7);
    assert_eq!(
        out["usage"]["completion_tokens_details"]["reasoning_tokens"],
        7
    );
    body["stream"] = json!(true);
    let (chunks, _) = stream(&sidecar, body).await;
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, llmesh_tests::gemini::THOUGHT_TEXT);
    let mut body = chat("cache");
    body["messages"][0]["content"] = json!("a long shared prefix");
    let out = chat_ok(&sidecar, body).await;
    assert_eq!(out["usage"]["prompt_tokens"], 4);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

async fn safety_blocks_are_content_filter(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(
        &mock,
        api,
        &[
            ("blocked", "mock-blocked"),
            ("unsafe", "mock-safety"),
            ("recite", "mock-recitation"),
        ],
    )
    .await;
    for name in ["blocked", "unsafe", "recite"] {
        let out = chat_ok(&sidecar, chat(name)).await;
        assert_eq!(
            out["choices"][0]["finish_reason"], "content_filter",
            "{name}: {out}"
        );
        let (chunks, done) = stream(&sidecar, chat_stream(name)).await;
        assert!(done, "{name}");
        assert_eq!(
            chunks
                .iter()
                .rev()
                .find_map(|c| c["choices"][0]["finish_reason"].as_str()),
            Some("content_filter"),
            "{name}"
        );
    }
}

async fn gemini_error_details(api: Api) {
    let mock = MockGemini::start().await;
    let cases = [
        ("e400", "mock-error-400", 400, "invalid_request_error", 1),
        ("e401", "mock-error-401", 401, "authentication_error", 1),
        ("e403", "mock-error-403", 403, "permission_error", 1),
        ("e404", "mock-error-404", 404, "not_found_error", 1),
        // RetryInfo asks for 1 s, past these models' 20 ms maxBackoff: no retry.
        ("e429", "mock-error-429", 429, "rate_limit_error", 1),
        ("e500", "mock-error-500", 500, "server_error", 3),
        ("e503", "mock-error-503", 503, "server_error", 3),
        (
            "ctx",
            "mock-context-length",
            400,
            "invalid_request_error",
            1,
        ),
    ];
    let models: Vec<(&str, &str)> = cases.iter().map(|c| (c.0, c.1)).collect();
    let sidecar = sidecar(&mock, api, &models).await;
    for (name, _, status, kind, attempts) in cases {
        let (got, headers, body) = post(sidecar.api, "/v1/chat/completions", chat(name)).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        assert_eq!(body["error"]["type"], kind, "{name}: {body}");
        assert!(body["error"]["message"].is_string());
        assert_eq!(
            header(&headers, "x-llmesh-attempts"),
            attempts.to_string(),
            "{name}"
        );
        if name == "e429" {
            // RetryInfo's retryDelay is the wait (see timing.rs); the client is told it.
            assert_eq!(header(&headers, "retry-after"), "1");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains("Retry after 1s"), "{body}");
        }
    }
    let (_, _, body) = post(sidecar.api, "/v1/chat/completions", chat("ctx")).await;
    assert_eq!(body["error"]["code"], "context_length_exceeded");

    // A key Google refuses (its 400 API_KEY_INVALID) reaches the client as OpenAI's 401;
    // a Vertex token endpoint that refuses the service account is a clean 5xx.
    let mut bad = deployment(&mock, api, "bad", "gemini-2.5-flash");
    bad.api_key = Some(SecretString::new("wrong-key"));
    bad.token_url = Some(format!("{}/no-such-token-endpoint", mock.base_url()));
    sidecar
        .reconfigure(snapshot("v2", vec![model("bad", vec![bad])]))
        .await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("bad")).await;
    match api {
        Api::Studio => {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(body["error"]["code"], "invalid_api_key");
        }
        Api::Vertex => {
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("access token"),
                "{body}"
            );
        }
    }
}

async fn fallbacks_to_and_from_gemini(api: Api) {
    let mock = MockGemini::start().await;
    let openai = MockOpenAi::start().await;
    let mut flaky = model("flaky", vec![deployment(&mock, api, "g", "mock-error-503")]);
    flaky.fallbacks = vec!["gpt".into()];
    let mut long = model(
        "long",
        vec![deployment(&mock, api, "g", "mock-context-length")],
    );
    long.context_window_fallbacks = vec!["big".into()];
    let big = model("big", vec![deployment(&mock, api, "g", "gemini-2.5-pro")]);
    let gpt = model(
        "gpt",
        vec![crate::support::deployment(
            "o",
            &openai.base_url(),
            "gpt-4o-mini",
        )],
    );
    let mut gpt_first = model(
        "gpt-first",
        vec![crate::support::deployment(
            "o",
            &openai.base_url(),
            "mock-error-500",
        )],
    );
    gpt_first.fallbacks = vec!["big".into()];
    let sidecar =
        Running::start(Some(snapshot("v1", vec![flaky, long, big, gpt, gpt_first]))).await;
    // Gemini failing mid-incident → an OpenAI model.
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("flaky")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-model"), "gpt");
    assert_eq!(body["model"], "gpt-4o-mini");
    // An OpenAI model failing → Gemini.
    let (status, headers, body) =
        post(sidecar.api, "/v1/chat/completions", chat("gpt-first")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-model"), "big");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello"
    );
    // Too long for one Gemini model → the context-window fallback.
    let (status, headers, _) = post(sidecar.api, "/v1/chat/completions", chat("long")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-model"), "big");
}

async fn broken_streams_end_with_an_error_event(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(
        &mock,
        api,
        &[
            ("garbled", "mock-garbled-stream"),
            ("cut", "mock-stream-cut"),
            ("error", "mock-stream-error"),
        ],
    )
    .await;
    for (name, code) in [
        ("garbled", "upstream_malformed_stream"),
        ("cut", "upstream_stream_error"),
        ("error", "upstream_stream_error"),
    ] {
        let mut body = chat_stream(name);
        body["messages"][0]["content"] = json!("say several words please");
        let (status, _, frames) = post_stream(sidecar.api, body).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        let data = sse_data(&frames);
        assert!(!data.contains(&"[DONE]".to_owned()), "{name}: {data:?}");
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], code, "{name}: {data:?}");
        let first: Value = serde_json::from_str(&data[0]).unwrap();
        assert_eq!(first["choices"][0]["delta"]["role"], "assistant", "{name}");
    }
    // A stream that ends cleanly but without a finish reason was cut short too.
    mock.set_default(Reply::chunks(vec![
        json!({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}),
    ]));
    let (_, _, frames) = post_stream(sidecar.api, chat_stream("garbled")).await;
    let data = sse_data(&frames);
    assert!(data.last().unwrap().contains("finishReason"), "{data:?}");
}

async fn embeddings_single_and_batch(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("emb", "text-embedding-005")]).await;
    let (status, _, one) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "emb", "input": "hello", "dimensions": 4}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["object"], "list");
    assert_eq!(one["data"][0]["embedding"].as_array().unwrap().len(), 4);
    let (status, _, many) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "emb", "input": ["a b", "c", "hello"], "encoding_format": "float"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{many}");
    let data = many["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
    let (_, _, base64) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "emb", "input": "x", "encoding_format": "base64"}),
    )
    .await;
    assert!(base64["data"][0]["embedding"].is_string());
    let seen = mock.model_requests();
    // Google's counts: usageMetadata (AI Studio), statistics (Vertex AI).
    assert_eq!(many["usage"]["prompt_tokens"], 4);
    match api {
        Api::Studio => {
            assert!(seen[0].path.ends_with(":embedContent"));
            assert!(seen[1].path.ends_with(":batchEmbedContents"));
        }
        Api::Vertex => {
            assert!(seen.iter().all(|r| r.path.ends_with(":predict")));
            assert_eq!(
                seen[0].json()["parameters"],
                json!({"outputDimensionality": 4})
            );
        }
    }
}

async fn unsupported_parameters_are_named_or_dropped(api: Api) {
    let mock = MockGemini::start().await;
    let mut strict = model(
        "strict",
        vec![deployment(&mock, api, "g", "gemini-2.5-flash")],
    );
    strict.drop_unsupported_params = false;
    let mut lenient = model(
        "lenient",
        vec![deployment(&mock, api, "g", "gemini-2.5-flash")],
    );
    lenient.drop_unsupported_params = true;
    let sidecar = Running::start(Some(snapshot("v1", vec![strict, lenient]))).await;
    let mut body = chat("strict");
    body["logprobs"] = json!(true);
    let (status, _, out) = post(sidecar.api, "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'logprobs'"),
        "{out}"
    );
    assert_eq!(mock.request_count(), 0, "refused before anything is sent");
    body["model"] = json!("lenient");
    let out = chat_ok(&sidecar, body).await;
    assert_eq!(
        out["choices"][0]["message"]["content"],
        "mock reply to: hello"
    );
    assert!(last_sent(&mock).get("logprobs").is_none());
    assert!(sidecar.metrics().await.contains("logprobs"));
    // A value Gemini cannot honour: one function call at a time. Refused by name, or
    // dropped (and counted) like an unknown parameter.
    let mut body = chat("strict");
    body["tools"] = weather_tools();
    body["parallel_tool_calls"] = json!(false);
    let sent = mock.request_count();
    let (status, _, out) = post(sidecar.api, "/v1/chat/completions", body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["code"], "unsupported_parameter");
    assert_eq!(out["error"]["param"], "parallel_tool_calls");
    assert_eq!(
        mock.request_count(),
        sent,
        "refused before anything is sent"
    );
    body["model"] = json!("lenient");
    chat_ok(&sidecar, body).await;
    assert_eq!(mock.request_count(), sent + 1);
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(r#"param="parallel_tool_calls""#),
        "{metrics}"
    );
}

/// The representative request: system prompt, multi-turn history with an image, tool
/// calls and their results, tools with JSON-schema keywords Gemini refuses, tool
/// choice, structured output and every generation parameter.
fn representative_request() -> Value {
    json!({
        "model": "g",
        "messages": [
            {"role": "system", "content": "You are a travel assistant."},
            {"role": "user", "content": [
                {"type": "text", "text": "Where is this, and what is the weather there?"},
                {"type": "image_url", "image_url": {"url": PNG}}]},
            {"role": "assistant", "content": "It looks like Paris.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"C\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{\"zone\":\"Europe/Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 18, \"sky\": \"clear\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "09:30"},
            {"role": "user", "content": "Summarise as JSON."}
        ],
        "tools": weather_tools(),
        "tool_choice": "auto",
        "response_format": {"type": "json_schema", "json_schema": {"name": "summary", "strict": true, "schema": {
            "type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}, "temp": {"type": "number"}, "sky": {"type": "string", "enum": ["clear", "cloudy"]}},
            "required": ["city", "temp", "sky"]}}},
        "max_completion_tokens": 512,
        "temperature": 0.3,
        "top_p": 0.95,
        "stop": ["\n\n\n"],
        "seed": 42,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "stream_options": {"include_usage": true},
        "stream": true
    })
}

async fn upstream_request_matches_golden(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", "gemini-2.5-flash")]).await;
    let (chunks, done) = stream(&sidecar, representative_request()).await;
    assert!(done, "the strict mock accepted the request: {chunks:?}");
    // Both APIs take the very same generateContent body.
    crate::golden::check("gemini", "generate_content_request", &last_sent(&mock));
    let (status, _, _) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "g", "input": ["a", "b"], "dimensions": 16}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let name = match api {
        Api::Studio => "batch_embed_contents_request",
        Api::Vertex => "predict_request",
    };
    crate::golden::check("gemini", name, &last_sent(&mock));
}

#[tokio::test]
async fn vertex_tokens_refresh_before_expiry_and_come_from_the_key_files_token_uri() {
    let mock = MockGemini::start().await;
    // Two-second tokens are refreshed after one second.
    mock.set_token_lifetime(Duration::from_secs(2));
    let mut d = deployment(&mock, Api::Vertex, "g", "gemini-2.5-flash");
    d.token_url = None;
    d.gcp_service_account = Some(SecretString::new(mock.service_account_json()));
    let sidecar = Running::start(Some(snapshot("v1", vec![model("g", vec![d.clone()])]))).await;
    chat_ok(&sidecar, chat("g")).await;
    chat_ok(&sidecar, chat("g")).await;
    assert_eq!(mock.tokens_issued(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    chat_ok(&sidecar, chat("g")).await;
    assert_eq!(mock.tokens_issued(), 2);
    // A config reload keeps the cached token.
    let renamed = model("g2", vec![d]);
    sidecar.reconfigure(snapshot("v2", vec![renamed])).await;
    chat_ok(&sidecar, chat("g2")).await;
    assert_eq!(mock.tokens_issued(), 2);
    let token_requests: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .collect();
    assert_eq!(token_requests.len(), 2);
    assert_eq!(
        token_requests[0].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn vertex_project_comes_from_the_deployment_or_the_key() {
    let mock = MockGemini::start().await;
    let mut other = deployment(&mock, Api::Vertex, "g", "gemini-2.5-flash");
    other.project = Some("someone-elses-project".into());
    let sidecar = Running::start(Some(snapshot("v1", vec![model("g", vec![other])]))).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("g")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("aiplatform.endpoints.predict")
    );
}

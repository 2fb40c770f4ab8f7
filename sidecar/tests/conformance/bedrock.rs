//! AWS Bedrock through the conformance suite, and the cases only Bedrock has: SigV4
//! signing (checked by the mock on every request) and API keys, Converse's shape and
//! ConverseStream's binary eventstream (re-cut, broken and failing), exceptions and
//! their retries, cache tokens, guardrails and InvokeModel embeddings (structured
//! output, reasoning and parallel tool calls are in `bedrock_features`). Upstream
//! request bodies are checked field by field against `tests/golden/bedrock/`.

use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::Reply;
use llmesh_tests::bedrock::eventstream::Message;
use llmesh_tests::bedrock::sigv4::Credentials;
use llmesh_tests::bedrock::{self, Bedrock, MockBedrock};
use serde_json::{Value, json};

use crate::assemble::stream_chat;
use crate::golden;
use crate::suite::{Behaviour, Upstream, last_body, mock_model, serving, streamed, with_png};
use crate::support::*;

impl Upstream for MockBedrock {
    async fn start() -> Self {
        MockBedrock::start().await
    }

    fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec {
        // Bedrock names its failures by exception, not by status.
        let model = match behaviour {
            Behaviour::Error(status) => format!("mock-exception-{}", exception(status)),
            // Claude 3.7 thinks when the request turns thinking on.
            Behaviour::Thinking => "us.anthropic.claude-3-7-sonnet-20250219-v1:0".to_owned(),
            other => mock_model(other, CLAUDE),
        };
        bedrock_deployment(self, "bedrock", &model)
    }

    fn bodies(&self) -> Vec<Value> {
        llmesh_tests::Mock::bodies(self)
    }

    fn error_statuses(&self) -> Vec<(u16, u16)> {
        [400, 403, 404, 429, 500, 503].map(|s| (s, s)).to_vec()
    }

    fn structured_schema(&self, sent: &Value) -> Option<Value> {
        // Claude's Messages body, passed through InvokeModel, carries Anthropic's.
        if let Some(schema) = sent.pointer("/output_config/format/schema") {
            return Some(schema.clone());
        }
        // Converse: native structured output, the schema as a string of JSON...
        let native = "/outputConfig/textFormat/structure/jsonSchema/schema";
        if let Some(schema) = sent.pointer(native).and_then(Value::as_str) {
            return serde_json::from_str(schema).ok();
        }
        // ...or the forced JSON tool.
        let tools = sent.pointer("/toolConfig/tools")?.as_array()?;
        let tool = tools
            .iter()
            .find(|t| t["toolSpec"]["name"] == "json_response")?;
        (sent.pointer("/toolConfig/toolChoice/tool/name") == Some(&json!("json_response")))
            .then(|| tool["toolSpec"]["inputSchema"]["json"].clone())
    }

    fn tool_image_paths(&self) -> &'static [&'static str] {
        &[
            // Converse (chat and Responses calls).
            "$.messages[*].content[*].toolResult.content[*].image.source.bytes",
            // Claude's own Messages body, passed through InvokeModel.
            "$.messages[*].content[*].content[*].source.data",
        ]
    }
}

/// The exception Bedrock answers with `status`.
fn exception(status: u16) -> &'static str {
    match status {
        400 => "ValidationException",
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    }
}

crate::conformance!(MockBedrock);
// Text and thinking go to Claude, which serves Messages itself (InvokeModel); the other
// cases' mock models are not Claude, so they go through chat (Converse). Responses
// always go through chat: thinking becomes Claude's `thinking` in Converse, structured
// output the forced JSON tool (Claude 3.5; see `bedrock_features` for the native one).
crate::messages_conformance!(
    MockBedrock,
    messages_stop_sequence_via_chat,
    messages_tool_result_image,
    messages_thinking,
    messages_structured_output,
);
crate::responses_conformance!(
    MockBedrock,
    responses_tool_result_image,
    responses_reasoning,
    responses_structured_output,
);

/// A realistic model id: its `:` must be percent-encoded in the path and signed as
/// `%253A`.
const CLAUDE: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

fn creds_of(c: &Credentials) -> AwsCredentials {
    AwsCredentials {
        access_key_id: SecretString::new(c.access_key_id.clone()),
        secret_access_key: SecretString::new(c.secret_access_key.clone()),
        session_token: c.session_token.clone().map(SecretString::new),
    }
}

/// A deployment of `model_id` on the mock, signing with its credentials.
pub fn bedrock_deployment(mock: &MockBedrock, name: &str, model_id: &str) -> DeploymentSpec {
    let mut d = DeploymentSpec::new(name, ProviderKind::Bedrock, model_id);
    d.base_url = Some(mock.base_url());
    d.region = Some(mock.region().into());
    d.aws = Some(creds_of(mock.credentials()));
    d
}

async fn start(mock: &MockBedrock, model_id: &str) -> Running {
    serving(bedrock_deployment(mock, "bedrock", model_id)).await
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}
    ])
}

#[tokio::test]
async fn plain_chat_with_a_system_prompt_is_signed_and_translated() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, CLAUDE).await;
    let (status, headers, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"}
        ], "temperature": 0.5, "max_tokens": 64}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-deployment"), "bedrock");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], CLAUDE);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 10);
    let seen = &mock.requests()[0];
    assert_eq!(
        seen.path,
        "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    );
    let auth = seen.headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIAMOCKBEDROCK00001/"),
        "{auth}"
    );
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"));
    assert_ne!(
        auth, "Bearer sk-client-secret",
        "the client's key never goes upstream"
    );
    golden::check("bedrock", "plain_chat", &seen.json());
}

#[tokio::test]
async fn multi_turn_conversations_alternate_roles() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, CLAUDE).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [
            {"role": "user", "content": "My name is Ada."},
            {"role": "user", "content": [{"type": "text", "text": "Remember it."}]},
            {"role": "assistant", "content": "Noted, Ada."},
            {"role": "user", "content": "What is my name?"}
        ], "user": "user-42"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: What is my name?"
    );
    golden::check("bedrock", "multi_turn", &last_body(&mock));
}

#[tokio::test]
async fn single_and_parallel_tool_calls() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model(
                "one",
                vec![bedrock_deployment(&mock, "a", "us.mock-tool-call-v1:0")],
            ),
            model(
                "many",
                vec![bedrock_deployment(
                    &mock,
                    "b",
                    "us.mock-parallel-tools-v1:0",
                )],
            ),
        ],
    )))
    .await;
    let request = |model: &str| {
        json!({"model": model, "messages": [{"role": "user", "content": "Weather in Paris?"}],
               "tools": weather_tools(), "tool_choice": "auto"})
    };
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", request("one")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], "Let me use my tools.");
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("tooluse_"));
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock-city", "unit": "celsius"}));
    golden::check("bedrock", "tools", &last_body(&mock));

    let (_, _, body) = post(sidecar.api, "/v1/chat/completions", request("many")).await;
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = calls
        .iter()
        .map(|c| c["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
}

#[tokio::test]
async fn tool_results_round_trip() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, "us.mock-tool-call-v1:0").await;
    let (_, _, first) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": "Weather in Paris?"}],
               "tools": weather_tools()}),
    )
    .await;
    let assistant = first["choices"][0]["message"].clone();
    let call_id = assistant["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "tools": weather_tools(), "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            assistant,
            {"role": "tool", "tool_call_id": call_id, "content": "{\"temp\":21}"}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        format!("mock reply to tool results: {call_id}={{\"temp\":21}}")
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let mut sent = last_body(&mock);
    // Tool use ids are the mock's counters; the golden file holds a placeholder.
    let placeholder = json!("tooluse_ID");
    sent["messages"][1]["content"][1]["toolUse"]["toolUseId"] = placeholder.clone();
    sent["messages"][2]["content"][0]["toolResult"]["toolUseId"] = placeholder;
    golden::check("bedrock", "tool_result", &sent);
}

#[tokio::test]
async fn streamed_text_and_usage() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, CLAUDE).await;
    let got = stream_chat(
        sidecar.api,
        json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "stream this please"}]}),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got.error.is_none(), "{:?}", got.error);
    assert!(got.done && got.one_id);
    assert_eq!(got.chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(got.text, "mock reply to: stream this please");
    assert_eq!(got.finish_reason.as_deref(), Some("stop"));
    let usage = got.usage.unwrap();
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(3), Some(6))
    );
    assert!(mock.requests()[0].path.ends_with("/converse-stream"));
    assert_eq!(
        mock.requests()[0].headers["accept"],
        "application/vnd.amazon.eventstream"
    );

    // Without include_usage there is no usage chunk; frames split anywhere still decode.
    mock.enqueue(Reply::ok().with_rechunk(7));
    let got = stream_chat(sidecar.api, streamed("chat", "again")).await;
    assert_eq!(got.text, "mock reply to: again");
    assert!(got.usage.is_none() && got.done);
}

#[tokio::test]
async fn streamed_tool_calls_arrive_intact() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, "us.mock-parallel-tools-v1:0").await;
    let got = stream_chat(
        sidecar.api,
        json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "Weather and time?"}], "tools": weather_tools()}),
    )
    .await;
    assert!(got.done, "{:?}", got.error);
    assert_eq!(got.text, "Let me use my tools.");
    assert_eq!(got.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(got.tool_calls.len(), 2);
    assert_eq!(got.tool_calls[0].1, "get_weather");
    assert_eq!(got.tool_calls[1].1, "get_time");
    let weather: Value = serde_json::from_str(&got.tool_calls[0].2).unwrap();
    assert_eq!(weather, json!({"city": "mock-city", "unit": "celsius"}));
    let time: Value = serde_json::from_str(&got.tool_calls[1].2).unwrap();
    assert_eq!(time, json!({"timezone": "mock-timezone"}));
    assert!(
        got.tool_calls
            .iter()
            .all(|(id, _, _)| id.starts_with("tooluse_"))
    );
}

#[tokio::test]
async fn vision_input_sends_image_bytes() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, CLAUDE).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": with_png("What is in this image?")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: What is in this image? [image/png 70 bytes]"
    );
    golden::check("bedrock", "vision", &last_body(&mock));

    // URLs are fetched by the sidecar behind its SSRF guard (see tests/images.rs), which
    // refuses loopback before anything is sent.
    let before = mock.request_count();
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1/cat.png"}}]}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "messages");
    assert_eq!(body["error"]["code"], "image_url_refused");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data URL")
    );
    assert_eq!(
        mock.request_count(),
        before,
        "refused before any upstream call"
    );
}

#[tokio::test]
async fn stop_sequences_max_tokens_and_content_filters() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model("chat", vec![bedrock_deployment(&mock, "a", CLAUDE)]),
            model(
                "guarded",
                vec![bedrock_deployment(&mock, "b", "mock-guardrail")],
            ),
        ],
    )))
    .await;
    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": "one two three"}], "stop": ["two"]}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: one "
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    golden::check("bedrock", "stop", &last_body(&mock));

    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": "one two three"}], "max_completion_tokens": 3}),
    )
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], "mock reply to:");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(last_body(&mock)["inferenceConfig"], json!({"maxTokens": 3}));

    let got = stream_chat(
        sidecar.api,
        json!({"model": "chat", "stream": true, "max_tokens": 2, "messages": [{"role": "user", "content": "a b c"}]}),
    )
    .await;
    assert_eq!(got.finish_reason.as_deref(), Some("length"));
    assert_eq!(got.text, "mock reply");

    let (_, _, body) = post(sidecar.api, "/v1/chat/completions", chat("guarded")).await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn cache_tokens_are_reported() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, "mock-cache").await;
    let (_, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    // "hello": 1 input token; the mock reads 3x and writes 1x that from its cache.
    assert_eq!(body["usage"]["prompt_tokens"], 1 + 3 + 1);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cache_creation_tokens"],
        1
    );
    let got = stream_chat(
        sidecar.api,
        json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    let usage = got.usage.unwrap();
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 3);
    assert_eq!(
        usage["total_tokens"],
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn exceptions_map_to_openai_errors_with_the_right_retries() {
    let mock = MockBedrock::start().await;
    // (exception, status the client sees, OpenAI error type, upstream attempts). A
    // timeout that outlives its retries reaches the client as 504, like any other.
    let cases = [
        ("ValidationException", 400, "invalid_request_error", 1),
        ("AccessDeniedException", 403, "permission_error", 1),
        ("ResourceNotFoundException", 404, "not_found_error", 1),
        ("ThrottlingException", 429, "rate_limit_error", 3),
        ("ModelNotReadyException", 429, "rate_limit_error", 3),
        ("InternalServerException", 500, "server_error", 3),
        ("ServiceUnavailableException", 503, "server_error", 3),
        ("ModelErrorException", 502, "server_error", 3),
        ("ModelTimeoutException", 504, "server_error", 2),
    ];
    for (name, status, kind, attempts) in cases {
        let sidecar = start(&mock, &format!("mock-exception-{name}")).await;
        let before = mock.request_count();
        let (got, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
        assert_eq!(got.as_u16(), status, "{name}: {body}");
        assert_eq!(body["error"]["type"], kind, "{name}");
        assert!(body["error"]["message"].is_string());
        assert_eq!(mock.request_count() - before, attempts, "{name}");
    }
}

#[tokio::test]
async fn throttling_and_context_window_fall_back() {
    let mock = MockBedrock::start().await;
    let mut primary = model(
        "chat",
        vec![bedrock_deployment(
            &mock,
            "p",
            "mock-exception-ThrottlingException",
        )],
    );
    primary.fallbacks = vec!["backup".into()];
    let mut small = model(
        "small",
        vec![bedrock_deployment(&mock, "s", "mock-context-length")],
    );
    small.context_window_fallbacks = vec!["backup".into()];
    let backup = model(
        "backup",
        vec![bedrock_deployment(&mock, "b", "amazon.nova-lite-v1:0")],
    );
    let sidecar = Running::start(Some(snapshot("v1", vec![primary, small, backup]))).await;
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-model"), "backup");
    assert_eq!(body["model"], "amazon.nova-lite-v1:0");
    let (status, headers, _) = post(sidecar.api, "/v1/chat/completions", chat("small")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-model"), "backup");
}

#[tokio::test]
async fn bad_credentials_are_403_and_session_tokens_work() {
    let creds = Credentials::new("ASIAMOCKTEMPORARY001", "temp/secret")
        .with_session_token("FwoGZXIvYXdzEJr//////////mock");
    let mock = MockBedrock::start_with(Bedrock::with_credentials(creds.clone())).await;
    let mut good = bedrock_deployment(&mock, "good", CLAUDE);
    good.aws = Some(creds_of(&creds));
    let mut wrong = bedrock_deployment(&mock, "wrong", CLAUDE);
    wrong.aws = Some(creds_of(
        &Credentials::new("ASIAMOCKTEMPORARY001", "not-it")
            .with_session_token("FwoGZXIvYXdzEJr//////////mock"),
    ));
    let mut key = bedrock_deployment(&mock, "key", CLAUDE);
    key.aws = None;
    key.api_key = Some(SecretString::new(bedrock::API_KEY));
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model("good", vec![good]),
            model("wrong", vec![wrong]),
            model("key", vec![key]),
        ],
    )))
    .await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("good")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        mock.requests()[0].headers["x-amz-security-token"],
        "FwoGZXIvYXdzEJr//////////mock"
    );
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("wrong")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["type"], "permission_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature")
    );
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("key")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        mock.requests().last().unwrap().headers["authorization"],
        format!("Bearer {}", bedrock::API_KEY)
    );
}

#[tokio::test]
async fn malformed_answers_are_retried_then_a_clean_502() {
    let mock = MockBedrock::start().await;
    let sidecar = start(&mock, "mock-malformed").await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(mock.request_count(), 3, "a malformed answer is retried");
}

#[tokio::test]
async fn broken_streams_end_with_an_error_event() {
    let mock = MockBedrock::start().await;
    for (model_id, code) in [
        ("mock-stream-bad-crc", "upstream_malformed_stream"),
        ("mock-stream-bad-prelude", "upstream_malformed_stream"),
        ("mock-stream-malformed", "upstream_malformed_stream"),
        (
            "mock-stream-exception-throttlingException",
            "upstream_stream_error",
        ),
        (
            "mock-stream-exception-modelStreamErrorException",
            "upstream_stream_error",
        ),
        ("mock-stream-error", "upstream_stream_error"),
    ] {
        let sidecar = start(&mock, model_id).await;
        let got = stream_chat(sidecar.api, streamed("chat", "hello there")).await;
        assert_eq!(
            got.status, 200,
            "{model_id}: the first content already went out"
        );
        assert_eq!(got.text, "mock ", "{model_id}");
        let error = got
            .error
            .unwrap_or_else(|| panic!("{model_id}: no error event"));
        assert_eq!(error["error"]["code"], code, "{model_id}: {error}");
        assert!(!got.done, "{model_id}: no [DONE] after an error");
    }
    let sidecar = start(&mock, "mock-stream-cut").await;
    let got = stream_chat(sidecar.api, streamed("chat", "hello there")).await;
    assert!(got.error.is_some() && !got.done);
    let sidecar = start(&mock, "mock-stream-unknown").await;
    let got = stream_chat(sidecar.api, streamed("chat", "hi")).await;
    assert!(
        got.done && got.error.is_none(),
        "unknown event types are skipped"
    );
}

#[tokio::test]
async fn a_stream_failing_before_content_is_retried() {
    let mock = MockBedrock::start().await;
    mock.enqueue(Reply::events(&[
        Message::event("messageStart", &json!({"role": "assistant"})),
        Message::exception(
            "throttlingException",
            "Too many requests, please wait before trying again.",
        ),
    ]));
    let sidecar = start(&mock, CLAUDE).await;
    let got = stream_chat(sidecar.api, streamed("chat", "hi")).await;
    assert!(got.done && got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.text, "mock reply to: hi");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn embeddings_through_invoke_model() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model(
                "titan",
                vec![bedrock_deployment(
                    &mock,
                    "t",
                    "amazon.titan-embed-text-v2:0",
                )],
            ),
            model(
                "cohere",
                vec![bedrock_deployment(&mock, "c", "cohere.embed-english-v3")],
            ),
        ],
    )))
    .await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "titan", "input": "embed these words", "dimensions": 256}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "embedding");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert!(
        mock.requests()[0]
            .path
            .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke")
    );
    golden::check("bedrock", "titan_embed", &last_body(&mock));

    // Several inputs to Titan: see embeddings.rs.

    let (status, _, body) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "cohere", "input": ["first text", "second"], "encoding_format": "base64",
               "input_type": "search_query"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    // 1024 little-endian f32s, base64-encoded.
    assert_eq!(
        data[0]["embedding"].as_str().unwrap().len(),
        4096 / 3 * 4 + 4
    );
    golden::check("bedrock", "cohere_embed", &last_body(&mock));
}

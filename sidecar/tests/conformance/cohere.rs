//! Cohere's v2 API through the conformance suite, and the cases only Cohere has: tool
//! plans and a required tool, billed units, citations and `ERROR` finishes in streams,
//! Cohere's error statuses and their retries, v2 embeddings. Upstream request bodies are
//! checked field by field against `tests/golden/cohere/`.

use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::Reply;
use llmesh_tests::bedrock::MockBedrock;
use llmesh_tests::cohere::{self, MockCohere};
use serde_json::{Value, json};

use crate::assemble::stream_chat;
use crate::bedrock::bedrock_deployment;
use crate::golden;
use crate::suite::{Behaviour, Upstream, last_body, mock_model, serving, streamed, with_png};
use crate::support::*;

impl Upstream for MockCohere {
    async fn start() -> Self {
        MockCohere::start().await
    }

    fn deployment(&self, behaviour: Behaviour) -> DeploymentSpec {
        let model = mock_model(behaviour, COMMAND);
        cohere_deployment(self, "cohere", &model)
    }

    fn bodies(&self) -> Vec<Value> {
        llmesh_tests::Mock::bodies(self)
    }

    fn error_statuses(&self) -> Vec<(u16, u16)> {
        [400, 401, 402, 404, 429, 500, 503].map(|s| (s, s)).to_vec()
    }

    fn structured_schema(&self, sent: &Value) -> Option<Value> {
        (sent["response_format"]["type"] == "json_object")
            .then(|| sent["response_format"]["json_schema"].clone())
    }

    fn tool_image_paths(&self) -> &'static [&'static str] {
        // Cohere's tool results are text (or documents): images are refused.
        &[]
    }
}

crate::conformance!(MockCohere);
// The mock never reasons (and Cohere refuses `reasoning_effort`), so no thinking case;
// Cohere's tool results carry no images, so they are refused.
crate::messages_conformance!(
    MockCohere,
    messages_stop_sequence_via_chat,
    messages_tool_result_image_refused,
    messages_structured_output,
);
crate::responses_conformance!(
    MockCohere,
    responses_tool_result_image_refused,
    responses_structured_output,
);

const COMMAND: &str = "command-a-03-2025";

fn cohere_deployment(mock: &MockCohere, name: &str, model_id: &str) -> DeploymentSpec {
    let mut d = DeploymentSpec::new(name, ProviderKind::Cohere, model_id);
    d.base_url = Some(mock.base_url());
    d.api_key = Some(SecretString::new(mock.api_key()));
    d
}

async fn start(mock: &MockCohere, model_id: &str) -> Running {
    serving(cohere_deployment(mock, "cohere", model_id)).await
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}
    ])
}

#[tokio::test]
async fn plain_chat_with_a_system_prompt() {
    let mock = MockCohere::start().await;
    let sidecar = start(&mock, COMMAND).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"}
        ], "temperature": 0.3, "top_p": 0.9, "max_tokens": 50, "seed": 11}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], COMMAND);
    assert!(body["id"].as_str().unwrap().starts_with("c0e1e2e3-"));
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello there"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // Billed units: 5 input words, 5 output words (not the template-inflated tokens).
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    let seen = &mock.requests()[0];
    assert_eq!(seen.path, "/v2/chat");
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {}", cohere::API_KEY)
    );
    golden::check("cohere", "plain_chat", &seen.json());
}

#[tokio::test]
async fn multi_turn_and_tool_round_trip() {
    let mock = MockCohere::start().await;
    let sidecar = start(&mock, "mock-tool-call").await;
    let (status, _, first) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [
            {"role": "user", "content": "Hi, I am in Paris."},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What's the weather?"}
        ], "tools": tools()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let message = first["choices"][0]["message"].clone();
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(message["content"], "I will use get_weather.");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], r#"{"city":"mock-city"}"#);
    golden::check("cohere", "tools", &last_body(&mock));

    let id = call["id"].as_str().unwrap().to_owned();
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "tools": tools(), "messages": [
            {"role": "user", "content": "Hi, I am in Paris."},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What's the weather?"},
            message,
            {"role": "tool", "tool_call_id": id, "content": "21C and sunny"}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        format!("mock reply to tool results: {id}=21C and sunny")
    );
    let mut sent = last_body(&mock);
    sent["messages"][3]["tool_calls"][0]["id"] = json!("CALL_ID");
    sent["messages"][4]["tool_call_id"] = json!("CALL_ID");
    golden::check("cohere", "tool_result", &sent);
}

#[tokio::test]
async fn parallel_and_required_tool_calls() {
    let mock = MockCohere::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model(
                "many",
                vec![cohere_deployment(&mock, "a", "mock-parallel-tools")],
            ),
            model("plain", vec![cohere_deployment(&mock, "b", COMMAND)]),
        ],
    )))
    .await;
    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "many", "messages": [{"role": "user", "content": "weather and time"}], "tools": tools()}),
    )
    .await;
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 2);
    assert_ne!(calls[0]["id"], calls[1]["id"]);
    // A named tool_choice: only that tool is offered, and a call is required.
    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "plain", "messages": [{"role": "user", "content": "time?"}], "tools": tools(),
               "tool_choice": {"type": "function", "function": {"name": "get_time"}}}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_time"
    );
    let sent = last_body(&mock);
    assert_eq!(sent["tool_choice"], "REQUIRED");
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn streamed_text_and_tool_calls() {
    let mock = MockCohere::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model("chat", vec![cohere_deployment(&mock, "a", COMMAND)]),
            model(
                "tools",
                vec![cohere_deployment(&mock, "b", "mock-parallel-tools")],
            ),
        ],
    )))
    .await;
    let got = stream_chat(
        sidecar.api,
        json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "stream this please"}]}),
    )
    .await;
    assert!(got.done && got.one_id, "{:?}", got.error);
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
    assert_eq!(last_body(&mock)["stream"], true);

    let got = stream_chat(
        sidecar.api,
        json!({"model": "tools", "stream": true, "messages": [{"role": "user", "content": "both"}], "tools": tools()}),
    )
    .await;
    assert!(got.done, "{:?}", got.error);
    assert_eq!(got.text, "I will use get_weather and get_time.");
    assert_eq!(got.finish_reason.as_deref(), Some("tool_calls"));
    let names: Vec<&str> = got.tool_calls.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    assert_eq!(got.tool_calls[0].2, r#"{"city":"mock-city"}"#);
    assert_eq!(got.tool_calls[1].2, r#"{"timezone":"mock-timezone"}"#);
}

#[tokio::test]
async fn vision_stop_sequences_and_max_tokens() {
    let mock = MockCohere::start().await;
    let sidecar = start(&mock, COMMAND).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": with_png("Describe")}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: Describe [image image/png 70 bytes]"
    );
    golden::check("cohere", "vision", &last_body(&mock));

    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": "one two three"}], "stop": "two"}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: one "
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(last_body(&mock)["stop_sequences"], json!(["two"]));

    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": [{"role": "user", "content": "one two three"}], "max_completion_tokens": 2}),
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["choices"][0]["message"]["content"], "mock reply");
}

#[tokio::test]
async fn errors_map_with_the_right_retries() {
    let mock = MockCohere::start().await;
    // (status from Cohere, status the client sees, OpenAI type, upstream attempts).
    let cases = [
        (400, 400, "invalid_request_error", 1),
        (401, 401, "authentication_error", 1),
        (402, 402, "insufficient_quota", 1),
        (404, 404, "not_found_error", 1),
        (429, 429, "rate_limit_error", 3),
        (499, 502, "server_error", 3),
        (500, 500, "server_error", 3),
        (503, 503, "server_error", 3),
    ];
    for (upstream, status, kind, attempts) in cases {
        let sidecar = start(&mock, &format!("mock-error-{upstream}")).await;
        let before = mock.request_count();
        let (got, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
        assert_eq!(got.as_u16(), status, "{upstream}: {body}");
        assert_eq!(body["error"]["type"], kind, "{upstream}");
        assert_eq!(mock.request_count() - before, attempts, "{upstream}");
    }
    // A wrong key is Cohere's 401, passed on; the message says why.
    let mut wrong = cohere_deployment(&mock, "wrong", COMMAND);
    wrong.api_key = Some(SecretString::new("nope"));
    let sidecar = Running::start(Some(snapshot("v1", vec![model("chat", vec![wrong])]))).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "invalid api token");
}

#[tokio::test]
async fn cohere_falls_back_to_bedrock_and_context_windows_fall_back() {
    let cohere_mock = MockCohere::start().await;
    let bedrock_mock = MockBedrock::start().await;
    let mut primary = model(
        "chat",
        vec![cohere_deployment(&cohere_mock, "c", "mock-error-503")],
    );
    primary.fallbacks = vec!["bedrock".into()];
    let mut small = model(
        "small",
        vec![cohere_deployment(&cohere_mock, "s", "mock-context-length")],
    );
    small.context_window_fallbacks = vec!["bedrock".into()];
    let b = bedrock_deployment(&bedrock_mock, "b", "amazon.nova-pro-v1:0");
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![primary, small, model("bedrock", vec![b])],
    )))
    .await;
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-model"), "bedrock");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: hello"
    );
    let got = stream_chat(sidecar.api, streamed("chat", "hello")).await;
    assert!(
        got.done && got.text == "mock reply to: hello",
        "streams fall back too"
    );
    let (status, headers, _) = post(sidecar.api, "/v1/chat/completions", chat("small")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-model"), "bedrock");
}

#[tokio::test]
async fn malformed_answers_and_broken_streams() {
    let mock = MockCohere::start().await;
    let sidecar = start(&mock, "mock-malformed").await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(mock.request_count(), 3);

    // The malformed event is the first with content: nothing reached the client yet,
    // so it is a clean 502 after the retries.
    let sidecar = start(&mock, "mock-stream-malformed").await;
    let got = stream_chat(sidecar.api, streamed("chat", "hello there")).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.error.unwrap()["error"]["type"], "server_error");
    // finish_reason ERROR after the content: an error event, no [DONE].
    let sidecar = start(&mock, "mock-stream-error").await;
    let got = stream_chat(sidecar.api, streamed("chat", "hello there")).await;
    assert_eq!(got.text, "mock reply to: hello there");
    let error = got.error.expect("an error event");
    assert_eq!(error["error"]["code"], "upstream_stream_error");
    assert!(!got.done);
    let sidecar = start(&mock, "mock-stream-cut").await;
    let got = stream_chat(sidecar.api, streamed("chat", "hello there")).await;
    assert!(got.error.is_some() && !got.done);
    let sidecar = start(&mock, "mock-stream-citations").await;
    let got = stream_chat(sidecar.api, streamed("chat", "hi")).await;
    assert!(
        got.done && got.error.is_none(),
        "citation events are skipped"
    );

    // A stream that breaks before any content is retried.
    mock.enqueue(Reply::raw(200, "text/event-stream", vec![bytes::Bytes::from_static(
        b"event: message-start\ndata: {\"id\":\"x\",\"type\":\"message-start\"}\n\nevent: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\"}}\n\n",
    )]));
    let sidecar = start(&mock, COMMAND).await;
    let before = mock.request_count();
    let got = stream_chat(sidecar.api, streamed("chat", "hi")).await;
    assert!(got.done && got.error.is_none(), "{:?}", got.error);
    assert_eq!(mock.request_count() - before, 2);
}

#[tokio::test]
async fn embeddings_v2() {
    let mock = MockCohere::start().await;
    let sidecar = start(&mock, "embed-v4.0").await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "chat", "input": ["first text", "second"], "dimensions": 256}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 256);
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    golden::check("cohere", "embed", &last_body(&mock));
    let (status, _, body) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "chat", "input": "x", "encoding_format": "base64", "input_type": "search_query"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"][0]["embedding"].is_string());
    assert_eq!(last_body(&mock)["embedding_types"], json!(["base64"]));
}

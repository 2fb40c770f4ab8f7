//! Bedrock's model-dependent features through the running sidecar, against the mock
//! Bedrock checking them as Bedrock and its models do: `response_format` through the
//! forced JSON tool and through native structured output, whole and streamed; reasoning
//! whole and streamed, with the signed reasoning sent back on the next turn (which the
//! mock verifies); `parallel_tool_calls: false`; cache points with thinking on; and the
//! same features reached by Messages and Responses clients through the chat bridge.
//! Upstream request bodies are checked field by field against `tests/golden/bedrock/`.

use http::StatusCode;
use serde_json::{Value, json};

use crate::assemble::stream_chat;
use crate::bedrock::bedrock_deployment;
use crate::golden;
use crate::suite::{capital_schema, json_of, last_body, named_events, send, serving};
use crate::support::*;
use llmesh_tests::bedrock::MockBedrock;

const CLAUDE_35: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const CLAUDE_37: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";
const CLAUDE_45: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn weather() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}])
}

fn capital_format() -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "capital", "schema": capital_schema(), "strict": true}})
}

fn ask(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The thinking blocks of a streamed answer, whole: each signature delta closes a block
/// whose text is the reasoning streamed since the block before it.
fn streamed_thinking_blocks(chunks: &[Value]) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut text = String::new();
    for delta in chunks.iter().map(|c| &c["choices"][0]["delta"]) {
        text.push_str(delta["reasoning_content"].as_str().unwrap_or(""));
        for block in delta["thinking_blocks"].as_array().into_iter().flatten() {
            let mut block = block.clone();
            if block["type"] == "thinking" {
                block["thinking"] = json!(std::mem::take(&mut text));
            }
            blocks.push(block);
        }
    }
    blocks
}

#[tokio::test]
async fn json_mode_through_the_forced_tool_whole_and_streamed() {
    let mock = MockBedrock::start().await;
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", CLAUDE_35)).await;
    let request = json!({"model": "chat", "messages": ask("Capital of France?"), "response_format": capital_format()});
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], r#"{"capital":"mock-capital"}"#);
    assert!(message.get("tool_calls").is_none(), "{message}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    golden::check("bedrock", "json_tool", &last_body(&mock));

    let mut streamed = request;
    streamed["stream"] = json!(true);
    let got = stream_chat(sidecar.api, streamed).await;
    assert!(got.done && got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.text, r#"{"capital":"mock-capital"}"#);
    assert!(got.tool_calls.is_empty());
    assert_eq!(got.finish_reason.as_deref(), Some("stop"));

    // json_object: any object.
    let (_, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": ask("An object"), "response_format": {"type": "json_object"}}),
    )
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], "{}");
    assert_eq!(
        last_body(&mock)["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"],
        json!({"type": "object"})
    );
}

#[tokio::test]
async fn json_mode_with_the_clients_tools_lets_the_model_call_them() {
    let mock = MockBedrock::start().await;
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", CLAUDE_35)).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": ask("Weather in Paris?"), "tools": weather(),
               "response_format": capital_format()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The mock, made to call some tool (`any`), calls the client's first.
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let sent = last_body(&mock);
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
    assert_eq!(
        sent["toolConfig"]["tools"][2]["toolSpec"]["name"],
        "json_response"
    );
}

#[tokio::test]
async fn json_mode_natively_on_claude_4_5_whole_and_streamed() {
    let mock = MockBedrock::start().await;
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", CLAUDE_45)).await;
    let request = json!({"model": "chat", "messages": ask("Capital of France?"), "response_format": capital_format()});
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        r#"{"capital":"mock-capital"}"#
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    golden::check("bedrock", "json_native", &last_body(&mock));

    let mut streamed = request;
    streamed["stream"] = json!(true);
    let got = stream_chat(sidecar.api, streamed).await;
    assert!(got.done, "{:?}", got.error);
    assert_eq!(got.text, r#"{"capital":"mock-capital"}"#);
    assert_eq!(got.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn reasoning_comes_back_signed_and_goes_back_on_the_next_turn() {
    let mock = MockBedrock::start().await;
    let model_id = "us.anthropic.claude-3-7-sonnet-mock-tool-call";
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", model_id)).await;
    let first = json!({"model": "chat", "messages": ask("Weather in Paris?"), "tools": weather(),
                       "reasoning_effort": "low"});
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let assistant = body["choices"][0]["message"].clone();
    assert_eq!(
        assistant["reasoning_content"],
        "Thinking about: Weather in Paris?."
    );
    let blocks = assistant["thinking_blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["thinking"], assistant["reasoning_content"]);
    assert!(
        blocks[0]["signature"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    // Reasoning tokens count as output.
    assert_eq!(body["usage"]["completion_tokens"], 5 + 4 + 10);
    golden::check("bedrock", "reasoning", &last_body(&mock));

    let call_id = assistant["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = |assistant: Value| {
        json!({"model": "chat", "tools": weather(), "reasoning_effort": "low", "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            assistant,
            {"role": "tool", "tool_call_id": call_id, "content": "18C"}
        ]})
    };
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        second(assistant.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        format!("mock reply to tool results: {call_id}=18C")
    );
    let mut sent = last_body(&mock);
    // Tool use ids are the mock's counters; the golden file holds a placeholder.
    sent["messages"][1]["content"][2]["toolUse"]["toolUseId"] = json!("tooluse_ID");
    sent["messages"][2]["content"][0]["toolResult"]["toolUseId"] = json!("tooluse_ID");
    golden::check("bedrock", "reasoning_second_turn", &sent);

    // Without its signed reasoning the turn is refused, as Claude refuses it.
    let mut bare = assistant;
    bare.as_object_mut().unwrap().remove("thinking_blocks");
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", second(bare)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must start with a thinking block"),
        "{body}"
    );
}

#[tokio::test]
async fn streamed_reasoning_comes_back_signed_and_goes_back_on_the_next_turn() {
    let mock = MockBedrock::start().await;
    let model_id = "us.anthropic.claude-3-7-sonnet-mock-tool-call";
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", model_id)).await;
    let first = json!({"model": "chat", "stream": true, "messages": ask("Weather in Paris?"),
                       "tools": weather(), "thinking": {"type": "enabled", "budget_tokens": 2048}});
    let got = stream_chat(sidecar.api, first).await;
    assert!(got.done && got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.reasoning, "Thinking about: Weather in Paris?.");
    let blocks = streamed_thinking_blocks(&got.chunks);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0]["thinking"], got.reasoning.as_str());
    assert_eq!(got.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        last_body(&mock)["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2048}})
    );
    assert_eq!(last_body(&mock)["inferenceConfig"]["maxTokens"], 4096);

    let (id, name, arguments) = got.tool_calls[0].clone();
    let assistant = json!({"role": "assistant", "content": got.text, "reasoning_content": got.reasoning,
        "thinking_blocks": blocks,
        "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}]});
    let second = json!({"model": "chat", "stream": true, "tools": weather(),
        "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": id, "content": "18C"}
    ]});
    let got = stream_chat(sidecar.api, second).await;
    assert!(got.done && got.error.is_none(), "{:?}", got.error);
    assert_eq!(got.text, format!("mock reply to tool results: {id}=18C"));
}

#[tokio::test]
async fn adaptive_thinking_and_redacted_reasoning_round_trip() {
    let mock = MockBedrock::start().await;
    let model_id = "anthropic.claude-opus-4-6-v1-mock-redacted";
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", model_id)).await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "messages": ask("Hi"), "reasoning_effort": "high"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    golden::check("bedrock", "reasoning_adaptive", &last_body(&mock));
    let assistant = body["choices"][0]["message"].clone();
    let redacted = assistant["thinking_blocks"][1]["data"].clone();
    let kinds: Vec<&str> = assistant["thinking_blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["thinking", "redacted_thinking"]);
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "reasoning_effort": "high",
               "messages": [{"role": "user", "content": "Hi"}, assistant, {"role": "user", "content": "Again"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Both blocks went back as they came, ahead of the text.
    let sent = last_body(&mock);
    let turn = &sent["messages"][1]["content"];
    assert!(turn[0]["reasoningContent"]["reasoningText"]["signature"].is_string());
    assert_eq!(
        turn[1],
        json!({"reasoningContent": {"redactedContent": redacted}})
    );
    assert_eq!(turn[2]["text"], "mock reply to: Hi");
}

#[tokio::test]
async fn parallel_tool_calls_false_on_claude_and_refused_on_other_models() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model(
                "claude",
                vec![bedrock_deployment(
                    &mock,
                    "c",
                    "anthropic.claude-3-5-haiku-mock-parallel-tools",
                )],
            ),
            model(
                "nova",
                vec![bedrock_deployment(&mock, "n", "amazon.nova-pro-v1:0")],
            ),
        ],
    )))
    .await;
    let request = |model: &str, parallel: bool| {
        json!({"model": model, "messages": ask("Weather and time?"), "tools": weather(),
               "parallel_tool_calls": parallel})
    };
    let (_, _, body) = post(sidecar.api, "/v1/chat/completions", request("claude", true)).await;
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        request("claude", false),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let calls = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 1, "{body}");
    golden::check("bedrock", "parallel_off", &last_body(&mock));

    // Other models cannot honour it, nor reasoning: refused before any upstream call.
    let before = mock.request_count();
    for request in [
        request("nova", false),
        json!({"model": "nova", "messages": ask("Hi"), "reasoning_effort": "low"}),
    ] {
        let (status, _, body) = post(sidecar.api, "/v1/chat/completions", request).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "unsupported_parameter", "{body}");
    }
    assert_eq!(mock.request_count(), before);
}

#[tokio::test]
async fn cache_points_still_work_with_thinking_on() {
    let mock = MockBedrock::start().await;
    let sidecar = serving(bedrock_deployment(&mock, "bedrock", CLAUDE_37)).await;
    let cache = json!({"type": "ephemeral"});
    let (status, _, body) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "chat", "reasoning_effort": "medium", "max_tokens": 8000, "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are terse.", "cache_control": cache}]},
            {"role": "user", "content": [{"type": "text", "text": "A long document.", "cache_control": cache},
                                         {"type": "text", "text": "Summarise it."}]}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["choices"][0]["message"]["reasoning_content"].is_string());
    // The mock caches up to its cache points and reports it.
    assert!(body["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64() > Some(0));
    golden::check("bedrock", "cache_thinking", &last_body(&mock));
}

/// Messages and Responses clients reach the same features through the chat bridge:
/// thinking on Nova 2 (a model that does not serve Messages itself), and structured
/// output natively on Claude 4.5.
#[tokio::test]
async fn messages_and_responses_clients_get_them_through_the_bridge() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model(
                "nova",
                vec![bedrock_deployment(&mock, "n", "us.amazon.nova-2-lite-v1:0")],
            ),
            model("claude", vec![bedrock_deployment(&mock, "c", CLAUDE_45)]),
        ],
    )))
    .await;
    let headers = [("x-api-key", "sk"), ("anthropic-version", "2023-06-01")];
    let body = json!({"model": "nova", "max_tokens": 4096, "messages": ask("Hello"),
                      "thinking": {"type": "enabled", "budget_tokens": 2048}});
    let (status, _, bytes) = send(&sidecar, "/v1/messages", &headers, &body).await;
    let answer = json_of(&bytes);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["content"][0]["type"], "thinking", "{answer}");
    assert_eq!(answer["content"][0]["thinking"], "Thinking about: Hello.");
    assert_eq!(answer["content"][1]["text"], "mock reply to: Hello");
    assert_eq!(
        last_body(&mock)["additionalModelRequestFields"],
        json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "medium"}})
    );
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, _, bytes) = send(&sidecar, "/v1/messages", &headers, &streamed).await;
    assert_eq!(status, StatusCode::OK);
    let thinking: String = named_events(&bytes)
        .iter()
        .filter_map(|(_, e)| e["delta"]["thinking"].as_str())
        .collect();
    assert_eq!(thinking, "Thinking about: Hello.");

    let body = json!({"model": "claude", "input": "Capital of France?",
        "text": {"format": {"type": "json_schema", "name": "capital", "schema": capital_schema(), "strict": true}}});
    let (status, _, bytes) = send(&sidecar, "/v1/responses", &[], &body).await;
    let answer = json_of(&bytes);
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["output"][0]["content"][0]["text"],
        r#"{"capital":"mock-capital"}"#
    );
    assert!(last_body(&mock).get("outputConfig").is_some());
}

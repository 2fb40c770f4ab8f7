//! Unit tests of the Anthropic translation: request, response, stream and errors.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::*;
use crate::config::snapshot::{ProviderKind, SecretString};
use crate::domain::ErrorClass;
use crate::provider::test_support::{self, object};

fn dialect() -> Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Anthropic);
    spec.api_key = Some(SecretString::new("sk-ant"));
    build(&spec).unwrap()
}

fn view<'a>(body: &'a Map<String, Value>, stream: bool) -> CallView<'a> {
    CallView {
        default_max_tokens: Some(2048),
        anthropic_beta: None,
        ..test_support::view(Endpoint::ChatCompletions, body, stream, "claude-sonnet-4-5")
    }
}

fn translate(body: Value) -> Value {
    let map = object(&body);
    test_support::sent(&dialect(), &view(&map, false))
        .unwrap()
        .1
}

#[test]
fn request_maps_system_roles_tools_and_parameters() {
    let sent = translate(json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "user", "content": [{"type": "text", "text": "Please."}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "24C"}
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "user": "u-1",
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false
    }));
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(sent["max_tokens"], 2048, "the model's default max_tokens");
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Answer in English."}])
    );
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "consecutive same-role turns merged: {messages:?}"
    );
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"].as_array().unwrap().len(), 2);
    assert_eq!(
        messages[1]["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}})
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(
        messages[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "18C"}]},
            {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "24C"}]}
        ])
    );
    assert_eq!(sent["temperature"], 0.2);
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["metadata"], json!({"user_id": "u-1"}));
    assert_eq!(
        sent["tools"][0]["input_schema"]["properties"]["city"]["type"],
        "string"
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    assert!(sent.get("stream").is_none());
}

#[test]
fn request_maps_images_tool_choice_forms_and_json_mode() {
    let sent = translate(json!({
        "model": "chat",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in these?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
        ]}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object", "properties": {"items": {"type": "array"}}}}}
    }));
    assert_eq!(sent["max_tokens"], 10);
    let content = &sent["messages"][0]["content"];
    assert_eq!(
        content[1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
    );
    assert_eq!(
        content[2],
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
    );
    assert_eq!(sent["tools"][0]["name"], "json_response");
    assert_eq!(
        sent["tools"][0]["input_schema"]["properties"]["items"]["type"],
        "array"
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "json_response", "disable_parallel_tool_use": true})
    );

    for (choice, expected) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        let sent = translate(
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "f"}}]}),
        );
        assert_eq!(sent["tool_choice"], expected);
        assert_eq!(
            sent["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
    }
}

#[test]
fn request_refuses_what_anthropic_cannot_take() {
    let d = dialect();
    for (body, param) in [
        (
            json!({"messages": [{"role": "user", "content": "x"}], "n": 2}),
            "n",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]}]}),
            "messages",
        ),
        (
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            "messages",
        ),
    ] {
        let map = body.as_object().unwrap().clone();
        match d.dialect.request(&view(&map, false)) {
            Err(TranslateError::Invalid { param: p, .. }) => assert_eq!(p, param, "{body}"),
            // Droppable under dropUnsupportedParams; refused by name all the same.
            Err(TranslateError::UnsupportedValue { param: p, .. }) => {
                assert_eq!((p, param), ("n", "n"), "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    let supported = d
        .dialect
        .supported_params(Endpoint::ChatCompletions)
        .unwrap();
    assert!(!supported.contains(&"logprobs") && !supported.contains(&"presence_penalty"));
    let empty = Map::new();
    let embeddings = CallView {
        endpoint: Endpoint::Embeddings,
        ..view(&empty, false)
    };
    assert!(d.dialect.request(&embeddings).is_err());
}

#[test]
fn request_sets_headers_and_url() {
    let d = dialect();
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let map = body.as_object().unwrap().clone();
    let request = d.dialect.request(&view(&map, true)).unwrap();
    assert_eq!(
        request.uri().to_string(),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(request.headers()["anthropic-version"], "2023-06-01");
    let sent: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(sent["stream"], true);
    let Credential::Header(name, value) = &d.credential else {
        panic!()
    };
    assert_eq!(name.as_str(), "x-api-key");
    assert_eq!(value.to_str().unwrap(), "sk-ant");
}

#[test]
fn reasoning_effort_enables_thinking_within_max_tokens() {
    let sent = translate(
        json!({"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium", "max_tokens": 1000}),
    );
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert!(sent["max_tokens"].as_u64().unwrap() > 4096);
    // The `thinking` extension gives the budget itself, and wins over the effort.
    let sent = translate(json!({"messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": "high", "thinking": {"type": "enabled", "budget_tokens": 3000}}));
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 3000})
    );
    // The budget, and room for the answer.
    assert_eq!(sent["max_tokens"], 3000 + 1024);
    let sent = translate(json!({"messages": [{"role": "user", "content": "x"}],
        "thinking": {"type": "disabled"}}));
    assert!(sent.get("thinking").is_none());
    assert!(
        dialect()
            .dialect
            .supported_params(Endpoint::ChatCompletions)
            .unwrap()
            .contains(&"thinking")
    );
}

fn respond(body: Value, request: Value) -> Value {
    let map = object(&request);
    test_support::answer(&dialect(), &view(&map, false), &body).unwrap()
}

#[test]
fn response_maps_text_thinking_tools_and_usage() {
    let out = respond(
        json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                {"type": "text", "text": "Checking both."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 100}
        }),
        json!({"messages": []}),
    );
    assert_eq!(out["id"], "msg_01");
    let message = test_support::first_message(&out, "tool_calls", "Checking both.", "Let me see.");
    assert_eq!(message["tool_calls"][1]["id"], "toolu_2");
    assert_eq!(
        message["tool_calls"][1]["function"]["arguments"],
        "{\"city\":\"Rome\"}"
    );
    assert_eq!(out["usage"]["prompt_tokens"], 115);
    assert_eq!(out["usage"]["completion_tokens"], 20);
    assert_eq!(out["usage"]["total_tokens"], 135);
    assert_eq!(out["usage"]["prompt_tokens_details"]["cached_tokens"], 100);
}

#[test]
fn response_finish_reasons_and_json_mode() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("stop_sequence", "stop"),
        ("refusal", "content_filter"),
    ] {
        let out = respond(
            json!({"id": "m", "model": "c", "content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}}),
            json!({"messages": []}),
        );
        assert_eq!(out["choices"][0]["finish_reason"], finish);
    }
    let out = respond(
        json!({"id": "m", "model": "c", "content": [{"type": "tool_use", "id": "t", "name": "json_response", "input": {"a": 1}}],
               "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}}),
        json!({"messages": [], "response_format": {"type": "json_object"}}),
    );
    assert_eq!(out["choices"][0]["message"]["content"], "{\"a\":1}");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn malformed_responses_are_errors_not_panics() {
    let map = Map::new();
    let d = dialect();
    for body in [&b"{\"id\": "[..], b"<html>", b"{\"content\": 5}"] {
        assert!(matches!(
            d.dialect
                .response(&view(&map, false), Bytes::copy_from_slice(body)),
            Err(TranslateError::Malformed(_))
        ));
    }
}

#[test]
fn errors_are_read_and_classified() {
    let d = dialect();
    let e = d.dialect.error(
        StatusCode::from_u16(529).unwrap(),
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
    );
    assert_eq!((e.class, e.status), (ErrorClass::Server, Some(529)));
    assert_eq!(e.message, "Overloaded");
    let e = d.dialect.error(
        StatusCode::BAD_REQUEST,
        br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
    );
    assert_eq!(e.class, ErrorClass::ContextWindow);
    let e = d.dialect.error(
        StatusCode::BAD_REQUEST,
        br#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}"#,
    );
    assert_eq!(e.class, ErrorClass::Invalid);
    let e = d.dialect.error(StatusCode::BAD_REQUEST, b"not json");
    assert_eq!((e.class, e.status), (ErrorClass::Invalid, Some(400)));
    assert!(e.message.contains("not json"));
    let e = d.dialect.error(
        StatusCode::UNAUTHORIZED,
        br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
    );
    assert_eq!(e.class, ErrorClass::Auth);
}

/// Anthropic's documented stream for a text block followed by a tool call.
const TOOL_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2,\"cache_read_input_tokens\":10}}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Fra\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"ncisco, CA\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"get_time\",\"input\":{}}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

fn run_stream(
    raw: &str,
    request: Value,
    chunk_size: usize,
) -> Result<Vec<Value>, crate::provider::StreamError> {
    let map = object(&request);
    let translator = dialect().dialect.stream(&view(&map, true));
    test_support::run_stream(translator, raw.as_bytes(), chunk_size)
}

#[test]
fn stream_translates_text_and_reassembles_tool_calls_whatever_the_chunking() {
    for size in [1, 7, 64, 10_000] {
        let chunks = run_stream(
            TOOL_STREAM,
            json!({"stream_options": {"include_usage": true}}),
            size,
        )
        .unwrap();
        assert_eq!(
            chunks[0]["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert!(
            chunks
                .iter()
                .all(|c| c == "[DONE]" || c["object"] == "chat.completion.chunk")
        );
        assert!(chunks.iter().all(|c| c == "[DONE]" || c["id"] == "msg_1"));
        assert_eq!(test_support::streamed_text(&chunks), "Okay");
        let calls = test_support::streamed_tool_calls(&chunks);
        assert_eq!(
            calls,
            vec![
                (
                    "toolu_a".into(),
                    "get_weather".into(),
                    "{\"location\": \"San Francisco, CA\"}".into()
                ),
                ("toolu_b".into(), "get_time".into(), "{}".into()),
            ],
            "chunk size {size}"
        );
        let finish: Vec<_> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
            .collect();
        assert_eq!(finish, vec!["tool_calls"]);
        let usage = &chunks[chunks.len() - 2];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["prompt_tokens"], 482);
        assert_eq!(usage["usage"]["completion_tokens"], 89);
        assert_eq!(chunks.last().unwrap(), "[DONE]");
    }
}

#[test]
fn stream_without_include_usage_has_no_usage_chunk() {
    let chunks = run_stream(TOOL_STREAM, json!({}), 50).unwrap();
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
}

#[test]
fn stream_thinking_becomes_reasoning_content_and_json_mode_streams_content() {
    let raw = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"abc\"}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"json_response\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let chunks = run_stream(raw, json!({"response_format": {"type": "json_object"}}), 33).unwrap();
    let reasoning: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str())
        .collect();
    assert_eq!(reasoning, "Hmm.");
    assert_eq!(test_support::streamed_text(&chunks), "{\"a\":1}");
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"][0]["delta"].get("tool_calls").is_none())
    );
    let finish: Vec<_> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, vec!["stop"]);
}

#[test]
fn stream_errors_cuts_and_garbage_are_reported() {
    let overloaded = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    );
    let err = run_stream(overloaded, json!({}), 1000).unwrap_err();
    assert!(err.message.contains("Overloaded"));
    assert_eq!(err.code, "upstream_stream_error");
    let cut = &TOOL_STREAM[..TOOL_STREAM.find("event: message_delta").unwrap()];
    assert_eq!(
        run_stream(cut, json!({}), 1000).unwrap_err().code,
        "upstream_malformed_stream"
    );
    assert!(run_stream("data: {not json}\n\n", json!({}), 1000).is_err());
    let early = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n";
    assert!(run_stream(early, json!({}), 1000).is_err());
}

#[test]
fn thinking_blocks_go_first_in_the_assistant_turn_and_unsigned_ones_are_left_out() {
    let sent = translate(json!({
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "Checking.", "reasoning_content": "Call the tool.",
             "thinking_blocks": [
                {"type": "thinking", "thinking": "Call the tool.", "signature": "sig-1"},
                {"type": "thinking", "thinking": "Unsigned.", "signature": ""},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "future_block", "x": 1}
             ],
             "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"}
        ],
        "reasoning_effort": "low"
    }));
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Call the tool.", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
        ]})
    );
}

#[test]
fn response_returns_signed_and_redacted_thinking_blocks() {
    let out = respond(
        json!({
            "id": "msg_01", "model": "c",
            "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Done."}
            ],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}
        }),
        json!({"messages": []}),
    );
    let message = test_support::first_message(&out, "stop", "Done.", "Let me see.");
    assert_eq!(
        message["thinking_blocks"],
        json!([
            {"type": "thinking", "thinking": "Let me see.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"}
        ])
    );
    let plain = respond(
        json!({"id": "m", "model": "c", "content": [{"type": "text", "text": "x"}], "stop_reason": "end_turn",
               "usage": {"input_tokens": 1, "output_tokens": 1}}),
        json!({"messages": []}),
    );
    assert!(
        plain["choices"][0]["message"]
            .get("thinking_blocks")
            .is_none(),
        "answers without thinking are unchanged"
    );
}

#[test]
fn stream_sends_signatures_and_redacted_blocks_as_thinking_block_deltas() {
    let raw = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hmm.\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"abc\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    for size in [1, 17, 4096] {
        let chunks = run_stream(raw, json!({}), size).unwrap();
        let deltas: Vec<&Value> = chunks
            .iter()
            .map(|c| &c["choices"][0]["delta"])
            .filter(|d| d.get("thinking_blocks").is_some() || d.get("reasoning_content").is_some())
            .collect();
        assert_eq!(
            deltas,
            vec![
                &json!({"reasoning_content": "Hmm."}),
                &json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "abc"}]}),
                &json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}),
            ],
            "chunk size {size}"
        );
    }
}

#[test]
fn cache_marks_on_chat_parts_and_tools_reach_anthropic() {
    let mark = json!({"type": "ephemeral"});
    let hour = json!({"type": "ephemeral", "ttl": "1h"});
    let sent = translate(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "rules", "cache_control": hour}]},
            {"role": "user", "content": [
                {"type": "text", "text": "long document"},
                {"type": "text", "text": "", "cache_control": mark},
                {"type": "text", "text": "question"}
            ]}
        ],
        "tools": [
            {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}, "cache_control": mark}
        ]
    }));
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral", "ttl": "1h"}}])
    );
    // The empty part's mark ends the prefix at the block before it.
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "long document", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "question"}
        ])
    );
    assert!(sent["tools"][0].get("cache_control").is_none());
    assert_eq!(
        sent["tools"][1]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

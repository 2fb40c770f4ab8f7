//! Whole chat answers restated as Messages answers.

use bytes::Bytes;
use serde_json::{Value, json};

use super::super::reply;
use super::view;
use crate::domain::{Reply, Usage};
use crate::provider::TranslateError;
use crate::provider::test_support::object;

/// The Messages answer to a request for model `claude-x` made of a chat `completion`
/// with `usage` metered.
fn answer(completion: Value, usage: Option<Usage>) -> Value {
    let request = object(&json!({"model": "claude-x", "messages": []}));
    let chat = Reply {
        body: Bytes::from(completion.to_string()),
        usage,
        usage_estimated: false,
    };
    let reply = reply(&view(&request, false), chat).unwrap();
    assert_eq!(reply.usage, usage, "the metered usage is the chat answer's");
    serde_json::from_slice(&reply.body).unwrap()
}

fn completion(message: Value, finish: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                  "prompt_tokens_details": {"cached_tokens": 30, "cache_creation_tokens": 10}}
    })
}

#[test]
fn reply_is_a_message_with_text_and_usage() {
    let usage = Usage {
        prompt_tokens: 100,
        completion_tokens: 20,
        cached_tokens: 30,
        cache_write_tokens: 10,
        reasoning_tokens: 0,
    };
    let message = answer(
        completion(json!({"role": "assistant", "content": "Hello!"}), "stop"),
        Some(usage),
    );
    assert_eq!(
        message,
        json!({
            "id": "msg_chatcmpl-1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [{"type": "text", "text": "Hello!"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": {"input_tokens": 60, "output_tokens": 20,
                      "cache_read_input_tokens": 30, "cache_creation_input_tokens": 10}
        })
    );
    let unmetered = answer(
        completion(json!({"role": "assistant", "content": "Hello!"}), "stop"),
        None,
    );
    assert_eq!(
        unmetered["usage"], message["usage"],
        "read from the body when not metered"
    );
}

#[test]
fn reply_stop_reasons() {
    let text = json!({"role": "assistant", "content": "x"});
    let call = json!({"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    ]});
    for (message, finish, stop) in [
        (&text, "stop", "end_turn"),
        (&text, "length", "max_tokens"),
        (&call, "tool_calls", "tool_use"),
        (&call, "function_call", "tool_use"),
        (&call, "stop", "tool_use"),
        (&text, "content_filter", "refusal"),
        (&text, "something_else", "end_turn"),
    ] {
        let answer = answer(completion(message.clone(), finish), None);
        assert_eq!(answer["stop_reason"], stop, "{finish}");
        assert_eq!(answer["stop_sequence"], Value::Null);
    }
}

#[test]
fn reply_carries_thinking_and_tool_calls_in_order() {
    let message = answer(
        completion(
            json!({
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "ignored when blocks are given",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"}
                ],
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
                    {"id": "call_3", "type": "function", "function": {"name": "cut", "arguments": "{\"a\":"}},
                    {"id": "call_4", "type": "function", "function": {"name": "list", "arguments": "[1]"}}
                ]
            }),
            "tool_calls",
        ),
        None,
    );
    assert_eq!(
        message["content"],
        json!([
            {"type": "thinking", "thinking": "Let me think.", "signature": "sig"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
            {"type": "tool_use", "id": "call_3", "name": "cut", "input": {}},
            {"type": "tool_use", "id": "call_4", "name": "list", "input": {}}
        ])
    );
    let reasoning_only = answer(
        completion(
            json!({"role": "assistant", "content": "42", "reasoning_content": "Compute."}),
            "stop",
        ),
        None,
    );
    assert_eq!(
        reasoning_only["content"],
        json!([
            {"type": "thinking", "thinking": "Compute.", "signature": ""},
            {"type": "text", "text": "42"}
        ])
    );
}

#[test]
fn reply_ids_refusals_and_malformed_answers() {
    let mut anthropic = completion(json!({"role": "assistant", "content": "x"}), "stop");
    anthropic["id"] = json!("msg_01abc");
    assert_eq!(answer(anthropic, None)["id"], "msg_01abc");
    let mut anonymous = completion(json!({"role": "assistant", "content": "x"}), "stop");
    anonymous.as_object_mut().unwrap().remove("id");
    let id = answer(anonymous, None)["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_") && id.len() > 10, "{id}");
    let refused = answer(
        completion(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "stop",
        ),
        None,
    );
    assert_eq!(
        refused["content"],
        json!([{"type": "text", "text": "I can't help with that."}])
    );
    let request = object(&json!({"model": "claude-x", "messages": []}));
    for body in ["not json", "{\"choices\": []}", "{\"choices\": 3}"] {
        let chat = Reply {
            body: Bytes::from(body),
            usage: None,
            usage_estimated: false,
        };
        assert!(
            matches!(
                reply(&view(&request, false), chat),
                Err(TranslateError::Malformed(_))
            ),
            "{body}"
        );
    }
}

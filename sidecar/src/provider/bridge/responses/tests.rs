//! Unit tests of the Responses bridge: requests item by item and tool by tool, the
//! reasoning blocks' encoding, and whole answers (streams: `stream_tests`).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::*;
use crate::domain::{CallView, Endpoint, Reply, Usage};
use crate::provider::TranslateError;
use crate::provider::test_support::{self, object};

fn chat(body: Value) -> ChatCallOut {
    let call = to_chat(&object(&body)).unwrap();
    ChatCallOut {
        body: Value::Object(call.body),
        hosted: call.hosted_tools,
        dropped: call.dropped,
    }
}

struct ChatCallOut {
    body: Value,
    hosted: Vec<String>,
    dropped: Vec<&'static str>,
}

fn refused(body: Value) -> &'static str {
    match to_chat(&object(&body)) {
        Err(TranslateError::Invalid { param, .. }) => param,
        other => panic!("{body}: {other:?}"),
    }
}

/// Ids are random: each is checked to be its prefix and 32 hex digits, then replaced by
/// the prefix, so whole objects compare exactly.
pub(super) fn strip_ids(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if (key == "id" || key == "item_id")
                    && let Value::String(id) = v
                    && let Some(at) = id.find('_')
                    && id.len() == at + 33
                    && id[at + 1..].bytes().all(|b| b.is_ascii_hexdigit())
                {
                    id.truncate(at + 1);
                } else {
                    strip_ids(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_ids),
        _ => {}
    }
}

#[test]
fn request_maps_instructions_messages_and_parts() {
    let out = chat(json!({
        "model": "claude",
        "instructions": "Be brief.",
        "input": [
            {"role": "developer", "content": "Answer in English."},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBO", "detail": "low"},
                {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}
            ]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed", "content": [
                {"type": "output_text", "text": "A cat", "annotations": []},
                {"type": "output_text", "text": "."}
            ]},
            {"role": "system", "content": [{"type": "input_text", "text": "Stay calm."}]}
        ]
    }));
    assert_eq!(
        out.body,
        json!({
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Answer in English."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
                ]},
                {"role": "assistant", "content": "A cat."},
                {"role": "system", "content": [{"type": "text", "text": "Stay calm."}]}
            ]
        })
    );
    assert!(out.hosted.is_empty());
    let out = chat(json!({"model": "m", "input": "Hi"}));
    assert_eq!(
        out.body,
        json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]})
    );
}

#[test]
fn request_merges_calls_into_the_assistant_message_and_outputs_become_tool_messages() {
    let out = chat(json!({
        "model": "m",
        "tools": [{"type": "custom", "name": "apply_patch"}],
        "input": [
            {"role": "user", "content": "Weather in Paris, then patch."},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_2", "name": "apply_patch", "input": "*** Begin Patch\n\"x\""},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "Done"}]},
            {"type": "function_call", "call_id": "call_3", "name": "weather", "arguments": "{}"}
        ]
    }));
    let patch_args = json!({"input": "*** Begin Patch\n\"x\""}).to_string();
    assert_eq!(
        out.body["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris, then patch."},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "apply_patch", "arguments": patch_args}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "Done"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_3", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
            ]}
        ])
    );
}

#[test]
fn request_maps_tools_choices_formats_and_parameters() {
    let out = chat(json!({
        "model": "m",
        "input": "x",
        "tools": [
            {"type": "function", "name": "weather", "description": "Get weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
            {"type": "custom", "name": "apply_patch", "description": "Edit files",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: \"*** Begin Patch\""}},
            {"type": "custom", "name": "note", "format": {"type": "text"}},
            {"type": "web_search"},
            {"type": "local_shell"},
            {"type": "mcp", "server_label": "x", "server_url": "https://x"}
        ],
        "tool_choice": {"type": "custom", "name": "apply_patch"},
        "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}, "strict": true, "description": "The answer"},
                 "verbosity": "low"},
        "reasoning": {"effort": "high", "summary": "auto"},
        "max_output_tokens": 500,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-1",
        "service_tier": "auto",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
        "top_logprobs": 2,
        "metadata": {"a": "b"},
        "store": false,
        "include": ["reasoning.encrypted_content"],
        "background": false,
        "truncation": "disabled",
        "previous_response_id": null,
        "stream": true,
        "stream_options": {"include_obfuscation": false},
        "max_tool_calls": 3
    }));
    let string_input = |description: &str| {
        json!({
            "type": "object",
            "properties": {"input": {"type": "string", "description": description}},
            "required": ["input"],
            "additionalProperties": false
        })
    };
    assert_eq!(
        out.body,
        json!({
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Get weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
                {"type": "function", "function": {"name": "apply_patch", "description": "Edit files",
                 "parameters": string_input("The tool's input: text that must match this lark grammar exactly.\nstart: \"*** Begin Patch\"")}},
                {"type": "function", "function": {"name": "note",
                 "parameters": string_input("The tool's input, as free-form text.")}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "apply_patch"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true, "description": "The answer"}},
            "reasoning_effort": "high",
            "max_completion_tokens": 500,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "service_tier": "auto",
            "top_logprobs": 2,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tool_calls": 3
        })
    );
    assert_eq!(out.hosted, vec!["web_search", "local_shell", "mcp"]);
    assert_eq!(
        out.dropped,
        vec!["prompt_cache_key", "safety_identifier", "verbosity"]
    );
    for (choice, expected) in [
        (json!("auto"), json!("auto")),
        (json!("none"), json!("none")),
        (json!("required"), json!("required")),
        (
            json!({"type": "function", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ] {
        let out = chat(json!({"model": "m", "input": "x", "tool_choice": choice}));
        assert_eq!(out.body["tool_choice"], expected);
    }
    let out =
        chat(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}));
    assert_eq!(out.body["response_format"], json!({"type": "json_object"}));
    let out = chat(
        json!({"model": "m", "input": "x", "text": {"format": {"type": "text"}}, "truncation": "auto", "stream": false}),
    );
    assert_eq!(
        out.body,
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "truncation": "auto", "stream": false}),
        "text format adds nothing; truncation auto goes on to the parameter policy"
    );
}

#[test]
fn request_refuses_what_chat_cannot_carry() {
    for (body, param) in [
        (json!({"input": 5}), "input"),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input",
        ),
        (
            json!({"input": [{"type": "web_search_call", "id": "ws_1"}]}),
            "input",
        ),
        (
            json!({"input": [{"role": "critic", "content": "x"}]}),
            "input",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}),
            "input",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}]}),
            "input",
        ),
        (
            json!({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input",
        ),
        (
            json!({"input": [{"type": "function_call", "name": "f"}]}),
            "input",
        ),
        (
            json!({"input": [{"type": "reasoning", "summary": [], "encrypted_content": "llmesh.v1.!!"}]}),
            "input",
        ),
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (json!({"input": "x", "background": true}), "background"),
        (
            json!({"input": "x", "tool_choice": {"type": "web_search_preview"}}),
            "tool_choice",
        ),
        (
            json!({"input": "x", "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []}}),
            "tool_choice",
        ),
        (
            json!({"input": "x", "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"input": "x", "tools": [{"type": "function"}]}),
            "tools",
        ),
        (
            json!({"input": "x", "tools": [{"type": "custom", "name": "c", "format": {"type": "grammar", "syntax": "lark"}}]}),
            "tools",
        ),
        (
            json!({"input": "x", "text": {"format": {"type": "xml"}}}),
            "text",
        ),
        (json!({"input": "x", "instructions": 3}), "instructions"),
    ] {
        assert_eq!(refused(body.clone()), param, "{body}");
    }
}

/// `value`, a list of thinking blocks.
pub(super) fn blocks(value: Value) -> Vec<ThinkingBlock<'static>> {
    use serde::Deserialize;
    Vec::<ThinkingBlock<'_>>::deserialize(&value)
        .unwrap()
        .into_iter()
        .map(ThinkingBlock::into_owned)
        .collect()
}

/// A signed Claude thinking block and a redacted one, as chat carries them.
pub(super) fn claude_blocks() -> Value {
    json!([
        {"type": "thinking", "thinking": "Paris first.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"}
    ])
}

#[test]
fn reasoning_items_go_on_the_next_assistant_message() {
    let ours = encode_blocks(&blocks(claude_blocks()));
    assert!(ours.starts_with("llmesh.v1."));
    let out = chat(json!({
        "model": "m",
        "input": [
            {"role": "user", "content": "Weather?"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Paris first."}], "encrypted_content": ours},
            {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "reasoning", "id": "rs_2", "summary": [{"type": "summary_text", "text": "A"}, {"type": "summary_text", "text": "B"}],
             "encrypted_content": "gAAAAABo-openai-own"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "18C in Paris."}]},
            {"type": "reasoning", "id": "rs_3", "summary": [{"type": "summary_text", "text": "dropped"}]},
            {"role": "user", "content": "Thanks"}
        ]
    }));
    assert_eq!(
        out.body["messages"],
        json!([
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "reasoning_content": "Paris first.",
             "thinking_blocks": claude_blocks(),
             "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "assistant", "content": "18C in Paris.", "reasoning_content": "A\n\nB"},
            {"role": "user", "content": "Thanks"}
        ])
    );
}

#[test]
fn encrypted_content_is_prefixed_base64url_of_the_blocks() {
    let blocks = blocks(claude_blocks());
    let encoded = encode_blocks(&blocks);
    let data = encoded.strip_prefix("llmesh.v1.").unwrap();
    assert!(
        data.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(decode_blocks(&encoded), Some(Ok(blocks)));
    assert_eq!(decode_blocks("gAAAA"), None);
    assert_eq!(
        decode_blocks("llmesh.v1.e30"),
        Some(Err(())),
        "an object is not a list"
    );
    for len in 0..8 {
        let bytes: Vec<u8> = (0..len).map(|i| 250 - i).collect();
        let mut text = String::new();
        base64url::encode(&bytes, &mut text);
        assert_eq!(base64url::decode(&text), Ok(bytes));
    }
    assert_eq!(base64url::decode("Zm9vYg"), Ok(b"foob".to_vec()));
    assert!(base64url::decode("Z").is_err() && base64url::decode("Zm+v").is_err());
}

pub(super) fn call_of(body: &Map<String, Value>, stream: bool) -> CallView<'_> {
    test_support::view(Endpoint::Responses, body, stream, "upstream-model")
}

fn respond(request: Value, completion: Value, usage: Option<Usage>) -> Value {
    let body = object(&request);
    let chat = Reply {
        body: Bytes::from(completion.to_string()),
        usage,
        usage_estimated: false,
    };
    let reply = reply(&call_of(&body, false), chat).unwrap();
    if usage.is_some() {
        assert_eq!(reply.usage, usage, "the provider's usage is kept");
    }
    let mut out: Value = serde_json::from_slice(&reply.body).unwrap();
    strip_ids(&mut out);
    assert!(out["created_at"].as_u64().unwrap() > 1_700_000_000);
    out["created_at"] = json!(0);
    out
}

#[test]
fn reply_restates_reasoning_text_and_calls_with_the_request_echoed() {
    let usage = Usage {
        prompt_tokens: 100,
        completion_tokens: 40,
        cached_tokens: 60,
        cache_write_tokens: 5,
        reasoning_tokens: 12,
    };
    let out = respond(
        json!({
            "model": "claude-client-name", "input": "x", "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "weather"}, {"type": "custom", "name": "apply_patch"}],
            "max_output_tokens": 900, "metadata": {"k": "v"}, "store": false,
            "reasoning": {"effort": "low", "summary": "auto"}
        }),
        json!({
            "id": "msg_01", "object": "chat.completion", "created": 1, "model": "claude-sonnet-4-5",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null, "message": {
                "role": "assistant", "content": "Checking.", "refusal": null,
                "reasoning_content": "Paris first.", "thinking_blocks": claude_blocks(),
                "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}}
                ]
            }}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }),
        Some(usage),
    );
    let blocks = blocks(claude_blocks());
    assert_eq!(
        out,
        json!({
            "id": "resp_", "object": "response", "created_at": 0, "status": "completed",
            "error": null, "incomplete_details": null,
            "output": [
                {"type": "reasoning", "id": "rs_", "summary": [{"type": "summary_text", "text": "Paris first."}],
                 "encrypted_content": encode_blocks(&blocks)},
                {"type": "message", "id": "msg_", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Checking.", "annotations": [], "logprobs": []}]},
                {"type": "function_call", "id": "fc_", "status": "completed", "call_id": "toolu_1",
                 "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "custom_tool_call", "id": "ctc_", "status": "completed", "call_id": "toolu_2",
                 "name": "apply_patch", "input": "*** Begin Patch"}
            ],
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 60},
                      "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 12}, "total_tokens": 140},
            "model": "claude-client-name", "instructions": "Be brief.",
            "tools": [{"type": "function", "name": "weather"}, {"type": "custom", "name": "apply_patch"}],
            "tool_choice": "auto", "parallel_tool_calls": true, "temperature": null, "top_p": null,
            "max_output_tokens": 900, "metadata": {"k": "v"}, "previous_response_id": null, "store": false,
            "text": {"format": {"type": "text"}}, "reasoning": {"effort": "low", "summary": "auto"},
            "truncation": "disabled", "user": null
        })
    );
}

#[test]
fn reply_marks_truncated_and_filtered_answers_incomplete_and_keeps_refusals() {
    let out = respond(
        json!({"model": "m", "input": "x"}),
        json!({"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "Once upon"}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}}),
        None,
    );
    assert_eq!(out["status"], "incomplete");
    assert_eq!(
        out["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(out["output"][0]["status"], "incomplete");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 4,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7}),
        "usage read from the body when the provider reported none"
    );
    let out = respond(
        json!({"model": "m", "input": "x"}),
        json!({"choices": [{"finish_reason": "content_filter", "message": {"role": "assistant", "content": null, "refusal": "I can't."}}]}),
        None,
    );
    assert_eq!(
        out["incomplete_details"],
        json!({"reason": "content_filter"})
    );
    assert_eq!(
        out["output"],
        json!([{"type": "message", "id": "msg_", "status": "incomplete", "role": "assistant",
                "content": [{"type": "refusal", "refusal": "I can't."}]}])
    );
    assert!(out["usage"].is_null());
    let body = object(&json!({"input": "x"}));
    for bad in [&b"not json"[..], b"{\"choices\": []}"] {
        let chat = Reply {
            body: Bytes::from_static(bad),
            usage: None,
            usage_estimated: false,
        };
        assert!(matches!(
            reply(&call_of(&body, false), chat),
            Err(TranslateError::Malformed(_))
        ));
    }
}

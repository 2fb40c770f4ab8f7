//! Unit tests of the Responses bridge: requests item by item and tool by tool, whole
//! answers, streams fed in odd pieces, and signed reasoning going round through Claude.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::*;
use crate::config::snapshot::{ProviderKind, SecretString};
use crate::domain::{CallView, Endpoint, Reply, Usage};
use crate::provider::test_support::{self, object};
use crate::provider::{StreamError, StreamTranslator, TranslateError};

fn chat(body: Value) -> ChatCallOut {
    let call = to_chat(&object(&body)).unwrap();
    ChatCallOut {
        body: Value::Object(call.body),
        hosted: call.hosted_tools,
    }
}

struct ChatCallOut {
    body: Value,
    hosted: Vec<String>,
}

fn refused(body: Value) -> &'static str {
    match to_chat(&object(&body)) {
        Err(TranslateError::Invalid { param, .. }) => param,
        other => panic!("{body}: {other:?}"),
    }
}

/// Ids are random: each is checked to be its prefix and 32 hex digits, then replaced by
/// the prefix, so whole objects compare exactly.
fn strip_ids(value: &mut Value) {
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
            "verbosity": "low",
            "reasoning_effort": "high",
            "max_completion_tokens": 500,
            "temperature": 0.2,
            "top_p": 0.9,
            "user": "u-1",
            "service_tier": "auto",
            "prompt_cache_key": "k",
            "safety_identifier": "s",
            "top_logprobs": 2,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tool_calls": 3
        })
    );
    assert_eq!(out.hosted, vec!["web_search", "local_shell", "mcp"]);
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
fn blocks(value: Value) -> Vec<ThinkingBlock<'static>> {
    use serde::Deserialize;
    Vec::<ThinkingBlock<'_>>::deserialize(&value)
        .unwrap()
        .into_iter()
        .map(ThinkingBlock::into_owned)
        .collect()
}

/// A signed Claude thinking block and a redacted one, as chat carries them.
fn claude_blocks() -> Value {
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

fn call_of(body: &Map<String, Value>, stream: bool) -> CallView<'_> {
    test_support::view(Endpoint::Responses, body, stream, "upstream-model")
}

fn respond(request: Value, completion: Value, usage: Option<Usage>) -> Value {
    let body = object(&request);
    let chat = Reply {
        body: Bytes::from(completion.to_string()),
        usage,
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
        };
        assert!(matches!(
            reply(&call_of(&body, false), chat),
            Err(TranslateError::Malformed(_))
        ));
    }
}

/// A chat stream translator that passes its input through: the provider's output.
struct Passthrough(Option<Usage>);

impl StreamTranslator for Passthrough {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        Ok(Some(chunk))
    }
    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        Ok(None)
    }
    fn usage(&self) -> Option<Usage> {
        self.0
    }
}

/// A chat SSE stream of `chunks` (choice-0 deltas with finish reasons), a usage chunk
/// and `[DONE]`.
fn chat_stream(deltas: &[(Value, Option<&str>)]) -> String {
    let mut out = String::new();
    for (delta, finish) in deltas {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                                 "prompt_tokens_details": {"cached_tokens": 2}}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

/// Runs `raw` through a Responses stream in pieces of `size` bytes: the events (ids
/// stripped), each checked to name its type in both lines and to be numbered in order,
/// and the answer.
fn run(
    request: &Value,
    inner: Box<dyn StreamTranslator>,
    raw: &[u8],
    size: usize,
) -> Result<(Vec<Value>, Value), StreamError> {
    let body = object(request);
    let mut stream = Stream::new(&call_of(&body, true), inner);
    let mut out = Vec::new();
    for piece in raw.chunks(size) {
        if let Some(b) = stream.feed(Bytes::copy_from_slice(piece))? {
            out.extend_from_slice(&b);
        }
    }
    if let Some(b) = stream.finish()? {
        out.extend_from_slice(&b);
    }
    let text = String::from_utf8(out).unwrap();
    let mut events = Vec::new();
    for (n, event) in text.split("\n\n").filter(|e| !e.is_empty()).enumerate() {
        let (name, data) = event
            .strip_prefix("event: ")
            .and_then(|e| e.split_once("\ndata: "))
            .unwrap_or_else(|| panic!("not an event: {event:?}"));
        let mut data: Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["type"], name);
        assert_eq!(data["sequence_number"], n);
        strip_ids(&mut data);
        if let Some(response) = data.get_mut("response") {
            response["created_at"] = json!(0);
        }
        events.push(data);
    }
    let mut answer: Value = serde_json::from_slice(&stream.answer().expect("an answer")).unwrap();
    strip_ids(&mut answer);
    answer["created_at"] = json!(0);
    Ok((events, answer))
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[test]
fn stream_restates_reasoning_text_and_function_calls_whatever_the_chunking() {
    let raw = chat_stream(&[
        (json!({"role": "assistant", "content": ""}), None),
        (json!({"reasoning_content": "Paris "}), None),
        (json!({"reasoning_content": "first."}), None),
        (
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-1"}]}),
            None,
        ),
        (
            json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}),
            None,
        ),
        (json!({"content": "Check"}), None),
        (json!({"content": "ing \u{e9}."}), None),
        (
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
            None,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        (json!({}), Some("tool_calls")),
    ]);
    let request = json!({"model": "client-model", "input": "x", "stream": true});
    let mut first = None;
    for size in [1, 3, 7, 64, 100_000] {
        let (events, _) = run(&request, Box::new(Passthrough(None)), raw.as_bytes(), size).unwrap();
        match &first {
            None => first = Some(events),
            Some(events_1) => assert_eq!(&events, events_1, "chunk size {size}"),
        }
    }
    let events = first.unwrap();
    assert_eq!(
        types(&events),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["model"], "client-model");
    assert!(created["usage"].is_null());
    assert_eq!(events[1]["response"], *created);
    assert_eq!(
        events[2],
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
               "item": {"type": "reasoning", "id": "rs_", "summary": []}})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.reasoning_summary_part.added", "sequence_number": 3, "item_id": "rs_",
               "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.reasoning_summary_text.delta", "sequence_number": 4, "item_id": "rs_",
               "output_index": 0, "summary_index": 0, "delta": "Paris "})
    );
    assert_eq!(
        events[6],
        json!({"type": "response.reasoning_summary_text.done", "sequence_number": 6, "item_id": "rs_",
               "output_index": 0, "summary_index": 0, "text": "Paris first."})
    );
    let blocks = blocks(json!([
        {"type": "thinking", "thinking": "Paris first.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"}
    ]));
    let reasoning = json!({"type": "reasoning", "id": "rs_",
        "summary": [{"type": "summary_text", "text": "Paris first."}], "encrypted_content": encode_blocks(&blocks)});
    assert_eq!(events[8]["item"], reasoning);
    assert_eq!(
        events[9]["item"],
        json!({"type": "message", "id": "msg_", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(
        events[10],
        json!({"type": "response.content_part.added", "sequence_number": 10, "item_id": "msg_", "output_index": 1,
               "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
    );
    assert_eq!(
        events[12],
        json!({"type": "response.output_text.delta", "sequence_number": 12, "item_id": "msg_", "output_index": 1,
               "content_index": 0, "delta": "ing \u{e9}.", "logprobs": []})
    );
    assert_eq!(
        events[13],
        json!({"type": "response.output_text.done", "sequence_number": 13, "item_id": "msg_", "output_index": 1,
               "content_index": 0, "text": "Checking \u{e9}.", "logprobs": []})
    );
    let message = json!({"type": "message", "id": "msg_", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "Checking \u{e9}.", "annotations": [], "logprobs": []}]});
    assert_eq!(events[14]["part"], message["content"][0]);
    assert_eq!(events[15]["item"], message);
    assert_eq!(
        events[16]["item"],
        json!({"type": "function_call", "id": "fc_", "status": "in_progress", "call_id": "toolu_1",
               "name": "weather", "arguments": ""})
    );
    assert_eq!(
        events[17],
        json!({"type": "response.function_call_arguments.delta", "sequence_number": 17, "item_id": "fc_",
               "output_index": 2, "delta": "{\"city\":"})
    );
    assert_eq!(
        events[19],
        json!({"type": "response.function_call_arguments.done", "sequence_number": 19, "item_id": "fc_",
               "output_index": 2, "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    let call = json!({"type": "function_call", "id": "fc_", "status": "completed", "call_id": "toolu_1",
        "name": "weather", "arguments": "{\"city\":\"Paris\"}"});
    assert_eq!(events[20]["item"], call);
    let done = &events[21]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([reasoning, message, call]));
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 5,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15})
    );
    let (_, answer) = run(&request, Box::new(Passthrough(None)), raw.as_bytes(), 50).unwrap();
    assert_eq!(answer, *done, "answer() is the final response object");
}

#[test]
fn stream_unwraps_custom_tool_input_and_reports_incomplete_answers() {
    let raw = chat_stream(&[
        (
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"inp"}}]}),
            None,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "ut\":\"a\\nb\"}"}}]}),
            None,
        ),
        (json!({}), Some("length")),
    ]);
    let request =
        json!({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]});
    let (events, answer) = run(&request, Box::new(Passthrough(None)), raw.as_bytes(), 5).unwrap();
    assert_eq!(
        types(&events),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"type": "custom_tool_call", "id": "ctc_", "status": "in_progress", "call_id": "call_1",
               "name": "apply_patch", "input": ""})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.custom_tool_call_input.delta", "sequence_number": 3, "item_id": "ctc_",
               "output_index": 0, "delta": "a\nb"})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.custom_tool_call_input.done", "sequence_number": 4, "item_id": "ctc_",
               "output_index": 0, "input": "a\nb"})
    );
    assert_eq!(answer["status"], "incomplete");
    assert_eq!(
        answer["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(answer["output"][0]["input"], "a\nb");
    assert_eq!(answer, events[6]["response"]);
}

#[test]
fn stream_without_a_finish_reason_or_with_garbage_is_an_error() {
    let request = json!({"model": "m", "input": "x"});
    let cut = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let err = run(&request, Box::new(Passthrough(None)), cut.as_bytes(), 4).unwrap_err();
    assert_eq!(err.code, "upstream_malformed_stream");
    let err = run(
        &request,
        Box::new(Passthrough(None)),
        b"data: {nope}\n\n",
        4,
    )
    .unwrap_err();
    assert_eq!(err.code, "upstream_malformed_stream");
    let nameless = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n";
    assert!(
        run(
            &request,
            Box::new(Passthrough(None)),
            nameless.as_bytes(),
            100
        )
        .is_err()
    );
    let error = "data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
    let err = run(&request, Box::new(Passthrough(None)), error.as_bytes(), 100).unwrap_err();
    assert_eq!(err, StreamError::upstream("overloaded"));
}

#[test]
fn stream_usage_is_the_provider_s_and_falls_back_to_it_in_the_answer() {
    let usage = Usage {
        prompt_tokens: 7,
        completion_tokens: 3,
        ..Usage::default()
    };
    let raw = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let body = object(&json!({"model": "m", "input": "x"}));
    let mut stream = Stream::new(&call_of(&body, true), Box::new(Passthrough(Some(usage))));
    let out = stream
        .feed(Bytes::from_static(raw.as_bytes()))
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&out).contains("event: response.completed\n"));
    assert_eq!(stream.finish().unwrap(), None);
    assert_eq!(stream.usage(), Some(usage));
    let answer: Value = serde_json::from_slice(&stream.answer().unwrap()).unwrap();
    assert_eq!(answer["usage"]["input_tokens"], 7);
    assert_eq!(answer["output"][0]["content"][0]["text"], "Hi");
}

fn claude() -> crate::provider::Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Anthropic);
    spec.api_key = Some(SecretString::new("sk-ant"));
    crate::provider::anthropic::build(&spec).unwrap()
}

/// The chat call a Responses request becomes, as the Anthropic dialect sees it.
fn claude_sent(chat_body: &Map<String, Value>) -> Value {
    let view = test_support::view(
        Endpoint::ChatCompletions,
        chat_body,
        false,
        "claude-sonnet-4-5",
    );
    test_support::sent(&claude(), &view).unwrap().1
}

#[test]
fn claude_signed_reasoning_goes_round_through_a_responses_client() {
    // Turn 1: Claude answers with signed reasoning and a tool call.
    let request = json!({"model": "claude", "input": "Weather in Paris?", "reasoning": {"effort": "low"},
                         "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]});
    let chat_1 = to_chat(&object(&request)).unwrap().body;
    let view = test_support::view(
        Endpoint::ChatCompletions,
        &chat_1,
        false,
        "claude-sonnet-4-5",
    );
    let anthropic_answer = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Call the tool.", "signature": "EqQBCkYIBxgCKkBsig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 20}
    });
    let chat_answer = claude()
        .dialect
        .response(&view, Bytes::from(anthropic_answer.to_string()))
        .unwrap();
    let client_body = object(&request);
    let response = reply(&call_of(&client_body, false), chat_answer).unwrap();
    let response: Value = serde_json::from_slice(&response.body).unwrap();
    let output = response["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[1]["type"], "function_call");
    // Turn 2: the client sends the output back with the tool's result.
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    input.extend(output.iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "18C"}));
    let request_2 = json!({"model": "claude", "input": input, "reasoning": {"effort": "low"}});
    let chat_2 = to_chat(&object(&request_2)).unwrap().body;
    let blocks = json!([
        {"type": "thinking", "thinking": "Call the tool.", "signature": "EqQBCkYIBxgCKkBsig=="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    ]);
    assert_eq!(chat_2["messages"][1]["thinking_blocks"], blocks);
    let sent = claude_sent(&chat_2);
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Call the tool.", "signature": "EqQBCkYIBxgCKkBsig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
        ]})
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["type"], "tool_result",
        "{sent}"
    );
}

#[test]
fn claude_streamed_signatures_reach_the_reasoning_item() {
    let raw = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"m.\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig-a\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi.\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let request = json!({"model": "claude", "input": "x", "stream": true});
    let chat_body = to_chat(&object(&request)).unwrap().body;
    for size in [1, 13, 4096] {
        let view = test_support::view(
            Endpoint::ChatCompletions,
            &chat_body,
            true,
            "claude-sonnet-4-5",
        );
        let inner = claude().dialect.stream(&view);
        let (events, answer) = run(&request, inner, raw.as_bytes(), size).unwrap();
        assert_eq!(events.last().unwrap()["type"], "response.completed");
        let reasoning = &answer["output"][0];
        assert_eq!(reasoning["summary"][0]["text"], "Hmm.");
        let decoded = decode_blocks(reasoning["encrypted_content"].as_str().unwrap());
        let expected = blocks(json!([
            {"type": "thinking", "thinking": "Hmm.", "signature": "sig-a"},
            {"type": "redacted_thinking", "data": "opaque"}
        ]));
        assert_eq!(decoded, Some(Ok(expected)), "chunk size {size}");
        assert_eq!(answer["output"][1]["content"][0]["text"], "Hi.");
        assert_eq!(answer["usage"]["input_tokens"], 4);
        assert_eq!(answer["usage"]["output_tokens"], 9);
    }
}

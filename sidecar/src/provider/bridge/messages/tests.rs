//! Unit tests of the Messages bridge: requests to chat, whole answers and streams back.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::*;
use crate::domain::{CallView, Endpoint, Reply, Usage};
use crate::provider::test_support::{self, object};
use crate::provider::{StreamError, StreamTranslator, TranslateError};

fn chat(body: Value) -> Value {
    let call = to_chat(&object(&body)).unwrap();
    assert!(call.hosted_tools.is_empty(), "{:?}", call.hosted_tools);
    Value::Object(call.body)
}

/// The refusal of `body`: its param and message.
fn refusal(body: Value) -> (&'static str, String) {
    match to_chat(&object(&body)) {
        Err(TranslateError::Invalid { param, message }) => (param, message),
        other => panic!("{body}: {other:?}"),
    }
}

fn user(content: Value) -> Value {
    json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": content}]})
}

/// The chat messages a single user turn of `content` becomes.
fn user_messages(content: Value) -> Value {
    chat(user(content))["messages"].clone()
}

#[test]
fn request_maps_fields_and_copies_the_rest() {
    let sent = chat(json!({
        "model": "claude-sonnet",
        "max_tokens": 1024,
        "stream": true,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
        "stop_sequences": ["END"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "service_tier": "auto",
        "container": "c-1",
        "top_logprobs": null
    }));
    assert_eq!(
        sent,
        json!({
            "model": "claude-sonnet",
            "max_completion_tokens": 1024,
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}
            ],
            "stop": ["END"],
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "user": "u-1",
            "service_tier": "auto",
            "container": "c-1"
        })
    );
    let unstreamed = chat(json!({"model": "m", "stream": false, "messages": []}));
    assert_eq!(
        unstreamed,
        json!({"model": "m", "stream": false, "messages": []})
    );
}

#[test]
fn system_blocks_become_text_parts_keeping_cache_control() {
    let sent = chat(json!({
        "model": "m",
        "system": [
            {"type": "text", "text": "You are a bot."},
            {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": "Hi"}]
    }));
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": [
            {"type": "text", "text": "You are a bot."},
            {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}}
        ]})
    );
    let (param, message) = refusal(json!({
        "model": "m", "system": [{"type": "image", "source": {}}], "messages": []
    }));
    assert_eq!(
        (param, message.as_str()),
        (
            "system",
            "system.0: system blocks must be text, not \"image\""
        )
    );
    assert_eq!(
        chat(json!({"model": "m", "system": "", "messages": []}))["messages"],
        json!([])
    );
}

#[test]
fn user_blocks_become_parts() {
    let messages = user_messages(json!([
        {"type": "text", "text": "Look:", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
        {"type": "image", "source": {"type": "url", "url": "https://x/cat.jpg"}},
        {"type": "document", "title": "Report", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
        {"type": "document", "source": {"type": "base64", "data": "JVBF"}, "cache_control": {"type": "ephemeral"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}},
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "text", "text": "chunk 1"},
            {"type": "image", "source": {"type": "url", "url": "https://x/fig.png"}}
        ]}, "cache_control": {"type": "ephemeral"}},
        {"type": "document", "source": {"type": "content", "content": "inline"}}
    ]));
    assert_eq!(
        messages,
        json!([{"role": "user", "content": [
            {"type": "text", "text": "Look:", "cache_control": {"type": "ephemeral"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
            {"type": "image_url", "image_url": {"url": "https://x/cat.jpg"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "Report"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBF", "filename": "document.pdf"},
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "plain doc"},
            {"type": "text", "text": "chunk 1"},
            {"type": "image_url", "image_url": {"url": "https://x/fig.png"}, "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "inline"}
        ]}])
    );
}

#[test]
fn tool_results_become_tool_messages_before_the_rest_of_the_turn() {
    let messages = user_messages(json!([
        {"type": "text", "text": "Here you go."},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": [
            {"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}
        ]},
        {"type": "tool_result", "tool_use_id": "toolu_3", "content": [
            {"type": "text", "text": "chart:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}}
        ], "cache_control": {"type": "ephemeral"}},
        {"type": "tool_result", "tool_use_id": "toolu_4", "is_error": true, "content": "Timeout"},
        {"type": "tool_result", "tool_use_id": "toolu_5", "is_error": true},
        {"type": "tool_result", "tool_use_id": "toolu_6"}
    ]));
    assert_eq!(
        messages,
        json!([
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": "line 1\nline 2"},
            {"role": "tool", "tool_call_id": "toolu_3", "content": [
                {"type": "text", "text": "chart:"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"},
                 "cache_control": {"type": "ephemeral"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_4", "content": "Timeout"},
            {"role": "tool", "tool_call_id": "toolu_5", "content": "error"},
            {"role": "tool", "tool_call_id": "toolu_6", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": "Here you go."}]}
        ])
    );
    let only_results = user_messages(json!([
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}]}
    ]));
    assert_eq!(
        only_results,
        json!([{"role": "tool", "tool_call_id": "t", "content": [
            {"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}
        ]}]),
        "no empty user message after the results; cache_control keeps parts"
    );
}

#[test]
fn assistant_turns_carry_text_tool_calls_and_thinking() {
    let sent = chat(json!({
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need the tool. ", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "thinking", "thinking": "Two cities.", "signature": "sig-2"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "both."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
            ]},
            {"role": "assistant", "content": "plain"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_3", "name": "now", "input": {}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}}
            ]}
        ]
    }));
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": "Checking both.",
                "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ],
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "Need the tool. ", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "thinking", "thinking": "Two cities.", "signature": "sig-2"}
                ],
                "reasoning_content": "Need the tool. Two cities."
            },
            {"role": "assistant", "content": "plain"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "cached", "cache_control": {"type": "ephemeral"}}
            ]}
        ])
    );
}

#[test]
fn tools_map_to_functions_and_server_tools_to_hosted_tools() {
    let call = to_chat(&object(&json!({
        "model": "m",
        "messages": [],
        "tools": [
            {"name": "weather", "description": "Get weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"type": "custom", "name": "now", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}, "strict": true},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
    })))
    .unwrap();
    assert_eq!(call.hosted_tools, ["web_search_20250305", "bash_20250124"]);
    assert_eq!(
        Value::Object(call.body),
        json!({
            "model": "m",
            "messages": [],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Get weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}, "strict": true},
                 "cache_control": {"type": "ephemeral"}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false
        })
    );
}

#[test]
fn tool_choice_variants() {
    let tools = json!([{"name": "f", "input_schema": {"type": "object"}}]);
    for (choice, expected) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "f"}),
            json!({"type": "function", "function": {"name": "f"}}),
        ),
    ] {
        let sent =
            chat(json!({"model": "m", "messages": [], "tools": tools, "tool_choice": choice}));
        assert_eq!(sent["tool_choice"], expected, "{choice}");
        assert!(sent.get("parallel_tool_calls").is_none());
    }
    let no_tools = chat(json!({"model": "m", "messages": [], "tool_choice": {"type": "auto"}}));
    assert!(
        no_tools.get("tool_choice").is_none(),
        "chat refuses a choice without tools"
    );
    let hosted_only = to_chat(&object(&json!({"model": "m", "messages": [],
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "tool_choice": {"type": "any"}})))
    .unwrap();
    assert_eq!(hosted_only.hosted_tools, ["web_search_20250305"]);
    assert!(
        !hosted_only.body.contains_key("tools") && !hosted_only.body.contains_key("tool_choice")
    );
    assert_eq!(
        refusal(
            json!({"model": "m", "messages": [], "tools": tools, "tool_choice": {"type": "tool"}})
        ),
        ("tool_choice", "tool_choice.name: Field required".to_owned())
    );
    assert_eq!(
        refusal(json!({"model": "m", "messages": [], "tool_choice": {"type": "sometimes"}})).0,
        "tool_choice"
    );
}

#[test]
fn thinking_becomes_reasoning_effort() {
    for (thinking, effort) in [
        (
            json!({"type": "enabled", "budget_tokens": 1024}),
            Some("low"),
        ),
        (
            json!({"type": "enabled", "budget_tokens": 1025}),
            Some("medium"),
        ),
        (
            json!({"type": "enabled", "budget_tokens": 8192}),
            Some("medium"),
        ),
        (
            json!({"type": "enabled", "budget_tokens": 8193}),
            Some("high"),
        ),
        (json!({"type": "adaptive"}), Some("medium")),
        (json!({"type": "disabled"}), None),
    ] {
        let sent = chat(json!({"model": "m", "messages": [], "thinking": thinking}));
        assert_eq!(
            sent.get("reasoning_effort").and_then(Value::as_str),
            effort,
            "{thinking}"
        );
        assert!(sent.get("thinking").is_none());
    }
    assert_eq!(
        refusal(json!({"model": "m", "messages": [], "thinking": {"type": "enabled"}})).0,
        "thinking"
    );
    assert_eq!(
        refusal(json!({"model": "m", "messages": [], "thinking": {"type": "max"}})).0,
        "thinking"
    );
}

#[test]
fn request_refusals_name_the_field() {
    for (body, param, message) in [
        (
            json!({"model": "m"}),
            "messages",
            "messages: Field required",
        ),
        (
            user(
                json!([{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]),
            ),
            "messages",
            "messages.0.content.0: user content blocks of type \"server_tool_use\" cannot be served by this model's provider",
        ),
        (
            user(json!([{"type": "search_result", "source": "x", "title": "t", "content": []}])),
            "messages",
            "messages.0.content.0: user content blocks of type \"search_result\" cannot be served by this model's provider",
        ),
        (
            user(json!([{"type": "image", "source": {"type": "file", "file_id": "file_1"}}])),
            "messages",
            "messages.0.content.0.source: image sources of type \"file\" cannot be served by this model's provider; send the image as base64 data or a URL",
        ),
        (
            user(
                json!([{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]),
            ),
            "messages",
            "messages.0.content.0.source: document sources of type \"url\" cannot be served by this model's provider; send the document as base64 data or text",
        ),
        (
            user(json!([{"type": "text"}])),
            "messages",
            "messages.0.content.0.text: Field required",
        ),
        (
            user(json!([{"text": "x"}])),
            "messages",
            "messages.0.content.0.type: Field required",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "content": [{"type": "image", "source": {}}]}]}),
            "messages",
            "messages.0.content.0: assistant content blocks of type \"image\" cannot be served by this model's provider",
        ),
        (
            json!({"model": "m", "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}]}),
            "messages",
            "messages.0.content.0.input: Input should be a valid dictionary",
        ),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": "x"}]}),
            "messages",
            "messages.0.role: must be \"user\" or \"assistant\", not \"system\" (system prompts go in the top-level system field)",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user"}]}),
            "messages",
            "messages.0.content: Field required",
        ),
        (
            json!({"model": "m", "messages": [], "tools": [{"input_schema": {}}]}),
            "tools",
            "tools.0.name: Field required",
        ),
        (
            json!({"model": "m", "messages": [], "metadata": {"session": "s"}}),
            "metadata",
            "metadata.session: Extra inputs are not permitted",
        ),
        (
            json!({"model": "m", "messages": [], "max_completion_tokens": 5}),
            "max_completion_tokens",
            "max_completion_tokens: Extra inputs are not permitted",
        ),
    ] {
        assert_eq!(refusal(body.clone()), (param, message.to_owned()), "{body}");
    }
}

fn view(body: &Map<String, Value>, stream: bool) -> CallView<'_> {
    test_support::view(Endpoint::Messages, body, stream, "upstream-model")
}

/// The Messages answer to a request for model `claude-x` made of a chat `completion`
/// with `usage` metered.
fn answer(completion: Value, usage: Option<Usage>) -> Value {
    let request = object(&json!({"model": "claude-x", "messages": []}));
    let chat = Reply {
        body: Bytes::from(completion.to_string()),
        usage,
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

/// A chat translator that relays its input as it comes (so events reach the bridge cut
/// anywhere), reporting `usage` and ending with `tail` or `fail` when finished.
struct Relay {
    usage: Option<Usage>,
    tail: Option<&'static str>,
    fail: Option<StreamError>,
}

impl StreamTranslator for Relay {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        Ok(Some(chunk))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        match self.fail.take() {
            Some(error) => Err(error),
            None => Ok(self.tail.map(|t| Bytes::from_static(t.as_bytes()))),
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

fn relay(usage: Option<Usage>) -> Box<dyn StreamTranslator> {
    Box::new(Relay {
        usage,
        tail: None,
        fail: None,
    })
}

/// `data: {chunk}` with choice 0's `delta` and `finish_reason`.
fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    format!("data: {chunk}\n\n")
}

fn usage_chunk() -> String {
    let chunk = json!({
        "id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62,
                  "prompt_tokens_details": {"cached_tokens": 20, "cache_creation_tokens": 5},
                  "completion_tokens_details": {"reasoning_tokens": 4}}
    });
    format!("data: {chunk}\n\n")
}

const DONE: &str = "data: [DONE]\n\n";

/// The usage of [`usage_chunk`] as Messages states it.
fn streamed_usage() -> Value {
    json!({"input_tokens": 25, "output_tokens": 12,
           "cache_read_input_tokens": 20, "cache_creation_input_tokens": 5})
}

/// The events `stream` writes for `raw` fed in pieces of `size` bytes, each checked to
/// be `event: NAME` with data of that `type`.
fn run(mut stream: Stream, raw: &str, size: usize) -> Result<Vec<Value>, StreamError> {
    let mut out = Vec::new();
    for piece in raw.as_bytes().chunks(size.max(1)) {
        if let Some(bytes) = stream.feed(Bytes::copy_from_slice(piece))? {
            out.extend_from_slice(&bytes);
        }
    }
    if let Some(bytes) = stream.finish()? {
        out.extend_from_slice(&bytes);
    }
    let text = String::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    Ok(text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|e| e.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not one event and one data line: {event:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event}");
            data
        })
        .collect())
}

/// Runs `raw` through a bridge over a [`Relay`] in pieces of several sizes, checks they
/// all come out the same, and returns the events.
fn streamed(raw: &str, usage: Option<Usage>) -> Vec<Value> {
    let request = object(&json!({"model": "claude-x", "messages": [], "stream": true}));
    let call = view(&request, true);
    let whole = run(Stream::new(&call, relay(usage)), raw, raw.len()).unwrap();
    for size in [1, 2, 7, 61] {
        let pieces = run(Stream::new(&call, relay(usage)), raw, size).unwrap();
        assert_eq!(pieces, whole, "fed in pieces of {size}");
    }
    whole
}

fn message_start(id: &str) -> Value {
    json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    }})
}

fn start(index: u32, block: Value) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": block})
}

fn delta(index: u32, delta: Value) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": delta})
}

fn stop(index: u32) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

fn message_end(stop_reason: &str, usage: Value) -> [Value; 2] {
    [
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage}),
        json!({"type": "message_stop"}),
    ]
}

#[test]
fn a_text_stream_is_anthropics_event_sequence() {
    let raw = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo \"you\"\n"}), None),
        chunk(json!({}), Some("stop")),
        usage_chunk(),
        DONE.to_owned(),
    ]
    .concat();
    let mut expected = vec![
        message_start("msg_chatcmpl-9"),
        json!({"type": "ping"}),
        start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": "Hel"})),
        delta(0, json!({"type": "text_delta", "text": "lo \"you\"\n"})),
        stop(0),
    ];
    expected.extend(message_end("end_turn", streamed_usage()));
    assert_eq!(streamed(&raw, None), expected);
}

#[test]
fn thinking_streams_with_signatures_and_redacted_blocks() {
    let raw = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "Let me "}), None),
        // Providers repeat the text of a thinking piece in reasoning_content.
        chunk(
            json!({"reasoning_content": "think.", "thinking_blocks": [{"type": "thinking", "thinking": "think."}]}),
            None,
        ),
        chunk(
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-1"}]}),
            None,
        ),
        chunk(
            json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}),
            None,
        ),
        chunk(json!({"reasoning_content": "More."}), None),
        chunk(json!({"thinking_blocks": [{"type": "thinking", "signature": "sig-2"}]}), None),
        chunk(json!({"reasoning_content": "Unsigned."}), None),
        chunk(json!({"content": "Answer"}), Some("stop")),
        DONE.to_owned(),
    ]
    .concat();
    let inner_usage = Usage {
        prompt_tokens: 9,
        completion_tokens: 3,
        ..Usage::default()
    };
    let thinking = json!({"type": "thinking", "thinking": "", "signature": ""});
    let mut expected = vec![
        message_start("msg_chatcmpl-9"),
        json!({"type": "ping"}),
        start(0, thinking.clone()),
        delta(0, json!({"type": "thinking_delta", "thinking": "Let me "})),
        delta(0, json!({"type": "thinking_delta", "thinking": "think."})),
        delta(0, json!({"type": "signature_delta", "signature": "sig-1"})),
        stop(0),
        start(1, json!({"type": "redacted_thinking", "data": "opaque"})),
        stop(1),
        start(2, thinking.clone()),
        delta(2, json!({"type": "thinking_delta", "thinking": "More."})),
        delta(2, json!({"type": "signature_delta", "signature": "sig-2"})),
        stop(2),
        start(3, thinking),
        delta(
            3,
            json!({"type": "thinking_delta", "thinking": "Unsigned."}),
        ),
        stop(3),
        start(4, json!({"type": "text", "text": ""})),
        delta(4, json!({"type": "text_delta", "text": "Answer"})),
        stop(4),
    ];
    // No usage chunk: the usage is the inner stream's.
    expected.extend(message_end(
        "end_turn",
        json!({"input_tokens": 9, "output_tokens": 3,
               "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}),
    ));
    assert_eq!(streamed(&raw, Some(inner_usage)), expected);
}

#[test]
fn parallel_tool_calls_stream_as_tool_use_blocks() {
    let call = |index: u32, id: &str, name: &str, arguments: &str| {
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                               "function": {"name": name, "arguments": arguments}}]})
    };
    let more = |index: u32, arguments: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]});
    let raw = [
        chunk(json!({"role": "assistant", "content": "Checking."}), None),
        chunk(call(0, "call_a", "weather", ""), None),
        chunk(more(0, "{\"ci"), None),
        chunk(more(0, "ty\":\"Paris\"}"), None),
        chunk(call(1, "call_b", "weather", "{\"city\":"), None),
        chunk(more(1, "\"Rome\"}"), None),
        // Some providers number every call 0 and tell them apart by id.
        chunk(call(0, "call_c", "now", "{}"), None),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(),
        DONE.to_owned(),
    ]
    .concat();
    let tool =
        |id: &str, name: &str| json!({"type": "tool_use", "id": id, "name": name, "input": {}});
    let json_delta = |index: u32, text: &str| {
        delta(
            index,
            json!({"type": "input_json_delta", "partial_json": text}),
        )
    };
    let mut expected = vec![
        message_start("msg_chatcmpl-9"),
        json!({"type": "ping"}),
        start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": "Checking."})),
        stop(0),
        start(1, tool("call_a", "weather")),
        json_delta(1, "{\"ci"),
        json_delta(1, "ty\":\"Paris\"}"),
        stop(1),
        start(2, tool("call_b", "weather")),
        json_delta(2, "{\"city\":"),
        json_delta(2, "\"Rome\"}"),
        stop(2),
        start(3, tool("call_c", "now")),
        json_delta(3, "{}"),
        stop(3),
    ];
    expected.extend(message_end("tool_use", streamed_usage()));
    assert_eq!(streamed(&raw, None), expected);
}

#[test]
fn a_piece_of_a_closed_tool_call_is_refused() {
    let raw = [
        chunk(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}), None),
    ]
    .concat();
    let request = object(&json!({"model": "claude-x", "messages": []}));
    let error = run(Stream::new(&view(&request, true), relay(None)), &raw, 5).unwrap_err();
    assert_eq!(error.code, "upstream_malformed_stream", "{error:?}");
}

#[test]
fn a_stream_without_a_finish_reason_is_malformed() {
    let request = object(&json!({"model": "claude-x", "messages": []}));
    for raw in [
        [chunk(json!({"content": "Hel"}), None), DONE.to_owned()].concat(),
        chunk(json!({"content": "Hel"}), None),
        String::new(),
    ] {
        let error = run(Stream::new(&view(&request, true), relay(None)), &raw, 3).unwrap_err();
        assert_eq!(
            error,
            StreamError::malformed("the stream ended without a finish_reason"),
            "{raw}"
        );
    }
}

#[test]
fn a_stream_ends_at_the_upstreams_end_without_done() {
    let raw = [
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({}), Some("length")),
    ]
    .concat();
    let events = streamed(&raw, None);
    assert_eq!(
        events[events.len() - 3..],
        [
            stop(0),
            message_end(
                "max_tokens",
                json!({"input_tokens": 0, "output_tokens": 0,
                       "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
            )[0]
            .clone(),
            json!({"type": "message_stop"})
        ]
    );
}

#[test]
fn inner_errors_and_error_events_end_the_stream() {
    let request = object(&json!({"model": "claude-x", "messages": []}));
    let call = view(&request, true);
    let failing = Box::new(Relay {
        usage: None,
        tail: None,
        fail: Some(StreamError::upstream("cut off")),
    });
    let raw = chunk(json!({"content": "Hi"}), Some("stop"));
    assert_eq!(
        run(Stream::new(&call, failing), &raw, 4).unwrap_err(),
        StreamError::upstream("cut off")
    );
    let raw = [
        chunk(json!({"content": "Hi"}), None),
        "data: {\"error\": {\"message\": \"overloaded\", \"type\": \"server_error\"}}\n\n"
            .to_owned(),
    ]
    .concat();
    let error = run(Stream::new(&call, relay(None)), &raw, 9).unwrap_err();
    assert_eq!(error.code, "upstream_stream_error");
    assert!(error.message.contains("overloaded"), "{error:?}");
    let tail = Box::new(Relay {
        usage: None,
        tail: Some(
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ),
        fail: None,
    });
    let events = run(
        Stream::new(&call, tail),
        &chunk(json!({"content": "Hi"}), None),
        4,
    )
    .unwrap();
    assert_eq!(
        events.last(),
        Some(&json!({"type": "message_stop"})),
        "what inner's finish wrote is translated"
    );
}

/// The whole path: an Anthropic upstream's stream through the Anthropic provider's chat
/// translator and back to Messages.
#[test]
fn an_anthropic_upstream_streams_back_as_messages() {
    use crate::config::snapshot::{ProviderKind, SecretString};
    let request = object(
        &json!({"model": "claude-x", "max_tokens": 100, "stream": true,
                                 "messages": [{"role": "user", "content": "Weather?"}]}),
    );
    let chat_body = to_chat(&request).unwrap().body;
    let mut spec = crate::provider::spec(ProviderKind::Anthropic);
    spec.api_key = Some(SecretString::new("sk-ant"));
    let prepared = crate::provider::anthropic::build(&spec).unwrap();
    let chat_call = test_support::view(Endpoint::ChatCompletions, &chat_body, true, "claude-up");
    let sse = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let raw = [
        sse("message_start", json!({"type": "message_start", "message": {"id": "msg_up", "model": "claude-up",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm."}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "text", "text": ""}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "Let me check."}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
        sse("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 7}})),
        sse("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    let call = view(&request, true);
    for size in [3, raw.len()] {
        let stream = Stream::new(&call, prepared.dialect.stream(&chat_call));
        let events = run(stream, &raw, size).unwrap();
        let mut expected = vec![
            message_start("msg_up"),
            json!({"type": "ping"}),
            start(
                0,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ),
            delta(0, json!({"type": "thinking_delta", "thinking": "Hmm."})),
            stop(0),
            start(1, json!({"type": "text", "text": ""})),
            delta(1, json!({"type": "text_delta", "text": "Let me check."})),
            stop(1),
            start(
                2,
                json!({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}),
            ),
            delta(
                2,
                json!({"type": "input_json_delta", "partial_json": "{\"city\":"}),
            ),
            delta(
                2,
                json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"}),
            ),
            stop(2),
        ];
        expected.extend(message_end(
            "tool_use",
            json!({"input_tokens": 10, "output_tokens": 7,
                   "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0}),
        ));
        assert_eq!(events, expected, "fed in pieces of {size}");
    }
}

//! Messages requests restated as chat requests, and the requests refused.

use serde_json::{Value, json};

use super::super::to_chat;
use crate::provider::TranslateError;
use crate::provider::test_support::object;

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

//! Converse requests checked and answered as Bedrock does, without HTTP.

// Test code may panic on broken expectations; that is how it reports them.
#![allow(clippy::unwrap_used)]

use super::*;

fn run(model: &str, body: Value) -> Result<Answer, Failure> {
    let mut n = 0;
    answer(model, &body, &mut || {
        n += 1;
        n
    })
}

fn user(text: &str) -> Value {
    json!({"role": "user", "content": [{"text": text}]})
}

#[test]
fn refuses_what_bedrock_refuses() {
    let cases = [
        (json!({"messages": []}), "start with a user message"),
        (
            json!({"messages": [{"role": "assistant", "content": [{"text": "x"}]}]}),
            "start with a user message",
        ),
        (json!({"messages": [user("a"), user("b")]}), "alternate"),
        (json!({"messages": [user("  ")]}), "is blank"),
        (
            json!({"messages": [user("a")], "max_tokens": 3}),
            "Unknown field 'max_tokens'",
        ),
        (
            json!({"messages": [user("a")], "inferenceConfig": {"max_tokens": 3}}),
            "Unknown field 'max_tokens' in inferenceConfig",
        ),
        (
            json!({"messages": [user("a")], "inferenceConfig": {"temperature": 1.5}}),
            "between 0 and 1",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": "AA=="}}}]}]}),
            "enum value set",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"image": {"format": "png", "source": {"bytes": "not base64!"}}}]}]}),
            "base64",
        ),
        (
            json!({"messages": [user("a"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]}, {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}]}),
            "toolConfig field must be defined",
        ),
        (
            json!({"messages": [user("a"), {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]}, {"role": "user", "content": [{"toolResult": {"toolUseId": "t2", "content": [{"text": "r"}]}}]}], "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]}}),
            "don't match",
        ),
        (
            json!({"messages": [user("a")], "toolConfig": {"tools": [{"toolSpec": {"name": "bad name", "inputSchema": {"json": {}}}}]}}),
            "regular expression",
        ),
        (
            json!({"messages": [user("a")], "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}], "toolChoice": {"tool": {"name": "g"}}}}),
            "does not name a tool",
        ),
    ];
    for (body, want) in cases {
        let err = run("m", body.clone()).unwrap_err();
        assert_eq!(err.exception, "ValidationException");
        assert!(err.message.contains(want), "{body}: {}", err.message);
    }
}

#[test]
fn answers_honour_stop_sequences_and_max_tokens() {
    let body = json!({"messages": [user("one two three four")], "system": [{"text": "be brief"}]});
    let a = run("m", body).unwrap();
    assert_eq!(a.stop_reason, "end_turn");
    assert!(matches!(&a.blocks[0], Block::Text(t) if t == "mock reply to: one two three four"));
    assert_eq!((a.usage.input, a.usage.output), (6, 7));

    let body = json!({"messages": [user("one two three")], "inferenceConfig": {"maxTokens": 3}});
    let a = run("m", body).unwrap();
    assert_eq!(a.stop_reason, "max_tokens");
    assert!(matches!(&a.blocks[0], Block::Text(t) if t == "mock reply to:"));

    let body =
        json!({"messages": [user("one two three")], "inferenceConfig": {"stopSequences": ["two"]}});
    let a = run("m", body).unwrap();
    assert_eq!(a.stop_reason, "stop_sequence");
    assert!(matches!(&a.blocks[0], Block::Text(t) if t == "mock reply to: one "));
}

#[test]
fn tools_are_called_when_forced_or_asked_and_results_are_quoted() {
    let tools = json!({"tools": [
        {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}}}}},
        {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object", "properties": {"utc": {"type": "boolean"}}}}}}
    ]});
    let body = json!({"messages": [user("weather?")], "toolConfig": tools});
    assert_eq!(run("m", body.clone()).unwrap().stop_reason, "end_turn");
    let a = run("mock-tool-call", body.clone()).unwrap();
    assert_eq!(a.stop_reason, "tool_use");
    assert_eq!(a.blocks.len(), 2);
    assert!(matches!(&a.blocks[1], Block::ToolUse { name, input, .. }
        if name == "get_weather" && *input == json!({"city": "mock-city", "unit": "c"})));
    let a = run("mock-parallel-tools", body.clone()).unwrap();
    assert_eq!(a.blocks.len(), 3);
    let mut forced = body.clone();
    forced["toolConfig"]["toolChoice"] = json!({"tool": {"name": "get_time"}});
    let a = run("m", forced).unwrap();
    // A forced call comes straight away, with no text before it.
    assert_eq!(a.blocks.len(), 1);
    assert!(
        matches!(&a.blocks[0], Block::ToolUse { name, input, .. } if name == "get_time" && *input == json!({"utc": true}))
    );

    let round_trip = json!({"messages": [
        user("weather?"),
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"json": {"temp": 21}}], "status": "success"}}]}
    ], "toolConfig": tools});
    let a = run("mock-tool-call", round_trip).unwrap();
    assert_eq!(a.stop_reason, "end_turn");
    assert!(
        matches!(&a.blocks[0], Block::Text(t) if t == r#"mock reply to tool results: t1={"temp":21}"#)
    );
}

#[test]
fn images_are_described_and_events_follow_bedrock_order() {
    let body = json!({"messages": [{"role": "user", "content": [
        {"text": "what is this"},
        {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    ]}]});
    let a = run("mock-cache", body).unwrap();
    assert!(
        matches!(&a.blocks[0], Block::Text(t) if t == "mock reply to: what is this [image/png 8 bytes]")
    );
    let usage = a.usage.to_json();
    assert!(usage["cacheReadInputTokens"].as_u64().unwrap() > 0);
    let kinds: Vec<String> = to_events(&a, 5)
        .iter()
        .map(|m| m.header(":event-type").unwrap().to_owned())
        .collect();
    assert_eq!(kinds.first().unwrap(), "messageStart");
    assert_eq!(
        &kinds[kinds.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    let events = to_events(&a, 5);
    assert!(events.iter().all(|e| e.json()["p"].is_string()));
}

const CLAUDE_37: &str = "anthropic.claude-3-7-sonnet-20250219-v1:0";
const CLAUDE_45: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

fn weather_tools() -> Value {
    json!({"tools": [
        {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
        {"toolSpec": {"name": "get_time", "inputSchema": {"json": {"type": "object"}}}}
    ]})
}

fn refusal(model: &str, body: Value) -> String {
    let err = run(model, body).unwrap_err();
    assert_eq!(err.exception, "ValidationException");
    err.message
}

#[test]
fn claude_thinks_when_asked_and_signs_its_reasoning() {
    let body = json!({"messages": [user("hello")], "inferenceConfig": {"maxTokens": 2048},
        "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}});
    let a = run(CLAUDE_37, body).unwrap();
    let Block::Reasoning { text, signature } = &a.blocks[0] else {
        panic!("{a:?}")
    };
    assert_eq!(text, "Thinking about: hello.");
    assert_eq!(signature.as_deref(), Some(model::signature(text).as_str()));
    assert!(matches!(&a.blocks[1], Block::Text(t) if t == "mock reply to: hello"));
    assert_eq!(a.usage.output, 3 + 4);
    let json: Value = serde_json::from_slice(&to_json(&a, 1)).unwrap();
    assert_eq!(
        json["output"]["message"]["content"][0],
        json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
    );
    // Streamed: reasoning text deltas, then the signature, before the text.
    let deltas: Vec<Value> = to_events(&a, 1)
        .iter()
        .filter(|m| m.header(":event-type") == Some("contentBlockDelta"))
        .map(|m| m.json()["delta"].clone())
        .collect();
    assert_eq!(
        deltas[0],
        json!({"reasoningContent": {"text": "Thinking "}})
    );
    assert_eq!(
        deltas[3],
        json!({"reasoningContent": {"signature": signature}})
    );
    assert_eq!(deltas[4], json!({"text": "mock "}));
    // Nova 2 and gpt-oss reason unsigned; redacted reasoning on mock-redacted models.
    let nova = json!({"messages": [user("hi")], "additionalModelRequestFields":
        {"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}}});
    let a = run("us.amazon.nova-2-lite-v1:0", nova).unwrap();
    assert!(matches!(
        &a.blocks[0],
        Block::Reasoning {
            signature: None,
            ..
        }
    ));
    let oss = json!({"messages": [user("hi")], "additionalModelRequestFields": {"reasoning_effort": "low"}});
    assert!(run("openai.gpt-oss-20b-1:0", oss).is_ok());
    let redacted = json!({"messages": [user("hi")], "additionalModelRequestFields": {"thinking": {"type": "adaptive"}}});
    let a = run("anthropic.claude-opus-4-6-v1-mock-redacted", redacted).unwrap();
    assert!(matches!(&a.blocks[1], Block::Redacted(d) if d == model::REDACTED));
}

#[test]
fn model_fields_are_checked_as_each_model_checks_them() {
    let thinking = |t: Value| json!({"messages": [user("hi")], "additionalModelRequestFields": {"thinking": t}});
    let cases = [
        (
            CLAUDE_37,
            thinking(json!({"type": "enabled", "budget_tokens": 512})),
            "greater than or equal to 1024",
        ),
        (
            CLAUDE_37,
            thinking(json!({"type": "enabled", "budget_tokens": 8192})),
            "`max_tokens` must be greater",
        ),
        (
            CLAUDE_37,
            thinking(json!({"type": "adaptive"})),
            "adaptive thinking is not supported",
        ),
        (
            "anthropic.claude-opus-4-7",
            thinking(json!({"type": "enabled", "budget_tokens": 2048})),
            "only supports adaptive",
        ),
        (
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            thinking(json!({"type": "enabled", "budget_tokens": 2048})),
            "Extra inputs",
        ),
        (
            "us.meta.llama3-3-70b-instruct-v1:0",
            json!({"messages": [user("hi")], "additionalModelRequestFields": {"reasoning_effort": "low"}}),
            "extraneous key [reasoning_effort]",
        ),
        (
            CLAUDE_37,
            json!({"messages": [user("hi")], "additionalModelRequestFields": {"tool_choice": {"type": "auto"}}}),
            "only be specified while providing tools",
        ),
        (
            CLAUDE_37,
            json!({"messages": [user("hi")], "toolConfig": weather_tools(), "additionalModelRequestFields": {"tool_choice": {"disable_parallel_tool_use": true}}}),
            "tool_choice.type: Field required",
        ),
    ];
    for (model, body, want) in cases {
        let message = refusal(model, body.clone());
        assert!(message.contains(want), "{model} {body}: {message}");
    }
    // Claude's tool_choice may not overlap Converse's toolChoice.
    let mut config = weather_tools();
    config["toolChoice"] = json!({"tool": {"name": "get_weather"}});
    let message = refusal(
        CLAUDE_37,
        json!({"messages": [user("hi")], "toolConfig": config,
        "additionalModelRequestFields": {"tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}}),
    );
    assert!(
        message.contains(
            "tool_choice/type conflicts with the existing field toolConfig.toolChoice.tool"
        ),
        "{message}"
    );
    // Thinking refuses a forced tool choice, in either place.
    let thinking_on = json!({"type": "enabled", "budget_tokens": 1024});
    let mut forced = weather_tools();
    forced["toolChoice"] = json!({"any": {}});
    for body in [
        json!({"messages": [user("hi")], "toolConfig": forced, "inferenceConfig": {"maxTokens": 2048},
            "additionalModelRequestFields": {"thinking": thinking_on}}),
        json!({"messages": [user("hi")], "toolConfig": weather_tools(), "inferenceConfig": {"maxTokens": 2048},
            "additionalModelRequestFields": {"thinking": thinking_on, "tool_choice": {"type": "tool", "name": "get_time"}}}),
    ] {
        assert!(
            refusal(CLAUDE_37, body)
                .contains("Thinking may not be enabled when tool_choice forces tool use")
        );
    }
}

#[test]
fn claudes_tool_choice_forces_and_limits_calls() {
    let body = json!({"messages": [user("hi")], "toolConfig": weather_tools(),
        "additionalModelRequestFields": {"tool_choice": {"type": "tool", "name": "get_time", "disable_parallel_tool_use": true}}});
    let a = run(CLAUDE_37, body).unwrap();
    assert!(matches!(&a.blocks[..], [Block::ToolUse { name, .. }] if name == "get_time"));
    let body = json!({"messages": [user("hi")], "toolConfig": weather_tools(),
        "additionalModelRequestFields": {"tool_choice": {"type": "auto", "disable_parallel_tool_use": true}}});
    let a = run("anthropic.claude-3-7-sonnet-mock-parallel-tools", body).unwrap();
    let calls = a
        .blocks
        .iter()
        .filter(|b| matches!(b, Block::ToolUse { .. }))
        .count();
    assert_eq!(calls, 1, "parallel use disabled: {a:?}");
}

#[test]
fn reasoning_sent_back_must_be_signed_and_lead_the_turn_that_called_tools() {
    let thought = "Thinking about: weather?.";
    let history = |reasoning: Value| {
        let mut content = vec![
            json!({"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"city": "Paris"}}}),
        ];
        if !reasoning.is_null() {
            content.insert(0, json!({"reasoningContent": reasoning}));
        }
        json!({"messages": [
            user("weather?"),
            {"role": "assistant", "content": content},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "18C"}]}}]}
        ], "toolConfig": weather_tools(), "inferenceConfig": {"maxTokens": 2048},
           "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}})
    };
    let signed =
        json!({"reasoningText": {"text": thought, "signature": model::signature(thought)}});
    let a = run(CLAUDE_37, history(signed)).unwrap();
    assert!(
        matches!(a.blocks.last(), Some(Block::Text(t)) if t.starts_with("mock reply to tool results"))
    );
    let message = refusal(CLAUDE_37, history(Value::Null));
    assert!(
        message.contains("must start with a thinking block"),
        "{message}"
    );
    let forged = json!({"reasoningText": {"text": "I changed my mind.", "signature": model::signature(thought)}});
    assert!(refusal(CLAUDE_37, history(forged)).contains("Invalid `signature`"));
    let unsigned = json!({"reasoningText": {"text": thought}});
    assert!(refusal(CLAUDE_37, history(unsigned)).contains("signature: Field required"));
    let redacted = json!({"redactedContent": model::REDACTED});
    assert!(run(CLAUDE_37, history(redacted)).is_ok());
    let bad = json!({"redactedContent": "AAAA"});
    assert!(refusal(CLAUDE_37, history(bad)).contains("Invalid `data`"));
}

#[test]
fn native_structured_output_answers_json_text() {
    let schema = json!({"type": "object", "properties": {"capital": {"type": "string"}},
        "required": ["capital"], "additionalProperties": false});
    let format = |schema: &Value| {
        json!({"textFormat": {"type": "json_schema",
        "structure": {"jsonSchema": {"schema": schema.to_string(), "name": "capital"}}}})
    };
    let body = json!({"messages": [user("capital of France?")], "outputConfig": format(&schema)});
    let a = run(CLAUDE_45, body.clone()).unwrap();
    assert!(matches!(&a.blocks[..], [Block::Text(t)] if t == r#"{"capital":"mock-capital"}"#));
    assert!(refusal(CLAUDE_37, body).contains("doesn't support the outputConfig"));
    let open = json!({"type": "object", "properties": {"capital": {"type": "string"}}});
    let body = json!({"messages": [user("x")], "outputConfig": format(&open)});
    assert!(
        refusal(CLAUDE_45, body).contains("'additionalProperties' must be explicitly set to false")
    );
    let body = json!({"messages": [user("x")], "outputConfig": {"textFormat": {"type": "json_schema",
        "structure": {"jsonSchema": {"schema": schema}}}}});
    assert!(refusal(CLAUDE_45, body).contains("as a string"));
}

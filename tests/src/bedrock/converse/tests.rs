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
    assert!(
        matches!(&a.blocks[1], Block::ToolUse { name, input, .. } if name == "get_time" && *input == json!({"utc": true}))
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

//! Unit tests of what Converse leaves to the model: structured output (native and
//! through the JSON tool), reasoning (request fields, answers, streams and the signed
//! reasoning sent back), `parallel_tool_calls: false`, and cache points with thinking on.

use serde_json::{Value, json};

use super::eventstream::tests::encode;
use super::*;
use crate::config::snapshot::{AwsCredentials, ProviderKind};
use crate::provider::test_support::{self, object, view};

const CLAUDE_35: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const CLAUDE_37: &str = "us.anthropic.claude-3-7-sonnet-20250219-v1:0";
const CLAUDE_45: &str = "global.anthropic.claude-sonnet-4-5-20250929-v1:0";
const CLAUDE_46: &str = "anthropic.claude-opus-4-6-v1";
const NOVA_2: &str = "us.amazon.nova-2-lite-v1:0";
const GPT_OSS: &str = "openai.gpt-oss-120b-1:0";
const LLAMA: &str = "us.meta.llama3-3-70b-instruct-v1:0";

fn dialect() -> Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Bedrock);
    spec.model = CLAUDE_45.into();
    spec.region = Some("us-east-1".into());
    spec.aws = Some(AwsCredentials::new("AKIAEXAMPLE", "secret"));
    build(&spec, &crate::provider::test_support::offline()).unwrap()
}

/// The Converse body for `body` sent to `model`, or the refusal.
fn sent(model: &str, body: Value) -> Result<Value, TranslateError> {
    let map = object(&body);
    let call = view(Endpoint::ChatCompletions, &map, false, model);
    test_support::sent(&dialect(), &call).map(|(_, body)| body)
}

fn hi() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

fn weather() -> Value {
    json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

fn capital() -> Value {
    json!({"type": "object", "properties": {"capital": {"type": "string"}},
        "required": ["capital"], "additionalProperties": false})
}

fn json_schema(strict: bool) -> Value {
    json!({"type": "json_schema", "json_schema": {"name": "capital", "description": "The capital.",
        "schema": capital(), "strict": strict}})
}

fn json_tool(schema: Value, description: &str) -> Value {
    json!({"toolSpec": {"name": "json_response", "description": description,
        "inputSchema": {"json": schema}}})
}

#[test]
fn strict_schemas_use_native_structured_output_on_claude_4_5() {
    let body = sent(
        CLAUDE_45,
        json!({"messages": hi(), "response_format": json_schema(true)}),
    )
    .unwrap();
    assert_eq!(
        body["outputConfig"],
        json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
            "schema": capital().to_string(), "name": "capital", "description": "The capital."}}}})
    );
    assert!(body.get("toolConfig").is_none());
    // The schema travels as a string of JSON.
    let schema: Value = serde_json::from_str(
        body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(schema, capital());
    // Native structured output leaves the client's tools as they are.
    let body = sent(
        CLAUDE_46,
        json!({"messages": hi(), "response_format": json_schema(true), "tools": weather(), "tool_choice": "auto"}),
    )
    .unwrap();
    assert!(body.get("outputConfig").is_some());
    assert_eq!(body["toolConfig"]["toolChoice"], json!({"auto": {}}));
    assert_eq!(body["toolConfig"]["tools"].as_array().unwrap().len(), 1);
}

#[test]
fn other_formats_and_models_use_the_forced_json_tool() {
    let forced = json!({"tool": {"name": "json_response"}});
    let cases = [
        // Older Claude, non-strict schemas, other models.
        (CLAUDE_35, json_schema(true), capital(), "The capital."),
        (CLAUDE_45, json_schema(false), capital(), "The capital."),
        (NOVA_2, json_schema(true), capital(), "The capital."),
        // json_object has no schema to constrain to.
        (
            CLAUDE_45,
            json!({"type": "json_object"}),
            json!({"type": "object"}),
            "Respond with a JSON object.",
        ),
    ];
    for (model, format, schema, description) in cases {
        let body = sent(model, json!({"messages": hi(), "response_format": format})).unwrap();
        assert!(body.get("outputConfig").is_none(), "{model}");
        assert_eq!(
            body["toolConfig"],
            json!({"tools": [json_tool(schema, description)], "toolChoice": forced}),
            "{model} {format}"
        );
    }
    let text = sent(
        CLAUDE_45,
        json!({"messages": hi(), "response_format": {"type": "text"}}),
    )
    .unwrap();
    assert!(text.get("toolConfig").is_none() && text.get("outputConfig").is_none());
}

#[test]
fn the_json_tool_sits_beside_the_clients_tools() {
    let schema = json_tool(capital(), "The capital.");
    let request = |choice: Value| {
        let mut body =
            json!({"messages": hi(), "tools": weather(), "response_format": json_schema(false)});
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        sent(CLAUDE_35, body).unwrap()["toolConfig"].clone()
    };
    // The model calls a tool, or answers through the JSON tool.
    for choice in [Value::Null, json!("auto")] {
        let config = request(choice);
        assert_eq!(config["tools"][1], schema);
        assert_eq!(config["toolChoice"], json!({"any": {}}));
    }
    // `required` and a named tool leave no room for an answer this turn.
    let config = request(json!("required"));
    assert_eq!(config["tools"].as_array().unwrap().len(), 1);
    assert_eq!(config["toolChoice"], json!({"any": {}}));
    let config = request(json!({"type": "function", "function": {"name": "weather"}}));
    assert_eq!(config["tools"].as_array().unwrap().len(), 1);
    assert_eq!(config["toolChoice"], json!({"tool": {"name": "weather"}}));
    // `none` leaves the client's tools out and forces the JSON tool.
    let config = request(json!("none"));
    assert_eq!(
        config,
        json!({"tools": [schema], "toolChoice": {"tool": {"name": "json_response"}}})
    );
}

/// The message of a completion's first choice, checked to say `content` (and no
/// reasoning) and to finish with `finish`.
fn reply<'v>(completion: &'v Value, finish: &str, content: &str) -> &'v Value {
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], finish, "{completion}");
    assert_eq!(choice["message"]["content"], content, "{completion}");
    assert!(choice["message"].get("reasoning_content").is_none());
    &choice["message"]
}

#[test]
fn json_tool_answers_become_the_content() {
    let map = object(&json!({"messages": [], "response_format": {"type": "json_object"}}));
    let call = view(Endpoint::ChatCompletions, &map, false, CLAUDE_35);
    let answer = |content: Value| {
        let body = json!({"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use", "usage": {"inputTokens": 3, "outputTokens": 4}});
        test_support::answer(&dialect(), &call, &body).unwrap()
    };
    let v = answer(json!([
        {"toolUse": {"toolUseId": "tooluse_1", "name": "json_response", "input": {"capital": "Paris"}}}
    ]));
    let m = reply(&v, "stop", r#"{"capital":"Paris"}"#);
    assert!(m.get("tool_calls").is_none(), "{m}");
    // Another tool called beside it stays a tool call.
    let v = answer(json!([
        {"toolUse": {"toolUseId": "tooluse_1", "name": "json_response", "input": {"capital": "Paris"}}},
        {"toolUse": {"toolUseId": "tooluse_2", "name": "weather", "input": {"city": "Paris"}}}
    ]));
    let m = reply(&v, "tool_calls", r#"{"capital":"Paris"}"#);
    assert_eq!(m["tool_calls"][0]["function"]["name"], "weather");
    // Without JSON mode, a tool of that name is the client's own.
    let plain = object(&json!({"messages": []}));
    let call = view(Endpoint::ChatCompletions, &plain, false, CLAUDE_35);
    let body = json!({"output": {"message": {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "t", "name": "json_response", "input": {}}}]}}, "stopReason": "tool_use"});
    let v = test_support::answer(&dialect(), &call, &body).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

fn frame(kind: &str, payload: Value) -> Vec<u8> {
    encode(
        &[
            (":event-type", 7, kind.as_bytes()),
            (":content-type", 7, b"application/json"),
            (":message-type", 7, b"event"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn run_stream(body: Value, frames: &[Vec<u8>]) -> Vec<Value> {
    let map = object(&body);
    let translator =
        dialect()
            .dialect
            .stream(&view(Endpoint::ChatCompletions, &map, true, CLAUDE_35));
    let events = test_support::run_stream(translator, &frames.concat(), 9).unwrap();
    assert_eq!(events.last().unwrap(), "[DONE]");
    events
}

fn finish(events: &[Value]) -> Option<&str> {
    events
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str())
}

#[test]
fn streamed_json_tool_input_is_content() {
    let frames = [
        frame("messageStart", json!({"role": "assistant"})),
        frame(
            "contentBlockStart",
            json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "json_response"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"capital\":"}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
        frame("messageStop", json!({"stopReason": "tool_use"})),
        frame(
            "metadata",
            json!({"usage": {"inputTokens": 3, "outputTokens": 4}}),
        ),
    ];
    let events = run_stream(
        json!({"messages": [], "response_format": json_schema(false)}),
        &frames,
    );
    assert_eq!(
        test_support::streamed_text(&events),
        r#"{"capital":"Paris"}"#
    );
    assert!(test_support::streamed_tool_calls(&events).is_empty());
    assert_eq!(finish(&events), Some("stop"));
    // Without JSON mode the same stream is a tool call.
    let events = run_stream(json!({"messages": []}), &frames);
    assert_eq!(test_support::streamed_tool_calls(&events).len(), 1);
    assert_eq!(finish(&events), Some("tool_calls"));
}

#[test]
fn reasoning_maps_to_each_familys_configuration() {
    let ask = |model: &str, extra: Value| {
        let mut body = json!({"messages": hi()});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sent(model, body)
    };
    // Claude 3.7 – 4.5: a budget, with room above it for the answer.
    let body = ask(CLAUDE_37, json!({"reasoning_effort": "medium"})).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 4096}})
    );
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 5120}));
    let body = ask(
        CLAUDE_45,
        json!({"thinking": {"type": "enabled", "budget_tokens": 2000}, "max_tokens": 9000}),
    )
    .unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 2000}})
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 9000);
    // Claude 4.6 and later: adaptive thinking with an effort.
    let body = ask(CLAUDE_46, json!({"reasoning_effort": "xhigh"})).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}})
    );
    assert!(body.get("inferenceConfig").is_none());
    let body = ask(CLAUDE_46, json!({"thinking": {"type": "adaptive"}})).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "adaptive"}})
    );
    // Nova 2 and gpt-oss take levels.
    let body = ask(NOVA_2, json!({"reasoning_effort": "minimal"})).unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"reasoningConfig": {"type": "enabled", "maxReasoningEffort": "low"}})
    );
    let body = ask(
        GPT_OSS,
        json!({"thinking": {"type": "enabled", "budget_tokens": 20000}}),
    )
    .unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"reasoning_effort": "high"})
    );
    // No reasoning asked: nothing sent, on any model.
    for model in [CLAUDE_35, LLAMA, CLAUDE_46] {
        for off in [
            json!({"reasoning_effort": "none"}),
            json!({"thinking": {"type": "disabled"}}),
        ] {
            let body = ask(model, off).unwrap();
            assert!(
                body.get("additionalModelRequestFields").is_none(),
                "{model}"
            );
        }
    }
    // Models without reasoning refuse it as unsupported, naming what the client sent.
    for (model, extra, param) in [
        (
            CLAUDE_35,
            json!({"reasoning_effort": "low"}),
            "reasoning_effort",
        ),
        (
            LLAMA,
            json!({"reasoning_effort": "high"}),
            "reasoning_effort",
        ),
        (
            LLAMA,
            json!({"thinking": {"type": "enabled", "budget_tokens": 1024}}),
            "thinking",
        ),
    ] {
        let err = ask(model, extra).unwrap_err();
        assert!(
            matches!(&err, TranslateError::Unsupported { param: p, provider: "bedrock" } if p == param),
            "{model}: {err:?}"
        );
    }
    // A malformed value is invalid, whatever the model.
    let err = ask(CLAUDE_37, json!({"reasoning_effort": "lots"})).unwrap_err();
    assert!(matches!(
        err,
        TranslateError::Invalid {
            param: "reasoning_effort",
            ..
        }
    ));
}

#[test]
fn thinking_claude_is_not_forced_to_call_the_json_tool() {
    let body = sent(
        CLAUDE_37,
        json!({"messages": hi(), "reasoning_effort": "low", "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    assert_eq!(body["toolConfig"]["toolChoice"], json!({"auto": {}}));
    assert_eq!(
        body["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "json_response"
    );
    // Native structured output needs no tool, so thinking changes nothing there.
    let body = sent(
        CLAUDE_45,
        json!({"messages": hi(), "reasoning_effort": "low", "response_format": json_schema(true)}),
    )
    .unwrap();
    assert!(body.get("toolConfig").is_none() && body.get("outputConfig").is_some());
}

#[test]
fn reasoning_answers_keep_their_signatures() {
    let map = object(&json!({"messages": []}));
    let call = view(Endpoint::ChatCompletions, &map, false, CLAUDE_37);
    let body = json!({"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "First, ", "signature": "sig-1"}}},
        {"reasoningContent": {"redactedContent": "ZW5jcnlwdGVk"}},
        {"reasoningContent": {"reasoningText": {"text": "unsigned."}}},
        {"text": "Hello!"}
    ]}}, "stopReason": "end_turn", "usage": {"inputTokens": 3, "outputTokens": 9}});
    let v = test_support::answer(&dialect(), &call, &body).unwrap();
    let m = test_support::first_message(&v, "stop", "Hello!", "First, unsigned.");
    assert_eq!(
        m["thinking_blocks"],
        json!([
            {"type": "thinking", "thinking": "First, ", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}
        ])
    );
}

#[test]
fn streamed_reasoning_carries_signatures_and_redacted_blocks() {
    let frames = [
        frame("messageStart", json!({"role": "assistant"})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Think "}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hard."}}}),
        ),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig-1"}}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 0})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"reasoningContent": {"redactedContent": "ZW5j"}}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 1})),
        frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 2, "delta": {"text": "Hello!"}}),
        ),
        frame("contentBlockStop", json!({"contentBlockIndex": 2})),
        frame("messageStop", json!({"stopReason": "end_turn"})),
        frame(
            "metadata",
            json!({"usage": {"inputTokens": 3, "outputTokens": 9}}),
        ),
    ];
    let events = run_stream(json!({"messages": []}), &frames);
    let deltas: Vec<&Value> = events[..events.len() - 1]
        .iter()
        .map(|c| &c["choices"][0]["delta"])
        .collect();
    assert_eq!(deltas[0]["role"], "assistant");
    assert_eq!(
        deltas[1..5],
        [
            &json!({"reasoning_content": "Think "}),
            &json!({"reasoning_content": "hard."}),
            &json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-1"}]}),
            &json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "ZW5j"}]}),
        ]
    );
    assert_eq!(test_support::streamed_text(&events), "Hello!");
    assert_eq!(finish(&events), Some("stop"));
}

#[test]
fn signed_reasoning_goes_back_to_claude_first_in_its_turn() {
    let history = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Checking.", "reasoning_content": "I should look.",
         "thinking_blocks": [
            {"type": "thinking", "thinking": "I should look.", "signature": "sig-1"},
            {"type": "thinking", "thinking": "Unsigned, left out."},
            {"type": "redacted_thinking", "data": "ZW5j"},
            {"type": "some_future_kind", "x": 1}
         ],
         "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "18C"}
    ]);
    let body = sent(
        CLAUDE_37,
        json!({"messages": history, "tools": weather(), "reasoning_effort": "low"}),
    )
    .unwrap();
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "I should look.", "signature": "sig-1"}}},
            {"reasoningContent": {"redactedContent": "ZW5j"}},
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}}
        ]})
    );
    // Other models' reasoning is not signed, and Claude's signature means nothing to them.
    let body = sent(NOVA_2, json!({"messages": history, "tools": weather()})).unwrap();
    assert_eq!(
        body["messages"][1]["content"][0],
        json!({"text": "Checking."})
    );
}

#[test]
fn parallel_tool_calls_false_reaches_claude_as_its_own_tool_choice() {
    let request = |model: &str, choice: Value| {
        let mut body = json!({"messages": hi(), "tools": weather(), "parallel_tool_calls": false});
        if !choice.is_null() {
            body["tool_choice"] = choice;
        }
        sent(model, body)
    };
    for (choice, claude) in [
        (
            Value::Null,
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (
            json!("auto"),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (
            json!("required"),
            json!({"type": "any", "disable_parallel_tool_use": true}),
        ),
        (
            json!({"type": "function", "function": {"name": "weather"}}),
            json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true}),
        ),
    ] {
        let body = request(CLAUDE_35, choice.clone()).unwrap();
        assert_eq!(
            body["additionalModelRequestFields"],
            json!({"tool_choice": claude}),
            "{choice}"
        );
        // Converse's toolChoice would conflict with it.
        assert!(body["toolConfig"].get("toolChoice").is_none(), "{choice}");
        assert_eq!(body["toolConfig"]["tools"].as_array().unwrap().len(), 1);
    }
    // Beside thinking, and with the JSON tool among the client's.
    let body = sent(
        CLAUDE_37,
        json!({"messages": hi(), "tools": weather(), "parallel_tool_calls": false,
               "reasoning_effort": "low", "response_format": {"type": "json_object"}}),
    )
    .unwrap();
    assert_eq!(
        body["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024},
               "tool_choice": {"type": "auto", "disable_parallel_tool_use": true}})
    );
    // Other models cannot honour it: unsupported, so dropUnsupportedParams drops it.
    let err = request(NOVA_2, Value::Null).unwrap_err();
    assert!(matches!(
        &err,
        TranslateError::Unsupported { param, provider: "bedrock" } if param == "parallel_tool_calls"
    ));
    // With no tools offered there are no parallel calls to disable, on any model.
    for model in [NOVA_2, CLAUDE_35] {
        let body = sent(
            model,
            json!({"messages": hi(), "parallel_tool_calls": false}),
        )
        .unwrap();
        assert!(
            body.get("additionalModelRequestFields").is_none(),
            "{model}"
        );
        let body = request(model, json!("none")).unwrap();
        assert!(body.get("toolConfig").is_none(), "{model}");
    }
    // `true` is every model's default.
    let body = sent(
        LLAMA,
        json!({"messages": hi(), "tools": weather(), "parallel_tool_calls": true}),
    )
    .unwrap();
    assert!(body.get("additionalModelRequestFields").is_none());
}

#[test]
fn cache_points_stay_with_thinking_on() {
    let cache = json!({"type": "ephemeral"});
    let body = sent(
        CLAUDE_37,
        json!({"messages": [
            {"role": "system", "content": [{"type": "text", "text": "Rules.", "cache_control": cache}]},
            {"role": "user", "content": [{"type": "text", "text": "Long document", "cache_control": cache}]},
            {"role": "assistant", "content": [{"type": "text", "text": "", "cache_control": cache}],
             "thinking_blocks": [{"type": "thinking", "thinking": "Hm.", "signature": "sig-1"}],
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "18C"}
        ], "tools": weather(), "reasoning_effort": "low"}),
    )
    .unwrap();
    assert_eq!(
        body["system"],
        json!([{"text": "Rules."}, {"cachePoint": {"type": "default"}}])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"text": "Long document"}, {"cachePoint": {"type": "default"}}])
    );
    // A mark on an empty text after the reasoning marks nothing: reasoning takes no mark.
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"reasoningContent": {"reasoningText": {"text": "Hm.", "signature": "sig-1"}}},
            {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {}}}
        ])
    );
    assert_eq!(
        body["additionalModelRequestFields"]["thinking"]["type"],
        "enabled"
    );
}

#[test]
fn supported_params_include_the_model_dependent_ones() {
    let params = dialect()
        .dialect
        .supported_params(Endpoint::ChatCompletions)
        .unwrap();
    for p in [
        "response_format",
        "reasoning_effort",
        "thinking",
        "parallel_tool_calls",
        "user",
    ] {
        assert!(params.contains(&p), "{p}");
    }
    assert!(!params.contains(&"seed"));
}

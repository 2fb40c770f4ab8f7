//! Thought signatures through the dialect: out on tool calls (whole and streamed, in
//! `extra_content` and the id), back on the `functionCall` parts, and Google's
//! placeholder where a Gemini 3 turn lacks one.

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::config::snapshot::{ProviderKind, SecretString};
use crate::provider::test_support::{self, object, run_stream};

const SIG_A: &str = "CiQB0e2Kb+/xAAE=";
const SIG_A_IN_ID: &str = "CiQB0e2Kb-_xAAE";

fn studio(model: &str) -> Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Gemini);
    spec.model = model.into();
    spec.api_key = Some(SecretString::new("AIza-test"));
    build_ai_studio(&spec).unwrap()
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

/// Two parallel calls, the first signed, as Gemini 3 answers.
fn parallel_calls() -> Value {
    json!({"responseId": "r1", "candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG_A},
        {"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]},
        "finishReason": "STOP"}]})
}

#[test]
fn signatures_ride_on_the_tool_call_in_whole_answers() {
    let body = object(&json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools()}));
    let call = test_support::view(
        Endpoint::ChatCompletions,
        &body,
        false,
        "gemini-3-pro-preview",
    );
    let out =
        test_support::answer(&studio("gemini-3-pro-preview"), &call, &parallel_calls()).unwrap();
    let calls = &out["choices"][0]["message"]["tool_calls"];
    assert_eq!(
        calls[0],
        json!({"id": format!("call_r1_0__thought__{SIG_A_IN_ID}"), "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            "extra_content": {"google": {"thought_signature": SIG_A}}})
    );
    assert_eq!(
        calls[1],
        json!({"id": "call_r1_1", "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}})
    );
}

#[test]
fn signatures_ride_on_the_first_piece_of_a_streamed_tool_call() {
    let body = object(
        &json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools(), "stream": true}),
    );
    let call = test_support::view(
        Endpoint::ChatCompletions,
        &body,
        true,
        "gemini-3-pro-preview",
    );
    let translator = studio("gemini-3-pro-preview").dialect.stream(&call);
    let raw = format!("data: {}\r\n\r\n", parallel_calls());
    let events = run_stream(translator, raw.as_bytes(), 7).unwrap();
    let pieces: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        *pieces[0],
        json!({"index": 0, "id": format!("call_r1_0__thought__{SIG_A_IN_ID}"), "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            "extra_content": {"google": {"thought_signature": SIG_A}}})
    );
    assert!(pieces[1].get("extra_content").is_none());
    assert_eq!(pieces[1]["id"], "call_r1_1");
}

/// The request sent for `messages` to `model`.
fn sent(model: &str, messages: Value) -> Value {
    let body = object(&json!({"messages": messages, "tools": tools()}));
    let call = test_support::view(Endpoint::ChatCompletions, &body, false, model);
    test_support::sent(&studio(model), &call).unwrap().1
}

fn weather_call(id: &str, city: &str, extra: Option<Value>) -> Value {
    let mut call = json!({"id": id, "type": "function",
        "function": {"name": "weather", "arguments": format!("{{\"city\":\"{city}\"}}")}});
    if let Some(extra) = extra {
        call["extra_content"] = extra;
    }
    call
}

#[test]
fn signatures_come_back_on_their_function_call_parts() {
    let id = format!("call_r1_0__thought__{SIG_A_IN_ID}");
    let history = |first: Value| {
        json!([
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [first, weather_call("call_r1_1", "Rome", None)]},
            {"role": "tool", "tool_call_id": id, "content": "18C"},
            {"role": "tool", "tool_call_id": "call_r1_1", "content": "21C"}
        ])
    };
    let expected = json!([
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG_A},
            {"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "weather", "response": {"result": "18C"}}},
            {"functionResponse": {"name": "weather", "response": {"result": "21C"}}}]}
    ]);
    // From extra_content (the id's copy is not needed)...
    let extra = json!({"google": {"thought_signature": SIG_A}});
    let with_extra = weather_call(&id, "Paris", Some(extra));
    assert_eq!(
        sent("gemini-3-pro-preview", history(with_extra))["contents"],
        expected
    );
    // ...or from the id alone, as clients that rebuild calls send them.
    let id_only = weather_call(&id, "Paris", None);
    assert_eq!(
        sent("gemini-3-pro-preview", history(id_only))["contents"],
        expected
    );
    // An extra_content of another shape is not ours to refuse: the id still carries it.
    for odd in [
        json!("x"),
        json!({"google": 5}),
        json!({"google": {"thought_signature": 5}}),
    ] {
        let call = weather_call(&id, "Paris", Some(odd));
        assert_eq!(
            sent("gemini-3-pro-preview", history(call))["contents"],
            expected
        );
    }
    // extra_content wins over the id.
    let other = json!({"google": {"thought_signature": "b3RoZXI="}});
    let both = weather_call(&id, "Paris", Some(other));
    let contents = sent("gemini-2.5-flash", history(both))["contents"].clone();
    assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "b3RoZXI=");
}

#[test]
fn a_gemini_3_turn_without_signatures_gets_googles_placeholder() {
    let messages = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "tool_calls": [weather_call("a", "Paris", None)]},
        {"role": "tool", "tool_call_id": "a", "content": "18C"},
        {"role": "user", "content": "And in Rome and Oslo, one after the other?"},
        {"role": "assistant", "tool_calls": [weather_call("b", "Rome", None), weather_call("c", "Oslo", None)]},
        {"role": "tool", "tool_call_id": "b", "content": "21C"},
        {"role": "tool", "tool_call_id": "c", "content": "5C"},
        {"role": "assistant", "content": "Now Bergen.", "tool_calls": [weather_call("d", "Bergen", None)]},
        {"role": "tool", "tool_call_id": "d", "content": "9C"}
    ]);
    let contents = sent("gemini-3-flash-preview", messages.clone())["contents"].clone();
    let signatures: Vec<Vec<Value>> = contents
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == "model")
        .map(|c| {
            c["parts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["thoughtSignature"].clone())
                .collect()
        })
        .collect();
    let skip = json!(signature::SKIP_VALIDATOR);
    assert_eq!(
        signatures,
        [
            // Before the last user message with text: not validated, left alone.
            vec![Value::Null],
            // Each step of the current turn: its first call only.
            vec![skip.clone(), Value::Null],
            vec![Value::Null, skip],
        ]
    );
    // Gemini 2.5 does not validate: nothing is made up.
    let contents = sent("gemini-2.5-flash", messages)["contents"].clone();
    assert!(!contents.to_string().contains("thoughtSignature"));
}

#[test]
fn whole_and_streamed_answers_agree_on_ids() {
    let body = object(&json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools()}));
    let whole_call = test_support::view(
        Endpoint::ChatCompletions,
        &body,
        false,
        "gemini-3-pro-preview",
    );
    let reply = studio("gemini-3-pro-preview")
        .dialect
        .response(&whole_call, Bytes::from(parallel_calls().to_string()))
        .unwrap();
    let whole: Value = serde_json::from_slice(&reply.body).unwrap();
    let stream_call = CallView {
        stream: true,
        ..whole_call
    };
    let translator = studio("gemini-3-pro-preview").dialect.stream(&stream_call);
    let raw = format!("data: {}\r\n\r\n", parallel_calls());
    let events = run_stream(translator, raw.as_bytes(), 1024).unwrap();
    let streamed: Vec<Value> = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["tool_calls"][0].get("id").cloned())
        .collect();
    let whole_ids: Vec<Value> = whole["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(streamed, whole_ids);
}

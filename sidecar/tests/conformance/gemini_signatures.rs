//! Gemini 3 thought signatures over two turns of tool calling, through both of Google's
//! APIs: whole and streamed, for clients that keep a tool call whole
//! (`extra_content`), that keep only its id, name and arguments, that bring history
//! from elsewhere (no signatures: Google's placeholder), and through the Messages and
//! Responses bridges. `MockGemini` signs its `gemini-3…` answers and refuses, as
//! Gemini 3 does, a turn whose first function call comes back unsigned or with a
//! signature it did not issue, so every second turn that succeeds proves the round
//! trip.

use http::StatusCode;
use llmesh_tests::gemini::MockGemini;
use serde_json::{Value, json};

use crate::gemini::{Api, last_sent, sidecar};
use crate::golden;
use crate::suite::{json_of, named_events, send};
use crate::support::*;

/// Calls `weather` for Paris and for Rome in parallel, the first call signed.
const MODEL: &str = "gemini-3-mock-two-cities";

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

fn question() -> Value {
    json!({"role": "user", "content": "Weather in Paris and Rome?"})
}

/// The second turn: the question, the assistant message with `calls`, their results.
fn second_turn(calls: Vec<Value>) -> Value {
    let results: Vec<Value> = calls
        .iter()
        .zip(["18C", "21C"])
        .map(|(c, r)| json!({"role": "tool", "tool_call_id": c["id"], "content": r}))
        .collect();
    let mut messages = vec![
        question(),
        json!({"role": "assistant", "content": null, "tool_calls": calls}),
    ];
    messages.extend(results);
    json!({"model": "g", "tools": tools(), "messages": messages})
}

/// The first turn's tool calls, whole.
async fn first_turn(sidecar: &Running) -> Vec<Value> {
    let (status, _, out) = post(
        sidecar.api,
        "/v1/chat/completions",
        json!({"model": "g", "tools": tools(), "messages": [question()]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .clone()
}

async fn answered(sidecar: &Running, body: Value) -> Value {
    let (status, _, out) = post(sidecar.api, "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let text = out["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("mock saw tool results: weather="), "{out}");
    out
}

/// The signatures on the `functionCall` parts of the model turn the mock last got.
fn sent_signatures(mock: &MockGemini) -> Vec<Value> {
    last_sent(mock)["contents"][1]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["thoughtSignature"].clone())
        .collect()
}

macro_rules! both_apis {
    ($($case:ident),* $(,)?) => {
        mod ai_studio {
            $(#[tokio::test] async fn $case() { super::$case(super::Api::Studio).await })*
        }
        mod vertex {
            $(#[tokio::test] async fn $case() { super::$case(super::Api::Vertex).await })*
        }
    };
}

both_apis!(
    whole_tool_calls_carry_the_signature_back,
    ids_alone_carry_it_back,
    history_from_elsewhere_gets_the_placeholder,
    streamed_tool_calls_carry_it_back,
    the_messages_bridge_carries_it_in_tool_use_ids,
    the_responses_bridge_carries_it_in_call_ids,
);

async fn whole_tool_calls_carry_the_signature_back(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", MODEL)]).await;
    let calls = first_turn(&sidecar).await;
    assert_eq!(calls.len(), 2);
    let signature = calls[0]["extra_content"]["google"]["thought_signature"].clone();
    assert!(signature.as_str().unwrap().starts_with("++//"), "{calls:?}");
    assert!(
        calls[0]["id"].as_str().unwrap().contains("__thought__"),
        "{calls:?}"
    );
    assert!(
        calls[1].get("extra_content").is_none(),
        "only the first call is signed"
    );
    answered(&sidecar, second_turn(calls)).await;
    assert_eq!(sent_signatures(&mock), [signature, Value::Null]);
    golden::check("gemini", "signed_tool_calls_request", &last_sent(&mock));
}

async fn ids_alone_carry_it_back(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", MODEL)]).await;
    let calls = first_turn(&sidecar).await;
    let signature = calls[0]["extra_content"]["google"]["thought_signature"].clone();
    // A client that rebuilds each call from its id, name and arguments.
    let rebuilt: Vec<Value> = calls
        .iter()
        .map(|c| json!({"id": c["id"], "type": "function", "function": c["function"]}))
        .collect();
    answered(&sidecar, second_turn(rebuilt)).await;
    assert_eq!(sent_signatures(&mock), [signature, Value::Null]);
}

async fn history_from_elsewhere_gets_the_placeholder(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", MODEL)]).await;
    let calls = vec![
        json!({"id": "call_from_gpt_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}),
        json!({"id": "call_from_gpt_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}),
    ];
    answered(&sidecar, second_turn(calls)).await;
    assert_eq!(
        sent_signatures(&mock),
        [json!("skip_thought_signature_validator"), Value::Null]
    );
}

async fn streamed_tool_calls_carry_it_back(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", MODEL)]).await;
    let mut body =
        json!({"model": "g", "tools": tools(), "messages": [question()], "stream": true});
    let first = crate::assemble::stream_chat(sidecar.api, body.clone()).await;
    assert!(first.done, "{first:?}");
    // A client keeping each call whole, extra_content from its first piece.
    let calls: Vec<Value> = first
        .tool_calls
        .iter()
        .enumerate()
        .map(|(i, (id, name, arguments))| {
            let extra = first
                .chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
                .flatten()
                .find(|d| d["index"] == i && d.get("extra_content").is_some())
                .map(|d| d["extra_content"].clone());
            let mut call = json!({"id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}});
            if let Some(extra) = extra {
                call["extra_content"] = extra;
            }
            call
        })
        .collect();
    let signature = calls[0]["extra_content"]["google"]["thought_signature"].clone();
    assert!(signature.is_string(), "{calls:?}");
    body = second_turn(calls);
    body["stream"] = json!(true);
    let second = crate::assemble::stream_chat(sidecar.api, body).await;
    assert!(second.done, "{second:?}");
    assert!(
        second.text.starts_with("mock saw tool results: weather="),
        "{second:?}"
    );
    assert_eq!(sent_signatures(&mock), [signature, Value::Null]);
}

const ANTHROPIC: [(&str, &str); 2] = [
    ("x-api-key", "sk-anything"),
    ("anthropic-version", "2023-06-01"),
];

async fn the_messages_bridge_carries_it_in_tool_use_ids(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", MODEL)]).await;
    let tools = json!([{"name": "weather", "description": "Weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let ask = json!({"role": "user", "content": "Weather in Paris and Rome?"});
    let body = json!({"model": "g", "max_tokens": 256, "tools": tools, "messages": [ask]});
    let (status, _, bytes) = send(&sidecar, "/v1/messages", &ANTHROPIC, &body).await;
    assert_eq!(status, StatusCode::OK);
    let first = json_of(&bytes);
    let uses: Vec<Value> = first["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "tool_use")
        .cloned()
        .collect();
    assert_eq!(uses.len(), 2, "{first}");
    assert!(
        uses[0]["id"]
            .as_str()
            .unwrap()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "within Anthropic's id pattern: {}",
        uses[0]["id"]
    );
    let results: Vec<Value> = uses
        .iter()
        .map(|u| json!({"type": "tool_result", "tool_use_id": u["id"], "content": "18C"}))
        .collect();
    let body = json!({"model": "g", "max_tokens": 256, "tools": tools, "messages": [
        ask, {"role": "assistant", "content": uses}, {"role": "user", "content": results}]});
    let (status, _, bytes) = send(&sidecar, "/v1/messages", &ANTHROPIC, &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let signatures = sent_signatures(&mock);
    assert!(
        signatures[0].as_str().unwrap().starts_with("++//"),
        "{signatures:?}"
    );
    // Streamed as well.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, _, bytes) = send(&sidecar, "/v1/messages", &ANTHROPIC, &streamed).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = named_events(&bytes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("message_stop"),
        "{names:?}"
    );
}

async fn the_responses_bridge_carries_it_in_call_ids(api: Api) {
    let mock = MockGemini::start().await;
    let sidecar = sidecar(&mock, api, &[("g", MODEL)]).await;
    let tools = json!([{"type": "function", "name": "weather", "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let ask = json!({"role": "user", "content": "Weather in Paris and Rome?"});
    let body = json!({"model": "g", "tools": tools, "input": [ask], "store": false});
    let (status, _, bytes) = send(&sidecar, "/v1/responses", &[], &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let first = json_of(&bytes);
    let calls: Vec<Value> = first["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "function_call")
        .cloned()
        .collect();
    assert_eq!(calls.len(), 2, "{first}");
    let mut input = vec![ask];
    input.extend(calls.iter().cloned());
    input.extend(calls.iter().map(
        |c| json!({"type": "function_call_output", "call_id": c["call_id"], "output": "18C"}),
    ));
    let body = json!({"model": "g", "tools": tools, "input": input, "store": false});
    let (status, _, bytes) = send(&sidecar, "/v1/responses", &[], &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    let signatures = sent_signatures(&mock);
    assert!(
        signatures[0].as_str().unwrap().starts_with("++//"),
        "{signatures:?}"
    );
}

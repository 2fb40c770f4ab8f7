//! The conformance cases in OpenAI's Responses API (`POST /v1/responses`): served as it
//! is by OpenAI, through chat by every other provider. Every streamed answer is checked
//! event by event ([`assemble`]): `response.created` and `response.in_progress` first,
//! `sequence_number` counting up from 0, items added and done in order, and
//! `response.completed` or `response.incomplete` last (or `error`).

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{Value, json};

use super::{
    PNG, Upstream, asked_for_capital, capital_schema, error_models, json_of, malformed_model,
    named_events, send, setup, tool_image_arrived, two_weather_calls,
};
use crate::support::{Running, header};

/// A request to `model` of one user input.
fn request(model: &str, text: &str) -> Value {
    json!({"model": model, "input": text})
}

/// The `get_weather` tool, in the Responses form.
fn tools() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

async fn whole(sidecar: &Running, body: &Value) -> (StatusCode, http::HeaderMap, Value) {
    let (status, headers, bytes) = send(sidecar, "/v1/responses", &[], body).await;
    (status, headers, json_of(&bytes))
}

/// A streamed answer, assembled; the status must be 200 and the body an event stream.
async fn streamed(sidecar: &Running, body: &Value) -> Assembled {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let (status, headers, bytes) = send(sidecar, "/v1/responses", &[], &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(header(&headers, "content-type").starts_with("text/event-stream"));
    assemble(&named_events(&bytes))
}

/// What a client makes of a Responses stream.
#[derive(Debug, Default)]
pub struct Assembled {
    pub names: Vec<String>,
    pub text: String,
    pub reasoning: String,
    /// (call id, name, arguments parsed from their delta pieces) per function call.
    pub calls: Vec<(String, String, Value)>,
    /// The final `response` object.
    pub response: Option<Value>,
    /// The `error` event, for a stream that failed.
    pub error: Option<Value>,
}

/// Assembles a Responses stream, checking its event sequence on the way.
pub fn assemble(events: &[(String, Value)]) -> Assembled {
    let mut out = Assembled {
        names: events.iter().map(|(n, _)| n.clone()).collect(),
        ..Assembled::default()
    };
    assert_eq!(
        out.names.get(..2),
        Some(
            &[
                "response.created".to_owned(),
                "response.in_progress".to_owned()
            ][..]
        ),
        "{:?}",
        out.names
    );
    // Open items by output index: (type, call id, name, arguments so far).
    let mut open: BTreeMap<u64, (String, String, String, String)> = BTreeMap::new();
    let mut items = 0;
    for (i, (name, data)) in events.iter().enumerate() {
        assert!(
            out.response.is_none(),
            "events after the end: {:?}",
            out.names
        );
        assert_eq!(
            data["sequence_number"], i,
            "sequence numbers count up from 0: {name} {data}"
        );
        let index = data["output_index"].as_u64();
        match name.as_str() {
            "response.created" | "response.in_progress" => {
                assert_eq!(data["response"]["status"], "in_progress", "{data}");
            }
            "response.output_item.added" => {
                assert_eq!(index, Some(items), "items are added in order: {data}");
                items += 1;
                let item = &data["item"];
                let field = |k: &str| item[k].as_str().unwrap_or_default().to_owned();
                open.insert(
                    index.unwrap(),
                    (
                        field("type"),
                        field("call_id"),
                        field("name"),
                        String::new(),
                    ),
                );
            }
            "response.output_item.done" => {
                let (kind, ..) = open
                    .remove(&index.unwrap())
                    .unwrap_or_else(|| panic!("done for an item not open: {data}"));
                assert_eq!(data["item"]["type"], kind, "{data}");
            }
            "response.output_text.delta"
            | "response.reasoning_summary_text.delta"
            | "response.function_call_arguments.delta" => {
                let (kind, _, _, arguments) = open
                    .get_mut(&index.unwrap())
                    .unwrap_or_else(|| panic!("a delta for an item not open: {data}"));
                let delta = data["delta"].as_str().unwrap();
                match (name.as_str(), kind.as_str()) {
                    ("response.output_text.delta", "message") => out.text.push_str(delta),
                    ("response.reasoning_summary_text.delta", "reasoning") => {
                        out.reasoning.push_str(delta);
                    }
                    ("response.function_call_arguments.delta", "function_call") => {
                        arguments.push_str(delta);
                    }
                    (name, kind) => panic!("a {name} in a {kind} item"),
                }
            }
            "response.function_call_arguments.done" => {
                let (_, id, name, arguments) = &open[&index.unwrap()];
                assert_eq!(data["arguments"], *arguments, "done repeats the pieces");
                let parsed = serde_json::from_str(arguments)
                    .unwrap_or_else(|e| panic!("arguments {arguments:?}: {e}"));
                out.calls.push((id.clone(), name.clone(), parsed));
            }
            "response.completed" | "response.incomplete" => {
                assert!(open.is_empty(), "items left open: {open:?}");
                let response = &data["response"];
                assert_eq!(
                    format!("response.{}", response["status"].as_str().unwrap()),
                    *name,
                    "{response}"
                );
                out.response = Some(response.clone());
            }
            "error" => {
                assert_eq!(
                    i,
                    events.len() - 1,
                    "error ends the stream: {:?}",
                    out.names
                );
                out.error = Some(data.clone());
            }
            other => assert!(
                other.starts_with("response.") && index.is_some_and(|i| open.contains_key(&i)),
                "{other} outside an open item: {data}"
            ),
        }
    }
    assert!(
        out.response.is_some() || out.error.is_some(),
        "the stream neither ended nor failed: {:?}",
        out.names
    );
    out
}

/// The message text, reasoning summary and function calls of a Response object.
fn output(response: &Value) -> (String, String, Vec<(String, String, Value)>) {
    assert_eq!(response["object"], "response", "{response}");
    let (mut text, mut reasoning, mut calls) = (String::new(), String::new(), Vec::new());
    for item in response["output"].as_array().unwrap() {
        match item["type"].as_str().unwrap() {
            "message" => {
                assert_eq!(item["role"], "assistant");
                for part in item["content"].as_array().unwrap() {
                    text.push_str(part["text"].as_str().unwrap_or_default());
                }
            }
            "reasoning" => {
                for part in item["summary"].as_array().unwrap() {
                    reasoning.push_str(part["text"].as_str().unwrap());
                }
            }
            "function_call" => {
                let arguments = item["arguments"].as_str().unwrap();
                calls.push((
                    item["call_id"].as_str().unwrap().to_owned(),
                    item["name"].as_str().unwrap().to_owned(),
                    serde_json::from_str(arguments).unwrap(),
                ));
            }
            other => panic!("unexpected item {other}: {response}"),
        }
    }
    (text, reasoning, calls)
}

/// Responses' usage: non-zero input and output, their sum the total.
fn usage_is_right(response: &Value) {
    let usage = &response["usage"];
    let input = usage["input_tokens"].as_u64().unwrap();
    let output = usage["output_tokens"].as_u64().unwrap();
    assert!(input > 0 && output > 0, "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), input + output);
    assert!(
        usage.get("prompt_tokens").is_none(),
        "Responses' usage: {usage}"
    );
}

/// A plain answer, whole and streamed: the same text, `completed`, non-zero usage in
/// Responses' shape.
pub async fn responses_text<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let body = request("text", "Hello there");
    let (status, headers, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(answer["status"], "completed", "{answer}");
    let (text, _, calls) = output(&answer);
    assert!(!text.is_empty() && calls.is_empty(), "{answer}");
    usage_is_right(&answer);

    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.text, text);
    let done = stream.response.unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(output(&done).0, text);
    usage_is_right(&done);
}

/// Parallel function calls, whole and streamed (arguments assembled from their pieces).
pub async fn responses_tool_calls<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("tools", "Weather in Paris and Rome?");
    body["tools"] = tools();
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "completed", "{answer}");
    two_weather_calls(&output(&answer).2);
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains("get_weather") && sent.contains("Current weather for a city"),
        "tools reach the upstream: {sent}"
    );

    let stream = streamed(&sidecar, &body).await;
    two_weather_calls(&stream.calls);
    let done = stream.response.unwrap();
    assert_eq!(done["status"], "completed");
    two_weather_calls(&output(&done).2);
}

/// Stopping at the output limit is `incomplete` for `max_output_tokens`, whole and
/// streamed.
pub async fn responses_max_output_tokens<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("max", "Write a long essay");
    body["max_output_tokens"] = json!(16);
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "incomplete", "{answer}");
    assert_eq!(
        answer["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains(":16"),
        "the limit reaches the upstream: {sent}"
    );
    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.names.last().unwrap(), "response.incomplete");
    let done = stream.response.unwrap();
    assert_eq!(done["incomplete_details"]["reason"], "max_output_tokens");
}

/// Each upstream error status reaches the client as the status a chat client sees, in
/// OpenAI's shape; retryable ones were retried.
pub async fn responses_errors<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, error_models(&up)).await;
    for (upstream, expected) in up.error_statuses() {
        let body = request(&format!("error-{upstream}"), "hi");
        let (status, headers, answer) = whole(&sidecar, &body).await;
        assert_eq!(status.as_u16(), expected, "upstream {upstream}: {answer}");
        let error = &answer["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "upstream {upstream}: {answer}"
        );
        assert!(error["type"].is_string(), "upstream {upstream}: {answer}");
        let retried = upstream == 429 || upstream >= 500;
        assert_eq!(
            header(&headers, "x-llmesh-attempts"),
            if retried { "2" } else { "1" },
            "upstream {upstream}"
        );
    }
}

/// A malformed upstream answer is a 502 in OpenAI's shape, whole or streamed.
pub async fn responses_malformed<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![malformed_model(&up)]).await;
    let mut body = request("bad", "hi");
    for stream in [false, true] {
        body["stream"] = json!(stream);
        let (status, _, answer) = whole(&sidecar, &body).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "stream {stream}: {answer}");
        assert_eq!(answer["error"]["type"], "server_error", "{answer}");
    }
}

/// A stream cut mid-way ends with an `error` event, never `response.completed`.
pub async fn responses_cut<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let stream = streamed(&sidecar, &request("cut", "Tell me a long story")).await;
    let error = stream
        .error
        .unwrap_or_else(|| panic!("no error event: {:?}", stream.names));
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    assert!(error["code"].is_string(), "{error}");
}

/// A history whose function call output carries text and [`PNG`].
fn output_with_image() -> Value {
    json!({"model": "text", "tools": tools(), "input": [
        {"role": "user", "content": "Weather in Paris? Show me."},
        {"type": "function_call", "call_id": "call_paris", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call_output", "call_id": "call_paris", "output": [
            {"type": "input_text", "text": "18C and sunny, photo attached"},
            {"type": "input_image", "image_url": format!("data:image/png;base64,{PNG}")}
        ]}
    ]})
}

/// An image in a function call's output reaches the provider inside its tool result.
pub async fn responses_tool_result_image<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let (status, _, answer) = whole(&sidecar, &output_with_image()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    tool_image_arrived(&up);
    let sent = up.bodies().last().unwrap().to_string();
    assert!(sent.contains("18C and sunny, photo attached"), "{sent}");
}

/// A provider whose tool results carry no images refuses one, in OpenAI's shape,
/// before anything is sent.
pub async fn responses_tool_result_image_refused<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let (status, _, answer) = whole(&sidecar, &output_with_image()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
    assert!(up.bodies().is_empty(), "nothing was sent upstream");
}

/// The provider's reasoning comes back as a `reasoning` item before the message,
/// whole and streamed.
pub async fn responses_reasoning<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("thinking", "Hello");
    body["reasoning"] = json!({"effort": "medium", "summary": "auto"});
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (text, reasoning, _) = output(&answer);
    assert!(!reasoning.is_empty() && !text.is_empty(), "{answer}");
    assert_eq!(
        answer["output"][0]["type"], "reasoning",
        "reasoning first: {answer}"
    );
    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.reasoning, reasoning);
    assert_eq!(stream.text, text);
}

/// `text.format` json_schema reaches the provider as its structured output.
pub async fn responses_structured_output<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("text", "The capital of France, as JSON");
    body["text"] = json!({"format": {"type": "json_schema", "name": "capital", "schema": capital_schema(), "strict": true}});
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    asked_for_capital(&up);
}

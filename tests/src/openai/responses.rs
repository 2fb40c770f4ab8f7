//! OpenAI's Responses API for the OpenAI mock: `POST /v1/responses` (a `response`
//! object, or its typed event stream with increasing `sequence_number`s and no
//! `[DONE]`), `GET` and `DELETE /v1/responses/{id}` for stored responses, and the 400
//! for a `previous_response_id` the mock never stored.
//!
//! Bodies are built as JSON values: this endpoint is not on the load-test path.

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{JSON, OpenAi, Recorded, Resolved, next_id, now, wire};
use crate::mock::{ToolCall, lock, to_bytes, words};

const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// One output item of a mock response.
pub(super) enum Item {
    /// An assistant message of these text pieces.
    Text(Vec<String>),
    /// A function tool call, or a freeform (custom) one when the input is a string.
    Call(ToolCall),
}

impl Item {
    /// Items for scripted tool calls.
    pub(super) fn calls(calls: &[ToolCall]) -> Vec<Item> {
        calls.iter().cloned().map(Item::Call).collect()
    }
}

/// The answer to `GET`/`DELETE /v1/responses/{id}` and to a `POST` naming an unknown
/// `previous_response_id`, before the script is consulted; `None` for other requests.
pub(super) fn screen(shared: &OpenAi, req: &Recorded) -> Option<Resolved> {
    let path = req.path_only();
    if let Some(id) = path
        .strip_prefix("/v1/responses/")
        .filter(|id| !id.contains('/'))
    {
        let mut stored = lock(&shared.stored);
        return Some(match (&req.method, stored.get(id)) {
            (&Method::GET, Some(response)) => json_answer(StatusCode::OK, response),
            (&Method::DELETE, Some(_)) => {
                stored.remove(id);
                let deleted = json!({"id": id, "object": "response", "deleted": true});
                json_answer(StatusCode::OK, &deleted)
            }
            (&Method::GET | &Method::DELETE, None) => not_found(id),
            _ => return None,
        });
    }
    if req.method == Method::POST && path.ends_with("/responses") {
        let body = req.json();
        let previous = body["previous_response_id"].as_str()?;
        if !lock(&shared.stored).contains_key(previous) {
            let message = format!("Previous response with id '{previous}' not found.");
            let body = wire::error(
                &message,
                Some("invalid_request_error"),
                Some("previous_response_id"),
                Some("previous_response_not_found"),
            );
            return Some(Resolved::whole(StatusCode::BAD_REQUEST, JSON, body));
        }
    }
    None
}

fn not_found(id: &str) -> Resolved {
    let message = format!("Response with id '{id}' not found.");
    let body = wire::error(&message, Some("invalid_request_error"), None, None);
    Resolved::whole(StatusCode::NOT_FOUND, JSON, body)
}

fn json_answer(status: StatusCode, body: &Value) -> Resolved {
    Resolved::whole(status, JSON, to_bytes(body))
}

/// What a healthy model answers: `mock reply to: <the last user input>`.
pub(super) fn healthy_items(body: &Value) -> Vec<Item> {
    let text = format!("mock reply to: {}", last_user_text(body));
    vec![Item::Text(
        text.split_inclusive(' ').map(str::to_owned).collect(),
    )]
}

/// What `mock-two-cities` answers: the request's first function tool called for Paris
/// and for Rome (nothing when it declares none).
pub(super) fn two_cities(body: &Value) -> Vec<Item> {
    let first = body["tools"].as_array().into_iter().flatten().next();
    let Some(name) = first.and_then(|t| t["name"].as_str()) else {
        return Vec::new();
    };
    crate::mock::two_cities()
        .into_iter()
        .map(|input| {
            Item::Call(ToolCall {
                name: name.to_owned(),
                input,
            })
        })
        .collect()
}

/// What `mock-max-tokens` answers: half the healthy reply, `incomplete` at
/// `max_output_tokens`.
pub(super) fn cut_short(shared: &OpenAi, req: &Recorded) -> Resolved {
    let mut pieces = match healthy_items(&req.json()).pop() {
        Some(Item::Text(pieces)) => pieces,
        _ => Vec::new(),
    };
    pieces.truncate(pieces.len().div_ceil(2));
    finish(
        shared,
        req,
        vec![Item::Text(pieces)],
        Some("max_output_tokens"),
    )
}

/// The text of the last user input: the `input` string, or the last user message's
/// text (a string, or its `input_text` parts).
fn last_user_text(body: &Value) -> String {
    match &body["input"] {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .rev()
            .find(|i| i["role"] == "user")
            .map(|m| match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Roughly one token per word of every text in the input and instructions, never zero.
fn input_tokens(body: &Value) -> u64 {
    fn count(v: &Value) -> u64 {
        match v {
            Value::String(s) => words(s),
            Value::Array(items) => items.iter().map(count).sum(),
            Value::Object(map) => map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "type" | "role" | "id" | "call_id"))
                .map(|(_, v)| count(v))
                .sum(),
            _ => 0,
        }
    }
    (count(&body["input"]) + count(&body["instructions"])).max(1)
}

/// The answer of `items` to `req`: a `response` object, or its event stream when the
/// request asks for one. Stored for `GET /v1/responses/{id}` unless `store` is false.
pub(super) fn answer(shared: &OpenAi, req: &Recorded, items: Vec<Item>) -> Resolved {
    finish(shared, req, items, None)
}

/// [`answer`], `incomplete` for `reason` when there is one.
fn finish(shared: &OpenAi, req: &Recorded, items: Vec<Item>, reason: Option<&str>) -> Resolved {
    let body = req.json();
    let model = body["model"].as_str().unwrap_or("mock-model");
    let id = next_id(shared, "resp_");
    let outputs: Vec<(Value, &Item)> = items
        .iter()
        .map(|item| (finished(shared, item), item))
        .collect();
    let output_tokens: u64 = outputs
        .iter()
        .map(|(item, _)| words(&item.to_string()).max(1))
        .sum();
    let usage = json!({
        "input_tokens": input_tokens(&body),
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens(&body) + output_tokens,
    });
    let output: Vec<Value> = outputs.iter().map(|(item, _)| item.clone()).collect();
    let status = if reason.is_some() {
        "incomplete"
    } else {
        "completed"
    };
    let mut done = response(&id, model, &body, status, output, usage);
    if let Some(reason) = reason {
        done["incomplete_details"] = json!({ "reason": reason });
    }
    if body["store"].as_bool() != Some(false) {
        lock(&shared.stored).insert(id.clone(), done.clone());
    }
    if body["stream"].as_bool() != Some(true) {
        return json_answer(StatusCode::OK, &done);
    }
    let started = response(&id, model, &body, "in_progress", Vec::new(), Value::Null);
    let mut events = Events::default();
    events.push("response.created", json!({"response": started}));
    events.push("response.in_progress", json!({"response": started}));
    for (index, (item, source)) in outputs.iter().enumerate() {
        item_events(&mut events, index, item, source);
    }
    events.push(&format!("response.{status}"), json!({"response": done}));
    Resolved::frames(EVENT_STREAM, events.frames)
}

/// The finished output item for `item`, with fresh ids.
fn finished(shared: &OpenAi, item: &Item) -> Value {
    match item {
        Item::Text(pieces) => json!({
            "id": next_id(shared, "msg_"),
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": pieces.concat(), "annotations": [], "logprobs": []}],
        }),
        Item::Call(call) => match &call.input {
            Value::String(input) => json!({
                "id": next_id(shared, "ctc_"),
                "type": "custom_tool_call",
                "status": "completed",
                "call_id": next_id(shared, "call_"),
                "name": call.name,
                "input": input,
            }),
            arguments => json!({
                "id": next_id(shared, "fc_"),
                "type": "function_call",
                "status": "completed",
                "call_id": next_id(shared, "call_"),
                "name": call.name,
                "arguments": arguments.to_string(),
            }),
        },
    }
}

/// The events of one output item: added, its content as deltas, done.
fn item_events(events: &mut Events, index: usize, item: &Value, source: &Item) {
    let item_id = item["id"].clone();
    let mut opening = item.clone();
    opening["status"] = json!("in_progress");
    match item["type"].as_str() {
        Some("message") => opening["content"] = json!([]),
        Some("function_call") => opening["arguments"] = json!(""),
        _ => opening["input"] = json!(""),
    }
    events.push(
        "response.output_item.added",
        json!({"output_index": index, "item": opening}),
    );
    let at = |extra: Value| {
        let mut fields = json!({"item_id": item_id, "output_index": index});
        if let (Some(fields), Value::Object(extra)) = (fields.as_object_mut(), extra) {
            fields.extend(extra);
        }
        fields
    };
    match (item["type"].as_str(), source) {
        (Some("message"), Item::Text(pieces)) => {
            let part = &item["content"][0];
            let empty =
                json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
            events.push(
                "response.content_part.added",
                at(json!({"content_index": 0, "part": empty})),
            );
            for piece in pieces {
                events.push(
                    "response.output_text.delta",
                    at(json!({"content_index": 0, "delta": piece, "logprobs": []})),
                );
            }
            events.push(
                "response.output_text.done",
                at(json!({"content_index": 0, "text": part["text"], "logprobs": []})),
            );
            events.push(
                "response.content_part.done",
                at(json!({"content_index": 0, "part": part})),
            );
        }
        (Some("function_call"), _) => {
            let arguments = item["arguments"].as_str().unwrap_or_default();
            for half in halves(arguments) {
                events.push(
                    "response.function_call_arguments.delta",
                    at(json!({"delta": half})),
                );
            }
            events.push(
                "response.function_call_arguments.done",
                at(json!({"arguments": arguments})),
            );
        }
        _ => {
            let input = item["input"].as_str().unwrap_or_default();
            for half in halves(input) {
                events.push(
                    "response.custom_tool_call_input.delta",
                    at(json!({"delta": half})),
                );
            }
            events.push(
                "response.custom_tool_call_input.done",
                at(json!({"input": input})),
            );
        }
    }
    events.push(
        "response.output_item.done",
        json!({"output_index": index, "item": item}),
    );
}

/// `text` in two pieces, split on a character boundary.
fn halves(text: &str) -> [&str; 2] {
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid += 1;
    }
    let (a, b) = text.split_at(mid);
    [a, b]
}

/// A `response` object echoing the request's settings.
fn response(
    id: &str,
    model: &str,
    body: &Value,
    status: &str,
    output: Vec<Value>,
    usage: Value,
) -> Value {
    let or = |key: &str, default: Value| match &body[key] {
        Value::Null => default,
        v => v.clone(),
    };
    json!({
        "id": id,
        "object": "response",
        "created_at": now(),
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": or("instructions", Value::Null),
        "max_output_tokens": or("max_output_tokens", Value::Null),
        "model": model,
        "output": output,
        "parallel_tool_calls": or("parallel_tool_calls", json!(true)),
        "previous_response_id": or("previous_response_id", Value::Null),
        "reasoning": {"effort": null, "summary": null},
        "store": or("store", json!(true)),
        "temperature": or("temperature", json!(1.0)),
        "text": or("text", json!({"format": {"type": "text"}})),
        "tool_choice": or("tool_choice", json!("auto")),
        "tools": or("tools", json!([])),
        "top_p": or("top_p", json!(1.0)),
        "truncation": "disabled",
        "usage": usage,
        "user": null,
        "metadata": or("metadata", json!({})),
    })
}

/// Typed SSE events, numbered as they are added.
#[derive(Default)]
struct Events {
    frames: Vec<Bytes>,
}

impl Events {
    fn push(&mut self, kind: &str, fields: Value) {
        let mut data = Map::new();
        data.insert("type".into(), json!(kind));
        if let Value::Object(fields) = fields {
            data.extend(fields);
        }
        data.insert("sequence_number".into(), json!(self.frames.len()));
        let data = Value::Object(data);
        self.frames
            .push(Bytes::from(format!("event: {kind}\ndata: {data}\n\n")));
    }
}

//! A mock of Anthropic's Messages API (`POST /v1/messages`), in its exact wire format:
//! message objects, the streaming event sequence, and error bodies. It checks what a
//! real server checks first (the `x-api-key` and `anthropic-version` headers, a JSON body
//! with `model`, `max_tokens` and `messages`, roles and block types) and answers by model
//! name:
//!
//! - `claude-tools`: two parallel `tool_use` calls, `get_weather` for Paris and Rome;
//! - `claude-max`: stops with `max_tokens`; `claude-stop`: with `stop_sequence`;
//! - `claude-thinking`: a thinking block, then text;
//! - `claude-error-NNN`: that status with Anthropic's error type for it (`retry-after`
//!   on 429; 529 is `overloaded_error`);
//! - `claude-malformed`: a 200 with broken JSON (or a broken event stream);
//! - `claude-cut`: a stream cut after its first text delta;
//! - anything else: text echoing the last user message.
//!
//! Scripted replies: [`Reply::stream`] answers these text pieces and
//! [`Reply::tool_calls`] these `tool_use` blocks (`stop_reason: "tool_use"`), each as a
//! whole `message` or as its event stream, as the request's `stream` asks.
//! `POST /v1/messages/count_tokens` is answered before the script, with
//! `{"input_tokens": N}`, after the same header checks.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use crate::mock::{
    Failure, Kind, Mock, Provider, Recorded, Reply, Resolved, ToolCall, status_code, to_bytes,
};

/// The API key the mock accepts.
pub const API_KEY: &str = "sk-ant-mock";

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// Anthropic's wire format, for the mock core.
#[derive(Debug, Default)]
pub struct Anthropic {
    next_id: AtomicU64,
}

/// A running mock Anthropic API; its base URL is what clients append `/v1/messages` to.
pub type MockAnthropic = Mock<Anthropic>;

impl Provider for Anthropic {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        (req.path_only() == "/v1/messages/count_tokens").then(|| count_tokens(req))
    }

    // Scripted replies skip the checks: a script decides the answer.
    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        match reply.kind() {
            Kind::Ok => healthy(req),
            Kind::Malformed => malformed(false),
            Kind::Pieces(pieces) => {
                let text: String = pieces.concat();
                scripted(req, json!([{"type": "text", "text": text}]), "end_turn")
            }
            Kind::ToolCalls(calls) => match self.tool_uses(calls) {
                Some(content) => scripted(req, content, "tool_use"),
                None => Resolved::unsupported("Anthropic (freeform tool input)", reply),
            },
            _ => Resolved::unsupported("Anthropic", reply),
        }
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        let status = failure.status.as_u16();
        let kind = failure.kind.as_deref().unwrap_or(error_type(status));
        error(status, kind, &failure.message)
    }
}

impl Anthropic {
    /// `tool_use` blocks for scripted calls; `None` if one has a non-object input,
    /// which Anthropic's format cannot carry.
    fn tool_uses(&self, calls: &[ToolCall]) -> Option<Value> {
        let blocks = calls
            .iter()
            .map(|call| {
                call.input.is_object().then(|| {
                    let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                    json!({"type": "tool_use", "id": format!("toolu_mock{n:04}"), "name": call.name, "input": call.input})
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Value::Array(blocks))
    }
}

/// A scripted answer of `content`, whole or streamed as the request asks.
fn scripted(req: &Recorded, content: Value, stop_reason: &str) -> Resolved {
    let body = req.json();
    let model = body["model"].as_str().unwrap_or("claude-mock");
    let input_tokens = (req.body.len() as u64).div_ceil(4);
    let output_tokens = content.to_string().len() as u64 / 4 + 1;
    if body["stream"].as_bool() == Some(true) {
        let events = stream_events(model, &content, stop_reason, input_tokens, output_tokens);
        return Resolved::frames(EVENT_STREAM, sse(&events));
    }
    let message = message(model, content, stop_reason, input_tokens, output_tokens);
    Resolved::whole(StatusCode::OK, JSON, to_bytes(&message))
}

/// `POST /v1/messages/count_tokens`: the same checks as a message, then roughly one
/// token per four bytes of the request.
fn count_tokens(req: &Recorded) -> Resolved {
    if let Err(refused) = check_headers(req) {
        return refused;
    }
    let body = req.json();
    if !body["model"].is_string() || !body["messages"].is_array() {
        return error(
            400,
            "invalid_request_error",
            "model and messages: Field required",
        );
    }
    let tokens = (req.body.len() as u64).div_ceil(4);
    Resolved::whole(
        StatusCode::OK,
        JSON,
        to_bytes(&json!({"input_tokens": tokens})),
    )
}

/// The credential and version headers every Anthropic call needs.
fn check_headers(req: &Recorded) -> Result<(), Resolved> {
    if req.header("x-api-key") != Some(API_KEY) {
        return Err(error(401, "authentication_error", "invalid x-api-key"));
    }
    if req.header("anthropic-version").is_none() {
        return Err(error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ));
    }
    Ok(())
}

/// An Anthropic error response.
fn error(status: u16, kind: &str, message: &str) -> Resolved {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"});
    Resolved::whole(status_code(status), JSON, to_bytes(&body))
}

/// The error type Anthropic documents for a status.
fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn error_for_status(status: u16) -> Resolved {
    let kind = error_type(status);
    let response = error(status, kind, &format!("mock {kind}"));
    if status == 429 {
        response.with_header("retry-after", "1")
    } else {
        response
    }
}

/// A 200 whose body (or first event) breaks off mid-JSON.
fn malformed(stream: bool) -> Resolved {
    if stream {
        let frame = Bytes::from_static(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\"\n\n",
        );
        Resolved::frames("text/event-stream", vec![frame])
    } else {
        Resolved::whole(StatusCode::OK, JSON, Bytes::from_static(b"{\"id\": \"msg_"))
    }
}

/// A whole `message` object.
pub fn message(
    model: &str,
    content: Value,
    stop_reason: &str,
    input_tokens: u64,
    output_tokens: u64,
) -> Value {
    json!({
        "id": "msg_mock01",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": if stop_reason == "stop_sequence" { json!("END") } else { Value::Null },
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0
        }
    })
}

/// Renders `(event, data)` pairs as an SSE body, one frame per event.
pub fn sse(events: &[(&str, Value)]) -> Vec<Bytes> {
    events
        .iter()
        .map(|(name, data)| Bytes::from(format!("event: {name}\ndata: {data}\n\n")))
        .collect()
}

/// The event sequence Anthropic streams for `content` (text, thinking and tool_use
/// blocks), splitting text and tool input into several deltas.
pub fn stream_events(
    model: &str,
    content: &Value,
    stop_reason: &str,
    input_tokens: u64,
    output_tokens: u64,
) -> Vec<(&'static str, Value)> {
    let mut events = vec![
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_mock01", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        ("ping", json!({"type": "ping"})),
    ];
    for (index, block) in content.as_array().into_iter().flatten().enumerate() {
        match block["type"].as_str() {
            Some("text") => {
                events.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                for piece in split(block["text"].as_str().unwrap_or("")) {
                    events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
                }
            }
            Some("thinking") => {
                events.push(("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}})));
                for piece in split(block["thinking"].as_str().unwrap_or("")) {
                    events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}})));
                }
                events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "sig-mock"}})));
            }
            Some("tool_use") => {
                events.push((
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}),
                ));
                let input = block["input"].to_string();
                let (a, b) = input.split_at(input.len() / 2);
                for piece in ["", a, b] {
                    events.push(("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
                }
            }
            _ => {}
        }
        events.push((
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
    }
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    events
}

/// Splits text into word-sized pieces that concatenate back to it.
fn split(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if c == ' ' {
            pieces.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// What a real server checks before answering.
fn validate(req: &Recorded) -> Result<Value, Resolved> {
    if req.method != http::Method::POST || req.path.split('?').next() != Some("/v1/messages") {
        return Err(error(
            404,
            "not_found_error",
            &format!("Not Found: {} {}", req.method, req.path),
        ));
    }
    check_headers(req)?;
    let body: Value = serde_json::from_slice(&req.body).map_err(|_| {
        error(
            400,
            "invalid_request_error",
            "There was an issue with the JSON body.",
        )
    })?;
    if !body["model"].is_string() {
        return Err(error(400, "invalid_request_error", "model: Field required"));
    }
    if !body["max_tokens"].is_u64() {
        return Err(error(
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ));
    }
    let Some(messages) = body["messages"].as_array() else {
        return Err(error(
            400,
            "invalid_request_error",
            "messages: Field required",
        ));
    };
    for (i, m) in messages.iter().enumerate() {
        // Claude Code sends `system` messages between turns (its environment block).
        if !matches!(m["role"].as_str(), Some("user" | "assistant" | "system")) {
            return Err(error(
                400,
                "invalid_request_error",
                &format!("messages.{i}.role: Input should be 'user', 'assistant' or 'system'"),
            ));
        }
        for block in m["content"].as_array().into_iter().flatten() {
            let ok = match block["type"].as_str() {
                Some("text") => block["text"].as_str().is_some_and(|t| !t.is_empty()),
                Some("image") => matches!(block["source"]["type"].as_str(), Some("base64" | "url")),
                Some("tool_use") => block["input"].is_object() && block["id"].is_string(),
                Some("tool_result") => block["tool_use_id"].is_string(),
                // Earlier turns' reasoning comes back as Anthropic sent it.
                Some("thinking") => block["thinking"].is_string() && block["signature"].is_string(),
                Some("redacted_thinking") => block["data"].is_string(),
                Some("document") => block["source"].is_object(),
                _ => false,
            };
            if !ok {
                return Err(error(
                    400,
                    "invalid_request_error",
                    &format!("messages.{i}.content: invalid block {block}"),
                ));
            }
        }
    }
    Ok(body)
}

fn healthy(req: &Recorded) -> Resolved {
    let body = match validate(req) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool() == Some(true);
    if let Some(status) = model
        .strip_prefix("claude-error-")
        .and_then(|s| s.parse().ok())
    {
        return error_for_status(status);
    }
    if model == "claude-malformed" {
        return malformed(stream);
    }
    let input_tokens = (req.body.len() as u64).div_ceil(4);
    let (content, stop_reason) = match model.as_str() {
        "claude-tools" => (
            json!([
                {"type": "text", "text": "Let me check both cities."},
                {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_rome", "name": "get_weather", "input": {"city": "Rome"}}
            ]),
            "tool_use",
        ),
        "claude-max" => (
            json!([{"type": "text", "text": "This answer was cut"}]),
            "max_tokens",
        ),
        "claude-stop" => (
            json!([{"type": "text", "text": "Stopped before the"}]),
            "stop_sequence",
        ),
        "claude-thinking" => (
            json!([{"type": "thinking", "thinking": "The user greets me.", "signature": "sig"}, {"type": "text", "text": "Hello!"}]),
            "end_turn",
        ),
        _ => (
            json!([{"type": "text", "text": format!("Hello! You said: {}", last_user_text(&body))}]),
            "end_turn",
        ),
    };
    let output_tokens = content.to_string().len() as u64 / 4 + 1;
    if stream {
        let frames = sse(&stream_events(
            &model,
            &content,
            stop_reason,
            input_tokens,
            output_tokens,
        ));
        let response = Resolved::frames(EVENT_STREAM, frames);
        return if model == "claude-cut" {
            response.cut_after(4)
        } else {
            response
        };
    }
    let body = message(&model, content, stop_reason, input_tokens, output_tokens);
    Resolved::whole(StatusCode::OK, JSON, to_bytes(&body))
}

/// The text of the last user message of a Messages body.
pub fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        })
        .unwrap_or_default()
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn recorded(headers: &[(&str, &str)], body: Value) -> Recorded {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Recorded {
            method: http::Method::POST,
            path: "/v1/messages".into(),
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    const GOOD: &[(&str, &str)] = &[("x-api-key", API_KEY), ("anthropic-version", "2023-06-01")];

    #[test]
    fn checks_headers_and_required_fields() {
        let body = json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
        assert_eq!(healthy(&recorded(&[], body.clone())).status, 401);
        assert_eq!(
            healthy(&recorded(&[("x-api-key", API_KEY)], body.clone())).status,
            400
        );
        assert_eq!(healthy(&recorded(GOOD, body.clone())).status, 200);
        let no_max = json!({"model": "claude", "messages": []});
        assert_eq!(healthy(&recorded(GOOD, no_max)).status, 400);
        let bad_role = json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]});
        assert_eq!(healthy(&recorded(GOOD, bad_role)).status, 400);
        let empty_text = json!({"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]});
        assert_eq!(healthy(&recorded(GOOD, empty_text)).status, 400);
    }

    #[test]
    fn streams_the_documented_event_sequence() {
        let body = json!({"model": "claude-tools", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let response = healthy(&recorded(GOOD, body));
        let text: String = response
            .frames
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(names.first(), Some(&"message_start"));
        assert_eq!(names.last(), Some(&"message_stop"));
        assert!(names.contains(&"content_block_start") && names.contains(&"message_delta"));
        assert!(text.contains("input_json_delta"));
    }

    #[test]
    fn errors_use_anthropics_shape() {
        let body = json!({"model": "claude-error-529", "max_tokens": 5, "messages": []});
        let response = healthy(&recorded(GOOD, body));
        assert_eq!(response.status, 529);
        let v: Value = serde_json::from_slice(&response.frames[0]).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "overloaded_error");
    }
}

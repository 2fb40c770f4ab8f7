//! The conformance cases in Anthropic's Messages API (`POST /v1/messages`): served as
//! it is by Anthropic, through chat by every other provider. Every streamed answer is
//! checked event by event ([`assemble`]): `message_start` first, blocks opened and
//! closed in index order, `message_delta` then `message_stop` last (or `error`).

use http::StatusCode;
use serde_json::{Value, json};

use super::{
    PNG, Upstream, asked_for_capital, capital_schema, error_models, json_of, malformed_model,
    named_events, send, setup, tool_image_arrived, two_weather_calls,
};
use crate::support::{Running, header};

const HEADERS: [(&str, &str); 2] = [
    ("x-api-key", "sk-anything"),
    ("anthropic-version", "2023-06-01"),
];

/// A request to `model` of one user message.
fn request(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

/// The `get_weather` tool, in Anthropic's form.
fn tools() -> Value {
    json!([{"name": "get_weather", "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// A whole answer: status, headers, JSON body.
async fn whole(sidecar: &Running, body: &Value) -> (StatusCode, http::HeaderMap, Value) {
    let (status, headers, bytes) = send(sidecar, "/v1/messages", &HEADERS, body).await;
    (status, headers, json_of(&bytes))
}

/// A streamed answer, assembled; the status must be 200 and the body an event stream.
async fn streamed(sidecar: &Running, body: &Value) -> Assembled {
    let mut body = body.clone();
    body["stream"] = json!(true);
    let (status, headers, bytes) = send(sidecar, "/v1/messages", &HEADERS, &body).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(header(&headers, "content-type").starts_with("text/event-stream"));
    assemble(&named_events(&bytes))
}

/// What a client makes of a Messages stream.
#[derive(Debug, Default)]
pub struct Assembled {
    pub names: Vec<String>,
    pub text: String,
    pub thinking: String,
    /// (id, name, input as parsed from its `input_json_delta` pieces) per tool block.
    pub tools: Vec<(String, String, Value)>,
    pub stop_reason: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The `error` event's data, for a stream that failed.
    pub error: Option<Value>,
}

/// Assembles a Messages stream, checking its event sequence on the way: `message_start`
/// first; each block opened by `content_block_start` at the next index, its deltas of
/// its kind, closed by a `content_block_stop` of the same index before another opens;
/// then `message_delta` and `message_stop` last, or an `error` event ending it early.
pub fn assemble(events: &[(String, Value)]) -> Assembled {
    let mut out = Assembled {
        names: events.iter().map(|(n, _)| n.clone()).collect(),
        ..Assembled::default()
    };
    assert_eq!(
        out.names.first().map(String::as_str),
        Some("message_start"),
        "{:?}",
        out.names
    );
    // (index, type, partial json) of the open block.
    let mut open: Option<(u64, String, String)> = None;
    let mut blocks = 0;
    let mut ended = false;
    for (i, (name, data)) in events.iter().enumerate() {
        assert!(!ended, "events after message_stop: {:?}", out.names);
        match name.as_str() {
            "message_start" => {
                assert_eq!(i, 0, "one message_start, first: {:?}", out.names);
                let message = &data["message"];
                assert_eq!(message["type"], "message");
                assert_eq!(message["role"], "assistant");
                assert_eq!(message["content"], json!([]));
                out.input_tokens = message["usage"]["input_tokens"].as_u64().unwrap_or(0);
            }
            "ping" => {}
            "content_block_start" => {
                assert!(
                    open.is_none(),
                    "block opened inside another: {:?}",
                    out.names
                );
                assert_eq!(data["index"], blocks, "block indexes count up from 0");
                let block = &data["content_block"];
                let kind = block["type"].as_str().unwrap().to_owned();
                if kind == "tool_use" {
                    assert_eq!(block["input"], json!({}), "{block}");
                    let (id, name) = (block["id"].as_str(), block["name"].as_str());
                    out.tools
                        .push((id.unwrap().into(), name.unwrap().into(), Value::Null));
                }
                open = Some((blocks, kind, String::new()));
                blocks += 1;
            }
            "content_block_delta" => {
                let Some((index, kind, json)) = open.as_mut() else {
                    panic!("a delta outside a block: {:?}", out.names);
                };
                assert_eq!(data["index"], *index, "a delta of another block");
                let delta = &data["delta"];
                match (kind.as_str(), delta["type"].as_str().unwrap()) {
                    ("text", "text_delta") => out.text.push_str(delta["text"].as_str().unwrap()),
                    ("thinking", "thinking_delta") => {
                        out.thinking.push_str(delta["thinking"].as_str().unwrap());
                    }
                    ("thinking", "signature_delta") => {}
                    ("tool_use", "input_json_delta") => {
                        json.push_str(delta["partial_json"].as_str().unwrap());
                    }
                    (kind, delta) => panic!("a {delta} in a {kind} block"),
                }
            }
            "content_block_stop" => {
                let Some((index, kind, json)) = open.take() else {
                    panic!("a stop outside a block: {:?}", out.names);
                };
                assert_eq!(data["index"], index, "stop of another block");
                if kind == "tool_use" {
                    let input = if json.is_empty() { "{}" } else { &json };
                    out.tools.last_mut().unwrap().2 = serde_json::from_str(input)
                        .unwrap_or_else(|e| panic!("tool input {json:?}: {e}"));
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with a block open");
                assert_eq!(
                    out.names.get(i + 1).map(String::as_str),
                    Some("message_stop"),
                    "message_delta is followed by message_stop: {:?}",
                    out.names
                );
                out.stop_reason = data["delta"]["stop_reason"].as_str().map(str::to_owned);
                let usage = &data["usage"];
                out.output_tokens = usage["output_tokens"].as_u64().unwrap();
                if let Some(input) = usage["input_tokens"].as_u64() {
                    out.input_tokens = out.input_tokens.max(input);
                }
            }
            "message_stop" => {
                assert!(
                    out.stop_reason.is_some(),
                    "message_stop without message_delta"
                );
                ended = true;
            }
            "error" => {
                assert_eq!(
                    i,
                    events.len() - 1,
                    "error ends the stream: {:?}",
                    out.names
                );
                out.error = Some(data.clone());
                ended = true;
            }
            other => panic!("unknown event {other}"),
        }
    }
    assert!(
        ended,
        "the stream neither stopped nor failed: {:?}",
        out.names
    );
    out
}

/// The text, thinking and tool calls of a whole answer, checking its shape.
fn blocks(body: &Value) -> (String, String, Vec<(String, String, Value)>) {
    assert_eq!(body["type"], "message", "{body}");
    assert_eq!(body["role"], "assistant");
    let (mut text, mut thinking, mut tools) = (String::new(), String::new(), Vec::new());
    for block in body["content"].as_array().unwrap() {
        match block["type"].as_str().unwrap() {
            "text" => text.push_str(block["text"].as_str().unwrap()),
            "thinking" => thinking.push_str(block["thinking"].as_str().unwrap()),
            "tool_use" => tools.push((
                block["id"].as_str().unwrap().to_owned(),
                block["name"].as_str().unwrap().to_owned(),
                block["input"].clone(),
            )),
            other => panic!("unexpected block {other}: {body}"),
        }
    }
    (text, thinking, tools)
}

/// A plain answer, whole and streamed: the same text, `end_turn`, non-zero usage in
/// Messages' shape.
pub async fn messages_text<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let body = request("text", "Hello there");
    let (status, headers, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    let (text, _, tools) = blocks(&answer);
    assert!(!text.is_empty() && tools.is_empty(), "{answer}");
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()));
    let usage = &answer["usage"];
    assert!(usage["input_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["output_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        usage.get("prompt_tokens").is_none(),
        "Messages' usage: {usage}"
    );

    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.text, text);
    assert_eq!(stream.stop_reason.as_deref(), Some("end_turn"));
    assert!(
        stream.input_tokens > 0 && stream.output_tokens > 0,
        "{stream:?}"
    );
}

/// Parallel tool calls, whole and streamed (inputs assembled from their pieces).
pub async fn messages_tool_calls<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("tools", "Weather in Paris and Rome?");
    body["tools"] = tools();
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stop_reason"], "tool_use");
    two_weather_calls(&blocks(&answer).2);
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains("get_weather") && sent.contains("Current weather for a city"),
        "tools reach the upstream: {sent}"
    );

    let stream = streamed(&sidecar, &body).await;
    two_weather_calls(&stream.tools);
    assert_eq!(stream.stop_reason.as_deref(), Some("tool_use"));
}

/// Stopping at the output limit is `max_tokens`, whole and streamed.
pub async fn messages_max_tokens<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("max", "Write a long essay");
    body["max_tokens"] = json!(7);
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stop_reason"], "max_tokens", "{answer}");
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains(":7"),
        "the limit reaches the upstream: {sent}"
    );
    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.stop_reason.as_deref(), Some("max_tokens"));
}

/// A provider that says which stop sequence stopped it: `stop_sequence`, naming it.
pub async fn messages_stop_sequence_reported<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("stop", "Count");
    body["stop_sequences"] = json!(["END", "STOP"]);
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stop_reason"], "stop_sequence", "{answer}");
    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.stop_reason.as_deref(), Some("stop_sequence"));
}

/// Through chat, which does not say which sequence stopped it: `end_turn`, with the
/// stop sequences sent upstream.
pub async fn messages_stop_sequence_via_chat<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("stop", "Count");
    body["stop_sequences"] = json!(["END", "STOP"]);
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stop_reason"], "end_turn", "{answer}");
    assert_eq!(answer["stop_sequence"], Value::Null);
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains("\"END\"") && sent.contains("\"STOP\""),
        "{sent}"
    );
    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.stop_reason.as_deref(), Some("end_turn"));
}

/// Anthropic's status and error type for what a chat client sees as `status`.
fn anthropic_error(status: u16) -> (u16, &'static str) {
    match status {
        400 => (400, "invalid_request_error"),
        401 => (401, "authentication_error"),
        402 => (402, "billing_error"),
        403 => (403, "permission_error"),
        404 => (404, "not_found_error"),
        429 => (429, "rate_limit_error"),
        503 | 529 => (529, "overloaded_error"),
        504 => (504, "timeout_error"),
        _ => (status, "api_error"),
    }
}

/// Each upstream error status reaches the client as Anthropic's status and error type,
/// in Anthropic's shape; retryable ones were retried.
pub async fn messages_errors<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, error_models(&up)).await;
    for (upstream, chat_status) in up.error_statuses() {
        let body = request(&format!("error-{upstream}"), "hi");
        let (status, headers, answer) = whole(&sidecar, &body).await;
        let (expected, kind) = anthropic_error(chat_status);
        assert_eq!(status.as_u16(), expected, "upstream {upstream}: {answer}");
        assert_eq!(answer["type"], "error", "upstream {upstream}: {answer}");
        assert_eq!(
            answer["error"]["type"], kind,
            "upstream {upstream}: {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
        let retried = upstream == 429 || upstream >= 500;
        assert_eq!(
            header(&headers, "x-llmesh-attempts"),
            if retried { "2" } else { "1" },
            "upstream {upstream}"
        );
    }
}

/// A malformed upstream answer is a 502 in Anthropic's shape, whole or streamed.
pub async fn messages_malformed<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![malformed_model(&up)]).await;
    let mut body = request("bad", "hi");
    for stream in [false, true] {
        body["stream"] = json!(stream);
        let (status, _, answer) = whole(&sidecar, &body).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "stream {stream}: {answer}");
        assert_eq!(answer["type"], "error", "{answer}");
        assert_eq!(answer["error"]["type"], "api_error", "{answer}");
    }
}

/// A stream cut mid-way ends with Anthropic's `error` event, never `message_stop`.
pub async fn messages_cut<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let stream = streamed(&sidecar, &request("cut", "Tell me a long story")).await;
    let error = stream
        .error
        .unwrap_or_else(|| panic!("no error event: {:?}", stream.names));
    assert_eq!(error["type"], "error");
    assert!(error["error"]["type"].is_string(), "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");
    assert!(!stream.names.iter().any(|n| n == "message_stop"));
}

/// A history whose tool result carries text and [`PNG`].
fn tool_result_with_image() -> Value {
    let mut body = request("text", "Weather in Paris?");
    body["tools"] = tools();
    body["messages"] = json!([
        {"role": "user", "content": "Weather in Paris? Show me."},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_paris", "name": "get_weather", "input": {"city": "Paris"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_paris", "content": [
                {"type": "text", "text": "18C and sunny, photo attached"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
            ]}
        ]}
    ]);
    body
}

/// An image in a tool result reaches the provider inside its tool result.
pub async fn messages_tool_result_image<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let (status, _, answer) = whole(&sidecar, &tool_result_with_image()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    tool_image_arrived(&up);
    let sent = up.bodies().last().unwrap().to_string();
    assert!(sent.contains("18C and sunny, photo attached"), "{sent}");
}

/// A provider whose tool results carry no images refuses one, in Anthropic's shape,
/// before anything is sent.
pub async fn messages_tool_result_image_refused<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let (status, _, answer) = whole(&sidecar, &tool_result_with_image()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
    assert!(up.bodies().is_empty(), "nothing was sent upstream");
}

/// Extended thinking comes back as `thinking` blocks before the text, whole and
/// streamed.
pub async fn messages_thinking<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("thinking", "Hello");
    body["max_tokens"] = json!(4096);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (text, thinking, _) = blocks(&answer);
    assert!(!thinking.is_empty() && !text.is_empty(), "{answer}");
    assert_eq!(
        answer["content"][0]["type"], "thinking",
        "thinking first: {answer}"
    );
    let stream = streamed(&sidecar, &body).await;
    assert_eq!(stream.thinking, thinking);
    assert_eq!(stream.text, text);
    assert_eq!(stream.stop_reason.as_deref(), Some("end_turn"));
}

/// `output_config.format` json_schema reaches the provider as its structured output.
pub async fn messages_structured_output<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let mut body = request("text", "The capital of France, as JSON");
    body["output_config"] = json!({"format": {"type": "json_schema", "schema": capital_schema()}});
    let (status, _, answer) = whole(&sidecar, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    asked_for_capital(&up);
}

//! Anthropic message and error bodies → OpenAI's.

use bytes::Bytes;
use http::StatusCode;

use super::request::{JSON_TOOL, json_mode};
use super::wire::{ErrorEnvelope, MessageResponse, ResponseBlock, finish_reason};
use crate::provider::openai::{
    AssistantMessage, ChatCompletion, Choice, FunctionOut, ToolCallOut, unix_now,
};
use crate::provider::{CallView, TranslateError};
use crate::server::error::ApiError;

/// A whole `message` → `chat.completion`.
pub fn translate(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let message: MessageResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let json = json_mode(call);
    let mut out = AssistantMessage {
        role: "assistant",
        ..AssistantMessage::default()
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    for block in message.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::Thinking { thinking } => reasoning.push_str(&thinking),
            ResponseBlock::ToolUse { name, input, .. } if json && name == JSON_TOOL => {
                text.push_str(&input.to_string());
            }
            ResponseBlock::ToolUse { id, name, input } => out.tool_calls.push(ToolCallOut {
                id,
                kind: "function",
                function: FunctionOut {
                    name,
                    arguments: input.to_string(),
                },
            }),
            ResponseBlock::Other => {}
        }
    }
    out.content = (!text.is_empty() || out.tool_calls.is_empty()).then_some(text);
    out.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    let mut finish = finish_reason(message.stop_reason.as_deref());
    if json && finish == "tool_calls" && out.tool_calls.is_empty() {
        // The forced JSON tool is an implementation detail: to the client it is an answer.
        finish = "stop";
    }
    let completion = ChatCompletion {
        id: &message.id,
        object: "chat.completion",
        created: unix_now(),
        model: &message.model,
        choices: vec![Choice {
            index: 0,
            message: out,
            logprobs: None,
            finish_reason: Some(finish),
        }],
        usage: message.usage.to_openai(),
    };
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(TranslateError::malformed)
}

/// An Anthropic error → the status and OpenAI-shaped body a client sees. Anthropic's
/// 529 (overloaded) becomes 503, which clients and retry rules know.
pub fn error(status: StatusCode, body: Bytes) -> (StatusCode, Bytes) {
    let status = if status.as_u16() == 529 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        status
    };
    let (kind, message) = match serde_json::from_slice::<ErrorEnvelope>(&body) {
        Ok(envelope) => (openai_type(&envelope.error.kind), envelope.error.message),
        Err(_) => (
            if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            },
            format!(
                "Anthropic answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            ),
        ),
    };
    (status, ApiError::new(status, kind, message).body())
}

/// OpenAI's error `type` for an Anthropic one.
fn openai_type(kind: &str) -> &'static str {
    match kind {
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "api_error" | "overloaded_error" => "server_error",
        _ => "invalid_request_error",
    }
}

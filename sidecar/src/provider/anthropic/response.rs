//! Anthropic message and error bodies → OpenAI's.

use bytes::Bytes;
use http::StatusCode;

use super::request::{JSON_TOOL, json_mode};
use super::wire::{ErrorEnvelope, MessageResponse, ResponseBlock, finish_reason};
use crate::domain::CallView;
use crate::domain::{ErrorClass, Reply, UpstreamError};
use crate::provider::TranslateError;
use crate::provider::openai_wire::{
    AssistantMessage, ChatCompletion, Choice, FunctionOut, ToolCallOut, WireUsage, unix_now,
};
use crate::provider::{Markers, classify, excerpt};

/// A whole `message` → `chat.completion`.
pub fn translate(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let message: MessageResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let json = json_mode(call);
    let usage = message.usage.to_usage();
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
        usage: WireUsage::from(usage),
    };
    let body = serde_json::to_vec(&completion).map_err(TranslateError::malformed)?;
    Ok(Reply {
        body: Bytes::from(body),
        usage: Some(usage),
    })
}

/// An Anthropic error → the status and OpenAI-shaped body a client sees. Anthropic's
/// 529 (overloaded) becomes 503, which clients and retry rules know.
/// How Anthropic words its refusals (lower case).
const MARKERS: Markers = Markers {
    // "prompt is too long: 210000 tokens > 200000 maximum", and "input length and
    // `max_tokens` exceed context limit".
    context_window: &["prompt is too long", "exceed context limit"],
    content_policy: &["content filtering policy"],
};

/// Reads Anthropic's `{"type":"error","error":{"type","message"}}`. Its 529
/// `overloaded_error` is a server error like any 5xx.
pub fn error(status: StatusCode, body: &[u8]) -> UpstreamError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => {
            let class = classify(status, &[&envelope.error.message], &MARKERS);
            UpstreamError::answered(class, status.as_u16(), envelope.error.message)
        }
        Err(_) => UpstreamError::answered(
            ErrorClass::from_status(status.as_u16()),
            status.as_u16(),
            format!("Anthropic answered {status}: {}", excerpt(body)),
        ),
    }
}

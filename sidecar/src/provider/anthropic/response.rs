//! Anthropic message and error bodies → OpenAI's.

use std::borrow::Cow;

use http::StatusCode;

use super::wire::{ErrorEnvelope, MessageResponse, ResponseBlock, finish_reason};
use crate::domain::CallView;
use crate::domain::{ErrorClass, Reply, UpstreamError};
use crate::provider::TranslateError;
use crate::provider::json_mode::{JSON_TOOL, json_mode};
use crate::provider::openai_wire::{
    AssistantMessage, Choice, ThinkingBlock, ToolCallOut, completion,
};
use crate::provider::{Markers, classify, excerpt};

/// A whole `message` → `chat.completion`.
pub fn translate(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let message: MessageResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let json = json_mode(call);
    let usage = message.usage.to_usage();
    let mut tool_calls = Vec::new();
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    for block in message.content {
        match block {
            ResponseBlock::Text { text: t } => text.push_str(&t),
            ResponseBlock::Thinking {
                thinking,
                signature,
            } => {
                reasoning.push_str(&thinking);
                // The signed block goes back to Anthropic on the next turn.
                thinking_blocks.push(ThinkingBlock::Thinking {
                    thinking: Cow::Owned(thinking),
                    signature: Cow::Owned(signature),
                });
            }
            ResponseBlock::RedactedThinking { data } => {
                thinking_blocks.push(ThinkingBlock::RedactedThinking {
                    data: Cow::Owned(data),
                });
            }
            ResponseBlock::ToolUse { name, input, .. } if json && name == JSON_TOOL => {
                text.push_str(&input.to_string());
            }
            ResponseBlock::ToolUse { id, name, input } => {
                tool_calls.push(ToolCallOut::function(id, name, input.to_string()));
            }
            ResponseBlock::Other => {}
        }
    }
    let mut finish = finish_reason(message.stop_reason.as_deref());
    if json && finish == "tool_calls" && tool_calls.is_empty() {
        // The forced JSON tool is an implementation detail: to the client it is an answer.
        finish = "stop";
    }
    let answer = AssistantMessage::new(text, reasoning, tool_calls).with_thinking(thinking_blocks);
    completion(
        &message.id,
        &message.model,
        vec![Choice::new(0, answer, finish)],
        usage,
    )
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

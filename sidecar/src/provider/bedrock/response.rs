//! Bedrock answers → OpenAI's: Converse responses, embeddings, and error bodies.

use std::borrow::Cow;

use http::StatusCode;

use super::request::EmbedKind;
use super::wire::{
    CohereEmbedResponse, CohereEmbeddings, ConverseResponse, TitanResponse, finish_reason,
};
use crate::domain::CallView;
use crate::domain::{Reply, UpstreamError};
use crate::provider::TranslateError;
use crate::provider::json_mode::{JSON_TOOL, json_mode};
use crate::provider::openai_wire::{
    AssistantMessage, Choice, EmbeddingVector, ThinkingBlock, ToolCallOut, completion,
    embedding_list,
};
use crate::provider::translate::wants_base64;
use crate::provider::{Markers, classify, error_message, upstream_fault};

/// Converse responses carry no id; OpenAI clients expect one per completion.
pub fn completion_id() -> String {
    format!(
        "chatcmpl-bedrock-{:016x}{:08x}",
        fastrand::u64(..),
        fastrand::u32(..)
    )
}

/// A Converse response → `chat.completion`.
pub fn chat(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let response: ConverseResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let json = json_mode(call);
    let mut tool_calls = Vec::new();
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    for block in response
        .output
        .message
        .map(|m| m.content)
        .unwrap_or_default()
    {
        if let Some(t) = block.text {
            text.push_str(&t);
        } else if let Some(tool) = block.tool_use {
            if json && tool.name == JSON_TOOL {
                // The forced JSON tool is an implementation detail: its input is the answer.
                text.push_str(&tool.input.to_string());
            } else {
                tool_calls.push(ToolCallOut::function(
                    tool.tool_use_id,
                    tool.name,
                    tool.input.to_string(),
                ));
            }
        } else if let Some(r) = block.reasoning_content {
            if let Some(t) = r.reasoning_text {
                reasoning.push_str(&t.text);
                // Signed reasoning goes back to the model on the next turn.
                if let Some(signature) = t.signature.filter(|s| !s.is_empty()) {
                    thinking_blocks.push(ThinkingBlock::Thinking {
                        thinking: Cow::Owned(t.text),
                        signature: Cow::Owned(signature),
                    });
                }
            } else if let Some(data) = r.redacted_content {
                thinking_blocks.push(ThinkingBlock::RedactedThinking {
                    data: Cow::Owned(data),
                });
            }
        }
    }
    let mut finish = finish_reason(response.stop_reason.as_deref());
    if json && finish == "tool_calls" && tool_calls.is_empty() {
        finish = "stop";
    }
    let message = AssistantMessage::new(text, reasoning, tool_calls).with_thinking(thinking_blocks);
    let usage = response.usage.unwrap_or_default().to_usage();
    completion(
        &completion_id(),
        call.model,
        vec![Choice::new(0, message, finish)],
        usage,
    )
}

/// An InvokeModel embedding answer → an embeddings `list`.
pub fn embeddings(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let base64 = wants_base64(call);
    let (vectors, tokens) = match EmbedKind::of(call.model) {
        Some(EmbedKind::Titan { .. }) => {
            let r: TitanResponse =
                serde_json::from_slice(body).map_err(TranslateError::malformed)?;
            (vec![r.embedding], r.input_text_token_count)
        }
        Some(EmbedKind::Cohere) => {
            let r: CohereEmbedResponse =
                serde_json::from_slice(body).map_err(TranslateError::malformed)?;
            let vectors = match r.embeddings {
                CohereEmbeddings::Floats(v) | CohereEmbeddings::ByType { float: v } => v,
            };
            // Cohere on Bedrock reports its token count only in the
            // x-amzn-bedrock-input-token-count header, which translators do not see.
            (vectors, 0)
        }
        None => return Err(TranslateError::malformed("not an embedding model")),
    };
    let vectors = vectors
        .into_iter()
        .map(|v| EmbeddingVector::encode(v, base64));
    embedding_list(call.model, vectors, tokens)
}

/// How Bedrock and the models on it word a prompt over the context window (lower case).
const MARKERS: Markers = Markers {
    context_window: &[
        "input is too long",
        "prompt is too long",
        "too many input tokens",
        "maximum context length",
    ],
    content_policy: &["content filtering policy"],
};

/// Reads a Bedrock error (`{"message": ...}`; the exception's name travels in the
/// `x-amzn-ErrorType` header). Statuses keep their meaning, except
/// `ModelErrorException`'s 424 (the model failed), which is a server error (502) so it
/// is retried and falls back like other upstream faults.
pub fn error(status: StatusCode, body: &[u8]) -> UpstreamError {
    let status = upstream_fault(status, 424);
    let message = error_message("Bedrock", status, body);
    let class = classify(status, &[&message], &MARKERS);
    UpstreamError::answered(class, status.as_u16(), message)
}

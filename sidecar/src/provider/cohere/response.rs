//! Cohere's `/v2/chat` and `/v2/embed` answers and errors → what OpenAI clients read.

use http::StatusCode;

use super::wire;
use crate::domain::{CallView, ErrorClass, Reply, UpstreamError};
use crate::provider::openai_wire::{
    AssistantMessage, Choice, EmbeddingVector, ToolCallOut, completion, embedding_list,
};
use crate::provider::translate::wants_base64;
use crate::provider::{Markers, TranslateError, classify, error_message, upstream_fault};

/// A `/v2/chat` response → `chat.completion`.
pub fn chat(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let response: wire::ChatResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    if response.finish_reason.as_deref() == Some("ERROR") {
        return Err(TranslateError::malformed(
            "Cohere reported finish_reason ERROR",
        ));
    }
    let mut text = String::new();
    let mut thinking = String::new();
    for block in &response.message.content {
        match block.kind.as_str() {
            "thinking" => thinking.push_str(block.thinking.as_deref().unwrap_or("")),
            _ => text.push_str(block.text.as_deref().unwrap_or("")),
        }
    }
    let tool_calls = response
        .message
        .tool_calls
        .into_iter()
        .map(|call| ToolCallOut::function(call.id, call.function.name, call.function.arguments))
        .collect();
    if text.is_empty()
        && let Some(plan) = response.message.tool_plan
    {
        text = plan;
    }
    let message = AssistantMessage::new(text, thinking, tool_calls);
    let finish = wire::finish_reason(response.finish_reason.as_deref());
    let usage = response.usage.unwrap_or_default().to_usage();
    completion(
        &response.id,
        call.model,
        vec![Choice::new(0, message, finish)],
        usage,
    )
}

/// A `/v2/embed` response → an embeddings `list`.
pub fn embed(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let response: wire::EmbedResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let embeddings = response.embeddings;
    let vectors: Vec<EmbeddingVector> = if wants_base64(call) {
        let base64 = embeddings.base64.ok_or_else(|| missing("base64"))?;
        base64.into_iter().map(EmbeddingVector::Base64).collect()
    } else {
        let floats = embeddings.float.ok_or_else(|| missing("float"))?;
        floats.into_iter().map(EmbeddingVector::Float).collect()
    };
    let tokens = response
        .meta
        .and_then(|m| m.billed_units)
        .map_or(0, |b| b.input_tokens);
    embedding_list(call.model, vectors, tokens)
}

/// An embeddings answer without the type asked for.
fn missing(kind: &str) -> TranslateError {
    TranslateError::malformed(format!("no {kind} embeddings"))
}

/// How Cohere words a prompt over the context window (lower case).
const MARKERS: Markers = Markers {
    // "too many tokens: total number of tokens in the prompt cannot exceed 4081".
    context_window: &["too many tokens", "context length"],
    content_policy: &[],
};

/// Reads a Cohere error (`{"id", "message"}`). 499 (the request was cancelled
/// upstream) is a server error (502), retried like other upstream faults; 402 (billing)
/// keeps its status and is not retried.
pub fn error(status: StatusCode, body: &[u8]) -> UpstreamError {
    let status = upstream_fault(status, 499);
    let message = error_message("Cohere", status, body);
    let class = match status.as_u16() {
        402 => ErrorClass::Invalid,
        _ => classify(status, &[&message], &MARKERS),
    };
    UpstreamError::answered(class, status.as_u16(), message)
        .with_code((status.as_u16() == 402).then(|| "insufficient_quota".to_owned()))
}

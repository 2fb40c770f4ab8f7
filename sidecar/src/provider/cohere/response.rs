//! Cohere's `/v2/chat` and `/v2/embed` answers and errors → what OpenAI clients read.

use http::StatusCode;

use super::request::wants_base64;
use super::wire;
use crate::domain::{CallView, ErrorClass, Reply, UpstreamError, Usage};
use crate::provider::openai_wire::{
    AssistantMessage, ChatCompletion, Choice, EmbeddingList, EmbeddingOut, EmbeddingUsage,
    EmbeddingVector, FunctionOut, ToolCallOut, WireUsage, reply, unix_now,
};
use crate::provider::{Markers, TranslateError, classify, excerpt};

/// A `/v2/chat` response → `chat.completion`.
pub fn chat(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let response: wire::ChatResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    if response.finish_reason.as_deref() == Some("ERROR") {
        return Err(TranslateError::malformed(
            "Cohere reported finish_reason ERROR",
        ));
    }
    let mut message = AssistantMessage {
        role: "assistant",
        ..AssistantMessage::default()
    };
    let mut text = String::new();
    let mut thinking = String::new();
    for block in &response.message.content {
        match block.kind.as_str() {
            "thinking" => thinking.push_str(block.thinking.as_deref().unwrap_or("")),
            _ => text.push_str(block.text.as_deref().unwrap_or("")),
        }
    }
    for call in response.message.tool_calls {
        message.tool_calls.push(ToolCallOut {
            id: call.id,
            kind: "function",
            function: FunctionOut {
                name: call.function.name,
                arguments: call.function.arguments,
            },
        });
    }
    if text.is_empty()
        && let Some(plan) = response.message.tool_plan
    {
        text = plan;
    }
    message.content = (!text.is_empty() || message.tool_calls.is_empty()).then_some(text);
    message.reasoning_content = (!thinking.is_empty()).then_some(thinking);
    let usage = response.usage.unwrap_or_default().to_usage();
    let completion = ChatCompletion {
        id: &response.id,
        object: "chat.completion",
        created: unix_now(),
        model: call.model,
        choices: vec![Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some(wire::finish_reason(response.finish_reason.as_deref())),
        }],
        usage: WireUsage::from(usage),
    };
    reply(&completion, Some(usage))
}

/// A `/v2/embed` response → an embeddings `list`.
pub fn embed(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let response: wire::EmbedResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let vectors: Vec<EmbeddingVector> = if wants_base64(call) {
        response
            .embeddings
            .base64
            .ok_or_else(|| TranslateError::malformed("no base64 embeddings"))?
            .into_iter()
            .map(EmbeddingVector::Base64)
            .collect()
    } else {
        response
            .embeddings
            .float
            .ok_or_else(|| TranslateError::malformed("no float embeddings"))?
            .into_iter()
            .map(EmbeddingVector::Float)
            .collect()
    };
    let tokens = response
        .meta
        .and_then(|m| m.billed_units)
        .map_or(0, |b| b.input_tokens);
    let list = EmbeddingList {
        object: "list",
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(i, embedding)| EmbeddingOut {
                object: "embedding",
                index: u32::try_from(i).unwrap_or(u32::MAX),
                embedding,
            })
            .collect(),
        model: call.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let usage = Usage {
        prompt_tokens: tokens,
        ..Usage::default()
    };
    reply(&list, Some(usage))
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
    let status = if status.as_u16() == 499 {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    let message = serde_json::from_slice::<wire::ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| format!("Cohere answered {status}: {}", excerpt(body)));
    let class = match status.as_u16() {
        402 => ErrorClass::Invalid,
        _ => classify(status, &[&message], &MARKERS),
    };
    UpstreamError::answered(class, status.as_u16(), message)
        .with_code((status.as_u16() == 402).then(|| "insufficient_quota".to_owned()))
}

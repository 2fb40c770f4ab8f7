//! Bedrock answers → OpenAI's: Converse responses, embeddings, and error bodies.

use bytes::Bytes;
use http::StatusCode;

use super::request::EmbedKind;
use super::wire::{
    CohereEmbedResponse, CohereEmbeddings, ConverseResponse, ErrorBody, TitanResponse,
    finish_reason,
};
use crate::provider::openai::{
    AssistantMessage, ChatCompletion, Choice, EmbeddingList, EmbeddingOut, EmbeddingUsage,
    EmbeddingVector, FunctionOut, ToolCallOut, unix_now,
};
use crate::provider::{CallView, TranslateError};
use crate::server::error::ApiError;

/// Converse responses carry no id; OpenAI clients expect one per completion.
pub fn completion_id() -> String {
    format!(
        "chatcmpl-bedrock-{:016x}{:08x}",
        fastrand::u64(..),
        fastrand::u32(..)
    )
}

/// A Converse response → `chat.completion`.
pub fn chat(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let response: ConverseResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let mut message = AssistantMessage {
        role: "assistant",
        ..AssistantMessage::default()
    };
    let mut text = String::new();
    let mut reasoning = String::new();
    for block in response
        .output
        .message
        .map(|m| m.content)
        .unwrap_or_default()
    {
        if let Some(t) = block.text {
            text.push_str(&t);
        } else if let Some(tool) = block.tool_use {
            message.tool_calls.push(ToolCallOut {
                id: tool.tool_use_id,
                kind: "function",
                function: FunctionOut {
                    name: tool.name,
                    arguments: tool.input.to_string(),
                },
            });
        } else if let Some(r) = block.reasoning_content.and_then(|r| r.reasoning_text) {
            reasoning.push_str(&r.text);
        }
    }
    message.content = (!text.is_empty() || message.tool_calls.is_empty()).then_some(text);
    message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    let id = completion_id();
    let completion = ChatCompletion {
        id: &id,
        object: "chat.completion",
        created: unix_now(),
        model: call.model,
        choices: vec![Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some(finish_reason(response.stop_reason.as_deref())),
        }],
        usage: response.usage.unwrap_or_default().to_openai(),
    };
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(TranslateError::malformed)
}

/// An InvokeModel embedding answer → an embeddings `list`.
pub fn embeddings(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let base64 = call
        .body
        .get("encoding_format")
        .and_then(serde_json::Value::as_str)
        == Some("base64");
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
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| EmbeddingOut {
            object: "embedding",
            index: u32::try_from(i).unwrap_or(u32::MAX),
            embedding: EmbeddingVector::encode(v, base64),
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model: call.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&list)
        .map(Bytes::from)
        .map_err(TranslateError::malformed)
}

/// A Bedrock error (`{"message": ...}`; the exception's name travels in the
/// `x-amzn-ErrorType` header) → the status and OpenAI-shaped body a client sees.
/// Statuses map one to one, except `ModelErrorException`'s 424 (the model failed),
/// which becomes 502 so it is retried and falls back like other upstream faults.
pub fn error(status: StatusCode, body: Bytes) -> (StatusCode, Bytes) {
    let status = if status.as_u16() == 424 {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| {
            format!(
                "Bedrock answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            )
        });
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    (status, ApiError::new(status, kind, message).body())
}

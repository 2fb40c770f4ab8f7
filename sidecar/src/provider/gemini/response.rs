//! Gemini answers → OpenAI's: `GenerateContentResponse` → `chat.completion`, the three
//! embeddings answers → an embeddings list, Google's errors → OpenAI's error shape.

use bytes::Bytes;
use http::StatusCode;
use serde_json::Value;

use super::wire::{EmbedResponse, ErrorEnvelope, GenerateResponse, finish_reason};
use crate::provider::openai::{
    AssistantMessage, ChatCompletion, Choice, EmbeddingList, EmbeddingOut, EmbeddingUsage,
    EmbeddingVector, FunctionOut, ToolCallOut, unix_now,
};
use crate::provider::{CallView, TranslateError};
use crate::server::error::ApiError;

/// The id of the `n`-th call of choice `choice`: Gemini gives calls no ids (some
/// versions do, and those are kept), so they are made from the response id, the same
/// in a stream as in a whole answer.
pub fn call_id(given: Option<&str>, response_id: Option<&str>, choice: u32, n: usize) -> String {
    if let Some(id) = given.filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    match (response_id, choice) {
        (Some(rid), 0) => format!("call_{rid}_{n}"),
        (Some(rid), c) => format!("call_{rid}_{c}_{n}"),
        (None, 0) => format!("call_{n}"),
        (None, c) => format!("call_{c}_{n}"),
    }
}

/// The completion id: Google's response id when it sends one.
pub fn completion_id(response_id: Option<&str>) -> String {
    match response_id {
        Some(rid) => format!("chatcmpl-{rid}"),
        None => format!("chatcmpl-gemini-{}", fastrand::u64(..)),
    }
}

/// A whole `GenerateContentResponse` → `chat.completion`. A prompt Google blocked (no
/// candidates, `promptFeedback.blockReason`) is one empty choice finished by
/// `content_filter`.
pub fn chat(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let response: GenerateResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let rid = response.response_id.as_deref();
    let mut choices = Vec::with_capacity(response.candidates.len().max(1));
    for (position, candidate) in response.candidates.iter().enumerate() {
        let index = candidate
            .index
            .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
        let mut message = AssistantMessage {
            role: "assistant",
            ..AssistantMessage::default()
        };
        let mut text = String::new();
        let mut reasoning = String::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if let Some(call) = &part.function_call {
                let n = message.tool_calls.len();
                message.tool_calls.push(ToolCallOut {
                    id: call_id(call.id.as_deref(), rid, index, n),
                    kind: "function",
                    function: FunctionOut {
                        name: call.name.clone(),
                        arguments: call
                            .args
                            .as_ref()
                            .map_or_else(|| "{}".to_owned(), Value::to_string),
                    },
                });
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            }
        }
        let finish = finish_reason(
            candidate.finish_reason.as_deref(),
            !message.tool_calls.is_empty(),
        );
        message.content = (!text.is_empty() || message.tool_calls.is_empty()).then_some(text);
        message.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
        choices.push(Choice {
            index,
            message,
            logprobs: None,
            finish_reason: Some(finish),
        });
    }
    if choices.is_empty() {
        let blocked = response
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if !blocked {
            return Err(TranslateError::malformed(
                "no candidates and no promptFeedback.blockReason",
            ));
        }
        choices.push(Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: Some(String::new()),
                ..AssistantMessage::default()
            },
            logprobs: None,
            finish_reason: Some("content_filter"),
        });
    }
    let id = completion_id(rid);
    let completion = ChatCompletion {
        id: &id,
        object: "chat.completion",
        created: unix_now(),
        model: response.model_version.as_deref().unwrap_or(call.model),
        choices,
        usage: response.usage_metadata.unwrap_or_default().to_openai(),
    };
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(TranslateError::malformed)
}

/// An embeddings answer → OpenAI's list. Token counts come from Vertex's statistics;
/// AI Studio reports none, so its usage is zero.
pub fn embeddings(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let response: EmbedResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let base64 = call.body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let vectors: Vec<Vec<f32>> = match response {
        EmbedResponse::Single { embedding } => vec![embedding.values],
        EmbedResponse::Batch { embeddings } => embeddings.into_iter().map(|e| e.values).collect(),
        EmbedResponse::Predict { predictions } => predictions
            .into_iter()
            .map(|p| {
                tokens += p.embeddings.statistics.map_or(0, |s| s.token_count);
                p.embeddings.values
            })
            .collect(),
    };
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(i, values)| EmbeddingOut {
            object: "embedding",
            index: u32::try_from(i).unwrap_or(u32::MAX),
            embedding: EmbeddingVector::encode(values, base64),
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

/// Google's prompt-too-long message: "The input token count (N) exceeds the maximum
/// number of tokens allowed (M)."
fn over_context(message: &str) -> bool {
    message.contains("exceeds the maximum number of tokens")
}

/// A Google error → the status and OpenAI-shaped body a client sees.
///
/// Statuses keep their meaning except that Google's 400 for a bad API key becomes
/// OpenAI's 401. A prompt over the context window gets OpenAI's
/// `context_length_exceeded` code, so context-window fallbacks apply. Gemini says when
/// to retry a 429 in a `RetryInfo` detail, not a header: the delay is kept in the
/// message.
pub fn error(status: StatusCode, body: Bytes) -> (StatusCode, Bytes) {
    let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(&body) else {
        // Google's front end answers unknown URLs with an HTML page.
        let snippet = String::from_utf8_lossy(&body[..body.len().min(256)]);
        let message = format!("Gemini answered {status}: {}", snippet.trim());
        let api = ApiError::new(status, kind_of(status), message);
        return (status, api.body());
    };
    let error = envelope.error;
    let (status, code) = match (status.as_u16(), error.reason()) {
        (_, Some("API_KEY_INVALID")) => (StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
        (400, _) if over_context(&error.message) => (status, Some("context_length_exceeded")),
        (429, _) => (status, Some("rate_limit_exceeded")),
        _ => (status, None),
    };
    let mut message = error.message.clone();
    if let Some(google_status) = &error.status {
        message = format!("{message} ({google_status})");
    }
    if let Some(delay) = error.retry_delay() {
        message = format!("{message} Retry after {delay}.");
    }
    let mut api = ApiError::new(status, kind_of(status), message);
    if let Some(code) = code {
        api = api.with_code(code);
    }
    (status, api.body())
}

/// OpenAI's error `type` for a status.
fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    }
}

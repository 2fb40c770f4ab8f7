//! Gemini answers → OpenAI's: `GenerateContentResponse` → `chat.completion`, Google's
//! errors → OpenAI's error shape (embeddings: see [`embed`](super::embed)).

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::signature;
use super::wire::{ErrorEnvelope, GenerateResponse, finish_reason};
use crate::domain::CallView;
use crate::domain::{ErrorClass, Reply, UpstreamError};
use crate::provider::TranslateError;
use crate::provider::excerpt;
use crate::provider::openai_wire::{AssistantMessage, Choice, ToolCallOut, completion};

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
pub fn chat(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    let response: GenerateResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let rid = response.response_id.as_deref();
    let mut choices = Vec::with_capacity(response.candidates.len().max(1));
    for (position, candidate) in response.candidates.iter().enumerate() {
        let index = candidate
            .index
            .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
        let mut tool_calls = Vec::new();
        let mut text = String::new();
        let mut reasoning = String::new();
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if let Some(call) = &part.function_call {
                let n = tool_calls.len();
                let signature = part.thought_signature.as_deref();
                let id = signature::id_with(call_id(call.id.as_deref(), rid, index, n), signature);
                let call = ToolCallOut::function(
                    id,
                    call.name.clone(),
                    call.args
                        .as_ref()
                        .map_or_else(|| "{}".to_owned(), Value::to_string),
                );
                tool_calls.push(call.with_extra(signature::extra(signature)));
            } else if let Some(t) = &part.text {
                if part.thought == Some(true) {
                    reasoning.push_str(t);
                } else {
                    text.push_str(t);
                }
            }
        }
        let finish = finish_reason(candidate.finish_reason.as_deref(), !tool_calls.is_empty());
        let message = AssistantMessage::new(text, reasoning, tool_calls);
        choices.push(Choice::new(index, message, finish));
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
        let empty = AssistantMessage::new(String::new(), String::new(), Vec::new());
        choices.push(Choice::new(0, empty, "content_filter"));
    }
    let id = completion_id(rid);
    let usage = response.usage_metadata.unwrap_or_default().to_usage();
    let model = response.model_version.as_deref().unwrap_or(call.model);
    completion(&id, model, choices, usage)
}

/// Google's prompt-too-long message: "The input token count (N) exceeds the maximum
/// number of tokens allowed (M)."
fn over_context(message: &str) -> bool {
    message.contains("exceeds the maximum number of tokens")
}

/// Reads a Google error. Statuses keep their meaning except that Google's 400 for a
/// bad API key is an authentication failure (401). A prompt over the context window is
/// classified as such, so context-window fallbacks apply. Gemini says when to retry a
/// 429 in a `RetryInfo` detail, not a header: the delay becomes the error's
/// `retry_after` and is kept in the message.
pub fn error(status: StatusCode, body: &[u8]) -> UpstreamError {
    let Ok(envelope) = serde_json::from_slice::<ErrorEnvelope>(body) else {
        // Google's front end answers unknown URLs with an HTML page.
        let message = format!("Gemini answered {status}: {}", excerpt(body).trim());
        return UpstreamError::answered(
            ErrorClass::from_status(status.as_u16()),
            status.as_u16(),
            message,
        );
    };
    let error = envelope.error;
    let (class, status) = match (status.as_u16(), error.reason()) {
        (_, Some("API_KEY_INVALID")) => (ErrorClass::Auth, 401),
        (400, _) if over_context(&error.message) => (ErrorClass::ContextWindow, 400),
        (status, _) => (ErrorClass::from_status(status), status),
    };
    let mut message = error.message.clone();
    if let Some(google_status) = &error.status {
        message = format!("{message} ({google_status})");
    }
    let delay = error.retry_delay();
    if let Some(delay) = delay {
        message = format!("{message} Retry after {delay}.");
    }
    // Google's reasons (`API_KEY_INVALID`) are not OpenAI codes: the class's code is
    // what clients get.
    let mut failure = UpstreamError::answered(class, status, message);
    // The router rests the deployment this long and waits it out before retrying there
    // when the model's maxBackoff allows, as for a Retry-After header.
    failure.retry_after = delay.and_then(duration);
    failure
}

/// The longest wait Google can ask for, as the router caps `Retry-After`: longer means
/// "not soon", and must not bench a deployment for ever.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// A protobuf `Duration` in its JSON form (`34s`, `1.5s`, `0.000340s`: seconds with up
/// to nine fractional digits), capped at [`MAX_RETRY_DELAY`]; `None` for anything else,
/// negative durations included.
fn duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 9 {
        return None;
    }
    // Digits beyond u64 are still "a very long time", not junk.
    let secs = whole.parse::<u64>().unwrap_or(u64::MAX);
    if secs >= MAX_RETRY_DELAY.as_secs() {
        return Some(MAX_RETRY_DELAY);
    }
    let nanos = format!("{fraction:0<9}").parse::<u32>().unwrap_or(0);
    Some(Duration::new(secs, nanos))
}

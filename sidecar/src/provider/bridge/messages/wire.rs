//! The wire shapes both directions share: the parts of chat answers and chunks read
//! (borrowed from the event where the text needs no unescaping), and what Anthropic's
//! answers say of them (stop reason, usage, ids).

use serde::{Deserialize, Serialize};

use crate::domain::Usage;

pub use crate::provider::bridge::text::{Str, text};

/// One entry of chat's `thinking_blocks`, in an answer or a delta:
/// `{"type":"thinking","thinking","signature"}` or `{"type":"redacted_thinking","data"}`.
/// Read as a struct rather than a tagged enum so a delta carrying only a signature, or a
/// type this sidecar does not know, parses without buffering.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ThinkingPiece<'a> {
    /// `thinking` or `redacted_thinking`.
    #[serde(rename = "type", borrow)]
    pub kind: Option<Str<'a>>,
    /// Reasoning text (or, in a delta, more of it).
    #[serde(borrow)]
    pub thinking: Option<Str<'a>>,
    /// The provider's signature over the block's reasoning.
    #[serde(borrow)]
    pub signature: Option<Str<'a>>,
    /// Redacted reasoning, opaque.
    #[serde(borrow)]
    pub data: Option<Str<'a>>,
}

/// Which of Anthropic's thinking blocks a [`ThinkingPiece`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThinkingKind {
    /// `thinking` (also assumed when a piece names no type).
    Thinking,
    /// `redacted_thinking`.
    Redacted,
    /// A type Anthropic's API has no block for: left out.
    Other,
}

impl ThinkingPiece<'_> {
    /// What the piece is.
    pub fn kind(&self) -> ThinkingKind {
        match self.kind.as_ref().map(Str::as_str) {
            None | Some("thinking") => ThinkingKind::Thinking,
            Some("redacted_thinking") => ThinkingKind::Redacted,
            Some(_) => ThinkingKind::Other,
        }
    }
}

/// Anthropic's `stop_reason` for a chat `finish_reason`. Chat does not say which stop
/// sequence ended an answer, so `stop` is always `end_turn`; an answer that calls tools
/// is `tool_use` whatever its finish reason says (some providers finish those with
/// `stop`). Reasons chat does not define are `end_turn`.
pub fn stop_reason(finish_reason: Option<&str>, called_tools: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("content_filter") => "refusal",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if called_tools => "tool_use",
        _ => "end_turn",
    }
}

/// Anthropic's `usage` object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageUsage {
    /// Prompt tokens neither read from nor written to the cache.
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    pub output_tokens: u64,
    /// Prompt tokens written to the cache.
    pub cache_creation_input_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cache_read_input_tokens: u64,
}

impl From<Usage> for MessageUsage {
    /// Chat's prompt count includes cached and cache-writing tokens; Anthropic's
    /// `input_tokens` does not.
    fn from(u: Usage) -> Self {
        MessageUsage {
            input_tokens: u
                .prompt_tokens
                .saturating_sub(u.cached_tokens)
                .saturating_sub(u.cache_write_tokens),
            output_tokens: u.completion_tokens,
            cache_creation_input_tokens: u.cache_write_tokens,
            cache_read_input_tokens: u.cached_tokens,
        }
    }
}

/// The message id for a chat answer's id: Anthropic's ids start with `msg_`, so an id
/// that does (an Anthropic upstream's) is kept and others are prefixed; an answer
/// without one gets a random id.
pub fn message_id(chat_id: Option<&str>) -> String {
    match chat_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => random_id("msg_"),
    }
}

/// An id for a tool call the upstream gave none.
pub fn tool_use_id() -> String {
    random_id("toolu_")
}

fn random_id(prefix: &str) -> String {
    format!(
        "{prefix}{:016x}{:08x}",
        fastrand::u64(..),
        fastrand::u32(..)
    )
}

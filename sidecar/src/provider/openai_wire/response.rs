//! The whole answers clients expect back: `chat.completion`, the embeddings list, and
//! OpenAI's `usage` object both ways.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{ThinkingBlock, base64_encode, unix_now};
use crate::domain::{Reply, Usage};
use crate::provider::TranslateError;

/// `chat.completion`.
#[derive(Debug, Serialize)]
pub struct ChatCompletion<'a> {
    /// Response id.
    pub id: &'a str,
    /// Always `chat.completion`.
    pub object: &'static str,
    /// Unix seconds.
    pub created: u64,
    /// The upstream model.
    pub model: &'a str,
    /// One choice.
    pub choices: Vec<Choice>,
    /// Token counts.
    pub usage: WireUsage,
}

/// A choice of a completion.
#[derive(Debug, Serialize)]
pub struct Choice {
    /// Position.
    pub index: u32,
    /// The assistant message.
    pub message: AssistantMessage,
    /// Always null (log probabilities are not translated).
    pub logprobs: Option<()>,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: Option<&'static str>,
}

/// The assistant message of a choice.
#[derive(Debug, Default, Serialize)]
pub struct AssistantMessage {
    /// Always `assistant`.
    pub role: &'static str,
    /// Text, or null when the message only calls tools.
    pub content: Option<String>,
    /// Reasoning text, where the provider exposes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Signed reasoning, for the provider on the next turn (see [`ThinkingBlock`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock<'static>>,
    /// Tool calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallOut>,
    /// Always null.
    pub refusal: Option<()>,
}

/// A tool call the model made.
#[derive(Debug, Serialize)]
pub struct ToolCallOut {
    /// Call id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The function and its arguments.
    pub function: FunctionOut,
    /// What a provider needs back with the call on the next turn, as Google's own
    /// OpenAI-compatible API writes it: `{"google": {"thought_signature": …}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<ExtraContent>,
}

/// A tool call's `extra_content`, in the shape of Google's OpenAI-compatible API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraContent {
    /// Gemini's part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleExtra>,
}

/// Gemini's `extra_content` of a tool call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleExtra {
    /// The `thoughtSignature` of the `functionCall` part the call came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
}

impl ExtraContent {
    /// `extra_content` carrying a Gemini thought signature.
    pub fn thought_signature(signature: String) -> Self {
        ExtraContent {
            google: Some(GoogleExtra {
                thought_signature: Some(signature),
            }),
        }
    }
}

/// The function of a tool call.
#[derive(Debug, Serialize)]
pub struct FunctionOut {
    /// Name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
}

impl Choice {
    /// Choice `index` with its message and finish reason.
    pub fn new(index: u32, message: AssistantMessage, finish_reason: &'static str) -> Self {
        Choice {
            index,
            message,
            logprobs: None,
            finish_reason: Some(finish_reason),
        }
    }
}

impl AssistantMessage {
    /// The assistant message made of what a provider answered. `content` is null only
    /// when the message calls tools and says nothing, as OpenAI writes it; empty
    /// reasoning is left out.
    pub fn new(text: String, reasoning: String, tool_calls: Vec<ToolCallOut>) -> Self {
        AssistantMessage {
            role: "assistant",
            content: (!text.is_empty() || tool_calls.is_empty()).then_some(text),
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            thinking_blocks: Vec::new(),
            tool_calls,
            refusal: None,
        }
    }

    /// The message with the provider's signed reasoning blocks.
    pub fn with_thinking(mut self, blocks: Vec<ThinkingBlock<'static>>) -> Self {
        self.thinking_blocks = blocks;
        self
    }
}

impl ToolCallOut {
    /// A call of function `name` with `arguments` (a JSON string).
    pub fn function(id: String, name: String, arguments: String) -> Self {
        ToolCallOut {
            id,
            kind: "function",
            function: FunctionOut { name, arguments },
            extra_content: None,
        }
    }

    /// The call with the `extra_content` a provider needs back with it.
    pub fn with_extra(mut self, extra: Option<ExtraContent>) -> Self {
        self.extra_content = extra;
        self
    }
}

/// A `chat.completion` of `choices`, serialized, with the usage it reports.
pub fn completion(
    id: &str,
    model: &str,
    choices: Vec<Choice>,
    usage: Usage,
) -> Result<Reply, TranslateError> {
    let completion = ChatCompletion {
        id,
        object: "chat.completion",
        created: unix_now(),
        model,
        choices,
        usage: WireUsage::from(usage),
    };
    reply(&completion, Some(usage))
}

/// OpenAI's `usage` object as the sidecar writes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WireUsage {
    /// Prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Completion tokens, reasoning included.
    pub completion_tokens: u64,
    /// Their sum.
    pub total_tokens: u64,
    /// Prompt detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptDetails>,
    /// Completion detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    /// Prompt tokens read from the provider's cache.
    pub cached_tokens: u64,
    /// Prompt tokens written to the provider's cache (Anthropic, Bedrock), an llmesh
    /// extension OpenAI does not send.
    #[serde(skip_serializing_if = "is_zero")]
    pub cache_creation_tokens: u64,
}

/// `usage.completion_tokens_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    /// Completion tokens spent on reasoning.
    pub reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<Usage> for WireUsage {
    /// The details are written only when non-zero.
    fn from(u: Usage) -> WireUsage {
        WireUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total(),
            prompt_tokens_details: (u.cached_tokens > 0 || u.cache_write_tokens > 0).then_some(
                PromptDetails {
                    cached_tokens: u.cached_tokens,
                    cache_creation_tokens: u.cache_write_tokens,
                },
            ),
            completion_tokens_details: (u.reasoning_tokens > 0).then_some(CompletionDetails {
                reasoning_tokens: u.reasoning_tokens,
            }),
        }
    }
}

/// OpenAI's `usage` object as upstreams send it. Upstreams differ in what they leave
/// out or set to null, so every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UsageIn {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetailsIn>,
    completion_tokens_details: Option<CompletionDetailsIn>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetailsIn {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetailsIn {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<UsageIn> for Usage {
    fn from(wire: UsageIn) -> Usage {
        let prompt = wire.prompt_tokens_details.unwrap_or_default();
        Usage {
            prompt_tokens: wire.prompt_tokens.unwrap_or(0),
            completion_tokens: wire.completion_tokens.unwrap_or(0),
            cached_tokens: prompt.cached_tokens.unwrap_or(0),
            cache_write_tokens: prompt.cache_creation_tokens.unwrap_or(0),
            reasoning_tokens: wire
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// A translated answer, serialized, with the usage it reports.
pub fn reply(answer: &impl Serialize, usage: Option<Usage>) -> Result<Reply, TranslateError> {
    let body = serde_json::to_vec(answer).map_err(TranslateError::malformed)?;
    Ok(Reply {
        body: Bytes::from(body),
        usage,
        usage_estimated: false,
    })
}

/// One embedding of a list.
#[derive(Debug, Serialize)]
pub struct EmbeddingOut {
    /// Always `embedding`.
    pub object: &'static str,
    /// Position of its input.
    pub index: u32,
    /// The vector, as floats or as base64 of little-endian f32s.
    pub embedding: EmbeddingVector,
}

/// An embedding in the encoding the client asked for.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmbeddingVector {
    /// `encoding_format: float`.
    Float(Vec<f32>),
    /// `encoding_format: base64` (what OpenAI's SDKs ask for by default).
    Base64(String),
}

impl EmbeddingVector {
    /// Encodes `values` as the client asked.
    pub fn encode(values: Vec<f32>, base64: bool) -> Self {
        if !base64 {
            return EmbeddingVector::Float(values);
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        EmbeddingVector::Base64(base64_encode(&bytes))
    }
}

/// The embeddings list object.
#[derive(Debug, Serialize)]
pub struct EmbeddingList<'a> {
    /// Always `list`.
    pub object: &'static str,
    /// One per input.
    pub data: Vec<EmbeddingOut>,
    /// The upstream model.
    pub model: &'a str,
    /// Token counts.
    pub usage: EmbeddingUsage,
}

/// Embedding token counts.
#[derive(Debug, Default, Serialize)]
pub struct EmbeddingUsage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// The same.
    pub total_tokens: u64,
}

/// An embeddings `list` of `vectors`, in input order, serialized, with the input tokens
/// it reports.
pub fn embedding_list(
    model: &str,
    vectors: impl IntoIterator<Item = EmbeddingVector>,
    tokens: u64,
) -> Result<Reply, TranslateError> {
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
        model,
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

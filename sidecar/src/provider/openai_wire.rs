//! OpenAI's wire types, for the providers that translate: the chat request as clients
//! send it (borrowed from the parsed body where it can be), and the completion, chunk
//! and embedding objects clients expect back. Pass-through providers never parse these.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{Reply, Usage};
use crate::provider::TranslateError;

// ---------------------------------------------------------------------------------
// Requests

/// `POST /v1/chat/completions`, the fields translators read.
#[derive(Debug, Deserialize)]
pub struct ChatRequest<'a> {
    /// The conversation.
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    /// Legacy output limit.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Output limit (reasoning included).
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, borrow)]
    pub stop: Option<Stop<'a>>,
    /// Tools the model may call.
    #[serde(default, borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
    /// Whether and which tool the model must call.
    #[serde(default, borrow)]
    pub tool_choice: Option<ToolChoice<'a>>,
    /// Whether the model may call several tools at once.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Structured output.
    #[serde(default, borrow)]
    pub response_format: Option<ResponseFormat<'a>>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// End-user id.
    #[serde(default, borrow)]
    pub user: Option<Cow<'a, str>>,
    /// Number of choices.
    #[serde(default)]
    pub n: Option<u32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Reasoning effort for reasoning models (`low`, `medium`, `high`...).
    #[serde(default, borrow)]
    pub reasoning_effort: Option<Cow<'a, str>>,
}

impl ChatRequest<'_> {
    /// The output limit the client asked for, by either name.
    pub fn output_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Whether a streamed answer should end with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage == Some(true))
    }
}

/// `stream_options`.
#[derive(Debug, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with usage.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    /// Text or parts; absent on assistant messages that only call tools.
    #[serde(default, borrow)]
    pub content: Option<Content<'a>>,
    /// Tool calls an assistant message made.
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// For `tool` messages: the call answered.
    #[serde(default, borrow)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// Reasoning text a client sends back (`reasoning_content`), kept by some providers.
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
}

/// Message content: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content<'a> {
    /// Plain text.
    Text(#[serde(borrow)] Cow<'a, str>),
    /// Typed parts.
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

impl Content<'_> {
    /// All text parts joined (images and other parts skipped).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.to_string(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text } => Some(text.as_ref()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

/// One part of a message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part<'a> {
    /// Text.
    Text {
        /// The text.
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    /// An image by URL (`https:`) or data URL (`data:image/png;base64,...`).
    ImageUrl {
        /// The image.
        #[serde(borrow)]
        image_url: ImageUrl<'a>,
    },
    /// Anything else (audio, files...): providers refuse what they cannot take.
    #[serde(other)]
    Other,
}

/// `image_url`.
#[derive(Debug, Deserialize)]
pub struct ImageUrl<'a> {
    /// The URL.
    #[serde(borrow)]
    pub url: Cow<'a, str>,
}

/// An image given inline as a data URL.
#[derive(Debug, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// e.g. `image/png`.
    pub media_type: &'a str,
    /// The base64 payload.
    pub data: &'a str,
}

/// Splits `data:image/png;base64,AAAA` into its media type and base64 data.
pub fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(DataUrl { media_type, data })
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct ToolCall<'a> {
    /// The call's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The function called.
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
}

/// The function part of a tool call.
#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    /// Function name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Arguments as a JSON string.
    #[serde(default, borrow)]
    pub arguments: Cow<'a, str>,
}

/// A tool definition.
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// `function`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The function.
    #[serde(borrow)]
    pub function: FunctionDef<'a>,
}

/// A function the model may call.
#[derive(Debug, Deserialize)]
pub struct FunctionDef<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// What it does.
    #[serde(default, borrow)]
    pub description: Option<Cow<'a, str>>,
    /// JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `tool_choice`: a mode or a named function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice<'a> {
    /// `none`, `auto` or `required`.
    Mode(#[serde(borrow)] Cow<'a, str>),
    /// `{"type":"function","function":{"name":...}}`.
    Named {
        /// The function.
        #[serde(borrow)]
        function: NamedFunction<'a>,
    },
}

/// The named function of a `tool_choice`.
#[derive(Debug, Deserialize)]
pub struct NamedFunction<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `response_format`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat<'a> {
    /// Plain text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema.
        #[serde(borrow)]
        json_schema: JsonSchema<'a>,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize)]
pub struct JsonSchema<'a> {
    /// Schema name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Description.
    #[serde(default, borrow)]
    pub description: Option<Cow<'a, str>>,
    /// The JSON schema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Strict adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `stop`: one sequence or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop<'a> {
    /// One.
    One(#[serde(borrow)] Cow<'a, str>),
    /// Several.
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl Stop<'_> {
    /// The sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.to_string()],
            Stop::Many(v) => v.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `POST /v1/embeddings`, the fields translators read.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest<'a> {
    /// One text or several (token arrays are refused by translators).
    #[serde(borrow)]
    pub input: EmbeddingInput<'a>,
    /// `float` (default) or `base64`.
    #[serde(default, borrow)]
    pub encoding_format: Option<Cow<'a, str>>,
    /// Output dimensions, for models that can shorten.
    #[serde(default)]
    pub dimensions: Option<u32>,
}

/// Embedding input.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput<'a> {
    /// One text.
    One(#[serde(borrow)] Cow<'a, str>),
    /// Several texts.
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
    /// Token ids, which only OpenAI-compatible upstreams accept.
    Tokens(Value),
}

// ---------------------------------------------------------------------------------
// Responses

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
}

/// The function of a tool call.
#[derive(Debug, Serialize)]
pub struct FunctionOut {
    /// Name.
    pub name: String,
    /// Arguments as a JSON string.
    pub arguments: String,
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
pub struct UsageIn {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetailsIn>,
    #[serde(default)]
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

/// `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub struct ChatChunk<'a> {
    /// Response id, the same on every chunk.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds, the same on every chunk.
    pub created: u64,
    /// The upstream model.
    pub model: &'a str,
    /// Zero or one choice delta.
    pub choices: Vec<ChunkChoice>,
    /// Only on the final usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

/// A choice delta.
#[derive(Debug, Default, Serialize)]
pub struct ChunkChoice {
    /// Position.
    pub index: u32,
    /// What is new.
    pub delta: Delta,
    /// Always null.
    pub logprobs: Option<()>,
    /// Set on the last content chunk.
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool call pieces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

/// A piece of a streamed tool call: the first carries id and name, later ones more
/// argument text, all under the call's `index`.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta {
    /// Which call this piece belongs to (0, 1, ... in order of appearance).
    pub index: u32,
    /// Call id, on the first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on the first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Name and argument text.
    pub function: FunctionDelta,
}

/// The function piece of a tool call delta.
#[derive(Debug, Default, Serialize)]
pub struct FunctionDelta {
    /// Name, on the first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More argument text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

/// Writes the chunks of one stream, keeping its id, creation time and model.
#[derive(Debug)]
pub struct ChunkWriter {
    /// Response id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model.
    pub model: String,
}

impl ChunkWriter {
    /// A writer for a new stream.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        ChunkWriter {
            id: id.into(),
            created: unix_now(),
            model: model.into(),
        }
    }

    /// Writes a chunk with one choice.
    pub fn choice(&self, out: &mut BytesMut, delta: Delta, finish_reason: Option<&'static str>) {
        let chunk = ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: None,
        };
        write_event(out, &chunk);
    }

    /// Writes the final usage chunk (no choices).
    pub fn usage(&self, out: &mut BytesMut, usage: Usage) {
        let usage = WireUsage::from(usage);
        let chunk = ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(usage),
        };
        write_event(out, &chunk);
    }
}

/// A translated answer, serialized, with the usage it reports.
pub fn reply(answer: &impl Serialize, usage: Option<Usage>) -> Result<Reply, TranslateError> {
    let body = serde_json::to_vec(answer).map_err(TranslateError::malformed)?;
    Ok(Reply {
        body: Bytes::from(body),
        usage,
    })
}

/// Appends `data: {json}\n\n`.
pub fn write_event(out: &mut BytesMut, value: &impl Serialize) {
    out.put_slice(b"data: ");
    // Serializing our own plain structs into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), value);
    out.put_slice(b"\n\n");
}

/// Appends the stream's end marker.
pub fn write_done(out: &mut BytesMut) {
    out.put_slice(b"data: [DONE]\n\n");
}

/// Takes what was written, if anything.
pub fn take(out: &mut BytesMut) -> Option<Bytes> {
    (!out.is_empty()).then(|| out.split().freeze())
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

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_a_full_chat_request_borrowing_strings() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "stop": "END",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 9
        });
        let map = body.as_object().unwrap();
        let req = ChatRequest::deserialize(map).unwrap();
        assert_eq!(req.messages.len(), 4);
        assert!(matches!(req.messages[0].role, Cow::Borrowed("system")));
        let Some(Content::Parts(parts)) = &req.messages[1].content else {
            panic!()
        };
        assert!(matches!(parts[2], Part::Other));
        assert_eq!(req.stop.as_ref().unwrap().to_vec(), vec!["END"]);
        assert!(matches!(req.tool_choice, Some(ToolChoice::Named { .. })));
        assert!(matches!(
            req.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
        assert!(req.include_usage());
        assert_eq!(req.output_limit(), Some(9));
    }

    #[test]
    fn data_urls_split_into_media_type_and_data() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,/9j/4AAQ"),
            Some(DataUrl {
                media_type: "image/jpeg",
                data: "/9j/4AAQ"
            })
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hello"), None);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn chunks_and_usage_render_like_openai() {
        let w = ChunkWriter::new("id1", "m");
        let mut out = BytesMut::new();
        w.choice(
            &mut out,
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        );
        w.usage(
            &mut out,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                cached_tokens: 1,
                ..Usage::default()
            },
        );
        write_done(&mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        let first: Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert!(first["choices"][0]["finish_reason"].is_null());
        assert!(first.get("usage").is_none());
        let usage: Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
        assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(events[2], "data: [DONE]");
    }
}

//! Cohere v2 wire types, as its API reference gives them: `/v2/chat` request, response
//! and stream events, `/v2/embed`, and the error body.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v2/chat` body.
#[derive(Debug, Serialize)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
}

/// A chat message, by role.
#[derive(Debug, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message<'a> {
    System {
        content: Cow<'a, str>,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tool_plan: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall<'a>>,
    },
    Tool {
        tool_call_id: Cow<'a, str>,
        content: Cow<'a, str>,
    },
}

/// User content: a string, or parts when there are images.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum UserContent<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<UserPart<'a>>),
}

/// A user content part.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UserPart<'a> {
    Text { text: Cow<'a, str> },
    ImageUrl { image_url: ImageUrl<'a> },
}

/// An image by URL or data URL.
#[derive(Debug, Serialize)]
pub struct ImageUrl<'a> {
    pub url: &'a str,
}

/// A tool call in an assistant message.
#[derive(Debug, Serialize)]
pub struct ToolCall<'a> {
    pub id: Cow<'a, str>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall<'a>,
}

/// Function name and arguments (a JSON string, as in OpenAI's API).
#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    pub name: Cow<'a, str>,
    pub arguments: Cow<'a, str>,
}

/// A tool definition: the same shape as OpenAI's.
#[derive(Debug, Serialize)]
pub struct Tool<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionDef<'a>,
}

/// A function the model may call.
#[derive(Debug, Serialize)]
pub struct FunctionDef<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    pub parameters: Value,
}

/// `response_format`: `json_object`, optionally with a schema.
#[derive(Debug, Serialize)]
pub struct ResponseFormat {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
}

/// The chat response.
#[derive(Debug, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    #[serde(default)]
    pub finish_reason: Option<String>,
    pub message: ResponseMessage,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// The assistant message of a response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResponseMessage {
    pub content: Vec<ContentBlock>,
    pub tool_plan: Option<String>,
    pub tool_calls: Vec<ResponseToolCall>,
}

/// A content block: text, or a reasoning model's thinking.
#[derive(Debug, Deserialize)]
pub struct ContentBlock {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
}

/// A tool call the model made.
#[derive(Debug, Deserialize)]
pub struct ResponseToolCall {
    pub id: String,
    pub function: ResponseFunction,
}

/// Its function.
#[derive(Debug, Deserialize)]
pub struct ResponseFunction {
    pub name: String,
    #[serde(default)]
    pub arguments: String,
}

/// `usage`: billed units (what Cohere charges for) and raw tokens (prompt template
/// included), plus cached prompt tokens.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub billed_units: Option<Counts>,
    pub tokens: Option<Counts>,
    pub cached_tokens: Option<u64>,
}

/// Input and output counts.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// The usage, from billed units (what prices apply to), else raw tokens.
    pub fn to_usage(self) -> crate::domain::Usage {
        let counts = self.billed_units.or(self.tokens).unwrap_or_default();
        crate::domain::Usage {
            prompt_tokens: counts.input_tokens,
            completion_tokens: counts.output_tokens,
            cached_tokens: self.cached_tokens.unwrap_or(0),
            ..crate::domain::Usage::default()
        }
    }
}

/// `finish_reason` → OpenAI's; `ERROR` is handled by the callers as a failure.
pub fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some("TOOL_CALL") => "tool_calls",
        _ => "stop",
    }
}

/// A stream event (`data:` of each SSE event), by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StreamEvent {
    MessageStart {
        #[serde(default)]
        id: Option<String>,
    },
    ContentDelta {
        #[serde(default)]
        delta: EventDelta,
    },
    ToolPlanDelta {
        #[serde(default)]
        delta: EventDelta,
    },
    ToolCallStart {
        index: u32,
        #[serde(default)]
        delta: EventDelta,
    },
    ToolCallDelta {
        index: u32,
        #[serde(default)]
        delta: EventDelta,
    },
    MessageEnd {
        #[serde(default)]
        delta: EndDelta,
    },
    /// content-start/-end, tool-call-end, citation events and any later additions.
    #[serde(other)]
    Other,
}

/// `delta` of content and tool events.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventDelta {
    pub message: DeltaMessage,
}

/// `delta.message`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeltaMessage {
    pub content: Option<DeltaContent>,
    pub tool_plan: Option<String>,
    pub tool_calls: Option<DeltaToolCall>,
}

/// `delta.message.content`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeltaContent {
    pub text: Option<String>,
    pub thinking: Option<String>,
}

/// `delta.message.tool_calls`: one call, not a list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeltaToolCall {
    pub id: Option<String>,
    pub function: DeltaFunction,
}

/// Its function piece.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DeltaFunction {
    pub name: Option<String>,
    pub arguments: Option<String>,
}

/// `message-end`'s delta.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EndDelta {
    pub finish_reason: Option<String>,
    pub usage: Option<Usage>,
}

/// `POST /v2/embed` body, which Cohere Embed on Bedrock takes too (without `model`: it
/// travels in Bedrock's URL).
#[derive(Debug, Serialize)]
pub struct EmbedRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    pub texts: Vec<&'a str>,
    pub input_type: &'a str,
    pub embedding_types: [&'static str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimension: Option<u32>,
}

/// The embed response (by type).
#[derive(Debug, Deserialize)]
pub struct EmbedResponse {
    pub embeddings: EmbeddingsByType,
    #[serde(default)]
    pub meta: Option<EmbedMeta>,
}

/// `embeddings`: the type asked for is present.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmbeddingsByType {
    pub float: Option<Vec<Vec<f32>>>,
    pub base64: Option<Vec<String>>,
}

/// `meta`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EmbedMeta {
    pub billed_units: Option<BilledInput>,
}

/// `meta.billed_units`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BilledInput {
    pub input_tokens: u64,
}

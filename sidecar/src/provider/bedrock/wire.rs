//! Bedrock runtime wire types, as its API reference gives them: the Converse request
//! and response, the ConverseStream event payloads, and the InvokeModel bodies of the
//! Titan and Cohere embedding models. Content blocks are unions written as objects with
//! exactly one member (`{"text": ...}`, `{"toolUse": {...}}`), which serde's external
//! tagging produces.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::translate::CacheUsage;

/// `POST /model/{modelId}/converse` (and `converse-stream`) body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    pub messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<RequestMetadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "AdditionalFields::is_empty")]
    pub additional_model_request_fields: AdditionalFields<'a>,
}

/// One conversation turn; roles must alternate, starting with `user`.
#[derive(Debug, Serialize)]
pub struct Turn<'a> {
    pub role: &'static str,
    pub content: Vec<Block<'a>>,
}

/// A system prompt block.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemBlock<'a> {
    Text(Cow<'a, str>),
    CachePoint(CachePoint),
}

/// A message content block.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Block<'a> {
    Text(Cow<'a, str>),
    Image(Image<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
    CachePoint(CachePoint),
    ReasoningContent(ReasoningBlock<'a>),
}

/// A model's earlier reasoning sent back in its assistant turn: the text with the
/// signature it came with, or the encrypted (redacted) reasoning as Bedrock gave it
/// (base64).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ReasoningBlock<'a> {
    ReasoningText {
        text: Cow<'a, str>,
        signature: Cow<'a, str>,
    },
    RedactedContent(Cow<'a, str>),
}

/// `{"cachePoint":{"type":"default"}}`: Bedrock may cache the prompt up to here (the
/// system blocks, tools or message blocks before it).
#[derive(Debug, Serialize)]
pub struct CachePoint {
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl CachePoint {
    /// The one kind Bedrock has.
    pub const DEFAULT: CachePoint = CachePoint { kind: "default" };
}

/// An image given as bytes (base64 in JSON).
#[derive(Debug, Serialize)]
pub struct Image<'a> {
    pub format: &'static str,
    pub source: ImageSource<'a>,
}

/// Image bytes.
#[derive(Debug, Serialize)]
pub struct ImageSource<'a> {
    pub bytes: &'a str,
}

/// A tool call in an assistant turn.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub input: Value,
}

/// A tool's answer in a user turn.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub content: Vec<ResultBlock<'a>>,
}

/// Tool result content.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ResultBlock<'a> {
    Text(Cow<'a, str>),
    Image(Image<'a>),
}

/// `inferenceConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
}

impl InferenceConfig {
    pub fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    pub tools: Vec<ToolEntry<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice<'a>>,
}

/// One entry of `toolConfig.tools`: a tool, or a cache point after the tools before it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolEntry<'a> {
    ToolSpec(ToolSpec<'a>),
    CachePoint(CachePoint),
}

/// A tool's name, description and input schema.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    pub input_schema: InputSchema,
}

/// `inputSchema`: the JSON schema under `json`.
#[derive(Debug, Serialize)]
pub struct InputSchema {
    pub json: Value,
}

/// `toolChoice`: `{"auto":{}}`, `{"any":{}}` or `{"tool":{"name":...}}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool { name: Cow<'a, str> },
}

/// `{}`.
#[derive(Debug, Serialize)]
pub struct Empty {}

/// `outputConfig`: structured output, `{"textFormat": {"type": "json_schema",
/// "structure": {"jsonSchema": {"schema": "<the schema as a JSON string>", "name",
/// "description"}}}}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputConfig<'a> {
    pub text_format: TextFormat<'a>,
}

/// `outputConfig.textFormat`.
#[derive(Debug, Serialize)]
pub struct TextFormat<'a> {
    /// `json_schema`, the one type Bedrock has.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub structure: Structure<'a>,
}

/// `textFormat.structure`, a union of one member.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Structure<'a> {
    JsonSchema(JsonSchemaDefinition<'a>),
}

/// `structure.jsonSchema`: the schema travels as a string of JSON.
#[derive(Debug, Serialize)]
pub struct JsonSchemaDefinition<'a> {
    pub schema: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
}

/// `additionalModelRequestFields`: fields in the model's own request format, which
/// Converse passes on. Each family reads its own (see `models`).
#[derive(Debug, Default, Serialize)]
pub struct AdditionalFields<'a> {
    /// Claude's extended thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<ClaudeThinking>,
    /// Claude's `output_config`, for the effort of adaptive thinking.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_config: Option<ClaudeOutputConfig>,
    /// Claude's `tool_choice`, for `disable_parallel_tool_use`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ClaudeToolChoice<'a>>,
    /// Amazon Nova 2's reasoning.
    #[serde(rename = "reasoningConfig", skip_serializing_if = "Option::is_none")]
    pub reasoning_config: Option<NovaReasoning>,
    /// gpt-oss's reasoning effort.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<&'static str>,
}

impl AdditionalFields<'_> {
    pub fn is_empty(&self) -> bool {
        self.thinking.is_none()
            && self.output_config.is_none()
            && self.tool_choice.is_none()
            && self.reasoning_config.is_none()
            && self.reasoning_effort.is_none()
    }
}

/// Claude's `thinking`: `{"type":"enabled","budget_tokens":N}` or `{"type":"adaptive"}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClaudeThinking {
    Enabled { budget_tokens: u32 },
    Adaptive,
}

/// Claude's `output_config` (`effort`: `low`, `medium` or `high`).
#[derive(Debug, Serialize)]
pub struct ClaudeOutputConfig {
    pub effort: &'static str,
}

/// Claude's `tool_choice`, which, unlike Converse's `toolChoice`, can disable parallel
/// tool use. Sent instead of `toolChoice`: Bedrock refuses the two together.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClaudeToolChoice<'a> {
    Auto {
        disable_parallel_tool_use: bool,
    },
    Any {
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: Cow<'a, str>,
        disable_parallel_tool_use: bool,
    },
}

/// Nova 2's `reasoningConfig`: `{"type":"enabled","maxReasoningEffort":"low"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NovaReasoning {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub max_reasoning_effort: &'static str,
}

/// `requestMetadata`: string pairs recorded in Bedrock's invocation logs.
#[derive(Debug, Serialize)]
pub struct RequestMetadata<'a> {
    pub user: Cow<'a, str>,
}

/// The Converse response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    pub output: Output,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// `output`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Output {
    pub message: Option<OutMessage>,
}

/// `output.message`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct OutMessage {
    pub content: Vec<OutBlock>,
}

/// A response content block: one member set; unknown kinds leave all of these empty.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutBlock {
    pub text: Option<String>,
    pub tool_use: Option<ToolUseOut>,
    pub reasoning_content: Option<ReasoningOut>,
}

/// A tool call the model made.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseOut {
    pub tool_use_id: String,
    pub name: String,
    #[serde(default)]
    pub input: Value,
}

/// Reasoning content: `reasoningText`, or `redactedContent` (encrypted reasoning,
/// base64).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReasoningOut {
    pub reasoning_text: Option<ReasoningText>,
    pub redacted_content: Option<String>,
}

/// Reasoning text, signed by models that check it when it comes back (Claude).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReasoningText {
    pub text: String,
    pub signature: Option<String>,
}

/// Token usage, in responses and in the stream's `metadata` event. `inputTokens`
/// excludes tokens read from or written to the prompt cache.
pub type Usage = CacheUsage;

/// `stopReason` → `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        _ => "stop",
    }
}

/// `contentBlockStart`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    pub content_block_index: u32,
    #[serde(default)]
    pub start: StartBody,
}

/// What a block starts with; only tool use carries anything we need.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StartBody {
    pub tool_use: Option<ToolUseStart>,
}

/// A tool call's id and name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUseStart {
    pub tool_use_id: String,
    pub name: String,
}

/// `contentBlockDelta`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    pub content_block_index: u32,
    #[serde(default)]
    pub delta: DeltaBody,
}

/// A delta: text, tool input JSON text, or reasoning.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DeltaBody {
    pub text: Option<String>,
    pub tool_use: Option<ToolInputDelta>,
    pub reasoning_content: Option<ReasoningDelta>,
}

/// A piece of a tool call's input JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ToolInputDelta {
    pub input: String,
}

/// A reasoning delta: a piece of text, the signature that ends a block, or a block of
/// redacted reasoning.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ReasoningDelta {
    pub text: Option<String>,
    pub signature: Option<String>,
    pub redacted_content: Option<String>,
}

/// `messageStop`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MessageStop {
    pub stop_reason: Option<String>,
}

/// `metadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    pub usage: Option<Usage>,
}

/// An error body or exception payload: `{"message": ...}` (some AWS front ends write
/// `Message`).
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    #[serde(default, alias = "Message")]
    pub message: Option<String>,
}

/// Titan Text Embeddings (v1 and v2) request: one text per call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanRequest<'a> {
    pub input_text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// Titan's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TitanResponse {
    pub embedding: Vec<f32>,
    #[serde(default)]
    pub input_text_token_count: u64,
}

/// Cohere Embed on Bedrock answer: `embeddings` is a list of vectors
/// (`embeddings_floats`) or `{"float": [...]}` (`embeddings_by_type`).
#[derive(Debug, Deserialize)]
pub struct CohereEmbedResponse {
    pub embeddings: CohereEmbeddings,
}

/// The two shapes of `embeddings`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CohereEmbeddings {
    Floats(Vec<Vec<f32>>),
    ByType { float: Vec<Vec<f32>> },
}

//! Gemini API / Vertex AI wire types, as Google's API references give them
//! (`GenerateContentRequest`, `GenerateContentResponse`, embeddings, errors). Both APIs
//! share these bodies; Vertex embeds text through `predict` instead.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---------------------------------------------------------------------------------
// generateContent request

/// `generateContent` / `streamGenerateContent` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateRequest<'a> {
    pub contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    pub generation_config: GenerationConfig,
}

/// A turn: `user` or `model` (the system instruction has no role).
#[derive(Debug, Serialize)]
pub struct Content<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    pub parts: Vec<PartOut<'a>>,
}

/// A request part: exactly one kind of data.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PartOut<'a> {
    Text(Cow<'a, str>),
    InlineData(Blob<'a>),
    FileData(FileData<'a>),
    FunctionResponse(FunctionResponse<'a>),
    /// `{"functionCall": …, "thoughtSignature": …}`: the signature is the part's, not
    /// the call's.
    #[serde(untagged)]
    Call(CallPart<'a>),
}

/// A `functionCall` part, with the thought signature it was answered with.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallPart<'a> {
    pub function_call: FunctionCall<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<Cow<'a, str>>,
}

/// Inline bytes, base64 in JSON.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blob<'a> {
    pub mime_type: &'a str,
    pub data: &'a str,
}

/// A file by URI (Cloud Storage on Vertex, the Files API on AI Studio).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData<'a> {
    pub mime_type: &'a str,
    pub file_uri: &'a str,
}

/// A call the model made, sent back in history.
#[derive(Debug, Serialize)]
pub struct FunctionCall<'a> {
    pub name: Cow<'a, str>,
    pub args: Value,
}

/// A function's result; `response` must be a JSON object.
#[derive(Debug, Serialize)]
pub struct FunctionResponse<'a> {
    pub name: Cow<'a, str>,
    pub response: Value,
}

/// A tool: function declarations only (Google's built-in tools are not exposed).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool<'a> {
    pub function_declarations: Vec<FunctionDeclaration<'a>>,
}

/// A function the model may call.
#[derive(Debug, Serialize)]
pub struct FunctionDeclaration<'a> {
    pub name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Cow<'a, str>>,
    /// An OpenAPI-subset schema; left out for functions without parameters, as Gemini
    /// refuses an object schema with no properties.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
}

/// `toolConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    pub function_calling_config: FunctionCallingConfig<'a>,
}

/// `functionCallingConfig`: `AUTO`, `ANY` (must call, optionally from a list) or `NONE`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionCallingConfig<'a> {
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_function_names: Vec<Cow<'a, str>>,
}

/// `generationConfig`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationConfig {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig {
    fn is_empty(&self) -> bool {
        self.stop_sequences.is_empty()
            && self.response_mime_type.is_none()
            && self.response_schema.is_none()
            && self.candidate_count.is_none()
            && self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.thinking_config.is_none()
    }
}

/// `thinkingConfig`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    pub include_thoughts: bool,
    pub thinking_budget: u32,
}

// ---------------------------------------------------------------------------------
// generateContent response

/// One `GenerateContentResponse`: a whole answer, or one chunk of a stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GenerateResponse {
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
}

/// A candidate answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Candidate {
    /// Absent on candidates blocked by safety filters.
    pub content: Option<ResponseContent>,
    pub finish_reason: Option<String>,
    /// Vertex leaves the default 0 out.
    pub index: Option<u32>,
}

/// A candidate's content.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResponseContent {
    pub parts: Vec<ResponsePart>,
}

/// A response part. Only the fields translated are read; others (code execution,
/// inline media) are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ResponsePart {
    pub text: Option<String>,
    /// Set on thought-summary parts.
    pub thought: Option<bool>,
    pub function_call: Option<FunctionCallIn>,
    /// Opaque; to be sent back on the same part (see `signature`).
    pub thought_signature: Option<String>,
}

/// A function call the model made; Gemini gives ids only in some versions.
#[derive(Debug, Deserialize)]
pub struct FunctionCallIn {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub args: Option<Value>,
}

/// Why the prompt was refused, when no candidates came back.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PromptFeedback {
    pub block_reason: Option<String>,
}

/// `usageMetadata`. In streams each chunk carries the counts so far; the last is final.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageMetadata {
    pub prompt_token_count: u64,
    /// Visible output only: thoughts are counted apart.
    pub candidates_token_count: u64,
    pub thoughts_token_count: u64,
    /// Prompt tokens served from the context cache (included in the prompt count).
    pub cached_content_token_count: u64,
    /// Prompt tokens of tool results Google added (search, code execution).
    pub tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's usage: completion tokens include thinking, as OpenAI counts reasoning
    /// tokens inside `completion_tokens`.
    pub fn to_usage(self) -> crate::domain::Usage {
        crate::domain::Usage {
            prompt_tokens: self
                .prompt_token_count
                .saturating_add(self.tool_use_prompt_token_count),
            completion_tokens: self
                .candidates_token_count
                .saturating_add(self.thoughts_token_count),
            cached_tokens: self.cached_content_token_count,
            cache_write_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

/// Maps a Gemini `finishReason` to OpenAI's `finish_reason`; calls override it.
pub fn finish_reason(reason: Option<&str>, called_tools: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "IMAGE_PROHIBITED_CONTENT"
            | "IMAGE_RECITATION",
        ) => "content_filter",
        // Gemini ends a turn of function calls with STOP: it has no reason of its own.
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

// ---------------------------------------------------------------------------------
// Embeddings

/// `embedContent` body (also one element of `batchEmbedContents.requests`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedRequest<'a> {
    /// `models/{model}`: required inside a batch, left out of a single call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    pub content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_dimensionality: Option<u32>,
}

/// `batchEmbedContents` body.
#[derive(Debug, Serialize)]
pub struct BatchEmbedRequest<'a> {
    pub requests: Vec<EmbedRequest<'a>>,
}

/// Vertex `predict` body for text embedding models.
#[derive(Debug, Serialize)]
pub struct PredictRequest<'a> {
    pub instances: Vec<PredictInstance<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<PredictParameters>,
}

/// One text to embed.
#[derive(Debug, Serialize)]
pub struct PredictInstance<'a> {
    pub content: &'a str,
}

/// `predict` parameters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictParameters {
    pub output_dimensionality: u32,
}

/// An embeddings answer of any of the three methods.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbedResponse {
    /// `embedContent`.
    Single {
        embedding: Values,
        #[serde(default, rename = "usageMetadata")]
        usage_metadata: Option<EmbedUsage>,
    },
    /// `batchEmbedContents`.
    Batch {
        embeddings: Vec<Values>,
        #[serde(default, rename = "usageMetadata")]
        usage_metadata: Option<EmbedUsage>,
    },
    /// Vertex `predict`.
    Predict { predictions: Vec<Prediction> },
}

/// `EmbeddingUsageMetadata` of the Gemini API's embedding answers; older API surfaces
/// leave it out.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbedUsage {
    pub prompt_token_count: Option<u64>,
}

/// An embedding vector.
#[derive(Debug, Deserialize)]
pub struct Values {
    pub values: Vec<f32>,
}

/// One `predict` result.
#[derive(Debug, Deserialize)]
pub struct Prediction {
    pub embeddings: PredictedEmbedding,
}

/// The embedding and its statistics.
#[derive(Debug, Deserialize)]
pub struct PredictedEmbedding {
    pub values: Vec<f32>,
    #[serde(default)]
    pub statistics: Option<Statistics>,
}

/// Token statistics of one `predict` input. The wire uses `token_count` although the
/// REST reference spells it `tokenCount`; both are read.
#[derive(Debug, Deserialize)]
pub struct Statistics {
    #[serde(default, alias = "tokenCount")]
    pub token_count: u64,
}

// ---------------------------------------------------------------------------------
// Errors

/// Google's error body, `{"error": {"code", "message", "status", "details"}}`.
#[derive(Debug, Deserialize)]
pub struct ErrorEnvelope {
    pub error: GoogleError,
}

/// The error object.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GoogleError {
    pub message: String,
    pub status: Option<String>,
    pub details: Vec<Value>,
}

impl GoogleError {
    /// The `reason` of an `ErrorInfo` detail, e.g. `API_KEY_INVALID`.
    pub fn reason(&self) -> Option<&str> {
        self.details
            .iter()
            .find_map(|d| d.get("reason").and_then(Value::as_str))
    }

    /// The `retryDelay` of the `google.rpc.RetryInfo` detail, a protobuf `Duration`
    /// in its JSON form (`34s`, `0.5s`).
    pub fn retry_delay(&self) -> Option<&str> {
        self.details.iter().find_map(|d| {
            let info = d
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("/google.rpc.RetryInfo"));
            info.then(|| d.get("retryDelay").and_then(Value::as_str))
                .flatten()
        })
    }
}

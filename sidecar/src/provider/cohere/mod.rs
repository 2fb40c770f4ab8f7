//! Cohere's v2 API behind OpenAI's: chat completions through `POST /v2/chat` (JSON, or
//! server-sent events with `"stream": true`) and embeddings through `POST /v2/embed`,
//! with the API key as a bearer token.
//!
//! Mapping, OpenAI → Cohere:
//! - `system`/`developer` → `system` messages; `user` → `user` (text, or text and
//!   `image_url` parts, passed as they are); `assistant` → `assistant` with `tool_calls`
//!   (arguments stay a JSON string); an assistant's text next to tool calls becomes its
//!   `tool_plan`; `tool` → `tool` messages with `tool_call_id`;
//! - `max_completion_tokens`/`max_tokens` → `max_tokens`, `temperature`, `top_p` → `p`,
//!   `stop` → `stop_sequences`, `seed`, `frequency_penalty`, `presence_penalty`;
//! - `tools` → `tools` (the same function shape); `tool_choice` required → `REQUIRED`,
//!   none → `NONE`, auto → omitted; a named function → only that tool is sent, with
//!   `REQUIRED` (Cohere cannot name one);
//! - `response_format` json_object / json_schema → `{"type": "json_object"}` with the
//!   schema as `json_schema`;
//! - unsupported (400, or dropped with `dropUnsupportedParams`): `parallel_tool_calls`,
//!   `logprobs`, `user`, `reasoning_effort`; `n` must be 1.
//!
//! Cohere → OpenAI: text content → `content` (a tool plan becomes the content of a
//! message that calls tools), thinking → `reasoning_content`, `tool_calls` → `tool_calls`;
//! `finish_reason` COMPLETE/STOP_SEQUENCE → stop, MAX_TOKENS → length, TOOL_CALL →
//! tool_calls, ERROR → a failed answer (502, retried); usage from `billed_units` (what
//! Cohere charges; `tokens` also counts its prompt template), `cached_tokens` →
//! `prompt_tokens_details.cached_tokens`.
//!
//! Embeddings: `input` → `texts`, `input_type` (an llmesh extension field, default
//! `search_document`), `dimensions` → `output_dimension`, `encoding_format` float/base64
//! → `embedding_types` `float`/`base64` (Cohere's base64 is OpenAI's: little-endian f32s).

mod request;
mod response;
mod stream;
mod wire;

pub(crate) use wire::EmbedRequest;

use crate::provider::translate::{no_completions, params};

use std::sync::Arc;

use bytes::Bytes;
use http::{StatusCode, Uri};

use super::{
    BuildError, Credential, Dialect, Prepared, StreamTranslator, TranslateError, UnsignedRequest,
    api_key, join,
};
use crate::config::snapshot::DeploymentSpec;
use crate::domain::{CallView, Endpoint, Reply, UpstreamError};

/// Cohere's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";

/// OpenAI chat parameters Cohere can honour.
const CHAT_PARAMS: &[&str] = chat_params![
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "response_format"
];

/// OpenAI embedding parameters (plus `input_type`) Cohere can honour.
const EMBEDDING_PARAMS: &[&str] = &["input", "encoding_format", "dimensions", "input_type"];

/// Dialect and bearer credential for a Cohere deployment.
pub fn build(spec: &DeploymentSpec) -> Result<Prepared, BuildError> {
    let base = spec.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
    let chat = join(base, "/v2/chat", None)?;
    let embed = join(base, "/v2/embed", None)?;
    let key = api_key(spec, "apiKey is required for cohere")?;
    Ok(Prepared {
        dialect: Arc::new(Cohere { chat, embed }),
        credential: Credential::bearer(key)?,
    })
}

/// The Cohere dialect.
#[derive(Debug)]
pub struct Cohere {
    chat: Uri,
    embed: Uri,
}

impl Dialect for Cohere {
    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        params(endpoint, CHAT_PARAMS, EMBEDDING_PARAMS)
    }

    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        match call.endpoint {
            Endpoint::ChatCompletions => {
                Ok(super::post_json(self.chat.clone(), request::chat(call)?))
            }
            Endpoint::Embeddings => Ok(super::post_json(self.embed.clone(), request::embed(call)?)),
            _ => Err(no_completions("Cohere deployments")),
        }
    }

    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Reply, TranslateError> {
        match call.endpoint {
            Endpoint::Embeddings => response::embed(call, &body),
            _ => response::chat(call, &body),
        }
    }

    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        Box::new(stream::translator(call))
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        response::error(status, body)
    }
}

#[cfg(test)]
mod tests;

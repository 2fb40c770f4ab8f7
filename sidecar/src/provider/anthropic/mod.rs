//! Anthropic's Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`)
//! behind OpenAI's chat completions.
//!
//! Mapping, OpenAI → Anthropic:
//! - `system`/`developer` messages → top-level `system` text blocks;
//! - `user`/`assistant` turns → messages, consecutive same-role turns merged;
//! - assistant `thinking_blocks` (an llmesh extension: `thinking` with its `signature`,
//!   `redacted_thinking` with its `data`) → `thinking`/`redacted_thinking` blocks first in
//!   the assistant turn, so signed reasoning returns to Anthropic (unsigned ones are left
//!   out);
//!   `tool` messages → `tool_result` blocks in a user turn (parallel results merged);
//! - assistant `tool_calls` → `tool_use` blocks (arguments parsed into `input`);
//! - `image_url`: data URLs → base64 sources, http(s) URLs → url sources;
//! - `cache_control` on text and image parts and on tools → the same mark on the
//!   Anthropic block or tool (an empty text part's mark goes to the block before it);
//! - `max_completion_tokens`/`max_tokens` → `max_tokens` (required by Anthropic: the
//!   model's `defaultMaxTokens`, else 4096), `temperature`, `top_p`, `stop` →
//!   `stop_sequences`, `user` → `metadata.user_id`;
//! - `tools` → `tools` (`parameters` → `input_schema`), `tool_choice` auto/none/required/
//!   named → auto/none/any/tool, `parallel_tool_calls: false` →
//!   `disable_parallel_tool_use`;
//! - `response_format` json_schema/json_object → a forced tool whose input is the JSON
//!   answer, returned to the client as the message content;
//! - `reasoning_effort` low/medium/high → `thinking` with a budget of 1024/4096/16384
//!   tokens, and the `thinking` extension field (`{"type":"enabled","budget_tokens"}`)
//!   → the same with its budget (adaptive: 4096), raising `max_tokens` above the budget
//!   when needed (see `provider::reasoning`).
//!
//! Anthropic → OpenAI: text blocks → `content`; `thinking` blocks →
//! `reasoning_content`, and with their signatures, as redacted thinking blocks are, →
//! `thinking_blocks` (streamed as a `thinking_blocks` delta per signature or redacted
//! block, the text having come as `reasoning_content`); `tool_use` → `tool_calls`;
//! `stop_reason` end_turn/stop_sequence/pause_turn → stop, max_tokens → length,
//! tool_use → tool_calls, refusal → content_filter; usage: `prompt_tokens` =
//! input + cache creation + cache read tokens, `cached_tokens` = cache reads.

pub mod native;
mod request;
mod response;
mod stream;
mod wire;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{StatusCode, Uri};

use super::{
    BuildError, Credential, Dialect, Prepared, StreamTranslator, TranslateError, UnsignedRequest,
    api_key, join,
};

use serde_json::Value;

use super::translate::Patched;
use crate::config::snapshot::DeploymentSpec;
use crate::domain::{CallView, Endpoint, Reply, UpstreamError};

/// Anthropic's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version sent when the deployment names none.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// `max_tokens` when neither the client nor the model config gives one.
pub const FALLBACK_MAX_TOKENS: u32 = 4096;

/// OpenAI chat parameters Anthropic can honour.
const CHAT_PARAMS: &[&str] = chat_params![
    "parallel_tool_calls",
    "response_format",
    "user",
    "reasoning_effort",
    "thinking"
];

/// Dialect and `x-api-key` credential for an Anthropic deployment.
pub fn build(spec: &DeploymentSpec) -> Result<Prepared, BuildError> {
    let base = spec.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
    let uri = join(base, "/v1/messages", None)?;
    let count_uri = join(base, "/v1/messages/count_tokens", None)?;
    let version = spec.api_version.as_deref().unwrap_or(DEFAULT_VERSION);
    let version = HeaderValue::from_str(version)
        .map_err(|_| format!("apiVersion {version:?} is not a valid header value"))?;
    let key = api_key(spec, "apiKey is required for anthropic")?;
    Ok(Prepared {
        dialect: Arc::new(Anthropic {
            uri,
            count_uri: Some(count_uri),
            version,
            vertex_stream: None,
        }),
        credential: Credential::key_header("x-api-key", key)?,
    })
}

/// The Anthropic dialect.
#[derive(Debug)]
pub struct Anthropic {
    uri: Uri,
    /// Where tokens are counted, where the platform has it.
    count_uri: Option<Uri>,
    version: HeaderValue,
    /// Claude on Vertex AI: the streaming URL (`:streamRawPredict`; whole answers use
    /// `uri`, `:rawPredict`).
    vertex_stream: Option<Uri>,
}

/// The `anthropic_version` Claude on Vertex AI takes in the body.
pub const VERTEX_VERSION: &str = "vertex-2023-10-16";

/// Claude on Vertex AI: the Messages API at `{base}:rawPredict` and
/// `{base}:streamRawPredict`, where `base` is the model's
/// `.../publishers/anthropic/models/{model}` URL, with Google credentials.
pub fn build_vertex(base: &str, credential: Credential) -> Result<Prepared, BuildError> {
    let at = |method: &str| -> Result<Uri, BuildError> {
        format!("{base}:{method}")
            .parse()
            .map_err(|e| BuildError::Invalid(format!("invalid Vertex AI URL: {e}")))
    };
    Ok(Prepared {
        dialect: Arc::new(Anthropic {
            uri: at("rawPredict")?,
            count_uri: None,
            version: HeaderValue::from_static(DEFAULT_VERSION),
            vertex_stream: Some(at("streamRawPredict")?),
        }),
        credential,
    })
}

impl Anthropic {
    /// A POST of `body` to `uri` with Anthropic's headers (Vertex AI takes the version
    /// in the body).
    fn post(&self, uri: &Uri, body: Vec<u8>, beta: Option<&str>) -> UnsignedRequest {
        let mut request = super::post_json(uri.clone(), body);
        let headers = request.headers_mut();
        if self.vertex_stream.is_none() {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                self.version.clone(),
            );
        }
        if let Some(beta) = beta.and_then(|b| HeaderValue::from_str(b).ok()) {
            headers.insert(HeaderName::from_static("anthropic-beta"), beta);
        }
        request
    }
}

impl Dialect for Anthropic {
    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        match endpoint {
            Endpoint::ChatCompletions => Some(CHAT_PARAMS),
            // Messages pass through: Anthropic judges its own API's fields.
            Endpoint::Messages => None,
            _ => Some(&[]),
        }
    }

    fn native(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::Messages || Endpoint::OPENAI.contains(&endpoint)
    }

    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        let vertex = self.vertex_stream.as_ref().map(|_| VERTEX_VERSION);
        let body = match (call.endpoint, vertex) {
            (Endpoint::Messages, None) => Patched {
                body: call.body,
                set: &[("model", Value::from(call.model))],
                skip: &[],
            }
            .to_vec()?,
            (Endpoint::Messages, Some(version)) => Patched {
                body: call.body,
                set: &[("anthropic_version", Value::from(version))],
                skip: &["model"],
            }
            .to_vec()?,
            _ => request::translate_for(call, vertex)?,
        };
        let uri = match &self.vertex_stream {
            Some(stream) if call.stream => stream,
            _ => &self.uri,
        };
        Ok(self.post(uri, body, call.anthropic_beta))
    }

    fn count_tokens(&self, call: &CallView<'_>) -> Option<Result<UnsignedRequest, TranslateError>> {
        let count_uri = self.count_uri.as_ref()?;
        let body = Patched {
            body: call.body,
            set: &[("model", Value::from(call.model))],
            skip: &[],
        }
        .to_vec();
        Some(body.map(|body| self.post(count_uri, body, call.anthropic_beta)))
    }

    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Reply, TranslateError> {
        match call.endpoint {
            Endpoint::Messages => native::reply(body),
            _ => response::translate(call, &body),
        }
    }

    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        match call.endpoint {
            Endpoint::Messages => Box::new(native::passthrough()),
            _ => Box::new(stream::translator(call)),
        }
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        response::error(status, body)
    }
}

#[cfg(test)]
mod tests;

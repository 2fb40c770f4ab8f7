//! AWS Bedrock behind OpenAI's API: chat completions through the Converse API
//! (`POST /model/{modelId}/converse`, or `/converse-stream` for streams, answered in the
//! binary `application/vnd.amazon.eventstream` framing), embeddings through InvokeModel
//! (`/model/{modelId}/invoke`) for Amazon Titan Text Embeddings and Cohere Embed. The
//! model id (a foundation model, an inference profile id or an ARN) is percent-encoded
//! as one path segment. Requests are signed with SigV4 (service `bedrock`) from the
//! deployment's AWS credentials (a Secret's keys, or with `workloadIdentity` the pod's
//! IAM role, see `identity::aws`) and region, or carry a Bedrock API key as a bearer
//! token.
//!
//! Mapping, OpenAI → Converse:
//! - `system`/`developer` messages → `system` text blocks;
//! - `user`/`assistant` turns → `messages` with content blocks, consecutive same-role
//!   turns merged (Bedrock requires alternation); `tool` messages → `toolResult` blocks
//!   in a user turn (parallel results merged, ahead of other user blocks);
//! - assistant `tool_calls` → `toolUse` blocks (arguments parsed into `input`);
//! - assistant `thinking_blocks` (signed reasoning, see `provider::bridge`) →
//!   `reasoningContent` blocks first in the turn, for Claude (`reasoningText` with its
//!   `signature`; `redactedContent`); unsigned ones and other models' are left out;
//! - `image_url` data URLs → `image` blocks with the bytes (png/jpeg/gif/webp); http(s)
//!   URLs are fetched by the router beforehand (`router::images`, as the model's
//!   `imageFetch` allows) and arrive here as data URLs; with fetching off, a 400;
//! - `max_completion_tokens`/`max_tokens` → `inferenceConfig.maxTokens`, `temperature`,
//!   `top_p` → `topP`, `stop` → `stopSequences`; `user` → `requestMetadata.user`;
//! - `cache_control` on a content part, system part or tool → a `cachePoint` block
//!   right after the block it marks (see `request.rs`);
//! - `tools` → `toolConfig.tools[].toolSpec` (`parameters` → `inputSchema.json`),
//!   `tool_choice` auto/required/named → `auto`/`any`/`tool`; `none` leaves the tools out
//!   (Bedrock has no `none`) unless the conversation holds tool blocks, which Bedrock only
//!   accepts with a `toolConfig`; `parallel_tool_calls: false` → Claude's own
//!   `tool_choice` with `disable_parallel_tool_use` in `additionalModelRequestFields`
//!   (other models: unsupported) (see `tools.rs`);
//! - `reasoning_effort` and the `thinking` extension → the model family's reasoning
//!   configuration in `additionalModelRequestFields`: Claude's `thinking` (a budget, or
//!   adaptive from Claude 4.6), Nova 2's `reasoningConfig`, gpt-oss's
//!   `reasoning_effort`; other models: unsupported (see `options.rs`, `models.rs`);
//! - `response_format` → `outputConfig.textFormat` (native structured output) for a
//!   strict `json_schema` on Claude 4.5 and later; otherwise a forced tool
//!   `json_response` whose input is returned as the message content (see
//!   `options.rs` for why);
//! - unsupported (400, or dropped with `dropUnsupportedParams`): `seed`, penalties,
//!   `logprobs`, and the value-level refusals above; `n` must be 1.
//!
//! Converse → OpenAI: text blocks → `content`, `reasoningContent` → `reasoning_content`
//! and, signed or redacted, `thinking_blocks` (streamed as a `thinking_blocks` delta per
//! signature or redacted block, the text having come as `reasoning_content`), `toolUse`
//! → `tool_calls`, except the JSON tool's, whose input is the `content` (streamed as
//! content deltas); `stopReason` end_turn/stop_sequence → stop, max_tokens → length,
//! tool_use → tool_calls (stop when only the JSON tool was called),
//! guardrail_intervened/content_filtered → content_filter; usage: `prompt_tokens` =
//! input + cache read + cache write tokens, `cached_tokens` = cache reads,
//! `cache_creation_tokens` = cache writes. Converse answers carry no id, so one is
//! generated.
//!
//! Anthropic's Messages API (`/v1/messages`) on Claude models is served natively through
//! InvokeModel, the body passing through (see [`messages`]); on other models it goes
//! through the chat bridge and Converse.
//!
//! Embeddings: Titan takes one text per call, with `dimensions` and `normalize: true`
//! (V2), so several inputs are sent as one call each, concurrently, and merged in order
//! (see `embed.rs`); Cohere takes the list, `input_type` (an llmesh extension field,
//! default `search_document`) and `dimensions` → `output_dimension`.
//! `encoding_format: base64` is encoded by the sidecar.

mod embed;
pub mod eventstream;
pub mod messages;
mod models;
mod options;
mod request;
mod response;
pub mod sigv4;
mod stream;
mod tools;
mod wire;

use crate::provider::translate::{no_completions, params};

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;
use http::StatusCode;

use super::identity::Fixed;
use super::{
    BuildError, Credential, Dialect, Prepared, ProviderContext, StreamTranslator, TranslateError,
    UnsignedRequest, join,
};

use crate::config::snapshot::DeploymentSpec;
use crate::domain::{CallView, Endpoint, Reply, UpstreamError};

/// The AWS service name requests are signed for.
pub const SERVICE: &str = "bedrock";

/// The provider's name in refusals.
const PROVIDER: &str = "bedrock";

/// OpenAI chat parameters Converse can honour (the last four on some models only: a
/// model without the feature refuses them as unsupported when it translates the call).
const CHAT_PARAMS: &[&str] = chat_params![
    "user",
    "response_format",
    "reasoning_effort",
    "thinking",
    "parallel_tool_calls"
];

/// OpenAI embedding parameters (plus Cohere's `input_type`) InvokeModel can honour.
const EMBEDDING_PARAMS: &[&str] = &["input", "encoding_format", "dimensions", "input_type"];

/// The runtime endpoint of a region.
pub fn default_base_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// Dialect and credential (SigV4, or a Bedrock API key) for a Bedrock deployment.
pub fn build(spec: &DeploymentSpec, ctx: &ProviderContext) -> Result<Prepared, BuildError> {
    let region = spec
        .region
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or(BuildError::Missing(
            "region is required for bedrock (e.g. us-east-1)",
        ))?;
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!("region {region:?} is not an AWS region name").into());
    }
    if spec.model.is_empty() {
        return Err("model must be a Bedrock model id, inference profile id or ARN".into());
    }
    let base = spec
        .base_url
        .clone()
        .unwrap_or_else(|| default_base_url(region));
    // Checked once here, so building each request's URL cannot fail later.
    join(&base, "/model/m/converse", None)?;
    let signer = || Arc::new(sigv4::Signer::new(region, SERVICE));
    let credential = match (spec.workload_identity, &spec.aws, &spec.api_key) {
        (Some(identity), None, None) => Credential::SigV4(
            signer(),
            super::identity::aws::source(identity, region, ctx)?,
        ),
        (Some(_), _, _) => {
            return Err(
                "workloadIdentity replaces awsCredentialsSecretRef and apiKeySecretRef: set one"
                    .into(),
            );
        }
        (None, Some(aws), _) => Credential::SigV4(
            signer(),
            Arc::new(Fixed(Arc::new(sigv4::Keys::from_secret(aws)?))),
        ),
        (None, None, Some(key)) => Credential::bearer(key.expose())?,
        (None, None, None) => {
            return Err(
                "bedrock needs AWS credentials (awsCredentialsSecretRef), a Bedrock API key \
                 (apiKeySecretRef) or workloadIdentity"
                    .into(),
            );
        }
    };
    Ok(Prepared {
        dialect: Arc::new(Bedrock {
            base: base.trim_end_matches('/').to_owned(),
            claude: messages::is_claude(&spec.model),
        }),
        credential,
    })
}

/// The Bedrock dialect.
#[derive(Debug)]
pub struct Bedrock {
    base: String,
    /// The deployment's model is Claude, which serves Messages natively.
    claude: bool,
}

impl Bedrock {
    fn request_to(
        &self,
        model: &str,
        operation: &str,
        body: Vec<u8>,
        accept: &'static str,
    ) -> Result<UnsignedRequest, TranslateError> {
        let path = format!("/model/{}/{operation}", sigv4::uri_encode(model));
        let uri = join(&self.base, &path, None).map_err(|e| TranslateError::invalid("model", e))?;
        let mut request = super::post_json(uri, body);
        request
            .headers_mut()
            .insert(http::header::ACCEPT, HeaderValue::from_static(accept));
        Ok(request)
    }
}

impl Dialect for Bedrock {
    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        match endpoint {
            // Messages pass through to Claude, which judges its own API's fields.
            Endpoint::Messages if self.claude => None,
            _ => params(endpoint, CHAT_PARAMS, EMBEDDING_PARAMS),
        }
    }

    fn native(&self, endpoint: Endpoint) -> bool {
        (self.claude && endpoint == Endpoint::Messages) || Endpoint::OPENAI.contains(&endpoint)
    }

    /// Converse and Claude's InvokeModel take images only as bytes.
    fn fetches_images(&self, endpoint: Endpoint) -> bool {
        matches!(endpoint, Endpoint::ChatCompletions | Endpoint::Messages)
    }

    fn needs_image_bytes(&self, endpoint: Endpoint, _url: &str) -> bool {
        self.fetches_images(endpoint)
    }

    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        match call.endpoint {
            Endpoint::ChatCompletions => {
                let body = request::chat(call)?;
                if call.stream {
                    self.request_to(
                        call.model,
                        "converse-stream",
                        body,
                        "application/vnd.amazon.eventstream",
                    )
                } else {
                    self.request_to(call.model, "converse", body, "application/json")
                }
            }
            Endpoint::Embeddings => {
                let body = request::embeddings(call)?;
                self.request_to(call.model, "invoke", body, "application/json")
            }
            Endpoint::Messages if self.claude => {
                let body = messages::body(call)?;
                if call.stream {
                    self.request_to(
                        call.model,
                        "invoke-with-response-stream",
                        body,
                        "application/vnd.amazon.eventstream",
                    )
                } else {
                    self.request_to(call.model, "invoke", body, "application/json")
                }
            }
            _ => Err(no_completions("Bedrock deployments")),
        }
    }

    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Reply, TranslateError> {
        match call.endpoint {
            Endpoint::Embeddings => response::embeddings(call, &body),
            Endpoint::Messages => crate::provider::anthropic::native::reply(body),
            _ => response::chat(call, &body),
        }
    }

    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        match call.endpoint {
            Endpoint::Messages => Box::new(messages::Stream::default()),
            _ => Box::new(stream::Translator::new(call)),
        }
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        response::error(status, body)
    }

    fn split(&self, call: &CallView<'_>) -> Result<Option<Vec<UnsignedRequest>>, TranslateError> {
        let Some(bodies) = embed::split(call)? else {
            return Ok(None);
        };
        bodies
            .into_iter()
            .map(|body| self.request_to(call.model, "invoke", body, "application/json"))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn merge(&self, call: &CallView<'_>, answers: Vec<Bytes>) -> Result<Reply, TranslateError> {
        embed::merge(call, &answers)
    }
}

#[cfg(test)]
mod messages_tests;
#[cfg(test)]
mod options_tests;
#[cfg(test)]
mod tests;

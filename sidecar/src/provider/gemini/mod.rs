//! Google's Gemini models behind OpenAI's chat completions and embeddings, through
//! either API that serves them:
//!
//! - **Gemini API** (AI Studio, provider `gemini`):
//!   `{base}/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
//!   `:embedContent`, `:batchEmbedContents` (see `embed.rs`); base
//!   `https://generativelanguage.googleapis.com/v1beta`; the key in `x-goog-api-key`.
//! - **Vertex AI** (provider `vertex`): the same bodies at
//!   `https://{region}-aiplatform.googleapis.com/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent`
//!   (host `aiplatform.googleapis.com` for region `global`); text embeddings through
//!   `:predict`; a service account's OAuth 2.0 access token as `Authorization: Bearer`
//!   (see [`google_auth`](super::google_auth)), or with `workloadIdentity` one from
//!   GKE's metadata server or workload identity federation (see `identity::gcp`).
//!
//! Mapping, OpenAI → Gemini:
//! - `system`/`developer` messages → `systemInstruction` text parts;
//! - `user`/`assistant` → `user`/`model` turns, consecutive same-role turns merged;
//!   `tool` messages → `functionResponse` parts (named after the call they answer,
//!   `response` the result's text if it is a JSON object, else `{"result": …}`) in the
//!   user turn after the calls, parallel results together, a result's images as
//!   `inlineData`/`fileData` parts right after its `functionResponse`;
//! - assistant `tool_calls` → `functionCall` parts (arguments parsed into `args`), with
//!   the `thoughtSignature` the call carries back (see `signature.rs`); assistant
//!   `reasoning_content` is dropped (Gemini wants its own signed thoughts);
//! - `image_url` data URLs → `inlineData`; other URLs → `fileData` on Vertex (`gs://`,
//!   http(s); the type from the extension), Files API URIs only on AI Studio; the http(s)
//!   URLs neither takes (any on AI Studio, those without a known extension on Vertex) are
//!   fetched by the router beforehand (`router::images`) and arrive as data URLs;
//! - `max_completion_tokens`/`max_tokens` → `maxOutputTokens`, `temperature`, `top_p` →
//!   `topP`, `stop` → `stopSequences`, `n` → `candidateCount`, `seed`,
//!   `presence_penalty`/`frequency_penalty` → `presencePenalty`/`frequencyPenalty`;
//! - `response_format` json_object → `responseMimeType: application/json`; json_schema
//!   → that plus `responseSchema` (see [`schema`] for the rewriting);
//! - `tools` → `functionDeclarations` (parameters rewritten the same way), `tool_choice`
//!   auto/none/required/named → `AUTO`/`NONE`/`ANY`/`ANY` + `allowedFunctionNames`;
//!   `parallel_tool_calls: false` is unsupported (Gemini has no such switch), so
//!   `dropUnsupportedParams` may drop it;
//! - `reasoning_effort` none/minimal/low/medium/high → `thinkingConfig` with a budget of
//!   0/1024/1024/8192/24576 tokens and thought summaries included.
//!
//! Gemini → OpenAI: text parts → `content`, thought parts → `reasoning_content`,
//! `functionCall` parts → `tool_calls` (ids made up, see [`response::call_id`]; a part's
//! `thoughtSignature` in the call's `extra_content` and id, see `signature.rs`);
//! `finishReason` STOP → stop (tool_calls when the turn called functions), MAX_TOKENS →
//! length, SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII/IMAGE_* →
//! content_filter, others → stop; a blocked prompt → one empty choice with
//! content_filter; `usageMetadata` → usage (prompt = prompt + tool-use prompt tokens,
//! completion = candidates + thoughts, `cached_tokens` = cached content,
//! `reasoning_tokens` = thoughts). A 429's `RetryInfo.retryDelay` becomes the error's
//! `retry_after`, the wait before the retry.

mod embed;
mod request;
mod response;
pub mod schema;
mod signature;
mod stream;
mod wire;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap};
use http::{StatusCode, Uri};

use super::{
    BuildError, Credential, Dialect, Prepared, ProviderContext, StreamTranslator, TranslateError,
    UnsignedRequest, api_key, join,
};
use crate::config::snapshot::{DeploymentSpec, WorkloadIdentity};
use crate::domain::{CallView, Endpoint, Reply, UpstreamError};
use crate::provider::translate::{no_completions, params};
use embed::Method;

/// The Gemini API's base URL.
pub const AI_STUDIO_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The Gemini API version used when the deployment names none.
pub const AI_STUDIO_VERSION: &str = "v1beta";
/// The Vertex AI API version used when the deployment names none.
pub const VERTEX_VERSION: &str = "v1";

/// OpenAI chat parameters Gemini can honour.
const CHAT_PARAMS: &[&str] = chat_params![
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
    "parallel_tool_calls",
    "reasoning_effort"
];

/// OpenAI embeddings parameters Gemini can honour.
const EMBEDDING_PARAMS: &[&str] = &["input", "encoding_format", "dimensions"];

/// Which of Google's APIs serves the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// The Gemini API (AI Studio), key auth.
    AiStudio,
    /// Vertex AI, service-account auth.
    Vertex,
}

impl Flavor {
    /// The provider's name, as in config and metrics.
    pub fn provider(self) -> &'static str {
        match self {
            Flavor::AiStudio => "gemini",
            Flavor::Vertex => "vertex",
        }
    }
}

/// Dialect and `x-goog-api-key` credential for a Gemini API deployment.
pub fn build_ai_studio(spec: &DeploymentSpec) -> Result<Prepared, BuildError> {
    let model = model_id(&spec.model)?;
    let version = version(spec.api_version.as_deref(), AI_STUDIO_VERSION)?;
    let base = spec.base_url.as_deref().unwrap_or(AI_STUDIO_BASE_URL);
    let base = format!("{}/{version}/models/{model}", base.trim_end_matches('/'));
    let key = api_key(spec, "apiKey is required for gemini")?;
    Ok(Prepared {
        dialect: Arc::new(Gemini::new(Flavor::AiStudio, &base, "batchEmbedContents")?),
        credential: Credential::key_header("x-goog-api-key", key)?,
    })
}

/// Stands in for the project of a deployment whose credential refuses every call until
/// the metadata server names the real one: never sent.
const UNKNOWN_PROJECT: &str = "project-not-yet-known";

/// Dialect and service-account credential for a Vertex AI deployment.
pub fn build_vertex(spec: &DeploymentSpec, ctx: &ProviderContext) -> Result<Prepared, BuildError> {
    let model = model_id(&spec.model)?;
    let version = version(spec.api_version.as_deref(), VERTEX_VERSION)?;
    // No default region: a silent default would send data somewhere nobody chose.
    let region = spec.region.as_deref().ok_or(BuildError::Missing(
        "region is required for vertex (e.g. us-central1, europe-west4 or global)",
    ))?;
    if region.is_empty()
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("region {region:?} is not a Google Cloud location").into());
    }
    let (tokens, learnt) = match spec.workload_identity {
        None => {
            let key_file = spec
                .gcp_service_account
                .as_ref()
                .ok_or(BuildError::Missing(
                    "a service-account key (serviceAccountSecretRef) or workloadIdentity is \
                 required for vertex",
                ))?;
            super::google_auth::source(key_file.expose(), spec.token_url.as_deref(), ctx)?
        }
        Some(identity) => {
            if spec.token_url.is_some() {
                return Err("tokenUrl does not apply with workloadIdentity".into());
            }
            if identity == WorkloadIdentity::GcpMetadata && spec.gcp_service_account.is_some() {
                return Err(
                    "workloadIdentity gcp-metadata replaces serviceAccountSecretRef: set one"
                        .into(),
                );
            }
            let learnt = match identity {
                WorkloadIdentity::GcpMetadata => ctx.gcp_project.known(),
                _ => None,
            };
            (super::identity::gcp::source(identity, spec, ctx)?, learnt)
        }
    };
    let (tokens, project) = match (spec.project.clone().or(learnt), spec.workload_identity) {
        (Some(project), _) => (tokens, project),
        (None, Some(WorkloadIdentity::GcpMetadata)) => {
            // The metadata server has not named the project (yet: the config is applied
            // again until it does). The deployment's calls fail saying so, before any
            // request is built for a project nobody chose; the other models serve.
            let why = format!(
                "project unknown: set project on the deployment, or let the metadata server \
                 answer ({})",
                ctx.gcp_project.failure()
            );
            (
                super::identity::unavailable(why),
                UNKNOWN_PROJECT.to_owned(),
            )
        }
        (None, None) => {
            return Err(BuildError::Missing(
                "project is required for vertex: the service-account key names none",
            ));
        }
        (None, Some(_)) => {
            return Err(BuildError::Missing(
                "project is required for vertex with workload identity federation",
            ));
        }
    };
    let project = project.as_str();
    if project.is_empty() || project.contains(['/', '?', '#']) {
        return Err(format!("project {project:?} is not a Google Cloud project id").into());
    }
    let host = match spec.base_url.as_deref() {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None if region == "global" => "https://aiplatform.googleapis.com".to_owned(),
        None => format!("https://{region}-aiplatform.googleapis.com"),
    };
    if model.starts_with("claude") {
        // Claude on Vertex AI: Anthropic's Messages API under Google's URLs and tokens.
        let base = format!(
            "{host}/{version}/projects/{project}/locations/{region}/publishers/anthropic/models/{model}"
        );
        return super::anthropic::build_vertex(&base, Credential::Bearer(tokens));
    }
    let base = format!(
        "{host}/{version}/projects/{project}/locations/{region}/publishers/google/models/{model}"
    );
    Ok(Prepared {
        dialect: Arc::new(Gemini::new(Flavor::Vertex, &base, "predict")?),
        credential: Credential::Bearer(tokens),
    })
}

/// The model id as it goes into the path; `models/` prefixes (as the Gemini API lists
/// them) are accepted.
fn model_id(model: &str) -> Result<&str, String> {
    let model = model.strip_prefix("models/").unwrap_or(model);
    if model.is_empty() || model.contains(['/', '?', '#', ':']) {
        return Err(format!("model {model:?} is not a Gemini model id"));
    }
    Ok(model)
}

fn version<'a>(given: Option<&'a str>, default: &'a str) -> Result<&'a str, String> {
    let version = given.unwrap_or(default);
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "apiVersion {version:?} is not an API version such as v1"
        ));
    }
    Ok(version)
}

/// The Gemini dialect, for either API.
#[derive(Debug)]
pub struct Gemini {
    flavor: Flavor,
    generate: Uri,
    stream: Uri,
    embed: Uri,
    /// `batchEmbedContents` (AI Studio) or `predict` (Vertex).
    embed_many: Uri,
}

impl Gemini {
    fn new(flavor: Flavor, base: &str, many: &str) -> Result<Gemini, String> {
        let at = |method: &str, query: Option<&str>| join(base, &format!(":{method}"), query);
        Ok(Gemini {
            flavor,
            generate: at("generateContent", None)?,
            stream: at("streamGenerateContent", Some("alt=sse"))?,
            embed: at("embedContent", None)?,
            embed_many: at(many, None)?,
        })
    }

    /// The request of one embeddings piece, at its method's URL.
    fn embed_request(&self, (method, body): embed::Piece) -> UnsignedRequest {
        let uri = match method {
            Method::Single => &self.embed,
            Method::Batch | Method::Predict => &self.embed_many,
        };
        super::post_json(uri.clone(), body)
    }

    /// The URL of one method, for tests and logs.
    pub fn uri(&self, endpoint: Endpoint, stream: bool) -> &Uri {
        match (endpoint, stream) {
            (Endpoint::Embeddings, _) if self.flavor == Flavor::Vertex => &self.embed_many,
            (Endpoint::Embeddings, _) => &self.embed,
            (_, true) => &self.stream,
            (_, false) => &self.generate,
        }
    }
}

impl Dialect for Gemini {
    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        params(endpoint, CHAT_PARAMS, EMBEDDING_PARAMS)
    }

    /// The Gemini API fetches no URLs but its own Files API's; Vertex AI fetches URLs
    /// whose extension tells their type, and needs the others as bytes.
    fn fetches_images(&self, endpoint: Endpoint) -> bool {
        endpoint == Endpoint::ChatCompletions
    }

    fn needs_image_bytes(&self, endpoint: Endpoint, url: &str) -> bool {
        self.fetches_images(endpoint)
            && match self.flavor {
                Flavor::AiStudio => !url.starts_with(request::FILES_API),
                Flavor::Vertex => request::mime_of(url).is_none(),
            }
    }

    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        let (uri, body) = match call.endpoint {
            Endpoint::ChatCompletions => {
                let uri = if call.stream {
                    &self.stream
                } else {
                    &self.generate
                };
                (uri, request::chat(call, self.flavor)?)
            }
            Endpoint::Embeddings => {
                return Ok(self.embed_request(embed::request(call, self.flavor)?));
            }
            _ => return Err(no_completions("Gemini models")),
        };
        Ok(super::post_json(uri.clone(), body))
    }

    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Reply, TranslateError> {
        match call.endpoint {
            Endpoint::Embeddings => embed::response(call, &body),
            _ => response::chat(call, &body),
        }
    }

    fn split(&self, call: &CallView<'_>) -> Result<Option<Vec<UnsignedRequest>>, TranslateError> {
        if call.endpoint != Endpoint::Embeddings {
            return Ok(None);
        }
        let pieces = embed::split(call, self.flavor)?;
        Ok(pieces.map(|pieces| pieces.into_iter().map(|p| self.embed_request(p)).collect()))
    }

    fn merge(&self, call: &CallView<'_>, answers: Vec<Bytes>) -> Result<Reply, TranslateError> {
        embed::merge_pieces(call, self.flavor, &answers)
    }

    fn is_stream(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        Box::new(stream::translator(call))
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        response::error(status, body)
    }
}

#[cfg(test)]
mod signature_tests;
#[cfg(test)]
mod tests;

//! Providers: how each kind of upstream is called. Every provider is a [`Dialect`]: it
//! turns an OpenAI call into the upstream's request, the upstream's answer (whole or
//! streamed) back into OpenAI's format, and its errors into OpenAI's error shape. A
//! [`Credential`] then authenticates the built request. Both are prepared once per
//! config, so the request path only runs the translation itself.
//!
//! Adding a provider: write a module with its wire types, a `Dialect` impl, a
//! `StreamTranslator`, and tests at the bottom; add its kind to
//! [`ProviderKind`](crate::config::snapshot::ProviderKind) and to [`build`].

/// The OpenAI chat parameters every translating provider honours, followed by the
/// extras one names: `chat_params!["seed", "user"]`.
macro_rules! chat_params {
    [$($extra:literal),* $(,)?] => {
        &[
            "messages",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "stop",
            "n",
            "tools",
            "tool_choice",
            "stream_options",
            $($extra),*
        ]
    };
}

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod bridge;
pub mod cohere;
pub mod demo;
pub mod gemini;
pub mod google_auth;
pub mod identity;
pub mod json_mode;
pub mod openai;
pub mod openai_wire;
pub mod reasoning;
pub mod sse;
pub mod sse_translator;
#[cfg(test)]
pub(crate) mod test_support;
pub mod translate;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode, Uri};

use crate::config::snapshot::{DeploymentSpec, ProviderKind};
use crate::domain::{CallView, Endpoint, ErrorClass, Reply, UpstreamError, Usage};
use crate::upstream::Transport;

/// A request as a dialect builds it: credentials are added afterwards.
pub type UnsignedRequest = http::Request<Bytes>;

/// One provider's translation between OpenAI's API and its own.
pub trait Dialect: Send + Sync + 'static {
    /// OpenAI request parameters this provider can honour for `endpoint`, besides
    /// `model`, `stream` and the endpoint's input; `None` means everything passes
    /// through (OpenAI-compatible upstreams).
    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        let _ = endpoint;
        None
    }

    /// Whether this provider serves `endpoint` itself. Calls to the Messages and
    /// Responses APIs reach a provider that does not through chat (see [`bridge`]).
    fn native(&self, endpoint: Endpoint) -> bool {
        Endpoint::OPENAI.contains(&endpoint)
    }

    /// Whether this provider may need images of a call to `endpoint` as bytes (see
    /// [`needs_image_bytes`](Self::needs_image_bytes)); when not, the router does not
    /// look for image URLs at all.
    fn fetches_images(&self, endpoint: Endpoint) -> bool {
        let _ = endpoint;
        false
    }

    /// Whether this provider needs the image at `url` (an `http(s)` URL in a call to
    /// `endpoint`) as bytes: the router then fetches it, as the model's `imageFetch`
    /// allows, and hands the call over with a data URL (chat) or a base64 source
    /// (Messages) in its place. Providers that fetch URLs themselves say no.
    fn needs_image_bytes(&self, endpoint: Endpoint, url: &str) -> bool {
        let _ = (endpoint, url);
        false
    }

    /// The request that counts a Messages call's input tokens, where the provider has
    /// one (`POST /v1/messages/count_tokens`).
    fn count_tokens(&self, call: &CallView<'_>) -> Option<Result<UnsignedRequest, TranslateError>> {
        let _ = call;
        None
    }

    /// Builds the upstream request for a call.
    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError>;

    /// Converts a successful, whole upstream body into the client's answer and the usage
    /// it reports.
    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Reply, TranslateError>;

    /// The upstream requests a whole (not streamed) call needs when the upstream takes
    /// it only in pieces, in order: embeddings of several inputs where a model embeds
    /// one text per request (Titan, Vertex AI's `gemini-embedding`), or more inputs than
    /// one request holds. `None` sends the call as one request ([`request`](Self::request)).
    /// The router sends the pieces concurrently with the deployment's credential and the
    /// call's deadline (see `router::dispatch::fan_out`) and hands their answers to
    /// [`merge`](Self::merge).
    fn split(&self, call: &CallView<'_>) -> Result<Option<Vec<UnsignedRequest>>, TranslateError> {
        let _ = call;
        Ok(None)
    }

    /// The client's answer made of the whole answers to [`split`](Self::split)'s
    /// requests, in their order, with the usage they add up to.
    fn merge(&self, call: &CallView<'_>, answers: Vec<Bytes>) -> Result<Reply, TranslateError> {
        let _ = (call, answers);
        Err(TranslateError::malformed(
            "answers in pieces from a provider that does not split calls",
        ))
    }

    /// Whether a 2xx answer to a streaming call is a stream (as opposed to a whole body
    /// the upstream sent despite being asked to stream).
    fn is_stream(&self, headers: &HeaderMap) -> bool {
        let _ = headers;
        true
    }

    /// A translator for one streamed answer.
    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator>;

    /// What an upstream error answer means: the provider reads its own error format and
    /// classifies it (a prompt over the context window, a content refusal...).
    fn error(&self, status: StatusCode, body: &[u8]) -> UpstreamError;
}

/// Turns one upstream stream into whole OpenAI SSE events, chunk by chunk.
pub trait StreamTranslator: Send + Sync + 'static {
    /// Takes the next upstream bytes; returns the OpenAI events now complete, if any.
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError>;

    /// The upstream ended cleanly; returns the last events (and `[DONE]`), if any.
    fn finish(&mut self) -> Result<Option<Bytes>, StreamError>;

    /// The usage the stream reported so far: complete once [`finish`](Self::finish)
    /// returned.
    fn usage(&self) -> Option<Usage>;

    /// The whole answer the stream amounted to, as the client's API states it (the
    /// Responses API's response object), once [`finish`](Self::finish) returned: for the
    /// answers the sidecar keeps (`store`). `None` where nothing is kept.
    fn answer(&mut self) -> Option<Bytes> {
        None
    }

    /// The `sequence_number` the next event would carry, for a client API whose stream
    /// events are numbered (the Responses API): the error event a stream that fails
    /// mid-way ends with takes it. `None` for unnumbered streams.
    fn next_sequence_number(&self) -> Option<u64> {
        None
    }
}

/// A stream the upstream broke off or reported an error in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// Shown to the client in the error event.
    pub message: String,
    /// Machine-readable code for the error event.
    pub code: &'static str,
}

impl StreamError {
    /// The upstream sent something that is not its stream format.
    pub fn malformed(what: impl std::fmt::Display) -> Self {
        StreamError {
            message: format!("The upstream stream was malformed: {what}"),
            code: "upstream_malformed_stream",
        }
    }

    /// The upstream sent an event, line or frame larger than the sidecar holds.
    pub fn too_large(what: impl std::fmt::Display) -> Self {
        StreamError {
            message: format!("The upstream stream was refused: {what}"),
            code: "upstream_event_too_large",
        }
    }

    /// The upstream reported an error inside the stream.
    pub fn upstream(message: impl Into<String>) -> Self {
        StreamError {
            message: message.into(),
            code: "upstream_stream_error",
        }
    }
}

/// Why a call could not be translated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The request uses a parameter the provider cannot honour (400 to the client).
    #[error(
        "Parameter '{param}' is not supported by this model's provider ({provider}). Remove it, or set dropUnsupportedParams on the LLMModel to drop it."
    )]
    Unsupported {
        /// The OpenAI parameter.
        param: String,
        /// The provider's name.
        provider: &'static str,
    },
    /// The request asks for a hosted tool the provider does not have (400 to the client).
    #[error(
        "Tool '{tool}' is not supported by this model's provider ({provider}). Remove it, or set dropUnsupportedParams on the LLMModel to drop it."
    )]
    UnsupportedTool {
        /// The tool's type, as the client named it.
        tool: String,
        /// The provider's name.
        provider: &'static str,
    },
    /// The request has a value this provider cannot honour, though the request works
    /// without the parameter: refused with a 400, or dropped under
    /// `dropUnsupportedParams` (e.g. `n: 2` to a provider that returns one choice).
    #[error(
        "Parameter '{param}' is not supported with this value by this model's provider: {message} Remove it, or set dropUnsupportedParams on the LLMModel to drop it."
    )]
    UnsupportedValue {
        /// The OpenAI parameter (top level of the body).
        param: &'static str,
        /// Why the value cannot be honoured.
        message: String,
    },
    /// The request has a value the provider cannot express (400 to the client).
    #[error("Invalid '{param}': {message}")]
    Invalid {
        /// The OpenAI parameter.
        param: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The upstream answered something that is not its format (502 to the client).
    #[error("The upstream answer was malformed: {0}")]
    Malformed(String),
}

impl TranslateError {
    /// An invalid request value.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        TranslateError::Invalid {
            param,
            message: message.into(),
        }
    }

    /// A value this provider cannot honour, droppable under `dropUnsupportedParams`.
    pub fn unsupported_value(param: &'static str, message: impl Into<String>) -> Self {
        TranslateError::UnsupportedValue {
            param,
            message: message.into(),
        }
    }

    /// The top-level request parameter dropping which would let the call through, when
    /// the error is one `dropUnsupportedParams` may drop.
    pub fn droppable(&self) -> Option<&str> {
        match self {
            TranslateError::Unsupported { param, .. } => Some(param),
            TranslateError::UnsupportedValue { param, .. } => Some(param),
            _ => None,
        }
    }

    /// A malformed upstream answer.
    pub fn malformed(what: impl std::fmt::Display) -> Self {
        TranslateError::Malformed(what.to_string())
    }
}

/// How requests to a deployment are authenticated.
#[derive(Clone, Default)]
pub enum Credential {
    /// No credential (local servers, the demo provider).
    #[default]
    None,
    /// A fixed header, e.g. `Authorization: Bearer ...` or `x-api-key`.
    Header(HeaderName, HeaderValue),
    /// `Authorization` from a token source that fetches, caches and refreshes it: a
    /// Google service account's or workload identity's access token (Vertex AI), an
    /// Entra ID token (Azure OpenAI).
    Bearer(identity::BearerSource),
    /// AWS Signature Version 4 over the whole request (Bedrock), with keys from a
    /// Secret or temporary ones from the pod's AWS identity.
    SigV4(
        Arc<bedrock::sigv4::Signer>,
        Arc<dyn identity::Source<Arc<bedrock::sigv4::Keys>>>,
    ),
}

impl std::fmt::Debug for Credential {
    // Never prints a key or token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::None => "Credential::None",
            Credential::Header(..) => "Credential::Header",
            Credential::Bearer(_) => "Credential::Bearer",
            Credential::SigV4(..) => "Credential::SigV4",
        })
    }
}

/// Why a credential could not be applied.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot authenticate to the upstream: {0}")]
pub struct CredentialError(pub String);

/// Which fetched credential authenticated a request, for [`Credential::refused`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Used(u64);

impl Credential {
    /// A bearer token.
    pub fn bearer(token: &str) -> Result<Credential, String> {
        Ok(Credential::Header(
            http::header::AUTHORIZATION,
            secret_header(&format!("Bearer {token}"))?,
        ))
    }

    /// An API key in header `name` (`x-api-key`, `api-key`...).
    pub fn key_header(name: &'static str, key: &str) -> Result<Credential, String> {
        Ok(Credential::Header(
            HeaderName::from_static(name),
            secret_header(key)?,
        ))
    }

    /// Whether the credential is fetched (and so may be refreshed when an upstream
    /// refuses it), as opposed to fixed.
    pub fn refreshable(&self) -> bool {
        matches!(self, Credential::Bearer(_) | Credential::SigV4(..))
    }

    /// Authenticates a built request; says which credential it used.
    pub async fn apply(&self, request: &mut UnsignedRequest) -> Result<Used, CredentialError> {
        match self {
            Credential::None => Ok(Used::default()),
            Credential::Header(name, value) => {
                request.headers_mut().insert(name.clone(), value.clone());
                Ok(Used::default())
            }
            Credential::Bearer(tokens) => {
                let lease = tokens.lease().await?;
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, lease.value);
                Ok(Used(lease.generation))
            }
            Credential::SigV4(signer, keys) => {
                let lease = keys.lease().await?;
                signer.sign(request, &lease.value, std::time::SystemTime::now())?;
                Ok(Used(lease.generation))
            }
        }
    }

    /// Whether the upstream's answer `head` refused the credential `used` in a way a
    /// fresh one may cure, and one can be fetched; if so, the refused one is forgotten
    /// so the next [`apply`](Self::apply) fetches anew. A 401 refuses any credential;
    /// AWS also answers an expired or unknown session with a 403 whose
    /// `x-amzn-ErrorType` is `ExpiredTokenException` or `UnrecognizedClientException`.
    /// Fixed keys have nothing to refresh.
    pub fn refused(&self, used: Used, head: &http::response::Parts) -> bool {
        let aws_token_refused = || {
            head.status == StatusCode::FORBIDDEN
                && head
                    .headers
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(':').next().unwrap_or(v))
                    .is_some_and(|name| {
                        matches!(
                            name,
                            "ExpiredTokenException" | "UnrecognizedClientException"
                        )
                    })
        };
        match self {
            Credential::Bearer(tokens) if head.status == StatusCode::UNAUTHORIZED => {
                tokens.invalidate(used.0)
            }
            Credential::SigV4(_, keys)
                if head.status == StatusCode::UNAUTHORIZED || aws_token_refused() =>
            {
                keys.invalidate(used.0)
            }
            _ => false,
        }
    }
}

/// What providers may share across deployments and config reloads.
pub struct ProviderContext {
    /// The upstream HTTP client, for providers that fetch tokens.
    pub http: Arc<dyn Transport>,
    /// The sidecar's environment, where the cloud's webhook put its identity.
    pub env: Arc<dyn identity::Env>,
    /// Token sources (Google, Entra ID), shared across reloads so tokens stay cached.
    pub bearer: identity::Registry<dyn identity::Source<HeaderValue>>,
    /// AWS key sources, shared across reloads so temporary keys stay cached.
    pub aws: identity::Registry<dyn identity::Source<Arc<bedrock::sigv4::Keys>>>,
    /// The project the GCE metadata server named, once asked.
    pub gcp_project: identity::gcp::ProjectCache,
}

impl ProviderContext {
    /// A context sending through `http`, reading the process environment.
    pub fn new(http: Arc<dyn Transport>) -> Self {
        ProviderContext::with_env(http, Arc::new(identity::ProcessEnv))
    }

    /// A context sending through `http`, reading `env`.
    pub fn with_env(http: Arc<dyn Transport>, env: Arc<dyn identity::Env>) -> Self {
        ProviderContext {
            http,
            env,
            bearer: identity::Registry::default(),
            aws: identity::Registry::default(),
            gcp_project: identity::gcp::ProjectCache::default(),
        }
    }
}

/// A deployment's dialect and credential, ready for the request path.
pub struct Prepared {
    /// Translation.
    pub dialect: Arc<dyn Dialect>,
    /// Authentication.
    pub credential: Credential,
}

/// Why a deployment's provider could not be prepared.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A field the provider needs is not set; the message names it.
    #[error("{0}")]
    Missing(&'static str),
    /// A field's value cannot be used.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for BuildError {
    fn from(message: String) -> Self {
        BuildError::Invalid(message)
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> Self {
        BuildError::Invalid(message.to_owned())
    }
}

/// Builds the dialect and credential for a deployment, or says what is wrong.
pub fn build(spec: &DeploymentSpec, ctx: &ProviderContext) -> Result<Prepared, BuildError> {
    match spec.provider {
        ProviderKind::Azure => azure::build(spec, ctx),
        ProviderKind::Demo => demo::build(),
        ProviderKind::Anthropic => anthropic::build(spec),
        ProviderKind::Gemini => gemini::build_ai_studio(spec),
        ProviderKind::Vertex => gemini::build_vertex(spec, ctx),
        ProviderKind::Bedrock => bedrock::build(spec, ctx),
        ProviderKind::Cohere => cohere::build(spec),
        kind => openai::build(kind, spec),
    }
}

/// What marks an error as a prompt over the context window or a content refusal, in one
/// provider's words (lower case).
pub(crate) struct Markers {
    /// Context-window phrases and codes.
    pub context_window: &'static [&'static str],
    /// Content-policy phrases and codes.
    pub content_policy: &'static [&'static str],
}

/// Classifies an upstream error by its status and, for the statuses providers use for
/// bad requests, by what its code and message say: most providers report a prompt over
/// the context window, or a content refusal, as a plain 400.
pub(crate) fn classify(status: StatusCode, said: &[&str], markers: &Markers) -> ErrorClass {
    let class = ErrorClass::from_status(status.as_u16());
    if class != ErrorClass::Invalid || !matches!(status.as_u16(), 400 | 413 | 422) {
        return class;
    }
    let mentions = |phrases: &[&str]| {
        said.iter().any(|text| {
            let text = text
                .get(..text.len().min(4096))
                .unwrap_or(text)
                .to_ascii_lowercase();
            phrases.iter().any(|p| text.contains(p))
        })
    };
    if mentions(markers.context_window) {
        ErrorClass::ContextWindow
    } else if mentions(markers.content_policy) {
        ErrorClass::ContentPolicy
    } else {
        ErrorClass::Invalid
    }
}

/// The first bytes of an error body that is not the provider's error format, for the
/// message.
pub(crate) fn excerpt(body: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&body[..body.len().min(512)])
}

/// `status`, or 502 when it is `code`, the provider's status for a failure on its side
/// (Bedrock's 424, Cohere's 499), so it is retried and falls back like other upstream
/// faults.
pub(crate) fn upstream_fault(status: StatusCode, code: u16) -> StatusCode {
    if status.as_u16() == code {
        StatusCode::BAD_GATEWAY
    } else {
        status
    }
}

/// The `message` of an error body `{"message": ...}` (Bedrock, where some AWS front
/// ends write `Message`; Cohere), else what `provider` answered in the body's first
/// bytes.
pub(crate) fn error_message(provider: &str, status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(default, alias = "Message")]
        message: Option<String>,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| format!("{provider} answered {status}: {}", excerpt(body)))
}

/// Joins a base URL and a path (plus optional query) into a URI, refusing anything but
/// absolute http(s) URLs.
pub(crate) fn join(base: &str, path: &str, query: Option<&str>) -> Result<Uri, String> {
    let base = base.trim_end_matches('/');
    let text = match query {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let uri: Uri = text
        .parse()
        .map_err(|e| format!("baseUrl {base:?} is not a valid URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err(format!("baseUrl {base:?} must be an absolute http(s) URL")),
    }
}

/// The deployment's API key, or a `missing` error naming it.
pub(crate) fn api_key<'a>(
    spec: &'a DeploymentSpec,
    missing: &'static str,
) -> Result<&'a str, BuildError> {
    spec.api_key
        .as_ref()
        .map(|key| key.expose())
        .ok_or(BuildError::Missing(missing))
}

/// A credential header value, marked sensitive so hyper never logs it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "apiKey contains characters not allowed in a header".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

/// A JSON POST to `uri`.
pub(crate) fn post_json(uri: Uri, body: Vec<u8>) -> UnsignedRequest {
    let mut request = http::Request::new(Bytes::from(body));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(concat!("llmesh/", env!("CARGO_PKG_VERSION"))),
    );
    request
}

#[cfg(test)]
pub(crate) fn spec(provider: ProviderKind) -> DeploymentSpec {
    DeploymentSpec::new("d", provider, "m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_refuses_relative_and_odd_schemes() {
        assert!(join("api.openai.com/v1", "/x", None).is_err());
        assert!(join("ftp://h/v1", "/x", None).is_err());
        assert_eq!(
            join("http://h:1/v1/", "/chat/completions", Some("a=b"))
                .unwrap()
                .to_string(),
            "http://h:1/v1/chat/completions?a=b"
        );
    }

    #[test]
    fn credential_headers_are_sensitive() {
        assert!(secret_header("sk-1").unwrap().is_sensitive());
        assert!(secret_header("bad\nkey").is_err());
    }
}

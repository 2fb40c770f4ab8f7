//! One client call, as the router carries it and as a provider sees it, and the whole
//! answer a provider hands back.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Usage;

use crate::domain::Endpoint;

/// One validated client call.
#[derive(Clone, Debug)]
pub struct Call {
    /// Which API operation.
    pub endpoint: Endpoint,
    /// The request body as the client sent it; `model` is replaced per deployment when
    /// the upstream request is built.
    pub body: Map<String, Value>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Rough token count for rpm/tpm accounting before usage is known.
    pub estimated_tokens: u64,
    /// The client's `anthropic-beta` header (features it opts into), passed on to
    /// upstreams that speak Anthropic's API.
    pub anthropic_beta: Option<String>,
}

/// One call as a provider sees it, for one deployment.
#[derive(Clone, Copy, Debug)]
pub struct CallView<'a> {
    /// The API operation.
    pub endpoint: Endpoint,
    /// The client's request body, validated as an object with the endpoint's required
    /// fields.
    pub body: &'a Map<String, Value>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// The deployment's upstream model id.
    pub model: &'a str,
    /// The model's `max_tokens` for providers that require one, when the client sent none.
    pub default_max_tokens: Option<u32>,
    /// The client's `anthropic-beta` header, for upstreams that speak Anthropic's API.
    pub anthropic_beta: Option<&'a str>,
}

impl CallView<'_> {
    /// Whether the client asked for a usage chunk at the end of its stream
    /// (`stream_options.include_usage`).
    pub fn wants_stream_usage(&self) -> bool {
        self.body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            == Some(true)
    }
}

/// A whole answer in the client's format, and the usage the upstream reported.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    /// The body the client gets.
    pub body: Bytes,
    /// Tokens used, when the upstream said.
    pub usage: Option<Usage>,
    /// The usage was estimated by the sidecar, the upstream not counting it (Gemini
    /// embeddings from API surfaces without `usageMetadata`): the client is told so in
    /// `x-llmesh-token-count: estimated`.
    pub usage_estimated: bool,
}

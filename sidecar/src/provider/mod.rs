//! Providers: where each kind of upstream lives and how it authenticates. Every module
//! here turns a deployment into a [`Target`] (its URLs and credentials), computed once
//! per config so the request path only clones prepared values.

pub mod azure;
pub mod demo;
pub mod openai_compat;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;

use crate::config::snapshot::{DeploymentSpec, ProviderKind};
use crate::upstream::UpstreamRequest;

/// The OpenAI API operations the sidecar serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions` (legacy text completions).
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Endpoint {
    /// All endpoints, in [`Endpoint::index`] order.
    pub const ALL: [Endpoint; 3] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Embeddings,
    ];

    /// The path below an OpenAI-style base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// Position in per-endpoint tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether requests may ask for `stream: true`.
    pub fn streams(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }

    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }
}

/// A deployment's URLs (one per endpoint) and credential header, as providers prepare them.
pub(crate) type Prepared = ([Uri; 3], Option<(HeaderName, HeaderValue)>);

/// A deployment's resolved upstream: one URL per endpoint and its credential header.
#[derive(Clone, Debug)]
pub struct Target {
    uris: [Uri; 3],
    auth: Option<(HeaderName, HeaderValue)>,
}

impl Target {
    /// Builds the target for a deployment, or says which field is wrong.
    pub fn for_deployment(spec: &DeploymentSpec) -> Result<Target, String> {
        let (uris, auth) = match spec.provider {
            ProviderKind::Azure => azure::target(spec)?,
            ProviderKind::Demo => (demo::uris()?, None),
            kind => openai_compat::target(kind, spec)?,
        };
        Ok(Target { uris, auth })
    }

    /// The URL for one endpoint.
    pub fn uri(&self, endpoint: Endpoint) -> &Uri {
        &self.uris[endpoint.index()]
    }

    /// A POST of `body` to `endpoint` with the credential set.
    pub fn request(&self, endpoint: Endpoint, body: Bytes) -> UpstreamRequest {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri(endpoint).clone();
        let headers = request.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("llmesh/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some((name, value)) = &self.auth {
            headers.insert(name.clone(), value.clone());
        }
        request
    }
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

/// A credential header value, marked sensitive so hyper never logs it.
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "apiKey contains characters not allowed in a header".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
pub(crate) fn spec(provider: ProviderKind) -> DeploymentSpec {
    DeploymentSpec {
        name: "d".into(),
        provider,
        model: "m".into(),
        base_url: None,
        api_key: None,
        api_version: None,
        weight: 1,
        rpm: None,
        tpm: None,
        pricing: None,
    }
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

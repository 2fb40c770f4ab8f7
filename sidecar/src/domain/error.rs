//! How calls fail. An [`UpstreamError`] is what a provider made of an upstream's error
//! answer (or what the router saw: a timeout, a refused connection), classified by the
//! provider that knows the wire. An [`ApiError`] is what the client is told; the server
//! renders it in the client's API shape.

use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Map, Value};

/// What went wrong with one upstream attempt, as retries, cooldowns and fallbacks see
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The upstream is rate limiting (429).
    RateLimited,
    /// The upstream failed (5xx, Anthropic's 529), or sent a 2xx that was broken.
    Server,
    /// No answer in time.
    Timeout,
    /// No connection, or it dropped.
    Connect,
    /// The prompt exceeds the model's context window.
    ContextWindow,
    /// The upstream refused the content on policy grounds.
    ContentPolicy,
    /// The upstream refused the deployment's credentials (401, 403).
    Auth,
    /// Any other refusal: the request itself is at fault.
    Invalid,
    /// No deployment could take the call: all cooling down or at their limits.
    Unavailable,
}

impl ErrorClass {
    /// All classes, in `as usize` order.
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::RateLimited,
        ErrorClass::Server,
        ErrorClass::Timeout,
        ErrorClass::Connect,
        ErrorClass::ContextWindow,
        ErrorClass::ContentPolicy,
        ErrorClass::Auth,
        ErrorClass::Invalid,
        ErrorClass::Unavailable,
    ];

    /// The class an error status implies when its body says nothing more specific.
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            429 => ErrorClass::RateLimited,
            408 => ErrorClass::Timeout,
            401 | 403 => ErrorClass::Auth,
            500..=599 => ErrorClass::Server,
            _ => ErrorClass::Invalid,
        }
    }

    /// Whether the same call may succeed if tried again (elsewhere, or later).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::RateLimited
                | ErrorClass::Server
                | ErrorClass::Timeout
                | ErrorClass::Connect
        )
    }

    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate_limited",
            ErrorClass::Server => "server_error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connect => "connect_error",
            ErrorClass::ContextWindow => "context_window",
            ErrorClass::ContentPolicy => "content_policy",
            ErrorClass::Auth => "auth_error",
            ErrorClass::Invalid => "client_error",
            ErrorClass::Unavailable => "no_deployment",
        }
    }
}

/// An upstream's failure, free of HTTP bodies: the provider has read what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The upstream's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The upstream's machine-readable code, when it sent one.
    pub code: Option<String>,
    /// The request parameter the upstream blamed, when it said.
    pub param: Option<String>,
    /// What the upstream said, or what happened; never a prompt or a secret.
    pub message: String,
    /// How long the upstream asked callers to wait.
    pub retry_after: Option<Duration>,
    /// Further fields of an OpenAI-style error object (Azure's `innererror` with its
    /// content-filter results), kept for clients that read them.
    pub details: Option<Box<Map<String, Value>>>,
}

impl UpstreamError {
    /// A failure of `class` with a message and nothing else.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        UpstreamError {
            class,
            status: None,
            code: None,
            param: None,
            message: message.into(),
            retry_after: None,
            details: None,
        }
    }

    /// An error answer with `status`.
    pub fn answered(class: ErrorClass, status: u16, message: impl Into<String>) -> Self {
        UpstreamError {
            status: Some(status),
            ..UpstreamError::new(class, message)
        }
    }

    /// Sets the upstream's code.
    pub fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    /// Sets the parameter the upstream blamed.
    pub fn with_param(mut self, param: Option<String>) -> Self {
        self.param = param;
        self
    }

    /// Whether the same call may succeed if tried again.
    pub fn retryable(&self) -> bool {
        self.class.retryable()
    }
}

/// The kind of an error a client is told: each client API names these its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is at fault.
    InvalidRequest,
    /// No or a wrong key.
    Authentication,
    /// The key may not do this.
    Permission,
    /// No such model or route.
    NotFound,
    /// A rate limit refused the call.
    RateLimit,
    /// A budget (or the upstream's billing) refused the call.
    InsufficientQuota,
    /// The gateway or the upstream failed.
    Server,
}

/// An error answered to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The kind, rendered as the client API's error type.
    pub kind: ErrorKind,
    /// Human-readable message; never contains prompts or secrets.
    pub message: String,
    /// The request parameter at fault, if any.
    pub param: Option<Cow<'static, str>>,
    /// A machine-readable code, e.g. `model_not_found`.
    pub code: Option<Cow<'static, str>>,
    /// Seconds a client should wait before retrying, sent as `Retry-After`.
    pub retry_after_secs: Option<u32>,
    /// The message quotes an upstream, whose words may echo the request: logs name the
    /// code, not the message.
    pub quotes_upstream: bool,
    /// Further fields of the upstream's error object, for clients of the same API.
    pub details: Option<Box<Map<String, Value>>>,
}

impl ApiError {
    /// A new error with no param or code.
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
            quotes_upstream: false,
            details: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorKind::InvalidRequest, message)
    }

    /// 404 for a model no LLMModel serves, worded like OpenAI's.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorKind::InvalidRequest,
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 404 for an unknown route, worded like OpenAI's.
    pub fn unknown_route(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorKind::InvalidRequest,
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// 405 for a known route called with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::InvalidRequest,
            format!("Method {method} is not allowed on {path}"),
        )
    }

    /// 413 for a body over the limit.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidRequest,
            format!("Request body exceeds the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    /// 408: the client did not send its whole body in time.
    pub fn body_timeout(limit: Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorKind::InvalidRequest,
            format!(
                "The request body did not arrive within {} seconds.",
                limit.as_secs()
            ),
        )
        .with_code("request_timeout")
    }

    /// 503: the sidecar holds as many request bodies as it may; retry shortly.
    pub fn busy_reading() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Server,
            "The gateway is reading as many request bodies as it can hold. Retry shortly.",
        )
        .with_code("server_busy")
        .with_retry_after(Some(1))
    }

    /// 503 while the sidecar has no config yet.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Server,
            "llmesh sidecar has not received its configuration yet.",
        )
        .with_code("not_ready")
    }

    /// 500 for a bug on our side; the message is safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Server,
            message,
        )
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: impl Into<Cow<'static, str>>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: impl Into<Cow<'static, str>>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the `Retry-After` seconds.
    pub fn with_retry_after(mut self, secs: Option<u32>) -> Self {
        self.retry_after_secs = secs;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_imply_classes() {
        assert_eq!(ErrorClass::from_status(429), ErrorClass::RateLimited);
        assert_eq!(ErrorClass::from_status(529), ErrorClass::Server);
        assert_eq!(ErrorClass::from_status(503), ErrorClass::Server);
        assert_eq!(ErrorClass::from_status(408), ErrorClass::Timeout);
        assert_eq!(ErrorClass::from_status(401), ErrorClass::Auth);
        assert_eq!(ErrorClass::from_status(422), ErrorClass::Invalid);
        assert!(ErrorClass::Connect.retryable());
        assert!(!ErrorClass::ContextWindow.retryable());
        for (i, class) in ErrorClass::ALL.into_iter().enumerate() {
            assert_eq!(class as usize, i);
        }
    }
}

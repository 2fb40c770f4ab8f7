//! Errors a client sees, rendered in OpenAI's error shape with the status an OpenAI SDK
//! maps to its typed exceptions (400 BadRequest, 401 Authentication, 403
//! PermissionDenied, 404 NotFound, 413, 429 RateLimit, 5xx InternalServer).

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// An error answered to the client: `{"error":{"message","type","param","code"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message; never contains prompts or secrets.
    pub message: String,
    /// OpenAI's `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// The request parameter at fault, if any.
    pub param: Option<&'static str>,
    /// A machine-readable code, e.g. `model_not_found`.
    pub code: Option<&'static str>,
    /// Seconds a client should wait before retrying, sent as `Retry-After`.
    pub retry_after_secs: Option<u32>,
    /// An upstream error body already in OpenAI's shape, passed through verbatim.
    pub upstream_body: Option<Bytes>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

impl ApiError {
    /// A new error with no param or code.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            param: None,
            code: None,
            retry_after_secs: None,
            upstream_body: None,
        }
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404 for a model no LLMModel serves, worded like OpenAI's.
    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("The model `{model}` does not exist or you do not have access to it."),
        )
        .with_param("model")
        .with_code("model_not_found")
    }

    /// 404 for an unknown route, worded like OpenAI's.
    pub fn unknown_route(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Invalid URL ({method} {path})"),
        )
    }

    /// 405 for a known route called with the wrong method.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            format!("Method {method} is not allowed on {path}"),
        )
    }

    /// 413 for a body over the limit.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!("Request body exceeds the limit of {limit} bytes."),
        )
        .with_code("request_too_large")
    }

    /// 408: the client did not send its whole body in time.
    pub fn body_timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
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
            "server_error",
            "The gateway is reading as many request bodies as it can hold. Retry shortly.",
        )
        .with_code("server_busy")
        .with_retry_after(Some(1))
    }

    /// 503 while the sidecar has no config yet.
    pub fn not_ready() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "llmesh sidecar has not received its configuration yet.",
        )
        .with_code("not_ready")
    }

    /// 500 for a bug on our side; the message is safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
    }

    /// Sets `param`.
    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    /// Sets `code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Sets the `Retry-After` seconds.
    pub fn with_retry_after(mut self, secs: Option<u32>) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Bytes {
        if let Some(body) = &self.upstream_body {
            return body.clone();
        }
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        };
        // Serializing plain strings cannot fail; fall back to a fixed body regardless.
        serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#))
    }

    /// The body as one SSE event, for failures after a stream has started.
    pub fn sse_event(&self) -> Bytes {
        let body = self.body();
        let mut event = Vec::with_capacity(body.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(&body);
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    /// Headers every error response carries.
    pub fn apply_headers(&self, headers: &mut http::HeaderMap) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }

    /// Whether an upstream error body is already in OpenAI's shape and safe to relay.
    pub fn is_openai_shaped(body: &[u8]) -> bool {
        // Only the presence of `error.message` matters; the fields are never read.
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Probe {
            error: ProbeInner,
        }
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct ProbeInner {
            message: serde::de::IgnoredAny,
        }
        serde_json::from_slice::<Probe>(body).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_openai_shape() {
        let err = ApiError::model_not_found("gpt-9");
        let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert!(v["error"]["message"].as_str().unwrap().contains("gpt-9"));
    }

    #[test]
    fn null_param_and_code_are_present() {
        let v: serde_json::Value =
            serde_json::from_slice(&ApiError::invalid_request("bad").body()).unwrap();
        assert!(v["error"].get("param").unwrap().is_null());
        assert!(v["error"].get("code").unwrap().is_null());
    }

    #[test]
    fn sse_event_is_one_data_line() {
        let event = ApiError::internal("boom").sse_event();
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("data: {\"error\""));
        assert!(text.ends_with("}\n\n"));
    }

    #[test]
    fn recognises_openai_error_bodies() {
        assert!(ApiError::is_openai_shaped(
            br#"{"error":{"message":"x","type":"y","param":null,"code":null}}"#
        ));
        assert!(!ApiError::is_openai_shaped(b"<html>502</html>"));
        assert!(!ApiError::is_openai_shaped(br#"{"detail":"nope"}"#));
    }
}

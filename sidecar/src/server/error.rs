//! Errors rendered in OpenAI's error shape, `{"error":{"message","type","param","code"}}`,
//! with the status an OpenAI SDK maps to its typed exceptions (400 BadRequest, 401
//! Authentication, 403 PermissionDenied, 404 NotFound, 413, 429 RateLimit, 5xx
//! InternalServer). The layers below build [`ApiError`]s; only the server renders them.

use bytes::Bytes;
use http::{HeaderValue, header};
use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::domain::ApiError;
use crate::domain::ErrorKind;

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
    /// An upstream's further fields (Azure's `innererror`), after OpenAI's four.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    details: Option<&'a Map<String, Value>>,
}

/// OpenAI's name for an error kind.
pub fn openai_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::Permission => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RateLimit => "rate_limit_error",
        ErrorKind::InsufficientQuota => "insufficient_quota",
        ErrorKind::Server => "server_error",
    }
}

/// An [`ApiError`] as OpenAI clients read it.
pub trait Render {
    /// The JSON body.
    fn body(&self) -> Bytes;
    /// The body as one SSE event, for failures after a stream has started.
    fn sse_event(&self) -> Bytes;
    /// Headers every error response carries.
    fn apply_headers(&self, headers: &mut http::HeaderMap);
}

impl Render for ApiError {
    fn body(&self) -> Bytes {
        let envelope = Envelope {
            error: Body {
                message: &self.message,
                kind: openai_type(self.kind),
                param: self.param.as_deref(),
                code: self.code.as_deref(),
                details: self.details.as_deref(),
            },
        };
        // Serializing plain strings cannot fail; fall back to a fixed body regardless.
        serde_json::to_vec(&envelope)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(br#"{"error":{"message":"internal error","type":"server_error","param":null,"code":null}}"#))
    }

    fn sse_event(&self) -> Bytes {
        sse_event(self)
    }

    fn apply_headers(&self, headers: &mut http::HeaderMap) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
}

/// An error as one SSE `data:` event: what a stream that fails after its first event
/// ends with.
pub fn sse_event(error: &ApiError) -> Bytes {
    let body = error.body();
    let mut event = Vec::with_capacity(body.len() + 8);
    event.extend_from_slice(b"data: ");
    event.extend_from_slice(&body);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

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
}

//! Errors rendered in the client's API's shape. OpenAI's,
//! `{"error":{"message","type","param","code"}}`, with the status an OpenAI SDK maps to
//! its typed exceptions (400 BadRequest, 401 Authentication, 403 PermissionDenied, 404
//! NotFound, 413, 429 RateLimit, 5xx InternalServer); Anthropic's,
//! `{"type":"error","error":{"type","message"}}`, with Anthropic's statuses (529 for an
//! overloaded upstream). The layers below build [`ApiError`]s; only the server renders
//! them.

use bytes::Bytes;
use http::{HeaderValue, header};
use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::domain::ApiError;
use crate::domain::{Api, Endpoint, ErrorKind};
use http::StatusCode;

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

/// Anthropic's status and error type for an error.
pub fn anthropic_kind(error: &ApiError) -> (StatusCode, &'static str) {
    let status = error.status;
    // OpenAI words some refusals as invalid requests whatever their status (an unknown
    // model, a bad key); Anthropic's type follows the status.
    let kind = match (status.as_u16(), error.kind) {
        (401, _) => "authentication_error",
        (403, _) => "permission_error",
        (404, _) => "not_found_error",
        (413, _) => "request_too_large",
        (429, _) => "rate_limit_error",
        (402, _) | (_, ErrorKind::InsufficientQuota) => "billing_error",
        (_, ErrorKind::InvalidRequest) => "invalid_request_error",
        (_, ErrorKind::Authentication) => "authentication_error",
        (_, ErrorKind::Permission) => "permission_error",
        (_, ErrorKind::NotFound) => "not_found_error",
        (_, ErrorKind::RateLimit) => "rate_limit_error",
        (_, ErrorKind::Server) => match status.as_u16() {
            // Anthropic's clients know an overloaded service by its own status.
            503 | 529 => return (overloaded(), "overloaded_error"),
            504 => "timeout_error",
            _ => "api_error",
        },
    };
    (status, kind)
}

/// Anthropic's 529.
fn overloaded() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

#[derive(Serialize)]
struct AnthropicEnvelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicBody<'a>,
}

#[derive(Serialize)]
struct AnthropicBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

/// An error in Anthropic's shape.
pub fn anthropic_body(error: &ApiError) -> Bytes {
    let envelope = AnthropicEnvelope {
        kind: "error",
        error: AnthropicBody {
            kind: anthropic_kind(error).1,
            message: &error.message,
        },
    };
    serde_json::to_vec(&envelope)
        .map(Bytes::from)
        .unwrap_or_else(|_| {
            Bytes::from_static(
                br#"{"type":"error","error":{"type":"api_error","message":"internal error"}}"#,
            )
        })
}

/// An error as Anthropic's stream `error` event.
pub fn anthropic_event(error: &ApiError) -> Bytes {
    framed("error", &anthropic_body(error))
}

/// An error as the Responses API's stream `error` event, numbered `sequence_number`
/// when the stream's events were.
pub fn responses_event(error: &ApiError, sequence_number: Option<u64>) -> Bytes {
    #[derive(Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        code: Option<&'a str>,
        message: &'a str,
        param: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        sequence_number: Option<u64>,
    }
    let event = Event {
        kind: "error",
        code: Some(error.code.as_deref().unwrap_or(openai_type(error.kind))),
        message: &error.message,
        param: error.param.as_deref(),
        sequence_number,
    };
    let body = serde_json::to_vec(&event).unwrap_or_default();
    framed("error", &body)
}

fn framed(name: &str, data: &[u8]) -> Bytes {
    let mut event = Vec::with_capacity(data.len() + name.len() + 16);
    event.extend_from_slice(b"event: ");
    event.extend_from_slice(name.as_bytes());
    event.extend_from_slice(b"\ndata: ");
    event.extend_from_slice(data);
    event.extend_from_slice(b"\n\n");
    Bytes::from(event)
}

/// How a stream to a client of `endpoint` that fails mid-way ends.
pub fn stream_renderer(endpoint: Endpoint) -> fn(&ApiError, Option<u64>) -> Bytes {
    match endpoint {
        Endpoint::Messages => |error, _| anthropic_event(error),
        Endpoint::Responses => responses_event,
        _ => |error, _| sse_event(error),
    }
}

/// The status and body of an error for a client of `api`.
pub fn status_and_body(api: Api, error: &ApiError) -> (StatusCode, Bytes) {
    match api {
        Api::OpenAi => (error.status, error.body()),
        Api::Anthropic => (anthropic_kind(error).0, anthropic_body(error)),
    }
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

    #[test]
    fn renders_anthropic_shape_and_statuses() {
        let (status, body) = status_and_body(Api::Anthropic, &ApiError::model_not_found("x"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        let busy = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Server, "busy");
        let (status, body) = status_and_body(Api::Anthropic, &busy);
        assert_eq!(status.as_u16(), 529);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        let event = anthropic_event(&busy);
        assert!(event.starts_with(b"event: error\ndata: {\"type\":\"error\""));
        let event = responses_event(&busy, None);
        assert!(
            event.starts_with(b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\"")
        );
        let event = responses_event(&busy, Some(7));
        assert!(event.ends_with(b",\"sequence_number\":7}\n\n"));
    }
}

//! Reading and validating a client's request body: size limit, UTF-8, JSON object, and
//! the fields each endpoint requires, with errors worded like OpenAI's.

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::error::ApiError;
use crate::domain::Call;
use crate::domain::Endpoint;

/// Reads the whole body, refusing more than `limit` bytes with a 413. Every byte
/// buffered is first taken from `buffered`, the bytes all connections may hold at once;
/// when it has none left the request is refused (503) rather than queued, since waiting
/// readers would hold their connections and what they already read.
///
/// The bytes come with what they hold of `buffered`, to give back once they are parsed.
pub async fn read_limited<B>(
    body: B,
    limit: usize,
    buffered: &Semaphore,
) -> Result<(Bytes, Option<SemaphorePermit<'_>>), ApiError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::body_too_large(limit));
    }
    let mut body = body;
    let mut held: Option<SemaphorePermit<'_>> = None;
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::invalid_request("The request body could not be read."))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = first.as_ref().map_or(buf.len(), Bytes::len) + data.len();
        if len > limit {
            return Err(ApiError::body_too_large(limit));
        }
        let n = u32::try_from(data.len()).map_err(|_| ApiError::body_too_large(limit))?;
        let permit = buffered
            .try_acquire_many(n)
            .map_err(|_| ApiError::busy_reading())?;
        match held.as_mut() {
            Some(held) => held.merge(permit),
            None => held = Some(permit),
        }
        // A body in one frame is kept without copying.
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            Some(one) => {
                buf.extend_from_slice(&one);
                buf.extend_from_slice(&data);
            }
            None => buf.extend_from_slice(&data),
        }
    }
    Ok((first.unwrap_or_else(|| buf.freeze()), held))
}

/// Parses and validates a body for `endpoint`; returns the requested model name too.
pub fn parse_call(endpoint: Endpoint, bytes: &[u8]) -> Result<(String, Call), ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::invalid_request(format!(
            "The request body is not valid UTF-8 (invalid byte at offset {}).",
            e.valid_up_to()
        ))
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_request(
            "The request body is empty; expected a JSON object.",
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid_request(format!(
            "We could not parse the JSON body of your request ({e}). Please send valid JSON."
        ))
        .with_code("invalid_json")
    })?;
    let Value::Object(body) = value else {
        return Err(ApiError::invalid_request(
            "The request body must be a JSON object.",
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(missing("model"));
        }
        Some(other) => return Err(wrong_type("model", "a string", other)),
    };
    match endpoint {
        Endpoint::ChatCompletions => check_messages(&body)?,
        Endpoint::Completions => check_present(&body, "prompt", &["a string", "an array"])?,
        Endpoint::Embeddings => check_present(&body, "input", &["a string", "an array"])?,
        Endpoint::Messages => check_messages(&body)?,
        Endpoint::Responses => check_present(&body, "input", &["a string", "an array"])?,
    }
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("stream", "a boolean", other)),
    };
    if stream && !endpoint.streams() {
        return Err(
            ApiError::invalid_request("This endpoint does not support streaming.")
                .with_param("stream"),
        );
    }
    Ok((
        model,
        Call {
            endpoint,
            body,
            stream,
            // About four bytes per token for English text and JSON.
            estimated_tokens: (bytes.len() as u64).div_ceil(4),
            anthropic_beta: None,
        },
    ))
}

fn check_messages(body: &Map<String, Value>) -> Result<(), ApiError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => return Err(missing("messages")),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(wrong_type("messages", "an array", other)),
    };
    if messages.is_empty() {
        return Err(ApiError::invalid_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
        )
        .with_param("messages")
        .with_code("empty_array"));
    }
    for (i, message) in messages.iter().enumerate() {
        match message.get("role") {
            Some(Value::String(_)) => {}
            _ => {
                return Err(ApiError::invalid_request(format!(
                    "Invalid 'messages[{i}]': each message must be an object with a string 'role'."
                ))
                .with_param("messages")
                .with_code("invalid_value"));
            }
        }
    }
    Ok(())
}

fn check_present(
    body: &Map<String, Value>,
    field: &'static str,
    expected: &[&str],
) -> Result<(), ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Err(missing(field)),
        Some(Value::String(_) | Value::Array(_)) => Ok(()),
        Some(other) => Err(wrong_type(field, &expected.join(" or "), other)),
    }
}

fn missing(field: &'static str) -> ApiError {
    ApiError::invalid_request(format!("Missing required parameter: '{field}'."))
        .with_param(field)
        .with_code("missing_required_parameter")
}

fn wrong_type(field: &'static str, expected: &str, got: &Value) -> ApiError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ApiError::invalid_request(format!(
        "Invalid type for '{field}': expected {expected}, but got {got} instead."
    ))
    .with_param(field)
    .with_code("invalid_type")
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    fn err(endpoint: Endpoint, body: &[u8]) -> ApiError {
        match parse_call(endpoint, body) {
            Err(e) => e,
            Ok(_) => panic!("accepted {:?}", String::from_utf8_lossy(body)),
        }
    }

    #[test]
    fn accepts_a_minimal_chat_request() {
        let (model, call) = parse_call(
            Endpoint::ChatCompletions,
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .unwrap();
        assert_eq!(model, "m");
        assert!(call.stream);
        assert!(call.estimated_tokens > 0);
    }

    #[test]
    fn refuses_bad_bodies_with_named_params() {
        let chat = Endpoint::ChatCompletions;
        assert!(err(chat, b"").message.contains("empty"));
        assert_eq!(
            err(chat, b"{not json").code.as_deref(),
            Some("invalid_json")
        );
        assert!(err(chat, b"[1,2]").message.contains("JSON object"));
        assert!(err(chat, b"{\"model\":\"\xff\"}").message.contains("UTF-8"));
        let e = err(chat, br#"{"messages":[{"role":"user"}]}"#);
        assert_eq!(
            (e.param.as_deref(), e.code.as_deref()),
            (Some("model"), Some("missing_required_parameter"))
        );
        let e = err(chat, br#"{"model":5,"messages":[]}"#);
        assert_eq!(
            (e.param.as_deref(), e.code.as_deref()),
            (Some("model"), Some("invalid_type"))
        );
        let e = err(chat, br#"{"model":"m","messages":"hi"}"#);
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("expected an array, but got a string"));
        assert_eq!(
            err(chat, br#"{"model":"m","messages":[]}"#).code.as_deref(),
            Some("empty_array")
        );
        assert_eq!(
            err(chat, br#"{"model":"m","messages":[5]}"#)
                .code
                .as_deref(),
            Some("invalid_value")
        );
        let e = err(
            chat,
            br#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#,
        );
        assert_eq!(e.param.as_deref(), Some("stream"));
        let e = err(Endpoint::Embeddings, br#"{"model":"m"}"#);
        assert_eq!(e.param.as_deref(), Some("input"));
        let e = err(
            Endpoint::Embeddings,
            br#"{"model":"m","input":"x","stream":true}"#,
        );
        assert_eq!(e.param.as_deref(), Some("stream"));
        let e = err(Endpoint::Completions, br#"{"model":"m","prompt":{}}"#);
        assert_eq!(e.code.as_deref(), Some("invalid_type"));
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn oversized_bodies_get_413() {
        let big = Full::new(Bytes::from(vec![b'a'; 100]));
        let bytes = Semaphore::new(1_000);
        let e = read_limited(big, 10, &bytes).await.unwrap_err();
        assert_eq!(e.status, http::StatusCode::PAYLOAD_TOO_LARGE);
        let ok = Full::new(Bytes::from_static(b"12345"));
        let (read, held) = read_limited(ok, 10, &bytes).await.unwrap();
        assert_eq!(read, "12345");
        assert_eq!(bytes.available_permits(), 995, "held while the bytes are");
        drop(held);
        assert_eq!(bytes.available_permits(), 1_000);
    }

    #[tokio::test]
    async fn bodies_beyond_what_may_be_buffered_get_503() {
        let bytes = Semaphore::new(4);
        let held = bytes.try_acquire_many(2).unwrap();
        let e = read_limited(Full::new(Bytes::from_static(b"12345")), 10, &bytes)
            .await
            .unwrap_err();
        assert_eq!(e.status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code.as_deref(), Some("server_busy"));
        drop(held);
        assert_eq!(bytes.available_permits(), 4);
    }
}

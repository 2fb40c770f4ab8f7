//! OpenAI and the providers that speak its API as-is: the body passes through with only
//! `model` replaced, answers and streams pass through untouched, and auth is a bearer
//! token. Each kind differs only in its default base URL.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{StatusCode, Uri};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};

use super::sse::{MAX_EVENT_BYTES, SseError};
use super::{
    CallView, Credential, Dialect, Endpoint, Prepared, StreamError, StreamTranslator,
    TranslateError, UnsignedRequest, join, post_json,
};
use crate::config::snapshot::{DeploymentSpec, ProviderKind};
use crate::server::error::ApiError;

/// The base URL a provider kind uses when the deployment names none.
pub fn default_base_url(kind: ProviderKind) -> Option<&'static str> {
    Some(match kind {
        ProviderKind::Openai => "https://api.openai.com/v1",
        ProviderKind::Ollama => "http://localhost:11434/v1",
        ProviderKind::Vllm => "http://localhost:8000/v1",
        ProviderKind::Groq => "https://api.groq.com/openai/v1",
        ProviderKind::Mistral => "https://api.mistral.ai/v1",
        ProviderKind::Deepseek => "https://api.deepseek.com",
        ProviderKind::Together => "https://api.together.xyz/v1",
        ProviderKind::Fireworks => "https://api.fireworks.ai/inference/v1",
        ProviderKind::Openrouter => "https://openrouter.ai/api/v1",
        ProviderKind::Perplexity => "https://api.perplexity.ai",
        _ => return None,
    })
}

/// Whether the provider refuses calls without a key (local servers do not).
fn requires_key(kind: ProviderKind) -> bool {
    !matches!(
        kind,
        ProviderKind::Ollama | ProviderKind::Vllm | ProviderKind::OpenaiCompatible
    )
}

/// Dialect and bearer credential for an OpenAI-compatible deployment.
pub fn build(kind: ProviderKind, spec: &DeploymentSpec) -> Result<Prepared, String> {
    let base = match (&spec.base_url, default_base_url(kind)) {
        (Some(url), _) => url.as_str(),
        (None, Some(url)) => url,
        (None, None) => return Err("baseUrl is required for this provider".into()),
    };
    let uris = [
        join(base, Endpoint::ChatCompletions.path(), None)?,
        join(base, Endpoint::Completions.path(), None)?,
        join(base, Endpoint::Embeddings.path(), None)?,
    ];
    let credential = match &spec.api_key {
        Some(key) => Credential::bearer(key.expose())?,
        None if requires_key(kind) => return Err("apiKey is required for this provider".into()),
        None => Credential::None,
    };
    Ok(Prepared {
        dialect: std::sync::Arc::new(OpenAiCompat { uris }),
        credential,
    })
}

/// Pass-through to a server speaking OpenAI's API at these URLs.
#[derive(Debug)]
pub struct OpenAiCompat {
    /// One URL per [`Endpoint`], in [`Endpoint::index`] order.
    pub uris: [Uri; 3],
}

impl Dialect for OpenAiCompat {
    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        let body = serde_json::to_vec(&WithModel {
            model: call.model,
            body: call.body,
        })
        .map_err(|e| TranslateError::invalid("messages", e.to_string()))?;
        Ok(post_json(self.uris[call.endpoint.index()].clone(), body))
    }

    fn response(&self, _call: &CallView<'_>, body: Bytes) -> Result<Bytes, TranslateError> {
        Ok(body)
    }

    fn is_stream(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    fn stream(&self, _call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        Box::new(SsePassthrough::default())
    }

    fn error(&self, status: StatusCode, body: Bytes) -> (StatusCode, Bytes) {
        (status, openai_error_body(status, body))
    }
}

/// An upstream error body in OpenAI's shape: relayed as-is when it already is one
/// (with a null `type` filled in, as Azure sends), wrapped otherwise.
pub fn openai_error_body(status: StatusCode, body: Bytes) -> Bytes {
    if let Ok(Value::Object(mut root)) = serde_json::from_slice::<Value>(&body)
        && let Some(Value::Object(error)) = root.get_mut("error")
        && error.get("message").is_some_and(Value::is_string)
    {
        if !error.get("type").is_some_and(Value::is_string) {
            let kind = if status.is_server_error() {
                "server_error"
            } else {
                "invalid_request_error"
            };
            error.insert("type".into(), Value::String(kind.into()));
            error.entry("param").or_insert(Value::Null);
            error.entry("code").or_insert(Value::Null);
            return serde_json::to_vec(&root).map(Bytes::from).unwrap_or(body);
        }
        return body;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    ApiError::new(
        status,
        kind,
        format!("The upstream answered {status}: {text}"),
    )
    .body()
}

/// Serializes the client's body with `model` replaced, without copying the map.
struct WithModel<'a> {
    model: &'a str,
    body: &'a Map<String, Value>,
}

impl Serialize for WithModel<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.body.len()))?;
        map.serialize_entry("model", self.model)?;
        for (k, v) in self.body {
            if k != "model" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// Relays an OpenAI SSE stream as-is, releasing only whole events so a stream cut
/// mid-event never hands the client half an event. An event still incomplete past
/// [`MAX_EVENT_BYTES`] ends the stream instead of growing the buffer.
#[derive(Debug, Default)]
pub struct SsePassthrough {
    partial: BytesMut,
    /// How much of `partial` is known to hold no event boundary, so each chunk is
    /// searched once instead of the whole buffer again.
    scanned: usize,
}

#[deny(clippy::arithmetic_side_effects)]
impl StreamTranslator for SsePassthrough {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        // The common case: a chunk of whole events passes through without copying.
        if self.partial.is_empty() && ends_event(&chunk) {
            return Ok(Some(chunk));
        }
        self.partial.extend_from_slice(&chunk);
        // A boundary may straddle old and new bytes: start up to 3 bytes back.
        let from = self.scanned.saturating_sub(3);
        let end = self
            .partial
            .get(from..)
            .and_then(last_event_end)
            .map(|end| from.saturating_add(end));
        let events = end.map(|end| self.partial.split_to(end).freeze());
        // What is left follows the last boundary, so holds none.
        self.scanned = self.partial.len();
        if self.partial.len() > MAX_EVENT_BYTES {
            return Err(StreamError::too_large(SseError::TooLarge));
        }
        Ok(events)
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        // An upstream that ends without the final blank line still sent its event.
        if self.partial.is_empty() {
            Ok(None)
        } else {
            self.partial.extend_from_slice(b"\n\n");
            self.scanned = 0;
            Ok(Some(self.partial.split().freeze()))
        }
    }
}

/// Whether `data` ends exactly at an event boundary (a blank line).
fn ends_event(data: &[u8]) -> bool {
    data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n")
}

/// The offset just past the last event boundary in `data`, if any.
#[deny(clippy::arithmetic_side_effects)]
fn last_event_end(data: &[u8]) -> Option<usize> {
    let lf = data
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .map(|p| p.saturating_add(2));
    let crlf = data
        .windows(4)
        .rposition(|w| w == b"\r\n\r\n")
        .map(|p| p.saturating_add(4));
    lf.max(crlf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::SecretString;
    use crate::provider::spec;

    fn uri_of(p: &Prepared, endpoint: Endpoint) -> String {
        let body = Map::new();
        let call = CallView {
            endpoint,
            body: &body,
            stream: false,
            model: "m",
            default_max_tokens: None,
        };
        p.dialect.request(&call).unwrap().uri().to_string()
    }

    #[test]
    fn every_hosted_kind_has_an_https_default_and_needs_a_key() {
        for kind in [
            ProviderKind::Openai,
            ProviderKind::Groq,
            ProviderKind::Mistral,
            ProviderKind::Deepseek,
            ProviderKind::Together,
            ProviderKind::Fireworks,
            ProviderKind::Openrouter,
            ProviderKind::Perplexity,
        ] {
            assert!(build(kind, &spec(kind)).is_err(), "{kind:?} without key");
            let mut s = spec(kind);
            s.api_key = Some(SecretString::new("k"));
            let p = build(kind, &s).unwrap();
            let uri = uri_of(&p, Endpoint::ChatCompletions);
            assert!(uri.starts_with("https://"), "{kind:?}");
            assert!(uri.ends_with("/chat/completions"));
            let Credential::Header(name, value) = &p.credential else {
                panic!("no credential")
            };
            assert_eq!(name, header::AUTHORIZATION);
            assert_eq!(value.to_str().unwrap(), "Bearer k");
        }
    }

    #[test]
    fn base_url_override_and_local_servers_without_keys() {
        let mut s = spec(ProviderKind::Vllm);
        s.base_url = Some("http://vllm.svc:8000/v1".into());
        let p = build(ProviderKind::Vllm, &s).unwrap();
        assert_eq!(
            uri_of(&p, Endpoint::Embeddings),
            "http://vllm.svc:8000/v1/embeddings"
        );
        assert!(matches!(p.credential, Credential::None));
        let err = build(
            ProviderKind::OpenaiCompatible,
            &spec(ProviderKind::OpenaiCompatible),
        )
        .err()
        .unwrap();
        assert!(err.contains("baseUrl"));
    }

    #[test]
    fn body_passes_through_with_model_replaced() {
        let p = build(ProviderKind::Vllm, &spec(ProviderKind::Vllm)).unwrap();
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"model":"alias","messages":[],"seed":7}"#).unwrap();
        let call = CallView {
            endpoint: Endpoint::ChatCompletions,
            body: &body,
            stream: false,
            model: "real-id",
            default_max_tokens: None,
        };
        let sent: Value = serde_json::from_slice(p.dialect.request(&call).unwrap().body()).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"model":"real-id","messages":[],"seed":7})
        );
    }

    #[test]
    fn error_bodies_are_relayed_or_wrapped_in_openai_shape() {
        let shaped =
            Bytes::from_static(br#"{"error":{"message":"x","type":"y","param":null,"code":null}}"#);
        assert_eq!(
            openai_error_body(StatusCode::BAD_REQUEST, shaped.clone()),
            shaped
        );
        let azure = Bytes::from_static(
            br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400}}"#,
        );
        let v: Value =
            serde_json::from_slice(&openai_error_body(StatusCode::BAD_REQUEST, azure)).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "content_filter");
        let html = Bytes::from_static(b"<html>bad gateway</html>");
        let v: Value =
            serde_json::from_slice(&openai_error_body(StatusCode::BAD_GATEWAY, html)).unwrap();
        assert_eq!(v["error"]["type"], "server_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bad gateway")
        );
    }

    #[test]
    fn sse_passthrough_releases_only_whole_events() {
        let mut t = SsePassthrough::default();
        assert_eq!(
            t.feed(Bytes::from_static(b"data: 1\n\n")).unwrap().unwrap(),
            "data: 1\n\n"
        );
        assert_eq!(t.feed(Bytes::from_static(b"data: {\"a\"")).unwrap(), None);
        assert_eq!(
            t.feed(Bytes::from_static(b":2}\n\ndata: 3"))
                .unwrap()
                .unwrap(),
            "data: {\"a\":2}\n\n"
        );
        assert_eq!(t.finish().unwrap().unwrap(), "data: 3\n\n");
    }

    #[test]
    fn sse_passthrough_finds_boundaries_split_across_chunks() {
        let mut t = SsePassthrough::default();
        assert_eq!(t.feed(Bytes::from_static(b"data: 1\r\n\r")).unwrap(), None);
        assert_eq!(
            t.feed(Bytes::from_static(b"\ndata: 2\n")).unwrap().unwrap(),
            "data: 1\r\n\r\n"
        );
        assert_eq!(
            t.feed(Bytes::from_static(b"\ndata: 3")).unwrap().unwrap(),
            "data: 2\n\n"
        );
        assert_eq!(t.finish().unwrap().unwrap(), "data: 3\n\n");
    }

    #[test]
    fn sse_passthrough_refuses_an_event_past_the_limit() {
        let mut t = SsePassthrough::default();
        let piece = Bytes::from(vec![b'x'; 1024 * 1024]);
        let mut last = Ok(None);
        for _ in 0..=MAX_EVENT_BYTES / piece.len() {
            last = t.feed(piece.clone());
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last.unwrap_err().code, "upstream_event_too_large");
        assert!(t.partial.len() <= MAX_EVENT_BYTES + piece.len());
    }
}

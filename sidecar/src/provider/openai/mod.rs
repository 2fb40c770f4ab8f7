//! OpenAI and the providers that speak its API as-is: the body passes through with only
//! `model` replaced, answers and streams pass through (a stream's usage chunk is
//! always asked for, to meter it, and removed again when the client did not ask), and
//! auth is a bearer token. Each kind differs only in its default base URL.

pub mod responses;
mod stream;

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{StatusCode, Uri};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::stream::SsePassthrough;
use super::openai_wire::UsageIn;
use super::translate::Patched;
use super::{
    BuildError, Credential, Dialect, Markers, Prepared, StreamTranslator, TranslateError,
    UnsignedRequest, classify, excerpt, join, post_json,
};
use crate::config::snapshot::{DeploymentSpec, ProviderKind};
use crate::domain::{CallView, Endpoint, ErrorClass, Reply, UpstreamError};

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
pub fn build(kind: ProviderKind, spec: &DeploymentSpec) -> Result<Prepared, BuildError> {
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
    // OpenAI serves the Responses API itself; other servers get it through chat.
    let responses = match kind {
        ProviderKind::Openai => Some(join(base, Endpoint::Responses.path(), None)?),
        _ => None,
    };
    Ok(Prepared {
        dialect: std::sync::Arc::new(OpenAiCompat { uris, responses }),
        credential,
    })
}

/// Pass-through to a server speaking OpenAI's API at these URLs.
#[derive(Debug)]
pub struct OpenAiCompat {
    /// One URL per endpoint of [`Endpoint::OPENAI`], in [`Endpoint::index`] order.
    pub uris: [Uri; 3],
    /// The Responses API's URL, where the upstream serves it.
    pub responses: Option<Uri>,
}

impl Dialect for OpenAiCompat {
    fn native(&self, endpoint: Endpoint) -> bool {
        match endpoint {
            Endpoint::Responses => self.responses.is_some(),
            Endpoint::Messages => false,
            _ => true,
        }
    }

    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        let uri = match (call.endpoint, &self.responses) {
            (Endpoint::Responses, Some(uri)) => {
                let body = Patched {
                    body: call.body,
                    set: &[("model", Value::from(call.model))],
                    skip: &[],
                }
                .to_vec()?;
                return Ok(post_json(uri.clone(), body));
            }
            (endpoint, _) => self.uris.get(endpoint.index()).ok_or_else(|| {
                TranslateError::invalid("model", "this deployment does not serve this API")
            })?,
        };
        let body = serde_json::to_vec(&WithModel {
            model: call.model,
            body: call.body,
            ask_usage: call.stream && call.endpoint.streams(),
        })
        .map_err(|e| TranslateError::invalid("messages", e.to_string()))?;
        Ok(post_json(uri.clone(), body))
    }

    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Reply, TranslateError> {
        if call.endpoint == Endpoint::Responses {
            return responses::reply(body);
        }
        /// The one field metering reads; the rest is skipped, not built.
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            usage: Option<UsageIn>,
        }
        // Parsing also proves the answer is a JSON object: anything else is a fault.
        let answer: Answer = serde_json::from_slice(&body).map_err(TranslateError::malformed)?;
        Ok(Reply {
            usage: answer.usage.map(Into::into),
            body,
            usage_estimated: false,
        })
    }

    fn is_stream(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
    }

    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        match call.endpoint {
            Endpoint::Responses => {
                let keep = call.body.get("store") != Some(&Value::Bool(false));
                Box::new(responses::passthrough(keep))
            }
            _ => Box::new(SsePassthrough::new(!call.wants_stream_usage())),
        }
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> UpstreamError {
        error(status, body)
    }
}

/// How OpenAI, Azure OpenAI and the servers that speak their API word a prompt over the
/// context window or a content refusal (lower case): OpenAI's and Azure's codes, and
/// vLLM's, Ollama's and others' messages.
const MARKERS: Markers = Markers {
    context_window: &[
        "context_length_exceeded",
        "maximum context length",
        "context window",
        "context length",
        "prompt is too long",
        "input is too long",
        "too many tokens",
    ],
    content_policy: &[
        "content_policy_violation",
        "content_filter",
        "content management policy",
        "content policy",
        "responsibleaipolicyviolation",
    ],
};

/// Reads an OpenAI-style error: `{"error":{"message","type","param","code"}}`, or the
/// flat `{"message","type","code"}` some servers send; anything else (an HTML page from
/// a proxy) is quoted.
pub fn error(status: StatusCode, body: &[u8]) -> UpstreamError {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed
        .as_ref()
        .map(|root| root.get("error").filter(|e| e.is_object()).unwrap_or(root))
        .filter(|e| e.get("message").is_some_and(Value::is_string));
    let Some(error) = error else {
        return UpstreamError::answered(
            ErrorClass::from_status(status.as_u16()),
            status.as_u16(),
            format!("The upstream answered {status}: {}", excerpt(body)),
        );
    };
    let text = |field: &str| match error.get(field) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let message = text("message").unwrap_or_default();
    let code = text("code");
    let class = classify(status, &[code.as_deref().unwrap_or(""), &message], &MARKERS);
    let mut error_out = UpstreamError::answered(class, status.as_u16(), message)
        .with_code(code)
        .with_param(text("param"));
    if let Some(object) = error.as_object() {
        let details: Map<String, Value> = object
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "message" | "type" | "param" | "code"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        error_out.details = (!details.is_empty()).then(|| Box::new(details));
    }
    error_out
}

/// Serializes the client's body with `model` replaced, without copying the map. A
/// stream also asks for its usage chunk (`stream_options.include_usage`), which a
/// stream without cannot be metered; the client's other stream options are kept.
struct WithModel<'a> {
    model: &'a str,
    body: &'a Map<String, Value>,
    ask_usage: bool,
}

impl Serialize for WithModel<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        for (k, v) in self.body {
            if k == "messages" {
                map.serialize_entry(k, &WithoutThinkingBlocks(v))?;
            } else if k != "model" && !(self.ask_usage && k == "stream_options") {
                map.serialize_entry(k, v)?;
            }
        }
        if self.ask_usage {
            let mut options = match self.body.get("stream_options") {
                Some(Value::Object(options)) => options.clone(),
                _ => Map::new(),
            };
            options.insert("include_usage".into(), Value::Bool(true));
            map.serialize_entry("stream_options", &options)?;
        }
        map.end()
    }
}

/// Chat messages without llmesh's `thinking_blocks` (Anthropic's signed reasoning,
/// carried for providers that read it back; see `provider::bridge`), which OpenAI's
/// strict schema refuses.
struct WithoutThinkingBlocks<'a>(&'a Value);

impl Serialize for WithoutThinkingBlocks<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let Value::Array(messages) = self.0 else {
            return self.0.serialize(s);
        };
        if !messages.iter().any(|m| m.get("thinking_blocks").is_some()) {
            return self.0.serialize(s);
        }
        let mut seq = s.serialize_seq(Some(messages.len()))?;
        for message in messages {
            match message {
                Value::Object(fields) => {
                    seq.serialize_element(&Without {
                        fields,
                        skip: "thinking_blocks",
                    })?;
                }
                other => seq.serialize_element(other)?,
            }
        }
        seq.end()
    }
}

/// An object without one field.
struct Without<'a> {
    fields: &'a Map<String, Value>,
    skip: &'a str,
}

impl Serialize for Without<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.fields {
            if k != self.skip {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::snapshot::SecretString;
    use crate::provider::spec;
    use crate::provider::test_support;
    use serde_json::json;

    fn uri_of(p: &Prepared, endpoint: Endpoint) -> String {
        let body = Map::new();
        let call = CallView {
            endpoint,
            body: &body,
            stream: false,
            model: "m",
            default_max_tokens: None,
            anthropic_beta: None,
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
        assert!(err.to_string().contains("baseUrl"));
    }

    #[test]
    fn body_passes_through_with_model_replaced() {
        let p = build(ProviderKind::Vllm, &spec(ProviderKind::Vllm)).unwrap();
        let body: Map<String, Value> =
            serde_json::from_str(r#"{"model":"alias","messages":[],"seed":7}"#).unwrap();
        let call = test_support::view(Endpoint::ChatCompletions, &body, false, "real-id");
        let sent: Value = serde_json::from_slice(p.dialect.request(&call).unwrap().body()).unwrap();
        assert_eq!(
            sent,
            serde_json::json!({"model":"real-id","messages":[],"seed":7})
        );
        // A stream asks for its usage, keeping the client's other stream options.
        let body: Map<String, Value> = serde_json::from_str(
            r#"{"model":"a","messages":[],"stream":true,"stream_options":{"x":1}}"#,
        )
        .unwrap();
        let call = CallView {
            stream: true,
            body: &body,
            ..call
        };
        let sent: Value = serde_json::from_slice(p.dialect.request(&call).unwrap().body()).unwrap();
        assert_eq!(
            sent["stream_options"],
            serde_json::json!({"x": 1, "include_usage": true})
        );
        assert_eq!(sent["model"], "real-id");
    }

    #[test]
    fn whole_answers_pass_through_with_their_usage() {
        let p = build(ProviderKind::Vllm, &spec(ProviderKind::Vllm)).unwrap();
        let body = Map::new();
        let call = test_support::view(Endpoint::ChatCompletions, &body, false, "m");
        let answer = Bytes::from_static(
            br#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":null}}}"#,
        );
        let reply = p.dialect.response(&call, answer.clone()).unwrap();
        assert_eq!(reply.body, answer);
        let usage = reply.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens
            ),
            (3, 4, 0)
        );
        let none = p
            .dialect
            .response(&call, Bytes::from_static(br#"{"usage":null}"#))
            .unwrap();
        assert_eq!(none.usage, None);
        assert!(
            p.dialect
                .response(&call, Bytes::from_static(b"not json"))
                .is_err()
        );
        assert!(
            p.dialect
                .response(&call, Bytes::from_static(b"[1]"))
                .is_err()
        );
    }

    #[test]
    fn errors_are_read_and_classified() {
        let openai = br#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let e = error(StatusCode::BAD_REQUEST, openai);
        assert_eq!(e.class, ErrorClass::ContextWindow);
        assert_eq!(e.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.starts_with("This model's maximum context length"));
        let azure = br#"{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter","status":400}}"#;
        let e = error(StatusCode::BAD_REQUEST, azure);
        assert_eq!(e.class, ErrorClass::ContentPolicy);
        assert_eq!(
            e.details.unwrap()["status"],
            400,
            "Azure's other fields are kept"
        );
        let vllm = br#"{"object":"error","message":"This model's maximum context length is 4096 tokens.","type":"BadRequestError","param":null,"code":400}"#;
        let e = error(StatusCode::BAD_REQUEST, vllm);
        assert_eq!(e.class, ErrorClass::ContextWindow);
        assert_eq!(e.code.as_deref(), Some("400"));
        let plain = br#"{"error":{"message":"Unknown parameter: 'foo'.","type":"invalid_request_error","param":"foo","code":"unknown_parameter"}}"#;
        assert_eq!(
            error(StatusCode::BAD_REQUEST, plain).class,
            ErrorClass::Invalid
        );
        let e = error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(e.class, ErrorClass::Server);
        assert_eq!(e.status, Some(502));
        assert!(e.message.contains("bad gateway"));
        let e = error(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"message":"slow down"}}"#,
        );
        assert_eq!(
            (e.class, e.message.as_str()),
            (ErrorClass::RateLimited, "slow down")
        );
        assert_eq!(
            error(StatusCode::UNAUTHORIZED, b"{}").class,
            ErrorClass::Auth
        );
    }

    #[test]
    fn thinking_blocks_never_reach_an_openai_upstream() {
        let mut s = spec(ProviderKind::Openai);
        s.api_key = Some(SecretString::new("k"));
        let p = build(ProviderKind::Openai, &s).unwrap();
        let body = json!({"model": "x", "messages": [
            {"role": "assistant", "content": "a", "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}]},
            {"role": "user", "content": "b"}
        ]});
        let body = body.as_object().unwrap();
        let call = CallView {
            endpoint: Endpoint::ChatCompletions,
            body,
            stream: false,
            model: "gpt-4o",
            default_max_tokens: None,
            anthropic_beta: None,
        };
        let sent: Value = serde_json::from_slice(p.dialect.request(&call).unwrap().body()).unwrap();
        assert_eq!(
            sent["messages"][0],
            json!({"role": "assistant", "content": "a"})
        );
        assert_eq!(sent["messages"][1], json!({"role": "user", "content": "b"}));
    }
}

//! The demo provider: a fake upstream answering in-process, so the quickstart runs with
//! no network and no provider account. For local trials only.
//!
//! It behaves by the deployment's upstream `model`:
//! - `echo` (or anything else): replies with the last user message, streamed word by
//!   word when asked;
//! - `embed`: returns small deterministic embeddings;
//! - `error-NNN` (e.g. `error-429`, `error-503`): always fails with that status, in
//!   OpenAI's error shape, with `retry-after: 1` on 429;
//! - `slow-MS`: waits MS milliseconds, then echoes.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, Uri, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};

use super::openai::OpenAiCompat;
use super::{BuildError, Credential, Prepared, join};
use crate::domain::Endpoint;
use crate::upstream::{BoxError, ResponseFuture, Transport, UpstreamBody, UpstreamRequest};

const BASE: &str = "http://demo.llmesh.invalid/v1";

/// Pause between streamed words, so streaming is visible in a terminal.
const WORD_DELAY: Duration = Duration::from_millis(20);

/// The demo's URLs; they only carry the endpoint to the in-process transport.
pub fn uris() -> Result<[Uri; 3], String> {
    let [a, b, c] = Endpoint::OPENAI.map(|e| join(BASE, e.path(), None));
    Ok([a?, b?, c?])
}

/// The demo speaks OpenAI's API, so it is a pass-through with no credential.
pub fn build() -> Result<Prepared, BuildError> {
    Ok(Prepared {
        dialect: std::sync::Arc::new(OpenAiCompat {
            uris: uris()?,
            responses: None,
        }),
        credential: Credential::None,
    })
}

/// The in-process transport for demo deployments.
#[derive(Clone, Copy, Debug, Default)]
pub struct DemoTransport;

impl Transport for DemoTransport {
    fn send(&self, request: UpstreamRequest) -> ResponseFuture {
        Box::pin(async move {
            let path = request.uri().path().to_owned();
            let body = match request.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            Ok(answer(&path, &request).await)
        })
    }
}

async fn answer(path: &str, request: &Value) -> Response<UpstreamBody> {
    let model = request["model"].as_str().unwrap_or("echo");
    if let Some(code) = model.strip_prefix("error-") {
        let status = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status);
    }
    if let Some(ms) = model.strip_prefix("slow-") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(1000))).await;
    }
    if path.ends_with(Endpoint::Embeddings.path()) || model == "embed" {
        return json_response(embeddings(model, &request["input"]));
    }
    let text = reply_text(request);
    let prompt_tokens = estimate_tokens(&request.to_string());
    let completion_tokens = estimate_tokens(&text);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let chat = path.ends_with(Endpoint::ChatCompletions.path());
    if request["stream"].as_bool() == Some(true) {
        let include_usage = request["stream_options"]["include_usage"].as_bool() == Some(true);
        return stream(model, chat, &text, include_usage.then_some(usage));
    }
    let body = if chat {
        json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion",
            "created": now(),
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage,
        })
    } else {
        json!({
            "id": "cmpl-demo",
            "object": "text_completion",
            "created": now(),
            "model": model,
            "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        })
    };
    json_response(body)
}

/// The echoed text: the last user message (or the prompt), or a greeting.
fn reply_text(request: &Value) -> String {
    let last_user = request["messages"].as_array().and_then(|messages| {
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            })
    });
    let prompt = request["prompt"].as_str().map(str::to_owned);
    match last_user.or(prompt) {
        Some(text) if !text.is_empty() => format!("You said: {text}"),
        _ => "Hello from the llmesh demo provider.".to_owned(),
    }
}

fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4).max(1)
}

fn embeddings(model: &str, input: &Value) -> Value {
    let inputs: Vec<String> = match input {
        Value::Array(items) => items.iter().map(Value::to_string).collect(),
        other => vec![other.to_string()],
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            // A deterministic vector derived from the bytes: equal inputs, equal vectors.
            let mut v = [0f32; 8];
            for (i, b) in text.bytes().enumerate() {
                v[i % 8] += f32::from(b) / 255.0;
            }
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            let embedding: Vec<f32> = v.iter().map(|x| x / norm).collect();
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| estimate_tokens(t)).sum();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

fn stream(model: &str, chat: bool, text: &str, usage: Option<Value>) -> Response<UpstreamBody> {
    let created = now();
    let chunk = |delta: Value, finish: Value| -> Value {
        if chat {
            json!({
                "id": "chatcmpl-demo", "object": "chat.completion.chunk", "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            })
        } else {
            json!({
                "id": "cmpl-demo", "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": delta["content"].as_str().unwrap_or(""),
                             "logprobs": null, "finish_reason": finish}],
            })
        }
    };
    let mut events = Vec::new();
    if chat {
        events.push(chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        ));
    }
    for (i, word) in text.split(' ').enumerate() {
        let piece = if i == 0 {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    if let Some(usage) = usage {
        let object = if chat {
            "chat.completion.chunk"
        } else {
            "text_completion"
        };
        events.push(json!({
            "id": "chatcmpl-demo", "object": object, "created": created, "model": model,
            "choices": [], "usage": usage,
        }));
    }
    let mut frames: Vec<Bytes> = events
        .iter()
        .map(|e| Bytes::from(format!("data: {e}\n\n")))
        .collect();
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let body = futures_util::stream::unfold(frames.into_iter(), |mut frames| async move {
        let frame = frames.next()?;
        tokio::time::sleep(WORD_DELAY).await;
        Some((Ok::<_, BoxError>(Frame::data(frame)), frames))
    });
    let mut response = Response::new(StreamBody::new(body).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

fn error(status: StatusCode) -> Response<UpstreamBody> {
    let (kind, code) = match status.as_u16() {
        429 => ("requests", "rate_limit_exceeded"),
        400..=499 => ("invalid_request_error", "demo_error"),
        _ => ("server_error", "demo_error"),
    };
    let body = json!({"error": {
        "message": format!("The demo provider always answers {status} for this model."),
        "type": kind, "param": null, "code": code,
    }});
    let mut response = json_response(body);
    *response.status_mut() = status;
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn json_response(body: Value) -> Response<UpstreamBody> {
    let bytes = Bytes::from(body.to_string());
    let mut response = Response::new(Full::new(bytes).map_err(|never| match never {}).boxed());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn call(endpoint: Endpoint, body: Value) -> (StatusCode, Bytes) {
        let uris = uris().unwrap();
        let request = http::Request::post(uris[endpoint.index()].clone())
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let response = DemoTransport.send(request).await.unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn echoes_the_last_user_message() {
        let (status, body) = call(
            Endpoint::ChatCompletions,
            json!({"model": "echo", "messages": [{"role": "user", "content": "hi there"}]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "You said: hi there");
        assert_eq!(v["object"], "chat.completion");
    }

    #[tokio::test(start_paused = true)]
    async fn streams_words_then_usage_then_done() {
        let (_, body) = call(
            Endpoint::ChatCompletions,
            json!({"model": "echo", "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "a b"}]}),
        )
        .await;
        let text = std::str::from_utf8(&body).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.last(), Some(&"data: [DONE]"));
        let usage: Value = serde_json::from_str(&events[events.len() - 2][6..]).unwrap();
        assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
        assert!(text.contains("\"content\":\" b\""));
    }

    #[tokio::test(start_paused = true)]
    async fn error_models_fail_with_their_status() {
        let (status, body) = call(
            Endpoint::ChatCompletions,
            json!({"model": "error-429", "messages": []}),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    #[tokio::test(start_paused = true)]
    async fn embeds_each_input() {
        let (_, body) = call(
            Endpoint::Embeddings,
            json!({"model": "embed", "input": ["a", "b", "c"]}),
        )
        .await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 3);
        assert_eq!(v["data"][2]["index"], 2);
    }
}

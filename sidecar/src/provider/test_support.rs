//! Fixtures shared by the translating providers' unit tests: a call as a dialect sees
//! it, the request a dialect builds, the answer it makes of a body, and the events a
//! stream translator writes for an upstream stream fed in pieces.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Prepared, StreamError, StreamTranslator, TranslateError};
use crate::domain::{CallView, Endpoint};

/// `body` (a JSON object) as a request body map.
pub fn object(body: &Value) -> Map<String, Value> {
    body.as_object().cloned().unwrap_or_default()
}

/// A call of `model` with no model default for `max_tokens`.
pub fn view<'a>(
    endpoint: Endpoint,
    body: &'a Map<String, Value>,
    stream: bool,
    model: &'a str,
) -> CallView<'a> {
    CallView {
        endpoint,
        body,
        stream,
        model,
        default_max_tokens: None,
        anthropic_beta: None,
    }
}

/// The upstream request a dialect builds for `call`: its URL and JSON body.
pub fn sent(
    prepared: &Prepared,
    call: &CallView<'_>,
) -> Result<(http::Uri, Value), TranslateError> {
    let request = prepared.dialect.request(call)?;
    let body = serde_json::from_slice(request.body()).expect("request bodies are JSON");
    Ok((request.uri().clone(), body))
}

/// The client's answer a dialect makes of the upstream's whole `body`.
pub fn answer(
    prepared: &Prepared,
    call: &CallView<'_>,
    body: &Value,
) -> Result<Value, TranslateError> {
    let reply = prepared
        .dialect
        .response(call, Bytes::from(body.to_string()))?;
    Ok(serde_json::from_slice(&reply.body).expect("answers are JSON"))
}

/// Feeds `raw` to `translator` in pieces of `chunk` bytes, then finishes it; returns the
/// events written (`"[DONE]"` as a string), or the first error.
pub fn run_stream(
    mut translator: Box<dyn StreamTranslator>,
    raw: &[u8],
    chunk: usize,
) -> Result<Vec<Value>, StreamError> {
    let mut out = Vec::new();
    for piece in raw.chunks(chunk.max(1)) {
        if let Some(b) = translator.feed(Bytes::copy_from_slice(piece))? {
            out.extend_from_slice(&b);
        }
    }
    if let Some(b) = translator.finish()? {
        out.extend_from_slice(&b);
    }
    Ok(events(&out))
}

/// The `data:` events of an OpenAI stream, `[DONE]` as a string.
pub fn events(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e
                .strip_prefix("data: ")
                .expect("every event is one data line");
            if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(data).expect("events are JSON")
            }
        })
        .collect()
}

/// The text of a stream's content deltas, joined.
pub fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The tool calls of a stream's events, reassembled by index: `(id, name, arguments)`.
pub fn streamed_tool_calls(events: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for delta in events
        .iter()
        .flat_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
    {
        let index = delta["index"]
            .as_u64()
            .and_then(|i| usize::try_from(i).ok());
        let index = index.expect("tool call deltas have an index");
        if index == calls.len() {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            calls.push((
                text(&delta["id"]),
                text(&delta["function"]["name"]),
                String::new(),
            ));
        }
        let arguments = delta["function"]["arguments"].as_str().unwrap_or("");
        calls[index].2.push_str(arguments);
    }
    calls
}

/// The message of a `chat.completion`'s first choice, checked to say `content` after
/// `reasoning` and to finish with `finish`.
pub fn first_message<'v>(
    completion: &'v Value,
    finish: &str,
    content: &str,
    reasoning: &str,
) -> &'v Value {
    assert_eq!(completion["object"], "chat.completion");
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], finish);
    assert_eq!(choice["message"]["content"], content);
    assert_eq!(choice["message"]["reasoning_content"], reasoning);
    &choice["message"]
}

/// A provider context whose transport reaches nothing and whose environment is empty,
/// so a build never depends on the machine the tests run on.
pub fn offline() -> super::ProviderContext {
    struct Offline;
    impl crate::upstream::Transport for Offline {
        fn send(
            &self,
            _request: crate::upstream::UpstreamRequest,
        ) -> crate::upstream::ResponseFuture {
            Box::pin(async { Err(crate::upstream::TransportError::Connect("offline".into())) })
        }
    }
    let env: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    super::ProviderContext::with_env(std::sync::Arc::new(Offline), std::sync::Arc::new(env))
}

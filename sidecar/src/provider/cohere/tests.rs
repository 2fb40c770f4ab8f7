//! Unit tests of the Cohere translation: request, response, stream and errors. The
//! exchange with a mock Cohere is tested in `sidecar/tests/provider_cohere.rs`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::*;
use crate::config::snapshot::{ProviderKind, SecretString};
use crate::domain::ErrorClass;
use crate::provider::StreamError;
use crate::provider::test_support::{self, object};

fn dialect() -> Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Cohere);
    spec.model = "command-a-03-2025".into();
    spec.api_key = Some(SecretString::new("co-key"));
    build(&spec).unwrap()
}

fn view<'a>(endpoint: Endpoint, body: &'a Map<String, Value>, stream: bool) -> CallView<'a> {
    test_support::view(endpoint, body, stream, "command-a-03-2025")
}

fn sent(endpoint: Endpoint, body: Value) -> (http::Uri, Value) {
    let map = object(&body);
    test_support::sent(&dialect(), &view(endpoint, &map, false)).unwrap()
}

#[test]
fn chat_maps_to_v2_chat() {
    let (uri, body) = sent(
        Endpoint::ChatCompletions,
        json!({
            "model": "chat",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "content": "I will look it up.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
                {"role": "assistant", "content": "A cat."}
            ],
            "max_tokens": 100, "temperature": 0.3, "top_p": 0.5, "stop": ["END"], "seed": 7,
            "frequency_penalty": 0.1, "presence_penalty": 0.2,
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "tool_choice": "required",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        }),
    );
    assert_eq!(uri.to_string(), "https://api.cohere.com/v2/chat");
    assert_eq!(
        body,
        json!({
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
                {"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
                {"role": "assistant", "content": "A cat."}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "tool_choice": "REQUIRED",
            "max_tokens": 100, "temperature": 0.3, "p": 0.5, "stop_sequences": ["END"], "seed": 7,
            "frequency_penalty": 0.1, "presence_penalty": 0.2,
            "response_format": {"type": "json_object", "json_schema": {"type": "object"}}
        })
    );
    let tools = json!([
        {"type": "function", "function": {"name": "a"}},
        {"type": "function", "function": {"name": "b"}}
    ]);
    let (_, named) = sent(
        Endpoint::ChatCompletions,
        json!({"messages": [{"role": "user", "content": "x"}], "tools": tools,
               "tool_choice": {"type": "function", "function": {"name": "b"}}}),
    );
    assert_eq!(named["tools"].as_array().unwrap().len(), 1);
    assert_eq!(named["tools"][0]["function"]["name"], "b");
    assert_eq!(named["tool_choice"], "REQUIRED");
}

fn answer(body: Value) -> Result<Value, TranslateError> {
    let map = Map::new();
    test_support::answer(
        &dialect(),
        &view(Endpoint::ChatCompletions, &map, false),
        &body,
    )
}

#[test]
fn responses_finish_reasons_and_usage() {
    let v = answer(json!({
        "id": "abc", "finish_reason": "TOOL_CALL",
        "message": {"role": "assistant", "tool_plan": "I will call f.",
            "tool_calls": [{"id": "f_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        "usage": {"billed_units": {"input_tokens": 5, "output_tokens": 7}, "tokens": {"input_tokens": 50, "output_tokens": 7}, "cached_tokens": 3}
    }))
    .unwrap();
    assert_eq!(v["id"], "abc");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "I will call f.");
    assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"a\":1}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
    for (reason, finish) in [
        ("COMPLETE", "stop"),
        ("STOP_SEQUENCE", "stop"),
        ("MAX_TOKENS", "length"),
    ] {
        let v = answer(json!({"id": "x", "finish_reason": reason,
            "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]}}))
        .unwrap();
        assert_eq!(v["choices"][0]["finish_reason"], finish);
        assert_eq!(v["choices"][0]["message"]["content"], "hi");
    }
    assert!(answer(json!({"id": "x", "finish_reason": "ERROR", "message": {}})).is_err());
}

fn stream(events: &[Value], chunk: usize) -> Result<Vec<Value>, StreamError> {
    let body = json!({"stream_options": {"include_usage": true}});
    let map = object(&body);
    let translator = dialect()
        .dialect
        .stream(&view(Endpoint::ChatCompletions, &map, true));
    let raw: String = events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    test_support::run_stream(translator, raw.as_bytes(), chunk)
}

fn tool_events() -> Vec<Value> {
    vec![
        json!({"id": "m1", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will "}}}),
        json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "call."}}}),
        json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "a_1", "type": "function", "function": {"name": "a", "arguments": ""}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "{\"x\":"}}}}}),
        json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "1}"}}}}}),
        json!({"type": "tool-call-end", "index": 0}),
        json!({"type": "tool-call-start", "index": 1, "delta": {"message": {"tool_calls": {"id": "b_2", "type": "function", "function": {"name": "b", "arguments": ""}}}}}),
        json!({"type": "tool-call-delta", "index": 1, "delta": {"message": {"tool_calls": {"function": {"arguments": "{}"}}}}}),
        json!({"type": "tool-call-end", "index": 1}),
        json!({"type": "message-end", "delta": {"finish_reason": "TOOL_CALL", "usage": {"billed_units": {"input_tokens": 4, "output_tokens": 9}}}}),
    ]
}

#[test]
fn streamed_tool_calls_are_reassembled() {
    for chunk in [1, 9, 4096] {
        let out = stream(&tool_events(), chunk).unwrap();
        assert_eq!(out.last().unwrap(), "[DONE]");
        assert!(out[..out.len() - 1].iter().all(|c| c["id"] == "m1"));
        let mut args = [String::new(), String::new()];
        let mut ids = Vec::new();
        let mut text = String::new();
        for c in &out[..out.len() - 1] {
            text.push_str(c["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
            for d in c["choices"][0]["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let i = d["index"].as_u64().unwrap() as usize;
                if let Some(id) = d["id"].as_str() {
                    ids.push(id.to_owned());
                }
                args[i].push_str(d["function"]["arguments"].as_str().unwrap_or(""));
            }
        }
        assert_eq!(text, "I will call.");
        assert_eq!(ids, ["a_1", "b_2"]);
        assert_eq!(args, ["{\"x\":1}", "{}"]);
        let usage = &out[out.len() - 2]["usage"];
        assert_eq!(usage["prompt_tokens"], 4);
        assert_eq!(
            out[out.len() - 3]["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }
}

#[test]
fn stream_failures() {
    let mut error = tool_events();
    *error.last_mut().unwrap() =
        json!({"type": "message-end", "delta": {"finish_reason": "ERROR"}});
    assert_eq!(
        stream(&error, 64).unwrap_err().code,
        "upstream_stream_error"
    );
    let mut cut = tool_events();
    cut.truncate(5);
    assert!(
        stream(&cut, 64)
            .unwrap_err()
            .message
            .contains("message-end")
    );
    let orphan = vec![tool_events()[0].clone(), tool_events()[4].clone()];
    assert!(
        stream(&orphan, 64)
            .unwrap_err()
            .message
            .contains("never started")
    );
    let map = Map::new();
    let mut t = dialect()
        .dialect
        .stream(&view(Endpoint::ChatCompletions, &map, true));
    assert!(
        t.feed(Bytes::from_static(
            b"event: content-delta\ndata: {\"type\":\n\n"
        ))
        .is_err()
    );
}

#[test]
fn embeddings_and_errors() {
    let (uri, body) = sent(
        Endpoint::Embeddings,
        json!({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 512, "input_type": "search_query"}),
    );
    assert_eq!(uri.path(), "/v2/embed");
    assert_eq!(
        body,
        json!({"model": "command-a-03-2025", "texts": ["a", "b"], "input_type": "search_query",
               "embedding_types": ["base64"], "output_dimension": 512})
    );
    let map = json!({"input": "a"}).as_object().unwrap().clone();
    let out = dialect()
        .dialect
        .response(
            &view(Endpoint::Embeddings, &map, false),
            Bytes::from(json!({"id": "e", "embeddings": {"float": [[0.5, 0.5]]}, "texts": ["a"],
                "meta": {"billed_units": {"input_tokens": 2}}, "response_type": "embeddings_by_type"}).to_string()),
        )
        .unwrap();
    let v: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(v["data"][0]["embedding"], json!([0.5, 0.5]));
    assert_eq!(v["usage"]["prompt_tokens"], 2);

    for (status, want, class) in [
        (400, 400, ErrorClass::Invalid),
        (401, 401, ErrorClass::Auth),
        (402, 402, ErrorClass::Invalid),
        (404, 404, ErrorClass::Invalid),
        (429, 429, ErrorClass::RateLimited),
        (499, 502, ErrorClass::Server),
        (500, 500, ErrorClass::Server),
    ] {
        let e = response::error(
            StatusCode::from_u16(status).unwrap(),
            br#"{"id":"x","message":"m"}"#,
        );
        assert_eq!(
            (e.class, e.status, e.message.as_str()),
            (class, Some(want), "m")
        );
    }
    let e = response::error(
        StatusCode::BAD_REQUEST,
        br#"{"id":"x","message":"too many tokens: total number of tokens in the prompt cannot exceed 4081"}"#,
    );
    assert_eq!(e.class, ErrorClass::ContextWindow);
}

//! The conformance cases in OpenAI's chat completions API (`POST /v1/chat/completions`),
//! the API every provider is translated to and from.

use std::collections::BTreeMap;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::ModelSpec;
use llmesh_tests::MockOpenAi;
use serde_json::{Value, json};

use super::{Behaviour, PNG, Upstream, setup, tools, user, with_png};
use crate::support::{Running, header, model, post, post_stream, sse_data};

async fn chat(sidecar: &Running, body: Value) -> (StatusCode, http::HeaderMap, Value) {
    post(sidecar.api, "/v1/chat/completions", body).await
}

/// Streams and parses the chunks (`[DONE]` as a string).
async fn stream(sidecar: &Running, mut body: Value) -> Vec<Value> {
    body["stream"] = json!(true);
    let (status, _, frames) = post_stream(sidecar.api, body).await;
    assert_eq!(status, StatusCode::OK);
    sse_data(&frames)
        .into_iter()
        .map(|d| {
            if d == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(&d).unwrap()
            }
        })
        .collect()
}

fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn finish_reasons(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned))
        .collect()
}

/// Reassembles streamed tool calls by index: (id, name, arguments).
fn streamed_tool_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for chunk in chunks {
        for call in chunk["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let entry = calls.entry(call["index"].as_u64().unwrap()).or_default();
            if let Some(id) = call["id"].as_str() {
                entry.0 = id.to_owned();
            }
            if let Some(name) = call["function"]["name"].as_str() {
                entry.1.push_str(name);
            }
            if let Some(args) = call["function"]["arguments"].as_str() {
                entry.2.push_str(args);
            }
        }
    }
    calls.into_values().collect()
}

fn weather_calls_are_right(calls: &[(String, String, String)]) {
    assert_eq!(calls.len(), 2, "{calls:?}");
    let cities: Vec<Value> = calls
        .iter()
        .map(|(_, name, args)| {
            assert_eq!(name, "get_weather");
            let args: Value =
                serde_json::from_str(args).unwrap_or_else(|e| panic!("arguments {args:?}: {e}"));
            args["city"].clone()
        })
        .collect();
    assert_eq!(cities, vec![json!("Paris"), json!("Rome")]);
    assert!(
        !calls[0].0.is_empty() && calls[0].0 != calls[1].0,
        "ids present and distinct: {calls:?}"
    );
}

pub async fn plain_chat<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let (status, headers, body) = chat(
        &sidecar,
        json!({"model": "text", "messages": [user("Hello there")]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "content-type"), "application/json");
    assert_eq!(body["object"], "chat.completion");
    let message = &body["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert!(
        message["content"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > 0
            && usage["completion_tokens"].as_u64().unwrap() > 0
    );
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

pub async fn multi_turn_with_system_prompt<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        user("What is the capital of France?"),
        {"role": "assistant", "content": "Paris."},
        user("And of Italy?")
    ]);
    let (status, _, body) = chat(&sidecar, json!({"model": "text", "messages": messages})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = up.bodies().last().unwrap().to_string();
    for text in [
        "You are terse.",
        "What is the capital of France?",
        "Paris.",
        "And of Italy?",
    ] {
        assert!(
            sent.contains(text),
            "{text:?} missing from the upstream request: {sent}"
        );
    }
}

pub async fn parallel_tool_calls<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let request = json!({"model": "tools", "messages": [user("Weather in Paris and Rome?")], "tools": tools()});
    let (status, _, body) = chat(&sidecar, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let calls: Vec<(String, String, String)> = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no tool_calls: {body}"))
        .iter()
        .map(|c| {
            assert_eq!(c["type"], "function");
            (
                c["id"].as_str().unwrap().to_owned(),
                c["function"]["name"].as_str().unwrap().to_owned(),
                c["function"]["arguments"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    weather_calls_are_right(&calls);
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains("get_weather") && sent.contains("Current weather for a city"),
        "tools reach the upstream: {sent}"
    );
}

pub async fn tool_result_round_trip<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let messages = json!([
        user("Weather in Paris and Rome?"),
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_paris", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_rome", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_paris", "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": "call_rome", "content": "24C and clear"}
    ]);
    let (status, _, body) = chat(
        &sidecar,
        json!({"model": "text", "messages": messages, "tools": tools()}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = up.bodies().last().unwrap().to_string();
    for text in ["18C and sunny", "24C and clear", "Paris", "Rome"] {
        assert!(
            sent.contains(text),
            "{text:?} missing from the upstream request: {sent}"
        );
    }
}

pub async fn streaming_text<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let request = json!({"model": "text", "messages": [user("Tell me a story")]});
    let (_, _, whole) = chat(&sidecar, request.clone()).await;
    let chunks = stream(&sidecar, request).await;
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        streamed_text(&chunks),
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(finish_reasons(&chunks), vec!["stop"]);
    assert!(
        chunks
            .iter()
            .all(|c| c.get("usage").is_none_or(Value::is_null)),
        "no usage chunk unless asked"
    );
}

pub async fn streaming_tool_calls<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let chunks = stream(&sidecar, json!({"model": "tools", "messages": [user("Weather in Paris and Rome?")], "tools": tools()})).await;
    weather_calls_are_right(&streamed_tool_calls(&chunks));
    assert_eq!(finish_reasons(&chunks), vec!["tool_calls"]);
}

pub async fn vision_input<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let image = PNG;
    let messages = with_png("What is in this image?");
    let (status, _, body) = chat(&sidecar, json!({"model": "text", "messages": messages})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        // As a media type or, for Bedrock, a bare format.
        sent.contains(image) && sent.contains("png"),
        "the image and its type reach the upstream: {sent}"
    );
}

pub async fn stop_sequences<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let (status, _, body) = chat(
        &sidecar,
        json!({"model": "stop", "messages": [user("Count")], "stop": ["END", "STOP"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains("\"END\"") && sent.contains("\"STOP\""),
        "{sent}"
    );
}

pub async fn max_tokens_is_length<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let request =
        json!({"model": "max", "messages": [user("Write a long essay")], "max_tokens": 7});
    let (status, _, body) = chat(&sidecar, request.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let sent = up.bodies().last().unwrap().to_string();
    assert!(
        sent.contains(":7"),
        "max_tokens reaches the upstream: {sent}"
    );
    assert_eq!(
        finish_reasons(&stream(&sidecar, request).await),
        vec!["length"]
    );
}

pub async fn usage_plain_and_streamed<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let request = json!({"model": "text", "messages": [user("Hi")], "stream_options": {"include_usage": true}});
    let chunks = stream(&sidecar, request).await;
    let usage_chunk = &chunks[chunks.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]), "{usage_chunk}");
    let usage = &usage_chunk["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
}

pub async fn upstream_errors_map_to_openai_errors<U: Upstream>() {
    let up = U::start().await;
    let statuses = up.error_statuses();
    let models: Vec<ModelSpec> = statuses
        .iter()
        .map(|(s, _)| {
            let mut m = model(
                &format!("error-{s}"),
                vec![up.deployment(Behaviour::Error(*s))],
            );
            m.retry.rate_limited = 1;
            m.retry.server_error = 1;
            // Long enough to honour a 1 s Retry-After before the retry.
            m.retry.max_backoff_ms = 1_500;
            m
        })
        .collect();
    let sidecar = setup(&up, models).await;
    for (upstream, expected) in statuses {
        let (status, headers, body) = chat(
            &sidecar,
            json!({"model": format!("error-{upstream}"), "messages": [user("hi")]}),
        )
        .await;
        assert_eq!(status.as_u16(), expected, "upstream {upstream}: {body}");
        let error = &body["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(error["type"].is_string(), "{body}");
        let retried = upstream == 429 || upstream >= 500;
        assert_eq!(
            header(&headers, "x-llmesh-attempts"),
            if retried { "2" } else { "1" },
            "upstream {upstream}"
        );
    }
}

pub async fn malformed_answers_are_clean_502s<U: Upstream>() {
    let up = U::start().await;
    let mut m = model("bad", vec![up.deployment(Behaviour::Malformed)]);
    m.retry.server_error = 0;
    let sidecar = setup(&up, vec![m]).await;
    let (status, _, body) = chat(&sidecar, json!({"model": "bad", "messages": [user("hi")]})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["type"], "server_error");
    let (status, _, frames) = post_stream(
        sidecar.api,
        json!({"model": "bad", "stream": true, "messages": [user("hi")]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "a stream broken before its first event fails cleanly"
    );
    let body: Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert!(body["error"]["message"].is_string());
}

pub async fn a_cut_stream_ends_with_an_error_event<U: Upstream>() {
    let up = U::start().await;
    let sidecar = setup(&up, vec![]).await;
    let chunks = stream(
        &sidecar,
        json!({"model": "cut", "messages": [user("Tell me a long story")]}),
    )
    .await;
    let last = chunks.last().unwrap();
    assert!(last["error"]["message"].is_string(), "{chunks:?}");
    assert!(!chunks.contains(&json!("[DONE]")));
}

pub async fn fallback_from_openai_to_this_provider<U: Upstream>() {
    let up = U::start().await;
    let openai = MockOpenAi::start().await;
    let mut primary = model(
        "gpt",
        vec![crate::support::deployment(
            "openai",
            &openai.base_url(),
            "mock-error-503",
        )],
    );
    primary.retry.server_error = 0;
    primary.fallbacks = vec!["text".into()];
    let sidecar = setup(&up, vec![primary]).await;
    for streaming in [false, true] {
        let request =
            json!({"model": "gpt", "stream": streaming, "messages": [user("Still there?")]});
        let (status, headers, frames) = post_stream(sidecar.api, request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-llmesh-model"), "text");
        assert_eq!(header(&headers, "x-llmesh-attempts"), "2");
        if streaming {
            assert_eq!(sse_data(&frames).last().map(String::as_str), Some("[DONE]"));
        }
    }
}

/// Generates one test per case for a provider.
#[macro_export]
macro_rules! conformance {
    (cases $api:ident, $upstream:ty: $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                $crate::suite::$api::$case::<$upstream>().await;
            }
        )*
    };
    ($upstream:ty: $($case:ident),* $(,)?) => {
        $crate::conformance!(cases chat, $upstream: $($case),*);
    };
    ($upstream:ty) => {
        $crate::conformance!($upstream:
            plain_chat,
            multi_turn_with_system_prompt,
            parallel_tool_calls,
            tool_result_round_trip,
            streaming_text,
            streaming_tool_calls,
            vision_input,
            stop_sequences,
            max_tokens_is_length,
            usage_plain_and_streamed,
            upstream_errors_map_to_openai_errors,
            malformed_answers_are_clean_502s,
            a_cut_stream_ends_with_an_error_event,
            fallback_from_openai_to_this_provider,
        );
    };
}

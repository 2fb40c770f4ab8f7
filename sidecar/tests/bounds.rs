//! What an upstream can send is bounded, over real HTTP through the sidecar: absurd
//! `Retry-After` values end the call cleanly (no panic, no empty reply), an SSE stream
//! that never ends an event is refused with an OpenAI-shaped error before the first
//! byte or an error event after it, and a stream that drips bytes still hits the total
//! timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::{MockHttp, Reply};
use serde_json::{Value, json};
use support::*;

/// An upstream answering every request with a small chat completion.
async fn upstream() -> MockHttp {
    let mock = MockHttp::start().await;
    mock.set_default(Reply::json(
        200,
        json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "hi"}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }),
    ));
    mock
}

fn too_many_requests(name: &str, value: &str) -> Reply {
    Reply::json(
        429,
        json!({"error": {"message": "slow down", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
    )
    .with_header(name, value)
}

/// The OpenAI error object of a body, or a panic naming what came instead.
fn openai_error(body: &Value) -> &serde_json::Map<String, Value> {
    let error = body["error"].as_object();
    let error = error.unwrap_or_else(|| panic!("not an OpenAI error: {body}"));
    assert!(error["message"].is_string(), "{body}");
    assert!(error["type"].is_string(), "{body}");
    error
}

#[tokio::test]
async fn absurd_retry_after_values_give_a_clean_429_not_a_panic() {
    for (name, value) in [
        ("retry-after-ms", "1e300"),
        ("retry-after", "18446744073709551615"),
        ("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
    ] {
        let mock = upstream().await;
        mock.enqueue(too_many_requests(name, value));
        let sidecar = Running::start(Some(snapshot(
            "v1",
            vec![model("chat", vec![deployment("a", &mock.base_url(), "m")])],
        )))
        .await;
        let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{name}: {value}: {body}"
        );
        assert_eq!(openai_error(&body)["code"], "rate_limit_exceeded");
        assert_eq!(
            header(&headers, "retry-after"),
            "3600",
            "saturated at an hour"
        );
        assert_eq!(
            mock.request_count(),
            1,
            "no retry before the upstream allows it"
        );
        // The sidecar is still serving.
        let (status, _, _) = get(sidecar.admin, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_absurd_retry_after_rests_one_deployment_and_the_retry_goes_elsewhere() {
    let mock = upstream().await;
    mock.enqueue(too_many_requests("retry-after-ms", "1e300"));
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![
                deployment("a", &mock.base_url(), "m"),
                deployment("b", &mock.base_url(), "m"),
            ],
        )],
    )))
    .await;
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "2");
}

/// A model whose one deployment is not retried, so each test sees one upstream answer.
fn single_attempt(mock: &MockHttp) -> Arc<Snapshot> {
    let mut m = model("chat", vec![deployment("a", &mock.base_url(), "m")]);
    m.retry.server_error = 0;
    m.timeouts = TimeoutSpec {
        total_ms: 60_000,
        time_to_first_token_ms: 20_000,
    };
    snapshot("v1", vec![m])
}

/// 64 MiB without a blank line, sent as 1 MiB frames of one shared buffer.
fn no_boundary() -> Vec<Bytes> {
    vec![Bytes::from(vec![b'x'; 1024 * 1024]); 64]
}

#[tokio::test]
async fn an_sse_upstream_without_event_boundaries_gets_a_502_before_the_first_byte() {
    let mock = upstream().await;
    let mut chunks = vec![Bytes::from_static(b"data: ")];
    chunks.extend(no_boundary());
    mock.enqueue(Reply::raw(200, "text/event-stream", chunks));
    let sidecar = Running::start(Some(single_attempt(&mock))).await;
    let (status, _, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let body: Value = serde_json::from_slice(
        &frames
            .iter()
            .flat_map(|(_, b)| b.to_vec())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let error = openai_error(&body);
    assert_eq!(error["type"], "server_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("larger than 8 MiB"),
        "{body}"
    );
}

#[tokio::test]
async fn an_sse_upstream_without_event_boundaries_mid_stream_gets_an_error_event() {
    let mock = upstream().await;
    let mut chunks = vec![Bytes::from_static(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n",
    )];
    chunks.extend(no_boundary());
    mock.enqueue(Reply::raw(200, "text/event-stream", chunks));
    let sidecar = Running::start(Some(single_attempt(&mock))).await;
    let (status, _, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&frames);
    assert_eq!(data.len(), 2, "the first event, then the error: {data:?}");
    let last: Value = serde_json::from_str(&data[1]).unwrap();
    assert_eq!(openai_error(&last)["code"], "upstream_event_too_large");
}

#[tokio::test]
async fn a_drip_feeding_upstream_still_hits_the_total_timeout() {
    let mock = upstream().await;
    let mut chunks = vec![Bytes::from_static(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[]}\n\n",
    )];
    // One byte every 20 ms for far longer than the timeout, never completing an event.
    chunks.extend(std::iter::repeat_n(Bytes::from_static(b"x"), 50_000));
    mock.enqueue(
        Reply::raw(200, "text/event-stream", chunks).with_chunk_delay(Duration::from_millis(20)),
    );
    let mut m = model("chat", vec![deployment("a", &mock.base_url(), "m")]);
    m.timeouts = TimeoutSpec {
        total_ms: 1_000,
        time_to_first_token_ms: 1_000,
    };
    let sidecar = Running::start(Some(snapshot("v1", vec![m]))).await;
    let (status, _, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&frames);
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(openai_error(&last)["code"], "upstream_timeout", "{data:?}");
}

#[tokio::test]
async fn a_non_stream_upstream_body_past_the_limit_is_a_502() {
    let mock = upstream().await;
    // 65 MiB of JSON-looking bytes: more than the sidecar reads whole.
    let mut chunks = vec![Bytes::from_static(b"{\"pad\":\"")];
    chunks.extend(vec![Bytes::from(vec![b'x'; 1024 * 1024]); 65]);
    chunks.push(Bytes::from_static(b"\"}"));
    mock.enqueue(Reply::raw(200, "application/json", chunks));
    let sidecar = Running::start(Some(single_attempt(&mock))).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(openai_error(&body)["type"], "server_error");
}

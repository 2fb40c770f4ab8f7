//! The OpenAI mock's own tests, over real HTTP.

// Test code may panic on broken expectations; that is how it reports them.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Instant;

use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use super::*;

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(mock: &MockOpenAi, method: Method, path: &str, body: &[u8]) -> Response<Incoming> {
    let req = Request::builder()
        .method(method)
        .uri(mock.url(path))
        .header(CONTENT_TYPE, JSON)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    client().request(req).await.expect("response")
}

/// Status, headers and whole body of a POST of `body`.
async fn post(mock: &MockOpenAi, path: &str, body: Value) -> (StatusCode, HeaderMap, Bytes) {
    let response = send(mock, Method::POST, path, body.to_string().as_bytes()).await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, body)
}

async fn post_json(mock: &MockOpenAi, path: &str, body: Value) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = post(mock, path, body).await;
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
    (status, headers, json)
}

/// The data lines of an SSE body, one per event.
fn events(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .expect("utf-8")
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data line").to_owned())
        .collect()
}

fn parsed(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str(e).expect("chunk json"))
        .collect()
}

fn chat_request(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there"}
        ]
    })
}

#[tokio::test]
async fn ok_chat_completion_has_openais_shape() {
    let mock = MockOpenAi::start().await;
    let (status, headers, body) =
        post_json(&mock, "/chat/completions", chat_request("gpt-4o-mini")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], JSON);
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "gpt-4o-mini");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "mock reply to: hello there");
    assert!(choice["message"]["refusal"].is_null());
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    let usage = &body["usage"];
    // "be brief" + "hello there" and "mock reply to: hello there".
    assert_eq!(usage["prompt_tokens"], 4);
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(usage["total_tokens"], 9);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
}

#[tokio::test]
async fn array_content_parts_are_read_as_text() {
    let mock = MockOpenAi::start().await;
    let request = json!({
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "parts work"}]}]
    });
    let (_, _, body) = post_json(&mock, "/chat/completions", request).await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "mock reply to: parts work"
    );
}

#[tokio::test]
async fn ok_stream_when_requested_concatenates_to_the_reply() {
    let mock = MockOpenAi::start().await;
    let mut request = chat_request("gpt-4o");
    request["stream"] = json!(true);
    let (status, headers, body) = post(&mock, "/chat/completions", request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks = parsed(&events);
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "mock reply to: hello there");
    let ids: Vec<&Value> = chunks.iter().map(|c| &c["id"]).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one id per stream");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(chunks.iter().all(|c| c["model"] == "gpt-4o"));
}

#[tokio::test]
async fn stream_events_arrive_in_order_one_frame_each_and_end_with_done() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::stream(&["Hel", "lo", "!"]).with_chunk_delay(Duration::from_millis(20)));
    let response = send(&mock, Method::POST, "/v1/chat/completions", b"{}").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        let data = frame.expect("frame").into_data().expect("data frame");
        frames.push(String::from_utf8(data.to_vec()).unwrap());
    }
    // The chunk delay keeps events from sharing a TCP read, so each
    // frame seen here is exactly one of the server's frames.
    assert_eq!(frames.len(), 6, "{frames:?}");
    assert!(
        frames
            .iter()
            .all(|f| f.starts_with("data: ") && f.ends_with("\n\n"))
    );
    let events = events(frames.concat().as_bytes());
    assert_eq!(events[5], "[DONE]");
    let chunks = parsed(&events);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    let pieces: Vec<&str> = chunks[1..4]
        .iter()
        .map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(pieces, ["Hel", "lo", "!"]);
    assert!(
        chunks[..4]
            .iter()
            .all(|c| c["choices"][0]["finish_reason"].is_null())
    );
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"][0]["delta"], json!({}));
}

#[tokio::test]
async fn usage_chunk_only_when_requested() {
    let mock = MockOpenAi::start().await;
    mock.set_default(Reply::stream(&["a", "b"]));

    let plain = json!({"model": "m", "stream": true, "messages": []});
    let (_, _, body) = post(&mock, "/chat/completions", plain).await;
    let chunks = parsed(&events(&body));
    assert_eq!(chunks.len(), 4);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );

    let with_usage = json!({
        "model": "m", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "count me"}]
    });
    let (_, _, body) = post(&mock, "/chat/completions", with_usage).await;
    let events = events(&body);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks = parsed(&events);
    assert_eq!(chunks.len(), 5);
    // Every chunk but the last says `usage: null`, as OpenAI documents.
    assert!(
        chunks[..4]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some())
    );
    let last = &chunks[4];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["prompt_tokens"], 2);
    assert_eq!(last["usage"]["completion_tokens"], 2);
    assert_eq!(last["usage"]["total_tokens"], 4);
}

#[tokio::test]
async fn legacy_completions_stream_text_completion_chunks() {
    let mock = MockOpenAi::start().await;
    let request = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "say hi", "stream": true});
    let (_, _, body) = post(&mock, "/completions", request).await;
    let chunks = parsed(&events(&body));
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    let text: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "mock reply to: say hi");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn text_completion_embeddings_and_models() {
    let mock = MockOpenAi::start().await;
    let (status, _, body) = post_json(
        &mock,
        "/completions",
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "say hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "mock reply to: say hi");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["total_tokens"], 7);

    let (_, _, one) = post_json(
        &mock,
        "/embeddings",
        json!({"model": "text-embedding-3-small", "input": "a b"}),
    )
    .await;
    assert_eq!(one["object"], "list");
    assert_eq!(one["model"], "text-embedding-3-small");
    assert_eq!(one["data"].as_array().unwrap().len(), 1);
    assert_eq!(one["data"][0]["object"], "embedding");
    assert_eq!(one["data"][0]["index"], 0);
    assert_eq!(one["usage"], json!({"prompt_tokens": 2, "total_tokens": 2}));
    let vector = one["data"][0]["embedding"].as_array().unwrap();
    assert_eq!(vector.len(), EMBEDDING_DIM);

    let (_, _, many) = post_json(
        &mock,
        "/embeddings",
        json!({"model": "e", "input": ["a b", "c", [1, 2, 3]]}),
    )
    .await;
    let data = many["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    assert_eq!(
        data[0]["embedding"], one["data"][0]["embedding"],
        "deterministic"
    );
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);

    let (_, _, tokens) = post_json(
        &mock,
        "/embeddings",
        json!({"model": "e", "input": [1, 2, 3]}),
    )
    .await;
    assert_eq!(
        tokens["data"].as_array().unwrap().len(),
        1,
        "one token array"
    );

    let (_, _, b64) = post_json(
        &mock,
        "/embeddings",
        json!({"model": "e", "input": "x", "encoding_format": "base64"}),
    )
    .await;
    let encoded = b64["data"][0]["embedding"].as_str().unwrap();
    assert_eq!(encoded.len(), (EMBEDDING_DIM * 4).div_ceil(3) * 4);

    let response = send(&mock, Method::GET, "/models", b"").await;
    assert_eq!(response.status(), StatusCode::OK);
    let list: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(list["object"], "list");
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["object"] == "model")
    );
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "mock-error-429")
    );
}

#[tokio::test]
async fn queued_replies_are_consumed_in_order_then_the_default() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::error(500, "first", "server_error", None));
    mock.enqueue(Reply::json(201, json!({"second": true})));
    let request = || chat_request("m");
    let (status, _, body) = post_json(&mock, "/chat/completions", request()).await;
    assert_eq!(
        (status, &body["error"]["message"]),
        (StatusCode::INTERNAL_SERVER_ERROR, &json!("first"))
    );
    let (status, _, body) = post_json(&mock, "/embeddings", request()).await;
    assert_eq!(
        (status, body),
        (StatusCode::CREATED, json!({"second": true}))
    );
    let (status, _, body) = post_json(&mock, "/chat/completions", request()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "chat.completion");

    mock.set_default(Reply::error(
        418,
        "teapot",
        "invalid_request_error",
        Some("tea"),
    ));
    for _ in 0..2 {
        let (status, _, body) = post_json(&mock, "/chat/completions", request()).await;
        assert_eq!(status, StatusCode::IM_A_TEAPOT);
        assert_eq!(body["error"]["code"], "tea");
    }
    assert_eq!(mock.request_count(), 5);
}

#[tokio::test]
async fn disconnect_after_fails_the_body_after_n_events() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::stream(&["a", "b", "c"]).disconnect_after(2));
    let response = send(&mock, Method::POST, "/v1/chat/completions", b"{}").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = Vec::new();
    let error = loop {
        match body.frame().await {
            Some(Ok(frame)) => received.extend_from_slice(&frame.into_data().unwrap()),
            Some(Err(e)) => break e,
            None => panic!("body ended cleanly: {}", String::from_utf8_lossy(&received)),
        }
    };
    let events = events(&received);
    assert_eq!(events.len(), 2, "{events:?} then {error}");
    assert!(!events.iter().any(|e| e == "[DONE]"));
}

#[tokio::test]
async fn disconnect_after_zero_cuts_a_json_reply_after_the_headers() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::ok().disconnect_after(0));
    let response = send(&mock, Method::POST, "/v1/chat/completions", b"{}").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.into_body().collect().await.is_err());
}

#[tokio::test]
async fn model_names_script_errors() {
    let mock = MockOpenAi::start().await;

    let (status, headers, body) =
        post_json(&mock, "/chat/completions", chat_request("mock-error-429")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[RETRY_AFTER], "1");
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(body["error"]["param"].is_null());
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Rate limit reached")
    );

    for (model, status) in [
        ("mock-error-500", StatusCode::INTERNAL_SERVER_ERROR),
        ("mock-error-503", StatusCode::SERVICE_UNAVAILABLE),
    ] {
        let (got, _, body) = post_json(&mock, "/chat/completions", chat_request(model)).await;
        assert_eq!(got, status);
        assert_eq!(body["error"]["type"], "server_error");
        assert!(body["error"]["code"].is_null());
    }

    let (status, _, body) = post_json(
        &mock,
        "/chat/completions",
        chat_request("mock-context-length"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(body["error"]["param"], "messages");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("This model's maximum context length is 128000 tokens.")
    );

    let (status, _, body) = post_json(
        &mock,
        "/chat/completions",
        chat_request("mock-content-filter"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(
        body["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );

    // Streaming requests get the same errors, as JSON, not SSE.
    let mut streaming = chat_request("mock-error-503");
    streaming["stream"] = json!(true);
    let (status, headers, _) = post_json(&mock, "/chat/completions", streaming).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[CONTENT_TYPE], JSON);
}

#[tokio::test]
async fn slow_models_and_delays_wait_before_answering() {
    let mock = MockOpenAi::start().await;
    let start = Instant::now();
    let (status, _, body) =
        post_json(&mock, "/chat/completions", chat_request("mock-slow-150")).await;
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["model"], "mock-slow-150");

    mock.enqueue(Reply::ok().with_delay(Duration::from_millis(100)));
    let start = Instant::now();
    let (status, _, _) = post(&mock, "/chat/completions", chat_request("m")).await;
    assert!(start.elapsed() >= Duration::from_millis(100));
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn error_shapes_for_scripted_unknown_and_unparseable() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::error(
        400,
        "bad",
        "invalid_request_error",
        Some("nope"),
    ));
    let (status, _, body) = post_json(&mock, "/chat/completions", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": "nope"}})
    );

    let (status, _, body) = post_json(&mock, "/nope", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "unknown_url");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/nope")
    );

    let response = send(&mock, Method::POST, "/chat/completions", b"{not json").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn malformed_status_and_header_overrides() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::malformed());
    mock.enqueue(Reply::ok().with_status(202).with_header("x-extra", "1"));
    mock.enqueue(
        Reply::error(429, "slow down", "requests", Some("rate_limit_exceeded"))
            .with_header("retry-after", "7")
            .with_header("content-type", "application/problem+json"),
    );
    let (status, headers, body) = post(&mock, "/chat/completions", chat_request("m")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], JSON);
    assert_eq!(&body[..], br#"{"id": "chatcmpl-"#);

    let (status, headers, body) = post_json(&mock, "/chat/completions", chat_request("m")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(headers["x-extra"], "1");
    assert_eq!(body["object"], "chat.completion");

    let (status, headers, _) = post(&mock, "/chat/completions", chat_request("m")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[RETRY_AFTER], "7");
    assert_eq!(headers.get_all(CONTENT_TYPE).iter().count(), 1);
    assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
}

#[tokio::test]
async fn requests_are_recorded_in_order() {
    let mock = MockOpenAi::start().await;
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "{}/chat/completions?api-version=2024-10-21",
            mock.base_url()
        ))
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from(chat_request("first").to_string())))
        .unwrap();
    client().request(req).await.unwrap();
    send(&mock, Method::GET, "/models", b"").await;

    assert_eq!(mock.request_count(), 2);
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].method, Method::POST);
    assert_eq!(
        recorded[0].path,
        "/v1/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(recorded[0].headers["authorization"], "Bearer sk-test");
    assert_eq!(recorded[0].json()["model"], "first");
    assert_eq!(recorded[1].method, Method::GET);
    assert_eq!(recorded[1].path, "/v1/models");
    assert!(recorded[1].body.is_empty());
    assert!(recorded[1].json().is_null());
}

#[tokio::test]
async fn hang_holds_the_request_until_the_server_is_dropped() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::hang());
    let req = Request::builder()
        .method(Method::POST)
        .uri(mock.url("/chat/completions"))
        .body(Full::new(Bytes::from(chat_request("m").to_string())))
        .unwrap();
    let pending = tokio::spawn(client().request(req));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished());
    assert_eq!(
        mock.request_count(),
        1,
        "the hung request was still read and recorded"
    );
    drop(mock);
    let outcome = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("dropping the server ends the request")
        .unwrap();
    assert!(outcome.is_err());
}

#[tokio::test]
async fn azure_deployment_paths_echo_the_deployment() {
    let mock = MockOpenAi::start().await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let response = send(
        &mock,
        Method::POST,
        "/../openai/deployments/my-gpt/chat/completions?api-version=2024-10-21",
        body.to_string().as_bytes(),
    )
    .await;
    let json: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(json["model"], "my-gpt");
}

//! The sidecar over real HTTP in front of mock OpenAI-compatible upstreams: pass-through,
//! streaming, retries, cooldown, fallbacks, error shapes and hot reload.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::{MockOpenAi, Reply};
use serde_json::json;
use support::*;

#[tokio::test]
async fn chat_passes_through_with_model_and_credentials_rewritten() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("primary", &mock.base_url(), "gpt-4o-mini")],
        )],
    )))
    .await;
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["model"], "gpt-4o-mini",
        "upstream's answer is relayed as-is"
    );
    assert_eq!(header(&headers, "x-llmesh-deployment"), "primary");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "1");
    assert!(
        header(&headers, "x-llmesh-overhead-ms")
            .parse::<f64>()
            .unwrap()
            >= 0.0
    );
    let seen = &mock.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.json()["model"], "gpt-4o-mini");
    assert_eq!(seen.json()["messages"][0]["content"], "hello");
    assert_eq!(
        seen.headers["authorization"], "Bearer sk-upstream-primary",
        "the provider key replaces the client's"
    );
}

#[tokio::test]
async fn completions_embeddings_and_models() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            model(
                "text",
                vec![deployment("a", &mock.base_url(), "gpt-3.5-turbo-instruct")],
            ),
            model(
                "embed",
                vec![deployment("a", &mock.base_url(), "text-embedding-3-small")],
            ),
        ],
    )))
    .await;
    let (status, _, body) = post(
        sidecar.api,
        "/v1/completions",
        json!({"model": "text", "prompt": "Say hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["object"], "text_completion");
    let (status, _, body) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "embed", "input": ["a", "b"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(mock.requests()[1].path, "/v1/embeddings");
    let (status, _, body) = get(sidecar.api, "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ids: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("embed"), json!("text")]);
    assert_eq!(list["object"], "list");
    let (status, _, _) = get(sidecar.api, "/v1/models/embed").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = get(sidecar.api, "/v1/models/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn azure_deployments_get_their_url_version_and_key_header() {
    let mock = MockOpenAi::start().await;
    let mut d = deployment("az", &format!("http://{}", mock.addr()), "gpt4o-prod");
    d.provider = ProviderKind::Azure;
    d.api_version = Some("2024-10-21".into());
    let sidecar = Running::start(Some(snapshot("v1", vec![model("chat", vec![d])]))).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = &mock.requests()[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(seen.headers["api-key"], "sk-upstream-az");
    assert!(seen.headers.get("authorization").is_none());
}

#[tokio::test]
async fn streams_are_relayed_event_by_event_as_they_arrive() {
    let mock = MockOpenAi::start().await;
    let pieces: Vec<String> = (0..20).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.enqueue(Reply::stream(&refs).with_chunk_delay(Duration::from_millis(40)));
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("a", &mock.base_url(), "gpt-4o")],
        )],
    )))
    .await;
    let (status, headers, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/event-stream"));
    let data = sse_data(&frames);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let text: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, pieces.concat());
    // Buffering the whole stream would deliver everything at once; relayed, the events
    // spread over the ~800 ms the upstream takes.
    assert!(frames.len() >= 10, "{} frames", frames.len());
    let spread = frames.last().unwrap().0 - frames.first().unwrap().0;
    assert!(
        spread >= Duration::from_millis(400),
        "all frames within {spread:?}"
    );
    assert!(
        mock.requests()[0].json()["stream"] == json!(true),
        "stream flag reaches upstream"
    );
}

#[tokio::test]
async fn a_stream_failing_mid_way_ends_with_an_error_event() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::stream(&["a", "b", "c", "d"]).disconnect_after(2));
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("a", &mock.base_url(), "gpt-4o")],
        )],
    )))
    .await;
    let (status, _, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let data = sse_data(&frames);
    let last: serde_json::Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_stream_error", "{data:?}");
    assert!(
        data.len() >= 2,
        "events before the failure reached the client"
    );
    assert!(!data.contains(&"[DONE]".to_owned()));
    assert_eq!(
        mock.request_count(),
        1,
        "no retry once the client has bytes"
    );
}

#[tokio::test]
async fn a_stream_failing_before_its_first_event_falls_over_to_another_attempt() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::stream(&["x"]).disconnect_after(0));
    mock.enqueue(Reply::stream(&["fine"]));
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("a", &mock.base_url(), "gpt-4o")],
        )],
    )))
    .await;
    let (status, headers, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-attempts"), "2");
    let data = sse_data(&frames);
    assert!(data.iter().any(|d| d.contains("fine")), "{data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn retries_429_and_5xx_on_another_deployment() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(
        Reply::error(
            429,
            "Rate limit reached",
            "requests",
            Some("rate_limit_exceeded"),
        )
        .with_header("retry-after", "30"),
    );
    mock.enqueue(Reply::error(500, "boom", "server_error", None));
    let base = mock.base_url();
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("a", &base, "m"), deployment("b", &base, "m")],
        )],
    )))
    .await;
    let (status, headers, _) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-attempts"), "3");
    // The 429 deployment rests for its Retry-After, so the third attempt went elsewhere.
    let keys: Vec<_> = mock
        .requests()
        .iter()
        .map(|r| r.headers["authorization"].clone())
        .collect();
    assert_ne!(keys[0], keys[2]);
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains("llmesh_retries_total{"), "{metrics}");
    assert!(metrics.contains(r#"reason="rate_limited""#));
}

#[tokio::test]
async fn client_errors_are_not_retried_and_keep_their_status() {
    let mock = MockOpenAi::start().await;
    for status in [400u16, 401, 403, 404] {
        mock.enqueue(Reply::error(
            status,
            "nope",
            "invalid_request_error",
            Some("x"),
        ));
    }
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
    for (i, expected) in [400u16, 401, 403, 404].into_iter().enumerate() {
        let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
        assert_eq!(status.as_u16(), expected);
        assert_eq!(
            body["error"]["message"], "nope",
            "upstream's OpenAI-shaped error is relayed"
        );
        assert_eq!(header(&headers, "x-llmesh-attempts"), "1");
        assert_eq!(mock.request_count(), i + 1);
    }
}

#[tokio::test]
async fn exhausted_retries_give_the_last_upstream_error() {
    let mock = MockOpenAi::start().await;
    mock.set_default(Reply::error(503, "overloaded", "server_error", None));
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("chat", vec![deployment("a", &mock.base_url(), "m")])],
    )))
    .await;
    let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["message"], "overloaded");
    assert_eq!(
        header(&headers, "x-llmesh-attempts"),
        "3",
        "1 try + 2 server-error retries"
    );
}

#[tokio::test]
async fn malformed_upstream_bodies_and_dead_upstreams_are_retried_elsewhere() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::malformed());
    // A port nothing listens on: bind, note it, and close.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut m = model(
        "chat",
        vec![
            deployment("dead", &format!("http://{dead}/v1"), "m"),
            deployment("live", &mock.base_url(), "m"),
        ],
    );
    m.strategy = Strategy::LowestCost;
    m.deployments[1].pricing = Some(Pricing {
        input_micros_per_million: 5,
        ..Pricing::default()
    });
    let sidecar = Running::start(Some(snapshot("v1", vec![m]))).await;
    // First: lowest-cost picks "dead" (price 0): connect error, then "live" answers
    // malformed JSON (retried), then "dead" again or "live".
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    let metrics = sidecar.metrics().await;
    assert!(metrics.contains(r#"reason="connect_error""#), "{metrics}");
    assert!(
        metrics.contains(r#"reason="server_error""#),
        "malformed body counted as a server error"
    );
}

#[tokio::test]
async fn fallbacks_general_context_window_and_content_policy() {
    let mock = MockOpenAi::start().await;
    let base = mock.base_url();
    let mut primary = model("primary", vec![deployment("p", &base, "mock-error-500")]);
    primary.fallbacks = vec!["backup".into()];
    primary.retry.server_error = 0;
    let mut small = model("small", vec![deployment("s", &base, "mock-context-length")]);
    small.context_window_fallbacks = vec!["big".into()];
    small.fallbacks = vec!["unused".into()];
    let mut strict = model(
        "strict",
        vec![deployment("s", &base, "mock-content-filter")],
    );
    strict.content_policy_fallbacks = vec!["lenient".into()];
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![
            primary,
            model("backup", vec![deployment("b", &base, "gpt-backup")]),
            small,
            model("big", vec![deployment("b", &base, "gpt-big")]),
            model("unused", vec![deployment("u", &base, "gpt-unused")]),
            strict,
            model("lenient", vec![deployment("l", &base, "gpt-lenient")]),
        ],
    )))
    .await;
    for (asked, served, upstream) in [
        ("primary", "backup", "gpt-backup"),
        ("small", "big", "gpt-big"),
        ("strict", "lenient", "gpt-lenient"),
    ] {
        let (status, headers, body) = post(sidecar.api, "/v1/chat/completions", chat(asked)).await;
        assert_eq!(status, StatusCode::OK, "{asked}: {body}");
        assert_eq!(header(&headers, "x-llmesh-model"), served);
        assert_eq!(body["model"], upstream);
        assert_eq!(header(&headers, "x-llmesh-attempts"), "2", "{asked}");
    }
    let metrics = sidecar.metrics().await;
    for kind in ["general", "context_window", "content_policy"] {
        assert!(
            metrics.contains(&format!("kind=\"{kind}\"")),
            "{kind}: {metrics}"
        );
    }
    assert!(
        !mock
            .requests()
            .iter()
            .any(|r| r.json()["model"] == "gpt-unused")
    );
}

#[tokio::test]
async fn azure_content_filter_refusals_get_openai_shape_and_keep_their_details() {
    let mock = MockOpenAi::start().await;
    let mut d = deployment(
        "az",
        &format!("http://{}", mock.addr()),
        "mock-content-filter",
    );
    d.provider = ProviderKind::Azure;
    let sidecar = Running::start(Some(snapshot("v1", vec![model("chat", vec![d])]))).await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"]["type"], "invalid_request_error",
        "Azure's null type is filled in: {body}"
    );
    assert_eq!(body["error"]["code"], "content_filter");
    assert_eq!(body["error"]["param"], "prompt");
    assert!(
        body["error"]["innererror"].is_object(),
        "Azure's filter details are kept"
    );
    assert_eq!(mock.request_count(), 1, "content refusals are not retried");
}

#[tokio::test]
async fn a_context_window_error_without_fallbacks_reaches_the_client_as_400() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("a", &mock.base_url(), "mock-context-length")],
        )],
    )))
    .await;
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn failing_deployments_cool_down_and_traffic_moves_away() {
    let bad = MockOpenAi::start().await;
    bad.set_default(Reply::error(500, "down", "server_error", None));
    let good = MockOpenAi::start().await;
    let mut m = model(
        "chat",
        vec![
            deployment("bad", &bad.base_url(), "m"),
            deployment("good", &good.base_url(), "m"),
        ],
    );
    m.retry.server_error = 1;
    m.cooldown = CooldownSpec {
        allowed_fails: 1,
        window_ms: 60_000,
        duration_ms: 60_000,
    };
    m.deployments[0].weight = 1000;
    let sidecar = Running::start(Some(snapshot("v1", vec![m]))).await;
    for _ in 0..10 {
        let (status, _, _) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(
        bad.request_count(),
        2,
        "the bad deployment rests after its second failure"
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(r#"llmesh_deployment_in_cooldown{deployment="bad",model="chat"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"llmesh_cooldowns_total{deployment="bad",model="chat"} 1"#));
}

#[tokio::test]
async fn a_hanging_upstream_hits_the_first_token_timeout() {
    let mock = MockOpenAi::start().await;
    mock.set_default(Reply::hang());
    let mut m = model("chat", vec![deployment("a", &mock.base_url(), "m")]);
    m.timeouts = TimeoutSpec {
        total_ms: 5_000,
        time_to_first_token_ms: 100,
    };
    m.retry.timeout = 0;
    let sidecar = Running::start(Some(snapshot("v1", vec![m]))).await;
    let (status, frames_headers, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    let body: serde_json::Value = serde_json::from_slice(&frames[0].1).unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert_eq!(header(&frames_headers, "content-type"), "application/json");
}

#[tokio::test]
async fn bad_input_gets_openai_shaped_4xx() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("chat", vec![deployment("a", &mock.base_url(), "m")])],
    )))
    .await;
    let cases: Vec<(Method, &str, Bytes, u16, &str)> = vec![
        (
            Method::POST,
            "/v1/chat/completions",
            Bytes::from_static(b"{oops"),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            Bytes::from_static(b"{\"model\":\"chat\",\"messages\":\"hi\"}"),
            400,
            "invalid_type",
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            Bytes::from_static(b"{\"messages\":[]}"),
            400,
            "missing_required_parameter",
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            Bytes::from_static(b"{\"model\":\"\xc3\x28\"}"),
            400,
            "",
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            Bytes::from(chat("gpt-nope").to_string()),
            404,
            "model_not_found",
        ),
        (
            Method::POST,
            "/v1/chat/completions",
            Bytes::from(vec![b' '; 100 * 1024]),
            413,
            "request_too_large",
        ),
        (Method::GET, "/v1/chat/completions", Bytes::new(), 405, ""),
        (Method::POST, "/v1/nothing-here", Bytes::new(), 404, ""),
        (Method::DELETE, "/v1/models", Bytes::new(), 405, ""),
    ];
    for (method, path, body, expected, code) in cases {
        let (status, headers, bytes) = send(sidecar.api, method.clone(), path, body).await;
        assert_eq!(
            status.as_u16(),
            expected,
            "{method} {path}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert_eq!(header(&headers, "content-type"), "application/json");
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let error = &v["error"];
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(error["type"].is_string());
        assert!(error.get("param").is_some() && error.get("code").is_some());
        if !code.is_empty() {
            assert_eq!(error["code"], code, "{path}");
        }
    }
    assert_eq!(mock.request_count(), 0, "nothing bad reached the upstream");
}

#[tokio::test]
async fn not_ready_until_the_first_config_then_ready() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(None).await;
    let (status, _, _) = get(sidecar.admin, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = get(sidecar.admin, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "not_ready");
    sidecar
        .reconfigure(snapshot(
            "v1",
            vec![model("chat", vec![deployment("a", &mock.base_url(), "m")])],
        ))
        .await;
    let (status, _, _) = get(sidecar.admin, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reload_swaps_config_without_dropping_in_flight_requests() {
    let old = MockOpenAi::start().await;
    old.enqueue(Reply::ok().with_delay(Duration::from_millis(300)));
    let new = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("chat", vec![deployment("old", &old.base_url(), "m")])],
    )))
    .await;
    let api = sidecar.api;
    let slow = tokio::spawn(async move { post(api, "/v1/chat/completions", chat("chat")).await });
    // Wait until the slow request is at the upstream, then swap.
    while old.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sidecar
        .reconfigure(snapshot(
            "v2",
            vec![model("chat", vec![deployment("new", &new.base_url(), "m")])],
        ))
        .await;
    let (status, headers, _) = post(api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-deployment"), "new");
    let (status, headers, _) = slow.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the in-flight request finished on the old config"
    );
    assert_eq!(header(&headers, "x-llmesh-deployment"), "old");

    // A snapshot that fails validation is refused; the last good one stays.
    let mut broken = model("chat", vec![deployment("x", "not a url", "m")]);
    broken.fallbacks = vec![];
    sidecar
        .config
        .send_replace(Some(snapshot("v3", vec![broken])));
    let mut refused = false;
    for _ in 0..200 {
        if sidecar
            .metrics()
            .await
            .contains(r#"llmesh_config_reloads_total{result="error"} 1"#)
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused);
    let (status, headers, _) = post(api, "/v1/chat/completions", chat("chat")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-deployment"), "new");
}

#[tokio::test]
async fn metrics_cover_requests_latency_and_config() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v7",
        vec![model("chat", vec![deployment("a", &mock.base_url(), "m")])],
    )))
    .await;
    post(sidecar.api, "/v1/chat/completions", chat("chat")).await;
    post_stream(sidecar.api, chat_stream("chat")).await;
    let text = sidecar.metrics().await;
    for needle in [
        r#"llmesh_requests_total{deployment="a",endpoint="chat_completions",model="chat",provider="openai-compatible",status="200"} 2"#,
        "llmesh_request_duration_seconds_bucket",
        "llmesh_time_to_first_token_seconds_count{model=\"chat\"} 1",
        "llmesh_upstream_latency_seconds_count{deployment=\"a\",provider=\"openai-compatible\"} 2",
        "llmesh_requests_in_flight 0",
        "llmesh_proxy_overhead_seconds_bucket",
        r#"llmesh_config_info{version="v7"} 1"#,
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_requests() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(Reply::ok().with_delay(Duration::from_millis(200)));
    let mut sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("chat", vec![deployment("a", &mock.base_url(), "m")])],
    )))
    .await;
    let api = sidecar.api;
    let slow = tokio::spawn(async move { post(api, "/v1/chat/completions", chat("chat")).await });
    while mock.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sidecar.stop();
    let (status, _, _) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), &mut sidecar.done)
        .await
        .unwrap()
        .unwrap();
}

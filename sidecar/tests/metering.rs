//! Governance through the running sidecar: virtual-key authentication, per-key limits,
//! metering of plain and streamed calls (usage asked for and stripped), and budgets
//! enforced from the in-process ledger, against the OpenAI mock.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::openai::{MockOpenAi, Reply};
use serde_json::{Value, json};
use support::*;

const SECRET: &str = "sk-llmesh-test-key-000000000001";
const OTHER: &str = "sk-llmesh-test-key-000000000002";

/// A key of team `team-a`.
fn key(name: &str, secret: &str) -> KeySpec {
    KeySpec {
        team: Some("team-a".into()),
        ..support::key(name, secret)
    }
}

/// `chat` at $1 per million input tokens and $2 per million output tokens.
fn priced(name: &str, mock: &MockOpenAi) -> ModelSpec {
    let mut m = model(name, vec![deployment("d", &mock.base_url(), "gpt-4o-mini")]);
    m.pricing = Pricing {
        input_micros_per_million: 1_000_000,
        output_micros_per_million: 2_000_000,
        cached_input_micros_per_million: 0,
        cache_write_input_micros_per_million: 0,
    };
    m
}

fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}

fn json_body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// A metric's value from the exposition text (0 when absent).
fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn keys_are_required_once_the_namespace_has_them() {
    let mock = MockOpenAi::start().await;
    let mut expired = key("old", OTHER);
    expired.expires_at_unix = Some(1);
    let mut narrow = key("narrow", "sk-llmesh-narrow-00000000000003");
    narrow.models = vec!["other".into()];
    let snap = with(
        vec![priced("chat", &mock), priced("other", &mock)],
        vec![key("team-a", SECRET), expired, narrow],
        vec![],
    );
    let sidecar = Running::start(Some(snap)).await;
    let body = chat("chat");
    let auth = bearer(SECRET);

    let (status, _, _) = call(sidecar.api, body.clone(), &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(sidecar.api, body.clone(), &[("x-api-key", SECRET)]).await;
    assert_eq!(status, StatusCode::OK, "x-api-key works too");

    let (status, _, bytes) = call(sidecar.api, body.clone(), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(&bytes)["error"]["code"], "missing_api_key");
    let (status, _, bytes) = call(
        sidecar.api,
        body.clone(),
        &[("authorization", "Bearer sk-nope-123456789")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(&bytes)["error"]["code"], "invalid_api_key");
    let (status, _, bytes) = call(
        sidecar.api,
        body.clone(),
        &[("authorization", &bearer(OTHER))],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json_body(&bytes)["error"]["code"], "expired_api_key");
    let (status, _, bytes) = call(
        sidecar.api,
        body.clone(),
        &[("authorization", "Bearer sk-llmesh-narrow-00000000000003")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let error = &json_body(&bytes)["error"];
    assert_eq!(error["code"], "model_not_allowed");
    assert_eq!(error["type"], "permission_error");
    assert_eq!(
        mock.request_count(),
        2,
        "refused calls never reach the provider"
    );
}

/// A key whose Budget is not in the config fails closed: 403 saying which Budget, and
/// the provider is never called (the operator marks the key Ready=False too).
#[tokio::test]
async fn a_key_whose_budget_is_missing_is_refused() {
    let mock = MockOpenAi::start().await;
    let mut orphan = key("team-a", SECRET);
    orphan.budget = Some("gone".into());
    let snap = with(vec![priced("chat", &mock)], vec![orphan], vec![]);
    let sidecar = Running::start(Some(snap)).await;
    let (status, _, bytes) = call(
        sidecar.api,
        chat("chat"),
        &[("authorization", &bearer(SECRET))],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let error = &json_body(&bytes)["error"];
    assert_eq!(error["code"], "budget_not_found");
    assert!(
        error["message"].as_str().unwrap().contains("`gone`"),
        "{error}"
    );
    assert_eq!(mock.request_count(), 0);
}

#[tokio::test]
async fn a_pod_bound_to_a_key_calls_without_a_header() {
    let mock = MockOpenAi::start().await;
    let snap = with(
        vec![priced("chat", &mock)],
        vec![key("team-a", SECRET)],
        vec![],
    );
    let sidecar = Running::start_with(Some(snap), |s| s.bound_key = Some("team-a".into())).await;
    let (status, _, _) = call(sidecar.api, chat("chat"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let text = sidecar.metrics().await;
    assert!(
        metric(
            &text,
            r#"llmesh_tokens_total{key="team-a",kind="completion",model="chat",team="team-a"}"#
        ) > 0,
        "{text}"
    );
}

#[tokio::test]
async fn rpm_and_parallel_limits_answer_429_with_retry_after() {
    let mock = MockOpenAi::start().await;
    let mut limited = key("team-a", SECRET);
    limited.rpm = Some(3);
    let mut single = key("single", OTHER);
    single.max_parallel_requests = Some(1);
    let snap = with(vec![priced("chat", &mock)], vec![limited, single], vec![]);
    let sidecar = Running::start(Some(snap)).await;
    let auth = bearer(SECRET);
    for _ in 0..3 {
        let (status, _, _) = call(sidecar.api, chat("chat"), &[("authorization", &auth)]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, bytes) =
        call(sidecar.api, chat("chat"), &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_body(&bytes)["error"]["code"], "rate_limit_exceeded");
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");

    // One call in flight at a time for `single`.
    mock.enqueue(Reply::ok().with_delay(Duration::from_secs(1)));
    let api = sidecar.api;
    let slow =
        tokio::spawn(
            async move { call(api, chat("chat"), &[("authorization", &bearer(OTHER))]).await },
        );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = call(
        sidecar.api,
        chat("chat"),
        &[("authorization", &bearer(OTHER))],
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(slow.await.unwrap().0, StatusCode::OK);
    let (status, _, _) = call(
        sidecar.api,
        chat("chat"),
        &[("authorization", &bearer(OTHER))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the slot is free again");
    let text = sidecar.metrics().await;
    assert_eq!(
        metric(&text, r#"llmesh_refusals_total{key="team-a",reason="rpm"}"#),
        1
    );
    assert_eq!(
        metric(
            &text,
            r#"llmesh_refusals_total{key="single",reason="parallel"}"#
        ),
        1
    );
}

#[tokio::test]
async fn plain_calls_are_metered_at_the_models_prices() {
    let mock = MockOpenAi::start().await;
    let snap = with(
        vec![priced("chat", &mock)],
        vec![key("team-a", SECRET)],
        vec![],
    );
    let sidecar = Running::start(Some(snap)).await;
    let auth = bearer(SECRET);
    let mut expected = 0u64;
    for _ in 0..3 {
        let (status, _, bytes) = call(sidecar.api, chat("chat"), &[("authorization", &auth)]).await;
        assert_eq!(status, StatusCode::OK);
        let usage = &json_body(&bytes)["usage"];
        let (p, c) = (
            usage["prompt_tokens"].as_u64().unwrap(),
            usage["completion_tokens"].as_u64().unwrap(),
        );
        // $1/M and $2/M: micro-dollars, rounded up per call.
        expected += p + 2 * c;
    }
    let text = sidecar.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"llmesh_spend_micros_total{key="team-a",model="chat",team="team-a"}"#
        ),
        expected
    );
}

#[tokio::test]
async fn streams_ask_for_usage_and_strip_it_when_the_client_did_not() {
    let mock = MockOpenAi::start().await;
    let snap = with(vec![priced("chat", &mock)], vec![], vec![]);
    let sidecar = Running::start(Some(snap)).await;

    mock.enqueue(Reply::stream(&["one ", "two"]));
    let (status, _, frames) = post_stream(sidecar.api, chat_stream("chat")).await;
    assert_eq!(status, StatusCode::OK);
    let sent = mock.requests()[0].json();
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "usage is asked for"
    );
    let events = sse_data(&frames);
    assert!(events.iter().all(|e| !e.contains("usage")), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));

    mock.enqueue(Reply::stream(&["one ", "two"]));
    let mut asked = chat_stream("chat");
    asked["stream_options"] = json!({"include_usage": true});
    let (_, _, frames) = post_stream(sidecar.api, asked).await;
    let events = sse_data(&frames);
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert!(usage_chunk["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Both streams were metered (anonymous: no keys in this namespace).
    let text = sidecar.metrics().await;
    let completion = metric(
        &text,
        r#"llmesh_tokens_total{key="",kind="completion",model="chat",team=""}"#,
    );
    assert_eq!(
        completion,
        2 * usage_chunk["usage"]["completion_tokens"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn an_exhausted_budget_refuses_or_downgrades() {
    let mock = MockOpenAi::start().await;
    let mut keyed = key("team-a", SECRET);
    keyed.budget = Some("small".into());
    // A dear model: $1,000/M input, $2,000/M output, so a call costs thousands of
    // micro-dollars and reserves more (its prompt estimate and max_tokens: 10).
    let mut dear = priced("chat", &mock);
    dear.pricing.input_micros_per_million = 1_000_000_000;
    dear.pricing.output_micros_per_million = 2_000_000_000;
    let budget = |action: Option<&str>| BudgetSpec {
        name: "small".into(),
        // Two calls' reservations fit; once two were spent the third's does not.
        limit_micros: 50_000,
        keys: vec!["team-a".into()],
        models: vec![],
        downgrade_to: action.map(str::to_owned),
    };
    let cheap = model(
        "cheap",
        vec![deployment("c", &mock.base_url(), "gpt-4o-mini")],
    );
    let snap = with(
        vec![dear.clone(), cheap.clone()],
        vec![keyed.clone()],
        vec![budget(None)],
    );
    let mut body = chat("chat");
    body["max_tokens"] = json!(10);
    let sidecar = Running::start(Some(snap)).await;
    let auth = bearer(SECRET);
    let mut served = 0;
    let mut refused = None;
    for _ in 0..10 {
        let (status, _, bytes) = call(sidecar.api, body.clone(), &[("authorization", &auth)]).await;
        match status {
            StatusCode::OK => served += 1,
            _ => {
                refused = Some((status, json_body(&bytes)));
                break;
            }
        }
    }
    let (status, error) = refused.expect("the budget never ran out");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["error"]["type"], "insufficient_quota");
    assert_eq!(error["error"]["code"], "budget_exceeded");
    assert_eq!(served, 2);
    assert_eq!(mock.request_count(), 2);

    let snap = Arc::new(Snapshot {
        version: "v2".into(),
        ..(*with(vec![dear, cheap], vec![keyed], vec![budget(Some("cheap"))])).clone()
    });
    let sidecar = Running::start(Some(snap)).await;
    let mut models = Vec::new();
    for _ in 0..5 {
        let (status, headers, bytes) =
            call(sidecar.api, body.clone(), &[("authorization", &auth)]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
        models.push(header(&headers, "x-llmesh-model").to_owned());
    }
    assert_eq!(models[0], "chat");
    assert_eq!(
        models.last().map(String::as_str),
        Some("cheap"),
        "{models:?}"
    );
}

/// A client that goes away mid-stream is charged: what the provider reported, or else
/// the call's reservation.
#[tokio::test]
async fn a_stream_cut_short_by_the_client_is_charged_its_reservation() {
    let mock = MockOpenAi::start().await;
    let snap = with(
        vec![priced("chat", &mock)],
        vec![key("team-a", SECRET)],
        vec![],
    );
    let sidecar = Running::start(Some(snap)).await;
    mock.enqueue(
        Reply::stream(&["a ", "b ", "c ", "d ", "e"]).with_chunk_delay(Duration::from_millis(200)),
    );
    let mut body = chat_stream("chat");
    body["max_tokens"] = json!(10);
    let text = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(sidecar.api).await.unwrap();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 256];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut first)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);
    // The reservation: the request's bytes / 4 prompt tokens at $1/M and 10 completion
    // tokens at $2/M, in micro-dollars.
    let reserved = text.len().div_ceil(4) as u64 + 2 * 10;
    let spend = r#"llmesh_spend_micros_total{key="team-a",model="chat",team="team-a"}"#;
    for _ in 0..100 {
        if metric(&sidecar.metrics().await, spend) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(&sidecar.metrics().await, spend), reserved);
}

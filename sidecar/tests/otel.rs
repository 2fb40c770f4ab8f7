//! OpenTelemetry traces from the built `llmesh-sidecar` process, configured by the
//! standard `OTEL_*` variables, at a real OTLP/HTTP receiver (`llmesh_tests::otlp`):
//! GenAI spans for a chat call, a streamed call that falls back, an error, a parent the
//! client did not sample, and a model that opts in to content capture; the client's
//! `traceparent` continued upstream; the GenAI histograms; OTLP/JSON when asked for. And
//! with tracing off, the client's trace context passed upstream unchanged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::{Pricing, RetrySpec};
use llmesh_tests::otlp::{Span, kind, status};
use llmesh_tests::{MockOpenAi, MockOtlp, Reply};
use serde_json::{Value, json};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_llmesh-sidecar");
const SECRET: &str = "sk-llmesh-otel-test-0001";

fn traceparent(trace: &str, parent: &str, sampled: bool) -> String {
    format!("00-{trace}-{parent}-{}", if sampled { "01" } else { "00" })
}

fn of_trace<'a>(spans: &'a [Span], trace: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.trace_id == trace).collect()
}

/// The sidecar process with OTLP export to `otlp`, serving `snapshot`.
async fn start(
    dir: &std::path::Path,
    otlp: &MockOtlp,
    snapshot: &Value,
    env: &[(&str, &str)],
) -> (Proc, SocketAddr) {
    let config = dir.join("snapshot.json");
    std::fs::write(&config, serde_json::to_vec(snapshot).unwrap()).unwrap();
    let (api, admin) = (free_port(), free_port());
    let child = Proc(
        Command::new(BIN)
            .args(["--config", config.to_str().unwrap()])
            .args([
                "--listen",
                &api.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.base_url())
            .env("OTEL_SERVICE_NAME", "checkout")
            .env("OTEL_TRACES_SAMPLER", "parentbased_always_on")
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("POD_NAME", "checkout-7d9f")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    for _ in 0..300 {
        if let Ok(Ok(response)) =
            tokio::time::timeout(Duration::from_millis(200), try_get(admin, "/readyz")).await
            && response == StatusCode::OK
        {
            return (child, api);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the sidecar never became ready");
}

async fn try_get(addr: SocketAddr, path: &str) -> Result<StatusCode, ()> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|_| ())?;
    drop(stream);
    Ok(get(addr, path).await.0)
}

async fn post_with(
    api: SocketAddr,
    body: Value,
    trace: Option<&str>,
) -> (StatusCode, http::HeaderMap, Value) {
    let auth = format!("Bearer {SECRET}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(trace) = trace {
        headers.push(("traceparent", trace));
    }
    let (status, headers, bytes) = call(api, body, &headers).await;
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        // A stream: its events, as text.
        Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    (status, headers, json)
}

#[tokio::test]
async fn calls_make_genai_spans_at_the_otlp_endpoint_the_environment_names() {
    let otlp = MockOtlp::start().await;
    let upstream = MockOpenAi::start().await;
    let failing = MockOpenAi::start().await;
    failing.set_default(Reply::error(500, "overloaded", "server_error", None));
    let refusing = MockOpenAi::start().await;
    refusing.set_default(Reply::error(
        400,
        "bad request",
        "invalid_request_error",
        None,
    ));

    let mut chat = model(
        "chat",
        vec![deployment("openai-a", &upstream.base_url(), "gpt-4o-mini")],
    );
    chat.pricing = Pricing {
        input_micros_per_million: 2_000_000,
        output_micros_per_million: 8_000_000,
        ..Pricing::default()
    };
    let mut primary = model(
        "primary",
        vec![deployment("broken", &failing.base_url(), "gpt-4o")],
    );
    primary.retry = RetrySpec {
        server_error: 0,
        ..primary.retry
    };
    primary.fallbacks = vec!["backup".into()];
    let backup = model(
        "backup",
        vec![deployment("spare", &upstream.base_url(), "gpt-4o-mini")],
    );
    let refused = model(
        "refused",
        vec![deployment("strict", &refusing.base_url(), "gpt-4o")],
    );
    let mut logged = model(
        "logged",
        vec![deployment("openai-b", &upstream.base_url(), "gpt-4o-mini")],
    );
    logged.capture_content = true;
    let mut app = key("app", SECRET);
    app.team = Some("search".into());
    let snapshot = with(
        vec![chat, primary, backup, refused, logged],
        vec![app],
        vec![],
    );
    let dir = std::env::temp_dir().join(format!("llmesh-otel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_sidecar, api) = start(&dir, &otlp, &serde_json::to_value(&*snapshot).unwrap(), &[]).await;

    // 1. A chat call, under the client's trace.
    let t1 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let (status, _, answer) = post_with(
        api,
        chat_body("chat"),
        Some(&traceparent(t1, client_span, true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // 2. A stream that falls back from a failing model.
    let t2 = "5bf92f3577b34da6a3ce929d0e0e4737";
    let stream = json!({"model": "primary", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hello"}]});
    let (status, _, _) = post_with(api, stream, Some(&traceparent(t2, client_span, true))).await;
    assert_eq!(status, StatusCode::OK);
    // 3. An error.
    let t3 = "6bf92f3577b34da6a3ce929d0e0e4738";
    let (status, _, _) = post_with(
        api,
        chat_body("refused"),
        Some(&traceparent(t3, client_span, true)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // 4. A parent the client did not sample: nothing is exported, the context still
    // travels upstream.
    let t4 = "7bf92f3577b34da6a3ce929d0e0e4739";
    let (status, _, _) = post_with(
        api,
        chat_body("chat"),
        Some(&traceparent(t4, client_span, false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // 5. A model that opts in to content capture; no client trace: a new one starts.
    let (status, _, _) = post_with(api, chat_body("logged"), None).await;
    assert_eq!(status, StatusCode::OK);

    // 2 + 3 + 2 + 2 spans are expected (the unsampled call makes none).
    let spans = otlp.wait_for_spans(9, Duration::from_secs(20)).await;
    let names: Vec<_> = spans.iter().map(|s| (&s.name, &s.trace_id)).collect();

    // 1: a SERVER span continuing the client's, and the attempt's CLIENT span under it.
    let first = of_trace(&spans, t1);
    assert_eq!(first.len(), 2, "{names:?}");
    let server = first.iter().find(|s| s.kind == kind::SERVER).unwrap();
    let attempt = first.iter().find(|s| s.kind == kind::CLIENT).unwrap();
    assert_eq!(server.parent_span_id, client_span);
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(server.name, "chat chat");
    assert_eq!(attempt.name, "chat gpt-4o-mini");
    assert_eq!(server.status, status::UNSET);
    let usage = &answer["usage"];
    for (key, want) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!("openai-compatible")),
        ("gen_ai.request.model", json!("chat")),
        ("gen_ai.response.model", answer["model"].clone()),
        ("gen_ai.response.id", answer["id"].clone()),
        ("gen_ai.response.finish_reasons", json!(["stop"])),
        ("gen_ai.usage.input_tokens", usage["prompt_tokens"].clone()),
        (
            "gen_ai.usage.output_tokens",
            usage["completion_tokens"].clone(),
        ),
        ("http.response.status_code", json!(200)),
        ("llmesh.key", json!("app")),
        ("llmesh.team", json!("search")),
        ("llmesh.deployment", json!("openai-a")),
        ("llmesh.attempts", json!(1)),
    ] {
        assert_eq!(
            server.attr(key),
            &want,
            "server span {key}: {:?}",
            server.attributes
        );
    }
    let (input, output) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    let cost = (input * 2_000_000 + output * 8_000_000).div_ceil(1_000_000);
    assert_eq!(server.attr("llmesh.cost_micros"), &json!(cost));
    for (key, want) in [
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.request.model", json!("gpt-4o-mini")),
        ("gen_ai.usage.input_tokens", usage["prompt_tokens"].clone()),
        ("server.address", json!("127.0.0.1")),
        ("server.port", json!(upstream.addr().port())),
        ("llmesh.attempt", json!(1)),
        ("llmesh.model", json!("chat")),
    ] {
        assert_eq!(
            attempt.attr(key),
            &want,
            "attempt span {key}: {:?}",
            attempt.attributes
        );
    }
    assert_eq!(
        server.attr("gen_ai.input.messages"),
        &Value::Null,
        "content is off by default"
    );
    assert_eq!(server.resource["service.name"], "checkout");
    assert_eq!(server.resource["k8s.pod.name"], "checkout-7d9f");
    // The upstream got the attempt's context: same trace, the attempt as parent.
    let sent = upstream.requests()[0]
        .header("traceparent")
        .unwrap()
        .to_owned();
    assert_eq!(sent, traceparent(t1, &attempt.span_id, true));

    // 2: the failed attempt and the fallback's are siblings under the call's span.
    let second = of_trace(&spans, t2);
    assert_eq!(second.len(), 3, "{names:?}");
    let server = second.iter().find(|s| s.kind == kind::SERVER).unwrap();
    let mut attempts: Vec<_> = second.iter().filter(|s| s.kind == kind::CLIENT).collect();
    attempts.sort_by_key(|s| s.attr("llmesh.attempt").as_i64());
    assert!(attempts.iter().all(|s| s.parent_span_id == server.span_id));
    assert_eq!(attempts[0].attr("llmesh.deployment"), "broken");
    assert_eq!(attempts[0].attr("error.type"), "server_error");
    assert_eq!(attempts[0].attr("http.response.status_code"), 500);
    assert_eq!(attempts[0].status, status::ERROR);
    assert_eq!(attempts[1].attr("llmesh.model"), "backup");
    assert_eq!(attempts[1].attr("llmesh.attempt"), 2);
    assert_eq!(attempts[1].status, status::UNSET);
    assert!(attempts[1].attr("gen_ai.usage.output_tokens").as_i64() > Some(0));
    // What the stream's events said of the answer, on the call and the attempt.
    for span in [server, attempts[1]] {
        assert_eq!(
            span.attr("gen_ai.response.finish_reasons"),
            &json!(["stop"])
        );
        assert_eq!(span.attr("gen_ai.response.model"), "gpt-4o-mini");
        assert!(
            span.attr("gen_ai.response.id")
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    assert_eq!(server.attr("llmesh.served_model"), "backup");
    assert_eq!(server.attr("llmesh.attempts"), 2);
    assert_eq!(server.attr("gen_ai.request.model"), "primary");
    assert!(server.attr("gen_ai.usage.input_tokens").as_i64() > Some(0));
    assert_eq!(server.status, status::UNSET);

    // 3: the error.
    let third = of_trace(&spans, t3);
    let server = third.iter().find(|s| s.kind == kind::SERVER).unwrap();
    assert_eq!(server.status, status::ERROR);
    assert_eq!(server.attr("http.response.status_code"), 400);
    assert!(
        server
            .attr("error.type")
            .as_str()
            .is_some_and(|e| !e.is_empty())
    );
    let attempt = third.iter().find(|s| s.kind == kind::CLIENT).unwrap();
    assert_eq!(attempt.attr("error.type"), "client_error");

    // 4: not sampled, so not exported; the upstream still got the trace, unsampled.
    assert!(of_trace(&spans, t4).is_empty(), "{names:?}");
    let unsampled = upstream
        .requests()
        .iter()
        .filter_map(|r| r.header("traceparent").map(str::to_owned))
        .find(|t| t.contains(t4))
        .unwrap();
    assert!(unsampled.ends_with("-00"), "{unsampled}");

    // 5: prompts and completions, on the model that opted in only.
    let logged = spans
        .iter()
        .find(|s| s.kind == kind::SERVER && s.attr("gen_ai.request.model") == "logged")
        .unwrap();
    assert_eq!(
        logged.parent_span_id, "",
        "a call without a trace starts one"
    );
    let input: Value =
        serde_json::from_str(logged.attr("gen_ai.input.messages").as_str().unwrap()).unwrap();
    assert_eq!(
        input,
        json!([{"role": "user", "parts": [{"type": "text", "content": "hello"}]}])
    );
    let output: Value =
        serde_json::from_str(logged.attr("gen_ai.output.messages").as_str().unwrap()).unwrap();
    assert_eq!(output[0]["role"], "assistant");
    assert_eq!(output[0]["finish_reason"], "stop");
    assert!(
        spans
            .iter()
            .all(|s| s.attr("gen_ai.input.messages").is_null()
                || s.attr("gen_ai.request.model") == "logged")
    );
}

#[tokio::test]
async fn spans_go_as_otlp_json_when_the_protocol_says_so() {
    let otlp = MockOtlp::start().await;
    let upstream = MockOpenAi::start().await;
    let chat = model(
        "chat",
        vec![deployment("a", &upstream.base_url(), "gpt-4o-mini")],
    );
    let snapshot = with(vec![chat], vec![key("app", SECRET)], vec![]);
    let dir = std::env::temp_dir().join(format!("llmesh-otel-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = [("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")];
    let (_sidecar, api) = start(
        &dir,
        &otlp,
        &serde_json::to_value(&*snapshot).unwrap(),
        &json,
    )
    .await;
    let trace = "8bf92f3577b34da6a3ce929d0e0e4730";
    let parent = traceparent(trace, "00f067aa0ba902b7", true);
    let (status, _, _) = post_with(api, chat_body("chat"), Some(&parent)).await;
    assert_eq!(status, StatusCode::OK);
    let spans = otlp.wait_for_spans(2, Duration::from_secs(20)).await;
    assert!(
        otlp.requests()
            .iter()
            .all(|r| r.header("content-type") == Some("application/json")),
        "every export is OTLP/JSON"
    );
    let server = spans.iter().find(|s| s.kind == kind::SERVER).unwrap();
    assert_eq!(server.trace_id, trace);
    assert_eq!(server.attr("gen_ai.request.model"), "chat");
    assert!(server.attr("gen_ai.usage.output_tokens").as_i64() > Some(0));
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn with_tracing_off_the_clients_trace_context_goes_upstream_unchanged() {
    let upstream = MockOpenAi::start().await;
    let snapshot = snapshot(
        "v1",
        vec![model(
            "chat",
            vec![deployment("a", &upstream.base_url(), "gpt-4o-mini")],
        )],
    );
    let sidecar = Running::start(Some(snapshot)).await;
    let sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Headers, Option<&str>); 4] = [
        (
            &[("traceparent", sent), ("tracestate", "vendor=1")],
            Some(sent),
        ),
        (&[], None),
        // Malformed or all-zero contexts are dropped, not passed on.
        (&[("traceparent", "00-zz-00f067aa0ba902b7-01")], None),
        (
            &[(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
            None,
        ),
    ];
    for (i, (headers, want)) in cases.iter().enumerate() {
        let (status, _, _) = call(sidecar.api, chat("chat"), headers).await;
        assert_eq!(status, StatusCode::OK);
        let got = upstream.requests()[i]
            .header("traceparent")
            .map(str::to_owned);
        assert_eq!(got.as_deref(), *want, "case {i}");
    }
    assert_eq!(
        upstream.requests()[0].header("tracestate"),
        Some("vendor=1")
    );
    let metrics = sidecar.metrics().await;
    assert!(
        metrics.contains(r#"gen_ai_client_token_usage_count{gen_ai_operation_name="chat",gen_ai_provider_name="openai-compatible",gen_ai_request_model="chat",gen_ai_token_type="input"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"gen_ai_client_operation_duration_seconds_count{error_type="",gen_ai_operation_name="chat",gen_ai_provider_name="openai-compatible",gen_ai_request_model="chat"} 4"#),
        "{metrics}"
    );
}

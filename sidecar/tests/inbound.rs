//! The Messages and Responses APIs through the running sidecar: served natively by
//! providers that speak them (the client's body reaches the upstream as sent, with
//! `model` replaced) and through chat by the others; errors in the client's API;
//! kept responses and `previous_response_id`; token counts; metering on every endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::anthropic::{self as anthropic_mock, MockAnthropic};
use llmesh_tests::openai::{MockOpenAi, Reply};
use serde_json::{Value, json};
use support::*;

/// Model `claude` served by Anthropic, `gpt` by an OpenAI-compatible server, `oai` by
/// OpenAI itself (which serves the Responses API).
fn models(anthropic: &MockAnthropic, openai: &MockOpenAi) -> Vec<ModelSpec> {
    let mut claude = deployment("anthropic", &anthropic.base_url(), "claude-sonnet-4-5");
    claude.provider = ProviderKind::Anthropic;
    claude.api_key = Some(SecretString::new(anthropic_mock::API_KEY));
    let mut oai = deployment("openai", &openai.base_url(), "gpt-5");
    oai.provider = ProviderKind::Openai;
    let priced = |mut m: ModelSpec| {
        m.pricing.input_micros_per_million = 1_000_000;
        m.pricing.output_micros_per_million = 2_000_000;
        m
    };
    vec![
        priced(model("claude", vec![claude])),
        priced(model(
            "gpt",
            vec![deployment("compat", &openai.base_url(), "llama")],
        )),
        priced(model("oai", vec![oai])),
    ]
}

async fn start() -> (Running, MockAnthropic, MockOpenAi) {
    let anthropic = MockAnthropic::start().await;
    let openai = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot("v1", models(&anthropic, &openai)))).await;
    (sidecar, anthropic, openai)
}

/// A request with these headers; the whole answer.
async fn request(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, HeaderMap, Bytes) {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(builder.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn messages(addr: SocketAddr, body: Value) -> (StatusCode, HeaderMap, Bytes) {
    let headers = [
        ("x-api-key", "sk-anything"),
        ("anthropic-version", "2023-06-01"),
    ];
    request(
        addr,
        http::Method::POST,
        "/v1/messages",
        &headers,
        Some(body),
    )
    .await
}

async fn responses(addr: SocketAddr, body: Value) -> (StatusCode, HeaderMap, Bytes) {
    request(addr, http::Method::POST, "/v1/responses", &[], Some(body)).await
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(bytes)))
}

/// `(event name, data)` of each SSE event.
fn events(bytes: &[u8]) -> Vec<(String, Value)> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let name = event
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (
                name.to_owned(),
                serde_json::from_str(data).unwrap_or(Value::String(data.into())),
            )
        })
        .collect()
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A conversation as Claude Code sends one: system blocks with `cache_control`, a
/// signed thinking block and a tool call in the history, a tool result, a field and a
/// beta llmesh does not know.
fn agent_turn(stream: bool) -> Value {
    json!({
        "model": "claude",
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a coding agent.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "list the files"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "I should run ls.", "signature": "sig-abc"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"},
                {"type": "text", "text": "what now?", "cache_control": {"type": "ephemeral"}}
            ]}
        ],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "context_management": {"edits": []}
    })
}

#[tokio::test]
async fn messages_reach_anthropic_as_the_client_sent_them() {
    let (sidecar, anthropic, _openai) = start().await;
    let headers = [
        ("x-api-key", "sk-anything"),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "interleaved-thinking-2025-05-14,context-management-2025-06-27",
        ),
    ];
    let (status, _, body) = request(
        sidecar.api,
        http::Method::POST,
        "/v1/messages",
        &headers,
        Some(agent_turn(false)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let answer = json_of(&body);
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["content"][0]["type"], "text");

    let sent = &anthropic.requests()[0];
    assert_eq!(sent.path_only(), "/v1/messages");
    assert_eq!(
        sent.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,context-management-2025-06-27")
    );
    assert_eq!(sent.header("x-api-key"), Some(anthropic_mock::API_KEY));
    // The body is the client's, `model` aside: nothing lost, nothing added.
    let mut expected = agent_turn(false);
    expected["model"] = json!("claude-sonnet-4-5");
    assert_eq!(sent.json(), expected);

    // Streams pass through event by event, and are metered.
    let (status, headers, body) = request(
        sidecar.api,
        http::Method::POST,
        "/v1/messages",
        &headers,
        Some(agent_turn(true)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(header(&headers, "content-type").starts_with("text/event-stream"));
    let names: Vec<String> = events(&body).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(names.iter().any(|n| n == "content_block_delta"));
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"llmesh_requests_total{deployment="anthropic",endpoint="messages""#
        ),
        2.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, r#"llmesh_tokens_total{"#) > 0.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn messages_reach_other_providers_through_chat() {
    let (sidecar, _anthropic, openai) = start().await;
    let body = json!({
        "model": "gpt", "max_tokens": 100,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "hello"}]
    });
    let (status, _, answer) = messages(sidecar.api, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let answer = json_of(&answer);
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["model"], "gpt");
    assert_eq!(answer["content"][0]["text"], "mock reply to: hello");
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);
    let sent = openai.requests()[0].json();
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["max_completion_tokens"], 100);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (status, _, bytes) = messages(sidecar.api, streamed).await;
    assert_eq!(status, StatusCode::OK);
    let events = events(&bytes);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_start", "ping"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(text, "mock reply to: hello");
    let (_, last_delta) = &events[events.len() - 2];
    assert_eq!(last_delta["delta"]["stop_reason"], "end_turn");
    assert!(last_delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn errors_come_in_the_clients_shape() {
    let (sidecar, _anthropic, openai) = start().await;
    // Anthropic's shape under /v1/messages.
    let (status, _, body) = messages(
        sidecar.api,
        json!({"model": "nope", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let body = json_of(&body);
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "not_found_error");

    let (status, _, body) = messages(sidecar.api, json!({"model": "gpt"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&body)["error"]["type"], "invalid_request_error");

    // An overloaded upstream is Anthropic's 529 to an Anthropic client.
    openai.set_default(Reply::error(503, "busy", "server_error", None));
    let (status, _, body) = messages(
        sidecar.api,
        json!({"model": "gpt", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status.as_u16(), 529);
    assert_eq!(json_of(&body)["error"]["type"], "overloaded_error");

    // OpenAI's shape under /v1/responses.
    let (status, _, body) = responses(sidecar.api, json!({"model": "nope", "input": "x"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body)["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn models_are_listed_in_anthropics_shape_to_anthropic_clients() {
    let (sidecar, _anthropic, _openai) = start().await;
    let (status, _, body) = request(
        sidecar.api,
        http::Method::GET,
        "/v1/models",
        &[("anthropic-version", "2023-06-01")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let body = json_of(&body);
    assert_eq!(body["data"][0]["type"], "model");
    assert_eq!(body["has_more"], false);
    assert_eq!(body["first_id"], "claude");
    let (_, _, body) = request(sidecar.api, http::Method::GET, "/v1/models", &[], None).await;
    assert_eq!(json_of(&body)["object"], "list");
}

#[tokio::test]
async fn tokens_are_counted_by_the_provider_or_estimated() {
    let (sidecar, _anthropic, _openai) = start().await;
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "abcdefgh"}]});
    let (status, headers, answer) = request(
        sidecar.api,
        http::Method::POST,
        "/v1/messages/count_tokens",
        &[],
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-token-count"), "estimated");
    assert_eq!(json_of(&answer)["input_tokens"], 10);
}

/// A Responses answer from OpenAI, in its wire format.
fn openai_response(id: &str, text: &str) -> Value {
    json!({
        "id": id, "object": "response", "created_at": 1, "status": "completed", "model": "gpt-5",
        "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4},
                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 15}
    })
}

#[tokio::test]
async fn responses_reach_openai_as_sent_and_are_kept_for_the_next_turn() {
    let (sidecar, _anthropic, openai) = start().await;
    openai.enqueue(Reply::json(200, openai_response("resp_1", "first")));
    openai.enqueue(Reply::json(200, openai_response("resp_2", "second")));
    let first = json!({"model": "oai", "input": "hi", "reasoning": {"effort": "low"}, "include": ["reasoning.encrypted_content"]});
    let (status, _, body) = responses(sidecar.api, first).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["id"], "resp_1");
    let sent = &openai.requests()[0];
    assert_eq!(sent.path_only(), "/v1/responses");
    assert_eq!(sent.json()["model"], "gpt-5");
    assert_eq!(sent.json()["reasoning"], json!({"effort": "low"}));

    // The next turn carries the conversation this sidecar kept.
    let (status, _, _) = responses(
        sidecar.api,
        json!({"model": "oai", "input": "and then?", "previous_response_id": "resp_1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let sent = openai.requests()[1].json();
    assert!(sent.get("previous_response_id").is_none(), "{sent}");
    let input = sent["input"].as_array().unwrap();
    assert_eq!(input.len(), 3, "{sent}");
    assert_eq!(input[0]["content"], "hi");
    assert_eq!(input[1]["content"][0]["text"], "first");
    assert_eq!(input[2]["content"], "and then?");

    // Kept responses can be read and deleted.
    let (status, _, body) = request(
        sidecar.api,
        http::Method::GET,
        "/v1/responses/resp_2",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["output"][0]["content"][0]["text"], "second");
    let (status, _, body) = request(
        sidecar.api,
        http::Method::DELETE,
        "/v1/responses/resp_2",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_of(&body)["deleted"], true);
    let (status, _, _) = request(
        sidecar.api,
        http::Method::GET,
        "/v1/responses/resp_2",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Usage is metered from the Responses usage object, cached tokens included.
    let metrics = sidecar.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"llmesh_requests_total{deployment="openai",endpoint="responses""#
        ),
        2.0,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_responses_stream_from_openai_passes_through_and_is_kept() {
    let (sidecar, _anthropic, openai) = start().await;
    let done = json!({"type": "response.completed", "sequence_number": 3, "response": openai_response("resp_s", "hey")});
    openai.enqueue(Reply::raw_stream(&[
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_s\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"hey\"}\n\n",
        &format!("event: response.completed\ndata: {done}\n\n"),
    ]));
    let (status, _, body) = responses(
        sidecar.api,
        json!({"model": "oai", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<String> = events(&body).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.output_text.delta",
            "response.completed"
        ]
    );
    let (status, _, _) = request(
        sidecar.api,
        http::Method::GET,
        "/v1/responses/resp_s",
        &[],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a completed stream's response is kept"
    );

    // `store: false` (Codex's) keeps nothing.
    let done = json!({"type": "response.completed", "sequence_number": 1, "response": openai_response("resp_t", "hey")});
    openai.enqueue(Reply::raw_stream(&[
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_t\",\"status\":\"in_progress\",\"output\":[]}}\n\n",
        &format!("event: response.completed\ndata: {done}\n\n"),
    ]));
    let (status, _, _) = responses(
        sidecar.api,
        json!({"model": "oai", "input": "hi", "stream": true, "store": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = request(
        sidecar.api,
        http::Method::GET,
        "/v1/responses/resp_t",
        &[],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "store: false keeps nothing");
}

/// `metric{labels}` as an integer (0 when absent).
fn counter(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// One call to `endpoint` with `key` for `model`, streamed or whole, at most 10 tokens out.
fn body_for(endpoint: &str, model: &str, stream: bool) -> Value {
    match endpoint {
        "/v1/messages" => json!({"model": model, "max_tokens": 10, "stream": stream,
                                 "messages": [{"role": "user", "content": "hello"}]}),
        "/v1/responses" => json!({"model": model, "max_output_tokens": 10, "stream": stream,
                                  "input": "hello", "store": false}),
        _ => json!({"model": model, "max_tokens": 10, "stream": stream,
                    "messages": [{"role": "user", "content": "hello"}]}),
    }
}

/// Keys, limits, budgets and metering hold on every inbound API alike, translated or
/// not, whole or streamed.
#[tokio::test]
async fn keys_budgets_and_metering_hold_on_every_api() {
    const SECRET: &str = "sk-llmesh-inbound-key-000000001";
    let anthropic = MockAnthropic::start().await;
    let openai = MockOpenAi::start().await;
    let mut key = support::key("team-a", SECRET);
    key.team = Some("team-a".into());
    key.budget = Some("small".into());
    let budget = BudgetSpec {
        name: "small".into(),
        limit_micros: 1_000_000,
        keys: vec!["team-a".into()],
        models: vec![],
        downgrade_to: None,
    };
    let sidecar = Running::start(Some(with(
        models(&anthropic, &openai),
        vec![key],
        vec![budget],
    )))
    .await;
    let bearer = format!("Bearer {SECRET}");
    let endpoints = ["/v1/chat/completions", "/v1/messages", "/v1/responses"];

    // No key: refused in each API's own shape.
    for path in endpoints {
        let (status, _, body) = request(
            sidecar.api,
            http::Method::POST,
            path,
            &[],
            Some(body_for(path, "gpt", false)),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let body = json_of(&body);
        if path == "/v1/messages" {
            assert_eq!(body["error"]["type"], "authentication_error", "{path}");
        } else {
            assert_eq!(body["error"]["code"], "missing_api_key", "{path}");
        }
    }

    // Every API is metered, translated or not, whole or streamed: the spend is the
    // tokens each answer reported at the model's prices.
    for path in endpoints {
        for model in ["claude", "gpt", "oai"] {
            if model == "oai" && path == "/v1/responses" {
                openai.enqueue(Reply::json(200, openai_response("resp_m", "x")));
            }
            for stream in [false, true] {
                if model == "oai" && path == "/v1/responses" && stream {
                    continue; // The OpenAI mock scripts Responses streams by hand (above).
                }
                let before = sidecar.metrics().await;
                let headers = [
                    ("authorization", bearer.as_str()),
                    ("anthropic-version", "2023-06-01"),
                ];
                let (status, _, body) = request(
                    sidecar.api,
                    http::Method::POST,
                    path,
                    &headers,
                    Some(body_for(path, model, stream)),
                )
                .await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{path} {model} {stream}: {}",
                    String::from_utf8_lossy(&body)
                );
                let after = sidecar.metrics().await;
                let spend = format!(
                    r#"llmesh_spend_micros_total{{key="team-a",model="{model}",team="team-a"}}"#
                );
                assert!(
                    counter(&after, &spend) > counter(&before, &spend),
                    "{path} {model} stream={stream} was not charged"
                );
            }
        }
    }
    let metrics = sidecar.metrics().await;
    for endpoint in ["chat_completions", "messages", "responses"] {
        assert!(
            metrics.contains(&format!(r#"endpoint="{endpoint}""#)),
            "{endpoint}: {metrics}"
        );
    }

    // A budget that ran out refuses every API, each in its own shape.
    let mut dear = models(&anthropic, &openai);
    for m in &mut dear {
        m.pricing.input_micros_per_million = 1_000_000_000_000;
    }
    let mut key = support::key("team-a", SECRET);
    key.budget = Some("small".into());
    let budget = BudgetSpec {
        name: "small".into(),
        limit_micros: 1,
        keys: vec!["team-a".into()],
        models: vec![],
        downgrade_to: None,
    };
    sidecar
        .reconfigure(Arc::new(Snapshot {
            version: "v2".into(),
            ..(*with(dear, vec![key], vec![budget])).clone()
        }))
        .await;
    for path in endpoints {
        let headers = [("authorization", bearer.as_str())];
        let (status, _, body) = request(
            sidecar.api,
            http::Method::POST,
            path,
            &headers,
            Some(body_for(path, "claude", false)),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{path}: {}",
            String::from_utf8_lossy(&body)
        );
        let body = json_of(&body);
        if path == "/v1/messages" {
            assert_eq!(body["type"], "error");
            assert_eq!(body["error"]["type"], "rate_limit_error");
        } else {
            assert_eq!(body["error"]["code"], "budget_exceeded");
        }
    }
}

//! The response cache through the running sidecar, against the OpenAI and Anthropic
//! mocks: hits that never reach the upstream, misses, the ttl, the LRU bound, streams
//! replayed from whole answers and whole answers from streams, `Cache-Control`, scope
//! per virtual key, what is never kept, and the metering of hits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

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

const SECRET_A: &str = "sk-llmesh-cache-key-0000000000a";
const SECRET_B: &str = "sk-llmesh-cache-key-0000000000b";

/// `name` served by the OpenAI mock at $1/M input and $2/M output, caching for `ttl_ms`.
fn cached(name: &str, mock: &MockOpenAi, ttl_ms: u64) -> ModelSpec {
    let mut m = model(name, vec![deployment("d", &mock.base_url(), "gpt-4o-mini")]);
    m.pricing.input_micros_per_million = 1_000_000;
    m.pricing.output_micros_per_million = 2_000_000;
    m.cache = Some(CacheSpec::new(ttl_ms));
    m
}

/// A POST to `path` with these headers (and the key of `secret`, if any).
async fn post(
    addr: SocketAddr,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            request
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.unwrap().to_bytes(),
    )
}

async fn chat_call(
    addr: SocketAddr,
    body: &Value,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    post(addr, "/v1/chat/completions", body, headers).await
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(bytes)))
}

/// The `data:` payloads of an SSE body.
fn data_of(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .split("\n\n")
        .filter_map(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

/// The content a chat stream carries, its chunks joined.
fn streamed_text(bytes: &[u8]) -> String {
    data_of(bytes)
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            let chunk: Value = serde_json::from_str(d).unwrap();
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// A metric's value (0 when absent).
fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn cache_header(headers: &HeaderMap) -> &str {
    header(headers, "x-llmesh-cache")
}

fn question(text: &str) -> Value {
    json!({"model": "chat", "messages": [{"role": "user", "content": text}], "temperature": 0})
}

#[tokio::test]
async fn a_repeated_call_is_answered_from_the_cache_without_the_upstream_and_costs_nothing() {
    let mock = MockOpenAi::start().await;
    let keyed = |name: &str, secret: &str| KeySpec {
        team: Some("team-a".into()),
        ..key(name, secret)
    };
    let snap = with(
        vec![cached("chat", &mock, 600_000)],
        vec![keyed("a", SECRET_A), keyed("b", SECRET_B)],
        vec![],
    );
    let sidecar = Running::start(Some(snap)).await;
    let auth_a = format!("Bearer {SECRET_A}");
    let as_a = [("authorization", auth_a.as_str())];

    let (status, headers, first) =
        chat_call(sidecar.api, &question("capital of France?"), &as_a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache_header(&headers), "miss");
    assert_eq!(mock.request_count(), 1);
    let spend = r#"llmesh_spend_micros_total{key="a",model="chat",team="team-a"}"#;
    let tokens = r#"llmesh_tokens_total{key="a",kind="completion",model="chat",team="team-a"}"#;
    let before = sidecar.metrics().await;
    let usage = &json_of(&first)["usage"];
    let cost =
        usage["prompt_tokens"].as_u64().unwrap() + 2 * usage["completion_tokens"].as_u64().unwrap();
    assert_eq!(metric(&before, spend), cost);

    // The same call, its JSON written another way: keys reordered, spaces, a null.
    let same = r#"{ "temperature": 0.0, "messages": [ { "content": "capital of France?", "role": "user" } ],
                    "model": "chat", "user": "someone-else", "top_p": null }"#;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            http::Request::post(format!("http://{}/v1/chat/completions", sidecar.api))
                .header("authorization", auth_a.as_str())
                .body(Full::new(Bytes::from_static(same.as_bytes())))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let again = body.collect().await.unwrap().to_bytes();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(cache_header(&parts.headers), "hit");
    assert_eq!(header(&parts.headers, "x-llmesh-model"), "chat");
    assert_eq!(header(&parts.headers, "content-type"), "application/json");
    assert!(header(&parts.headers, "age").parse::<u64>().is_ok());
    assert_eq!(again, first, "the very answer, id included");
    assert_eq!(mock.request_count(), 1, "the upstream saw no request");

    // A hit costs nothing and uses no tokens; what it saved is counted.
    let after = sidecar.metrics().await;
    assert_eq!(metric(&after, spend), cost);
    assert_eq!(metric(&after, tokens), metric(&before, tokens));
    assert_eq!(
        metric(
            &after,
            r#"llmesh_cache_saved_micros_total{key="a",model="chat",team="team-a"}"#
        ),
        cost
    );
    assert_eq!(
        metric(
            &after,
            r#"llmesh_cache_requests_total{model="chat",result="hit"}"#
        ),
        1
    );
    assert_eq!(
        metric(
            &after,
            r#"llmesh_cache_requests_total{model="chat",result="miss"}"#
        ),
        1
    );
    assert_eq!(metric(&after, r#"llmesh_cache_entries{model="chat"}"#), 1);
    assert!(metric(&after, r#"llmesh_cache_bytes{model="chat"}"#) > first.len() as u64);
    assert_eq!(
        metric(
            &after,
            r#"llmesh_requests_total{deployment="",endpoint="chat_completions",model="chat",provider="",status="200"}"#
        ),
        1,
        "a hit is a request no deployment served"
    );
    assert_eq!(metric(&after, "llmesh_budget_reserved_micros"), 0);

    // Any parameter that can change the answer misses.
    let mut warmer = question("capital of France?");
    warmer["temperature"] = json!(0.5);
    let (_, headers, _) = chat_call(sidecar.api, &warmer, &as_a).await;
    assert_eq!(cache_header(&headers), "miss");
    assert_eq!(mock.request_count(), 2);

    // Another key never sees key a's answers.
    let auth_b = format!("Bearer {SECRET_B}");
    let (_, headers, other) = chat_call(
        sidecar.api,
        &question("capital of France?"),
        &[("authorization", &auth_b)],
    )
    .await;
    assert_eq!(cache_header(&headers), "miss");
    assert_ne!(json_of(&other)["id"], json_of(&first)["id"]);
    assert_eq!(mock.request_count(), 3);
}

#[tokio::test]
async fn hits_still_pass_the_key_check_and_the_request_limits() {
    let mock = MockOpenAi::start().await;
    let mut limited = key("a", SECRET_A);
    limited.rpm = Some(2);
    let mut narrow = key("b", SECRET_B);
    narrow.models = vec!["other".into()];
    let snap = with(
        vec![cached("chat", &mock, 600_000)],
        vec![limited, narrow],
        vec![],
    );
    let sidecar = Running::start(Some(snap)).await;
    let auth_a = format!("Bearer {SECRET_A}");
    let body = question("hello");
    let (_, headers, _) = chat_call(sidecar.api, &body, &[("authorization", &auth_a)]).await;
    assert_eq!(cache_header(&headers), "miss");
    let (_, headers, _) = chat_call(sidecar.api, &body, &[("authorization", &auth_a)]).await;
    assert_eq!(cache_header(&headers), "hit");
    let (status, _, _) = chat_call(sidecar.api, &body, &[("authorization", &auth_a)]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "rpm counts hits");
    let (status, _, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth_b = format!("Bearer {SECRET_B}");
    let (status, _, _) = chat_call(sidecar.api, &body, &[("authorization", &auth_b)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(mock.request_count(), 1);
    let text = sidecar.metrics().await;
    assert_eq!(
        metric(
            &text,
            r#"llmesh_cache_requests_total{model="chat",result="hit"}"#
        ),
        1,
        "refused calls are not counted as hits"
    );
}

#[tokio::test]
async fn an_exhausted_budget_still_gets_answers_already_in_the_cache() {
    let mock = MockOpenAi::start().await;
    // A dear model: a call reserves tens of thousands of micro-dollars and spends some.
    let mut dear = cached("chat", &mock, 600_000);
    dear.pricing.input_micros_per_million = 1_000_000_000;
    dear.pricing.output_micros_per_million = 2_000_000_000;
    let mut keyed = key("a", SECRET_A);
    keyed.budget = Some("small".into());
    let budget = BudgetSpec {
        name: "small".into(),
        limit_micros: 50_000,
        keys: vec!["a".into()],
        models: vec![],
        downgrade_to: None,
    };
    let sidecar = Running::start(Some(with(vec![dear], vec![keyed], vec![budget]))).await;
    let auth = format!("Bearer {SECRET_A}");
    let ask = |n: usize| {
        let mut body = question(&format!("question {n}"));
        body["max_tokens"] = json!(10);
        body
    };
    let mut refused = None;
    for n in 0..10 {
        let (status, headers, bytes) =
            chat_call(sidecar.api, &ask(n), &[("authorization", &auth)]).await;
        if status != StatusCode::OK {
            refused = Some((status, json_of(&bytes), headers));
            break;
        }
    }
    let (status, error, headers) = refused.expect("the budget never ran out");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(error["error"]["code"], "budget_exceeded");
    assert_eq!(cache_header(&headers), "miss");
    let upstream = mock.request_count();
    let (status, headers, _) = chat_call(sidecar.api, &ask(0), &[("authorization", &auth)]).await;
    assert_eq!(status, StatusCode::OK, "a hit spends nothing");
    assert_eq!(cache_header(&headers), "hit");
    assert_eq!(mock.request_count(), upstream);
    assert_eq!(
        metric(&sidecar.metrics().await, "llmesh_budget_reserved_micros"),
        0
    );
}

#[tokio::test]
async fn answers_expire_after_the_ttl() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot("v1", vec![cached("chat", &mock, 300)]))).await;
    let body = question("what time is it?");
    let (_, headers, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(cache_header(&headers), "miss");
    // Longer than the ttl, however slow the machine: the answer is gone.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, headers, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(cache_header(&headers), "miss");
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn the_least_recently_used_answer_is_forgotten_first_and_large_ones_are_not_kept() {
    let mock = MockOpenAi::start().await;
    let mut bounded = cached("chat", &mock, 600_000);
    bounded.cache = Some(CacheSpec {
        max_entries: 2,
        ..CacheSpec::new(600_000)
    });
    let mut tiny = cached("tiny", &mock, 600_000);
    tiny.cache = Some(CacheSpec {
        max_entry_bytes: 64,
        ..CacheSpec::new(600_000)
    });
    let sidecar = Running::start(Some(snapshot("v1", vec![bounded, tiny]))).await;
    let api = sidecar.api;
    let result = |q: &str| {
        let body = question(q);
        async move {
            let (status, headers, _) = chat_call(api, &body, &[]).await;
            assert_eq!(status, StatusCode::OK);
            cache_header(&headers).to_owned()
        }
    };
    assert_eq!(result("a").await, "miss");
    assert_eq!(result("b").await, "miss");
    assert_eq!(result("a").await, "hit", "a is now the most recently used");
    assert_eq!(result("c").await, "miss", "c pushes b out");
    assert_eq!(result("a").await, "hit");
    assert_eq!(result("b").await, "miss", "b was forgotten");
    assert_eq!(
        result("c").await,
        "miss",
        "b pushed out c, used less recently than a"
    );
    assert_eq!(mock.request_count(), 5);
    let text = sidecar.metrics().await;
    assert_eq!(metric(&text, r#"llmesh_cache_entries{model="chat"}"#), 2);

    let mut large = question("anything");
    large["model"] = json!("tiny");
    for _ in 0..2 {
        let (_, headers, _) = chat_call(sidecar.api, &large, &[]).await;
        assert_eq!(
            cache_header(&headers),
            "miss",
            "an answer over maxEntryBytes is not kept"
        );
    }
    assert_eq!(mock.request_count(), 7);
}

#[tokio::test]
async fn a_whole_answer_is_replayed_as_a_stream_and_a_stream_serves_whole_answers() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot("v1", vec![cached("chat", &mock, 600_000)]))).await;

    // Whole first, then streamed with the usage chunk asked for.
    let body = question("tell me a story");
    let (_, _, whole) = chat_call(sidecar.api, &body, &[]).await;
    let whole = json_of(&whole);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (status, headers, events) = chat_call(sidecar.api, &streamed, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache_header(&headers), "hit");
    assert!(header(&headers, "content-type").starts_with("text/event-stream"));
    assert_eq!(
        streamed_text(&events),
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let data = data_of(&events);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"], whole["usage"]);
    assert_eq!(usage["choices"], json!([]));
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], whole["id"]);
    }
    assert_eq!(mock.request_count(), 1);

    // Streamed first (the mock's stream, usage not asked for), then streamed again and
    // whole.
    let other = question("another story");
    let mut streamed = other.clone();
    streamed["stream"] = json!(true);
    let (_, headers, first) = chat_call(sidecar.api, &streamed, &[]).await;
    assert_eq!(cache_header(&headers), "miss");
    let text = streamed_text(&first);
    assert!(!text.is_empty());
    let (_, headers, again) = chat_call(sidecar.api, &streamed, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    assert_eq!(streamed_text(&again), text);
    assert!(
        data_of(&again).iter().all(|d| !d.contains("\"usage\"")),
        "no usage chunk when not asked"
    );
    let (_, headers, whole) = chat_call(sidecar.api, &other, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    let whole = json_of(&whole);
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["choices"][0]["message"]["content"], text.as_str());
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    assert!(
        whole["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{whole}"
    );
    assert_eq!(mock.request_count(), 2);
}

#[tokio::test]
async fn no_store_and_no_cache_are_honoured() {
    let mock = MockOpenAi::start().await;
    let sidecar = Running::start(Some(snapshot("v1", vec![cached("chat", &mock, 600_000)]))).await;
    let body = question("fresh, please");

    let (_, headers, _) = chat_call(sidecar.api, &body, &[("cache-control", "no-store")]).await;
    assert_eq!(cache_header(&headers), "bypass");
    let (_, headers, first) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(cache_header(&headers), "miss", "no-store kept nothing");
    let (_, headers, _) = chat_call(sidecar.api, &body, &[("cache-control", "no-store")]).await;
    assert_eq!(cache_header(&headers), "bypass", "no-store reads nothing");
    assert_eq!(mock.request_count(), 3);

    let (_, headers, fresh) = chat_call(sidecar.api, &body, &[("cache-control", "no-cache")]).await;
    assert_eq!(cache_header(&headers), "miss");
    assert_eq!(mock.request_count(), 4, "no-cache asks the upstream");
    assert_ne!(json_of(&fresh)["id"], json_of(&first)["id"]);
    let (_, headers, later) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    assert_eq!(later, fresh, "no-cache kept the fresh answer");
    let (_, headers, _) = chat_call(sidecar.api, &body, &[("cache-control", "max-age=3600")]).await;
    assert_eq!(cache_header(&headers), "hit");
    assert_eq!(mock.request_count(), 4);

    let text = sidecar.metrics().await;
    for (result, n) in [("bypass", 2), ("miss", 1), ("refresh", 1), ("hit", 2)] {
        assert_eq!(
            metric(
                &text,
                &format!(r#"llmesh_cache_requests_total{{model="chat",result="{result}"}}"#)
            ),
            n,
            "{result}"
        );
    }
}

#[tokio::test]
async fn errors_cut_streams_samples_and_fallback_answers_are_never_kept() {
    let mock = MockOpenAi::start().await;
    let mut primary = cached("chat", &mock, 600_000);
    primary.retry = RetrySpec {
        server_error: 0,
        ..primary.retry
    };
    primary.fallbacks = vec!["backup".into()];
    let mut backup = model(
        "backup",
        vec![deployment("b", &mock.base_url(), "gpt-4o-mini")],
    );
    backup.retry = primary.retry;
    let mut cut = cached("cut", &mock, 600_000);
    cut.deployments[0].model = "mock-stream-cut".into();
    let sidecar = Running::start(Some(snapshot("v1", vec![primary, backup, cut]))).await;

    // An error answer, then the fallback's answer: neither is kept.
    mock.enqueue(Reply::error(500, "boom", "server_error", None));
    mock.enqueue(Reply::error(500, "boom", "server_error", None));
    let body = question("risky");
    let (status, headers, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(cache_header(&headers), "miss");
    mock.enqueue(Reply::error(500, "boom", "server_error", None));
    let (status, headers, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-llmesh-model"), "backup");
    let (status, headers, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        cache_header(&headers),
        "miss",
        "the fallback's answer was not kept"
    );
    assert_eq!(header(&headers, "x-llmesh-model"), "chat");
    let (_, headers, _) = chat_call(sidecar.api, &body, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    let calls = mock.request_count();

    // A stream cut short is not kept.
    let mut streamed = question("cut me off");
    streamed["model"] = json!("cut");
    streamed["stream"] = json!(true);
    for _ in 0..2 {
        let (_, headers, _) = chat_call(sidecar.api, &streamed, &[]).await;
        assert_eq!(cache_header(&headers), "miss");
    }
    assert_eq!(mock.request_count(), calls + 2);

    // Several samples are not frozen into one.
    let mut samples = question("pick a number");
    samples["n"] = json!(2);
    for _ in 0..2 {
        let (_, headers, _) = chat_call(sidecar.api, &samples, &[]).await;
        assert_eq!(cache_header(&headers), "bypass");
    }
    assert_eq!(mock.request_count(), calls + 4);
}

#[tokio::test]
async fn embeddings_completions_messages_and_responses_are_cached_in_their_own_shapes() {
    let openai = MockOpenAi::start().await;
    let anthropic = MockAnthropic::start().await;
    let mut claude = deployment("anthropic", &anthropic.base_url(), "claude-sonnet-4-5");
    claude.provider = ProviderKind::Anthropic;
    claude.api_key = Some(SecretString::new(anthropic_mock::API_KEY));
    let mut claude = model("claude", vec![claude]);
    claude.cache = Some(CacheSpec::new(600_000));
    let mut oai = deployment("openai", &openai.base_url(), "gpt-5");
    oai.provider = ProviderKind::Openai;
    let mut oai = model("oai", vec![oai]);
    oai.cache = Some(CacheSpec::new(600_000));
    let embed = cached("embed", &openai, 600_000);
    let sidecar = Running::start(Some(snapshot("v1", vec![claude, oai, embed]))).await;

    let input = json!({"model": "embed", "input": ["one", "two"]});
    let (_, headers, first) = post(sidecar.api, "/v1/embeddings", &input, &[]).await;
    assert_eq!(cache_header(&headers), "miss");
    let (_, headers, again) = post(sidecar.api, "/v1/embeddings", &input, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    assert_eq!(again, first);

    let prompt = json!({"model": "embed", "prompt": "Once upon", "max_tokens": 5});
    let (_, _, whole) = post(sidecar.api, "/v1/completions", &prompt, &[]).await;
    let mut streamed = prompt.clone();
    streamed["stream"] = json!(true);
    let (_, headers, events) = post(sidecar.api, "/v1/completions", &streamed, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    let text: String = data_of(&events)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        text,
        json_of(&whole)["choices"][0]["text"].as_str().unwrap()
    );
    assert_eq!(openai.request_count(), 2);

    // Messages: a whole message, then the same call streamed: Anthropic's events.
    let anthropic_headers = [("x-api-key", "sk-any"), ("anthropic-version", "2023-06-01")];
    let message = json!({"model": "claude", "max_tokens": 100,
                         "messages": [{"role": "user", "content": "Hi Claude"}]});
    let (status, headers, whole) =
        post(sidecar.api, "/v1/messages", &message, &anthropic_headers).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache_header(&headers), "miss");
    let whole = json_of(&whole);
    let mut streamed = message.clone();
    streamed["stream"] = json!(true);
    let (_, headers, events) =
        post(sidecar.api, "/v1/messages", &streamed, &anthropic_headers).await;
    assert_eq!(cache_header(&headers), "hit");
    let text = String::from_utf8_lossy(&events);
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(
        text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
        "{text}"
    );
    let deltas: String = data_of(&events)
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|e| e["delta"]["type"] == "text_delta")
        .map(|e| e["delta"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deltas, whole["content"][0]["text"].as_str().unwrap());
    assert_eq!(anthropic.request_count(), 1);

    // Responses: kept only with `store: false`; streamed from the whole answer.
    let stored = json!({"model": "oai", "input": "Hi GPT"});
    let (_, headers, _) = post(sidecar.api, "/v1/responses", &stored, &[]).await;
    assert_eq!(
        cache_header(&headers),
        "bypass",
        "a stored response keeps state"
    );
    let stateless = json!({"model": "oai", "input": "Hi GPT", "store": false});
    let (_, headers, whole) = post(sidecar.api, "/v1/responses", &stateless, &[]).await;
    assert_eq!(cache_header(&headers), "miss");
    let whole = json_of(&whole);
    let mut streamed = stateless.clone();
    streamed["stream"] = json!(true);
    let (_, headers, events) = post(sidecar.api, "/v1/responses", &streamed, &[]).await;
    assert_eq!(cache_header(&headers), "hit");
    let events: Vec<Value> = data_of(&events)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "response.created");
    let last = events.last().unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"], whole);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    assert_eq!(openai.request_count(), 4);
}

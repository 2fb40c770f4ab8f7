//! Governance on the request path as a user meets it, through the running sidecar and
//! real HTTP: calls the client gives up on run on and are charged what they cost,
//! a call under two budgets is served, fallbacks pay from their own budgets, client
//! input never becomes metric series, slow or keyless bodies are cut early, and
//! `/v1/models` shows a key only its models.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use http::StatusCode;
use llmesh_sidecar::config::snapshot::*;
use llmesh_tests::MockAnthropic;
use llmesh_tests::openai::{MockOpenAi, Reply};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "sk-llmesh-test-key-000000000001";

/// A model at $100/M input and $200/M output: a small call reserves a few thousand
/// micro-dollars.
fn priced(name: &str, base_url: &str) -> ModelSpec {
    let mut m = model(name, vec![deployment("d", base_url, "gpt-4o-mini")]);
    m.pricing = Pricing {
        input_micros_per_million: 100_000_000,
        output_micros_per_million: 200_000_000,
        cached_input_micros_per_million: 0,
        cache_write_input_micros_per_million: 0,
    };
    m
}

fn budget(name: &str, limit_micros: u64, keys: &[&str], models: &[&str]) -> BudgetSpec {
    BudgetSpec {
        name: name.into(),
        limit_micros,
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        models: models.iter().map(|m| (*m).to_owned()).collect(),
        downgrade_to: None,
    }
}

fn auth() -> String {
    format!("Bearer {SECRET}")
}

/// A metric's value from the exposition text (0 when absent).
fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Waits (bounded) until `check` holds on the metrics text.
async fn until_metrics(sidecar: &Running, check: impl Fn(&str) -> bool) -> String {
    for _ in 0..750 {
        let text = sidecar.metrics().await;
        if check(&text) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sidecar.metrics().await
}

/// Sends a request's head and `body` on a raw connection.
async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream
}

/// Reads what the server answers on a raw connection, bounded in time.
async fn answer(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer: {}", String::from_utf8_lossy(&out));
    String::from_utf8_lossy(&out).into_owned()
}

/// Problem 1 (issue 12): a key with a $0.20 budget makes four calls to a model that
/// answers in 12 s, and each client gives up once its call reached the model. Each request ends
/// when its client leaves (status 499, gauge down), the upstream calls run on and are
/// charged the usage they report, not their worst case, and the key keeps calling: four
/// worst-case reservations would have left too little for the next call.
#[tokio::test]
async fn calls_the_client_gives_up_on_are_charged_what_they_cost_and_the_key_keeps_calling() {
    let mock = MockOpenAi::start().await;
    // What the provider reports: 10 prompt and 20 completion tokens, 5,000 micros here.
    let answer = json!({"id": "c", "object": "chat.completion", "created": 0,
        "model": "gpt-4o-mini", "choices": [{"index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}});
    mock.set_default(Reply::json(200, answer).with_delay(Duration::from_secs(12)));
    let mut keyed = key("k", SECRET);
    keyed.budget = Some("b".into());
    let body = json!({"model": "chat", "max_tokens": 200,
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string();
    // What one call reserves: bytes / 4 prompt tokens at 100 and 200 completion at 200.
    let reserved = body.len().div_ceil(4) as u64 * 100 + 200 * 200;
    let limit = 200_000;
    // Four reservations fit, and what they leave cannot pay a fifth.
    assert!(4 * reserved <= limit && limit - 4 * reserved < reserved);
    let snap = with(
        vec![priced("chat", &mock.base_url())],
        vec![keyed],
        vec![budget("b", limit, &["k"], &[])],
    );
    let sidecar = Running::start(Some(snap)).await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        auth(),
        body.len()
    );
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(raw(sidecar.api, &head, body.as_bytes()).await);
    }
    // The clients give up once all four calls reached the model, while it still works
    // on them (a loaded machine may take a while to get them there).
    for _ in 0..400 {
        if mock.request_count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.request_count(), 4);
    drop(clients);
    let gone = r#"llmesh_requests_total{deployment="d",endpoint="chat_completions",model="chat",provider="openai-compatible",status="499"}"#;
    let text = until_metrics(&sidecar, |t| metric(t, gone) == 4).await;
    assert_eq!(metric(&text, gone), 4, "{text}");
    assert_eq!(metric(&text, "llmesh_requests_in_flight"), 0);
    // The upstream calls finish and are charged what they report.
    let spend = r#"llmesh_spend_micros_total{key="k",model="chat",team=""}"#;
    let text = until_metrics(&sidecar, |t| metric(t, spend) > 0).await;
    let text = if metric(&text, spend) < 4 * 5_000 {
        until_metrics(&sidecar, |t| metric(t, spend) >= 4 * 5_000).await
    } else {
        text
    };
    assert_eq!(
        metric(&text, spend),
        4 * 5_000,
        "charged the real usage: {text}"
    );
    let completion = r#"llmesh_tokens_total{key="k",kind="completion",model="chat",team=""}"#;
    assert_eq!(metric(&text, completion), 4 * 20);
    // The key keeps calling: the reservations came back.
    mock.set_default(Reply::ok());
    let (status, _, bytes) = call(
        sidecar.api,
        serde_json::from_str(&body).unwrap(),
        &[("authorization", &auth())],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
}

/// A plain call whose client left and whose upstream answers garbage is charged
/// its reservation: the provider may have billed it.
#[tokio::test]
async fn a_call_abandoned_to_a_failing_upstream_is_charged_its_reservation() {
    let mock = MockOpenAi::start().await;
    mock.set_default(Reply::malformed().with_delay(Duration::from_millis(300)));
    let mut keyed = key("k", SECRET);
    keyed.budget = Some("b".into());
    let snap = with(
        vec![priced("chat", &mock.base_url())],
        vec![keyed],
        vec![budget("b", 10_000_000, &["k"], &[])],
    );
    let sidecar = Running::start(Some(snap)).await;
    let body = json!({"model": "chat", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string();
    let reserved = body.len().div_ceil(4) as u64 * 100 + 10 * 200;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        auth(),
        body.len()
    );
    let client = raw(sidecar.api, &head, body.as_bytes()).await;
    for _ in 0..250 {
        if mock.request_count() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(client);
    let spend = r#"llmesh_spend_micros_total{key="k",model="chat",team=""}"#;
    let text = until_metrics(&sidecar, |t| metric(t, spend) > 0).await;
    assert_eq!(metric(&text, spend), reserved, "{text}");
    assert_eq!(metric(&text, "llmesh_requests_in_flight"), 0);
}

/// A client leaving mid-stream ends the request: gauge down, charged, counted.
#[tokio::test]
async fn a_client_leaving_mid_stream_ends_the_request() {
    let mock = MockOpenAi::start().await;
    mock.enqueue(
        Reply::stream(&["a ", "b ", "c ", "d "]).with_chunk_delay(Duration::from_millis(300)),
    );
    let mut keyed = key("k", SECRET);
    keyed.budget = Some("b".into());
    let snap = with(
        vec![priced("chat", &mock.base_url())],
        vec![keyed],
        vec![budget("b", 10_000_000, &["k"], &[])],
    );
    let sidecar = Running::start(Some(snap)).await;
    let body = json!({"model": "chat", "stream": true, "max_tokens": 10,
        "messages": [{"role": "user", "content": "hello"}]})
    .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
        auth(),
        body.len()
    );
    let mut stream = raw(sidecar.api, &head, body.as_bytes()).await;
    let mut first = [0u8; 256];
    let n = stream.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);
    let reserved = body.len().div_ceil(4) as u64 * 100 + 10 * 200;
    let spend = r#"llmesh_spend_micros_total{key="k",model="chat",team=""}"#;
    let text = until_metrics(&sidecar, |t| metric(t, spend) > 0).await;
    assert_eq!(metric(&text, spend), reserved);
    assert_eq!(metric(&text, "llmesh_requests_in_flight"), 0);
}

/// Problem 2: a key's budget and the model's budget both cover the call; it is served
/// (the two leases used to starve each other into a 503 after 5 s).
#[tokio::test]
async fn a_call_under_two_budgets_is_served() {
    let mock = MockOpenAi::start().await;
    let mut keyed = key("k", SECRET);
    keyed.budget = Some("key-budget".into());
    let snap = with(
        vec![priced("chat", &mock.base_url())],
        vec![keyed],
        vec![
            budget("key-budget", 1_000_000_000, &["k"], &[]),
            budget("model-budget", 1_000_000_000, &[], &["chat"]),
        ],
    );
    let sidecar = Running::start(Some(snap)).await;
    for _ in 0..3 {
        let (status, _, bytes) =
            call(sidecar.api, chat("chat"), &[("authorization", &auth())]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let text = sidecar.metrics().await;
    assert!(
        !text.contains("budget_unavailable"),
        "no call was refused for want of a lease"
    );
}

/// Problem 3: a fallback whose budget is spent is skipped like an unhealthy deployment;
/// when nothing else serves, the error names the budget.
#[tokio::test]
async fn a_fallback_whose_budget_is_spent_is_skipped() {
    let failing = MockOpenAi::start().await;
    failing.set_default(Reply::error(500, "down", "server_error", None));
    let spent = MockOpenAi::start().await;
    let cheap = MockOpenAi::start().await;
    let mut primary = priced("chat", &failing.base_url());
    primary.fallbacks = vec!["spent".into(), "cheap".into()];
    let models = vec![
        primary.clone(),
        priced("spent", &spent.base_url()),
        priced("cheap", &cheap.base_url()),
    ];
    let budgets = vec![budget("spent-budget", 0, &[], &["spent"])];
    let sidecar = Running::start(Some(with(models, vec![], budgets.clone()))).await;
    let (status, headers, bytes) = call(sidecar.api, chat("chat"), &[]).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(header(&headers, "x-llmesh-model"), "cheap");
    assert_eq!(spent.request_count(), 0, "the spent model served nothing");

    // Nothing but the spent fallback: the client learns why it was not tried.
    primary.fallbacks = vec!["spent".into()];
    let models = vec![primary, priced("spent", &spent.base_url())];
    let sidecar = Running::start(Some(with(models, vec![], budgets))).await;
    let (status, _, bytes) = call(sidecar.api, chat("chat"), &[]).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let error: Value = serde_json::from_slice(&bytes).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("fallback `spent` was skipped") && message.contains("spent-budget"),
        "{message}"
    );
    assert_eq!(spent.request_count(), 0);
}

/// Problem 6: unknown parameters a client makes up are dropped and counted under one
/// label, however many there are.
#[tokio::test]
async fn made_up_parameters_add_no_metric_series() {
    let mock = MockAnthropic::start().await;
    let mut d = DeploymentSpec::new("anthropic", ProviderKind::Anthropic, "claude-test");
    d.base_url = Some(mock.base_url());
    d.api_key = Some(SecretString::new(llmesh_tests::anthropic::API_KEY));
    let mut m = model("chat", vec![d]);
    m.drop_unsupported_params = true;
    let sidecar = Running::start_with(Some(snapshot("v1", vec![m])), |s| {
        s.max_body_bytes = 1024 * 1024;
    })
    .await;
    for round in 0..2 {
        let mut body = chat("chat");
        body["temperature"] = json!(0.5);
        for _ in 0..2_000 {
            body[format!("x{round}_{:016x}", fastrand::u64(..))] = json!(1);
        }
        let (status, _, bytes) = call(sidecar.api, body, &[]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let text = sidecar.metrics().await;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("llmesh_dropped_params_total"))
        .collect();
    assert_eq!(
        metric(
            &text,
            r#"llmesh_dropped_params_total{model="chat",param="other",provider="anthropic"}"#
        ),
        4_000,
        "{series:?}"
    );
    assert!(series.len() <= 2, "{series:?}");
    assert!(!text.contains("x0_") && !text.contains("x1_"), "{series:?}");
}

/// Problem 7: a client trickling its body is cut by the body timeout with a 408.
#[tokio::test]
async fn a_trickled_body_is_cut_by_the_timeout() {
    let mock = MockOpenAi::start().await;
    let snap = snapshot(
        "v1",
        vec![model("chat", vec![deployment("d", &mock.base_url(), "m")])],
    );
    let sidecar = Running::start_with(Some(snap), |s| {
        s.body_timeout = Duration::from_millis(300);
    })
    .await;
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
    let mut stream = raw(sidecar.api, head, b"{\"model\":").await;
    let text = answer(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
}

/// Problem 7: a call without a key is refused from its headers; its 16 MiB body is
/// never read (the client has not even sent it).
#[tokio::test]
async fn a_keyless_call_is_refused_before_its_body_is_read() {
    let mock = MockOpenAi::start().await;
    let snap = with(
        vec![priced("chat", &mock.base_url())],
        vec![key("k", SECRET)],
        vec![],
    );
    let sidecar = Running::start_with(Some(snap), |s| {
        s.max_body_bytes = 32 * 1024 * 1024;
    })
    .await;
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        16 * 1024 * 1024
    );
    let mut stream = raw(sidecar.api, &head, b"").await;
    let text = answer(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(text.contains("missing_api_key"), "{text}");
}

/// Problem 7: bodies beyond what the sidecar may buffer at once get 503 and
/// `Retry-After` rather than a wait.
#[tokio::test]
async fn bodies_beyond_the_buffer_cap_get_503() {
    let mock = MockOpenAi::start().await;
    let snap = snapshot(
        "v1",
        vec![model("chat", vec![deployment("d", &mock.base_url(), "m")])],
    );
    let sidecar = Running::start_with(Some(snap), |s| {
        s.max_buffered_bytes = 1024;
    })
    .await;
    // One connection holds most of the cap with a body it has not finished.
    let head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n";
    let _slow = raw(sidecar.api, head, &[b' '; 900]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut body = chat("chat");
    body["user"] = json!("x".repeat(400));
    let (status, headers, _) = call(sidecar.api, body.clone(), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&headers, "retry-after"), "1");
    drop(_slow);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _, _) = call(sidecar.api, body, &[]).await;
    assert_eq!(status, StatusCode::OK);
}

/// Problem 10c: `/v1/models` needs a key once the namespace has keys, and shows a
/// restricted key only its models.
#[tokio::test]
async fn models_are_listed_per_key() {
    let mock = MockOpenAi::start().await;
    let mut restricted = key("k", SECRET);
    restricted.models = vec!["chat".into()];
    let snap = with(
        vec![
            priced("chat", &mock.base_url()),
            priced("other", &mock.base_url()),
        ],
        vec![restricted],
        vec![],
    );
    let sidecar = Running::start(Some(snap)).await;
    let list = |headers: Vec<(&'static str, String)>| async move {
        let mut request = http::Request::get(format!("http://{}/v1/models", sidecar.api));
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let response = client
            .request(request.body(Default::default()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    };
    let (status, body) = list(vec![]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "missing_api_key");
    let (status, body) = list(vec![("authorization", auth())]).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["chat"]);
}

//! Timing logic under paused tokio time, through a scripted in-process transport:
//! `Retry-After`, exponential backoff, time-to-first-token and total timeouts, cooldown
//! expiry and latency-based routing. Paused time makes every wait exact and instant.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use llmesh_sidecar::config::snapshot::*;
use llmesh_sidecar::domain::Endpoint;
use llmesh_sidecar::metrics::Metrics;
use llmesh_sidecar::router::RoutesBuilder;
use llmesh_sidecar::router::dispatch::{Answer, Trace, dispatch};
use llmesh_sidecar::server::error::sse_event;
use llmesh_sidecar::server::request::parse_call;
use llmesh_sidecar::upstream::{
    BoxError, ResponseFuture, Transport, TransportError, UpstreamBody, UpstreamRequest,
};
use tokio::time::Instant;

/// What a scripted upstream does for one request.
#[derive(Clone)]
enum Step {
    /// Wait, then answer with a status, headers and JSON body.
    Answer(
        Duration,
        u16,
        Vec<(&'static str, &'static str)>,
        &'static str,
    ),
    /// Wait, then stream these events, each after its own delay.
    Stream(Duration, Vec<(Duration, &'static str)>),
    /// Never answer.
    Hang,
    /// Stream this event without end, always ready: the upstream never pauses.
    Flood(&'static str),
}

const OK: &str = r#"{"id":"x","object":"chat.completion","choices":[],"usage":{"total_tokens":3}}"#;

/// A transport answering by host from per-host scripts, recording when each came.
#[derive(Clone, Default)]
struct Scripted(Arc<Inner>);

#[derive(Default)]
struct Inner {
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    defaults: Mutex<HashMap<String, Step>>,
    calls: Mutex<Vec<(String, Instant)>>,
}

impl Scripted {
    fn push(&self, host: &str, step: Step) {
        self.0
            .scripts
            .lock()
            .unwrap()
            .entry(host.into())
            .or_default()
            .push_back(step);
    }
    fn otherwise(&self, host: &str, step: Step) {
        self.0.defaults.lock().unwrap().insert(host.into(), step);
    }
    fn calls(&self) -> Vec<(String, Instant)> {
        self.0.calls.lock().unwrap().clone()
    }
}

impl Transport for Scripted {
    fn send(&self, request: UpstreamRequest) -> ResponseFuture {
        let host = request.uri().host().unwrap_or("").to_owned();
        self.0
            .calls
            .lock()
            .unwrap()
            .push((host.clone(), Instant::now()));
        let step = self
            .0
            .scripts
            .lock()
            .unwrap()
            .get_mut(&host)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.0.defaults.lock().unwrap().get(&host).cloned());
        Box::pin(async move {
            match step {
                None => Err(TransportError::Connect(format!("no script for {host}"))),
                Some(Step::Hang) => std::future::pending().await,
                Some(Step::Flood(data)) => {
                    let event = Bytes::from(format!("data: {data}\n\n"));
                    let body = futures_util::stream::repeat_with(move || {
                        Ok::<_, BoxError>(Frame::data(event.clone()))
                    });
                    Ok(event_stream(StreamBody::new(body).boxed()))
                }
                Some(Step::Answer(delay, status, headers, body)) => {
                    tokio::time::sleep(delay).await;
                    let mut response = Response::new(
                        Full::new(Bytes::from_static(body.as_bytes()))
                            .map_err(|n| match n {})
                            .boxed(),
                    );
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (k, v) in headers {
                        response.headers_mut().insert(k, v.parse().unwrap());
                    }
                    Ok(response)
                }
                Some(Step::Stream(delay, events)) => {
                    tokio::time::sleep(delay).await;
                    let body =
                        futures_util::stream::unfold(events.into_iter(), |mut it| async move {
                            let (wait, data) = it.next()?;
                            tokio::time::sleep(wait).await;
                            let frame = Frame::data(Bytes::from(format!("data: {data}\n\n")));
                            Some((Ok::<_, BoxError>(frame), it))
                        });
                    Ok(event_stream(StreamBody::new(body).boxed()))
                }
            }
        })
    }
}

/// A 200 `text/event-stream` answer with this body.
fn event_stream(body: UpstreamBody) -> Response<UpstreamBody> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    response
}

fn deployment(host: &str) -> DeploymentSpec {
    DeploymentSpec {
        name: host.into(),
        provider: ProviderKind::OpenaiCompatible,
        model: "m".into(),
        base_url: Some(format!("http://{host}/v1")),
        api_key: None,
        api_version: None,
        weight: 1,
        rpm: None,
        tpm: None,
        pricing: None,
        region: None,
        project: None,
        aws: None,
        gcp_service_account: None,
        token_url: None,
        tls: None,
        workload_identity: None,
    }
}

fn model(hosts: &[&str]) -> ModelSpec {
    ModelSpec {
        name: "chat".into(),
        strategy: Strategy::WeightedShuffle,
        deployments: hosts.iter().map(|h| deployment(h)).collect(),
        fallbacks: vec![],
        context_window_fallbacks: vec![],
        content_policy_fallbacks: vec![],
        retry: RetrySpec::default(),
        timeouts: TimeoutSpec::default(),
        cooldown: CooldownSpec::default(),
        pricing: Pricing::default(),
        drop_unsupported_params: false,
        default_max_tokens: None,
        image_fetch: ImageFetchSpec::default(),
        capture_content: false,
        cache: None,
    }
}

struct Harness {
    routes: llmesh_sidecar::router::Routes,
    metrics: Metrics,
}

impl Harness {
    fn new(script: &Scripted, models: Vec<ModelSpec>) -> Harness {
        let snapshot = Snapshot {
            format: FORMAT,
            version: "t".into(),
            models,
            ..Default::default()
        };
        let routes = RoutesBuilder::new(Arc::new(script.clone()))
            .build(&snapshot)
            .unwrap();
        Harness {
            routes,
            metrics: Metrics::new().unwrap(),
        }
    }

    async fn call(
        &self,
        stream: bool,
    ) -> (
        Result<Answer, llmesh_sidecar::server::error::ApiError>,
        Trace,
    ) {
        let body = serde_json::json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
        self.call_with(Endpoint::ChatCompletions, body).await
    }

    async fn call_with(
        &self,
        endpoint: Endpoint,
        body: serde_json::Value,
    ) -> (
        Result<Answer, llmesh_sidecar::server::error::ApiError>,
        Trace,
    ) {
        let (name, call) = parse_call(endpoint, body.to_string().as_bytes()).unwrap();
        let model = self.routes.model(&name).unwrap().clone();
        let mut trace = Trace::default();
        let result = dispatch(
            &self.routes,
            &model,
            &call,
            &self.metrics,
            Instant::now(),
            &mut trace,
            &mut llmesh_sidecar::router::gate::Open,
        )
        .await;
        (result.map(|s| s.answer), trace)
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_retrying_the_same_deployment() {
    let script = Scripted::default();
    script.push(
        "a",
        Step::Answer(Duration::ZERO, 429, vec![("retry-after", "3")], "{}"),
    );
    script.otherwise("a", Step::Answer(Duration::ZERO, 200, vec![], OK));
    let mut m = model(&["a"]);
    m.retry.max_backoff_ms = 10_000;
    let h = Harness::new(&script, vec![m]);
    let (result, trace) = h.call(false).await;
    assert!(result.is_ok());
    assert_eq!(trace.attempts, 2);
    let calls = script.calls();
    assert_eq!(
        calls[1].1 - calls[0].1,
        Duration::from_secs(3),
        "retried exactly when allowed"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_the_backoff_cap_ends_with_429_and_retry_after() {
    let script = Scripted::default();
    script.otherwise(
        "a",
        Step::Answer(Duration::ZERO, 429, vec![("retry-after", "30")], "{}"),
    );
    let mut m = model(&["a"]);
    m.retry.max_backoff_ms = 5_000;
    let h = Harness::new(&script, vec![m]);
    let started = Instant::now();
    let (result, trace) = h.call(false).await;
    let err = result.err().unwrap();
    assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.retry_after_secs, Some(30));
    assert_eq!(
        trace.attempts, 1,
        "no point retrying before the upstream allows it"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Gemini's 429: the wait is in a `google.rpc.RetryInfo` detail, not a header.
const GEMINI_429: &str = r#"{"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
  "details": [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests"}]},
    {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.500s"}]}}"#;
const GEMINI_OK: &str = r#"{"candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP", "index": 0}],
  "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}"#;

/// A model of one Gemini API deployment at host `g`.
fn gemini_model() -> ModelSpec {
    let mut d = DeploymentSpec::new("g", ProviderKind::Gemini, "gemini-2.5-flash");
    d.base_url = Some("http://g".into());
    d.api_key = Some(SecretString::new("AIza-test"));
    let mut m = model(&[]);
    m.deployments = vec![d];
    m
}

#[tokio::test(start_paused = true)]
async fn geminis_retry_delay_is_the_wait_before_the_retry() {
    let script = Scripted::default();
    script.push("g", Step::Answer(Duration::ZERO, 429, vec![], GEMINI_429));
    script.otherwise("g", Step::Answer(Duration::ZERO, 200, vec![], GEMINI_OK));
    let mut m = gemini_model();
    m.retry.max_backoff_ms = 10_000;
    let h = Harness::new(&script, vec![m]);
    let (result, trace) = h.call(false).await;
    assert!(result.is_ok());
    assert_eq!(trace.attempts, 2);
    let calls = script.calls();
    assert_eq!(
        calls[1].1 - calls[0].1,
        Duration::from_millis(2500),
        "retried exactly when Gemini allowed"
    );
}

#[tokio::test(start_paused = true)]
async fn geminis_retry_delay_beyond_the_backoff_cap_ends_with_429_and_retry_after() {
    let script = Scripted::default();
    script.otherwise("g", Step::Answer(Duration::ZERO, 429, vec![], GEMINI_429));
    let mut m = gemini_model();
    m.retry.max_backoff_ms = 1_000;
    let h = Harness::new(&script, vec![m]);
    let (result, trace) = h.call(false).await;
    let err = result.err().unwrap();
    assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.retry_after_secs, Some(3), "2.5 s, rounded up");
    assert_eq!(trace.attempts, 1);
}

/// Titan's answer to one InvokeModel call.
const TITAN_OK: &str = r#"{"embedding": [0.6, 0.8], "inputTextTokenCount": 2}"#;

/// A model of one Titan deployment at host `t`.
fn titan_model() -> ModelSpec {
    let mut d = DeploymentSpec::new("t", ProviderKind::Bedrock, "amazon.titan-embed-text-v2:0");
    d.base_url = Some("http://t".into());
    d.region = Some("us-east-1".into());
    d.api_key = Some(SecretString::new("bedrock-api-key"));
    let mut m = model(&[]);
    m.deployments = vec![d];
    m
}

fn titan_call(inputs: usize) -> serde_json::Value {
    let input: Vec<String> = (0..inputs).map(|i| format!("text {i}")).collect();
    serde_json::json!({"model": "chat", "input": input, "encoding_format": "float"})
}

#[tokio::test(start_paused = true)]
async fn pieces_of_a_call_go_out_eight_at_a_time() {
    let script = Scripted::default();
    script.otherwise(
        "t",
        Step::Answer(Duration::from_secs(1), 200, vec![], TITAN_OK),
    );
    let h = Harness::new(&script, vec![titan_model()]);
    let started = Instant::now();
    let (result, trace) = h.call_with(Endpoint::Embeddings, titan_call(20)).await;
    let Ok(Answer::Full(reply)) = result else {
        panic!("no whole answer");
    };
    assert_eq!(trace.attempts, 1);
    assert_eq!(reply.usage.unwrap().prompt_tokens, 40);
    let out: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(out["data"].as_array().unwrap().len(), 20);
    // 8, 8 and 4 at once, each wave as soon as one second's answers are in.
    let waves: Vec<u64> = script
        .calls()
        .iter()
        .map(|(_, at)| (*at - started).as_secs())
        .collect();
    assert_eq!(waves, [[0; 8].as_slice(), &[1; 8], &[2; 4]].concat());
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    assert_eq!(
        trace.upstream,
        Duration::from_secs(3),
        "one wait, not twenty"
    );
}

#[tokio::test(start_paused = true)]
async fn a_piece_that_never_answers_ends_the_attempt_at_the_deadline() {
    let script = Scripted::default();
    script.push("t", Step::Answer(Duration::ZERO, 200, vec![], TITAN_OK));
    script.push("t", Step::Hang);
    script.otherwise("t", Step::Answer(Duration::ZERO, 200, vec![], TITAN_OK));
    let mut m = titan_model();
    m.timeouts.total_ms = 5_000;
    let h = Harness::new(&script, vec![m]);
    let started = Instant::now();
    let (result, _) = h.call_with(Endpoint::Embeddings, titan_call(3)).await;
    let err = result.err().unwrap();
    assert_eq!(err.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_exponentially_with_jitter() {
    let script = Scripted::default();
    for _ in 0..3 {
        script.push("a", Step::Answer(Duration::ZERO, 500, vec![], "{}"));
    }
    script.otherwise("a", Step::Answer(Duration::ZERO, 200, vec![], OK));
    let mut m = model(&["a"]);
    m.retry = RetrySpec {
        server_error: 3,
        initial_backoff_ms: 100,
        max_backoff_ms: 10_000,
        ..RetrySpec::default()
    };
    let h = Harness::new(&script, vec![m]);
    let (result, trace) = h.call(false).await;
    assert!(result.is_ok());
    assert_eq!(trace.attempts, 4);
    let calls = script.calls();
    let gaps: Vec<u128> = calls
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_millis())
        .collect();
    assert!((50..=100).contains(&gaps[0]), "{gaps:?}");
    assert!((100..=200).contains(&gaps[1]), "{gaps:?}");
    assert!((200..=400).contains(&gaps[2]), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_token_times_out_and_the_retry_succeeds() {
    let script = Scripted::default();
    script.push(
        "a",
        Step::Stream(Duration::from_secs(10), vec![(Duration::ZERO, "{}")]),
    );
    script.otherwise(
        "a",
        Step::Stream(Duration::ZERO, vec![(Duration::ZERO, r#"{"x":1}"#)]),
    );
    let mut m = model(&["a"]);
    m.timeouts.time_to_first_token_ms = 2_000;
    let h = Harness::new(&script, vec![m]);
    let (result, trace) = h.call(true).await;
    assert!(matches!(result, Ok(Answer::Stream(_))));
    assert_eq!(trace.attempts, 2);
    let calls = script.calls();
    let gap = calls[1].1 - calls[0].1;
    assert!(
        gap >= Duration::from_secs(2) && gap <= Duration::from_millis(2_250),
        "{gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn time_to_first_token_counts_until_the_first_event_not_just_headers() {
    let script = Scripted::default();
    // Headers at once, first event after 5 s: still too slow for a 1 s limit.
    script.otherwise(
        "a",
        Step::Stream(Duration::ZERO, vec![(Duration::from_secs(5), "{}")]),
    );
    let mut m = model(&["a"]);
    m.timeouts.time_to_first_token_ms = 1_000;
    m.retry.timeout = 0;
    let h = Harness::new(&script, vec![m]);
    let started = Instant::now();
    let (result, _) = h.call(true).await;
    assert_eq!(result.err().unwrap().status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_bounds_the_whole_request() {
    let script = Scripted::default();
    script.otherwise("a", Step::Hang);
    let mut m = model(&["a"]);
    m.timeouts = TimeoutSpec {
        total_ms: 5_000,
        time_to_first_token_ms: 60_000,
    };
    let h = Harness::new(&script, vec![m]);
    let started = Instant::now();
    let (result, trace) = h.call(false).await;
    let err = result.err().unwrap();
    assert_eq!(err.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(err.code.as_deref(), Some("upstream_timeout"));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(trace.attempts, 1, "no retry fits after the deadline");
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_ends_a_stream_with_an_error_event() {
    let script = Scripted::default();
    script.otherwise(
        "a",
        Step::Stream(
            Duration::ZERO,
            vec![
                (Duration::ZERO, r#"{"n":1}"#),
                (Duration::from_secs(3600), r#"{"n":2}"#),
            ],
        ),
    );
    let mut m = model(&["a"]);
    m.timeouts = TimeoutSpec {
        total_ms: 5_000,
        time_to_first_token_ms: 1_000,
    };
    let h = Harness::new(&script, vec![m]);
    let started = Instant::now();
    let (result, _) = h.call(true).await;
    let Ok(Answer::Stream(mut relay)) = result else {
        panic!("expected a stream")
    };
    relay.deliver(Box::new(|_, _, _, _| {}), |e, _| sse_event(e));
    let bytes = relay.collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.starts_with("data: {\"n\":1}\n\n"), "{text}");
    assert!(text.contains("\"code\":\"upstream_timeout\""), "{text}");
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn the_total_timeout_ends_a_stream_that_never_pauses() {
    let script = Scripted::default();
    script.otherwise("a", Step::Flood(r#"{"n":1}"#));
    let mut m = model(&["a"]);
    m.timeouts = TimeoutSpec {
        total_ms: 5_000,
        time_to_first_token_ms: 1_000,
    };
    let h = Harness::new(&script, vec![m]);
    let (result, _) = h.call(true).await;
    let Ok(Answer::Stream(mut relay)) = result else {
        panic!("expected a stream")
    };
    relay.deliver(Box::new(|_, _, _, _| {}), |e, _| sse_event(e));
    // Paused time only moves when told: one second per frame read.
    for _ in 0..100 {
        let frame = relay.frame().await.unwrap().unwrap().into_data().unwrap();
        if String::from_utf8_lossy(&frame).contains("\"code\":\"upstream_timeout\"") {
            assert!(relay.frame().await.is_none(), "the stream ends there");
            return;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    panic!("a stream that never pauses outlived the total timeout");
}

#[tokio::test(start_paused = true)]
async fn a_cooled_down_deployment_returns_after_its_cooldown() {
    let script = Scripted::default();
    script.push("cheap", Step::Answer(Duration::ZERO, 503, vec![], "{}"));
    script.otherwise("cheap", Step::Answer(Duration::ZERO, 200, vec![], OK));
    script.otherwise("dear", Step::Answer(Duration::ZERO, 200, vec![], OK));
    let mut m = model(&["cheap", "dear"]);
    m.strategy = Strategy::LowestCost;
    m.deployments[1].pricing = Some(Pricing {
        input_micros_per_million: 1,
        ..Pricing::default()
    });
    m.cooldown = CooldownSpec {
        allowed_fails: 0,
        window_ms: 60_000,
        duration_ms: 30_000,
    };
    let h = Harness::new(&script, vec![m]);
    let host_of_last = |s: &Scripted| s.calls().last().unwrap().0.clone();
    let (result, _) = h.call(false).await;
    assert!(result.is_ok());
    assert_eq!(
        host_of_last(&script),
        "dear",
        "retried on the other deployment"
    );
    tokio::time::advance(Duration::from_secs(29)).await;
    h.call(false).await.0.unwrap_or_else(|_| panic!("ok"));
    assert_eq!(host_of_last(&script), "dear", "still cooling down");
    tokio::time::advance(Duration::from_secs(2)).await;
    h.call(false).await.0.unwrap_or_else(|_| panic!("ok"));
    assert_eq!(host_of_last(&script), "cheap", "back after 30 s");
}

#[tokio::test(start_paused = true)]
async fn lowest_latency_moves_traffic_to_the_faster_deployment() {
    let script = Scripted::default();
    script.otherwise(
        "slow",
        Step::Answer(Duration::from_millis(400), 200, vec![], OK),
    );
    script.otherwise(
        "fast",
        Step::Answer(Duration::from_millis(40), 200, vec![], OK),
    );
    let mut m = model(&["slow", "fast"]);
    m.strategy = Strategy::LowestLatency;
    let h = Harness::new(&script, vec![m]);
    for _ in 0..12 {
        h.call(false).await.0.unwrap_or_else(|_| panic!("ok"));
    }
    let calls = script.calls();
    assert_eq!(
        calls.iter().filter(|(h, _)| h == "slow").count(),
        1,
        "sampled once, then avoided"
    );
}

#[tokio::test(start_paused = true)]
async fn rpm_limits_spill_over_then_wait_for_the_next_minute() {
    let script = Scripted::default();
    script.otherwise("a", Step::Answer(Duration::ZERO, 200, vec![], OK));
    script.otherwise("b", Step::Answer(Duration::ZERO, 200, vec![], OK));
    let mut m = model(&["a", "b"]);
    m.deployments[0].rpm = Some(2);
    m.deployments[1].rpm = Some(1);
    let h = Harness::new(&script, vec![m]);
    for _ in 0..3 {
        h.call(false).await.0.unwrap_or_else(|_| panic!("ok"));
    }
    let hosts: Vec<String> = script.calls().into_iter().map(|c| c.0).collect();
    assert_eq!(hosts.iter().filter(|h| *h == "a").count(), 2);
    assert_eq!(hosts.iter().filter(|h| *h == "b").count(), 1);
    let (result, trace) = h.call(false).await;
    let err = result.err().unwrap();
    assert_eq!(
        err.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the minute is full and too far off to wait"
    );
    assert_eq!(trace.attempts, 0);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(
        h.call(false).await.0.is_ok(),
        "a new minute opens the limits again"
    );
}

/// A model whose only deployment had a brief outage (two failures while a vLLM pod
/// restarted) is not stranded for the whole cooldown: the next call goes through as a
/// probe and, as it succeeds, ends the cooldown.
#[tokio::test(start_paused = true)]
async fn a_probe_ends_the_cooldown_of_a_model_with_nothing_else() {
    let script = Scripted::default();
    script.push("vllm", Step::Answer(Duration::ZERO, 503, vec![], "{}"));
    script.push("vllm", Step::Answer(Duration::ZERO, 503, vec![], "{}"));
    script.otherwise("vllm", Step::Answer(Duration::ZERO, 200, vec![], OK));
    let mut m = model(&["vllm"]);
    m.retry.server_error = 1;
    m.cooldown = CooldownSpec {
        allowed_fails: 1,
        window_ms: 60_000,
        duration_ms: 30_000,
    };
    let h = Harness::new(&script, vec![m]);
    let (first, trace) = h.call(false).await;
    assert_eq!(first.err().unwrap().status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(trace.attempts, 2);
    let model = h.routes.model("chat").unwrap();
    assert!(
        model.deployments[0].state.is_resting(Instant::now()),
        "the outage started a cooldown"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    let (probe, trace) = h.call(false).await;
    assert!(probe.is_ok(), "the call went through as a probe");
    assert_eq!(trace.attempts, 1);
    assert!(
        !model.deployments[0].state.is_resting(Instant::now()),
        "the probe ended the cooldown"
    );
    let (after, _) = h.call(false).await;
    assert!(after.is_ok());
    assert_eq!(script.calls().len(), 4);
}

/// The same holds for a fallback whose deployments are all cooling down.
#[tokio::test(start_paused = true)]
async fn a_cooling_fallback_is_probed() {
    let script = Scripted::default();
    script.otherwise("down", Step::Answer(Duration::ZERO, 503, vec![], "{}"));
    script.otherwise("back", Step::Answer(Duration::ZERO, 200, vec![], OK));
    let mut primary = model(&["down"]);
    primary.retry.server_error = 0;
    primary.fallbacks = vec!["spare".into()];
    let mut spare = model(&["back"]);
    spare.name = "spare".into();
    let cooldown = CooldownSpec {
        allowed_fails: 0,
        window_ms: 60_000,
        duration_ms: 30_000,
    };
    let h = Harness::new(&script, vec![primary, spare]);
    let spare = h.routes.model("spare").unwrap();
    spare.deployments[0]
        .state
        .record_failure(Instant::now(), &cooldown);
    assert!(spare.deployments[0].state.is_resting(Instant::now()));
    let (result, trace) = h.call(false).await;
    assert!(
        result.is_ok(),
        "the fallback's cooling deployment took the call"
    );
    assert_eq!(trace.attempts, 2);
    assert!(!spare.deployments[0].state.is_resting(Instant::now()));
}

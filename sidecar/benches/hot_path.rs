//! Criterion micro-benchmarks of the sidecar's per-request CPU work, without sockets:
//!
//! * `chat/openai` and `chat/anthropic`: parse and validate a client's chat request
//!   (1 KB prompt), look the model up, pick a deployment, build the upstream request
//!   (for Anthropic: translate OpenAI → Messages) and convert the upstream's whole
//!   answer back to OpenAI's JSON;
//! * `stream/anthropic_to_openai`: translate a 50-delta Anthropic SSE stream, one
//!   event per chunk as providers flush them, into OpenAI chunks;
//!   `stream/openai_passthrough` is the same for the OpenAI dialect, which only
//!   reassembles whole events;
//! * `eventstream/decode`: decode a 50-delta Bedrock ConverseStream (AWS eventstream
//!   framing, CRCs checked), and `eventstream/translate` the same through Bedrock's
//!   stream translator into OpenAI chunks.
//!
//! Run with `cargo bench -p llmesh-sidecar --bench hot_path`. CI only compiles it
//! (clippy `--all-targets`). `docs/benchmarks.md` holds results.

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmesh_sidecar::config::Snapshot;
use llmesh_sidecar::config::snapshot::{
    AwsCredentials, DeploymentSpec, FORMAT, ModelSpec, ProviderKind, SecretString,
};
use llmesh_sidecar::domain::{CallView, Endpoint};
use llmesh_sidecar::provider::bedrock::eventstream::Decoder;
use llmesh_sidecar::provider::{StreamTranslator, bridge};
use llmesh_sidecar::router::strategy::pick;
use llmesh_sidecar::router::{Routes, RoutesBuilder};
use llmesh_sidecar::server::request::parse_call;
use llmesh_sidecar::upstream::{ResponseFuture, Transport, TransportError, UpstreamRequest};
use llmesh_tests::bedrock::eventstream::Message as EventMessage;
use serde_json::{Value, json};

/// Never called: the benchmarks stop before anything is sent.
struct NoTransport;

impl Transport for NoTransport {
    fn send(&self, _request: UpstreamRequest) -> ResponseFuture {
        Box::pin(async { Err(TransportError::Connect("benchmark".into())) })
    }
}

fn deployment(name: &str, provider: ProviderKind, model: &str, base: &str) -> DeploymentSpec {
    let mut spec = DeploymentSpec::new(name, provider, model);
    spec.base_url = Some(base.to_owned());
    spec.api_key = Some(SecretString::new("sk-bench"));
    spec
}

fn routes() -> Routes {
    let snapshot = Snapshot {
        format: FORMAT,
        version: "bench".into(),
        models: vec![
            ModelSpec::new(
                "chat-anthropic",
                vec![deployment(
                    "anthropic",
                    ProviderKind::Anthropic,
                    "claude-3-5-haiku-latest",
                    "http://127.0.0.1:9",
                )],
            ),
            ModelSpec::new(
                "chat-openai",
                vec![deployment(
                    "openai",
                    ProviderKind::Openai,
                    "gpt-4o-mini",
                    "http://127.0.0.1:9/v1",
                )],
            ),
            // A server speaking only OpenAI chat (vLLM), which gets the Responses API
            // through the chat bridge.
            ModelSpec::new(
                "chat-vllm",
                vec![deployment(
                    "vllm",
                    ProviderKind::Vllm,
                    "llama",
                    "http://127.0.0.1:9/v1",
                )],
            ),
            ModelSpec::new(
                "chat-gemini",
                vec![deployment(
                    "gemini",
                    ProviderKind::Gemini,
                    "gemini-2.0-flash",
                    "http://127.0.0.1:9",
                )],
            ),
            ModelSpec::new(
                "chat-cohere",
                vec![deployment(
                    "cohere",
                    ProviderKind::Cohere,
                    "command-r-plus",
                    "http://127.0.0.1:9",
                )],
            ),
        ],
        keys: Vec::new(),
        budgets: Vec::new(),
    };
    let builder = RoutesBuilder::new(Arc::new(NoTransport));
    match builder.build(&snapshot) {
        Ok(routes) => routes,
        Err(err) => panic!("benchmark config refused: {} {}", err.path, err.message),
    }
}

fn prompt() -> String {
    "Summarise the following notes on the quarterly platform review in three short bullet points. "
        .repeat(11)
}

fn chat_request(model: &str) -> Bytes {
    Bytes::from(
        json!({
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": prompt()}
            ],
            "max_tokens": 128,
            "temperature": 0.2
        })
        .to_string(),
    )
}

const PIECES: usize = 50;

fn text() -> String {
    " token".repeat(PIECES)
}

fn anthropic_message() -> Bytes {
    Bytes::from(
        json!({
            "id": "msg_bench", "type": "message", "role": "assistant",
            "model": "claude-3-5-haiku-latest",
            "content": [{"type": "text", "text": text()}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 256, "output_tokens": 50,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        })
        .to_string(),
    )
}

fn openai_completion() -> Bytes {
    Bytes::from(
        json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text()},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 256, "completion_tokens": 50, "total_tokens": 306}
        })
        .to_string(),
    )
}

/// The whole request path's CPU work for one non-streamed chat call.
fn chat_path(routes: &Routes, request: &[u8], answer: &Bytes) -> Bytes {
    let Ok((name, call)) = parse_call(Endpoint::ChatCompletions, request) else {
        panic!("benchmark request refused");
    };
    let Some(model) = routes.model(&name) else {
        panic!("benchmark model missing");
    };
    let Ok(picked) = pick(
        model,
        tokio::time::Instant::now(),
        &[],
        call.estimated_tokens,
    ) else {
        panic!("no deployment");
    };
    let deployment = &model.deployments[picked.index];
    let view = CallView {
        endpoint: call.endpoint,
        body: &call.body,
        stream: call.stream,
        model: &deployment.upstream_model,
        default_max_tokens: model.default_max_tokens,
        anthropic_beta: None,
    };
    let Ok(upstream) = deployment.dialect.request(&view) else {
        panic!("translation refused");
    };
    black_box(upstream);
    match deployment.dialect.response(&view, answer.clone()) {
        Ok(reply) => reply.body,
        Err(err) => panic!("response refused: {err}"),
    }
}

fn bench_chat(c: &mut Criterion) {
    let routes = routes();
    let mut group = c.benchmark_group("chat");
    for (name, request, answer) in [
        ("openai", chat_request("chat-openai"), openai_completion()),
        (
            "anthropic",
            chat_request("chat-anthropic"),
            anthropic_message(),
        ),
    ] {
        // Sanity: the path works end to end before it is timed.
        let out: Value =
            serde_json::from_slice(&chat_path(&routes, &request, &answer)).unwrap_or(Value::Null);
        assert_eq!(out["object"], "chat.completion", "{name}: {out}");
        group.throughput(Throughput::Bytes(request.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| chat_path(&routes, black_box(&request), &answer));
        });
    }
    group.finish();
}

fn anthropic_stream() -> Vec<Bytes> {
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut events = vec![
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_bench", "type": "message",
                "role": "assistant", "model": "claude-3-5-haiku-latest", "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 256, "output_tokens": 1}}}),
        ),
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}),
        ),
    ];
    for _ in 0..PIECES {
        events.push(event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
                   "delta": {"type": "text_delta", "text": " token"}}),
        ));
    }
    events.push(event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    events.push(event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
               "usage": {"output_tokens": PIECES}}),
    ));
    events.push(event("message_stop", json!({"type": "message_stop"})));
    events
}

/// Gemini's `streamGenerateContent?alt=sse`: one candidate chunk per piece, the last
/// with its finish reason and usage.
fn gemini_stream() -> Vec<Bytes> {
    let chunk = |text: &str, last: bool| {
        let mut data = json!({"candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                "index": 0}], "modelVersion": "gemini-2.0-flash", "responseId": "resp-bench"});
        if last {
            data["candidates"][0]["finishReason"] = json!("STOP");
            data["usageMetadata"] = json!({"promptTokenCount": 256, "candidatesTokenCount": PIECES,
                "totalTokenCount": 256 + PIECES});
        }
        Bytes::from(format!("data: {data}\n\n"))
    };
    let mut events: Vec<Bytes> = (0..PIECES).map(|_| chunk(" token", false)).collect();
    events.push(chunk("", true));
    events
}

/// Cohere's v2 chat stream: message-start, a text content block, message-end with usage.
fn cohere_stream() -> Vec<Bytes> {
    let event = |name: &str, data: Value| Bytes::from(format!("event: {name}\ndata: {data}\n\n"));
    let mut events = vec![
        event(
            "message-start",
            json!({"id": "msg-bench", "type": "message-start",
                   "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        ),
        event(
            "content-start",
            json!({"type": "content-start", "index": 0,
                   "delta": {"message": {"content": {"type": "text", "text": ""}}}}),
        ),
    ];
    for _ in 0..PIECES {
        events.push(event(
            "content-delta",
            json!({"type": "content-delta", "index": 0,
                   "delta": {"message": {"content": {"text": " token"}}}}),
        ));
    }
    events.push(event(
        "content-end",
        json!({"type": "content-end", "index": 0}),
    ));
    events.push(event(
        "message-end",
        json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE",
               "usage": {"billed_units": {"input_tokens": 256, "output_tokens": PIECES},
                         "tokens": {"input_tokens": 300, "output_tokens": PIECES}}}}),
    ));
    events
}

fn openai_stream() -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        let data = json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
        Bytes::from(format!("data: {data}\n\n"))
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for _ in 0..PIECES {
        events.push(chunk(json!({"content": " token"}), Value::Null));
    }
    events.push(chunk(json!({}), json!("stop")));
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    events
}

/// Feeds every chunk through a fresh translator of `model`'s deployment; returns the
/// bytes produced.
fn translate_stream(routes: &Routes, model: &str, request: &[u8], chunks: &[Bytes]) -> usize {
    let Ok((_, mut call)) = parse_call(Endpoint::ChatCompletions, request) else {
        panic!("benchmark request refused");
    };
    call.stream = true;
    let Some(model) = routes.model(model) else {
        panic!("benchmark model missing");
    };
    let deployment = &model.deployments[0];
    let view = CallView {
        endpoint: call.endpoint,
        body: &call.body,
        stream: true,
        model: &deployment.upstream_model,
        default_max_tokens: None,
        anthropic_beta: None,
    };
    drain(deployment.dialect.stream(&view), chunks)
}

/// Feeds every chunk to `translator`, then finishes it; returns the bytes produced.
fn drain(mut translator: Box<dyn StreamTranslator>, chunks: &[Bytes]) -> usize {
    let mut produced = 0;
    for chunk in chunks {
        match translator.feed(chunk.clone()) {
            Ok(Some(out)) => produced += out.len(),
            Ok(None) => {}
            Err(err) => panic!("stream refused: {}", err.message),
        }
    }
    match translator.finish() {
        Ok(Some(out)) => produced += out.len(),
        Ok(None) => {}
        Err(err) => panic!("stream end refused: {}", err.message),
    }
    produced
}

fn bench_stream(c: &mut Criterion) {
    let routes = routes();
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(PIECES as u64));
    let anthropic = anthropic_stream();
    let request = chat_request("chat-anthropic");
    assert!(translate_stream(&routes, "chat-anthropic", &request, &anthropic) > 0);
    group.bench_function("anthropic_to_openai", |b| {
        b.iter(|| translate_stream(&routes, "chat-anthropic", &request, black_box(&anthropic)));
    });
    for (model, name, stream) in [
        ("chat-gemini", "gemini_to_openai", gemini_stream()),
        ("chat-cohere", "cohere_to_openai", cohere_stream()),
    ] {
        let request = chat_request(model);
        assert!(translate_stream(&routes, model, &request, &stream) > 0);
        group.bench_function(name, |b| {
            b.iter(|| translate_stream(&routes, model, &request, black_box(&stream)));
        });
    }
    let openai = openai_stream();
    let request = chat_request("chat-openai");
    assert!(translate_stream(&routes, "chat-openai", &request, &openai) > 0);
    group.bench_function("openai_passthrough", |b| {
        b.iter(|| translate_stream(&routes, "chat-openai", &request, black_box(&openai)));
    });
    group.finish();
}

fn bedrock_stream() -> Vec<Bytes> {
    let mut frames =
        vec![EventMessage::event("messageStart", &json!({"role": "assistant"})).encode()];
    for _ in 0..PIECES {
        frames.push(
            EventMessage::event(
                "contentBlockDelta",
                &json!({"contentBlockIndex": 0, "delta": {"text": " token"}}),
            )
            .encode(),
        );
    }
    frames.push(EventMessage::event("contentBlockStop", &json!({"contentBlockIndex": 0})).encode());
    frames.push(EventMessage::event("messageStop", &json!({"stopReason": "end_turn"})).encode());
    frames.push(
        EventMessage::event(
            "metadata",
            &json!({"usage": {"inputTokens": 256, "outputTokens": 50, "totalTokens": 306},
                    "metrics": {"latencyMs": 100}}),
        )
        .encode(),
    );
    frames
}

fn decode(frames: &[Bytes]) -> usize {
    let mut decoder = Decoder::default();
    let mut messages = 0;
    for frame in frames {
        decoder.push(frame);
        loop {
            match decoder.next_message() {
                Ok(Some(message)) => {
                    black_box(&message);
                    messages += 1;
                }
                Ok(None) => break,
                Err(err) => panic!("decode failed: {err}"),
            }
        }
    }
    messages
}

fn bench_eventstream(c: &mut Criterion) {
    let frames = bedrock_stream();
    let mut group = c.benchmark_group("eventstream");
    group.throughput(Throughput::Elements(frames.len() as u64));
    assert_eq!(decode(&frames), frames.len());
    group.bench_function("decode", |b| b.iter(|| decode(black_box(&frames))));

    let snapshot = Snapshot {
        format: FORMAT,
        version: "bench".into(),
        models: vec![ModelSpec::new("chat-bedrock", vec![bedrock_deployment()])],
        keys: Vec::new(),
        budgets: Vec::new(),
    };
    let routes = match RoutesBuilder::new(Arc::new(NoTransport)).build(&snapshot) {
        Ok(routes) => routes,
        Err(err) => panic!("benchmark config refused: {} {}", err.path, err.message),
    };
    let request = chat_request("chat-bedrock");
    assert!(translate_stream(&routes, "chat-bedrock", &request, &frames) > 0);
    group.bench_function("translate", |b| {
        b.iter(|| translate_stream(&routes, "chat-bedrock", &request, black_box(&frames)));
    });
    group.finish();
}

fn bedrock_deployment() -> DeploymentSpec {
    let mut spec = DeploymentSpec::new(
        "bedrock",
        ProviderKind::Bedrock,
        "anthropic.claude-3-5-haiku-20241022-v1:0",
    );
    spec.region = Some("us-east-1".into());
    spec.aws = Some(AwsCredentials {
        access_key_id: SecretString::new("AKIDEXAMPLE"),
        secret_access_key: SecretString::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: None,
    });
    spec
}

/// Feeds every chunk through a fresh translator for a call to `endpoint` (Messages or
/// Responses) served by `model`'s deployment: the native tap, or the chat bridge over
/// the provider's translator; returns the bytes produced.
fn inbound_stream(
    routes: &Routes,
    endpoint: Endpoint,
    model: &str,
    body: &Value,
    chunks: &[Bytes],
) -> usize {
    let Some(model) = routes.model(model) else {
        panic!("benchmark model missing");
    };
    let deployment = &model.deployments[0];
    let Some(body) = body.as_object() else {
        panic!("benchmark body is not an object");
    };
    let client = CallView {
        endpoint,
        body,
        stream: true,
        model: &deployment.upstream_model,
        default_max_tokens: None,
        anthropic_beta: None,
    };
    let translator = if deployment.dialect.native(endpoint) {
        deployment.dialect.stream(&client)
    } else {
        let Ok(chat) = bridge::to_chat(endpoint, body) else {
            panic!("benchmark request refused");
        };
        let view = CallView {
            endpoint: Endpoint::ChatCompletions,
            body: &chat.body,
            ..client
        };
        bridge::stream(&client, deployment.dialect.stream(&view))
    };
    drain(translator, chunks)
}

fn bench_inbound(c: &mut Criterion) {
    let routes = routes();
    let mut group = c.benchmark_group("inbound_stream");
    group.throughput(Throughput::Elements(PIECES as u64));
    let messages = |model: &str| {
        json!({"model": model, "max_tokens": 1024, "stream": true,
               "messages": [{"role": "user", "content": prompt()}]})
    };
    let responses = |model: &str| json!({"model": model, "stream": true, "input": prompt()});
    let mut usage_chunk = openai_stream();
    let done = usage_chunk.pop();
    usage_chunk.push(Bytes::from(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-4o-mini", "choices": [],
               "usage": {"prompt_tokens": 10, "completion_tokens": PIECES, "total_tokens": 10 + PIECES}})
    )));
    usage_chunk.extend(done);
    let cases = [
        (
            "messages_native_anthropic",
            Endpoint::Messages,
            messages("chat-anthropic"),
            "chat-anthropic",
            anthropic_stream(),
        ),
        (
            "messages_over_openai_chat",
            Endpoint::Messages,
            messages("chat-openai"),
            "chat-openai",
            usage_chunk.clone(),
        ),
        (
            "responses_over_openai_chat",
            Endpoint::Responses,
            responses("chat-vllm"),
            "chat-vllm",
            usage_chunk,
        ),
        (
            "responses_over_anthropic",
            Endpoint::Responses,
            responses("chat-anthropic"),
            "chat-anthropic",
            anthropic_stream(),
        ),
    ];
    for (name, endpoint, body, model, chunks) in cases {
        assert!(inbound_stream(&routes, endpoint, model, &body, &chunks) > 0);
        group.bench_function(name, |b| {
            b.iter(|| inbound_stream(&routes, endpoint, model, &body, black_box(&chunks)));
        });
    }
    group.finish();
}

/// An agent's turn as Claude Code sends one: a long system prompt, a dozen tools with
/// schemas and a conversation with tool calls, about 50 KB.
fn agent_turn(model: &str) -> Bytes {
    let tools: Vec<Value> = (0..12)
        .map(|i| {
            json!({"name": format!("Tool{i}"), "description": "x".repeat(600),
                   "input_schema": {"type": "object", "properties": {
                       "path": {"type": "string", "description": "y".repeat(200)},
                       "content": {"type": "string"}}, "required": ["path"]}})
        })
        .collect();
    let mut messages = vec![json!({"role": "user", "content": "z".repeat(4000)})];
    for i in 0..20 {
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": "w".repeat(300)},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Tool1", "input": {"path": "a.txt"}}]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": "v".repeat(800)}]}));
    }
    Bytes::from(
        json!({"model": model, "max_tokens": 32000, "stream": true,
               "system": [{"type": "text", "text": "s".repeat(8000), "cache_control": {"type": "ephemeral"}}],
               "tools": tools, "messages": messages})
        .to_string(),
    )
}

/// Parses an agent's Messages call and builds the upstream request: natively, or
/// restated as chat first.
fn messages_request(routes: &Routes, request: &[u8]) -> usize {
    let Ok((name, call)) = parse_call(Endpoint::Messages, request) else {
        panic!("benchmark request refused");
    };
    let Some(model) = routes.model(&name) else {
        panic!("benchmark model missing");
    };
    let deployment = &model.deployments[0];
    let client = CallView {
        endpoint: call.endpoint,
        body: &call.body,
        stream: call.stream,
        model: &deployment.upstream_model,
        default_max_tokens: None,
        anthropic_beta: None,
    };
    let built = if deployment.dialect.native(Endpoint::Messages) {
        deployment.dialect.request(&client)
    } else {
        let Ok(chat) = bridge::to_chat(Endpoint::Messages, &call.body) else {
            panic!("benchmark request refused");
        };
        let view = CallView {
            endpoint: Endpoint::ChatCompletions,
            body: &chat.body,
            ..client
        };
        deployment.dialect.request(&view)
    };
    match built {
        Ok(request) => request.body().len(),
        Err(err) => panic!("translation refused: {err}"),
    }
}

fn bench_agent_request(c: &mut Criterion) {
    let routes = routes();
    let mut group = c.benchmark_group("agent_request");
    for (name, model) in [
        ("messages_native_anthropic", "chat-anthropic"),
        ("messages_over_openai_chat", "chat-openai"),
    ] {
        let request = agent_turn(model);
        group.throughput(Throughput::Bytes(request.len() as u64));
        assert!(messages_request(&routes, &request) > 0);
        group.bench_function(name, |b| {
            b.iter(|| messages_request(&routes, black_box(&request)));
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_chat,
    bench_stream,
    bench_inbound,
    bench_agent_request,
    bench_eventstream
);
criterion_main!(benches);

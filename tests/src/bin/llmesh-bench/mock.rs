//! The benchmark's upstream: a provider on the tests' one mock core answering OpenAI's
//! chat completions (whole and streamed) and embeddings and Anthropic's Messages API
//! (whole and streamed) with bodies rendered once at start. It validates nothing and
//! records nothing, so that what it costs per request stays small next to what is
//! measured; the conformance mocks in `llmesh_tests` are the ones that check wire
//! formats.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use llmesh_tests::mock::{Failure, Provider, Resolved};
use llmesh_tests::{Mock, MockConfig, Recorded, Reply};
use serde::Deserialize;
use serde_json::json;

/// How the mock answers.
#[derive(Clone, Debug)]
pub struct MockSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Waited before the response headers of every answer.
    pub latency: Duration,
    /// Content events in a streamed answer.
    pub chunks: usize,
    /// Waited before each event of a stream (tokio timers: whole milliseconds).
    pub chunk_delay: Duration,
    /// Floats in each embedding vector.
    pub embedding_dim: usize,
}

impl Default for MockSettings {
    fn default() -> Self {
        MockSettings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            latency: Duration::ZERO,
            chunks: 50,
            chunk_delay: Duration::ZERO,
            embedding_dim: 1536,
        }
    }
}

/// Every answer, rendered once.
struct Canned {
    openai_chat: Bytes,
    openai_stream: Arc<[Bytes]>,
    openai_embeddings: Bytes,
    anthropic_message: Bytes,
    anthropic_stream: Arc<[Bytes]>,
}

/// Content of each streamed piece; with the default 50 pieces the whole answer is a
/// couple of hundred bytes of text, like a short real completion.
const PIECE: &str = " token";

impl Canned {
    fn new(settings: MockSettings) -> Canned {
        let text: String = PIECE.repeat(settings.chunks.max(1));
        let openai_chat = json!({
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 256, "completion_tokens": settings.chunks, "total_tokens": 256 + settings.chunks}
        });
        let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
            let event = json!({
                "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": "gpt-4o-mini", "system_fingerprint": "fp_bench",
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
            });
            Bytes::from(format!("data: {event}\n\n"))
        };
        let mut openai_stream = vec![chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            serde_json::Value::Null,
        )];
        for _ in 0..settings.chunks {
            openai_stream.push(chunk(json!({"content": PIECE}), serde_json::Value::Null));
        }
        openai_stream.push(chunk(json!({}), json!("stop")));
        openai_stream.push(Bytes::from_static(b"data: [DONE]\n\n"));

        // Spread values so the JSON looks like a real vector (not all "0.0").
        let vector: Vec<f64> = (0..settings.embedding_dim)
            .map(|i| ((i as f64) * 0.618_033_988_7).fract() - 0.5)
            .collect();
        let openai_embeddings = json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": vector}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 256, "total_tokens": 256}
        });

        let usage = json!({"input_tokens": 256, "output_tokens": settings.chunks,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
        let anthropic_message = json!({
            "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null, "usage": usage
        });
        let event = |name: &str, data: serde_json::Value| {
            Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
        };
        let mut anthropic_stream = vec![
            event(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": "msg_bench", "type": "message", "role": "assistant",
                    "model": "claude-3-5-haiku-latest", "content": [], "stop_reason": null,
                    "stop_sequence": null, "usage": {"input_tokens": 256, "output_tokens": 1}}}),
            ),
            event(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}),
            ),
        ];
        for _ in 0..settings.chunks {
            anthropic_stream.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": PIECE}}),
            ));
        }
        anthropic_stream.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ));
        anthropic_stream.push(event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"output_tokens": settings.chunks}}),
        ));
        anthropic_stream.push(event("message_stop", json!({"type": "message_stop"})));

        Canned {
            openai_chat: Bytes::from(openai_chat.to_string()),
            openai_stream: openai_stream.into(),
            openai_embeddings: Bytes::from(openai_embeddings.to_string()),
            anthropic_message: Bytes::from(anthropic_message.to_string()),
            anthropic_stream: anthropic_stream.into(),
        }
    }
}

/// Starts the mock on `settings.listen`; it serves until dropped.
pub async fn start(settings: MockSettings) -> io::Result<Mock<Bench>> {
    let config = MockConfig {
        listen: settings.listen,
        // Nobody reads them, and they would grow without bound.
        record_requests: false,
        latency: settings.latency,
        tls: None,
    };
    let chunk_delay = settings.chunk_delay;
    let mock = Mock::serve(Bench(Canned::new(settings)), config).await?;
    mock.set_default(Reply::ok().with_chunk_delay(chunk_delay));
    Ok(mock)
}

/// The canned answers as a provider of the mock core.
pub struct Bench(Canned);

/// Only what decides the answer's shape is read from a request.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    stream: bool,
}

const JSON: &str = "application/json";
/// Each event is its own body frame, as a real provider flushes them.
const EVENT_STREAM: &str = "text/event-stream";

impl Provider for Bench {
    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        let text = |status, text: &'static str| {
            Resolved::whole(status, "text/plain", Bytes::from_static(text.as_bytes()))
        };
        if req.method != Method::POST {
            return Some(text(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
        }
        let path = req.path_only();
        let path = path.strip_prefix("/v1").unwrap_or(path);
        match path {
            "/chat/completions" | "/embeddings" | "/messages" => None,
            // An OTLP/HTTP trace sink, for the sidecar measured with tracing on: a
            // collector's answer to an export (an empty ExportTraceServiceResponse).
            "/traces" => Some(Resolved::whole(
                StatusCode::OK,
                "application/x-protobuf",
                Bytes::new(),
            )),
            _ => Some(text(StatusCode::NOT_FOUND, "unknown path")),
        }
    }

    fn render(&self, req: &Recorded, _reply: &Reply) -> Resolved {
        let canned = &self.0;
        let path = req.path_only();
        let path = path.strip_prefix("/v1").unwrap_or(path);
        let stream = serde_json::from_slice::<Probe>(&req.body).is_ok_and(|p| p.stream);
        let whole = |body: &Bytes| Resolved::whole(StatusCode::OK, JSON, body.clone());
        let events = |events: &Arc<[Bytes]>| Resolved::frames(EVENT_STREAM, events.to_vec());
        match (path, stream) {
            ("/chat/completions", true) => events(&canned.openai_stream),
            ("/chat/completions", false) => whole(&canned.openai_chat),
            ("/messages", true) => events(&canned.anthropic_stream),
            ("/messages", false) => whole(&canned.anthropic_message),
            _ => whole(&canned.openai_embeddings),
        }
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        let body = json!({"error": {"message": failure.message, "type": "server_error"}});
        Resolved::whole(failure.status, JSON, Bytes::from(body.to_string()))
    }
}

//! Entry points for the fuzz targets (`sidecar/fuzz/`) and for the corpus replay test
//! (`tests/fuzz_corpus.rs`), which runs the committed corpus through the same functions
//! on stable. Each takes raw bytes from the fuzzer, drives one parser or translator that
//! reads outside input, and panics only where an invariant is broken: any panic is a bug.
//!
//! Bytes arriving in chunks are split by the input's first byte, and the result is
//! compared with feeding the same bytes whole where the output must not depend on the
//! split (SSE, eventstream).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::config::snapshot::{AwsCredentials, DeploymentSpec, ProviderKind, SecretString};
use crate::domain::{CallView, Endpoint};
use crate::provider::bedrock::eventstream::{DecodeError, Decoder, Message};
use crate::provider::openai::SsePassthrough;
use crate::provider::sse::{Event, SseError, SseParser};
use crate::provider::{Prepared, ProviderContext, StreamTranslator};
use crate::upstream::{ResponseFuture, Transport, TransportError, UpstreamRequest};

/// One target: takes the fuzzer's bytes, panics on a broken invariant.
pub type Target = fn(&[u8]);

/// The targets, by the name of their fuzz target and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("openai_request", openai_request),
    ("inbound_request", inbound_request),
    ("stream_inbound", stream_inbound),
    ("sse", sse),
    ("eventstream", eventstream),
    ("stream_anthropic", stream_anthropic),
    ("stream_gemini", stream_gemini),
    ("stream_cohere", stream_cohere),
    ("stream_bedrock", stream_bedrock),
    ("retry_after", retry_after),
    ("snapshot", snapshot),
    ("cache_fold", cache_fold),
];

/// A transport that never connects: building dialects must not need the network.
struct Offline;

impl Transport for Offline {
    fn send(&self, _request: UpstreamRequest) -> ResponseFuture {
        Box::pin(async { Err(TransportError::Connect("offline".into())) })
    }
}

/// The first byte picks how the rest is split into chunks.
fn chunked(data: &[u8]) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (usize::from(first % 32) + 1, rest),
        None => (1, data),
    }
}

/// A deployment of `kind` that builds without real credentials.
fn spec(kind: ProviderKind) -> DeploymentSpec {
    let mut spec = DeploymentSpec::new("d", kind, "m");
    spec.api_key = Some(SecretString::new("k"));
    spec.base_url = Some("http://127.0.0.1:1/v1".into());
    spec.region = Some("us-east-1".into());
    spec.aws = Some(AwsCredentials::new("AKIDEXAMPLE", "secret"));
    spec
}

fn prepared(kind: ProviderKind) -> Option<Prepared> {
    let ctx = ProviderContext::new(Arc::new(Offline));
    crate::provider::build(&spec(kind), &ctx).ok()
}

/// Providers whose request translation the request target drives.
const REQUEST_KINDS: &[ProviderKind] = &[
    ProviderKind::OpenaiCompatible,
    ProviderKind::Azure,
    ProviderKind::Anthropic,
    ProviderKind::Gemini,
    ProviderKind::Bedrock,
    ProviderKind::Cohere,
];

/// A client's request body → typed call (the first byte picks the endpoint), then every
/// provider's translation of it, which must be a JSON body.
pub fn openai_request(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let endpoint = Endpoint::ALL[usize::from(which) % Endpoint::ALL.len()];
    let Ok((_, call)) = crate::server::request::parse_call(endpoint, body) else {
        return;
    };
    let view = CallView {
        endpoint: call.endpoint,
        body: &call.body,
        stream: call.stream,
        model: "m",
        default_max_tokens: Some(16),
        anthropic_beta: None,
    };
    for &kind in REQUEST_KINDS {
        if let Some(p) = prepared(kind)
            && let Ok(request) = p.dialect.request(&view)
        {
            let body = serde_json::from_slice::<Value>(request.body());
            assert!(body.is_ok(), "{kind:?} sent a body that is not JSON");
        }
    }
}

/// A Messages or Responses body (the first byte picks which) → the call restated as
/// chat, then every provider's request: native dialects get the client's body, the
/// others the chat call. Every body sent must be JSON.
pub fn inbound_request(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let endpoint = if which % 2 == 0 {
        Endpoint::Messages
    } else {
        Endpoint::Responses
    };
    let Ok((_, call)) = crate::server::request::parse_call(endpoint, body) else {
        return;
    };
    let client = CallView {
        endpoint,
        body: &call.body,
        stream: call.stream,
        model: "m",
        default_max_tokens: Some(16),
        anthropic_beta: Some("interleaved-thinking-2025-05-14,x"),
    };
    let chat = crate::provider::bridge::to_chat(endpoint, &call.body);
    for &kind in REQUEST_KINDS {
        let Some(p) = prepared(kind) else {
            continue;
        };
        let request = if p.dialect.native(endpoint) {
            p.dialect.request(&client)
        } else {
            let Ok(chat) = &chat else {
                continue;
            };
            p.dialect.request(&CallView {
                endpoint: Endpoint::ChatCompletions,
                body: &chat.body,
                ..client
            })
        };
        if let Ok(request) = request {
            let body = serde_json::from_slice::<Value>(request.body());
            assert!(body.is_ok(), "{kind:?} sent a body that is not JSON");
        }
    }
}

/// An OpenAI chat stream (the upstream's, through the pass-through) restated for a
/// Messages client, or with bit 6 of the first byte set a Responses client. Every event
/// written is named and carries JSON; Responses events count their `sequence_number`
/// up from 0.
pub fn stream_inbound(data: &[u8]) {
    let responses = data.first().is_some_and(|b| b & 64 != 0);
    let (step, input) = chunked(data);
    let (endpoint, body) = if responses {
        (
            Endpoint::Responses,
            serde_json::json!({"model": "m", "stream": true, "input": "hi",
                "tools": [{"type": "custom", "name": "apply_patch"},
                          {"type": "function", "name": "f", "parameters": {"type": "object"}}]}),
        )
    } else {
        (
            Endpoint::Messages,
            serde_json::json!({"model": "m", "stream": true, "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}]}),
        )
    };
    let Value::Object(body) = body else {
        return;
    };
    let client = CallView {
        endpoint,
        body: &body,
        stream: true,
        model: "m",
        default_max_tokens: Some(16),
        anthropic_beta: None,
    };
    let inner: Box<dyn StreamTranslator> = Box::new(SsePassthrough::new(false));
    let mut translator = crate::provider::bridge::stream(&client, inner);
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        match translator.feed(Bytes::copy_from_slice(chunk)) {
            Ok(events) => out.extend(events.unwrap_or_default()),
            Err(_) => return check_named_events(&out, responses),
        }
    }
    if let Ok(Some(rest)) = translator.finish() {
        out.extend_from_slice(&rest);
    }
    check_named_events(&out, responses);
}

fn check_named_events(out: &[u8], numbered: bool) {
    let Ok(text) = std::str::from_utf8(out) else {
        panic!("restated stream is not UTF-8");
    };
    let mut next = 0;
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let mut lines = event.lines();
        let named = lines.next().is_some_and(|l| l.starts_with("event: "));
        assert!(named, "an unnamed event: {event:?}");
        let data = lines.next().and_then(|l| l.strip_prefix("data: "));
        let data = data.unwrap_or_else(|| panic!("an event without data: {event:?}"));
        let Ok(value) = serde_json::from_str::<Value>(data) else {
            panic!("not JSON: {data:?}");
        };
        if numbered {
            assert_eq!(value["sequence_number"], next, "{event:?}");
            next += 1;
        }
    }
}

/// SSE parsing: chunked and whole give the same events; the pass-through relays the
/// input byte for byte.
pub fn sse(data: &[u8]) {
    let (step, input) = chunked(data);
    let parse = |chunks: &mut dyn Iterator<Item = &[u8]>| -> Result<Vec<Event>, SseError> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.push(chunk, &mut out)?;
        }
        out.extend(parser.finish()?);
        Ok(out)
    };
    let whole = parse(&mut std::iter::once(input));
    let split = parse(&mut input.chunks(step));
    assert_eq!(
        whole, split,
        "SSE events depend on how the bytes were split"
    );

    let mut passthrough = SsePassthrough::new(false);
    let mut relayed = Vec::new();
    for chunk in input.chunks(step) {
        match passthrough.feed(Bytes::copy_from_slice(chunk)) {
            Ok(events) => relayed.extend(events.unwrap_or_default()),
            Err(_) => return,
        }
    }
    let Ok(tail) = passthrough.finish() else {
        // Cut mid-line: what went out is whole events, the rest is refused.
        assert!(!input.ends_with(b"\n"), "a whole last line was refused");
        assert!(
            input.starts_with(&relayed),
            "the pass-through changed bytes"
        );
        return;
    };
    let tail = tail.unwrap_or_default();
    relayed.extend_from_slice(&tail);
    let expected_len = input.len() + usize::from(!tail.is_empty());
    assert_eq!(
        relayed.len(),
        expected_len,
        "the pass-through lost or added bytes"
    );
    assert!(relayed.starts_with(input), "the pass-through changed bytes");
}

fn decode(chunks: &mut dyn Iterator<Item = &[u8]>) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = Decoder::default();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.push(chunk);
        while let Some(message) = decoder.next_message()? {
            out.push(message);
        }
    }
    decoder.finish()?;
    Ok(out)
}

/// AWS eventstream decoding: chunked and whole agree.
pub fn eventstream(data: &[u8]) {
    let (step, input) = chunked(data);
    let whole = decode(&mut std::iter::once(input));
    let split = decode(&mut input.chunks(step));
    assert_eq!(whole, split, "eventstream messages depend on the split");
}

/// Feeds `input` in chunks of `step` to `kind`'s stream translator; every event it
/// writes must be a JSON `data:` line or `[DONE]`.
fn translate(kind: ProviderKind, data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (step, input) = chunked(rest);
    let Some(p) = prepared(kind) else {
        return;
    };
    let mut body: Map<String, Value> = Map::new();
    body.insert("model".into(), "m".into());
    body.insert(
        "messages".into(),
        serde_json::json!([{"role": "user", "content": "hi"}]),
    );
    if flags & 1 != 0 {
        body.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": true}),
        );
    }
    if flags & 2 != 0 {
        body.insert(
            "response_format".into(),
            serde_json::json!({"type": "json_object"}),
        );
    }
    let view = CallView {
        endpoint: Endpoint::ChatCompletions,
        body: &body,
        stream: true,
        model: "m",
        default_max_tokens: Some(16),
        anthropic_beta: None,
    };
    let mut translator = p.dialect.stream(&view);
    let mut out = Vec::new();
    for chunk in input.chunks(step) {
        match translator.feed(Bytes::copy_from_slice(chunk)) {
            Ok(events) => out.extend(events.unwrap_or_default()),
            Err(_) => return check_events(&out),
        }
    }
    if let Ok(Some(rest)) = translator.finish() {
        out.extend_from_slice(&rest);
    }
    check_events(&out);
}

fn check_events(out: &[u8]) {
    let Ok(text) = std::str::from_utf8(out) else {
        panic!("translated stream is not UTF-8");
    };
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event.strip_prefix("data: ");
        let data = data.unwrap_or_else(|| panic!("not a data event: {event:?}"));
        assert!(
            data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok(),
            "not JSON: {data:?}"
        );
    }
}

/// Anthropic's SSE → OpenAI chunks.
pub fn stream_anthropic(data: &[u8]) {
    translate(ProviderKind::Anthropic, data);
}

/// Gemini's SSE → OpenAI chunks.
pub fn stream_gemini(data: &[u8]) {
    translate(ProviderKind::Gemini, data);
}

/// Cohere's SSE → OpenAI chunks.
pub fn stream_cohere(data: &[u8]) {
    translate(ProviderKind::Cohere, data);
}

/// Bedrock's eventstream → OpenAI chunks. With bit 2 of the first byte set, the rest is
/// lines of `eventType payload`, framed here with valid CRCs, so the fuzzer reaches the
/// translator's handling of payloads instead of stopping at the checksums.
pub fn stream_bedrock(data: &[u8]) {
    match data.split_first() {
        Some((&flags, rest)) if flags & 4 != 0 => {
            let mut framed = vec![flags];
            for line in rest.split(|&b| b == b'\n') {
                let mut parts = line.splitn(2, |&b| b == b' ');
                let kind = parts.next().unwrap_or_default();
                let payload = parts.next().unwrap_or_default();
                framed.extend(frame(kind, payload));
            }
            translate(ProviderKind::Bedrock, &framed);
        }
        _ => translate(ProviderKind::Bedrock, data),
    }
}

/// One eventstream message as AWS frames it: `:event-type` (or `:exception-type` for
/// a name ending in `Exception`) and `:message-type` headers, then the payload.
fn frame(kind: &[u8], payload: &[u8]) -> Vec<u8> {
    let kind = &kind[..kind.len().min(255)];
    let exception = kind.ends_with(b"Exception");
    let mut headers = Vec::new();
    let mut header = |name: &[u8], value: &[u8]| {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name);
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value);
    };
    if exception {
        header(b":exception-type", kind);
        header(b":message-type", b"exception");
    } else {
        header(b":event-type", kind);
        header(b":message-type", b"event");
    }
    header(b":content-type", b"application/json");
    let total = 12 + headers.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crate::provider::bedrock::eventstream::crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(payload);
    let crc = crate::provider::bedrock::eventstream::crc32(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// `Retry-After` / `retry-after-ms` (the first byte picks which): never more than the
/// ceiling, never a panic.
pub fn retry_after(data: &[u8]) {
    let Some((&which, value)) = data.split_first() else {
        return;
    };
    let name = if which & 1 == 0 {
        "retry-after"
    } else {
        "retry-after-ms"
    };
    let Ok(value) = http::HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(name, value);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if let Some(wait) = crate::router::retry::retry_after(&headers, now) {
        assert!(wait <= crate::router::retry::MAX_RETRY_AFTER, "{wait:?}");
    }
}

/// A stream a client was sent, folded into the whole answer the response cache keeps
/// (`cache::replay::Collector`), the first byte picking the API: the answer must not
/// depend on how the bytes were split, and replaying it as a stream must not panic.
pub fn cache_fold(data: &[u8]) {
    use crate::cache::replay::{Collector, replay};
    const APIS: [Endpoint; 4] = [
        Endpoint::ChatCompletions,
        Endpoint::Completions,
        Endpoint::Messages,
        Endpoint::Responses,
    ];
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let endpoint = APIS[usize::from(pick) % APIS.len()];
    let (step, input) = chunked(rest);
    let fold = |chunks: &mut dyn Iterator<Item = &[u8]>| {
        let mut collector = Collector::new(endpoint, 1 << 20)?;
        for chunk in chunks {
            collector.feed(chunk);
        }
        collector.finish(None)
    };
    let whole = fold(&mut std::iter::once(input));
    let split = fold(&mut input.chunks(step));
    assert_eq!(
        whole, split,
        "the answer depends on how the stream was split"
    );
    if let Some(body) = whole {
        let _ = replay(endpoint, &body, true);
    }
}

/// A config snapshot as the operator pushes it (JSON) → validated routes.
pub fn snapshot(data: &[u8]) {
    let Ok(snapshot) = serde_json::from_slice::<crate::config::Snapshot>(data) else {
        return;
    };
    let _ = crate::router::RoutesBuilder::new(Arc::new(Offline)).build(&snapshot);
}

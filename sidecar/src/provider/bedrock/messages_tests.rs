//! Unit tests of Claude on Bedrock serving the Messages API natively: which models do,
//! the InvokeModel requests, whole answers, and event streams fed in pieces.

use bytes::Bytes;
use serde_json::{Value, json};

use super::eventstream::tests::encode;
use super::*;
use crate::config::snapshot::{AwsCredentials, ProviderKind};
use crate::domain::Usage;
use crate::provider::StreamError;
use crate::provider::openai_wire::base64_encode;
use crate::provider::test_support::{object, view};

const SONNET: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";

fn dialect(model: &str) -> Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Bedrock);
    spec.model = model.into();
    spec.region = Some("us-east-1".into());
    spec.aws = Some(AwsCredentials::new("AKIAEXAMPLE", "secret"));
    build(&spec, &crate::provider::test_support::offline()).unwrap()
}

#[test]
fn claude_models_and_profiles_serve_messages_natively() {
    for model in [
        "anthropic.claude-3-5-haiku-20241022-v1:0",
        SONNET,
        "global.anthropic.claude-opus-4-1-20250805-v1:0",
        "apac.anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
    ] {
        assert!(messages::is_claude(model), "{model}");
        let d = dialect(model).dialect;
        assert!(d.native(Endpoint::Messages), "{model}");
        assert_eq!(d.supported_params(Endpoint::Messages), None, "{model}");
        assert!(d.native(Endpoint::ChatCompletions) && !d.native(Endpoint::Responses));
    }
    for model in [
        "amazon.nova-pro-v1:0",
        "us.meta.llama3-3-70b-instruct-v1:0",
        "mistral.mistral-large-2407-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
        "anthropic.titan-lookalike",
    ] {
        assert!(!messages::is_claude(model), "{model}");
        assert!(
            !dialect(model).dialect.native(Endpoint::Messages),
            "{model}"
        );
    }
}

#[test]
fn messages_pass_through_to_invoke_with_the_version_and_betas() {
    let body = object(&json!({
        "model": "claude",
        "stream": false,
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "Hi"},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
        ]}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "some_future_field": 1
    }));
    let mut call = view(Endpoint::Messages, &body, false, SONNET);
    call.anthropic_beta = Some(
        "claude-code-20250219,interleaved-thinking-2025-05-14, context-1m-2025-08-07,files-api-2025-04-14,",
    );
    let request = dialect(SONNET).dialect.request(&call).unwrap();
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(
        request.uri().to_string(),
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    );
    assert_eq!(request.headers()["accept"], "application/json");
    assert_eq!(request.headers()["content-type"], "application/json");
    assert!(request.headers().get("anthropic-beta").is_none());
    let sent: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(
        sent,
        json!({
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Hi"},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
            ]}],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "some_future_field": 1,
            "anthropic_version": "bedrock-2023-05-31",
            "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
        })
    );

    // A stream goes to invoke-with-response-stream; without a beta header, no list.
    let streamed =
        object(&json!({"model": "claude", "stream": true, "max_tokens": 5, "messages": []}));
    let request = dialect(SONNET)
        .dialect
        .request(&view(Endpoint::Messages, &streamed, true, SONNET))
        .unwrap();
    assert_eq!(
        request.uri().path(),
        "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    );
    assert_eq!(
        request.headers()["accept"],
        "application/vnd.amazon.eventstream"
    );
    let sent: Value = serde_json::from_slice(request.body()).unwrap();
    assert_eq!(
        sent,
        json!({"max_tokens": 5, "messages": [], "anthropic_version": "bedrock-2023-05-31"})
    );
}

#[test]
fn whole_answers_pass_through_with_their_usage() {
    let answer = json!({
        "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 3,
                  "cache_creation_input_tokens": 100, "cache_read_input_tokens": 200}
    })
    .to_string();
    let body = object(&json!({"messages": []}));
    let reply = dialect(SONNET)
        .dialect
        .response(
            &view(Endpoint::Messages, &body, false, SONNET),
            Bytes::from(answer.clone()),
        )
        .unwrap();
    assert_eq!(reply.body, answer.as_bytes());
    let usage = reply.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.cached_tokens,
            usage.cache_write_tokens
        ),
        (310, 3, 200, 100)
    );
}

/// A `chunk` frame carrying one Anthropic event, as Bedrock sends it.
fn chunk(event: &Value) -> Vec<u8> {
    let payload = json!({"bytes": base64_encode(event.to_string().as_bytes()), "p": "abcdefgh"});
    encode(
        &[
            (":event-type", 7, b"chunk"),
            (":content-type", 7, b"application/json"),
            (":message-type", 7, b"event"),
        ],
        payload.to_string().as_bytes(),
    )
}

fn events() -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {"id": "msg_bdrk_01", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-5-20250929", "content": [], "stop_reason": null, "stop_sequence": null,
               "usage": {"input_tokens": 12, "cache_read_input_tokens": 30, "cache_creation_input_tokens": 5, "output_tokens": 1}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi é"}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 4}}),
        json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
               "inputTokenCount": 12, "outputTokenCount": 4, "invocationLatency": 511, "firstByteLatency": 320}}),
    ]
}

fn run(frames: &[Vec<u8>], piece: usize) -> (Result<String, StreamError>, Option<Usage>) {
    let body = object(&json!({"messages": [], "stream": true}));
    let mut stream = dialect(SONNET)
        .dialect
        .stream(&view(Endpoint::Messages, &body, true, SONNET));
    let raw = frames.concat();
    let mut out = Vec::new();
    let result = raw
        .chunks(piece)
        .try_for_each(|p| {
            out.extend(stream.feed(Bytes::copy_from_slice(p))?.unwrap_or_default());
            Ok(())
        })
        .and_then(|()| {
            out.extend(stream.finish()?.unwrap_or_default());
            Ok(())
        });
    let text = result.map(|()| String::from_utf8(out).unwrap());
    (text, stream.usage())
}

#[test]
fn streamed_chunks_become_anthropic_events_as_bedrock_sent_them() {
    let frames: Vec<Vec<u8>> = events().iter().map(chunk).collect();
    let expected: String = events()
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect();
    for piece in [1, 7, 64, 100_000] {
        let (text, usage) = run(&frames, piece);
        assert_eq!(text.unwrap(), expected, "pieces of {piece}");
        let usage = usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.cache_write_tokens
            ),
            (47, 4, 30, 5),
            "pieces of {piece}"
        );
    }
    // Events Bedrock may add later are skipped; multi-line JSON is compacted.
    let mut frames = frames;
    frames.insert(
        1,
        encode(
            &[
                (":event-type", 7, b"someFutureEvent"),
                (":message-type", 7, b"event"),
            ],
            b"{}",
        ),
    );
    let pretty = serde_json::to_string_pretty(&json!({"type": "ping"})).unwrap();
    let payload = json!({"bytes": base64_encode(pretty.as_bytes())}).to_string();
    frames.insert(
        2,
        encode(&[(":event-type", 7, b"chunk")], payload.as_bytes()),
    );
    let text = run(&frames, 13).0.unwrap();
    assert_eq!(
        text,
        expected.replacen(
            "event: content_block_start",
            "event: ping\ndata: {\"type\":\"ping\"}\n\nevent: content_block_start",
            1
        )
    );
}

#[test]
fn exceptions_errors_and_broken_frames_end_the_stream_with_an_error() {
    let frames: Vec<Vec<u8>> = events().iter().map(chunk).collect();
    let exception = encode(
        &[
            (":exception-type", 7, b"modelStreamErrorException"),
            (":content-type", 7, b"application/json"),
            (":message-type", 7, b"exception"),
        ],
        br#"{"message":"Model stream errored","originalStatusCode":500}"#,
    );
    let mut failed = frames[..3].to_vec();
    failed.push(exception);
    let err = run(&failed, 64).0.unwrap_err();
    assert_eq!(err.code, "upstream_stream_error");
    assert_eq!(
        err.message,
        "Bedrock stream failed with modelStreamErrorException: Model stream errored"
    );

    let mut overloaded = frames[..2].to_vec();
    overloaded.push(chunk(
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ));
    let err = run(&overloaded, 64).0.unwrap_err();
    assert_eq!(err.code, "upstream_stream_error");
    assert!(err.message.contains("Overloaded"), "{}", err.message);

    let err = run(&frames[..5], 64).0.unwrap_err();
    assert_eq!(err.code, "upstream_malformed_stream");
    assert!(err.message.contains("message_stop"), "{}", err.message);

    let not_base64 = encode(&[(":event-type", 7, b"chunk")], br#"{"bytes":"%%%"}"#);
    let err = run(&[frames[0].clone(), not_base64], 64).0.unwrap_err();
    assert!(err.message.contains("base64"), "{}", err.message);

    let mut corrupt = frames.clone();
    let last = corrupt[2].len() - 1;
    corrupt[2][last] ^= 0xff;
    let err = run(&corrupt, 5).0.unwrap_err();
    assert!(err.message.contains("CRC"), "{}", err.message);

    let mut cut = frames;
    cut[5].truncate(20);
    let err = run(&cut, 64).0.unwrap_err();
    assert!(
        err.message.contains("ended inside a message"),
        "{}",
        err.message
    );
}

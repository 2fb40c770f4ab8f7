//! Chat streams restated as Messages events, fed in pieces of every size.

use bytes::Bytes;
use serde_json::{Value, json};

use super::super::{Stream, to_chat};
use super::view;
use crate::domain::{Endpoint, Usage};
use crate::provider::test_support::{self, object};
use crate::provider::{StreamError, StreamTranslator};

/// A chat translator that relays its input as it comes (so events reach the bridge cut
/// anywhere), reporting `usage` and ending with `tail` or `fail` when finished.
struct Relay {
    usage: Option<Usage>,
    tail: Option<&'static str>,
    fail: Option<StreamError>,
}

impl StreamTranslator for Relay {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        Ok(Some(chunk))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        match self.fail.take() {
            Some(error) => Err(error),
            None => Ok(self.tail.map(|t| Bytes::from_static(t.as_bytes()))),
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

fn relay(usage: Option<Usage>) -> Box<dyn StreamTranslator> {
    Box::new(Relay {
        usage,
        tail: None,
        fail: None,
    })
}

/// `data: {chunk}` with choice 0's `delta` and `finish_reason`.
fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]
    });
    format!("data: {chunk}\n\n")
}

fn usage_chunk() -> String {
    let chunk = json!({
        "id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62,
                  "prompt_tokens_details": {"cached_tokens": 20, "cache_creation_tokens": 5},
                  "completion_tokens_details": {"reasoning_tokens": 4}}
    });
    format!("data: {chunk}\n\n")
}

const DONE: &str = "data: [DONE]\n\n";

/// The usage of [`usage_chunk`] as Messages states it.
fn streamed_usage() -> Value {
    json!({"input_tokens": 25, "output_tokens": 12,
           "cache_read_input_tokens": 20, "cache_creation_input_tokens": 5})
}

/// The events `stream` writes for `raw` fed in pieces of `size` bytes, each checked to
/// be `event: NAME` with data of that `type`.
fn run(mut stream: Stream, raw: &str, size: usize) -> Result<Vec<Value>, StreamError> {
    let mut out = Vec::new();
    for piece in raw.as_bytes().chunks(size.max(1)) {
        if let Some(bytes) = stream.feed(Bytes::copy_from_slice(piece))? {
            out.extend_from_slice(&bytes);
        }
    }
    if let Some(bytes) = stream.finish()? {
        out.extend_from_slice(&bytes);
    }
    let text = String::from_utf8(out).unwrap();
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text}");
    Ok(text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|e| e.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not one event and one data line: {event:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event}");
            data
        })
        .collect())
}

/// Runs `raw` through a bridge over a [`Relay`] in pieces of several sizes, checks they
/// all come out the same, and returns the events.
fn streamed(raw: &str, usage: Option<Usage>) -> Vec<Value> {
    let request = object(&json!({"model": "claude-x", "messages": [], "stream": true}));
    let call = view(&request, true);
    let whole = run(Stream::new(&call, relay(usage)), raw, raw.len()).unwrap();
    for size in [1, 2, 7, 61] {
        let pieces = run(Stream::new(&call, relay(usage)), raw, size).unwrap();
        assert_eq!(pieces, whole, "fed in pieces of {size}");
    }
    whole
}

fn message_start(id: &str) -> Value {
    json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": "claude-x", "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 0, "output_tokens": 0,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    }})
}

fn start(index: u32, block: Value) -> Value {
    json!({"type": "content_block_start", "index": index, "content_block": block})
}

fn delta(index: u32, delta: Value) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": delta})
}

fn stop(index: u32) -> Value {
    json!({"type": "content_block_stop", "index": index})
}

fn message_end(stop_reason: &str, usage: Value) -> [Value; 2] {
    [
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage}),
        json!({"type": "message_stop"}),
    ]
}

#[test]
fn a_text_stream_is_anthropics_event_sequence() {
    let raw = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Hel"}), None),
        chunk(json!({"content": "lo \"you\"\n"}), Some("")),
        chunk(json!({}), Some("stop")),
        usage_chunk(),
        DONE.to_owned(),
    ]
    .concat();
    let mut expected = vec![
        message_start("msg_chatcmpl-9"),
        json!({"type": "ping"}),
        start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": "Hel"})),
        delta(0, json!({"type": "text_delta", "text": "lo \"you\"\n"})),
        stop(0),
    ];
    expected.extend(message_end("end_turn", streamed_usage()));
    assert_eq!(streamed(&raw, None), expected);
}

#[test]
fn thinking_streams_with_signatures_and_redacted_blocks() {
    let raw = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning_content": "Let me "}), None),
        // Providers repeat the text of a thinking piece in reasoning_content.
        chunk(
            json!({"reasoning_content": "think.", "thinking_blocks": [{"type": "thinking", "thinking": "think."}]}),
            None,
        ),
        chunk(
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-1"}]}),
            None,
        ),
        chunk(
            json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}),
            None,
        ),
        chunk(json!({"reasoning_content": "More."}), None),
        chunk(json!({"thinking_blocks": [{"type": "thinking", "signature": "sig-2"}]}), None),
        chunk(json!({"reasoning_content": "Unsigned."}), None),
        chunk(json!({"content": "Answer"}), Some("stop")),
        DONE.to_owned(),
    ]
    .concat();
    let inner_usage = Usage {
        prompt_tokens: 9,
        completion_tokens: 3,
        ..Usage::default()
    };
    let thinking = json!({"type": "thinking", "thinking": "", "signature": ""});
    let mut expected = vec![
        message_start("msg_chatcmpl-9"),
        json!({"type": "ping"}),
        start(0, thinking.clone()),
        delta(0, json!({"type": "thinking_delta", "thinking": "Let me "})),
        delta(0, json!({"type": "thinking_delta", "thinking": "think."})),
        delta(0, json!({"type": "signature_delta", "signature": "sig-1"})),
        stop(0),
        start(1, json!({"type": "redacted_thinking", "data": "opaque"})),
        stop(1),
        start(2, thinking.clone()),
        delta(2, json!({"type": "thinking_delta", "thinking": "More."})),
        delta(2, json!({"type": "signature_delta", "signature": "sig-2"})),
        stop(2),
        start(3, thinking),
        delta(
            3,
            json!({"type": "thinking_delta", "thinking": "Unsigned."}),
        ),
        stop(3),
        start(4, json!({"type": "text", "text": ""})),
        delta(4, json!({"type": "text_delta", "text": "Answer"})),
        stop(4),
    ];
    // No usage chunk: the usage is the inner stream's.
    expected.extend(message_end(
        "end_turn",
        json!({"input_tokens": 9, "output_tokens": 3,
               "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}),
    ));
    assert_eq!(streamed(&raw, Some(inner_usage)), expected);
}

#[test]
fn parallel_tool_calls_stream_as_tool_use_blocks() {
    let call = |index: u32, id: &str, name: &str, arguments: &str| {
        json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                               "function": {"name": name, "arguments": arguments}}]})
    };
    let more = |index: u32, arguments: &str| json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]});
    let raw = [
        chunk(json!({"role": "assistant", "content": "Checking."}), None),
        chunk(call(0, "call_a", "weather", ""), None),
        chunk(more(0, "{\"ci"), None),
        chunk(more(0, "ty\":\"Paris\"}"), None),
        chunk(call(1, "call_b", "weather", "{\"city\":"), None),
        chunk(more(1, "\"Rome\"}"), None),
        // Some providers number every call 0 and tell them apart by id.
        chunk(call(0, "call_c", "now", "{}"), None),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(),
        DONE.to_owned(),
    ]
    .concat();
    let tool =
        |id: &str, name: &str| json!({"type": "tool_use", "id": id, "name": name, "input": {}});
    let json_delta = |index: u32, text: &str| {
        delta(
            index,
            json!({"type": "input_json_delta", "partial_json": text}),
        )
    };
    let mut expected = vec![
        message_start("msg_chatcmpl-9"),
        json!({"type": "ping"}),
        start(0, json!({"type": "text", "text": ""})),
        delta(0, json!({"type": "text_delta", "text": "Checking."})),
        stop(0),
        start(1, tool("call_a", "weather")),
        json_delta(1, "{\"ci"),
        json_delta(1, "ty\":\"Paris\"}"),
        stop(1),
        start(2, tool("call_b", "weather")),
        json_delta(2, "{\"city\":"),
        json_delta(2, "\"Rome\"}"),
        stop(2),
        start(3, tool("call_c", "now")),
        json_delta(3, "{}"),
        stop(3),
    ];
    expected.extend(message_end("tool_use", streamed_usage()));
    assert_eq!(streamed(&raw, None), expected);
}

#[test]
fn a_piece_of_a_closed_tool_call_is_refused() {
    let raw = [
        chunk(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}}]}), None),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}), None),
    ]
    .concat();
    let request = object(&json!({"model": "claude-x", "messages": []}));
    let error = run(Stream::new(&view(&request, true), relay(None)), &raw, 5).unwrap_err();
    assert_eq!(error.code, "upstream_malformed_stream", "{error:?}");
}

#[test]
fn a_stream_without_a_finish_reason_is_malformed() {
    let request = object(&json!({"model": "claude-x", "messages": []}));
    for raw in [
        [chunk(json!({"content": "Hel"}), None), DONE.to_owned()].concat(),
        chunk(json!({"content": "Hel"}), None),
        [chunk(json!({"content": "Hel"}), Some("")), DONE.to_owned()].concat(),
        String::new(),
    ] {
        let error = run(Stream::new(&view(&request, true), relay(None)), &raw, 3).unwrap_err();
        assert_eq!(
            error,
            StreamError::malformed("the stream ended without a finish_reason"),
            "{raw}"
        );
    }
}

#[test]
fn a_stream_ends_at_the_upstreams_end_without_done() {
    let raw = [
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({}), Some("length")),
    ]
    .concat();
    let events = streamed(&raw, None);
    assert_eq!(
        events[events.len() - 3..],
        [
            stop(0),
            message_end(
                "max_tokens",
                json!({"input_tokens": 0, "output_tokens": 0,
                       "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
            )[0]
            .clone(),
            json!({"type": "message_stop"})
        ]
    );
}

#[test]
fn inner_errors_and_error_events_end_the_stream() {
    let request = object(&json!({"model": "claude-x", "messages": []}));
    let call = view(&request, true);
    let failing = Box::new(Relay {
        usage: None,
        tail: None,
        fail: Some(StreamError::upstream("cut off")),
    });
    let raw = chunk(json!({"content": "Hi"}), Some("stop"));
    assert_eq!(
        run(Stream::new(&call, failing), &raw, 4).unwrap_err(),
        StreamError::upstream("cut off")
    );
    let raw = [
        chunk(json!({"content": "Hi"}), None),
        "data: {\"error\": {\"message\": \"overloaded\", \"type\": \"server_error\"}}\n\n"
            .to_owned(),
    ]
    .concat();
    let error = run(Stream::new(&call, relay(None)), &raw, 9).unwrap_err();
    assert_eq!(error.code, "upstream_stream_error");
    assert_eq!(
        error.message,
        "The upstream stream reported an error: overloaded"
    );
    let raw = "data: {\"error\": \"bare\"}\n\n";
    let error = run(Stream::new(&call, relay(None)), raw, 5).unwrap_err();
    assert_eq!(
        error,
        StreamError::upstream("The upstream stream reported an error: bare")
    );
    let tail = Box::new(Relay {
        usage: None,
        tail: Some(
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ),
        fail: None,
    });
    let events = run(
        Stream::new(&call, tail),
        &chunk(json!({"content": "Hi"}), None),
        4,
    )
    .unwrap();
    assert_eq!(
        events.last(),
        Some(&json!({"type": "message_stop"})),
        "what inner's finish wrote is translated"
    );
}

/// The whole path: an Anthropic upstream's stream through the Anthropic provider's chat
/// translator and back to Messages.
#[test]
fn an_anthropic_upstream_streams_back_as_messages() {
    use crate::config::snapshot::{ProviderKind, SecretString};
    let request = object(
        &json!({"model": "claude-x", "max_tokens": 100, "stream": true,
                                 "messages": [{"role": "user", "content": "Weather?"}]}),
    );
    let chat_body = to_chat(&request).unwrap().body;
    let mut spec = crate::provider::spec(ProviderKind::Anthropic);
    spec.api_key = Some(SecretString::new("sk-ant"));
    let prepared = crate::provider::anthropic::build(&spec).unwrap();
    let chat_call = test_support::view(Endpoint::ChatCompletions, &chat_body, true, "claude-up");
    let sse = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let raw = [
        sse("message_start", json!({"type": "message_start", "message": {"id": "msg_up", "model": "claude-up",
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 1}}})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm."}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "text", "text": ""}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "Let me check."}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
        sse("content_block_start", json!({"type": "content_block_start", "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})),
        sse("content_block_delta", json!({"type": "content_block_delta", "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
        sse("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
        sse("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 7}})),
        sse("message_stop", json!({"type": "message_stop"})),
    ]
    .concat();
    let call = view(&request, true);
    for size in [3, raw.len()] {
        let stream = Stream::new(&call, prepared.dialect.stream(&chat_call));
        let events = run(stream, &raw, size).unwrap();
        let mut expected = vec![
            message_start("msg_up"),
            json!({"type": "ping"}),
            start(
                0,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
            ),
            delta(0, json!({"type": "thinking_delta", "thinking": "Hmm."})),
            stop(0),
            start(1, json!({"type": "text", "text": ""})),
            delta(1, json!({"type": "text_delta", "text": "Let me check."})),
            stop(1),
            start(
                2,
                json!({"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}),
            ),
            delta(
                2,
                json!({"type": "input_json_delta", "partial_json": "{\"city\":"}),
            ),
            delta(
                2,
                json!({"type": "input_json_delta", "partial_json": "\"Paris\"}"}),
            ),
            stop(2),
        ];
        expected.extend(message_end(
            "tool_use",
            json!({"input_tokens": 10, "output_tokens": 7,
                   "cache_read_input_tokens": 5, "cache_creation_input_tokens": 0}),
        ));
        assert_eq!(events, expected, "fed in pieces of {size}");
    }
}

#[test]
fn reasoning_under_its_other_name_is_thinking_too() {
    // vLLM and OpenRouter call `reasoning_content` `reasoning`.
    let raw = [
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"reasoning": "Hmm."}), None),
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let events = streamed(&raw, None);
    assert!(
        events.contains(&delta(
            0,
            json!({"type": "thinking_delta", "thinking": "Hmm."})
        )),
        "{events:?}"
    );
}

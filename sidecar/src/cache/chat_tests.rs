//! Chat and text completions: replayed as OpenAI's chunks, and folded back.

use serde_json::json;

use super::*;
use crate::cache::replay::{Collector, replay as replay_body};
use crate::domain::Endpoint;

fn fold(endpoint: Endpoint, stream: &[u8], usage: Option<Usage>) -> Option<Value> {
    let mut c = Collector::new(endpoint, 1 << 20).unwrap();
    // In pieces that split events, as a client's frames may.
    for piece in stream.chunks(7) {
        c.feed(piece);
    }
    c.finish(usage).map(|b| serde_json::from_slice(&b).unwrap())
}

fn data(stream: &Bytes) -> Vec<Value> {
    std::str::from_utf8(stream)
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn completion() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant", "content": "It is sunny in Paris.", "refusal": null,
                "reasoning_content": "Look it up.",
                "thinking_blocks": [{"type": "thinking", "thinking": "Look it up.", "signature": "sig"}],
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                ]
            },
            "logprobs": {"content": [{"token": "It", "logprob": -0.1, "bytes": [73, 116], "top_logprobs": []}], "refusal": null},
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21,
                  "prompt_tokens_details": {"cached_tokens": 0}}
    })
}

#[test]
fn a_whole_answer_replays_as_chunks_and_folds_back_to_itself() {
    let body = completion();
    let stream = replay_body(Endpoint::ChatCompletions, body.to_string().as_bytes(), true).unwrap();
    let text = std::str::from_utf8(&stream).unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks = data(&stream);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-1");
        assert_eq!(chunk["system_fingerprint"], "fp_1");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(
        chunks[1]["choices"][0]["delta"]["content"],
        "It is sunny in Paris."
    );
    assert_eq!(
        chunks[1]["choices"][0]["logprobs"]["content"][0]["token"],
        "It"
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}})
    );
    assert_eq!(
        chunks[3]["choices"][0]["delta"]["tool_calls"][0]["index"],
        1
    );
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "tool_calls");
    let usage = &chunks[5];
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], body["usage"]);
    assert_eq!(chunks.len(), 6);

    let mut expected = body.clone();
    // The fold writes what the chunks say: a refusal that was null is absent.
    expected["choices"][0]["message"]
        .as_object_mut()
        .unwrap()
        .remove("refusal");
    assert_eq!(
        fold(Endpoint::ChatCompletions, &stream, None),
        Some(expected)
    );
}

#[test]
fn the_usage_chunk_comes_only_when_asked_and_the_upstreams_usage_fills_in() {
    let mut body = completion();
    body["choices"][0]["message"] = json!({"role": "assistant", "content": "Hi."});
    body["choices"][0]["logprobs"] = Value::Null;
    body["choices"][0]["finish_reason"] = "stop".into();
    let stream = replay_body(
        Endpoint::ChatCompletions,
        body.to_string().as_bytes(),
        false,
    )
    .unwrap();
    assert!(data(&stream).iter().all(|c| c.get("usage").is_none()));
    let usage = Usage {
        prompt_tokens: 12,
        completion_tokens: 9,
        cached_tokens: 4,
        ..Usage::default()
    };
    let folded = fold(Endpoint::ChatCompletions, &stream, Some(usage)).unwrap();
    assert_eq!(folded["choices"], body["choices"]);
    assert_eq!(
        folded["usage"],
        json!({"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21,
               "prompt_tokens_details": {"cached_tokens": 4}})
    );
}

#[test]
fn deltas_in_pieces_accumulate_as_the_sdks_do() {
    let chunk = |delta: Value, finish: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let stream = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hel"}), Value::Null),
        chunk(json!({"role": "assistant", "content": "lo"}), Value::Null),
        chunk(json!({"thinking_blocks": [{"type": "thinking", "thinking": "a"}]}), Value::Null),
        chunk(json!({"thinking_blocks": [{"type": "thinking", "thinking": "b"}]}), Value::Null),
        chunk(json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "s1"}]}), Value::Null),
        chunk(json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "xyz"}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}), Value::Null),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
        chunk(json!({}), "tool_calls".into()),
        "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let folded = fold(Endpoint::ChatCompletions, stream.as_bytes(), None).unwrap();
    assert_eq!(
        folded,
        json!({
            "id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {
                "role": "assistant", "content": "Hello",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "ab", "signature": "s1"},
                    {"type": "redacted_thinking", "data": "xyz"}
                ],
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
                ]
            }, "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        })
    );
}

#[test]
fn streams_that_fail_or_are_cut_fold_to_nothing() {
    let body = completion();
    let stream = replay_body(Endpoint::ChatCompletions, body.to_string().as_bytes(), true).unwrap();
    let text = std::str::from_utf8(&stream).unwrap();
    let cut = text.trim_end_matches("data: [DONE]\n\n");
    assert_eq!(
        fold(Endpoint::ChatCompletions, cut.as_bytes(), None),
        None,
        "no [DONE]"
    );
    let failed = format!(
        "{cut}data: {{\"error\":{{\"message\":\"boom\",\"code\":\"upstream_stream_error\"}}}}\n\n"
    );
    assert_eq!(
        fold(Endpoint::ChatCompletions, failed.as_bytes(), None),
        None
    );
    let unfinished = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n";
    assert_eq!(
        fold(Endpoint::ChatCompletions, unfinished.as_bytes(), None),
        None,
        "no finish_reason"
    );
    // Beyond the limit: let go.
    let mut small = Collector::new(Endpoint::ChatCompletions, 10).unwrap();
    small.feed(&stream);
    assert!(!small.alive());
    assert_eq!(small.finish(None), None);
}

#[test]
fn text_completions_replay_and_fold_too() {
    let body = json!({
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "gpt-3.5-turbo-instruct",
        "choices": [{"text": "Hello there", "index": 0, "logprobs": null, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}
    });
    let stream = replay_body(Endpoint::Completions, body.to_string().as_bytes(), true).unwrap();
    let chunks = data(&stream);
    assert_eq!(chunks[0]["object"], "text_completion");
    assert_eq!(chunks[0]["choices"][0]["text"], "Hello there");
    assert_eq!(chunks[1]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[2]["usage"], body["usage"]);
    assert_eq!(fold(Endpoint::Completions, &stream, None), Some(body));
}

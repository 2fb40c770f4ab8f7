//! Messages: replayed as Anthropic's events, and folded back.

use serde_json::json;

use super::*;
use crate::cache::replay::{Collector, replay as replay_body};
use crate::domain::Endpoint;

fn fold(stream: &[u8]) -> Option<Value> {
    let mut c = Collector::new(Endpoint::Messages, 1 << 20).unwrap();
    for piece in stream.chunks(5) {
        c.feed(piece);
    }
    c.finish(None).map(|b| serde_json::from_slice(&b).unwrap())
}

fn events(stream: &Bytes) -> Vec<(String, Value)> {
    std::str::from_utf8(stream)
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once("\ndata: ").unwrap();
            let name = name.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn message() -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "The user wants weather.", "signature": "EqQB"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Let me check.", "citations": [
                {"type": "char_location", "cited_text": "sunny", "document_index": 0,
                 "document_title": null, "start_char_index": 0, "end_char_index": 5}
            ]},
            {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris", "days": [1, 2]}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 20, "output_tokens": 30, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 5}
    })
}

#[test]
fn a_whole_message_replays_as_events_and_folds_back_to_itself() {
    let body = message();
    let stream = replay_body(Endpoint::Messages, body.to_string().as_bytes(), false).unwrap();
    let events = events(&stream);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["usage"]["input_tokens"], 20);
    assert_eq!(start["usage"]["output_tokens"], 0);
    assert_eq!(
        events[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "The user wants weather."})
    );
    assert_eq!(
        events[4].1["delta"],
        json!({"type": "signature_delta", "signature": "EqQB"})
    );
    assert_eq!(events[6].1["content_block"], body["content"][1]);
    assert_eq!(
        events[8].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(events[10].1["delta"]["type"], "citations_delta");
    assert_eq!(
        events[12].1["content_block"],
        json!({"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {}})
    );
    assert_eq!(events[13].1["delta"]["type"], "input_json_delta");
    assert_eq!(events[15].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(events[15].1["usage"]["output_tokens"], 30);

    let mut expected = body.clone();
    // Thinking blocks start with an empty signature, which the delta fills in.
    expected["content"][0]["signature"] = "EqQB".into();
    assert_eq!(fold(&stream), Some(expected));
}

#[test]
fn anthropics_own_stream_folds_into_the_message() {
    let stream = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": \\\"x\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    assert_eq!(
        fold(stream.as_bytes()),
        Some(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [
                {"type": "text", "text": "Hello!"},
                {"type": "tool_use", "id": "toolu_1", "name": "get", "input": {"q": "x"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 25, "output_tokens": 15}
        }))
    );
    let cut = stream.trim_end_matches("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    assert_eq!(fold(cut.as_bytes()), None, "cut before message_stop");
    let failed = format!(
        "{cut}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}}}\n\n"
    );
    assert_eq!(fold(failed.as_bytes()), None);
}

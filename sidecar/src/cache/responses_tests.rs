//! Responses: replayed as the typed event stream, and reduced back.

use serde_json::json;

use super::*;
use crate::cache::replay::{Collector, replay as replay_body};
use crate::domain::Endpoint;

fn response() -> Value {
    json!({
        "id": "resp_1", "object": "response", "created_at": 1700000000, "status": "completed",
        "model": "gpt-4.1", "store": false, "incomplete_details": null,
        "output": [
            {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Think."}]},
            {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Hi there.", "annotations": []}]},
            {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
             "name": "weather", "arguments": "{\"city\":\"Paris\"}"},
            {"id": "ws_1", "type": "web_search_call", "status": "completed"}
        ],
        "usage": {"input_tokens": 10, "output_tokens": 20, "total_tokens": 30,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 5}}
    })
}

fn events(stream: &Bytes) -> Vec<Value> {
    std::str::from_utf8(stream)
        .unwrap()
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once("\ndata: ").unwrap();
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(
                Some(data["type"].as_str().unwrap()),
                name.strip_prefix("event: ")
            );
            data
        })
        .collect()
}

#[test]
fn a_whole_response_replays_as_numbered_events() {
    let body = response();
    let stream = replay_body(Endpoint::Responses, body.to_string().as_bytes(), false).unwrap();
    let events = events(&stream);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
    }
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[0]["response"]["status"], "in_progress");
    assert_eq!(events[0]["response"]["output"], json!([]));
    assert_eq!(events[8]["item"]["content"], json!([]));
    assert_eq!(events[8]["item"]["status"], "in_progress");
    assert_eq!(events[10]["delta"], "Hi there.");
    assert_eq!(events[10]["item_id"], "msg_1");
    assert_eq!(events[10]["output_index"], 1);
    assert_eq!(events[14]["item"]["arguments"], "");
    assert_eq!(events[16]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[20]["response"], body);

    let mut c = Collector::new(Endpoint::Responses, 1 << 20).unwrap();
    c.feed(&stream);
    let folded: Value = serde_json::from_slice(&c.finish(None).unwrap()).unwrap();
    assert_eq!(folded, body);
}

#[test]
fn failed_or_unfinished_responses_are_not_kept_or_replayed() {
    let mut failed = response();
    failed["status"] = "failed".into();
    assert!(replay_body(Endpoint::Responses, failed.to_string().as_bytes(), false).is_err());
    let stream = format!(
        "event: response.failed\ndata: {}\n\n",
        json!({"type": "response.failed", "sequence_number": 3, "response": failed})
    );
    let mut c = Collector::new(Endpoint::Responses, 1 << 20).unwrap();
    c.feed(stream.as_bytes());
    assert_eq!(c.finish(None), None);
    let mut c = Collector::new(Endpoint::Responses, 1 << 20).unwrap();
    c.feed(b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{}}\n\n");
    assert_eq!(c.finish(None), None, "cut before the last event");
}

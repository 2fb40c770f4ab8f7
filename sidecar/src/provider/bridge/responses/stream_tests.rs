//! Unit tests of the Responses stream: events from chat streams fed in odd pieces, and
//! Claude's signed reasoning going round through a Responses client.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::tests::{blocks, call_of, strip_ids};
use super::*;
use crate::config::snapshot::{ProviderKind, SecretString};
use crate::domain::{Endpoint, Usage};
use crate::provider::test_support::{self, object};
use crate::provider::{StreamError, StreamTranslator};

/// A chat stream translator that passes its input through: the provider's output.
struct Passthrough(Option<Usage>);

impl StreamTranslator for Passthrough {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        Ok(Some(chunk))
    }
    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        Ok(None)
    }
    fn usage(&self) -> Option<Usage> {
        self.0
    }
}

/// A chat SSE stream of `chunks` (choice-0 deltas with finish reasons), a usage chunk
/// and `[DONE]`.
fn chat_stream(deltas: &[(Value, Option<&str>)]) -> String {
    let mut out = String::new();
    for (delta, finish) in deltas {
        let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    let usage = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
                       "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                                 "prompt_tokens_details": {"cached_tokens": 2}}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out
}

/// Runs `raw` through a Responses stream in pieces of `size` bytes: the events (ids
/// stripped), each checked to name its type in both lines and to be numbered in order,
/// and the answer.
fn run(
    request: &Value,
    inner: Box<dyn StreamTranslator>,
    raw: &[u8],
    size: usize,
) -> Result<(Vec<Value>, Value), StreamError> {
    let body = object(request);
    let mut stream = Stream::new(&call_of(&body, true), inner);
    let mut out = Vec::new();
    for piece in raw.chunks(size) {
        if let Some(b) = stream.feed(Bytes::copy_from_slice(piece))? {
            out.extend_from_slice(&b);
        }
    }
    if let Some(b) = stream.finish()? {
        out.extend_from_slice(&b);
    }
    let text = String::from_utf8(out).unwrap();
    let mut events = Vec::new();
    for (n, event) in text.split("\n\n").filter(|e| !e.is_empty()).enumerate() {
        let (name, data) = event
            .strip_prefix("event: ")
            .and_then(|e| e.split_once("\ndata: "))
            .unwrap_or_else(|| panic!("not an event: {event:?}"));
        let mut data: Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["type"], name);
        assert_eq!(data["sequence_number"], n);
        strip_ids(&mut data);
        if let Some(response) = data.get_mut("response") {
            response["created_at"] = json!(0);
        }
        events.push(data);
    }
    let mut answer: Value = serde_json::from_slice(&stream.answer().expect("an answer")).unwrap();
    strip_ids(&mut answer);
    answer["created_at"] = json!(0);
    Ok((events, answer))
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[test]
fn stream_restates_reasoning_text_and_function_calls_whatever_the_chunking() {
    let raw = chat_stream(&[
        (json!({"role": "assistant", "content": ""}), None),
        (json!({"reasoning_content": "Paris "}), None),
        (json!({"reasoning_content": "first."}), None),
        (
            json!({"thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "sig-1"}]}),
            None,
        ),
        (
            json!({"thinking_blocks": [{"type": "redacted_thinking", "data": "opaque"}]}),
            None,
        ),
        (json!({"content": "Check"}), None),
        (json!({"content": "ing \u{e9}."}), None),
        (
            json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
            None,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
        ),
        (json!({}), Some("tool_calls")),
    ]);
    let request = json!({"model": "client-model", "input": "x", "stream": true});
    let mut first = None;
    for size in [1, 3, 7, 64, 100_000] {
        let (events, _) = run(&request, Box::new(Passthrough(None)), raw.as_bytes(), size).unwrap();
        match &first {
            None => first = Some(events),
            Some(events_1) => assert_eq!(&events, events_1, "chunk size {size}"),
        }
    }
    let events = first.unwrap();
    assert_eq!(
        types(&events),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let created = &events[0]["response"];
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["output"], json!([]));
    assert_eq!(created["model"], "client-model");
    assert!(created["usage"].is_null());
    assert_eq!(events[1]["response"], *created);
    assert_eq!(
        events[2],
        json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
               "item": {"type": "reasoning", "id": "rs_", "summary": []}})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.reasoning_summary_part.added", "sequence_number": 3, "item_id": "rs_",
               "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.reasoning_summary_text.delta", "sequence_number": 4, "item_id": "rs_",
               "output_index": 0, "summary_index": 0, "delta": "Paris "})
    );
    assert_eq!(
        events[6],
        json!({"type": "response.reasoning_summary_text.done", "sequence_number": 6, "item_id": "rs_",
               "output_index": 0, "summary_index": 0, "text": "Paris first."})
    );
    let blocks = blocks(json!([
        {"type": "thinking", "thinking": "Paris first.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"}
    ]));
    let reasoning = json!({"type": "reasoning", "id": "rs_",
        "summary": [{"type": "summary_text", "text": "Paris first."}], "encrypted_content": encode_blocks(&blocks)});
    assert_eq!(events[8]["item"], reasoning);
    assert_eq!(
        events[9]["item"],
        json!({"type": "message", "id": "msg_", "status": "in_progress", "role": "assistant", "content": []})
    );
    assert_eq!(
        events[10],
        json!({"type": "response.content_part.added", "sequence_number": 10, "item_id": "msg_", "output_index": 1,
               "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
    );
    assert_eq!(
        events[12],
        json!({"type": "response.output_text.delta", "sequence_number": 12, "item_id": "msg_", "output_index": 1,
               "content_index": 0, "delta": "ing \u{e9}.", "logprobs": []})
    );
    assert_eq!(
        events[13],
        json!({"type": "response.output_text.done", "sequence_number": 13, "item_id": "msg_", "output_index": 1,
               "content_index": 0, "text": "Checking \u{e9}.", "logprobs": []})
    );
    let message = json!({"type": "message", "id": "msg_", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "Checking \u{e9}.", "annotations": [], "logprobs": []}]});
    assert_eq!(events[14]["part"], message["content"][0]);
    assert_eq!(events[15]["item"], message);
    assert_eq!(
        events[16]["item"],
        json!({"type": "function_call", "id": "fc_", "status": "in_progress", "call_id": "toolu_1",
               "name": "weather", "arguments": ""})
    );
    assert_eq!(
        events[17],
        json!({"type": "response.function_call_arguments.delta", "sequence_number": 17, "item_id": "fc_",
               "output_index": 2, "delta": "{\"city\":"})
    );
    assert_eq!(
        events[19],
        json!({"type": "response.function_call_arguments.done", "sequence_number": 19, "item_id": "fc_",
               "output_index": 2, "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
    );
    let call = json!({"type": "function_call", "id": "fc_", "status": "completed", "call_id": "toolu_1",
        "name": "weather", "arguments": "{\"city\":\"Paris\"}"});
    assert_eq!(events[20]["item"], call);
    let done = &events[21]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], json!([reasoning, message, call]));
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 5,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15})
    );
    let (_, answer) = run(&request, Box::new(Passthrough(None)), raw.as_bytes(), 50).unwrap();
    assert_eq!(answer, *done, "answer() is the final response object");
}

#[test]
fn stream_unwraps_custom_tool_input_and_reports_incomplete_answers() {
    let raw = chat_stream(&[
        (
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"inp"}}]}),
            None,
        ),
        (
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "ut\":\"a\\nb\"}"}}]}),
            None,
        ),
        (json!({}), Some("length")),
    ]);
    let request =
        json!({"model": "m", "input": "x", "tools": [{"type": "custom", "name": "apply_patch"}]});
    let (events, answer) = run(&request, Box::new(Passthrough(None)), raw.as_bytes(), 5).unwrap();
    assert_eq!(
        types(&events),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.incomplete",
        ]
    );
    assert_eq!(
        events[2]["item"],
        json!({"type": "custom_tool_call", "id": "ctc_", "status": "in_progress", "call_id": "call_1",
               "name": "apply_patch", "input": ""})
    );
    assert_eq!(
        events[3],
        json!({"type": "response.custom_tool_call_input.delta", "sequence_number": 3, "item_id": "ctc_",
               "output_index": 0, "delta": "a\nb"})
    );
    assert_eq!(
        events[4],
        json!({"type": "response.custom_tool_call_input.done", "sequence_number": 4, "item_id": "ctc_",
               "output_index": 0, "input": "a\nb"})
    );
    assert_eq!(answer["status"], "incomplete");
    assert_eq!(
        answer["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(answer["output"][0]["input"], "a\nb");
    assert_eq!(answer, events[6]["response"]);
}

#[test]
fn stream_without_a_finish_reason_or_with_garbage_is_an_error() {
    let request = json!({"model": "m", "input": "x"});
    let cut = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let err = run(&request, Box::new(Passthrough(None)), cut.as_bytes(), 4).unwrap_err();
    assert_eq!(err.code, "upstream_malformed_stream");
    let err = run(
        &request,
        Box::new(Passthrough(None)),
        b"data: {nope}\n\n",
        4,
    )
    .unwrap_err();
    assert_eq!(err.code, "upstream_malformed_stream");
    let nameless = "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}\n\n";
    assert!(
        run(
            &request,
            Box::new(Passthrough(None)),
            nameless.as_bytes(),
            100
        )
        .is_err()
    );
    let error = "data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
    let err = run(&request, Box::new(Passthrough(None)), error.as_bytes(), 100).unwrap_err();
    assert_eq!(err, StreamError::upstream("overloaded"));
}

#[test]
fn stream_usage_is_the_provider_s_and_falls_back_to_it_in_the_answer() {
    let usage = Usage {
        prompt_tokens: 7,
        completion_tokens: 3,
        ..Usage::default()
    };
    let raw = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    let body = object(&json!({"model": "m", "input": "x"}));
    let mut stream = Stream::new(&call_of(&body, true), Box::new(Passthrough(Some(usage))));
    let out = stream
        .feed(Bytes::from_static(raw.as_bytes()))
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&out).contains("event: response.completed\n"));
    assert_eq!(stream.finish().unwrap(), None);
    assert_eq!(stream.usage(), Some(usage));
    let answer: Value = serde_json::from_slice(&stream.answer().unwrap()).unwrap();
    assert_eq!(answer["usage"]["input_tokens"], 7);
    assert_eq!(answer["output"][0]["content"][0]["text"], "Hi");
}

fn claude() -> crate::provider::Prepared {
    let mut spec = crate::provider::spec(ProviderKind::Anthropic);
    spec.api_key = Some(SecretString::new("sk-ant"));
    crate::provider::anthropic::build(&spec).unwrap()
}

/// The chat call a Responses request becomes, as the Anthropic dialect sees it.
fn claude_sent(chat_body: &Map<String, Value>) -> Value {
    let view = test_support::view(
        Endpoint::ChatCompletions,
        chat_body,
        false,
        "claude-sonnet-4-5",
    );
    test_support::sent(&claude(), &view).unwrap().1
}

#[test]
fn claude_signed_reasoning_goes_round_through_a_responses_client() {
    // Turn 1: Claude answers with signed reasoning and a tool call.
    let request = json!({"model": "claude", "input": "Weather in Paris?", "reasoning": {"effort": "low"},
                         "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]});
    let chat_1 = to_chat(&object(&request)).unwrap().body;
    let view = test_support::view(
        Endpoint::ChatCompletions,
        &chat_1,
        false,
        "claude-sonnet-4-5",
    );
    let anthropic_answer = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Call the tool.", "signature": "EqQBCkYIBxgCKkBsig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use", "usage": {"input_tokens": 10, "output_tokens": 20}
    });
    let chat_answer = claude()
        .dialect
        .response(&view, Bytes::from(anthropic_answer.to_string()))
        .unwrap();
    let client_body = object(&request);
    let response = reply(&call_of(&client_body, false), chat_answer).unwrap();
    let response: Value = serde_json::from_slice(&response.body).unwrap();
    let output = response["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(output[1]["type"], "function_call");
    // Turn 2: the client sends the output back with the tool's result.
    let mut input = vec![json!({"role": "user", "content": "Weather in Paris?"})];
    input.extend(output.iter().cloned());
    input.push(json!({"type": "function_call_output", "call_id": "toolu_1", "output": "18C"}));
    let request_2 = json!({"model": "claude", "input": input, "reasoning": {"effort": "low"}});
    let chat_2 = to_chat(&object(&request_2)).unwrap().body;
    let blocks = json!([
        {"type": "thinking", "thinking": "Call the tool.", "signature": "EqQBCkYIBxgCKkBsig=="},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"}
    ]);
    assert_eq!(chat_2["messages"][1]["thinking_blocks"], blocks);
    let sent = claude_sent(&chat_2);
    assert_eq!(
        sent["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Call the tool.", "signature": "EqQBCkYIBxgCKkBsig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
        ]})
    );
    assert_eq!(
        sent["messages"][2]["content"][0]["type"], "tool_result",
        "{sent}"
    );
}

#[test]
fn claude_streamed_signatures_reach_the_reasoning_item() {
    let raw = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Hm\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"m.\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig-a\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"opaque\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi.\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let request = json!({"model": "claude", "input": "x", "stream": true});
    let chat_body = to_chat(&object(&request)).unwrap().body;
    for size in [1, 13, 4096] {
        let view = test_support::view(
            Endpoint::ChatCompletions,
            &chat_body,
            true,
            "claude-sonnet-4-5",
        );
        let inner = claude().dialect.stream(&view);
        let (events, answer) = run(&request, inner, raw.as_bytes(), size).unwrap();
        assert_eq!(events.last().unwrap()["type"], "response.completed");
        let reasoning = &answer["output"][0];
        assert_eq!(reasoning["summary"][0]["text"], "Hmm.");
        let decoded = decode_blocks(reasoning["encrypted_content"].as_str().unwrap());
        let expected = blocks(json!([
            {"type": "thinking", "thinking": "Hmm.", "signature": "sig-a"},
            {"type": "redacted_thinking", "data": "opaque"}
        ]));
        assert_eq!(decoded, Some(Ok(expected)), "chunk size {size}");
        assert_eq!(answer["output"][1]["content"][0]["text"], "Hi.");
        assert_eq!(answer["usage"]["input_tokens"], 4);
        assert_eq!(answer["usage"]["output_tokens"], 9);
    }
}

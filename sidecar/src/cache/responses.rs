//! OpenAI's Responses API between its two forms: a whole `response` replayed as the
//! typed event stream OpenAI would have sent ([`replay`]), and a stream reduced to its
//! whole response ([`Collect`]), which the stream's last event carries.
//!
//! Replay, every event numbered by `sequence_number` from 0: `response.created` and
//! `response.in_progress` (the response `in_progress`, no output, no usage); per output
//! item `response.output_item.added` (the item `in_progress`: a message without content,
//! a function call without arguments, reasoning without summary), its parts and deltas
//! (a message's `output_text` parts as `content_part.added`, one `output_text.delta`,
//! `output_text.done` and `content_part.done`, refusals as `refusal.delta`/`.done`; a
//! function call's arguments as one `function_call_arguments.delta` and `.done`; a
//! reasoning summary's parts as `reasoning_summary_part.added`, one
//! `reasoning_summary_text.delta`, `.done` and `reasoning_summary_part.done`), and
//! `response.output_item.done` with the whole item; then `response.completed` (or
//! `response.incomplete`) with the whole response.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

use super::replay::Malformed;

/// `body`, a whole response, as the Responses event stream.
pub fn replay(body: &Map<String, Value>) -> Result<Bytes, Malformed> {
    let output = body
        .get("output")
        .and_then(Value::as_array)
        .ok_or(Malformed("a response without output"))?;
    let last = match body.get("status").and_then(Value::as_str) {
        Some("completed") => "response.completed",
        Some("incomplete") => "response.incomplete",
        _ => {
            return Err(Malformed(
                "a response that is neither completed nor incomplete",
            ));
        }
    };
    let mut w = Writer::default();
    let mut started = body.clone();
    started.insert("status".into(), "in_progress".into());
    started.insert("output".into(), Value::Array(Vec::new()));
    started.insert("usage".into(), Value::Null);
    started.insert("incomplete_details".into(), Value::Null);
    w.event("response.created", json!({"response": started}));
    w.event("response.in_progress", json!({"response": started}));
    for (at, item) in output.iter().enumerate() {
        let id = item.get("id").and_then(Value::as_str).unwrap_or("");
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let mut added = item.clone();
        if let Some(a) = added.as_object_mut() {
            if a.contains_key("status") {
                a.insert("status".into(), "in_progress".into());
            }
            match kind {
                "message" => {
                    a.insert("content".into(), Value::Array(Vec::new()));
                }
                "function_call" => {
                    a.insert("arguments".into(), "".into());
                }
                "reasoning" => {
                    a.insert("summary".into(), Value::Array(Vec::new()));
                }
                _ => {}
            }
        }
        w.event(
            "response.output_item.added",
            json!({"output_index": at, "item": added}),
        );
        match kind {
            "message" => message_parts(&mut w, item, id, at),
            "function_call" => {
                let arguments = item.get("arguments").and_then(Value::as_str).unwrap_or("");
                w.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": at, "delta": arguments}),
                );
                w.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": at, "name": item.get("name"), "arguments": arguments}),
                );
            }
            "reasoning" => summary_parts(&mut w, item, id, at),
            _ => {}
        }
        w.event(
            "response.output_item.done",
            json!({"output_index": at, "item": item}),
        );
    }
    w.event(last, json!({"response": body}));
    Ok(w.out.freeze())
}

fn message_parts(w: &mut Writer, item: &Value, id: &str, at: usize) {
    let parts = item.get("content").and_then(Value::as_array);
    for (c, part) in parts.into_iter().flatten().enumerate() {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
        let (field, empty, delta, done) = match kind {
            "output_text" => (
                "text",
                json!({"type": "output_text", "text": "", "annotations": []}),
                "response.output_text.delta",
                "response.output_text.done",
            ),
            "refusal" => (
                "refusal",
                json!({"type": "refusal", "refusal": ""}),
                "response.refusal.delta",
                "response.refusal.done",
            ),
            _ => {
                let at = json!({"item_id": id, "output_index": at, "content_index": c});
                w.event("response.content_part.added", with(&at, "part", part));
                w.event("response.content_part.done", with(&at, "part", part));
                continue;
            }
        };
        let text = part.get(field).and_then(Value::as_str).unwrap_or("");
        let place = json!({"item_id": id, "output_index": at, "content_index": c});
        w.event("response.content_part.added", with(&place, "part", &empty));
        let mut piece = with(&place, "delta", &text.into());
        let mut whole = with(&place, field, &text.into());
        if kind == "output_text" {
            piece = with(&piece, "logprobs", &json!([]));
            whole = with(&whole, "logprobs", &json!([]));
        }
        w.event(delta, piece);
        w.event(done, whole);
        w.event("response.content_part.done", with(&place, "part", part));
    }
}

fn summary_parts(w: &mut Writer, item: &Value, id: &str, at: usize) {
    let parts = item.get("summary").and_then(Value::as_array);
    for (s, part) in parts.into_iter().flatten().enumerate() {
        let text = part.get("text").and_then(Value::as_str).unwrap_or("");
        let place = json!({"item_id": id, "output_index": at, "summary_index": s});
        let empty = json!({"type": "summary_text", "text": ""});
        w.event(
            "response.reasoning_summary_part.added",
            with(&place, "part", &empty),
        );
        w.event(
            "response.reasoning_summary_text.delta",
            with(&place, "delta", &text.into()),
        );
        w.event(
            "response.reasoning_summary_text.done",
            with(&place, "text", &text.into()),
        );
        w.event(
            "response.reasoning_summary_part.done",
            with(&place, "part", part),
        );
    }
}

/// `base` (an object) with `field` set to `value`.
fn with(base: &Value, field: &str, value: &Value) -> Value {
    let mut out = base.clone();
    if let Some(o) = out.as_object_mut() {
        o.insert(field.to_owned(), value.clone());
    }
    out
}

/// Writes events, numbering them.
#[derive(Default)]
struct Writer {
    out: BytesMut,
    seq: u64,
}

impl Writer {
    fn event(&mut self, kind: &str, data: Value) {
        let mut body = Map::new();
        body.insert("type".into(), kind.into());
        body.insert("sequence_number".into(), self.seq.into());
        if let Value::Object(fields) = data {
            body.extend(fields);
        }
        self.seq += 1;
        self.out.put_slice(b"event: ");
        self.out.put_slice(kind.as_bytes());
        self.out.put_slice(b"\ndata: ");
        // Serializing a Value into memory cannot fail.
        let _ = serde_json::to_writer((&mut self.out).writer(), &Value::Object(body));
        self.out.put_slice(b"\n\n");
    }
}

/// A Responses stream reduced to its whole response: the `response` of its
/// `response.completed` (or `response.incomplete`) event. A stream that ends otherwise
/// (`response.failed`, `error`, cut short) reduces to nothing.
#[derive(Debug, Default)]
pub struct Collect {
    response: Option<Bytes>,
    failed: bool,
}

impl Collect {
    /// Reads one event; answers the bytes it kept.
    pub fn event(&mut self, kind: Option<&str>, data: &str) -> Result<u64, Malformed> {
        match kind {
            Some("response.completed" | "response.incomplete") => {}
            Some("response.failed" | "error") => {
                self.failed = true;
                return Err(Malformed("the response failed"));
            }
            _ => return Ok(0),
        }
        #[derive(serde::Deserialize)]
        struct Last<'a> {
            #[serde(borrow)]
            response: &'a serde_json::value::RawValue,
        }
        let last: Last<'_> =
            serde_json::from_str(data).map_err(|_| Malformed("a last event without a response"))?;
        let response = Bytes::copy_from_slice(last.response.get().as_bytes());
        let kept = response.len() as u64;
        self.response = Some(response);
        Ok(kept)
    }

    /// The whole response, if the stream carried it.
    pub fn finish(self) -> Option<Bytes> {
        if self.failed {
            return None;
        }
        self.response
    }
}

#[cfg(test)]
#[path = "responses_tests.rs"]
mod tests;

//! Anthropic's Messages API between its two forms: a whole `message` replayed as the
//! event stream Anthropic would have sent ([`replay`]), and a stream folded back into the
//! whole message ([`Collect`]).
//!
//! Replay: `message_start` (the message with empty `content`, no stop reason, and the
//! input side of the usage with `output_tokens: 0`), a `ping`, then per content block
//! `content_block_start` (text and thinking blocks empty, a `tool_use` with `input: {}`,
//! other blocks whole), its deltas (`text_delta`, `citations_delta` per citation,
//! `thinking_delta` and `signature_delta`, one `input_json_delta` with the whole input)
//! and `content_block_stop`; then `message_delta` (stop reason, stop sequence and the
//! whole usage) and `message_stop`.
//!
//! Folding does the reverse: `message_start` gives the message, each block starts as
//! `content_block_start` says and takes its deltas (text appended, `input_json_delta`
//! pieces joined and parsed at the block's stop), `message_delta` sets the stop reason
//! and updates the usage. A stream without `message_stop`, with an `error` event or a
//! delta of a kind this fold does not know, folds to nothing.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

use super::replay::{Malformed, weight};

/// `body`, a whole message, as Anthropic's event stream.
pub fn replay(body: &Map<String, Value>) -> Result<Bytes, Malformed> {
    let blocks = body
        .get("content")
        .and_then(Value::as_array)
        .ok_or(Malformed("a message without content"))?;
    let mut out = BytesMut::new();
    let mut start = body.clone();
    start.insert("content".into(), Value::Array(Vec::new()));
    start.insert("stop_reason".into(), Value::Null);
    start.insert("stop_sequence".into(), Value::Null);
    let usage = body.get("usage").cloned().unwrap_or_else(|| json!({}));
    let mut input_usage = usage.clone();
    if let Some(u) = input_usage.as_object_mut() {
        u.insert("output_tokens".into(), 0.into());
    }
    start.insert("usage".into(), input_usage);
    event(&mut out, "message_start", json!({"message": start}));
    event(&mut out, "ping", json!({}));
    for (index, block) in blocks.iter().enumerate() {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let text = |field: &str| block.get(field).and_then(Value::as_str).unwrap_or("");
        let (opening, deltas): (Value, Vec<Value>) = match kind {
            "text" => {
                let mut opening = block.clone();
                if let Some(b) = opening.as_object_mut() {
                    b.insert("text".into(), "".into());
                    b.remove("citations");
                }
                let mut deltas = Vec::new();
                if !text("text").is_empty() {
                    deltas.push(json!({"type": "text_delta", "text": text("text")}));
                }
                let citations = block.get("citations").and_then(Value::as_array);
                for citation in citations.into_iter().flatten() {
                    deltas.push(json!({"type": "citations_delta", "citation": citation}));
                }
                (opening, deltas)
            }
            "thinking" => {
                let mut deltas = Vec::new();
                if !text("thinking").is_empty() {
                    deltas.push(json!({"type": "thinking_delta", "thinking": text("thinking")}));
                }
                if !text("signature").is_empty() {
                    deltas.push(json!({"type": "signature_delta", "signature": text("signature")}));
                }
                (
                    json!({"type": "thinking", "thinking": "", "signature": ""}),
                    deltas,
                )
            }
            "tool_use" | "server_tool_use" | "mcp_tool_use" => {
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                let mut opening = block.clone();
                if let Some(b) = opening.as_object_mut() {
                    b.insert("input".into(), json!({}));
                }
                let partial = serde_json::to_string(&input)
                    .map_err(|_| Malformed("a tool input that cannot be written"))?;
                (
                    opening,
                    vec![json!({"type": "input_json_delta", "partial_json": partial})],
                )
            }
            _ => (block.clone(), Vec::new()),
        };
        event(
            &mut out,
            "content_block_start",
            json!({"index": index, "content_block": opening}),
        );
        for delta in deltas {
            event(
                &mut out,
                "content_block_delta",
                json!({"index": index, "delta": delta}),
            );
        }
        event(&mut out, "content_block_stop", json!({"index": index}));
    }
    let stop_reason = body.get("stop_reason").cloned().unwrap_or(Value::Null);
    let stop_sequence = body.get("stop_sequence").cloned().unwrap_or(Value::Null);
    event(
        &mut out,
        "message_delta",
        json!({"delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence}, "usage": usage}),
    );
    event(&mut out, "message_stop", json!({}));
    Ok(out.freeze())
}

/// Writes `event: kind` with `data` (an object) after its `type`.
fn event(out: &mut BytesMut, kind: &str, data: Value) {
    let mut body = Map::new();
    body.insert("type".into(), kind.into());
    if let Value::Object(fields) = data {
        body.extend(fields);
    }
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    // Serializing a Value into memory cannot fail.
    let _ = serde_json::to_writer(out.writer(), &Value::Object(body));
    out.put_slice(b"\n\n");
}

/// A Messages stream being folded into its whole message.
#[derive(Debug, Default)]
pub struct Collect {
    message: Option<Map<String, Value>>,
    blocks: Vec<Value>,
    /// `input_json_delta` text per block, parsed at the block's stop.
    json: Vec<String>,
    done: bool,
}

impl Collect {
    /// Folds one event's data in; answers the bytes it added.
    pub fn event(&mut self, data: &str) -> Result<u64, Malformed> {
        let Value::Object(mut event) = serde_json::from_str::<Value>(data)
            .map_err(|_| Malformed("an event that is not JSON"))?
        else {
            return Err(Malformed("an event that is not an object"));
        };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        let index = event
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| usize::try_from(i).ok());
        match kind {
            "message_start" => {
                let Some(Value::Object(message)) = event.remove("message") else {
                    return Err(Malformed("message_start without a message"));
                };
                let added = weight(&Value::Object(message.clone()));
                self.message = Some(message);
                Ok(added)
            }
            "content_block_start" => {
                let block = event
                    .remove("content_block")
                    .filter(Value::is_object)
                    .ok_or(Malformed("a block start without a block"))?;
                if index != Some(self.blocks.len()) {
                    return Err(Malformed("a block out of order"));
                }
                let added = weight(&block);
                self.blocks.push(block);
                self.json.push(String::new());
                Ok(added)
            }
            "content_block_delta" => {
                let i = index
                    .filter(|i| *i < self.blocks.len())
                    .ok_or(Malformed("a delta of no block"))?;
                let delta = event.remove("delta").unwrap_or(Value::Null);
                self.delta(i, delta)
            }
            "content_block_stop" => {
                let i = index
                    .filter(|i| *i < self.blocks.len())
                    .ok_or(Malformed("a stop of no block"))?;
                let json = std::mem::take(&mut self.json[i]);
                if !json.is_empty() {
                    let input: Value = serde_json::from_str(&json)
                        .map_err(|_| Malformed("a tool input that is not JSON"))?;
                    if let Some(block) = self.blocks[i].as_object_mut() {
                        block.insert("input".into(), input);
                    }
                }
                Ok(0)
            }
            "message_delta" => {
                let message = self
                    .message
                    .as_mut()
                    .ok_or(Malformed("message_delta before message_start"))?;
                let added = ["delta", "usage"]
                    .iter()
                    .filter_map(|f| event.get(*f))
                    .map(weight)
                    .sum();
                if let Some(Value::Object(delta)) = event.remove("delta") {
                    message.extend(delta);
                }
                if let Some(Value::Object(usage)) = event.remove("usage") {
                    let into = message
                        .entry("usage")
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Some(into) = into.as_object_mut() {
                        into.extend(usage.into_iter().filter(|(_, v)| !v.is_null()));
                    }
                }
                Ok(added)
            }
            "message_stop" => {
                self.done = true;
                Ok(0)
            }
            "ping" => Ok(0),
            _ => Err(Malformed("an event this fold does not know")),
        }
    }

    fn delta(&mut self, i: usize, delta: Value) -> Result<u64, Malformed> {
        let kind = delta.get("type").and_then(Value::as_str).unwrap_or("");
        let text = |field: &str| delta.get(field).and_then(Value::as_str).unwrap_or("");
        let block = self.blocks[i]
            .as_object_mut()
            .ok_or(Malformed("a block that is not an object"))?;
        let mut append = |field: &str, piece: &str| {
            match block.get_mut(field) {
                Some(Value::String(s)) => s.push_str(piece),
                _ => {
                    block.insert(field.to_owned(), piece.into());
                }
            }
            piece.len() as u64
        };
        Ok(match kind {
            "text_delta" => append("text", text("text")),
            "thinking_delta" => append("thinking", text("thinking")),
            "signature_delta" => {
                block.insert("signature".into(), text("signature").into());
                text("signature").len() as u64
            }
            "input_json_delta" => {
                self.json[i].push_str(text("partial_json"));
                text("partial_json").len() as u64
            }
            "citations_delta" => {
                let citation = delta.get("citation").cloned().unwrap_or(Value::Null);
                let added = weight(&citation);
                let list = block
                    .entry("citations")
                    .or_insert_with(|| Value::Array(Vec::new()));
                match list {
                    Value::Array(list) => list.push(citation),
                    other => *other = Value::Array(vec![citation]),
                }
                added
            }
            _ => return Err(Malformed("a delta this fold does not know")),
        })
    }

    /// The whole message, if the stream reached `message_stop`.
    pub fn finish(self) -> Option<Bytes> {
        if !self.done {
            return None;
        }
        let mut message = self.message?;
        message.insert("content".into(), Value::Array(self.blocks));
        serde_json::to_vec(&message).ok().map(Bytes::from)
    }
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;

//! Chat completions (and legacy text completions) between their two forms: a whole
//! `chat.completion` replayed as the `chat.completion.chunk` stream OpenAI would have
//! sent ([`replay`]), and a stream folded back into the whole answer ([`Collect`]).
//!
//! Replay, per choice: a chunk with the role (and `content: ""`), a chunk with the rest
//! of the message (content, refusal, reasoning, annotations, audio... whatever the
//! answer has, with the choice's `logprobs`), one chunk per tool call (its index, id,
//! name and whole arguments), a chunk with the finish reason; then, when the client
//! asked for it (`stream_options.include_usage`), the usage chunk (`choices: []`), and
//! `data: [DONE]`. Legacy completions: a chunk with the text and one with the finish
//! reason per choice, then the usage chunk and `[DONE]` likewise.
//!
//! Folding applies each chunk's delta to its choice as OpenAI's SDKs accumulate
//! streams: strings append (but `role`, `id`, `type` and `index` are replaced, as some
//! servers repeat them), objects merge, list entries with an `index` merge into the
//! entry at that index (tool calls) and others append, `thinking_blocks` pieces
//! continue the open thinking block until its signature; the finish reason and the
//! other fields of a chunk take the latest value. The stream's usage chunk is the
//! answer's usage; without one (the client did not ask) the upstream's usage, which the
//! sidecar always reads, is written in OpenAI's shape. An error event, or a stream
//! whose pieces grow beyond the entry limit, folds to nothing.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value, json};

use super::replay::{Malformed, weight};
use crate::domain::Usage;
use crate::provider::openai_wire::WireUsage;

/// Which of the two OpenAI completion APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/chat/completions`: choices carry a `message` (a `delta` when streamed).
    Chat,
    /// `/v1/completions`: choices carry `text`.
    Text,
}

impl Kind {
    fn chunk_object(self) -> &'static str {
        match self {
            Kind::Chat => "chat.completion.chunk",
            Kind::Text => "text_completion",
        }
    }

    fn object(self) -> &'static str {
        match self {
            Kind::Chat => "chat.completion",
            Kind::Text => "text_completion",
        }
    }
}

/// The top-level fields every chunk repeats.
const META: [&str; 5] = [
    "id",
    "created",
    "model",
    "system_fingerprint",
    "service_tier",
];

/// `body`, a whole answer of `kind`, as the SSE stream OpenAI sends for it.
pub fn replay(
    kind: Kind,
    body: &Map<String, Value>,
    include_usage: bool,
) -> Result<Bytes, Malformed> {
    let choices = body
        .get("choices")
        .and_then(Value::as_array)
        .ok_or(Malformed("an answer without choices"))?;
    let mut head = Map::new();
    for field in META {
        if let Some(v) = body.get(field).filter(|v| !v.is_null()) {
            head.insert(field.to_owned(), v.clone());
        }
    }
    head.insert("object".into(), kind.chunk_object().into());
    let mut out = BytesMut::new();
    let mut chunk = |choice: Value| {
        let mut c = head.clone();
        c.insert("choices".into(), Value::Array(vec![choice]));
        event(&mut out, &Value::Object(c));
    };
    for (i, choice) in choices.iter().enumerate() {
        let index = choice.get("index").cloned().unwrap_or_else(|| i.into());
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        let logprobs = choice.get("logprobs").cloned().unwrap_or(Value::Null);
        match kind {
            Kind::Chat => {
                let message = choice
                    .get("message")
                    .and_then(Value::as_object)
                    .ok_or(Malformed("a choice without a message"))?;
                let piece = |delta: Value, logprobs: Value, finish: Value| json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish});
                let role = message.get("role").cloned().unwrap_or("assistant".into());
                chunk(piece(
                    json!({"role": role, "content": ""}),
                    Value::Null,
                    Value::Null,
                ));
                let mut rest: Map<String, Value> = message
                    .iter()
                    .filter(|(k, v)| !v.is_null() && !matches!(k.as_str(), "role" | "tool_calls"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if rest.get("content").and_then(Value::as_str) == Some("") {
                    rest.remove("content");
                }
                if !rest.is_empty() || !logprobs.is_null() {
                    chunk(piece(Value::Object(rest), logprobs, Value::Null));
                }
                let calls = message.get("tool_calls").and_then(Value::as_array);
                for (j, call) in calls.into_iter().flatten().enumerate() {
                    let mut call = call.clone();
                    if let Some(call) = call.as_object_mut() {
                        call.insert("index".into(), j.into());
                    }
                    chunk(piece(
                        json!({"tool_calls": [call]}),
                        Value::Null,
                        Value::Null,
                    ));
                }
                chunk(piece(json!({}), Value::Null, finish));
            }
            Kind::Text => {
                let text = choice.get("text").cloned().unwrap_or("".into());
                let piece = |text: Value, logprobs: Value, finish: Value| json!({"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish});
                chunk(piece(text, logprobs, Value::Null));
                chunk(piece("".into(), Value::Null, finish));
            }
        }
    }
    if include_usage && let Some(usage) = body.get("usage").filter(|u| u.is_object()) {
        let mut c = head.clone();
        c.insert("choices".into(), Value::Array(Vec::new()));
        c.insert("usage".into(), usage.clone());
        event(&mut out, &Value::Object(c));
    }
    out.put_slice(b"data: [DONE]\n\n");
    Ok(out.freeze())
}

fn event(out: &mut BytesMut, value: &Value) {
    out.put_slice(b"data: ");
    // Serializing a Value into memory cannot fail.
    let _ = serde_json::to_writer(out.writer(), value);
    out.put_slice(b"\n\n");
}

/// A stream of `kind` being folded into its whole answer.
#[derive(Debug)]
pub struct Collect {
    kind: Kind,
    head: Map<String, Value>,
    /// Choices by index: their accumulated fields (`message`, or `text`), `logprobs`
    /// and `finish_reason`.
    choices: Vec<(Value, Map<String, Value>)>,
    usage: Option<Value>,
    done: bool,
}

impl Collect {
    /// An empty fold.
    pub fn new(kind: Kind) -> Self {
        Collect {
            kind,
            head: Map::new(),
            choices: Vec::new(),
            usage: None,
            done: false,
        }
    }

    /// Folds one event's data in; answers the bytes it added.
    pub fn event(&mut self, data: &str) -> Result<u64, Malformed> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(0);
        }
        let Value::Object(mut chunk) = serde_json::from_str::<Value>(data)
            .map_err(|_| Malformed("a chunk that is not JSON"))?
        else {
            return Err(Malformed("a chunk that is not an object"));
        };
        if chunk.contains_key("error") {
            return Err(Malformed("an error in the stream"));
        }
        let mut added = 0;
        if let Some(usage) = chunk.remove("usage").filter(Value::is_object) {
            self.usage = Some(usage);
        }
        let choices = match chunk.remove("choices") {
            Some(Value::Array(choices)) => choices,
            _ => Vec::new(),
        };
        for field in META {
            if let Some(v) = chunk.remove(field).filter(|v| !v.is_null()) {
                self.head.insert(field.to_owned(), v);
            }
        }
        for choice in choices {
            let Value::Object(mut choice) = choice else {
                return Err(Malformed("a choice that is not an object"));
            };
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let index = usize::try_from(index).map_err(|_| Malformed("a choice index"))?;
            // Choices arrive in order; an index far ahead is not a stream to keep.
            if index > self.choices.len() {
                return Err(Malformed("a choice index out of order"));
            }
            if index == self.choices.len() {
                self.choices.push((index.into(), Map::new()));
                // What an empty choice takes, so a stream of new choices is bounded too.
                added += 64;
            }
            let (_, acc) = &mut self.choices[index];
            if let Some(finish) = choice.remove("finish_reason").filter(|v| !v.is_null()) {
                acc.insert("finish_reason".into(), finish);
            }
            if let Some(logprobs) = choice.remove("logprobs").filter(|v| !v.is_null()) {
                added += weight(&logprobs);
                accumulate_into(acc, "logprobs", logprobs);
            }
            match self.kind {
                Kind::Chat => {
                    if let Some(delta) = choice.remove("delta").filter(Value::is_object) {
                        added += weight(&delta);
                        accumulate_into(acc, "message", delta);
                    }
                }
                Kind::Text => {
                    if let Some(text) = choice.remove("text").filter(Value::is_string) {
                        added += weight(&text);
                        accumulate_into(acc, "text", text);
                    }
                }
            }
        }
        Ok(added)
    }

    /// The whole answer, if the stream ended with `[DONE]` and every choice finished;
    /// `usage` is the upstream's, used when the stream carried no usage chunk.
    pub fn finish(self, usage: Option<Usage>) -> Option<Bytes> {
        if !self.done || self.choices.is_empty() {
            return None;
        }
        let mut body = self.head;
        body.insert("object".into(), self.kind.object().into());
        let mut choices = Vec::with_capacity(self.choices.len());
        for (index, mut acc) in self.choices {
            let finish = acc.remove("finish_reason")?;
            let mut choice = Map::new();
            choice.insert("index".into(), index);
            match self.kind {
                Kind::Chat => {
                    let mut message = match acc.remove("message") {
                        Some(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    message.entry("role").or_insert_with(|| "assistant".into());
                    message.entry("content").or_insert(Value::Null);
                    if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
                        for call in calls.iter_mut().filter_map(Value::as_object_mut) {
                            call.remove("index");
                        }
                    }
                    choice.insert("message".into(), Value::Object(message));
                }
                Kind::Text => {
                    let text = acc.remove("text").unwrap_or("".into());
                    choice.insert("text".into(), text);
                }
            }
            choice.insert(
                "logprobs".into(),
                acc.remove("logprobs").unwrap_or(Value::Null),
            );
            choice.insert("finish_reason".into(), finish);
            choices.push(Value::Object(choice));
        }
        body.insert("choices".into(), Value::Array(choices));
        let usage = self
            .usage
            .or_else(|| usage.and_then(|u| serde_json::to_value(WireUsage::from(u)).ok()));
        if let Some(usage) = usage {
            body.insert("usage".into(), usage);
        }
        serde_json::to_vec(&body).ok().map(Bytes::from)
    }
}

/// Accumulates `delta` into `acc[field]`.
fn accumulate_into(acc: &mut Map<String, Value>, field: &str, delta: Value) {
    match acc.get_mut(field) {
        Some(existing) => accumulate(existing, delta, field),
        None => {
            acc.insert(field.to_owned(), delta);
        }
    }
}

/// Applies `delta` to `acc` as OpenAI's SDKs accumulate stream deltas.
fn accumulate(acc: &mut Value, delta: Value, field: &str) {
    match (acc, delta) {
        (_, Value::Null) => {}
        (acc @ Value::Null, delta) => *acc = delta,
        (Value::String(a), Value::String(d))
            if !matches!(field, "index" | "type" | "id" | "role") =>
        {
            a.push_str(&d);
        }
        (Value::Object(a), Value::Object(d)) => {
            for (k, v) in d {
                accumulate_into(a, &k, v);
            }
        }
        (Value::Array(a), Value::Array(d)) if field == "thinking_blocks" => {
            for piece in d {
                thinking_piece(a, piece);
            }
        }
        (Value::Array(a), Value::Array(d)) => {
            for item in d {
                match item.get("index").and_then(Value::as_u64) {
                    Some(i) => match a
                        .iter_mut()
                        .find(|e| e.get("index").and_then(Value::as_u64) == Some(i))
                    {
                        Some(entry) => accumulate(entry, item, ""),
                        None => a.push(item),
                    },
                    None => a.push(item),
                }
            }
        }
        (acc, delta) => *acc = delta,
    }
}

/// One `thinking_blocks` piece: text or a signature continuing the open thinking block
/// (one without a signature yet), else a block of its own.
fn thinking_piece(blocks: &mut Vec<Value>, piece: Value) {
    let kind = piece
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("thinking");
    let open = blocks.last_mut().filter(|b| {
        b.get("type").and_then(Value::as_str).unwrap_or("thinking") == "thinking"
            && b.get("signature")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
    });
    match (kind, open) {
        ("thinking", Some(open)) => {
            if let Value::Object(piece) = piece {
                for (k, v) in piece {
                    match (k.as_str(), open.get_mut(&k)) {
                        ("thinking", Some(Value::String(text))) => {
                            text.push_str(v.as_str().unwrap_or(""));
                        }
                        ("type", _) => {}
                        _ => {
                            if let Some(open) = open.as_object_mut() {
                                open.insert(k, v);
                            }
                        }
                    }
                }
            }
        }
        _ => blocks.push(piece),
    }
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;

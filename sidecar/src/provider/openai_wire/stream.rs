//! Streamed answers: `chat.completion.chunk` objects and the SSE framing around them.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use super::{ExtraContent, ThinkingBlock, WireUsage, unix_now};
use crate::domain::Usage;

/// `chat.completion.chunk`.
#[derive(Debug, Serialize)]
pub struct ChatChunk<'a> {
    /// Response id, the same on every chunk.
    pub id: &'a str,
    /// Always `chat.completion.chunk`.
    pub object: &'static str,
    /// Unix seconds, the same on every chunk.
    pub created: u64,
    /// The upstream model.
    pub model: &'a str,
    /// Zero or one choice delta.
    pub choices: Vec<ChunkChoice>,
    /// Only on the final usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

/// A choice delta.
#[derive(Debug, Default, Serialize)]
pub struct ChunkChoice {
    /// Position.
    pub index: u32,
    /// What is new.
    pub delta: Delta,
    /// Always null.
    pub logprobs: Option<()>,
    /// Set on the last content chunk.
    pub finish_reason: Option<&'static str>,
}

/// What a chunk adds.
#[derive(Debug, Default, Serialize)]
pub struct Delta {
    /// `assistant` on the first chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// Text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Reasoning text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Signed reasoning, a piece at a time: a signature ending the reasoning text
    /// streamed before it, or a redacted block (see [`ThinkingBlock`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<ThinkingBlock<'static>>,
    /// Tool call pieces.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCallDelta>,
}

/// A piece of a streamed tool call: the first carries id and name, later ones more
/// argument text, all under the call's `index`.
#[derive(Debug, Serialize)]
pub struct ToolCallDelta {
    /// Which call this piece belongs to (0, 1, ... in order of appearance).
    pub index: u32,
    /// Call id, on the first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `function`, on the first piece.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// Name and argument text.
    pub function: FunctionDelta,
    /// What the provider needs back with the call, on the first piece (see
    /// [`ToolCallOut::extra_content`](super::ToolCallOut::extra_content)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_content: Option<ExtraContent>,
}

/// The function piece of a tool call delta.
#[derive(Debug, Default, Serialize)]
pub struct FunctionDelta {
    /// Name, on the first piece.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// More argument text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl Delta {
    /// The first delta of a choice: the role and empty content.
    pub fn role() -> Delta {
        Delta {
            role: Some("assistant"),
            content: Some(String::new()),
            ..Delta::default()
        }
    }

    /// More text.
    pub fn content(text: String) -> Delta {
        Delta {
            content: Some(text),
            ..Delta::default()
        }
    }

    /// More reasoning text.
    pub fn reasoning(text: String) -> Delta {
        Delta {
            reasoning_content: Some(text),
            ..Delta::default()
        }
    }

    /// A piece of signed reasoning.
    pub fn thinking(block: ThinkingBlock<'static>) -> Delta {
        Delta {
            thinking_blocks: vec![block],
            ..Delta::default()
        }
    }

    /// The first piece of tool call `index`: its id, function name and first argument
    /// text.
    pub fn tool_call(
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    ) -> Delta {
        Delta::tool_piece(ToolCallDelta {
            index,
            id,
            kind: Some("function"),
            function: FunctionDelta {
                name,
                arguments: Some(arguments),
            },
            extra_content: None,
        })
    }

    /// The delta with `extra` on its tool call pieces.
    pub fn with_extra(mut self, extra: Option<ExtraContent>) -> Delta {
        for piece in &mut self.tool_calls {
            piece.extra_content.clone_from(&extra);
        }
        self
    }

    /// More argument text of tool call `index`.
    pub fn tool_arguments(index: u32, arguments: String) -> Delta {
        Delta::tool_piece(ToolCallDelta {
            index,
            id: None,
            kind: None,
            function: FunctionDelta {
                name: None,
                arguments: Some(arguments),
            },
            extra_content: None,
        })
    }

    fn tool_piece(piece: ToolCallDelta) -> Delta {
        Delta {
            tool_calls: vec![piece],
            ..Delta::default()
        }
    }
}

/// The OpenAI index of each tool call of a stream, by the upstream's key for it (a
/// content block or call index): calls are numbered 0, 1, ... as they start.
#[derive(Debug)]
pub struct ToolIndexes<K>(Vec<(K, u32)>);

impl<K> Default for ToolIndexes<K> {
    fn default() -> Self {
        ToolIndexes(Vec::new())
    }
}

impl<K: PartialEq> ToolIndexes<K> {
    /// Numbers a new call.
    pub fn open(&mut self, key: K) -> u32 {
        let index = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0.push((key, index));
        index
    }

    /// The index of a call that started.
    pub fn get(&self, key: &K) -> Option<u32> {
        self.0.iter().find(|(k, _)| k == key).map(|&(_, i)| i)
    }

    /// Whether no call started.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Writes the chunks of one stream, keeping its id, creation time and model.
#[derive(Debug)]
pub struct ChunkWriter {
    /// Response id.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// Model.
    pub model: String,
    /// Whether the role chunk of choice 0 was written.
    role_sent: bool,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":`, the same
    /// on every chunk: rendered once, so a chunk serializes only its delta.
    prefix: Bytes,
}

impl ChunkWriter {
    /// A writer for a new stream.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        let (id, created, model) = (id.into(), unix_now(), model.into());
        let mut prefix = BytesMut::new();
        prefix.put_slice(b"data: {\"id\":");
        json_string(&mut prefix, &id);
        prefix.put_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        prefix.put_slice(created.to_string().as_bytes());
        prefix.put_slice(b",\"model\":");
        json_string(&mut prefix, &model);
        prefix.put_slice(b",\"choices\":[{\"index\":");
        ChunkWriter {
            id,
            created,
            model,
            role_sent: false,
            prefix: prefix.freeze(),
        }
    }

    /// Writes a chunk with choice 0.
    pub fn choice(&self, out: &mut BytesMut, delta: Delta, finish_reason: Option<&'static str>) {
        self.choice_at(out, 0, delta, finish_reason);
    }

    /// Writes a chunk with choice `index`.
    pub fn choice_at(
        &self,
        out: &mut BytesMut,
        index: u32,
        delta: Delta,
        finish_reason: Option<&'static str>,
    ) {
        // The bytes serde writes for `ChatChunk` with one choice, the fixed part copied.
        out.put_slice(&self.prefix);
        // Writing a number into memory cannot fail.
        let _ = write!(out, "{index}");
        out.put_slice(b",\"delta\":");
        // Serializing our own plain structs into memory cannot fail.
        let _ = serde_json::to_writer((&mut *out).writer(), &delta);
        out.put_slice(b",\"logprobs\":null,\"finish_reason\":");
        match finish_reason {
            Some(reason) => json_string(out, reason),
            None => out.put_slice(b"null"),
        }
        out.put_slice(b"}]}\n\n");
    }

    /// Writes the role chunk of choice 0.
    pub fn role(&mut self, out: &mut BytesMut) {
        self.role_sent = true;
        self.choice(out, Delta::role(), None);
    }

    /// Writes a chunk with choice 0, preceded by the role chunk if none was written: a
    /// stream that holds its role chunk back until the first content can still fail
    /// over before a byte reached the client.
    pub fn emit(&mut self, out: &mut BytesMut, delta: Delta, finish_reason: Option<&'static str>) {
        if !self.role_sent {
            self.role(out);
        }
        self.choice(out, delta, finish_reason);
    }

    /// Writes the final usage chunk (no choices).
    pub fn usage(&self, out: &mut BytesMut, usage: Usage) {
        let usage = WireUsage::from(usage);
        let chunk = ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: Vec::new(),
            usage: Some(usage),
        };
        write_event(out, &chunk);
    }

    /// Writes the usage chunk when the client asked for it, then `[DONE]`.
    pub fn end(&self, out: &mut BytesMut, usage: Option<Usage>) {
        if let Some(usage) = usage {
            self.usage(out, usage);
        }
        write_done(out);
    }
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut BytesMut, text: &str) {
    // Serializing a string into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), text);
}

/// Appends `data: {json}\n\n`.
pub fn write_event(out: &mut BytesMut, value: &impl Serialize) {
    out.put_slice(b"data: ");
    // Serializing our own plain structs into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), value);
    out.put_slice(b"\n\n");
}

/// Appends the stream's end marker.
pub fn write_done(out: &mut BytesMut) {
    out.put_slice(b"data: [DONE]\n\n");
}

/// Takes what was written, if anything.
pub fn take(out: &mut BytesMut) -> Option<Bytes> {
    (!out.is_empty()).then(|| out.split().freeze())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn chunks_written_from_the_rendered_prefix_are_the_whole_chunk() {
        let writer = ChunkWriter::new("msg_\"1\"\n", "claude-\u{e9}");
        let cases = [
            (0, Delta::role(), None),
            (0, Delta::content("a \"quote\" and \\ \u{1}".into()), None),
            (
                2,
                Delta::tool_call(1, Some("call_1".into()), Some("f".into()), "{".into()),
                None,
            ),
            (0, Delta::tool_arguments(1, "}".into()), None),
            (0, Delta::default(), Some("stop")),
        ];
        for (index, delta, finish) in cases {
            let serialized = serde_json::to_value(&delta).unwrap();
            let mut fast = BytesMut::new();
            writer.choice_at(&mut fast, index, delta, finish);
            let expected = json!({
                "id": writer.id, "object": "chat.completion.chunk", "created": writer.created,
                "model": writer.model,
                "choices": [{"index": index, "delta": serialized, "logprobs": null,
                             "finish_reason": finish}]
            });
            let text = std::str::from_utf8(&fast).unwrap();
            let data = text
                .strip_prefix("data: ")
                .unwrap()
                .strip_suffix("\n\n")
                .unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(data).unwrap(),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn chunks_and_usage_render_like_openai() {
        let w = ChunkWriter::new("id1", "m");
        let mut out = BytesMut::new();
        w.choice(
            &mut out,
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        );
        w.usage(
            &mut out,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                cached_tokens: 1,
                ..Usage::default()
            },
        );
        write_done(&mut out);
        let text = String::from_utf8(out.to_vec()).unwrap();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        let first: Value = serde_json::from_str(&events[0][6..]).unwrap();
        assert_eq!(
            first["choices"][0]["delta"],
            json!({"role": "assistant", "content": ""})
        );
        assert!(first["choices"][0]["finish_reason"].is_null());
        assert!(first.get("usage").is_none());
        let usage: Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["total_tokens"], 7);
        assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        assert_eq!(events[2], "data: [DONE]");
    }
}

//! A chat stream restated as Anthropic's Messages events.
//!
//! The provider's chat translator (`inner`) writes whole OpenAI SSE events; they are
//! parsed as they come (bounded by the SSE parser's event limit) and drive a small state
//! machine with at most one content block open:
//!
//! - the first chunk opens the message: `message_start` (empty content, usage still 0)
//!   and one `ping`;
//! - `content` (and `refusal`) opens a `text` block, `reasoning_content` or a
//!   `thinking_blocks` piece's text a `thinking` block, a piece's signature becomes a
//!   `signature_delta` that ends its thinking block (more reasoning opens a new one), a
//!   `redacted_thinking` piece is a block of its own, opened and closed at once; a delta
//!   whose `thinking_blocks` carry text is read from them alone, since providers also
//!   repeat that text in `reasoning_content`;
//! - a tool call's first piece (a new `index`, or a new `id`) opens a `tool_use` block
//!   with `input: {}`, and its argument text streams as `input_json_delta`s; a piece of
//!   a call that was already closed cannot be placed and is refused as malformed;
//! - opening a block of another kind closes the one open (`content_block_stop`), and
//!   block indexes count up from 0;
//! - the end (the usage-only chunk after the finish reason, `[DONE]`, or the upstream's
//!   end) closes the open block and writes `message_delta` (stop reason and the whole
//!   usage) and `message_stop`. A stream that ends without a finish reason was cut off
//!   and is refused as malformed.

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::reply::client_model;
use super::wire::{self, MessageUsage, Str, ThinkingKind, ThinkingPiece};
use crate::domain::{CallView, Usage};
use crate::provider::openai_wire::{UsageIn, take};
use crate::provider::sse::{Event, SseParser};
use crate::provider::{StreamError, StreamTranslator};

/// A chat stream restated as Messages events.
pub struct Stream {
    inner: Box<dyn StreamTranslator>,
    parser: SseParser,
    /// Parsed events, kept between batches so the buffer is reused.
    events: Vec<Event>,
    out: BytesMut,
    state: State,
}

impl Stream {
    /// Wraps the provider's chat stream translator.
    pub fn new(call: &CallView<'_>, inner: Box<dyn StreamTranslator>) -> Self {
        Stream {
            inner,
            parser: SseParser::default(),
            events: Vec::new(),
            out: BytesMut::new(),
            state: State {
                model: client_model(call).to_owned(),
                started: false,
                open: Open::None,
                blocks: 0,
                last_tool: None,
                tool_id: String::new(),
                called_tools: false,
                finish: None,
                usage: None,
                ended: false,
            },
        }
    }

    /// Parses and translates a batch of the inner stream's events.
    fn translate(&mut self, batch: &[u8]) -> Result<(), StreamError> {
        self.parser.push(batch, &mut self.events)?;
        let inner = self.inner.as_ref();
        let result = self
            .events
            .iter()
            .try_for_each(|event| self.state.handle(event, inner, &mut self.out));
        self.events.clear();
        result
    }
}

impl StreamTranslator for Stream {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        if let Some(batch) = self.inner.feed(chunk)? {
            self.translate(&batch)?;
        }
        Ok(take(&mut self.out))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        if let Some(batch) = self.inner.finish()? {
            self.translate(&batch)?;
        }
        if let Some(event) = self.parser.finish()? {
            self.state
                .handle(&event, self.inner.as_ref(), &mut self.out)?;
        }
        if !self.state.ended {
            if self.state.finish.is_none() {
                return Err(StreamError::malformed(
                    "the stream ended without a finish_reason",
                ));
            }
            self.state.end(self.inner.as_ref(), &mut self.out);
        }
        Ok(take(&mut self.out))
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

/// The content block open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Open {
    None,
    Text,
    /// `signed`: its signature came, so more reasoning is another block.
    Thinking {
        signed: bool,
    },
    /// The chat index of the call.
    Tool(u32),
    /// Redacted thinking, open only between its start and stop, written together.
    Redacted,
}

/// Where one Messages stream is.
struct State {
    /// The model the client asked for.
    model: String,
    /// Whether `message_start` was written.
    started: bool,
    open: Open,
    /// Blocks opened so far: the index of the next, one past the open one's.
    blocks: u32,
    /// The highest chat index of a tool call opened.
    last_tool: Option<u32>,
    /// The id of the open tool call, to tell a new call that reuses an index.
    tool_id: String,
    called_tools: bool,
    /// The chat finish reason, once it came.
    finish: Option<&'static str>,
    usage: Option<Usage>,
    /// Whether `message_stop` was written.
    ended: bool,
}

/// The parts of a `chat.completion.chunk` read.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default, borrow)]
    choices: Option<Vec<ChoiceIn<'a>>>,
    #[serde(default)]
    usage: Option<UsageIn>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(default)]
    index: u32,
    #[serde(default, borrow)]
    delta: Option<DeltaIn<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct DeltaIn<'a> {
    #[serde(borrow)]
    content: Option<Str<'a>>,
    #[serde(borrow)]
    refusal: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Str<'a>>,
    /// What some OpenAI-compatible servers (vLLM, OpenRouter) call `reasoning_content`.
    #[serde(borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(borrow)]
    thinking_blocks: Option<Vec<ThinkingPiece<'a>>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolPiece<'a>>>,
}

#[derive(Deserialize)]
struct ToolPiece<'a> {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default, borrow)]
    function: Option<FunctionPiece<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct FunctionPiece<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
}

/// `message_start.message`.
#[derive(Serialize)]
struct StartMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: MessageUsage,
}

const BLOCK_START: &[u8] =
    b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":";
const BLOCK_DELTA: &[u8] =
    b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":";
const BLOCK_STOP: &[u8] =
    b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":";
const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// The `"delta":{"type":…,` heads of the deltas, up to the value's key.
const TEXT_DELTA: &[u8] = b"\"text_delta\",\"text\":";
const THINKING_DELTA: &[u8] = b"\"thinking_delta\",\"thinking\":";
const SIGNATURE_DELTA: &[u8] = b"\"signature_delta\",\"signature\":";
const JSON_DELTA: &[u8] = b"\"input_json_delta\",\"partial_json\":";

/// Appends a number.
fn number(out: &mut BytesMut, n: u32) {
    // Writing a number into memory cannot fail.
    let _ = write!(out, "{n}");
}

/// Appends `text` as a JSON string.
fn json_string(out: &mut BytesMut, text: &str) {
    // Serializing a string into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), text);
}

/// Appends `event: NAME\ndata: JSON\n\n`.
fn write_event(out: &mut BytesMut, name: &str, data: &impl Serialize) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    // Serializing our own plain structs into memory cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), data);
    out.put_slice(b"\n\n");
}

impl State {
    /// Translates one event of the chat stream `inner` wrote.
    fn handle(
        &mut self,
        event: &Event,
        inner: &dyn StreamTranslator,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        let data = event.data.trim_ascii();
        if self.ended || data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            // A stream that ends here without its finish reason is refused by `finish`.
            if self.finish.is_some() {
                self.end(inner, out);
            }
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(StreamError::malformed)?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            // `{"error":{"message",...}}` as OpenAI writes it, or a bare message.
            let message = match error.get("message").unwrap_or(&error) {
                Value::String(message) => message.clone(),
                other => other.to_string(),
            };
            return Err(StreamError::upstream(format!(
                "The upstream stream reported an error: {message}"
            )));
        }
        if !self.started {
            self.start(out, chunk.id.as_ref().map(Str::as_str));
        }
        let usage_only = chunk.usage.is_some() && chunk.choices.as_ref().is_none_or(Vec::is_empty);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        // One choice is asked for; others a provider might add are not the answer.
        for choice in chunk.choices.iter().flatten().filter(|c| c.index == 0) {
            if let Some(delta) = &choice.delta {
                self.delta(delta, out)?;
            }
            // Some providers send an empty finish reason on chunks that finish nothing.
            let reason = choice
                .finish_reason
                .as_ref()
                .filter(|r| !r.as_str().is_empty());
            if let Some(reason) = reason {
                self.finish = Some(match reason.as_str() {
                    "length" => "length",
                    "content_filter" => "content_filter",
                    "tool_calls" | "function_call" => "tool_calls",
                    _ => "stop",
                });
            }
        }
        // The usage-only chunk is the last the chat stream sends before `[DONE]`.
        if usage_only && self.finish.is_some() {
            self.end(inner, out);
        }
        Ok(())
    }

    /// `message_start` and a `ping`.
    fn start(&mut self, out: &mut BytesMut, chat_id: Option<&str>) {
        self.started = true;
        let id = wire::message_id(chat_id);
        let message = StartMessage {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: MessageUsage::default(),
        };
        #[derive(Serialize)]
        struct MessageStart<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            message: StartMessage<'a>,
        }
        write_event(
            out,
            "message_start",
            &MessageStart {
                kind: "message_start",
                message,
            },
        );
        out.put_slice(PING);
    }

    /// One delta: thinking first, then text, then tool calls, the order a provider
    /// that puts more than one in a delta produced them in.
    fn delta(&mut self, delta: &DeltaIn<'_>, out: &mut BytesMut) -> Result<(), StreamError> {
        let pieces = delta.thinking_blocks.as_deref().unwrap_or_default();
        let pieces_say = pieces.iter().any(|p| !wire::text(&p.thinking).is_empty());
        if !pieces_say {
            let reasoning = delta
                .reasoning_content
                .as_ref()
                .or(delta.reasoning.as_ref());
            self.thinking(reasoning.map_or("", wire::Str::as_str), out);
        }
        for piece in pieces {
            match piece.kind() {
                ThinkingKind::Thinking => {
                    self.thinking(wire::text(&piece.thinking), out);
                    self.signature(wire::text(&piece.signature), out);
                }
                ThinkingKind::Redacted => self.redacted(wire::text(&piece.data), out),
                ThinkingKind::Other => {}
            }
        }
        self.text(wire::text(&delta.content), out);
        self.text(wire::text(&delta.refusal), out);
        for piece in delta.tool_calls.iter().flatten() {
            self.tool_piece(piece, out)?;
        }
        Ok(())
    }

    fn text(&mut self, text: &str, out: &mut BytesMut) {
        if text.is_empty() {
            return;
        }
        if self.open != Open::Text {
            self.open_block(out, Open::Text, |out| {
                out.put_slice(b"{\"type\":\"text\",\"text\":\"\"}");
            });
        }
        self.block_delta(out, TEXT_DELTA, text);
    }

    fn thinking(&mut self, text: &str, out: &mut BytesMut) {
        if text.is_empty() {
            return;
        }
        self.open_thinking(out);
        self.block_delta(out, THINKING_DELTA, text);
    }

    fn signature(&mut self, signature: &str, out: &mut BytesMut) {
        if signature.is_empty() {
            return;
        }
        self.open_thinking(out);
        self.block_delta(out, SIGNATURE_DELTA, signature);
        self.open = Open::Thinking { signed: true };
    }

    /// Opens a thinking block unless one still unsigned is open.
    fn open_thinking(&mut self, out: &mut BytesMut) {
        if self.open != (Open::Thinking { signed: false }) {
            self.open_block(out, Open::Thinking { signed: false }, |out| {
                out.put_slice(b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}");
            });
        }
    }

    /// Redacted thinking is whole in its start event.
    fn redacted(&mut self, data: &str, out: &mut BytesMut) {
        self.open_block(out, Open::Redacted, |out| {
            out.put_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
            json_string(out, data);
            out.put_slice(b"}");
        });
        self.stop_block(out);
    }

    fn tool_piece(&mut self, piece: &ToolPiece<'_>, out: &mut BytesMut) -> Result<(), StreamError> {
        let open = match self.open {
            Open::Tool(index) => Some(index),
            _ => None,
        };
        let id = piece
            .id
            .as_ref()
            .map(Str::as_str)
            .filter(|id| !id.is_empty());
        // A piece without an index continues the open call, or starts the next.
        let index = piece
            .index
            .or(open)
            .unwrap_or_else(|| self.last_tool.map_or(0, |last| last.saturating_add(1)));
        let same = open == Some(index) && id.is_none_or(|id| id == self.tool_id);
        let function = piece.function.as_ref();
        if !same {
            if id.is_none() && self.last_tool.is_some_and(|last| index <= last) {
                return Err(StreamError::malformed(format!(
                    "tool call {index} continued after another call began"
                )));
            }
            self.tool_id.clear();
            match id {
                Some(id) => self.tool_id.push_str(id),
                None => self.tool_id.push_str(&wire::tool_use_id()),
            }
            let name = function.map_or("", |f| wire::text(&f.name));
            let tool_id = std::mem::take(&mut self.tool_id);
            self.open_block(out, Open::Tool(index), |out| {
                out.put_slice(b"{\"type\":\"tool_use\",\"id\":");
                json_string(out, &tool_id);
                out.put_slice(b",\"name\":");
                json_string(out, name);
                out.put_slice(b",\"input\":{}}");
            });
            self.tool_id = tool_id;
            self.last_tool = Some(self.last_tool.map_or(index, |last| last.max(index)));
            self.called_tools = true;
        }
        let arguments = function.map_or("", |f| wire::text(&f.arguments));
        if !arguments.is_empty() {
            self.block_delta(out, JSON_DELTA, arguments);
        }
        Ok(())
    }

    /// Closes the open block and opens `open`, whose `content_block` `write` appends.
    fn open_block(&mut self, out: &mut BytesMut, open: Open, write: impl FnOnce(&mut BytesMut)) {
        self.stop_block(out);
        out.put_slice(BLOCK_START);
        number(out, self.blocks);
        out.put_slice(b",\"content_block\":");
        write(out);
        out.put_slice(b"}\n\n");
        self.blocks = self.blocks.saturating_add(1);
        self.open = open;
    }

    /// A delta of the open block: `head` is its type and key, `value` the text.
    fn block_delta(&mut self, out: &mut BytesMut, head: &[u8], value: &str) {
        out.put_slice(BLOCK_DELTA);
        number(out, self.blocks.saturating_sub(1));
        out.put_slice(b",\"delta\":{\"type\":");
        out.put_slice(head);
        json_string(out, value);
        out.put_slice(b"}}\n\n");
    }

    /// `content_block_stop` of the open block, if one is open.
    fn stop_block(&mut self, out: &mut BytesMut) {
        if self.open == Open::None {
            return;
        }
        out.put_slice(BLOCK_STOP);
        number(out, self.blocks.saturating_sub(1));
        out.put_slice(b"}\n\n");
        self.open = Open::None;
    }

    /// Closes the open block and writes `message_delta` and `message_stop`, with the
    /// usage the stream's usage chunk reported, else what `inner` metered.
    fn end(&mut self, inner: &dyn StreamTranslator, out: &mut BytesMut) {
        if !self.started {
            self.start(out, None);
        }
        self.stop_block(out);
        self.ended = true;
        #[derive(Serialize)]
        struct StopDelta {
            stop_reason: &'static str,
            stop_sequence: Option<()>,
        }
        #[derive(Serialize)]
        struct MessageDelta {
            #[serde(rename = "type")]
            kind: &'static str,
            delta: StopDelta,
            usage: MessageUsage,
        }
        let delta = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: wire::stop_reason(self.finish, self.called_tools),
                stop_sequence: None,
            },
            usage: MessageUsage::from(self.usage.or_else(|| inner.usage()).unwrap_or_default()),
        };
        write_event(out, "message_delta", &delta);
        out.put_slice(MESSAGE_STOP);
    }
}

//! Anthropic's streaming events → OpenAI chunks.
//!
//! A small state machine per stream: `message_start` opens the OpenAI stream (role
//! chunk), text/thinking deltas become `content`/`reasoning_content` deltas (a thinking
//! block's `signature_delta` a `thinking_blocks` delta with empty text and the
//! signature, a redacted thinking block a `thinking_blocks` delta with its data), each
//! `tool_use` block becomes a tool call with the next OpenAI index (its id and name on the
//! first delta, `input_json_delta` pieces as argument text under the same index),
//! `message_delta` carries the finish reason, and `message_stop` ends with the usage
//! chunk (when the client asked for it) and `[DONE]`. A stream that ends without
//! `message_stop` was cut off and is reported as an error, never passed off as complete.

use std::borrow::Cow;

use bytes::BytesMut;

use super::wire::{AnthropicUsage, BlockDelta, StartBlock, StreamEvent, finish_reason};
use crate::domain::{CallView, Usage};
use crate::provider::StreamError;
use crate::provider::json_mode::{JSON_TOOL, json_mode};
use crate::provider::openai_wire::{ChunkWriter, Delta, ThinkingBlock, ToolIndexes};
use crate::provider::sse::Event;
use crate::provider::sse_translator::{SseHandler, SseTranslator};

/// A translator for `call`'s stream.
pub fn translator(call: &CallView<'_>) -> SseTranslator<Handler> {
    SseTranslator::new(Handler {
        writer: None,
        include_usage: call.wants_stream_usage(),
        json: json_mode(call),
        json_block: None,
        tools: ToolIndexes::default(),
        usage: AnthropicUsage::default(),
        stopped: false,
    })
}

/// Translates the events of one Anthropic stream.
pub struct Handler {
    writer: Option<ChunkWriter>,
    include_usage: bool,
    json: bool,
    /// The content block carrying a JSON-mode answer, streamed as content.
    json_block: Option<usize>,
    /// Anthropic block index → OpenAI tool call index.
    tools: ToolIndexes<usize>,
    usage: AnthropicUsage,
    stopped: bool,
}

impl Handler {
    fn writer(&mut self) -> Result<&mut ChunkWriter, StreamError> {
        self.writer
            .as_mut()
            .ok_or_else(|| StreamError::malformed("content arrived before message_start"))
    }

    fn delta(&mut self, out: &mut BytesMut, delta: Delta) -> Result<(), StreamError> {
        self.writer()?.choice(out, delta, None);
        Ok(())
    }
}

impl SseHandler for Handler {
    fn handle(&mut self, event: &Event, out: &mut BytesMut) -> Result<(), StreamError> {
        let parsed: StreamEvent =
            serde_json::from_str(&event.data).map_err(StreamError::malformed)?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.usage = message.usage;
                let mut writer = ChunkWriter::new(message.id, message.model);
                writer.role(out);
                self.writer = Some(writer);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartBlock::Text { text } if !text.is_empty() => {
                    self.delta(out, Delta::content(text))?;
                }
                StartBlock::Thinking { thinking } if !thinking.is_empty() => {
                    self.delta(out, Delta::reasoning(thinking))?;
                }
                StartBlock::RedactedThinking { data } => {
                    let block = ThinkingBlock::RedactedThinking {
                        data: Cow::Owned(data),
                    };
                    self.delta(out, Delta::thinking(block))?;
                }
                StartBlock::ToolUse { name, .. } if self.json && name == JSON_TOOL => {
                    self.json_block = Some(index);
                }
                StartBlock::ToolUse { id, name } => {
                    let tool = self.tools.open(index);
                    self.delta(
                        out,
                        Delta::tool_call(tool, Some(id), Some(name), String::new()),
                    )?;
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.delta(out, Delta::content(text))?,
                BlockDelta::ThinkingDelta { thinking } => {
                    self.delta(out, Delta::reasoning(thinking))?;
                }
                BlockDelta::SignatureDelta { signature } => {
                    // The signature ends its block: the block's text is the reasoning
                    // streamed since the previous block.
                    let block = ThinkingBlock::Thinking {
                        thinking: Cow::Borrowed(""),
                        signature: Cow::Owned(signature),
                    };
                    self.delta(out, Delta::thinking(block))?;
                }
                BlockDelta::InputJsonDelta { partial_json } if self.json_block == Some(index) => {
                    self.delta(out, Delta::content(partial_json))?;
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let Some(tool) = self.tools.get(&index) else {
                        return Err(StreamError::malformed(format!(
                            "input_json_delta for unknown block {index}"
                        )));
                    };
                    self.delta(out, Delta::tool_arguments(tool, partial_json))?;
                }
                BlockDelta::Other => {}
            },
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    if let Some(n) = u.output_tokens {
                        self.usage.output_tokens = n;
                    }
                    if let Some(n) = u.input_tokens {
                        self.usage.input_tokens = n;
                    }
                    if u.cache_creation_input_tokens.is_some() {
                        self.usage.cache_write_input_tokens = u.cache_creation_input_tokens;
                    }
                    if u.cache_read_input_tokens.is_some() {
                        self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                    }
                }
                let mut finish = finish_reason(delta.stop_reason.as_deref());
                if self.json && finish == "tool_calls" && self.tools.is_empty() {
                    finish = "stop";
                }
                self.writer()?.choice(out, Delta::default(), Some(finish));
            }
            StreamEvent::MessageStop => {
                let usage = self.include_usage.then(|| self.usage.to_usage());
                self.writer()?.end(out, usage);
                self.stopped = true;
            }
            StreamEvent::Error { error } => {
                return Err(StreamError::upstream(format!(
                    "Anthropic stream error ({}): {}",
                    error.kind, error.message
                )));
            }
            StreamEvent::ContentBlockStop { .. } | StreamEvent::Ping | StreamEvent::Other => {}
        }
        Ok(())
    }

    const LAST: &'static str = "message_stop";

    fn complete(&self) -> bool {
        self.stopped
    }

    fn usage(&self) -> Option<Usage> {
        self.stopped.then(|| self.usage.to_usage())
    }
}

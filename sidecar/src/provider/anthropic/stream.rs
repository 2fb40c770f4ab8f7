//! Anthropic's streaming events → OpenAI chunks.
//!
//! A small state machine per stream: `message_start` opens the OpenAI stream (role
//! chunk), text/thinking deltas become `content`/`reasoning_content` deltas, each
//! `tool_use` block becomes a tool call with the next OpenAI index (its id and name on the
//! first delta, `input_json_delta` pieces as argument text under the same index),
//! `message_delta` carries the finish reason, and `message_stop` ends with the usage
//! chunk (when the client asked for it) and `[DONE]`. A stream that ends without
//! `message_stop` was cut off and is reported as an error, never passed off as complete.

use bytes::{Bytes, BytesMut};

use super::request::{JSON_TOOL, json_mode};
use super::wire::{AnthropicUsage, BlockDelta, StartBlock, StreamEvent, finish_reason};
use crate::domain::{CallView, Usage};
use crate::provider::openai_wire::{
    ChunkWriter, Delta, FunctionDelta, ToolCallDelta, take, write_done,
};
use crate::provider::sse::{Event, SseParser};
use crate::provider::{StreamError, StreamTranslator};

/// Translates one Anthropic stream.
pub struct Translator {
    parser: SseParser,
    events: Vec<Event>,
    out: BytesMut,
    writer: Option<ChunkWriter>,
    include_usage: bool,
    json: bool,
    /// The content block carrying a JSON-mode answer, streamed as content.
    json_block: Option<usize>,
    /// Anthropic block index → OpenAI tool call index.
    tools: Vec<(usize, u32)>,
    usage: AnthropicUsage,
    stopped: bool,
}

impl Translator {
    /// A translator for `call`'s stream.
    pub fn new(call: &CallView<'_>) -> Self {
        let include_usage = call.wants_stream_usage();
        Translator {
            parser: SseParser::default(),
            events: Vec::new(),
            out: BytesMut::new(),
            writer: None,
            include_usage,
            json: json_mode(call),
            json_block: None,
            tools: Vec::new(),
            usage: AnthropicUsage::default(),
            stopped: false,
        }
    }

    fn delta(&mut self, delta: Delta) -> Result<(), StreamError> {
        let writer = self.writer.as_ref().ok_or_else(not_started)?;
        writer.choice(&mut self.out, delta, None);
        Ok(())
    }

    fn handle(&mut self, event: &Event) -> Result<(), StreamError> {
        let parsed: StreamEvent =
            serde_json::from_str(&event.data).map_err(StreamError::malformed)?;
        match parsed {
            StreamEvent::MessageStart { message } => {
                self.usage = message.usage;
                let writer = ChunkWriter::new(message.id, message.model);
                writer.choice(
                    &mut self.out,
                    Delta {
                        role: Some("assistant"),
                        content: Some(String::new()),
                        ..Delta::default()
                    },
                    None,
                );
                self.writer = Some(writer);
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                StartBlock::Text { text } if !text.is_empty() => {
                    self.delta(Delta {
                        content: Some(text),
                        ..Delta::default()
                    })?;
                }
                StartBlock::Thinking { thinking } if !thinking.is_empty() => {
                    self.delta(Delta {
                        reasoning_content: Some(thinking),
                        ..Delta::default()
                    })?;
                }
                StartBlock::ToolUse { name, .. } if self.json && name == JSON_TOOL => {
                    self.json_block = Some(index);
                }
                StartBlock::ToolUse { id, name } => {
                    let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                    self.tools.push((index, tool_index));
                    self.delta(Delta {
                        tool_calls: vec![ToolCallDelta {
                            index: tool_index,
                            id: Some(id),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(name),
                                arguments: Some(String::new()),
                            },
                        }],
                        ..Delta::default()
                    })?;
                }
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.delta(Delta {
                    content: Some(text),
                    ..Delta::default()
                })?,
                BlockDelta::ThinkingDelta { thinking } => {
                    self.delta(Delta {
                        reasoning_content: Some(thinking),
                        ..Delta::default()
                    })?;
                }
                BlockDelta::InputJsonDelta { partial_json } if self.json_block == Some(index) => {
                    self.delta(Delta {
                        content: Some(partial_json),
                        ..Delta::default()
                    })?;
                }
                BlockDelta::InputJsonDelta { partial_json } => {
                    let Some(&(_, tool_index)) =
                        self.tools.iter().find(|(block, _)| *block == index)
                    else {
                        return Err(StreamError::malformed(format!(
                            "input_json_delta for unknown block {index}"
                        )));
                    };
                    self.delta(Delta {
                        tool_calls: vec![ToolCallDelta {
                            index: tool_index,
                            id: None,
                            kind: None,
                            function: FunctionDelta {
                                name: None,
                                arguments: Some(partial_json),
                            },
                        }],
                        ..Delta::default()
                    })?;
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
                        self.usage.cache_creation_input_tokens = u.cache_creation_input_tokens;
                    }
                    if u.cache_read_input_tokens.is_some() {
                        self.usage.cache_read_input_tokens = u.cache_read_input_tokens;
                    }
                }
                let mut finish = finish_reason(delta.stop_reason.as_deref());
                if self.json && finish == "tool_calls" && self.tools.is_empty() {
                    finish = "stop";
                }
                let writer = self.writer.as_ref().ok_or_else(not_started)?;
                writer.choice(&mut self.out, Delta::default(), Some(finish));
            }
            StreamEvent::MessageStop => {
                let writer = self.writer.as_ref().ok_or_else(not_started)?;
                if self.include_usage {
                    writer.usage(&mut self.out, self.usage.to_usage());
                }
                write_done(&mut self.out);
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

    fn drain(&mut self) -> Result<Option<Bytes>, StreamError> {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            self.handle(event)?;
        }
        self.events = events;
        self.events.clear();
        Ok(take(&mut self.out))
    }
}

fn not_started() -> StreamError {
    StreamError::malformed("content arrived before message_start")
}

impl StreamTranslator for Translator {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        self.parser
            .push(&chunk, &mut self.events)
            .map_err(StreamError::from)?;
        self.drain()
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        if let Some(event) = self.parser.finish().map_err(StreamError::from)? {
            self.events.push(event);
        }
        let out = self.drain()?;
        if !self.stopped {
            return Err(StreamError::malformed(
                "the stream ended before message_stop",
            ));
        }
        Ok(out)
    }

    fn usage(&self) -> Option<Usage> {
        self.stopped.then(|| self.usage.to_usage())
    }
}

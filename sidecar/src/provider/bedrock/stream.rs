//! ConverseStream → OpenAI chunks.
//!
//! Binary eventstream messages are decoded (CRCs checked: a bad one ends the stream with
//! an error, never skipped) and fed to a small state machine: `messageStart` opens the
//! stream, text and reasoning text deltas become `content` / `reasoning_content` deltas,
//! a reasoning block's `signature` delta a `thinking_blocks` delta with empty text and
//! the signature (its text is the reasoning streamed since the previous block), a
//! `redactedContent` delta a `thinking_blocks` delta with its data, each `toolUse` block
//! becomes a tool call with the next OpenAI index (id and name when the block starts,
//! input JSON pieces as argument text under the same index) except the JSON tool's in
//! JSON mode, whose input pieces are `content` deltas, `messageStop` carries the finish
//! reason (stop rather than tool_calls when only the JSON tool was called), and
//! `metadata` (always last) the usage, after which `[DONE]` is written. Exceptions
//! (`:message-type: exception`, e.g. `throttlingException`) and protocol errors end the
//! stream with an error.
//!
//! The role chunk is held back until the first content, so an exception before any
//! content fails the attempt before a byte reached the client, and it is retried or
//! falls back like any other failure.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;

use super::eventstream::{Decoder, Message};
use super::response::completion_id;
use super::wire::{
    BlockDelta, BlockStart, ErrorBody, MessageStop, Metadata, ReasoningDelta, Usage, finish_reason,
};
use crate::domain::CallView;
use crate::provider::json_mode::{JSON_TOOL, json_mode};
use crate::provider::openai_wire::{ChunkWriter, Delta, ThinkingBlock, ToolIndexes, take};
use crate::provider::{StreamError, StreamTranslator};

/// Translates one ConverseStream answer.
pub struct Translator {
    decoder: Decoder,
    out: BytesMut,
    writer: ChunkWriter,
    include_usage: bool,
    started: bool,
    /// Bedrock content block index → OpenAI tool call index.
    tools: ToolIndexes<u32>,
    /// The call asked for JSON: the JSON tool's input is the content.
    json: bool,
    /// The content block carrying a JSON-mode answer.
    json_block: Option<u32>,
    stopped: bool,
    done: bool,
    usage: Usage,
}

impl Translator {
    /// A translator for `call`'s stream.
    pub fn new(call: &CallView<'_>) -> Self {
        let include_usage = call.wants_stream_usage();
        Translator {
            decoder: Decoder::default(),
            out: BytesMut::new(),
            writer: ChunkWriter::new(completion_id(), call.model),
            include_usage,
            started: false,
            tools: ToolIndexes::default(),
            json: json_mode(call),
            json_block: None,
            stopped: false,
            done: false,
            usage: Usage::default(),
        }
    }

    /// Writes a chunk, preceded by the role chunk if it is the first.
    fn emit(&mut self, delta: Delta, finish: Option<&'static str>) {
        self.writer.emit(&mut self.out, delta, finish);
    }

    fn handle(&mut self, message: &Message) -> Result<(), StreamError> {
        if let Some(failure) = failure(message) {
            return Err(failure);
        }
        if self.done {
            return Ok(());
        }
        let kind = message.header(":event-type").unwrap_or("");
        if kind == "messageStart" {
            self.started = true;
            return Ok(());
        }
        let known = matches!(
            kind,
            "contentBlockStart"
                | "contentBlockDelta"
                | "contentBlockStop"
                | "messageStop"
                | "metadata"
        );
        if known && !self.started {
            return Err(StreamError::malformed(format!(
                "{kind} before messageStart"
            )));
        }
        match kind {
            "contentBlockStart" => {
                let start: BlockStart = parse(message)?;
                if let Some(tool) = start.start.tool_use {
                    if self.json && tool.name == JSON_TOOL {
                        self.json_block = Some(start.content_block_index);
                        return Ok(());
                    }
                    let index = self.tools.open(start.content_block_index);
                    let delta = Delta::tool_call(
                        index,
                        Some(tool.tool_use_id),
                        Some(tool.name),
                        String::new(),
                    );
                    self.emit(delta, None);
                }
            }
            "contentBlockDelta" => {
                let delta: BlockDelta = parse(message)?;
                let body = delta.delta;
                if let Some(text) = body.text {
                    self.emit(Delta::content(text), None);
                } else if let Some(input) = body.tool_use {
                    let block = delta.content_block_index;
                    if self.json_block == Some(block) {
                        self.emit(Delta::content(input.input), None);
                        return Ok(());
                    }
                    let Some(index) = self.tools.get(&block) else {
                        return Err(StreamError::malformed(format!(
                            "tool input for block {block}, which started no tool call"
                        )));
                    };
                    self.emit(Delta::tool_arguments(index, input.input), None);
                } else if let Some(reasoning) = body.reasoning_content {
                    self.reasoning(reasoning);
                }
            }
            "messageStop" => {
                let stop: MessageStop = parse(message)?;
                self.stopped = true;
                let mut finish = finish_reason(stop.stop_reason.as_deref());
                if self.json && finish == "tool_calls" && self.tools.is_empty() {
                    finish = "stop";
                }
                self.emit(Delta::default(), Some(finish));
            }
            "metadata" => {
                let meta: Metadata = parse(message)?;
                if let Some(usage) = meta.usage {
                    self.usage = usage;
                }
                if self.stopped {
                    self.end();
                }
            }
            // contentBlockStop, and event types Bedrock may add later.
            _ => {}
        }
        Ok(())
    }

    /// A reasoning delta: text, the signature ending its block, or redacted reasoning.
    fn reasoning(&mut self, delta: ReasoningDelta) {
        if let Some(text) = delta.text {
            self.emit(Delta::reasoning(text), None);
        } else if let Some(signature) = delta.signature {
            let block = ThinkingBlock::Thinking {
                thinking: Cow::Borrowed(""),
                signature: Cow::Owned(signature),
            };
            self.emit(Delta::thinking(block), None);
        } else if let Some(data) = delta.redacted_content {
            let block = ThinkingBlock::RedactedThinking {
                data: Cow::Owned(data),
            };
            self.emit(Delta::thinking(block), None);
        }
    }

    /// Writes the usage chunk (if asked for) and `[DONE]`.
    fn end(&mut self) {
        let usage = self.include_usage.then(|| self.usage.to_usage());
        self.writer.end(&mut self.out, usage);
        self.done = true;
    }
}

/// The error a message that is not an event stands for: an exception Bedrock sent
/// mid-stream (`:message-type: exception`, e.g. `throttlingException`) or a protocol
/// error. `None` for events.
pub fn failure(message: &Message) -> Option<StreamError> {
    match message.header(":message-type").unwrap_or("event") {
        "event" => None,
        "exception" => {
            let kind = message.header(":exception-type").unwrap_or("exception");
            let text = serde_json::from_slice::<ErrorBody>(&message.payload)
                .ok()
                .and_then(|b| b.message)
                .unwrap_or_default();
            Some(StreamError::upstream(format!(
                "Bedrock stream failed with {kind}: {text}"
            )))
        }
        other => Some(StreamError::upstream(format!(
            "Bedrock stream {other} {}: {}",
            message.header(":error-code").unwrap_or("(no code)"),
            message.header(":error-message").unwrap_or("")
        ))),
    }
}

fn parse<T: DeserializeOwned>(message: &Message) -> Result<T, StreamError> {
    serde_json::from_slice(&message.payload).map_err(|e| {
        StreamError::malformed(format!(
            "{} payload: {e}",
            message.header(":event-type").unwrap_or("event")
        ))
    })
}

impl StreamTranslator for Translator {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        self.decoder.push(&chunk);
        while let Some(message) = self
            .decoder
            .next_message()
            .map_err(StreamError::malformed)?
        {
            self.handle(&message)?;
        }
        Ok(take(&mut self.out))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        self.decoder.finish().map_err(StreamError::malformed)?;
        if !self.stopped {
            return Err(StreamError::malformed(
                "the stream ended before messageStop",
            ));
        }
        if !self.done {
            // metadata is always sent last; without it the answer is still whole.
            self.end();
        }
        Ok(take(&mut self.out))
    }

    fn usage(&self) -> Option<crate::domain::Usage> {
        self.done.then(|| self.usage.to_usage())
    }
}

//! Cohere's v2 stream (SSE, one JSON event per `data:` line, `type` naming it) → OpenAI
//! chunks.
//!
//! `message-start` opens the stream; `content-delta` text (or a reasoning model's
//! thinking) becomes `content` (`reasoning_content`); `tool-plan-delta` text becomes
//! `content`, as in a whole answer; `tool-call-start` opens a tool call under the next
//! OpenAI index with its id and name, and `tool-call-delta` adds argument text under the
//! same index; `message-end` carries the finish reason and usage, then `[DONE]`. A
//! `finish_reason` of `ERROR`, or a stream ending before `message-end`, is an error. The
//! role chunk waits for the first content, so a failure before it can still fall back.

use bytes::BytesMut;

use super::wire::{StreamEvent, finish_reason};
use crate::domain::{CallView, Usage};
use crate::provider::StreamError;
use crate::provider::openai_wire::{ChunkWriter, Delta, ToolIndexes};
use crate::provider::sse::Event;
use crate::provider::sse_translator::{SseHandler, SseTranslator};

/// A translator for `call`'s stream.
pub fn translator(call: &CallView<'_>) -> SseTranslator<Handler> {
    SseTranslator::new(Handler {
        model: call.model.to_owned(),
        writer: None,
        include_usage: call.wants_stream_usage(),
        tools: ToolIndexes::default(),
        done: false,
        usage: None,
    })
}

/// Translates the events of one Cohere stream.
pub struct Handler {
    model: String,
    writer: Option<ChunkWriter>,
    include_usage: bool,
    /// Cohere tool call index → OpenAI tool call index.
    tools: ToolIndexes<u32>,
    done: bool,
    usage: Option<Usage>,
}

impl Handler {
    fn emit(
        &mut self,
        out: &mut BytesMut,
        delta: Delta,
        finish: Option<&'static str>,
    ) -> Result<(), StreamError> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| StreamError::malformed("content arrived before message-start"))?;
        writer.emit(out, delta, finish);
        Ok(())
    }
}

impl SseHandler for Handler {
    fn handle(&mut self, event: &Event, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        let parsed: StreamEvent =
            serde_json::from_str(&event.data).map_err(StreamError::malformed)?;
        match parsed {
            StreamEvent::MessageStart { id } => {
                let id =
                    id.unwrap_or_else(|| format!("chatcmpl-cohere-{:016x}", fastrand::u64(..)));
                self.writer = Some(ChunkWriter::new(id, self.model.clone()));
            }
            StreamEvent::ContentDelta { delta } => {
                if let Some(content) = delta.message.content {
                    if let Some(text) = content.text.filter(|t| !t.is_empty()) {
                        self.emit(out, Delta::content(text), None)?;
                    } else if let Some(thinking) = content.thinking.filter(|t| !t.is_empty()) {
                        self.emit(out, Delta::reasoning(thinking), None)?;
                    }
                }
            }
            StreamEvent::ToolPlanDelta { delta } => {
                if let Some(plan) = delta.message.tool_plan.filter(|p| !p.is_empty()) {
                    self.emit(out, Delta::content(plan), None)?;
                }
            }
            StreamEvent::ToolCallStart { index, delta } => {
                let call = delta.message.tool_calls.unwrap_or_default();
                let index = match self.tools.get(&index) {
                    Some(known) => known,
                    None => self.tools.open(index),
                };
                let arguments = call.function.arguments.unwrap_or_default();
                let delta = Delta::tool_call(index, call.id, call.function.name, arguments);
                self.emit(out, delta, None)?;
            }
            StreamEvent::ToolCallDelta { index, delta } => {
                let Some(index) = self.tools.get(&index) else {
                    return Err(StreamError::malformed(format!(
                        "tool-call-delta for call {index}, which never started"
                    )));
                };
                let arguments = delta
                    .message
                    .tool_calls
                    .and_then(|c| c.function.arguments)
                    .unwrap_or_default();
                if !arguments.is_empty() {
                    self.emit(out, Delta::tool_arguments(index, arguments), None)?;
                }
            }
            StreamEvent::MessageEnd { delta } => {
                if delta.finish_reason.as_deref() == Some("ERROR") {
                    return Err(StreamError::upstream(
                        "Cohere ended the stream with finish_reason ERROR",
                    ));
                }
                let finish = finish_reason(delta.finish_reason.as_deref());
                self.emit(out, Delta::default(), Some(finish))?;
                let usage = delta.usage.unwrap_or_default().to_usage();
                if let Some(writer) = &self.writer {
                    writer.end(out, self.include_usage.then_some(usage));
                }
                self.usage = Some(usage);
                self.done = true;
            }
            StreamEvent::Other => {}
        }
        Ok(())
    }

    const LAST: &'static str = "message-end";

    fn complete(&self) -> bool {
        self.done
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

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

use bytes::{Bytes, BytesMut};

use super::wire::{StreamEvent, finish_reason};
use crate::domain::{CallView, Usage};
use crate::provider::openai_wire::{
    ChunkWriter, Delta, FunctionDelta, ToolCallDelta, take, write_done,
};
use crate::provider::sse::{Event, SseParser};
use crate::provider::{StreamError, StreamTranslator};

/// Translates one Cohere stream.
pub struct Translator {
    parser: SseParser,
    events: Vec<Event>,
    out: BytesMut,
    model: String,
    writer: Option<ChunkWriter>,
    role_sent: bool,
    include_usage: bool,
    /// Cohere tool call index → OpenAI tool call index.
    tools: Vec<(u32, u32)>,
    done: bool,
    usage: Option<Usage>,
}

impl Translator {
    /// A translator for `call`'s stream.
    pub fn new(call: &CallView<'_>) -> Self {
        let include_usage = call.wants_stream_usage();
        Translator {
            parser: SseParser::default(),
            events: Vec::new(),
            out: BytesMut::new(),
            model: call.model.to_owned(),
            writer: None,
            role_sent: false,
            include_usage,
            tools: Vec::new(),
            done: false,
            usage: None,
        }
    }

    fn emit(&mut self, delta: Delta, finish: Option<&'static str>) -> Result<(), StreamError> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| StreamError::malformed("content arrived before message-start"))?;
        if !self.role_sent {
            self.role_sent = true;
            let role = Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                ..Delta::default()
            };
            writer.choice(&mut self.out, role, None);
        }
        writer.choice(&mut self.out, delta, finish);
        Ok(())
    }

    fn tool_index(&mut self, cohere: u32, create: bool) -> Result<(u32, bool), StreamError> {
        if let Some(&(_, index)) = self.tools.iter().find(|(c, _)| *c == cohere) {
            return Ok((index, false));
        }
        if !create {
            return Err(StreamError::malformed(format!(
                "tool-call-delta for call {cohere}, which never started"
            )));
        }
        let index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
        self.tools.push((cohere, index));
        Ok((index, true))
    }

    fn handle(&mut self, event: &Event) -> Result<(), StreamError> {
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
                        self.emit(
                            Delta {
                                content: Some(text),
                                ..Delta::default()
                            },
                            None,
                        )?;
                    } else if let Some(thinking) = content.thinking.filter(|t| !t.is_empty()) {
                        self.emit(
                            Delta {
                                reasoning_content: Some(thinking),
                                ..Delta::default()
                            },
                            None,
                        )?;
                    }
                }
            }
            StreamEvent::ToolPlanDelta { delta } => {
                if let Some(plan) = delta.message.tool_plan.filter(|p| !p.is_empty()) {
                    self.emit(
                        Delta {
                            content: Some(plan),
                            ..Delta::default()
                        },
                        None,
                    )?;
                }
            }
            StreamEvent::ToolCallStart { index, delta } => {
                let call = delta.message.tool_calls.unwrap_or_default();
                let (index, _) = self.tool_index(index, true)?;
                self.emit(
                    Delta {
                        tool_calls: vec![ToolCallDelta {
                            index,
                            id: call.id,
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: call.function.name,
                                arguments: Some(call.function.arguments.unwrap_or_default()),
                            },
                        }],
                        ..Delta::default()
                    },
                    None,
                )?;
            }
            StreamEvent::ToolCallDelta { index, delta } => {
                let (index, _) = self.tool_index(index, false)?;
                let arguments = delta
                    .message
                    .tool_calls
                    .and_then(|c| c.function.arguments)
                    .unwrap_or_default();
                if !arguments.is_empty() {
                    self.emit(
                        Delta {
                            tool_calls: vec![ToolCallDelta {
                                index,
                                id: None,
                                kind: None,
                                function: FunctionDelta {
                                    name: None,
                                    arguments: Some(arguments),
                                },
                            }],
                            ..Delta::default()
                        },
                        None,
                    )?;
                }
            }
            StreamEvent::MessageEnd { delta } => {
                if delta.finish_reason.as_deref() == Some("ERROR") {
                    return Err(StreamError::upstream(
                        "Cohere ended the stream with finish_reason ERROR",
                    ));
                }
                self.emit(
                    Delta::default(),
                    Some(finish_reason(delta.finish_reason.as_deref())),
                )?;
                let usage = delta.usage.unwrap_or_default().to_usage();
                if self.include_usage
                    && let Some(writer) = &self.writer
                {
                    writer.usage(&mut self.out, usage);
                }
                self.usage = Some(usage);
                write_done(&mut self.out);
                self.done = true;
            }
            StreamEvent::Other => {}
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
        if !self.done {
            return Err(StreamError::malformed(
                "the stream ended before message-end",
            ));
        }
        Ok(out)
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

//! Gemini's SSE stream (`streamGenerateContent?alt=sse`) → OpenAI chunks.
//!
//! Each event is a whole `GenerateContentResponse` holding the next piece of each
//! candidate, CRLF-framed, with no end marker: a candidate is done when it carries a
//! `finishReason`, and the stream when every candidate seen is. Per candidate (OpenAI
//! choice): the first piece opens the choice with a role chunk; text becomes `content`
//! deltas, thought parts `reasoning_content` deltas; every `functionCall` part (Gemini
//! sends each call whole, never split) becomes one tool call delta with the next index
//! of its choice, its id, name and complete arguments. Usage comes as running totals on
//! every event: the last one is kept and sent in the usage chunk when the client asked
//! for it. A stream that ends before every candidate finished was cut off and is
//! reported as an error, never passed off as complete; an `{"error": ...}` event is
//! Google reporting a failure mid-stream.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::response::{call_id, completion_id};
use super::wire::{ErrorEnvelope, GenerateResponse, UsageMetadata, finish_reason};
use crate::domain::{CallView, Usage};
use crate::provider::openai_wire::{
    ChatChunk, ChunkChoice, Delta, FunctionDelta, ToolCallDelta, take, unix_now, write_done,
    write_event,
};
use crate::provider::sse::{Event, SseParser};
use crate::provider::{StreamError, StreamTranslator};

/// Translates one Gemini stream.
pub struct Translator {
    parser: SseParser,
    events: Vec<Event>,
    out: BytesMut,
    /// Id, model and creation time, fixed by the first event.
    meta: Option<(String, String, u64)>,
    /// The deployment's model, when Google names no `modelVersion`.
    model: String,
    include_usage: bool,
    choices: Vec<ChoiceState>,
    usage: UsageMetadata,
    /// The stream ended well: its usage is complete.
    finished: bool,
}

/// What one OpenAI choice has seen.
struct ChoiceState {
    index: u32,
    calls: usize,
    finished: bool,
}

impl Translator {
    /// A translator for `call`'s stream.
    pub fn new(call: &CallView<'_>) -> Self {
        let include_usage = call.wants_stream_usage();
        Translator {
            parser: SseParser::default(),
            events: Vec::new(),
            out: BytesMut::new(),
            meta: None,
            model: call.model.to_owned(),
            include_usage,
            choices: Vec::new(),
            usage: UsageMetadata::default(),
            finished: false,
        }
    }

    fn chunk(&mut self, index: u32, delta: Delta, finish: Option<&'static str>) {
        let Some((id, model, created)) = &self.meta else {
            return;
        };
        let chunk = ChatChunk {
            id,
            object: "chat.completion.chunk",
            created: *created,
            model,
            choices: vec![ChunkChoice {
                index,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            usage: None,
        };
        write_event(&mut self.out, &chunk);
    }

    /// The state of choice `index`, opening it (role chunk) on first sight.
    fn choice(&mut self, index: u32) -> usize {
        if let Some(at) = self.choices.iter().position(|c| c.index == index) {
            return at;
        }
        self.chunk(
            index,
            Delta {
                role: Some("assistant"),
                content: Some(String::new()),
                ..Delta::default()
            },
            None,
        );
        self.choices.push(ChoiceState {
            index,
            calls: 0,
            finished: false,
        });
        self.choices.len() - 1
    }

    fn handle(&mut self, event: &Event) -> Result<(), StreamError> {
        let value: Value = serde_json::from_str(&event.data).map_err(StreamError::malformed)?;
        if value.get("error").is_some() {
            let message = serde_json::from_value::<ErrorEnvelope>(value)
                .map(|e| {
                    let status = e.error.status.unwrap_or_default();
                    format!("Gemini stream error ({status}): {}", e.error.message)
                })
                .unwrap_or_else(|_| "Gemini reported an error mid-stream.".to_owned());
            return Err(StreamError::upstream(message));
        }
        let response: GenerateResponse =
            serde_json::from_value(value).map_err(StreamError::malformed)?;
        if self.meta.is_none() {
            let id = completion_id(response.response_id.as_deref());
            let model = response
                .model_version
                .clone()
                .unwrap_or_else(|| self.model.clone());
            self.meta = Some((id, model, unix_now()));
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = usage;
        }
        let rid = response.response_id.as_deref();
        for (position, candidate) in response.candidates.iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
            let at = self.choice(index);
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                if let Some(call) = &part.function_call {
                    let n = self.choices[at].calls;
                    self.choices[at].calls += 1;
                    let arguments = call
                        .args
                        .as_ref()
                        .map_or_else(|| "{}".to_owned(), Value::to_string);
                    let delta = Delta {
                        tool_calls: vec![ToolCallDelta {
                            index: u32::try_from(n).unwrap_or(u32::MAX),
                            id: Some(call_id(call.id.as_deref(), rid, index, n)),
                            kind: Some("function"),
                            function: FunctionDelta {
                                name: Some(call.name.clone()),
                                arguments: Some(arguments),
                            },
                        }],
                        ..Delta::default()
                    };
                    self.chunk(index, delta, None);
                } else if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
                    let delta = if part.thought == Some(true) {
                        Delta {
                            reasoning_content: Some(text.clone()),
                            ..Delta::default()
                        }
                    } else {
                        Delta {
                            content: Some(text.clone()),
                            ..Delta::default()
                        }
                    };
                    self.chunk(index, delta, None);
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let state = &mut self.choices[at];
                if !state.finished {
                    state.finished = true;
                    let finish = finish_reason(Some(reason), state.calls > 0);
                    self.chunk(index, Delta::default(), Some(finish));
                }
            }
        }
        let blocked = response
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if blocked && response.candidates.is_empty() {
            let at = self.choice(0);
            self.choices[at].finished = true;
            self.chunk(0, Delta::default(), Some("content_filter"));
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
        self.drain()?;
        if self.choices.is_empty() || self.choices.iter().any(|c| !c.finished) {
            return Err(StreamError::malformed(
                "the stream ended before every candidate had a finishReason",
            ));
        }
        if self.include_usage
            && let Some((id, model, created)) = &self.meta
        {
            let chunk = ChatChunk {
                id,
                object: "chat.completion.chunk",
                created: *created,
                model,
                choices: Vec::new(),
                usage: Some(self.usage.to_usage().into()),
            };
            write_event(&mut self.out, &chunk);
        }
        write_done(&mut self.out);
        self.finished = true;
        Ok(take(&mut self.out))
    }

    fn usage(&self) -> Option<Usage> {
        self.finished.then(|| self.usage.to_usage())
    }
}

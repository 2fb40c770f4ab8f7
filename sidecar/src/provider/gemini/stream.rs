//! Gemini's SSE stream (`streamGenerateContent?alt=sse`) → OpenAI chunks.
//!
//! Each event is a whole `GenerateContentResponse` holding the next piece of each
//! candidate, CRLF-framed, with no end marker: a candidate is done when it carries a
//! `finishReason`, and the stream when every candidate seen is. Per candidate (OpenAI
//! choice): the first piece opens the choice with a role chunk; text becomes `content`
//! deltas, thought parts `reasoning_content` deltas; every `functionCall` part (Gemini
//! sends each call whole, never split) becomes one tool call delta with the next index
//! of its choice, its id, name and complete arguments, and a signed part's
//! `thoughtSignature` in `extra_content` (and the id, see `signature`). Usage comes as running totals on
//! every event: the last one is kept and sent in the usage chunk when the client asked
//! for it. A stream that ends before every candidate finished was cut off and is
//! reported as an error, never passed off as complete; an `{"error": ...}` event is
//! Google reporting a failure mid-stream.

use bytes::BytesMut;
use serde_json::Value;

use super::response::{call_id, completion_id};
use super::signature;
use super::wire::{ErrorEnvelope, GenerateResponse, UsageMetadata, finish_reason};
use crate::domain::{CallView, Usage};
use crate::provider::StreamError;
use crate::provider::openai_wire::{ChunkWriter, Delta, write_done};
use crate::provider::sse::Event;
use crate::provider::sse_translator::{SseHandler, SseTranslator};

/// A translator for `call`'s stream.
pub fn translator(call: &CallView<'_>) -> SseTranslator<Handler> {
    SseTranslator::new(Handler {
        writer: None,
        model: call.model.to_owned(),
        include_usage: call.wants_stream_usage(),
        choices: Vec::new(),
        usage: UsageMetadata::default(),
        finished: false,
    })
}

/// Translates the events of one Gemini stream.
pub struct Handler {
    /// Id, model and creation time, fixed by the first event.
    writer: Option<ChunkWriter>,
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

impl Handler {
    fn chunk(&self, out: &mut BytesMut, index: u32, delta: Delta, finish: Option<&'static str>) {
        if let Some(writer) = &self.writer {
            writer.choice_at(out, index, delta, finish);
        }
    }

    /// The state of choice `index`, opening it (role chunk) on first sight.
    fn choice(&mut self, out: &mut BytesMut, index: u32) -> usize {
        if let Some(at) = self.choices.iter().position(|c| c.index == index) {
            return at;
        }
        self.chunk(out, index, Delta::role(), None);
        self.choices.push(ChoiceState {
            index,
            calls: 0,
            finished: false,
        });
        self.choices.len() - 1
    }
}

impl SseHandler for Handler {
    fn handle(&mut self, event: &Event, out: &mut BytesMut) -> Result<(), StreamError> {
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
        if self.writer.is_none() {
            let id = completion_id(response.response_id.as_deref());
            let model = response
                .model_version
                .clone()
                .unwrap_or_else(|| self.model.clone());
            self.writer = Some(ChunkWriter::new(id, model));
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = usage;
        }
        let rid = response.response_id.as_deref();
        for (position, candidate) in response.candidates.iter().enumerate() {
            let index = candidate
                .index
                .unwrap_or(u32::try_from(position).unwrap_or(u32::MAX));
            let at = self.choice(out, index);
            for part in candidate.content.iter().flat_map(|c| &c.parts) {
                if let Some(call) = &part.function_call {
                    let n = self.choices[at].calls;
                    self.choices[at].calls += 1;
                    let arguments = call
                        .args
                        .as_ref()
                        .map_or_else(|| "{}".to_owned(), Value::to_string);
                    let signature = part.thought_signature.as_deref();
                    let id =
                        signature::id_with(call_id(call.id.as_deref(), rid, index, n), signature);
                    let delta = Delta::tool_call(
                        u32::try_from(n).unwrap_or(u32::MAX),
                        Some(id),
                        Some(call.name.clone()),
                        arguments,
                    );
                    let delta = delta.with_extra(signature::extra(signature));
                    self.chunk(out, index, delta, None);
                } else if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
                    let delta = if part.thought == Some(true) {
                        Delta::reasoning(text.clone())
                    } else {
                        Delta::content(text.clone())
                    };
                    self.chunk(out, index, delta, None);
                }
            }
            if let Some(reason) = candidate.finish_reason.as_deref() {
                let state = &mut self.choices[at];
                if !state.finished {
                    state.finished = true;
                    let finish = finish_reason(Some(reason), state.calls > 0);
                    self.chunk(out, index, Delta::default(), Some(finish));
                }
            }
        }
        let blocked = response
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some());
        if blocked && response.candidates.is_empty() {
            let at = self.choice(out, 0);
            self.choices[at].finished = true;
            self.chunk(out, 0, Delta::default(), Some("content_filter"));
        }
        Ok(())
    }

    const LAST: &'static str = "every candidate had a finishReason";

    fn complete(&self) -> bool {
        !self.choices.is_empty() && self.choices.iter().all(|c| c.finished)
    }

    fn end(&mut self, out: &mut BytesMut) {
        match &self.writer {
            Some(writer) => writer.end(out, self.include_usage.then(|| self.usage.to_usage())),
            None => write_done(out),
        }
        self.finished = true;
    }

    fn usage(&self) -> Option<Usage> {
        self.finished.then(|| self.usage.to_usage())
    }
}

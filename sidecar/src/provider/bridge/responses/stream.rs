//! A chat stream restated as Responses stream events.
//!
//! The provider's chat translator writes OpenAI chunks (`data: {chunk}`, a usage-only
//! chunk, `data: [DONE]`); each chunk's choice-0 delta moves a small state machine over
//! the output items:
//! - the first chunk writes `response.created` and `response.in_progress` (held back
//!   until then, so a stream that fails before its first chunk can still fail over);
//! - reasoning text opens a `reasoning` item with one summary part, streamed as
//!   `reasoning_summary_text.delta`; `thinking_blocks` pieces (a signature closing the
//!   text streamed since the last one, or a redacted block) are gathered into its
//!   `encrypted_content`;
//! - content (or a refusal) opens a `message` item with an `output_text` (or
//!   `refusal`) part;
//! - each tool call (by its chat index) opens a `function_call` item streaming
//!   `function_call_arguments.delta`, or a `custom_tool_call` item for the request's
//!   custom tools. A custom call's chat arguments are `{"input": "..."}`, JSON that can
//!   only be unwrapped whole: its input is sent as one `custom_tool_call_input.delta` when
//!   the call ends;
//! - starting another kind of item ends the reasoning or message item before it; tool
//!   calls end with the answer (`finish_reason`), which ends every item still open;
//! - `[DONE]` (or the end of the stream) writes `response.completed`, or
//!   `response.incomplete` for `finish_reason` `length`/`content_filter`, with the whole
//!   Response object and its usage, which [`Stream::answer`] then returns.
//!
//! A stream that ends without a `finish_reason` was cut off: [`Stream::finish`] reports
//! it. The answer is held whole (the `.done` events and the final object repeat it), up
//! to [`MAX_ANSWER_BYTES`].

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::Value;

use super::events::{
    ArgumentsDone, Chunk, InputDone, ItemDelta, ItemEvent, PartEvent, RefusalDone, ResponseEvent,
    SummaryPartEvent, SummaryTextEvent, TextEvent, ToolPiece, Writer,
};
use super::object::{
    ContentPart, Echo, OutputItem, ResponseObject, ResponseUsage, SummaryText, outcome,
};
use super::{custom_input, custom_tool_names, encode_blocks, new_id};
use crate::domain::{CallView, Usage};
use crate::provider::bridge::text::Str;
use crate::provider::openai_wire::{ThinkingBlock, take, unix_now};
use crate::provider::sse::{Event, SseParser};
use crate::provider::{StreamError, StreamTranslator};

/// The most text (reasoning, content and arguments together) one streamed answer may
/// hold: far more than any model writes in one answer, so only a runaway upstream
/// reaches it.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// A chat stream restated as Responses events.
pub struct Stream {
    inner: Box<dyn StreamTranslator>,
    parser: SseParser,
    /// Parsed chat events, kept between chunks so the buffer is reused.
    events: Vec<Event>,
    writer: Writer,
    id: String,
    created_at: u64,
    echo: Echo<'static>,
    /// The request's custom tools.
    custom: Vec<String>,
    entries: Vec<Entry>,
    /// The reasoning or message item receiving text.
    open: Option<usize>,
    /// Chat tool-call index → entry.
    tools: Vec<(u32, usize)>,
    started: bool,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    held: usize,
    answer: Option<Bytes>,
}

/// One output item and what streaming it needs.
struct Entry {
    item: OutputItem,
    done: bool,
    /// Whether a summary or content part was opened and not yet closed.
    part_open: bool,
    state: State,
}

enum State {
    /// Signed blocks, and where in the summary the text of the next one starts.
    Reasoning {
        blocks: Vec<ThinkingBlock<'static>>,
        block_start: usize,
    },
    Message,
    Function,
    /// The chat arguments, unwrapped when the call ends.
    Custom {
        arguments: String,
    },
}

impl Stream {
    /// Wraps the provider's chat stream translator for `call`, the client's Responses
    /// call.
    pub fn new(call: &CallView<'_>, inner: Box<dyn StreamTranslator>) -> Self {
        Stream {
            inner,
            parser: SseParser::default(),
            events: Vec::new(),
            writer: Writer::new(),
            id: new_id("resp_"),
            created_at: unix_now(),
            echo: Echo::new(call.body).into_owned(),
            custom: custom_tool_names(call.body),
            entries: Vec::new(),
            open: None,
            tools: Vec::new(),
            started: false,
            finish_reason: None,
            usage: None,
            held: 0,
            answer: None,
        }
    }

    /// Translates the chat events in `bytes`.
    fn push(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        let mut events = std::mem::take(&mut self.events);
        let parsed = self
            .parser
            .push(bytes, &mut events)
            .map_err(StreamError::from);
        let result = parsed.and_then(|()| events.iter().try_for_each(|e| self.chat_event(&e.data)));
        events.clear();
        self.events = events;
        result
    }

    fn chat_event(&mut self, data: &str) -> Result<(), StreamError> {
        if data == "[DONE]" {
            return self.complete();
        }
        let chunk: Chunk<'_> = serde_json::from_str(data).map_err(StreamError::malformed)?;
        if let Some(error) = chunk.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_owned);
            return Err(StreamError::upstream(message));
        }
        self.start();
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        }
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            let delta = choice.delta;
            let reasoning = delta.reasoning_content.or(delta.reasoning).map(|t| t.0);
            if let Some(text) = reasoning.filter(|t| !t.is_empty()) {
                self.hold(text.len())?;
                self.reasoning_text(&text);
            }
            for block in delta.thinking_blocks.into_iter().flatten() {
                self.thinking_block(block)?;
            }
            if let Some(text) = delta.content.map(|t| t.0).filter(|t| !t.is_empty()) {
                self.hold(text.len())?;
                self.message_text(false, &text);
            }
            if let Some(text) = delta.refusal.map(|t| t.0).filter(|t| !t.is_empty()) {
                self.hold(text.len())?;
                self.message_text(true, &text);
            }
            for piece in delta.tool_calls.into_iter().flatten() {
                self.tool_piece(piece)?;
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason.0.into_owned());
                self.close_all();
            }
        }
        Ok(())
    }

    /// Counts `n` more bytes of answer held, refusing a runaway one.
    fn hold(&mut self, n: usize) -> Result<(), StreamError> {
        self.held = self.held.saturating_add(n);
        if self.held > MAX_ANSWER_BYTES {
            return Err(StreamError::too_large(format!(
                "the answer is larger than {} MiB",
                MAX_ANSWER_BYTES >> 20
            )));
        }
        Ok(())
    }

    /// Writes `response.created` and `response.in_progress`, once.
    fn start(&mut self) {
        if self.started {
            return;
        }
        self.started = true;
        let response = ResponseObject {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status: "in_progress",
            error: None,
            incomplete_details: None,
            output: &[],
            usage: None,
            echo: &self.echo,
        };
        let event = ResponseEvent {
            response: &response,
        };
        self.writer.event("response.created", &event);
        self.writer.event("response.in_progress", &event);
    }

    /// Adds an item, writing `response.output_item.added`; returns its index.
    fn add(&mut self, item: OutputItem, state: State) -> usize {
        let index = self.entries.len();
        self.writer.event(
            "response.output_item.added",
            &ItemEvent {
                output_index: index,
                item: &item,
            },
        );
        self.entries.push(Entry {
            item,
            done: false,
            part_open: false,
            state,
        });
        index
    }

    /// The open reasoning item, opening one (and ending the open message) if needed.
    fn open_reasoning(&mut self) -> usize {
        if let Some(i) = self.open
            && matches!(
                self.entries.get(i).map(|e| &e.state),
                Some(State::Reasoning { .. })
            )
        {
            return i;
        }
        self.close_open();
        let item = OutputItem::Reasoning {
            id: new_id("rs_"),
            summary: Vec::new(),
            encrypted_content: None,
        };
        let state = State::Reasoning {
            blocks: Vec::new(),
            block_start: 0,
        };
        let index = self.add(item, state);
        self.open = Some(index);
        index
    }

    fn reasoning_text(&mut self, text: &str) {
        let index = self.open_reasoning();
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        let OutputItem::Reasoning { id, summary, .. } = &mut entry.item else {
            return;
        };
        if !entry.part_open {
            entry.part_open = true;
            let part = SummaryText::new(String::new());
            self.writer.event(
                "response.reasoning_summary_part.added",
                &SummaryPartEvent {
                    item_id: id,
                    output_index: index,
                    summary_index: 0,
                    part: &part,
                },
            );
            summary.push(part);
        }
        self.writer.event(
            "response.reasoning_summary_text.delta",
            &SummaryTextEvent {
                item_id: id,
                output_index: index,
                summary_index: 0,
                delta: Some(text),
                text: None,
            },
        );
        if let Some(part) = summary.first_mut() {
            part.text.push_str(text);
        }
    }

    /// Takes a piece of signed reasoning: a signature closes the reasoning text streamed
    /// since the last one into a block.
    fn thinking_block(&mut self, block: ThinkingBlock<'_>) -> Result<(), StreamError> {
        let block = match block {
            ThinkingBlock::Other => return Ok(()),
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => (thinking, Some(signature)),
            ThinkingBlock::RedactedThinking { data } => (data, None),
        };
        self.hold(
            block
                .0
                .len()
                .saturating_add(block.1.as_ref().map_or(0, |s| s.len())),
        )?;
        let index = self.open_reasoning();
        let Some(entry) = self.entries.get_mut(index) else {
            return Ok(());
        };
        let (
            OutputItem::Reasoning { summary, .. },
            State::Reasoning {
                blocks,
                block_start,
            },
        ) = (&entry.item, &mut entry.state)
        else {
            return Ok(());
        };
        let streamed = summary.first().map_or("", |p| p.text.as_str());
        blocks.push(match block {
            (thinking, Some(signature)) => {
                // Anthropic streams the text as reasoning deltas and the signature last,
                // with empty text: the block's text is what came since the last block.
                let thinking = if thinking.is_empty() {
                    streamed.get(*block_start..).unwrap_or_default().to_owned()
                } else {
                    thinking.into_owned()
                };
                ThinkingBlock::Thinking {
                    thinking: Cow::Owned(thinking),
                    signature: Cow::Owned(signature.into_owned()),
                }
            }
            (data, None) => ThinkingBlock::RedactedThinking {
                data: Cow::Owned(data.into_owned()),
            },
        });
        *block_start = streamed.len();
        Ok(())
    }

    /// Streams message text (or a refusal) into the open message, opening one (and
    /// ending the open reasoning) if needed.
    fn message_text(&mut self, refusal: bool, text: &str) {
        let index = match self.open {
            Some(i) if matches!(self.entries.get(i).map(|e| &e.state), Some(State::Message)) => i,
            _ => {
                self.close_open();
                let item = OutputItem::Message {
                    id: new_id("msg_"),
                    status: "in_progress",
                    role: "assistant",
                    content: Vec::new(),
                };
                let index = self.add(item, State::Message);
                self.open = Some(index);
                index
            }
        };
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        let same_kind = match &entry.item {
            OutputItem::Message { content, .. } => {
                matches!(content.last(), Some(ContentPart::Refusal { .. })) == refusal
            }
            _ => return,
        };
        if entry.part_open && !same_kind {
            close_part(&mut self.writer, entry, index);
        }
        let OutputItem::Message { id, content, .. } = &mut entry.item else {
            return;
        };
        let content_index = content.len().saturating_sub(usize::from(entry.part_open));
        if !entry.part_open {
            entry.part_open = true;
            let part = if refusal {
                ContentPart::Refusal {
                    refusal: String::new(),
                }
            } else {
                ContentPart::text(String::new())
            };
            self.writer.event(
                "response.content_part.added",
                &PartEvent {
                    item_id: id,
                    output_index: index,
                    content_index,
                    part: &part,
                },
            );
            content.push(part);
        }
        let event = TextEvent {
            item_id: id,
            output_index: index,
            content_index,
            delta: Some(text),
            text: None,
            logprobs: (!refusal).then_some([]),
        };
        if refusal {
            self.writer.event("response.refusal.delta", &event);
        } else {
            self.writer.event("response.output_text.delta", &event);
        }
        match content.last_mut() {
            Some(ContentPart::OutputText { text: all, .. })
            | Some(ContentPart::Refusal { refusal: all }) => all.push_str(text),
            None => {}
        }
    }

    /// Takes a piece of a tool call: the first opens its item.
    fn tool_piece(&mut self, piece: ToolPiece<'_>) -> Result<(), StreamError> {
        let function = piece.function.unwrap_or_default();
        let index = match self.tools.iter().find(|(i, _)| *i == piece.index) {
            Some(&(_, entry)) => entry,
            None => {
                let name = function
                    .name
                    .as_ref()
                    .map(Str::as_str)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| StreamError::malformed("a tool call began without a name"))?
                    .to_owned();
                self.close_open();
                let call_id = piece
                    .id
                    .map_or_else(|| new_id("call_"), |id| id.0.into_owned());
                let (item, state) = if self.custom.contains(&name) {
                    let item = OutputItem::CustomToolCall {
                        id: new_id("ctc_"),
                        status: "in_progress",
                        call_id,
                        name,
                        input: String::new(),
                    };
                    (
                        item,
                        State::Custom {
                            arguments: String::new(),
                        },
                    )
                } else {
                    let item = OutputItem::FunctionCall {
                        id: new_id("fc_"),
                        status: "in_progress",
                        call_id,
                        name,
                        arguments: String::new(),
                    };
                    (item, State::Function)
                };
                let entry = self.add(item, state);
                self.tools.push((piece.index, entry));
                entry
            }
        };
        let Some(arguments) = function.arguments.map(|a| a.0).filter(|a| !a.is_empty()) else {
            return Ok(());
        };
        self.hold(arguments.len())?;
        let Some(entry) = self.entries.get_mut(index) else {
            return Ok(());
        };
        match (&mut entry.item, &mut entry.state) {
            (
                OutputItem::FunctionCall {
                    id, arguments: all, ..
                },
                _,
            ) => {
                self.writer.event(
                    "response.function_call_arguments.delta",
                    &ItemDelta {
                        item_id: id,
                        output_index: index,
                        delta: &arguments,
                    },
                );
                all.push_str(&arguments);
            }
            (_, State::Custom { arguments: all }) => all.push_str(&arguments),
            _ => {}
        }
        Ok(())
    }

    /// Ends the open reasoning or message item.
    fn close_open(&mut self) {
        if let Some(index) = self.open.take() {
            self.close(index);
        }
    }

    /// Ends every item still open, in order.
    fn close_all(&mut self) {
        self.open = None;
        for index in 0..self.entries.len() {
            self.close(index);
        }
    }

    /// Ends an item: its closing events, then `response.output_item.done`.
    fn close(&mut self, index: usize) {
        let truncated = outcome(self.finish_reason.as_deref()).0 == "incomplete";
        let Some(entry) = self.entries.get_mut(index) else {
            return;
        };
        if entry.done {
            return;
        }
        entry.done = true;
        if entry.part_open {
            close_part(&mut self.writer, entry, index);
        }
        let writer = &mut self.writer;
        match (&mut entry.item, &mut entry.state) {
            (
                OutputItem::Reasoning {
                    encrypted_content, ..
                },
                State::Reasoning { blocks, .. },
            ) if !blocks.is_empty() => {
                *encrypted_content = Some(encode_blocks(blocks));
            }
            (OutputItem::Message { status, .. }, _) => {
                *status = if truncated { "incomplete" } else { "completed" };
            }
            (
                OutputItem::FunctionCall {
                    id,
                    status,
                    name,
                    arguments,
                    ..
                },
                _,
            ) => {
                writer.event(
                    "response.function_call_arguments.done",
                    &ArgumentsDone {
                        item_id: id,
                        output_index: index,
                        name,
                        arguments,
                    },
                );
                *status = "completed";
            }
            (
                OutputItem::CustomToolCall {
                    id, status, input, ..
                },
                State::Custom { arguments },
            ) => {
                *input = custom_input(arguments);
                if !input.is_empty() {
                    writer.event(
                        "response.custom_tool_call_input.delta",
                        &ItemDelta {
                            item_id: id,
                            output_index: index,
                            delta: input,
                        },
                    );
                }
                writer.event(
                    "response.custom_tool_call_input.done",
                    &InputDone {
                        item_id: id,
                        output_index: index,
                        input,
                    },
                );
                *status = "completed";
            }
            _ => {}
        }
        writer.event(
            "response.output_item.done",
            &ItemEvent {
                output_index: index,
                item: &entry.item,
            },
        );
    }

    /// The answer is whole: ends the items and writes the final event with the whole
    /// Response object.
    fn complete(&mut self) -> Result<(), StreamError> {
        if self.answer.is_some() {
            return Ok(());
        }
        if self.finish_reason.is_none() {
            return Err(StreamError::malformed(
                "the chat stream ended without a finish_reason",
            ));
        }
        self.start();
        self.close_all();
        let (status, incomplete_details) = outcome(self.finish_reason.as_deref());
        let output: Vec<OutputItem> = std::mem::take(&mut self.entries)
            .into_iter()
            .map(|e| e.item)
            .collect();
        let usage = self.usage.or_else(|| self.inner.usage());
        let response = ResponseObject {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            error: None,
            incomplete_details,
            output: &output,
            usage: usage.map(ResponseUsage::from),
            echo: &self.echo,
        };
        let answer = serde_json::to_vec(&response).map_err(StreamError::malformed)?;
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        self.writer.raw_response_event(kind, &answer);
        self.answer = Some(Bytes::from(answer));
        Ok(())
    }
}

/// Ends an item's open summary or content part.
fn close_part(writer: &mut Writer, entry: &mut Entry, output_index: usize) {
    entry.part_open = false;
    match &entry.item {
        OutputItem::Reasoning { id, summary, .. } => {
            let Some(part) = summary.last() else {
                return;
            };
            writer.event(
                "response.reasoning_summary_text.done",
                &SummaryTextEvent {
                    item_id: id,
                    output_index,
                    summary_index: 0,
                    delta: None,
                    text: Some(&part.text),
                },
            );
            writer.event(
                "response.reasoning_summary_part.done",
                &SummaryPartEvent {
                    item_id: id,
                    output_index,
                    summary_index: 0,
                    part,
                },
            );
        }
        OutputItem::Message { id, content, .. } => {
            let Some(part) = content.last() else {
                return;
            };
            let content_index = content.len().saturating_sub(1);
            let (kind, text, logprobs) = match part {
                ContentPart::OutputText { text, .. } => {
                    ("response.output_text.done", text, Some([]))
                }
                ContentPart::Refusal { refusal } => ("response.refusal.done", refusal, None),
            };
            // The refusal's final event names its text `refusal`.
            if logprobs.is_some() {
                writer.event(
                    kind,
                    &TextEvent {
                        item_id: id,
                        output_index,
                        content_index,
                        delta: None,
                        text: Some(text),
                        logprobs,
                    },
                );
            } else {
                writer.event(
                    kind,
                    &RefusalDone {
                        item_id: id,
                        output_index,
                        content_index,
                        refusal: text,
                    },
                );
            }
            writer.event(
                "response.content_part.done",
                &PartEvent {
                    item_id: id,
                    output_index,
                    content_index,
                    part,
                },
            );
        }
        _ => {}
    }
}

impl StreamTranslator for Stream {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        if let Some(chat) = self.inner.feed(chunk)? {
            self.push(&chat)?;
        }
        Ok(take(&mut self.writer.out))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        if let Some(chat) = self.inner.finish()? {
            self.push(&chat)?;
        }
        if let Some(event) = self.parser.finish().map_err(StreamError::from)? {
            self.chat_event(&event.data)?;
        }
        self.complete()?;
        Ok(take(&mut self.writer.out))
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }

    fn answer(&mut self) -> Option<Bytes> {
        self.answer.clone()
    }

    fn next_sequence_number(&self) -> Option<u64> {
        Some(self.writer.next_sequence_number())
    }
}

//! The stream's wire: the chat chunks it reads (borrowed from each event where they
//! can be) and the Responses events it writes, each `event: <type>` with a `data` object
//! that starts with `type` and `sequence_number`.

use crate::provider::bridge::text::Str;
use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::object::{ContentPart, OutputItem, ResponseObject, SummaryText};
use crate::provider::openai_wire::{ThinkingBlock, UsageIn};

/// Writes events with their sequence numbers.
pub(super) struct Writer {
    /// What was written and not yet taken.
    pub out: BytesMut,
    seq: u64,
}

impl Writer {
    /// A writer numbering from 0.
    pub fn new() -> Self {
        Writer {
            out: BytesMut::new(),
            seq: 0,
        }
    }

    /// The sequence number the next event takes.
    pub fn next_sequence_number(&self) -> u64 {
        self.seq
    }

    /// Writes `event: kind` with `body`'s fields after `type` and `sequence_number`.
    pub fn event(&mut self, kind: &'static str, body: &impl Serialize) {
        self.header(kind);
        let start = self.out.len();
        // Serializing our own plain structs into memory cannot fail.
        let _ = serde_json::to_writer((&mut self.out).writer(), body);
        // The body's opening brace becomes the comma after the header's fields (every
        // body has fields).
        if let Some(brace) = self.out.get_mut(start) {
            *brace = b',';
        }
        self.out.put_slice(b"\n\n");
    }

    /// Writes `event: kind` carrying `response`, an already serialized Response object.
    pub fn raw_response_event(&mut self, kind: &'static str, response: &[u8]) {
        self.header(kind);
        self.out.put_slice(b",\"response\":");
        self.out.put_slice(response);
        self.out.put_slice(b"}\n\n");
    }

    /// `event: kind`, and the data up to the sequence number (its object left open).
    fn header(&mut self, kind: &'static str) {
        self.out.put_slice(b"event: ");
        self.out.put_slice(kind.as_bytes());
        self.out.put_slice(b"\ndata: {\"type\":\"");
        self.out.put_slice(kind.as_bytes());
        self.out.put_slice(b"\",\"sequence_number\":");
        // Writing a number into memory cannot fail.
        let _ = write!(self.out, "{}", self.seq);
        self.seq = self.seq.saturating_add(1);
    }
}

/// A chat chunk, the fields the events are made of.
#[derive(Deserialize)]
pub(super) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(default)]
    pub usage: Option<UsageIn>,
    /// An error some OpenAI-compatible servers write into the stream.
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct ChunkChoice<'a> {
    #[serde(default)]
    pub index: u32,
    #[serde(default, borrow)]
    pub delta: ChunkDelta<'a>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Str<'a>>,
}

#[derive(Default, Deserialize)]
pub(super) struct ChunkDelta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub refusal: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub reasoning_content: Option<Str<'a>>,
    /// What some OpenAI-compatible servers call `reasoning_content`.
    #[serde(default, borrow)]
    pub reasoning: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolPiece<'a>>>,
}

#[derive(Deserialize)]
pub(super) struct ToolPiece<'a> {
    #[serde(default)]
    pub index: u32,
    #[serde(default, borrow)]
    pub id: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub function: Option<FunctionPiece<'a>>,
}

#[derive(Default, Deserialize)]
pub(super) struct FunctionPiece<'a> {
    #[serde(default, borrow)]
    pub name: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub arguments: Option<Str<'a>>,
}

/// `response.created`, `.in_progress`.
#[derive(Serialize)]
pub(super) struct ResponseEvent<'a> {
    pub response: &'a ResponseObject<'a>,
}

/// `response.output_item.added`, `.done`.
#[derive(Serialize)]
pub(super) struct ItemEvent<'a> {
    pub output_index: usize,
    pub item: &'a OutputItem,
}

/// `response.content_part.added`, `.done`.
#[derive(Serialize)]
pub(super) struct PartEvent<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: usize,
    pub part: &'a ContentPart,
}

/// `response.output_text.delta`, `.done` and `response.refusal.delta`.
#[derive(Serialize)]
pub(super) struct TextEvent<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<[(); 0]>,
}

/// `response.refusal.done`.
#[derive(Serialize)]
pub(super) struct RefusalDone<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: usize,
    pub refusal: &'a str,
}

/// `response.reasoning_summary_part.added`, `.done`.
#[derive(Serialize)]
pub(super) struct SummaryPartEvent<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub summary_index: usize,
    pub part: &'a SummaryText,
}

/// `response.reasoning_summary_text.delta`, `.done`.
#[derive(Serialize)]
pub(super) struct SummaryTextEvent<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub summary_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
}

/// `response.function_call_arguments.delta`, `response.custom_tool_call_input.delta`.
#[derive(Serialize)]
pub(super) struct ItemDelta<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub delta: &'a str,
}

/// `response.function_call_arguments.done`.
#[derive(Serialize)]
pub(super) struct ArgumentsDone<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub name: &'a str,
    pub arguments: &'a str,
}

/// `response.custom_tool_call_input.done`.
#[derive(Serialize)]
pub(super) struct InputDone<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub input: &'a str,
}

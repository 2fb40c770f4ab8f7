//! Anthropic's Messages API served as itself: a `/v1/messages` call passes through with
//! only `model` replaced (thinking blocks and their signatures, `cache_control`,
//! documents, server tools and fields llmesh does not know all arrive as the client sent
//! them), with the client's `anthropic-beta` header. Answers pass through too; a tap
//! reads their usage for metering. Claude on Bedrock and on Vertex AI use the same tap.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use super::wire::{AnthropicUsage, DeltaUsage};
use crate::domain::{Reply, Usage};
use crate::provider::sse::Event;
use crate::provider::sse_translator::{SseHandler, SseTranslator};
use crate::provider::{StreamError, TranslateError};

/// The usage of a whole Messages answer; the body passes through untouched.
pub fn reply(body: Bytes) -> Result<Reply, TranslateError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(TranslateError::malformed)?;
    Ok(Reply {
        usage: answer.usage.map(AnthropicUsage::to_usage),
        body,
        usage_estimated: false,
    })
}

/// A relay for a Messages stream.
pub fn passthrough() -> SseTranslator<Tap> {
    SseTranslator::new(Tap::default())
}

/// Reads usage from the events of a Messages stream as they go by.
#[derive(Debug, Default)]
pub struct Tap {
    usage: AnthropicUsage,
    stopped: bool,
}

/// The parts of a stream event the tap reads.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Tapped {
    MessageStart {
        message: Started,
    },
    MessageDelta {
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    Error {
        error: Failure,
    },
}

#[derive(Deserialize)]
struct Started {
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
struct Failure {
    #[serde(default)]
    message: String,
}

impl Tap {
    /// Reads one event's data, named `name`.
    pub fn observe(&mut self, name: &str, data: &str) -> Result<(), StreamError> {
        match name {
            "message_start" | "message_delta" | "error" => {}
            "message_stop" => {
                self.stopped = true;
                return Ok(());
            }
            _ => return Ok(()),
        }
        match serde_json::from_str::<Tapped>(data).map_err(StreamError::malformed)? {
            Tapped::MessageStart { message } => self.usage = message.usage,
            Tapped::MessageDelta { usage: Some(u) } => {
                let usage = &mut self.usage;
                usage.output_tokens = u.output_tokens.unwrap_or(usage.output_tokens);
                usage.input_tokens = u.input_tokens.unwrap_or(usage.input_tokens);
                if u.cache_creation_input_tokens.is_some() {
                    usage.cache_write_input_tokens = u.cache_creation_input_tokens;
                }
                if u.cache_read_input_tokens.is_some() {
                    usage.cache_read_input_tokens = u.cache_read_input_tokens;
                }
            }
            Tapped::MessageDelta { usage: None } => {}
            // The relay ends the stream with an error event of its own, in this same
            // shape, and meters what came before.
            Tapped::Error { error } => return Err(StreamError::upstream(error.message)),
        }
        Ok(())
    }

    /// Whether `message_stop` came.
    pub fn complete(&self) -> bool {
        self.stopped
    }

    /// The usage so far.
    pub fn usage(&self) -> Usage {
        self.usage.to_usage()
    }
}

/// Writes one event as Anthropic frames it (an event without a name as data only).
pub fn write_event(out: &mut BytesMut, name: Option<&str>, data: &str) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

impl SseHandler for Tap {
    fn handle(&mut self, event: &Event, out: &mut BytesMut) -> Result<(), StreamError> {
        // Anthropic names every event; the name is also the data's `type`.
        let name = event.event.as_deref();
        self.observe(name.unwrap_or_default(), &event.data)?;
        write_event(out, name, &event.data);
        Ok(())
    }

    const LAST: &'static str = "message_stop";

    fn complete(&self) -> bool {
        self.stopped
    }

    fn usage(&self) -> Option<Usage> {
        Some(self.usage.to_usage())
    }
}

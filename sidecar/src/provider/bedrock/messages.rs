//! Claude on Bedrock serving Anthropic's Messages API as itself, through InvokeModel:
//! `POST /model/{modelId}/invoke` (or `/invoke-with-response-stream`) with the client's
//! Messages body minus `model` (it is in the path) and `stream` (the operation says
//! it), plus `anthropic_version: "bedrock-2023-05-31"` and the client's `anthropic-beta`
//! header as the body's `anthropic_beta` list, keeping only the betas Bedrock documents
//! ([`BEDROCK_BETAS`]): Bedrock refuses a call naming any other with a 400, and clients
//! such as Claude Code name several that only Anthropic's API knows (its own
//! `claude-code-20250219`, the Files API's...). Everything else (thinking blocks,
//! `cache_control`, documents, tools) passes as the client sent it.
//!
//! A whole answer is Anthropic's message object and passes through. A stream answers in
//! the binary eventstream framing: each `chunk` event's payload is `{"bytes": <base64>}`,
//! the base64 of one Anthropic stream event's JSON, which is written to the client as
//! Anthropic frames it (`event: <type>` and `data: <json>`). The events are kept as
//! Bedrock sends them: its `message_stop` carries an extra
//! `amazon-bedrock-invocationMetrics` object, which Anthropic's SDKs (whose Bedrock
//! clients read the very same events) ignore like any unknown field. An exception frame
//! (`throttlingException`, `modelStreamErrorException`...) or an `error` event ends the
//! stream with an error; usage is read by the same tap as Anthropic's own streams.
//!
//! Which deployments take this path: Anthropic Claude model ids (`anthropic.claude…`),
//! cross-region inference profiles (`us.anthropic.claude…`, `global.anthropic.claude…`)
//! and ARNs ending in either. Other models (and application inference profiles, whose
//! ARN does not name the model) serve Messages through the chat bridge and Converse.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;

use super::eventstream::{Decoder, Message};
use super::stream::failure;
use crate::domain::{CallView, Usage};
use crate::provider::anthropic::native::{Tap, write_event};
use crate::provider::openai_wire::{base64_decode, take};
use crate::provider::translate::Patched;
use crate::provider::{StreamError, StreamTranslator, TranslateError};

/// The `anthropic_version` Bedrock's Claude models take.
pub const VERSION: &str = "bedrock-2023-05-31";

/// Whether `model` (a model id, inference profile id or ARN) is an Anthropic Claude
/// model, which serves the Messages API natively.
pub fn is_claude(model: &str) -> bool {
    super::models::Family::of(model).claude().is_some()
}

/// The betas Claude on Bedrock takes, by name without their date.
pub const BEDROCK_BETAS: &[&str] = &[
    "computer-use-",
    "token-efficient-tools-",
    "interleaved-thinking-",
    "output-128k-",
    "dev-full-thinking-",
    "context-1m-",
    "context-management-",
    "effort-",
    "tool-search-tool-",
    "tool-examples-",
    "fine-grained-tool-streaming-",
];

/// The InvokeModel body for a Messages call.
pub fn body(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let betas: Vec<Value> = call
        .anthropic_beta
        .into_iter()
        .flat_map(|header| header.split(','))
        .map(str::trim)
        .filter(|beta| {
            let known = BEDROCK_BETAS.iter().any(|b| beta.starts_with(b));
            if !known && !beta.is_empty() {
                tracing::debug!(
                    beta,
                    "anthropic-beta not sent to Bedrock, which does not take it"
                );
            }
            known
        })
        .map(Value::from)
        .collect();
    let mut set = vec![("anthropic_version", Value::from(VERSION))];
    if !betas.is_empty() {
        set.push(("anthropic_beta", Value::Array(betas)));
    }
    Patched {
        body: call.body,
        set: &set,
        skip: &["model", "stream"],
    }
    .to_vec()
}

/// A streamed Messages answer: eventstream `chunk`s → Anthropic's SSE events.
#[derive(Default)]
pub struct Stream {
    decoder: Decoder,
    out: BytesMut,
    tap: Tap,
}

/// A `chunk` event's payload.
#[derive(Deserialize)]
struct Chunk {
    bytes: String,
}

/// The one field of an Anthropic stream event needed to name it.
#[derive(Deserialize)]
struct Typed<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

impl Stream {
    fn handle(&mut self, message: &Message) -> Result<(), StreamError> {
        if let Some(failure) = failure(message) {
            return Err(failure);
        }
        if message.header(":event-type") != Some("chunk") {
            // Event types Bedrock may add later.
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_slice(&message.payload)
            .map_err(|e| StreamError::malformed(format!("chunk payload: {e}")))?;
        let bytes = base64_decode(&chunk.bytes)
            .ok_or_else(|| StreamError::malformed("chunk bytes that are not base64"))?;
        let data = std::str::from_utf8(&bytes)
            .map_err(|e| StreamError::malformed(format!("chunk bytes: {e}")))?;
        let event: Typed<'_> = serde_json::from_str(data)
            .map_err(|e| StreamError::malformed(format!("chunk event: {e}")))?;
        self.tap.observe(&event.kind, data)?;
        if data.contains(['\n', '\r']) {
            // SSE data is one line: JSON written across lines is compacted first.
            let value: Value = serde_json::from_str(data).map_err(StreamError::malformed)?;
            write_event(&mut self.out, Some(&event.kind), &value.to_string());
        } else {
            write_event(&mut self.out, Some(&event.kind), data);
        }
        Ok(())
    }
}

impl StreamTranslator for Stream {
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
        if !self.tap.complete() {
            return Err(StreamError::malformed(
                "the stream ended before message_stop",
            ));
        }
        Ok(take(&mut self.out))
    }

    fn usage(&self) -> Option<Usage> {
        Some(self.tap.usage())
    }
}

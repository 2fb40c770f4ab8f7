//! OpenAI's Responses API served as itself (OpenAI, Azure OpenAI): the client's body
//! passes through with only `model` replaced, and so do answers and their event
//! streams; a tap reads usage from the final response for metering, and keeps that
//! response for the sidecar's own store.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::{Reply, Usage};
use crate::provider::sse::Event;
use crate::provider::sse_translator::{SseHandler, SseTranslator};
use crate::provider::{StreamError, TranslateError};

/// A Responses `usage` object.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesUsage {
    input_tokens: u64,
    output_tokens: u64,
    input_tokens_details: InputDetails,
    output_tokens_details: OutputDetails,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
struct InputDetails {
    cached_tokens: u64,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
struct OutputDetails {
    reasoning_tokens: u64,
}

impl From<ResponsesUsage> for Usage {
    fn from(u: ResponsesUsage) -> Usage {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            cached_tokens: u.input_tokens_details.cached_tokens,
            cache_write_tokens: 0,
            reasoning_tokens: u.output_tokens_details.reasoning_tokens,
        }
    }
}

/// The usage of a whole response; the body passes through untouched.
pub fn reply(body: Bytes) -> Result<Reply, TranslateError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(default)]
        usage: Option<ResponsesUsage>,
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(TranslateError::malformed)?;
    Ok(Reply {
        usage: answer.usage.map(Into::into),
        body,
        usage_estimated: false,
    })
}

/// A relay for a Responses event stream; `keep` holds on to the final response for the
/// sidecar's store (a call with `store: false`, as Codex makes, needs no copy of it).
pub fn passthrough(keep: bool) -> SseTranslator<Tap> {
    SseTranslator::new(Tap {
        keep,
        ..Tap::default()
    })
}

/// Reads the final response of a Responses stream as it goes by.
#[derive(Debug, Default)]
pub struct Tap {
    /// Whether the final response is kept for [`SseHandler::answer`].
    keep: bool,
    usage: Option<Usage>,
    /// The response `response.completed` (or `incomplete`) carried.
    answer: Option<Bytes>,
    ended: bool,
    /// Events passed on: OpenAI numbers them from 0, so this is the next one's number.
    passed: u64,
}

/// Event names that end a stream with the whole response.
const FINAL: [&str; 3] = [
    "response.completed",
    "response.incomplete",
    "response.failed",
];

impl SseHandler for Tap {
    fn handle(&mut self, event: &Event, out: &mut BytesMut) -> Result<(), StreamError> {
        let name = event.event.as_deref();
        if let Some(name) = name.filter(|n| FINAL.contains(n) || *n == "error") {
            #[derive(Deserialize)]
            struct Final<'a> {
                #[serde(borrow)]
                response: Option<&'a RawValue>,
                #[serde(default)]
                message: Option<String>,
            }
            let parsed: Final<'_> =
                serde_json::from_str(&event.data).map_err(StreamError::malformed)?;
            if name == "error" {
                return Err(StreamError::upstream(
                    parsed
                        .message
                        .unwrap_or_else(|| "the upstream failed".into()),
                ));
            }
            if let Some(response) = parsed.response {
                #[derive(Deserialize)]
                struct WithUsage {
                    #[serde(default)]
                    usage: Option<ResponsesUsage>,
                }
                let with: WithUsage =
                    serde_json::from_str(response.get()).map_err(StreamError::malformed)?;
                self.usage = with.usage.map(Into::into);
                if self.keep {
                    self.answer = Some(Bytes::copy_from_slice(response.get().as_bytes()));
                }
            }
            self.ended = true;
        }
        if let Some(name) = name {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\n");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(event.data.as_bytes());
        out.extend_from_slice(b"\n\n");
        self.passed += 1;
        Ok(())
    }

    const LAST: &'static str = "response.completed";

    fn complete(&self) -> bool {
        self.ended
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn answer(&mut self) -> Option<Bytes> {
        self.answer.take()
    }

    fn next_sequence_number(&self) -> Option<u64> {
        Some(self.passed)
    }
}

//! An OpenAI SSE stream relayed as-is, with a tap that reads its usage.
//!
//! Only whole events are released, so a stream cut mid-event never hands the client
//! half an event; an event still incomplete past [`MAX_EVENT_BYTES`] ends the stream
//! instead of growing the buffer.
//!
//! The upstream is always asked for the usage chunk (`stream_options.include_usage`),
//! because a stream without it cannot be metered. When the client did not ask, the tap
//! removes what the client would not have seen: the usage-only chunk and the
//! `"usage":null` field on other chunks. Events are parsed only when they mention
//! usage, so a long stream costs one substring search per batch of events.

use bytes::{Bytes, BytesMut};
use memchr::memmem;
use serde::Deserialize;
use serde_json::Value;

use crate::domain::Usage;
use crate::provider::openai_wire::UsageIn;
use crate::provider::sse::{MAX_EVENT_BYTES, SseError};
use crate::provider::{StreamError, StreamTranslator};

/// Relays one OpenAI SSE stream.
#[derive(Debug)]
pub struct SsePassthrough {
    partial: BytesMut,
    /// How much of `partial` is known to hold no event boundary, so each chunk is
    /// searched once instead of the whole buffer again.
    scanned: usize,
    /// Remove the usage the client did not ask for.
    strip: bool,
    /// The last usage the stream reported.
    usage: Option<Usage>,
}

const USAGE_KEY: &[u8] = b"\"usage\"";
const NULL_USAGE: &[u8] = b",\"usage\":null";

/// The search for [`USAGE_KEY`], built once: every batch of events is searched.
static USAGE: std::sync::LazyLock<memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memmem::Finder::new(USAGE_KEY));

impl SsePassthrough {
    /// A relay; `strip` removes usage the client did not ask for.
    pub fn new(strip: bool) -> Self {
        SsePassthrough {
            partial: BytesMut::new(),
            scanned: 0,
            strip,
            usage: None,
        }
    }

    /// Whole events on their way to the client: usage is read, and stripped when asked.
    /// Batches that do not mention usage (most) pass untouched and uncopied.
    fn tap(&mut self, events: Bytes) -> Bytes {
        if USAGE.find(&events).is_none() {
            return events;
        }
        if !self.strip {
            for event in split_events(&events) {
                self.usage_chunk(event);
            }
            return events;
        }
        let mut out = BytesMut::with_capacity(events.len());
        for event in split_events(&events) {
            self.strip_event(event, &mut out);
        }
        out.freeze()
    }

    /// The chunk an event holds when it reports a usage object, which is kept.
    fn usage_chunk(&mut self, event: &[u8]) -> Option<Value> {
        USAGE.find(event)?;
        if null_usage_at(event).is_some() {
            return None;
        }
        let data = event
            .strip_prefix(b"data: ")
            .or_else(|| event.strip_prefix(b"data:"))?
            .trim_ascii_end();
        let chunk: Value = serde_json::from_slice(data).ok()?;
        if let Some(usage) = chunk
            .get("usage")
            .filter(|u| u.is_object())
            .and_then(|u| UsageIn::deserialize(u).ok())
        {
            self.usage = Some(usage.into());
        }
        Some(chunk)
    }

    /// Writes one event (with its trailing blank line) as the client gets it: without
    /// `"usage":null`, and without the usage chunk the client did not ask for.
    fn strip_event(&mut self, event: &[u8], out: &mut BytesMut) {
        if let Some(at) = null_usage_at(event) {
            out.extend_from_slice(&event[..at]);
            out.extend_from_slice(&event[at + NULL_USAGE.len()..]);
            return;
        }
        let Some(mut chunk) = self.usage_chunk(event) else {
            out.extend_from_slice(event);
            return;
        };
        let no_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if no_choices {
            return;
        }
        if let Some(object) = chunk.as_object_mut() {
            object.remove("usage");
        }
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(chunk.to_string().as_bytes());
        out.extend_from_slice(b"\n\n");
    }

    /// Whole events from what has arrived, if any are complete.
    #[deny(clippy::arithmetic_side_effects)]
    fn release(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        // The common case: a chunk of whole events passes through without copying.
        if self.partial.is_empty() && ends_event(&chunk) {
            return Ok(Some(chunk));
        }
        self.partial.extend_from_slice(&chunk);
        // A boundary may straddle old and new bytes: start up to 3 bytes back.
        let from = self.scanned.saturating_sub(3);
        let end = self
            .partial
            .get(from..)
            .and_then(last_event_end)
            .map(|end| from.saturating_add(end));
        let events = end.map(|end| self.partial.split_to(end).freeze());
        // What is left follows the last boundary, so holds none.
        self.scanned = self.partial.len();
        if self.partial.len() > MAX_EVENT_BYTES {
            return Err(StreamError::too_large(SseError::TooLarge));
        }
        Ok(events)
    }
}

impl StreamTranslator for SsePassthrough {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        Ok(self.release(chunk)?.map(|events| self.tap(events)))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        if self.partial.is_empty() {
            return Ok(None);
        }
        // An upstream that ends without the final blank line still sent its event, if
        // its last line is whole; one cut mid-line is a broken stream, never half an
        // event for the client.
        if !self.partial.ends_with(b"\n") {
            return Err(StreamError::malformed(
                "the stream ended in the middle of an event",
            ));
        }
        // The blank line that ends the event.
        self.partial.extend_from_slice(b"\n");
        self.scanned = 0;
        let events = self.partial.split().freeze();
        Ok(Some(self.tap(events)))
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }
}

/// Where an event's first `"usage"` is `,"usage":null`, if it is.
fn null_usage_at(event: &[u8]) -> Option<usize> {
    let at = USAGE.find(event)?;
    memmem::find(event, NULL_USAGE).filter(|n| n + 1 == at)
}

/// Whether `data` ends exactly at an event boundary (a blank line).
fn ends_event(data: &[u8]) -> bool {
    data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n")
}

/// The offset just past the last event boundary in `data`, if any.
#[deny(clippy::arithmetic_side_effects)]
fn last_event_end(data: &[u8]) -> Option<usize> {
    let lf = memmem::rfind(data, b"\n\n").map(|p| p.saturating_add(2));
    let crlf = memmem::rfind(data, b"\r\n\r\n").map(|p| p.saturating_add(4));
    lf.max(crlf)
}

/// Splits on blank lines, keeping each event's terminator.
fn split_events(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = memmem::find(rest, b"\n\n").map_or(rest.len(), |i| i + 2);
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn strips_what_the_client_did_not_ask_for_and_keeps_the_count() {
        let mut tap = SsePassthrough::new(true);
        let out = tap
            .feed(Bytes::from(format!("{CHUNK}{USAGE}{DONE}")))
            .unwrap()
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
        );
        let usage = tap.usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 2));
    }

    #[test]
    fn passes_everything_through_when_the_client_asked() {
        let mut tap = SsePassthrough::new(false);
        let all = Bytes::from(format!("{CHUNK}{USAGE}{DONE}"));
        assert_eq!(tap.feed(all.clone()).unwrap().unwrap(), all);
        assert_eq!(tap.usage().unwrap().total(), 7);
    }

    #[test]
    fn a_usage_on_a_chunk_with_choices_is_removed_but_the_chunk_kept() {
        let mut tap = SsePassthrough::new(true);
        let event = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
        let out = tap.feed(Bytes::from(event)).unwrap().unwrap();
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains("usage"), "{text}");
        assert!(text.contains("finish_reason"));
        assert_eq!(tap.usage().unwrap().total(), 2);
    }

    #[test]
    fn events_without_usage_are_untouched() {
        let mut tap = SsePassthrough::new(true);
        let event = Bytes::from_static(b"data: {\"choices\":[]}\n\n");
        assert_eq!(tap.feed(event.clone()).unwrap().unwrap(), event);
        assert_eq!(tap.usage(), None);
    }

    #[test]
    fn sse_passthrough_releases_only_whole_events() {
        let mut t = SsePassthrough::new(false);
        assert_eq!(
            t.feed(Bytes::from_static(b"data: 1\n\n")).unwrap().unwrap(),
            "data: 1\n\n"
        );
        assert_eq!(t.feed(Bytes::from_static(b"data: {\"a\"")).unwrap(), None);
        assert_eq!(
            t.feed(Bytes::from_static(b":2}\n\ndata: 3"))
                .unwrap()
                .unwrap(),
            "data: {\"a\":2}\n\n"
        );
        assert_eq!(
            t.finish().unwrap_err().code,
            "upstream_malformed_stream",
            "cut mid-line"
        );
    }

    #[test]
    fn a_last_event_without_its_blank_line_still_counts() {
        let mut t = SsePassthrough::new(false);
        assert_eq!(t.feed(Bytes::from_static(b"data: [DONE]\n")).unwrap(), None);
        assert_eq!(t.finish().unwrap().unwrap(), "data: [DONE]\n\n");
    }

    #[test]
    fn sse_passthrough_finds_boundaries_split_across_chunks() {
        let mut t = SsePassthrough::new(false);
        assert_eq!(t.feed(Bytes::from_static(b"data: 1\r\n\r")).unwrap(), None);
        assert_eq!(
            t.feed(Bytes::from_static(b"\ndata: 2\n")).unwrap().unwrap(),
            "data: 1\r\n\r\n"
        );
        assert_eq!(
            t.feed(Bytes::from_static(b"\ndata: 3\n")).unwrap().unwrap(),
            "data: 2\n\n"
        );
        assert_eq!(t.finish().unwrap().unwrap(), "data: 3\n\n");
    }

    #[test]
    fn sse_passthrough_refuses_an_event_past_the_limit() {
        let mut t = SsePassthrough::new(false);
        let piece = Bytes::from(vec![b'x'; 1024 * 1024]);
        let mut last = Ok(None);
        for _ in 0..=MAX_EVENT_BYTES / piece.len() {
            last = t.feed(piece.clone());
            if last.is_err() {
                break;
            }
        }
        assert_eq!(last.unwrap_err().code, "upstream_event_too_large");
        assert!(t.partial.len() <= MAX_EVENT_BYTES + piece.len());
    }
}

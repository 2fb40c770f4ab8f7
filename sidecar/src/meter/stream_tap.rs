//! Reads usage out of a relayed OpenAI-style stream. The sidecar always asks upstreams
//! for the usage chunk (`stream_options.include_usage`), because a stream without it
//! cannot be metered; when the client did not ask, the tap removes what the client would
//! not have seen: the usage-only chunk and the `"usage":null` field on other chunks.
//!
//! Chunks are only parsed when they mention usage, so a long stream costs a substring
//! search per event.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::usage::Usage;

/// Watches the events of one stream.
#[derive(Debug)]
pub struct StreamTap {
    strip: bool,
    usage: Option<Usage>,
}

const NULL_USAGE: &[u8] = b",\"usage\":null";

impl StreamTap {
    /// A tap; `strip` removes usage the client did not ask for.
    pub fn new(strip: bool) -> Self {
        StreamTap { strip, usage: None }
    }

    /// The last usage the stream reported.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Looks at whole events (`data: ...\n\n`, possibly several) on their way to the
    /// client; returns what the client gets.
    pub fn pass(&mut self, events: Bytes) -> Bytes {
        if find(&events, b"\"usage\"").is_none() {
            return events;
        }
        let mut out = BytesMut::with_capacity(events.len());
        let mut changed = false;
        for event in split_events(&events) {
            match self.event(event) {
                Some(kept) if kept.len() == event.len() => out.extend_from_slice(event),
                Some(kept) => {
                    changed = true;
                    out.extend_from_slice(&kept);
                }
                None => changed = true,
            }
        }
        if changed { out.freeze() } else { events }
    }

    /// One event, with its trailing blank line: what to forward, `None` to drop it.
    fn event(&mut self, event: &[u8]) -> Option<Vec<u8>> {
        let Some(at) = find(event, b"\"usage\"") else {
            return Some(event.to_vec());
        };
        let data = event
            .strip_prefix(b"data: ")
            .or_else(|| event.strip_prefix(b"data:"))
            .map(|d| d.trim_ascii_end());
        if let Some(at_null) = find(event, NULL_USAGE)
            && at_null + 1 == at
        {
            if !self.strip {
                return Some(event.to_vec());
            }
            let mut kept = event[..at_null].to_vec();
            kept.extend_from_slice(&event[at_null + NULL_USAGE.len()..]);
            return Some(kept);
        }
        let Some(Ok(mut chunk)) = data.map(serde_json::from_slice::<Value>) else {
            return Some(event.to_vec());
        };
        if let Some(usage) = chunk.get("usage").and_then(Usage::from_value) {
            self.usage = Some(usage);
        }
        if !self.strip {
            return Some(event.to_vec());
        }
        let no_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        if no_choices {
            return None;
        }
        if let Some(object) = chunk.as_object_mut() {
            object.remove("usage");
        }
        let mut kept = b"data: ".to_vec();
        kept.extend_from_slice(chunk.to_string().as_bytes());
        kept.extend_from_slice(b"\n\n");
        Some(kept)
    }
}

/// Splits on blank lines, keeping each event's terminator.
fn split_events(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = find(rest, b"\n\n").map_or(rest.len(), |i| i + 2);
        let (event, tail) = rest.split_at(end);
        rest = tail;
        Some(event)
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: &str = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    #[test]
    fn strips_what_the_client_did_not_ask_for_and_keeps_the_count() {
        let mut tap = StreamTap::new(true);
        let out = tap.pass(Bytes::from(format!("{CHUNK}{USAGE}{DONE}")));
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n"
        );
        let usage = tap.usage().unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 2));
    }

    #[test]
    fn passes_everything_through_when_the_client_asked() {
        let mut tap = StreamTap::new(false);
        let all = Bytes::from(format!("{CHUNK}{USAGE}{DONE}"));
        assert_eq!(tap.pass(all.clone()), all);
        assert_eq!(tap.usage().unwrap().total(), 7);
    }

    #[test]
    fn a_usage_on_a_chunk_with_choices_is_removed_but_the_chunk_kept() {
        let mut tap = StreamTap::new(true);
        let event = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
        let out = tap.pass(Bytes::from(event));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains("usage"), "{text}");
        assert!(text.contains("finish_reason"));
        assert_eq!(tap.usage().unwrap().total(), 2);
    }

    #[test]
    fn events_without_usage_are_untouched() {
        let mut tap = StreamTap::new(true);
        let event = Bytes::from_static(b"data: {\"choices\":[]}\n\n");
        assert_eq!(tap.pass(event.clone()), event);
        assert_eq!(tap.usage(), None);
    }
}

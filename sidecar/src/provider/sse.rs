//! An incremental parser for server-sent events, for translating providers whose streams
//! are SSE (Anthropic, Gemini, Cohere). Bytes arrive in arbitrary chunks; whole events
//! come out.
//!
//! Upstream input is bounded: a line, and the data of one event, may hold at most
//! [`MAX_EVENT_BYTES`]; past that the stream is refused rather than buffered. Each
//! chunk is scanned once (only the new bytes are searched for line ends), so a stream
//! that never ends a line costs linear time up to the limit, not quadratic.

// Every sum here is bounded by a length already in memory; the lint proves no other
// arithmetic on upstream input slipped in.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

/// The most bytes one SSE line or one event's data may hold. The largest events real
/// providers send are inline images (a few MB of base64 in one Gemini chunk); 8 MiB
/// leaves room for those while bounding what one stream can make the sidecar hold.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// One server-sent event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Parses a byte stream into events.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    current: Event,
    has_data: bool,
}

/// A stream that cannot be read as SSE.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line is not UTF-8 text.
    #[error("the event stream is not valid UTF-8")]
    NotUtf8,
    /// A line or an event is larger than [`MAX_EVENT_BYTES`].
    #[error("an upstream event is larger than {} MiB", MAX_EVENT_BYTES >> 20)]
    TooLarge,
}

impl From<SseError> for crate::provider::StreamError {
    fn from(err: SseError) -> Self {
        match err {
            SseError::NotUtf8 => crate::provider::StreamError::malformed(err),
            SseError::TooLarge => crate::provider::StreamError::too_large(err),
        }
    }
}

/// Whether `have` more bytes joined to `more` would exceed [`MAX_EVENT_BYTES`].
fn over_limit(have: usize, more: usize) -> bool {
    have.saturating_add(more) > MAX_EVENT_BYTES
}

impl SseParser {
    /// Feeds a chunk; appends the events it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        let mut rest = chunk;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            let (head, tail) = rest.split_at(pos);
            rest = tail.get(1..).unwrap_or_default();
            if self.line.is_empty() {
                // The common case: the whole line is in this chunk, read where it is.
                if over_limit(0, head.len()) {
                    return Err(SseError::TooLarge);
                }
                self.line_done(head.strip_suffix(b"\r").unwrap_or(head), out)?;
                continue;
            }
            if over_limit(self.line.len(), head.len()) {
                return Err(SseError::TooLarge);
            }
            self.line.extend_from_slice(head);
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line_done(&line, out)?;
            line.clear();
            self.line = line;
        }
        if over_limit(self.line.len(), rest.len()) {
            return Err(SseError::TooLarge);
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// The stream ended: returns an event left without its closing blank line.
    pub fn finish(&mut self) -> Result<Option<Event>, SseError> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out)?;
        }
        self.line_done(b"", &mut out)?;
        Ok(out.pop())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if line.is_empty() {
            if self.has_data || self.current.event.is_some() {
                out.push(std::mem::take(&mut self.current));
                self.has_data = false;
            }
            return Ok(());
        }
        if line.first() == Some(&b':') {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
                // Many short `data:` lines add up: the event as a whole is bounded too.
                if over_limit(self.current.data.len(), value.len().saturating_add(1)) {
                    return Err(SseError::TooLarge);
                }
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).unwrap();
        }
        out.extend(p.finish().unwrap());
        out
    }

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let events = parse(&[
            b"event: message_start\nda",
            b"ta: {\"a\":1}\r\n\r\n: keep-alive\n\nevent: ping\n",
            b"data: {}\n\ndata: line1\ndata: line2\n\n",
        ]);
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].event.as_deref(), Some("message_start"));
        assert_eq!(events[0].data, "{\"a\":1}");
        assert_eq!(events[1].event.as_deref(), Some("ping"));
        assert_eq!(events[2].data, "line1\nline2");
    }

    #[test]
    fn an_unterminated_last_event_is_returned_at_the_end() {
        let events = parse(&[b"data: tail"]);
        assert_eq!(
            events,
            vec![Event {
                event: None,
                data: "tail".into()
            }]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = SseParser::default();
        assert_eq!(
            p.push(b"data: \xff\n", &mut Vec::new()),
            Err(SseError::NotUtf8)
        );
    }

    #[test]
    fn a_line_without_an_end_is_refused_past_the_limit() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        let piece = vec![b'x'; 1024 * 1024];
        let mut result = Ok(());
        for _ in 0..=MAX_EVENT_BYTES / piece.len() {
            result = p.push(&piece, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::TooLarge));
        assert!(
            p.line.len() <= MAX_EVENT_BYTES,
            "never held more than the limit"
        );
    }

    #[test]
    fn an_event_of_many_short_lines_is_refused_past_the_limit() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        let lines = "data: 0123456789abcdef0123456789abcdef\n".repeat(32 * 1024);
        let mut result = Ok(());
        for _ in 0..=2 * MAX_EVENT_BYTES / lines.len() {
            result = p.push(lines.as_bytes(), &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseError::TooLarge));
        assert!(out.is_empty());
    }
}

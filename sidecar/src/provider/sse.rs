//! An incremental parser for server-sent events, for translating providers whose streams
//! are SSE (Anthropic, Gemini, Cohere). Bytes arrive in arbitrary chunks; whole events
//! come out.

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

/// A stream that is not valid SSE text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the event stream is not valid UTF-8")]
pub struct NotUtf8;

impl SseParser {
    /// Feeds a chunk; appends the events it completes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Event>) -> Result<(), NotUtf8> {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            self.line_done(&line, out)?;
            line.clear();
            self.line = line;
        }
        self.line.extend_from_slice(rest);
        Ok(())
    }

    /// The stream ended: returns an event left without its closing blank line.
    pub fn finish(&mut self) -> Result<Option<Event>, NotUtf8> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, &mut out)?;
        }
        self.line_done(b"", &mut out)?;
        Ok(out.pop())
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<Event>) -> Result<(), NotUtf8> {
        if line.is_empty() {
            if self.has_data || self.current.event.is_some() {
                out.push(std::mem::take(&mut self.current));
                self.has_data = false;
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(());
        }
        let line = std::str::from_utf8(line).map_err(|_| NotUtf8)?;
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.current.event = Some(value.to_owned()),
            "data" => {
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
        assert_eq!(p.push(b"data: \xff\n", &mut Vec::new()), Err(NotUtf8));
    }
}

//! A decoder for AWS's `application/vnd.amazon.eventstream` framing, in which
//! ConverseStream answers. Each message is
//!
//! ```text
//! total length u32 | headers length u32 | prelude CRC32 u32 | headers | payload | message CRC32 u32
//! ```
//!
//! (big-endian; the prelude CRC covers the first 8 bytes, the message CRC everything
//! before it). Headers are `name length u8 | name | type u8 | value`; Bedrock only
//! sends strings (type 7, u16 length), but every type is parsed so none derails the
//! decoder. A CRC mismatch or an impossible length is an error: the stream cannot be
//! trusted after it, so the decoder stops there instead of guessing where the next
//! message starts.
//!
//! Bounded: a prelude announcing more than [`MAX_MESSAGE`] (16 MiB, AWS's own cap) is
//! refused before its bytes are buffered, so the decoder holds at most one message and
//! one received chunk; after an error it holds nothing more.

use bytes::{Buf, Bytes, BytesMut};

/// Prelude: two lengths and the prelude CRC.
const PRELUDE: usize = 12;
/// The smallest message: prelude and message CRC.
const MIN_MESSAGE: usize = PRELUDE + 4;
/// AWS caps a message at 16 MiB and its headers at 128 KiB.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 128 * 1024;

/// One decoded message: its string headers and payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers whose value is a string, in wire order.
    pub headers: Vec<(String, String)>,
    /// The payload (JSON for Bedrock).
    pub payload: Bytes,
}

impl Message {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why the stream cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The prelude's CRC does not match its bytes.
    #[error("eventstream prelude CRC mismatch (sent {sent:08x}, computed {computed:08x})")]
    PreludeCrc {
        /// What the frame says.
        sent: u32,
        /// What the bytes hash to.
        computed: u32,
    },
    /// The message's CRC does not match its bytes.
    #[error("eventstream message CRC mismatch (sent {sent:08x}, computed {computed:08x})")]
    MessageCrc {
        /// What the frame says.
        sent: u32,
        /// What the bytes hash to.
        computed: u32,
    },
    /// The lengths in the prelude are impossible.
    #[error("eventstream message length {total} (headers {headers}) is invalid")]
    Length {
        /// Total length.
        total: usize,
        /// Headers length.
        headers: usize,
    },
    /// A header is cut short or has an unknown type.
    #[error("eventstream header is malformed: {0}")]
    Header(&'static str),
    /// The stream ended inside a message.
    #[error("the eventstream ended inside a message ({0} bytes left over)")]
    Truncated(usize),
}

/// Decodes messages from bytes that arrive in arbitrary chunks.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
    failed: bool,
}

// Lengths come from the upstream: the lint proves each one is checked before use.
#[deny(clippy::arithmetic_side_effects)]
impl Decoder {
    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        // After an error nothing more is decoded, so nothing more is kept.
        if !self.failed {
            self.buf.extend_from_slice(chunk);
        }
    }

    /// The next whole message, `None` until one is complete.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.failed || self.buf.len() < PRELUDE {
            return Ok(None);
        }
        let result = self.decode();
        if result.is_err() {
            self.failed = true;
            self.buf = BytesMut::new();
        }
        result
    }

    /// The upstream ended: an error if a message was left half-received.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() || self.failed {
            Ok(())
        } else {
            Err(DecodeError::Truncated(self.buf.len()))
        }
    }

    fn decode(&mut self) -> Result<Option<Message>, DecodeError> {
        let total = be_u32(&self.buf[0..4]) as usize;
        let headers_len = be_u32(&self.buf[4..8]) as usize;
        let sent = be_u32(&self.buf[8..12]);
        let computed = crc32(&self.buf[..8]);
        if sent != computed {
            return Err(DecodeError::PreludeCrc { sent, computed });
        }
        if !(MIN_MESSAGE..=MAX_MESSAGE).contains(&total)
            || headers_len > MAX_HEADERS
            || headers_len > total.saturating_sub(MIN_MESSAGE)
        {
            return Err(DecodeError::Length {
                total,
                headers: headers_len,
            });
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        // total >= MIN_MESSAGE, checked above.
        let body_end = total.saturating_sub(4);
        let sent = be_u32(&self.buf[body_end..total]);
        let computed = crc32(&self.buf[..body_end]);
        if sent != computed {
            return Err(DecodeError::MessageCrc { sent, computed });
        }
        let mut frame = self.buf.split_to(total).freeze();
        frame.truncate(body_end);
        frame.advance(PRELUDE);
        let headers = parse_headers(&frame[..headers_len])?;
        frame.advance(headers_len);
        Ok(Some(Message {
            headers,
            payload: frame,
        }))
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[deny(clippy::arithmetic_side_effects)]
fn parse_headers(mut h: &[u8]) -> Result<Vec<(String, String)>, DecodeError> {
    let mut out = Vec::new();
    while let Some((&name_len, rest)) = h.split_first() {
        let name_len = usize::from(name_len);
        let name = rest.get(..name_len).ok_or(DecodeError::Header("name"))?;
        let name =
            std::str::from_utf8(name).map_err(|_| DecodeError::Header("name is not UTF-8"))?;
        let (&kind, rest) = rest[name_len..]
            .split_first()
            .ok_or(DecodeError::Header("type"))?;
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(DecodeError::Header("unknown value type")),
        };
        let used = match fixed {
            Some(n) => {
                if rest.len() < n {
                    return Err(DecodeError::Header("value"));
                }
                n
            }
            None => {
                let len = rest.get(..2).ok_or(DecodeError::Header("value length"))?;
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let used = len.saturating_add(2);
                let value = rest.get(2..used).ok_or(DecodeError::Header("value"))?;
                if kind == 7 {
                    let value = std::str::from_utf8(value)
                        .map_err(|_| DecodeError::Header("string value is not UTF-8"))?;
                    out.push((name.to_owned(), value.to_owned()));
                }
                used
            }
        };
        h = &rest[used..];
    }
    Ok(out)
}

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a message the way AWS does, for the tests (the mock Bedrock in
    /// llmesh-tests has its own, independent encoder).
    pub(crate) fn encode(headers: &[(&str, u8, &[u8])], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, kind, value) in headers {
            h.push(name.len() as u8);
            h.extend_from_slice(name.as_bytes());
            h.push(*kind);
            if matches!(kind, 6 | 7) {
                h.extend_from_slice(&(value.len() as u16).to_be_bytes());
            }
            h.extend_from_slice(value);
        }
        let total = PRELUDE + h.len() + payload.len() + 4;
        let mut out = Vec::new();
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(h.len() as u32).to_be_bytes());
        let c = crc32(&out);
        out.extend_from_slice(&c.to_be_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(payload);
        let c = crc32(&out);
        out.extend_from_slice(&c.to_be_bytes());
        out
    }

    fn event(kind: &str, payload: &str) -> Vec<u8> {
        encode(
            &[
                (":event-type", 7, kind.as_bytes()),
                (":content-type", 7, b"application/json"),
                (":message-type", 7, b"event"),
            ],
            payload.as_bytes(),
        )
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn decodes_messages_split_anywhere() {
        let stream = [
            event("messageStart", r#"{"role":"assistant"}"#),
            encode(
                &[
                    ("flag", 0, b""),
                    ("n", 4, &7i32.to_be_bytes()),
                    ("t", 8, &5i64.to_be_bytes()),
                    ("u", 9, &[1; 16]),
                    ("raw", 6, b"\x00\x01"),
                    (":event-type", 7, b"contentBlockDelta"),
                ],
                br#"{"contentBlockIndex":0,"delta":{"text":"hi"},"p":"abc"}"#,
            ),
        ]
        .concat();
        for size in [1, 3, 7, 16, stream.len()] {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for piece in stream.chunks(size) {
                d.push(piece);
                while let Some(m) = d.next_message().unwrap() {
                    got.push(m);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), 2, "chunks of {size}");
            assert_eq!(got[0].header(":event-type"), Some("messageStart"));
            assert_eq!(got[1].header(":event-type"), Some("contentBlockDelta"));
            assert_eq!(got[1].headers.len(), 1, "only string headers are kept");
            assert!(got[1].payload.starts_with(b"{\"contentBlockIndex\""));
        }
    }

    #[test]
    fn corruption_and_truncation_are_errors() {
        let good = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        let mut d = Decoder::default();
        d.push(&bad);
        assert!(matches!(
            d.next_message(),
            Err(DecodeError::MessageCrc { .. })
        ));
        // Once broken, it stays broken: nothing after a bad frame is trusted.
        d.push(&good);
        assert_eq!(d.next_message(), Ok(None));

        let mut bad = good.clone();
        bad[9] ^= 1;
        let mut d = Decoder::default();
        d.push(&bad);
        assert!(matches!(
            d.next_message(),
            Err(DecodeError::PreludeCrc { .. })
        ));

        let mut huge = Vec::new();
        huge.extend_from_slice(&(u32::MAX).to_be_bytes());
        huge.extend_from_slice(&0u32.to_be_bytes());
        let c = crc32(&huge);
        huge.extend_from_slice(&c.to_be_bytes());
        let mut d = Decoder::default();
        d.push(&huge);
        assert!(matches!(d.next_message(), Err(DecodeError::Length { .. })));

        let mut d = Decoder::default();
        d.push(&good[..good.len() - 3]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.finish(), Err(DecodeError::Truncated(good.len() - 3)));

        let mut d = Decoder::default();
        d.push(&encode(&[("x", 42, b"")], b""));
        assert_eq!(
            d.next_message(),
            Err(DecodeError::Header("unknown value type"))
        );
    }
}

//! An encoder for AWS's `application/vnd.amazon.eventstream` binary framing, which
//! Bedrock's `ConverseStream` answers in, plus ways to break it on purpose.
//!
//! A message is:
//!
//! ```text
//! total length (u32 BE) | headers length (u32 BE) | prelude CRC32 (u32 BE)
//! headers: { name length (u8) | name | value type (u8) | value }*
//! payload
//! message CRC32 (u32 BE, over everything before it)
//! ```
//!
//! String values (type 7) are a u16 BE length and UTF-8 bytes. Bedrock's events carry
//! `:event-type`, `:content-type` and `:message-type` (`event`, `exception` with an
//! `:exception-type`, or `error` with `:error-code` / `:error-message`).

use bytes::Bytes;
use serde_json::Value;

/// The bytes before the headers: two lengths and the prelude's CRC.
pub const PRELUDE_LEN: usize = 12;

/// A header value. Bedrock only sends strings; the other types exist so tests can
/// check that a decoder skips them correctly.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderValue {
    /// Type 0 / 1.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6: u16 length and raw bytes.
    Bytes(Vec<u8>),
    /// Type 7: u16 length and UTF-8.
    String(String),
    /// Type 8: milliseconds since the epoch.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

/// One eventstream message before encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Headers in wire order.
    pub headers: Vec<(String, HeaderValue)>,
    /// The payload (JSON for Bedrock).
    pub payload: Vec<u8>,
}

impl Message {
    /// A Bedrock event: `:event-type`, `:content-type: application/json`,
    /// `:message-type: event`, and `payload` as JSON.
    pub fn event(event_type: &str, payload: &Value) -> Message {
        Message {
            headers: vec![
                (":event-type".into(), HeaderValue::String(event_type.into())),
                (
                    ":content-type".into(),
                    HeaderValue::String("application/json".into()),
                ),
                (":message-type".into(), HeaderValue::String("event".into())),
            ],
            payload: serde_json::to_vec(payload).unwrap_or_default(),
        }
    }

    /// A modelled exception, as Bedrock sends mid-stream: `:exception-type` is the
    /// stream member's name (`throttlingException`, `modelStreamErrorException`, ...)
    /// and the payload `{"message": ...}`.
    pub fn exception(exception_type: &str, message: &str) -> Message {
        Message {
            headers: vec![
                (
                    ":exception-type".into(),
                    HeaderValue::String(exception_type.into()),
                ),
                (
                    ":content-type".into(),
                    HeaderValue::String("application/json".into()),
                ),
                (
                    ":message-type".into(),
                    HeaderValue::String("exception".into()),
                ),
            ],
            payload: serde_json::to_vec(&serde_json::json!({ "message": message }))
                .unwrap_or_default(),
        }
    }

    /// An unmodelled protocol error: `:message-type: error` with the code and message
    /// in headers and an empty payload.
    pub fn error(code: &str, message: &str) -> Message {
        Message {
            headers: vec![
                (":message-type".into(), HeaderValue::String("error".into())),
                (":error-code".into(), HeaderValue::String(code.into())),
                (":error-message".into(), HeaderValue::String(message.into())),
            ],
            payload: Vec::new(),
        }
    }

    /// The wire bytes, CRCs included.
    pub fn encode(&self) -> Bytes {
        let mut headers = Vec::new();
        for (name, value) in &self.headers {
            // Names are at most 255 bytes on the wire; test scripts stay far below.
            headers.push(name.len() as u8);
            headers.extend_from_slice(name.as_bytes());
            encode_value(value, &mut headers);
        }
        let total = PRELUDE_LEN + headers.len() + self.payload.len() + 4;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_be_bytes());
        out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        let prelude_crc = crc32(&out);
        out.extend_from_slice(&prelude_crc.to_be_bytes());
        out.extend_from_slice(&headers);
        out.extend_from_slice(&self.payload);
        let message_crc = crc32(&out);
        out.extend_from_slice(&message_crc.to_be_bytes());
        Bytes::from(out)
    }
}

fn encode_value(value: &HeaderValue, out: &mut Vec<u8>) {
    match value {
        HeaderValue::Bool(true) => out.push(0),
        HeaderValue::Bool(false) => out.push(1),
        HeaderValue::Byte(v) => {
            out.push(2);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Short(v) => {
            out.push(3);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Int(v) => {
            out.push(4);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Long(v) => {
            out.push(5);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Bytes(v) => {
            out.push(6);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v);
        }
        HeaderValue::String(v) => {
            out.push(7);
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        HeaderValue::Timestamp(v) => {
            out.push(8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        HeaderValue::Uuid(v) => {
            out.push(9);
            out.extend_from_slice(v);
        }
    }
}

/// `frame` with its message CRC (the last four bytes) flipped.
pub fn with_bad_message_crc(frame: &[u8]) -> Bytes {
    let mut out = frame.to_vec();
    if let Some(last) = out.last_mut() {
        *last ^= 0xff;
    }
    Bytes::from(out)
}

/// `frame` with its prelude CRC (bytes 8..12) flipped.
pub fn with_bad_prelude_crc(frame: &[u8]) -> Bytes {
    let mut out = frame.to_vec();
    if let Some(b) = out.get_mut(PRELUDE_LEN - 1) {
        *b ^= 0xff;
    }
    Bytes::from(out)
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as eventstream uses.
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

/// Splits a body of concatenated frames back into messages, checking both CRCs;
/// the mock's own tests (and sidecar tests that inspect frames) use it.
pub fn decode_all(mut data: &[u8]) -> Result<Vec<Message>, String> {
    let mut messages = Vec::new();
    while !data.is_empty() {
        let read_u32 = |b: &[u8], at: usize| -> Result<u32, String> {
            b.get(at..at + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_be_bytes)
                .ok_or_else(|| "truncated".to_string())
        };
        let total = read_u32(data, 0)? as usize;
        let headers_len = read_u32(data, 4)? as usize;
        if read_u32(data, 8)? != crc32(&data[..8]) {
            return Err("prelude CRC mismatch".into());
        }
        if total < PRELUDE_LEN + headers_len + 4 || data.len() < total {
            return Err("truncated".into());
        }
        let frame = &data[..total];
        if read_u32(frame, total - 4)? != crc32(&frame[..total - 4]) {
            return Err("message CRC mismatch".into());
        }
        let mut headers = Vec::new();
        let mut h = &frame[PRELUDE_LEN..PRELUDE_LEN + headers_len];
        while let Some((&name_len, rest)) = h.split_first() {
            let name_len = usize::from(name_len);
            let name = rest.get(..name_len).ok_or("header name")?;
            let name = String::from_utf8(name.to_vec()).map_err(|e| e.to_string())?;
            let (&kind, rest) = rest[name_len..].split_first().ok_or("header type")?;
            let fixed = |n: usize| rest.get(..n).ok_or_else(|| "header value".to_string());
            let (value, used) = match kind {
                0 => (HeaderValue::Bool(true), 0),
                1 => (HeaderValue::Bool(false), 0),
                2 => (HeaderValue::Byte(fixed(1)?[0] as i8), 1),
                3 => {
                    let b = fixed(2)?;
                    (HeaderValue::Short(i16::from_be_bytes([b[0], b[1]])), 2)
                }
                4 => {
                    let b: [u8; 4] = fixed(4)?.try_into().map_err(|_| "int")?;
                    (HeaderValue::Int(i32::from_be_bytes(b)), 4)
                }
                5 | 8 => {
                    let b: [u8; 8] = fixed(8)?.try_into().map_err(|_| "long")?;
                    let v = i64::from_be_bytes(b);
                    let value = if kind == 5 {
                        HeaderValue::Long(v)
                    } else {
                        HeaderValue::Timestamp(v)
                    };
                    (value, 8)
                }
                6 | 7 => {
                    let b = fixed(2)?;
                    let len = usize::from(u16::from_be_bytes([b[0], b[1]]));
                    let raw = rest.get(2..2 + len).ok_or("header value")?.to_vec();
                    let value = if kind == 6 {
                        HeaderValue::Bytes(raw)
                    } else {
                        HeaderValue::String(String::from_utf8(raw).map_err(|e| e.to_string())?)
                    };
                    (value, 2 + len)
                }
                9 => {
                    let b: [u8; 16] = fixed(16)?.try_into().map_err(|_| "uuid")?;
                    (HeaderValue::Uuid(b), 16)
                }
                other => return Err(format!("unknown header type {other}")),
            };
            headers.push((name, value));
            h = &rest[used..];
        }
        messages.push(Message {
            headers,
            payload: frame[PRELUDE_LEN + headers_len..total - 4].to_vec(),
        });
        data = &data[total..];
    }
    Ok(messages)
}

impl Message {
    /// A string header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }

    /// The payload as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or(Value::Null)
    }
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn an_empty_message_matches_the_published_layout() {
        // The smallest message: 16 bytes, no headers, no payload. Its prelude CRC is
        // CRC32 of 00 00 00 10 00 00 00 00, its message CRC that of the first 12.
        let frame = Message {
            headers: vec![],
            payload: vec![],
        }
        .encode();
        assert_eq!(frame.len(), 16);
        assert_eq!(&frame[..8], &[0, 0, 0, 0x10, 0, 0, 0, 0]);
        assert_eq!(&frame[8..12], &crc32(&frame[..8]).to_be_bytes());
        assert_eq!(&frame[12..], &crc32(&frame[..12]).to_be_bytes());
    }

    #[test]
    fn events_round_trip_with_every_header_type() {
        let mut message = Message::event("contentBlockDelta", &json!({"delta": {"text": "hi"}}));
        message.headers.extend([
            ("b".into(), HeaderValue::Bool(true)),
            ("f".into(), HeaderValue::Bool(false)),
            ("y".into(), HeaderValue::Byte(-1)),
            ("s".into(), HeaderValue::Short(-2)),
            ("i".into(), HeaderValue::Int(3)),
            ("l".into(), HeaderValue::Long(-4)),
            ("r".into(), HeaderValue::Bytes(vec![1, 2])),
            ("t".into(), HeaderValue::Timestamp(5)),
            ("u".into(), HeaderValue::Uuid([7; 16])),
        ]);
        let two = [
            message.encode(),
            Message::exception("throttlingException", "slow").encode(),
        ]
        .concat();
        let decoded = decode_all(&two).unwrap();
        assert_eq!(decoded[0], message);
        assert_eq!(decoded[0].header(":event-type"), Some("contentBlockDelta"));
        assert_eq!(decoded[1].header(":message-type"), Some("exception"));
        assert_eq!(
            decoded[1].header(":exception-type"),
            Some("throttlingException")
        );
        assert_eq!(decoded[1].json(), json!({"message": "slow"}));
    }

    #[test]
    fn corruption_is_detected() {
        let frame = Message::event("messageStop", &json!({"stopReason": "end_turn"})).encode();
        assert_eq!(
            decode_all(&with_bad_message_crc(&frame)).unwrap_err(),
            "message CRC mismatch"
        );
        assert_eq!(
            decode_all(&with_bad_prelude_crc(&frame)).unwrap_err(),
            "prelude CRC mismatch"
        );
        assert_eq!(
            decode_all(&frame[..frame.len() - 1]).unwrap_err(),
            "truncated"
        );
    }
}

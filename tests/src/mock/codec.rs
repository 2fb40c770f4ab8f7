//! Small helpers the providers' wire formats share: script-value checks, token
//! counting, deterministic embeddings, schema-shaped tool arguments, and the percent
//! and hex encodings SigV4 and Bedrock's paths need (base64 is the `base64` crate's).

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};

/// Status codes out of range are a broken test script; fail where it is written.
pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or_else(|_| panic!("invalid HTTP status {status}"))
}

/// A header pair from test-script strings; invalid ones are a broken script.
pub(crate) fn header_pair(name: &str, value: &str) -> (HeaderName, HeaderValue) {
    let name =
        HeaderName::try_from(name).unwrap_or_else(|e| panic!("invalid header name {name:?}: {e}"));
    let value = HeaderValue::try_from(value)
        .unwrap_or_else(|e| panic!("invalid header value {value:?}: {e}"));
    (name, value)
}

/// Serializes test data; these types (maps with string keys) cannot fail.
pub(crate) fn to_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Roughly one token per word, as every mock counts.
pub(crate) fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The first `max` words of `text`, as an answer cut at an output limit reads.
pub(crate) fn first_words(text: &str, max: u64) -> String {
    let kept: String = text.split_inclusive(' ').take(max as usize).collect();
    kept.trim_end().to_owned()
}

/// Where the earliest of `stops` occurs in `text`, as a stop sequence cuts an answer.
pub(crate) fn first_stop<S: AsRef<str>>(text: &str, stops: &[S]) -> Option<usize> {
    stops
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s))
        .min()
}

/// The arguments of `mock-two-cities`: the first declared tool called twice in
/// parallel, for Paris and for Rome.
pub(crate) fn two_cities() -> [Value; 2] {
    [json!({"city": "Paris"}), json!({"city": "Rome"})]
}

/// The output limit `mock-max-tokens` answers stop at: half the reply, whatever the
/// request asked.
pub(crate) fn max_tokens_for(model: &str, text: &str, requested: Option<u64>) -> Option<u64> {
    if model.contains("mock-max-tokens") {
        Some((words(text) / 2).max(1))
    } else {
        requested
    }
}

/// A deterministic unit vector of `dim` components derived from `seed`: equal inputs
/// embed equally and different ones (almost always) differently, as real embeddings do.
pub(crate) fn unit_vector(seed: &[u8], dim: usize) -> Vec<f32> {
    // FNV-1a over the seed, then xorshift for the components.
    let mut state = 0xcbf2_9ce4_8422_2325_u64;
    for b in seed {
        state = (state ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut vector: Vec<f32> = (0..dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Top 24 bits into [-1, 1): exactly representable in an f32.
            ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect();
    let norm = vector.iter().map(|c| c * c).sum::<f32>().sqrt();
    if norm > 0.0 {
        for c in &mut vector {
            *c /= norm;
        }
    }
    vector
}

/// Tool arguments that satisfy a simple JSON schema, made from its property names.
pub(crate) fn input_from_schema(schema: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(props) = schema["properties"].as_object() {
        for (name, prop) in props {
            let value = if let Some(first) = prop["enum"].as_array().and_then(|e| e.first()) {
                first.clone()
            } else {
                match prop["type"].as_str() {
                    Some("number" | "integer") => json!(1),
                    Some("boolean") => json!(true),
                    Some("object") => input_from_schema(prop),
                    Some("array") => json!([]),
                    _ => json!(format!("mock-{name}")),
                }
            };
            out.insert(name.clone(), value);
        }
    }
    Value::Object(out)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or invalid UTF-8.
pub fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but RFC 3986 unreserved characters, with upper-case hex
/// (what SigV4 calls URI-encoding).
pub fn uri_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percent_codecs() {
        assert_eq!(
            percent_decode("anthropic.claude-v2%3A1").unwrap(),
            "anthropic.claude-v2:1"
        );
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%4").is_none());
        assert_eq!(uri_encode("a:b/c d~"), "a%3Ab%2Fc%20d~");
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }

    #[test]
    fn unit_vectors_are_deterministic_and_normalised() {
        let a = unit_vector(b"x", 16);
        assert_eq!(a, unit_vector(b"x", 16));
        assert_ne!(a, unit_vector(b"y", 16));
        let norm: f32 = a.iter().map(|c| c * c).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}

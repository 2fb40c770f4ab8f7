//! What a cached answer is filed under: a SHA-256 of the call in a canonical form, so
//! two calls that mean the same get the same key however their JSON was written.
//!
//! The canonical form is the parsed request body (every field the client sent, known to
//! llmesh or not) written with object keys sorted, members whose value is `null` left
//! out (JSON APIs read a `null` as the field's absence), numbers written one way
//! (`1.0` as `1`), strings escaped one way, and no whitespace. Left out too are the
//! fields that cannot change the answer ([`inert`]): the stream switches
//! (`stream`, `stream_options`: a streamed and a whole call share an entry), and what
//! only labels or routes the call (`user`, `metadata`, `store` on chat,
//! `prompt_cache_key`, `safety_identifier`). Everything else is in the key: an unknown
//! field may change the answer, and keying on it costs at most a miss.
//!
//! Besides the body the key covers the API (`/v1/chat/completions` and `/v1/messages`
//! answer in different shapes), the virtual key the call came with (a key never sees
//! another key's answers), and the `anthropic-beta` header (it switches features on).

use ring::digest;
use serde_json::{Map, Number, Value};

use crate::domain::Endpoint;

/// The key an answer is filed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(pub [u8; 32]);

/// Why a call is neither answered from the cache nor stored in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uncacheable {
    /// `n` above 1 asks for several different samples of one prompt.
    Samples,
    /// A Responses call that keeps state (`store` not `false`, `previous_response_id`,
    /// `conversation`) or runs in the background: its answer is not only a reply.
    Stateful,
}

/// The fields of `endpoint`'s requests that cannot change the answer.
pub fn inert(endpoint: Endpoint) -> &'static [&'static str] {
    match endpoint {
        Endpoint::ChatCompletions => &[
            "stream",
            "stream_options",
            "user",
            "metadata",
            "store",
            "prompt_cache_key",
            "safety_identifier",
        ],
        Endpoint::Completions => &["stream", "stream_options", "user"],
        Endpoint::Embeddings => &["user"],
        Endpoint::Messages => &["stream", "metadata"],
        // `store` is always false here (other calls are not cached).
        Endpoint::Responses => &[
            "stream",
            "stream_options",
            "user",
            "metadata",
            "store",
            "prompt_cache_key",
            "safety_identifier",
        ],
    }
}

/// Whether a call may be cached at all.
pub fn cacheable(endpoint: Endpoint, body: &Map<String, Value>) -> Result<(), Uncacheable> {
    let present = |field: &str| body.get(field).is_some_and(|v| !v.is_null());
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions => {
            if body.get("n").and_then(Value::as_u64).is_some_and(|n| n > 1) {
                return Err(Uncacheable::Samples);
            }
        }
        Endpoint::Responses => {
            let store = body.get("store").and_then(Value::as_bool);
            let background = body.get("background").and_then(Value::as_bool);
            if store != Some(false)
                || background == Some(true)
                || present("previous_response_id")
                || present("conversation")
            {
                return Err(Uncacheable::Stateful);
            }
        }
        Endpoint::Embeddings | Endpoint::Messages => {}
    }
    Ok(())
}

/// The key of a call to `endpoint` with `body`, made with `scope`'s virtual key (none in
/// a namespace without keys) and `anthropic_beta`.
pub fn key(
    endpoint: Endpoint,
    scope: Option<&str>,
    anthropic_beta: Option<&str>,
    body: &Map<String, Value>,
) -> Key {
    let mut sink = digest::Context::new(&digest::SHA256);
    sink.put(b"llmesh-cache-1");
    for part in [Some(endpoint.as_str()), scope, anthropic_beta] {
        match part {
            Some(text) => string(text, &mut sink),
            None => sink.put(b"-"),
        }
    }
    object(body, inert(endpoint), &mut sink);
    let mut out = [0u8; 32];
    out.copy_from_slice(sink.finish().as_ref());
    Key(out)
}

/// Where the canonical form is written: the digest, or a buffer in tests.
pub trait Sink {
    /// Appends bytes.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for digest::Context {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes `value` in the canonical form.
pub fn canonical(value: &Value, sink: &mut impl Sink) {
    match value {
        Value::Null => sink.put(b"null"),
        Value::Bool(true) => sink.put(b"true"),
        Value::Bool(false) => sink.put(b"false"),
        Value::Number(n) => number(n, sink),
        Value::String(s) => string(s, sink),
        Value::Array(items) => {
            sink.put(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sink.put(b",");
                }
                canonical(item, sink);
            }
            sink.put(b"]");
        }
        Value::Object(map) => object(map, &[], sink),
    }
}

/// An object with sorted keys, without `null` members and those named in `skip`.
fn object(map: &Map<String, Value>, skip: &[&str], sink: &mut impl Sink) {
    let mut members: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(k, v)| !v.is_null() && !skip.contains(&k.as_str()))
        .collect();
    // serde_json's map is sorted already unless built with `preserve_order`; sorting
    // here keeps the key independent of that feature.
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    sink.put(b"{");
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            sink.put(b",");
        }
        string(k, sink);
        sink.put(b":");
        canonical(v, sink);
    }
    sink.put(b"}");
}

/// Integers as integers, floats with an integral value below 2^53 as integers too, other
/// floats in their shortest round-trip form.
fn number(n: &Number, sink: &mut impl Sink) {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if let Some(i) = n.as_i64() {
        sink.put(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        sink.put(u.to_string().as_bytes());
    } else if let Some(f) = n.as_f64() {
        if f.fract() == 0.0 && f.abs() < EXACT {
            // Exact: the value is an integer below 2^53 (and `-0.0` becomes `0`).
            #[allow(clippy::cast_possible_truncation)]
            let i = f as i64;
            sink.put(i.to_string().as_bytes());
        } else {
            sink.put(format!("{f:?}").as_bytes());
        }
    }
}

/// A string in quotes, with `"`, `\` and control characters escaped.
fn string(s: &str, sink: &mut impl Sink) {
    sink.put(b"\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: Option<[u8; 2]> = match b {
            b'"' => Some(*b"\\\""),
            b'\\' => Some(*b"\\\\"),
            _ => None,
        };
        if escaped.is_none() && b >= 0x20 {
            continue;
        }
        sink.put(&bytes[start..i]);
        match escaped {
            Some(pair) => sink.put(&pair),
            None => sink.put(format!("\\u{:04x}", b).as_bytes()),
        }
        start = i + 1;
    }
    sink.put(&bytes[start..]);
    sink.put(b"\"");
}

#[cfg(test)]
#[path = "key_tests.rs"]
mod tests;

//! Helpers for the provider translation tests: golden files for upstream request bodies,
//! and reassembly of streamed OpenAI chunks into what a client ends up with.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use http::StatusCode;
use serde_json::Value;

use crate::support::{post_stream, sse_data};

/// Compares `actual` with `tests/golden/{provider}/{name}.json` field by field, naming
/// every differing path. `UPDATE_GOLDEN=1` rewrites the file instead (review the diff!).
pub fn golden(provider: &str, name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(provider)
        .join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
        std::fs::write(&path, text).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    let expected: Value = serde_json::from_str(&text).unwrap();
    let mut diffs = Vec::new();
    diff("$", &expected, actual, &mut diffs);
    assert!(
        diffs.is_empty(),
        "{} differs from the request sent upstream:\n  {}",
        path.display(),
        diffs.join("\n  ")
    );
}

fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => diff(&format!("{path}.{k}"), ev, av, out),
                    None => out.push(format!("{path}.{k}: missing (expected {ev})")),
                }
            }
            for k in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{path}.{k}: unexpected {}", a[k]));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: {} items, expected {}", a.len(), e.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        _ if expected != actual => out.push(format!("{path}: {actual}, expected {expected}")),
        _ => {}
    }
}

/// What a client assembles from a streamed chat completion.
#[derive(Debug, Default)]
pub struct Assembled {
    pub status: u16,
    pub chunks: Vec<Value>,
    pub text: String,
    pub reasoning: String,
    /// (id, name, arguments) per tool call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub error: Option<Value>,
    pub done: bool,
    /// Whether every chunk had the same id.
    pub one_id: bool,
}

/// Streams a chat completion through the sidecar and reassembles it, checking on the
/// way that tool call pieces arrive in index order with their id and name first.
pub async fn stream_chat(addr: SocketAddr, body: Value) -> Assembled {
    let (status, _, frames) = post_stream(addr, body).await;
    let mut out = Assembled {
        status: status.as_u16(),
        one_id: true,
        ..Assembled::default()
    };
    if status != StatusCode::OK {
        let text: Vec<u8> = frames.iter().flat_map(|(_, b)| b.to_vec()).collect();
        out.error = serde_json::from_slice(&text).ok();
        return out;
    }
    for data in sse_data(&frames) {
        if data == "[DONE]" {
            out.done = true;
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap();
        if chunk.get("error").is_some() {
            out.error = Some(chunk);
            continue;
        }
        if let Some(first) = out.chunks.first()
            && first["id"] != chunk["id"]
        {
            out.one_id = false;
        }
        let choice = &chunk["choices"][0];
        out.text
            .push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        out.reasoning
            .push_str(choice["delta"]["reasoning_content"].as_str().unwrap_or(""));
        for d in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let i = d["index"].as_u64().unwrap() as usize;
            if i == out.tool_calls.len() {
                let id = d["id"]
                    .as_str()
                    .expect("a new tool call starts with its id");
                let name = d["function"]["name"].as_str().expect("and its name");
                out.tool_calls.push((id.into(), name.into(), String::new()));
            }
            assert!(
                i < out.tool_calls.len(),
                "tool call index {i} skipped ahead"
            );
            out.tool_calls[i]
                .2
                .push_str(d["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            out.finish_reason = Some(f.to_owned());
        }
        if chunk.get("usage").is_some_and(|u| !u.is_null()) {
            out.usage = Some(chunk["usage"].clone());
        }
        out.chunks.push(chunk);
    }
    out
}

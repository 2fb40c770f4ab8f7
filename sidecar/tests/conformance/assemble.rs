//! Reassembly of a streamed chat completion into what a client ends up with, checking
//! on the way that tool call pieces arrive in index order with their id and name first.

use std::net::SocketAddr;

use http::StatusCode;
use serde_json::Value;

use crate::support::{post_stream, sse_data};

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

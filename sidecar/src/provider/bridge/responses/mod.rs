//! OpenAI's Responses API (`POST /v1/responses`) over chat, for providers that do not
//! serve it natively: the request is restated as a chat request ([`to_chat`]), and the
//! provider's chat answer as a Response object ([`reply`]) or as Responses stream events
//! ([`Stream`]).
//!
//! Request, Responses → chat (anything refused is a 400 naming the field):
//!
//! | Responses | chat |
//! |---|---|
//! | `instructions` | first `system` message |
//! | `input` string | one `user` message |
//! | `message` item (or an item with `role` and no `type`) | message; `developer` → `system`; parts `input_text`/`output_text`/`refusal` → text, `input_image.image_url` → `image_url`, `input_file.file_data` → `file`; `file_id`/`file_url` refused |
//! | `function_call` | assistant `tool_calls` entry (consecutive calls and the assistant message before them make one message) |
//! | `custom_tool_call` | assistant tool call with arguments `{"input": <input>}` |
//! | `function_call_output`, `custom_tool_call_output` | `tool` message (string or parts) |
//! | `reasoning` | `thinking_blocks` and `reasoning_content` of the next assistant message (one is made when only tool calls follow; dropped when no assistant output follows); `encrypted_content` not minted by llmesh keeps only its summary text |
//! | `item_reference`, other item types | refused (`input`) |
//! | `tools`: `function` | function tool (`strict` kept) |
//! | `tools`: `custom` (text or grammar format) | function tool taking one string `input`, the grammar in its description; calls come back as `custom_tool_call` |
//! | `tools`: hosted (`web_search`, `file_search`, `mcp`, `local_shell`, ...) | left out, their type in [`ChatCall::hosted_tools`] |
//! | `tool_choice` `auto`/`none`/`required`, `{type: function\|custom, name}` | the same, named as a function; hosted-tool and `allowed_tools` choices refused |
//! | `parallel_tool_calls`, `temperature`, `top_p`, `user`, `service_tier`, `top_logprobs`, `model` | copied |
//! | `prompt_cache_key`, `safety_identifier`, `client_metadata` | left out, in [`ChatCall::dropped`] |
//! | `max_output_tokens` | `max_completion_tokens` |
//! | `text.format` `json_schema` (a `name` required)/`json_object`/`text` | `response_format` (`text` → none) |
//! | `text.verbosity` | left out, in [`ChatCall::dropped`] |
//! | `reasoning.effort` | `reasoning_effort` (`reasoning.summary` only shapes the output: reasoning comes back as summary text whatever it says) |
//! | `stream` | `stream`, with `stream_options.include_usage` so usage comes back |
//! | `metadata`, `store`, `include`, `stream_options`, `background: false`, `truncation: "disabled"` | the sidecar's own, not sent |
//! | `previous_response_id` | refused: the server expands it before the bridge runs |
//! | `background: true` | refused |
//! | anything else | copied as is: the provider's parameter policy refuses it (400 naming it) or drops it |
//!
//! Fields set to `null` are treated as absent.
//!
//! Answer, chat → Responses: `reasoning_content` and `thinking_blocks` → a `reasoning`
//! item (summary text, and `encrypted_content` carrying the blocks), `content` → a
//! `message` item (`refusal` → a refusal part), `tool_calls` → `function_call` items, or
//! `custom_tool_call` items for the request's custom tools (`input` unwrapped from the
//! arguments); `finish_reason` `length` and `content_filter` → status `incomplete` with
//! `max_output_tokens`/`content_filter`; usage → Responses usage. The Response object
//! echoes the request's settings.
//!
//! Reasoning round trip: a provider's signed reasoning (`thinking_blocks`) leaves as
//! `encrypted_content` = `llmesh.v1.` + base64url (no padding) of the blocks' JSON, so a
//! client that sends the reasoning item back (Codex, the Agents SDKs) gives the provider
//! its signatures on the next turn. It is encoded, not encrypted: the blocks are the
//! provider's own and already signed.

mod events;
mod object;
mod reply;
mod request;
mod stream;

#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

pub use reply::reply;
pub use request::to_chat;
pub use stream::Stream;

use crate::provider::openai_wire::ThinkingBlock;

/// What marks `encrypted_content` llmesh wrote.
const ENCRYPTED_PREFIX: &str = "llmesh.v1.";

/// `prefix` and 32 random hex digits: the ids of responses and their items.
fn new_id(prefix: &str) -> String {
    format!("{prefix}{:032x}", fastrand::u128(..))
}

/// The names of the request's custom tools, whose calls go back as `custom_tool_call`.
fn custom_tool_names(body: &Map<String, Value>) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("custom"))
        .filter_map(|tool| tool.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The `input` of a custom tool call made through chat, whose arguments are
/// `{"input": "..."}`; arguments of another shape (a model that did not follow the
/// schema) are passed on whole rather than lost.
fn custom_input(arguments: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Wrapped {
        input: String,
    }
    serde_json::from_str::<Wrapped>(arguments)
        .map(|w| w.input)
        .unwrap_or_else(|_| arguments.to_owned())
}

/// `encrypted_content` carrying `blocks` (blocks of unknown kinds left out: they cannot
/// be written).
fn encode_blocks(blocks: &[ThinkingBlock<'_>]) -> String {
    let known: Vec<_> = blocks
        .iter()
        .filter(|b| **b != ThinkingBlock::Other)
        .collect();
    // Serializing our own plain structs into memory cannot fail.
    let json = serde_json::to_vec(&known).unwrap_or_default();
    let mut out = String::with_capacity(ENCRYPTED_PREFIX.len() + json.len().div_ceil(3) * 4);
    out.push_str(ENCRYPTED_PREFIX);
    base64url::encode(&json, &mut out);
    out
}

/// The blocks in `encrypted_content` llmesh wrote; `None` for anyone else's (OpenAI's
/// own), `Some(Err)` for ours damaged.
fn decode_blocks(content: &str) -> Option<Result<Vec<ThinkingBlock<'static>>, ()>> {
    let data = content.strip_prefix(ENCRYPTED_PREFIX)?;
    Some(base64url::decode(data).and_then(|json| {
        let blocks: Vec<ThinkingBlock<'_>> = serde_json::from_slice(&json).map_err(|_| ())?;
        Ok(blocks
            .into_iter()
            .filter(|b| *b != ThinkingBlock::Other)
            .map(ThinkingBlock::into_owned)
            .collect())
    }))
}

/// Base64url without padding (RFC 4648 §5), for `encrypted_content`.
mod base64url {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Appends `bytes` encoded to `out`.
    pub fn encode(bytes: &[u8], out: &mut String) {
        for chunk in bytes.chunks(3) {
            let b = [
                chunk.first().copied().unwrap_or(0),
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            // A chunk of k bytes makes k + 1 characters.
            for shift in [18, 12, 6, 0].into_iter().take(chunk.len() + 1) {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            }
        }
    }

    fn value(c: u8) -> Result<u32, ()> {
        Ok(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return Err(()),
        }))
    }

    /// The bytes `text` encodes; padding is tolerated, anything else not in the
    /// alphabet is an error.
    pub fn decode(text: &str) -> Result<Vec<u8>, ()> {
        let text = text.trim_end_matches('=').as_bytes();
        let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
        for chunk in text.chunks(4) {
            if chunk.len() == 1 {
                return Err(());
            }
            let mut n = 0u32;
            for (i, &c) in chunk.iter().enumerate() {
                n |= value(c)? << (18 - 6 * i);
            }
            let bytes = n.to_be_bytes();
            // k characters carry k - 1 bytes.
            out.extend_from_slice(bytes.get(1..chunk.len()).unwrap_or_default());
        }
        Ok(out)
    }
}

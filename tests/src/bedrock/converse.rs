//! Converse and ConverseStream: the request checked the way Bedrock checks it
//! ([`check`], and the model's own fields in [`model`]), the mock's answer, and that
//! answer rendered as Converse JSON or as ConverseStream's eventstream frames.
//!
//! The answer is deterministic: `mock reply to: <last user text>` (images appear as
//! `[image/<format> <n> bytes]`, so a test can see they arrived whole), cut at the first
//! stop sequence (`stop_sequence`) or after `maxTokens` words (`max_tokens`). When the
//! last user turn carries tool results the reply quotes them. Tool calls happen when
//! the tool choice forces one (with no text before them, as Claude answers a forced
//! choice) or the model name asks: `mock-tool-call` (one call, after a short text block)
//! and `mock-parallel-tools` (one call per tool); Claude's `disable_parallel_tool_use`
//! keeps it to one. Arguments are made from the tool's JSON schema:
//! `"mock-<property>"` for strings, `1` for numbers, `true` for booleans, the first
//! value of an `enum`; native structured output (`outputConfig`) answers text JSON made
//! the same way from its schema.
//!
//! When the request turns reasoning on (Claude's `thinking`, Nova 2's
//! `reasoningConfig`, gpt-oss's `reasoning_effort`) the answer starts with a
//! `reasoningContent` block, `Thinking about: <last user text>.`, signed for Claude
//! (see [`model::signature`]); `mock-redacted` models add a `redactedContent` block.

use bytes::Bytes;
use serde_json::{Value, json};

mod check;
mod model;

use super::eventstream::Message;
use crate::mock::{
    first_stop, first_words, input_from_schema, max_tokens_for, to_bytes, two_cities, words,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use check::{Forced, check};
pub(crate) use model::signature;

/// A request Bedrock would refuse, as the exception to answer with.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) exception: &'static str,
    pub(crate) message: String,
}

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        exception: "ValidationException",
        message: message.into(),
    }
}

/// One content block of the answer.
#[derive(Clone, Debug)]
pub(crate) enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    /// Reasoning text, with Claude's signature.
    Reasoning {
        text: String,
        signature: Option<String>,
    },
    /// Encrypted reasoning (base64).
    Redacted(String),
}

/// Token counts, as Bedrock reports them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    pub(crate) input: u64,
    pub(crate) output: u64,
    /// Present only when the request used prompt caching (or the model name says so).
    pub(crate) cache: Option<(u64, u64)>,
}

impl Usage {
    fn to_json(self) -> Value {
        let mut usage = json!({
            "inputTokens": self.input,
            "outputTokens": self.output,
            "totalTokens": self.input + self.output,
        });
        if let Some((read, write)) = self.cache {
            usage["cacheReadInputTokens"] = json!(read);
            usage["cacheWriteInputTokens"] = json!(write);
            usage["totalTokens"] = json!(self.input + self.output + read + write);
        }
        usage
    }
}

/// What the mock model answers.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) blocks: Vec<Block>,
    pub(crate) stop_reason: &'static str,
    pub(crate) usage: Usage,
}

/// Text of a user turn: text blocks and tool results, images as a description.
fn turn_text(content: &[Value]) -> String {
    let mut parts = Vec::new();
    for block in content {
        if let Some(text) = block["text"].as_str() {
            parts.push(text.to_owned());
        } else if let Some(image) = block.get("image") {
            let bytes = image["source"]["bytes"]
                .as_str()
                .and_then(|b| STANDARD.decode(b).ok())
                .map_or(0, |b| b.len());
            parts.push(format!(
                "[image/{} {bytes} bytes]",
                image["format"].as_str().unwrap_or("?")
            ));
        }
    }
    parts.join(" ")
}

fn tool_results_text(content: &[Value]) -> Option<String> {
    let results: Vec<String> = content
        .iter()
        .filter_map(|b| b.get("toolResult"))
        .map(|r| {
            let inner: Vec<String> = r["content"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| match (c.get("text"), c.get("json")) {
                    (Some(Value::String(t)), _) => t.clone(),
                    (_, Some(j)) => j.to_string(),
                    _ => String::new(),
                })
                .collect();
            format!(
                "{}={}",
                r["toolUseId"].as_str().unwrap_or(""),
                inner.join(" ")
            )
        })
        .collect();
    (!results.is_empty()).then(|| results.join("; "))
}

fn message_words(messages: &[Value]) -> u64 {
    messages
        .iter()
        .filter_map(|m| m["content"].as_array())
        .map(|c| words(&turn_text(c)))
        .sum()
}

/// The model's answer to a Converse request. `next_id` numbers tool-use ids.
pub(crate) fn answer(
    model: &str,
    body: &Value,
    next_id: &mut dyn FnMut() -> u64,
) -> Result<Answer, Failure> {
    let req = check(model, body)?;
    let input = (req.system_words + message_words(req.messages)).max(1);
    let cache = (req.cache_point || model.contains("cache")).then_some((input * 3, input));
    let last = req
        .messages
        .last()
        .and_then(|m| m["content"].as_array())
        .map_or(&[][..], Vec::as_slice);
    let mut blocks = Vec::new();
    if let Some(signed) = req.fields.reasoning {
        let text = format!("Thinking about: {}.", turn_text(last));
        let signature = signed.then(|| model::signature(&text));
        blocks.push(Block::Reasoning { text, signature });
        if model.contains("mock-redacted") {
            blocks.push(Block::Redacted(model::REDACTED.into()));
        }
    }
    let reasoning_words: u64 = blocks.iter().map(block_words).sum();
    let two = model.contains("mock-two-cities");
    let wants_tools = req.forced.is_some()
        || two
        || model.contains("mock-tool-call")
        || model.contains("mock-parallel-tools");
    let results = tool_results_text(last);
    if results.is_none() && wants_tools && !req.tools.is_empty() {
        let mut chosen: Vec<(&str, &Value)> = match &req.forced {
            Some(Forced::Tool(name)) => req
                .tools
                .iter()
                .copied()
                .filter(|(n, _)| n == name)
                .collect(),
            _ if model.contains("mock-parallel-tools") => req.tools.clone(),
            _ => req.tools.iter().copied().take(1).collect(),
        };
        // A forced choice has Claude call the tool straight away.
        if req.forced.is_none() {
            blocks.push(Block::Text("Let me use my tools.".into()));
        }
        let mut calls: Vec<(&str, Value)> = match chosen.first() {
            Some((first, _)) if two => two_cities().into_iter().map(|a| (*first, a)).collect(),
            _ => chosen
                .drain(..)
                .map(|(n, s)| (n, input_from_schema(s)))
                .collect(),
        };
        if req.fields.disable_parallel {
            calls.truncate(1);
        }
        for (name, input) in calls {
            blocks.push(Block::ToolUse {
                id: format!("tooluse_mock{:014}", next_id()),
                name: name.to_owned(),
                input,
            });
        }
        let calls = blocks
            .iter()
            .filter(|b| matches!(b, Block::ToolUse { .. }))
            .count() as u64;
        let preamble = if req.forced.is_none() { 4 } else { 0 };
        let output = reasoning_words + preamble + 10 * calls;
        return Ok(Answer {
            blocks,
            stop_reason: "tool_use",
            usage: Usage {
                input,
                output,
                cache,
            },
        });
    }
    let mut text = match (&results, &req.fields.output_schema) {
        (None, Some(schema)) => input_from_schema(schema).to_string(),
        (Some(results), _) => format!("mock reply to tool results: {results}"),
        (None, None) => format!("mock reply to: {}", turn_text(last)),
    };
    let mut stop_reason = "end_turn";
    if model.contains("mock-guardrail") {
        text = "Sorry, the model cannot answer this question.".into();
        stop_reason = "guardrail_intervened";
    } else if model.contains("mock-content-filtered") {
        text = "Sorry".into();
        stop_reason = "content_filtered";
    }
    if let Some(cut) = first_stop(&text, &req.stop_sequences) {
        text.truncate(cut);
        stop_reason = "stop_sequence";
    }
    if let Some(max) = max_tokens_for(model, &text, req.max_tokens)
        && words(&text) > max
    {
        text = first_words(&text, max);
        stop_reason = "max_tokens";
    }
    let output = reasoning_words + words(&text);
    if !text.is_empty() {
        blocks.push(Block::Text(text));
    }
    Ok(Answer {
        blocks,
        stop_reason,
        usage: Usage {
            input,
            output,
            cache,
        },
    })
}

/// The output tokens of a reasoning block, as the mock counts them (a word a token).
fn block_words(block: &Block) -> u64 {
    match block {
        Block::Reasoning { text, .. } => words(text),
        Block::Redacted(_) => 5,
        Block::Text(_) | Block::ToolUse { .. } => 0,
    }
}

/// The Converse response body.
pub(crate) fn to_json(answer: &Answer, latency_ms: u64) -> Bytes {
    let content: Vec<Value> = answer
        .blocks
        .iter()
        .map(|b| match b {
            Block::Text(text) => json!({ "text": text }),
            Block::ToolUse { id, name, input } => {
                json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } })
            }
            Block::Reasoning { text, signature } => {
                let mut reasoning = json!({ "text": text });
                if let Some(signature) = signature {
                    reasoning["signature"] = json!(signature);
                }
                json!({ "reasoningContent": { "reasoningText": reasoning } })
            }
            Block::Redacted(data) => json!({ "reasoningContent": { "redactedContent": data } }),
        })
        .collect();
    to_bytes(&json!({
        "output": { "message": { "role": "assistant", "content": content } },
        "stopReason": answer.stop_reason,
        "usage": answer.usage.to_json(),
        "metrics": { "latencyMs": latency_ms },
    }))
}

/// Bedrock pads every stream event with a `p` field of varying length so payload
/// sizes do not leak token lengths; decoders must ignore it.
fn padded(mut payload: Value, n: usize) -> Value {
    const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    payload["p"] = json!(&PAD[..(n * 7) % PAD.len() + 1]);
    payload
}

/// The ConverseStream events for an answer, in Bedrock's order: `messageStart`; per
/// block, `contentBlockStart` (tool use only; text and reasoning blocks start with
/// their first delta), deltas (text and reasoning text word by word, then the
/// reasoning's `signature`; redacted reasoning whole; tool input as JSON fragments) and
/// `contentBlockStop`; `messageStop`; `metadata` with usage and metrics.
pub(crate) fn to_events(answer: &Answer, latency_ms: u64) -> Vec<Message> {
    let mut events = Vec::new();
    let mut push = |kind: &str, payload: Value| {
        let n = events.len();
        events.push(Message::event(kind, &padded(payload, n)));
    };
    push("messageStart", json!({ "role": "assistant" }));
    for (index, block) in answer.blocks.iter().enumerate() {
        match block {
            Block::Text(text) => {
                for piece in text.split_inclusive(' ') {
                    push(
                        "contentBlockDelta",
                        json!({ "contentBlockIndex": index, "delta": { "text": piece } }),
                    );
                }
            }
            Block::Reasoning { text, signature } => {
                let mut deltas: Vec<Value> = text
                    .split_inclusive(' ')
                    .map(|piece| json!({ "text": piece }))
                    .collect();
                deltas.extend(signature.iter().map(|s| json!({ "signature": s })));
                for delta in deltas {
                    push(
                        "contentBlockDelta",
                        json!({ "contentBlockIndex": index, "delta": { "reasoningContent": delta } }),
                    );
                }
            }
            Block::Redacted(data) => push(
                "contentBlockDelta",
                json!({
                    "contentBlockIndex": index,
                    "delta": { "reasoningContent": { "redactedContent": data } },
                }),
            ),
            Block::ToolUse { id, name, input } => {
                push(
                    "contentBlockStart",
                    json!({
                        "contentBlockIndex": index,
                        "start": { "toolUse": { "toolUseId": id, "name": name } },
                    }),
                );
                let chars: Vec<char> = input.to_string().chars().collect();
                for chunk in chars.chunks(6) {
                    let fragment: String = chunk.iter().collect();
                    push(
                        "contentBlockDelta",
                        json!({
                            "contentBlockIndex": index,
                            "delta": { "toolUse": { "input": fragment } },
                        }),
                    );
                }
            }
        }
        push("contentBlockStop", json!({ "contentBlockIndex": index }));
    }
    push("messageStop", json!({ "stopReason": answer.stop_reason }));
    push(
        "metadata",
        json!({
            "usage": answer.usage.to_json(),
            "metrics": { "latencyMs": latency_ms },
        }),
    );
    events
}

#[cfg(test)]
mod tests;

//! Converse and ConverseStream: the request checked the way Bedrock checks it, the
//! mock's answer, and that answer rendered as Converse JSON or as ConverseStream's
//! eventstream frames.
//!
//! The answer is deterministic: `mock reply to: <last user text>` (images appear as
//! `[image/<format> <n> bytes]`, so a test can see they arrived whole), cut at the first
//! stop sequence (`stop_sequence`) or after `maxTokens` words (`max_tokens`). When the
//! last user turn carries tool results the reply quotes them. Tool calls happen when
//! `toolChoice` forces one or the model name asks: `mock-tool-call` (one call, after a
//! short text block) and `mock-parallel-tools` (one call per tool). Arguments are made
//! from the tool's JSON schema: `"mock-<property>"` for strings, `1` for numbers, `true`
//! for booleans, the first value of an `enum`.

use bytes::Bytes;
use serde_json::{Value, json};

use super::eventstream::Message;
use crate::mock::{
    first_stop, first_words, input_from_schema, max_tokens_for, to_bytes, two_cities, words,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

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

/// The fields the answer depends on, once the request has been checked.
struct Checked<'a> {
    messages: &'a [Value],
    system_words: u64,
    max_tokens: Option<u64>,
    stop_sequences: Vec<&'a str>,
    tools: Vec<(&'a str, &'a Value)>,
    forced: Option<Forced<'a>>,
    cache_point: bool,
}

enum Forced<'a> {
    Any,
    Tool(&'a str),
}

const TOP_LEVEL: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
];

const BLOCK_KINDS: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
];

/// Checks a Converse request body the way Bedrock does (plus: unknown top-level and
/// `inferenceConfig` fields are refused, so a translator's typo fails loudly).
fn check(body: &Value) -> Result<Checked<'_>, Failure> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("The request body must be a JSON object."))?;
    if let Some(unknown) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Unknown field '{unknown}' in the Converse request (the mock refuses fields \
             Converse does not define)."
        )));
    }
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid("A conversation must start with a user message. Try again with a conversation that starts with a user message."))?;
    let mut tool_blocks = false;
    let mut cache_point = false;
    let mut previous_tool_uses: Vec<&str> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if !matches!(role, "user" | "assistant") {
            return Err(invalid(format!(
                "1 validation error detected: Value '{role}' at 'messages.{}.member.role' \
                 failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]",
                i + 1
            )));
        }
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if i == 0 && role != "user" {
            return Err(invalid(
                "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
            ));
        }
        if role != expected {
            return Err(invalid(
                "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
            ));
        }
        let content = message
            .get("content")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "The content field in the Message object at messages.{i} is empty. Add a \
                     ContentBlock object to the content field and try again."
                ))
            })?;
        let mut tool_uses = Vec::new();
        for (j, block) in content.iter().enumerate() {
            let kind = check_block(block, &format!("messages.{i}.content.{j}"))?;
            match kind {
                "toolUse" if role == "user" => {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: toolUse blocks are only allowed in assistant messages."
                    )));
                }
                "toolResult" if role == "assistant" => {
                    return Err(invalid(format!(
                        "messages.{i}.content.{j}: toolResult blocks are only allowed in user messages."
                    )));
                }
                "toolUse" => {
                    tool_blocks = true;
                    if let Some(id) = block["toolUse"]["toolUseId"].as_str() {
                        tool_uses.push(id);
                    }
                }
                "toolResult" => {
                    tool_blocks = true;
                    let id = block["toolResult"]["toolUseId"].as_str().unwrap_or("");
                    if !previous_tool_uses.contains(&id) {
                        return Err(invalid(format!(
                            "The toolResult blocks at messages.{i}.content contain toolUseIds \
                             that don't match any toolUse blocks from the previous turn."
                        )));
                    }
                }
                "cachePoint" => cache_point = true,
                _ => {}
            }
        }
        previous_tool_uses = tool_uses;
    }
    let mut system_words = 0;
    if let Some(system) = obj.get("system") {
        let blocks = system
            .as_array()
            .ok_or_else(|| invalid("system must be a list of SystemContentBlock objects."))?;
        for (i, block) in blocks.iter().enumerate() {
            let b = block.as_object().filter(|b| b.len() == 1);
            match b.and_then(|b| b.iter().next()) {
                Some((k, Value::String(text))) if k == "text" => {
                    if text.trim().is_empty() {
                        return Err(invalid(format!(
                            "The text field in the SystemContentBlock object at system.{i} is blank. Add text to the text field, and try again."
                        )));
                    }
                    system_words += words(text);
                }
                Some((k, _)) if k == "cachePoint" || k == "guardContent" => {
                    cache_point |= k == "cachePoint";
                }
                _ => {
                    return Err(invalid(format!(
                        "system.{i} must hold exactly one of text, guardContent or cachePoint."
                    )));
                }
            }
        }
    }
    let (max_tokens, stop_sequences) = check_inference(obj.get("inferenceConfig"))?;
    let (tools, forced) = match obj.get("toolConfig") {
        Some(config) => check_tools(config)?,
        None if tool_blocks => {
            return Err(invalid(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            ));
        }
        None => (Vec::new(), None),
    };
    Ok(Checked {
        messages,
        system_words,
        max_tokens,
        stop_sequences,
        tools,
        forced,
        cache_point,
    })
}

/// Checks one content block and says which kind it is.
fn check_block<'a>(block: &'a Value, at: &str) -> Result<&'a str, Failure> {
    let obj = block.as_object().filter(|b| b.len() == 1).ok_or_else(|| {
        invalid(format!(
            "The ContentBlock object at {at} must set exactly one member."
        ))
    })?;
    let (kind, value) = obj
        .iter()
        .next()
        .ok_or_else(|| invalid(format!("{at} is empty.")))?;
    if !BLOCK_KINDS.contains(&kind.as_str()) {
        return Err(invalid(format!(
            "Unknown ContentBlock member '{kind}' at {at}."
        )));
    }
    match kind.as_str() {
        "text" => {
            let text = value
                .as_str()
                .ok_or_else(|| invalid(format!("{at}.text must be a string.")))?;
            if text.trim().is_empty() {
                return Err(invalid(format!(
                    "The text field in the ContentBlock object at {at} is blank. Add text to the text field, and try again."
                )));
            }
        }
        "image" => check_image(value, &format!("{at}.image"))?,
        "toolUse" => {
            let ok = value["toolUseId"].is_string()
                && value["name"].is_string()
                && value.get("input").is_some_and(|i| !i.is_null());
            if !ok {
                return Err(invalid(format!(
                    "{at}.toolUse needs toolUseId, name and input."
                )));
            }
        }
        "toolResult" => {
            let content = value["content"].as_array();
            let ok = value["toolUseId"].is_string()
                && content.is_some_and(|c| {
                    c.iter().all(|b| {
                        b.as_object().is_some_and(|b| {
                            b.len() == 1
                                && b.keys().all(|k| {
                                    matches!(
                                        k.as_str(),
                                        "text" | "json" | "image" | "document" | "video"
                                    )
                                })
                        })
                    })
                });
            if !ok {
                return Err(invalid(format!(
                    "{at}.toolResult needs toolUseId and content blocks of text, json, image, document or video."
                )));
            }
            if let Some(status) = value.get("status")
                && !matches!(status.as_str(), Some("success" | "error"))
            {
                return Err(invalid(format!(
                    "{at}.toolResult.status must be success or error."
                )));
            }
        }
        _ => {}
    }
    Ok(kind.as_str())
}

fn check_image(image: &Value, at: &str) -> Result<(), Failure> {
    let format = image["format"].as_str().unwrap_or("");
    if !matches!(format, "png" | "jpeg" | "gif" | "webp") {
        return Err(invalid(format!(
            "1 validation error detected: Value '{format}' at '{at}.format' failed to satisfy \
             constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]"
        )));
    }
    let source = image["source"].as_object();
    match source.and_then(|s| s.get("bytes")) {
        Some(Value::String(b64)) => {
            if STANDARD.decode(b64).ok().is_none_or(|b| b.is_empty()) {
                return Err(invalid(format!(
                    "{at}.source.bytes is not valid base64-encoded image data."
                )));
            }
        }
        _ if source.is_some_and(|s| s.contains_key("s3Location")) => {}
        _ => {
            return Err(invalid(format!(
                "{at}.source must hold bytes (base64) or s3Location."
            )));
        }
    }
    Ok(())
}

fn check_inference(config: Option<&Value>) -> Result<(Option<u64>, Vec<&str>), Failure> {
    let Some(config) = config else {
        return Ok((None, Vec::new()));
    };
    let obj = config
        .as_object()
        .ok_or_else(|| invalid("inferenceConfig must be an object."))?;
    if let Some(unknown) = obj.keys().find(|k| {
        !matches!(
            k.as_str(),
            "maxTokens" | "temperature" | "topP" | "stopSequences"
        )
    }) {
        return Err(invalid(format!(
            "Unknown field '{unknown}' in inferenceConfig; model-specific parameters go in \
             additionalModelRequestFields."
        )));
    }
    let max_tokens = match obj.get("maxTokens") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|n| *n >= 1).ok_or_else(|| {
            invalid(format!(
                "1 validation error detected: Value '{v}' at 'inferenceConfig.maxTokens' failed \
                 to satisfy constraint: Member must have value greater than or equal to 1"
            ))
        })?),
    };
    for key in ["temperature", "topP"] {
        if let Some(v) = obj.get(key)
            && !v.as_f64().is_some_and(|f| (0.0..=1.0).contains(&f))
        {
            return Err(invalid(format!(
                "1 validation error detected: Value '{v}' at 'inferenceConfig.{key}' failed to \
                 satisfy constraint: Member must have value between 0 and 1"
            )));
        }
    }
    let stop_sequences = match obj.get("stopSequences") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .filter(|s| s.len() <= 2500)
            .ok_or_else(|| invalid("inferenceConfig.stopSequences must be a list of strings."))?,
    };
    Ok((max_tokens, stop_sequences))
}

type Tools<'a> = (Vec<(&'a str, &'a Value)>, Option<Forced<'a>>);

fn check_tools(config: &Value) -> Result<Tools<'_>, Failure> {
    let tools = config["tools"]
        .as_array()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("toolConfig.tools must list at least one tool."))?;
    let mut specs = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        if tool.get("cachePoint").is_some() {
            continue;
        }
        let spec = &tool["toolSpec"];
        let name = spec["name"].as_str().unwrap_or("");
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(invalid(format!(
                "1 validation error detected: Value '{name}' at 'toolConfig.tools.{}.member.toolSpec.name' \
                 failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                i + 1
            )));
        }
        let schema = &spec["inputSchema"]["json"];
        if !schema.is_object() {
            return Err(invalid(format!(
                "toolConfig.tools.{i}.toolSpec.inputSchema.json must be a JSON schema object."
            )));
        }
        specs.push((name, schema));
    }
    let forced = match config.get("toolChoice") {
        None => None,
        Some(choice) => {
            let obj = choice.as_object().filter(|c| c.len() == 1).ok_or_else(|| {
                invalid("toolConfig.toolChoice must set exactly one of auto, any or tool.")
            })?;
            match obj.iter().next() {
                Some((k, _)) if k == "auto" => None,
                Some((k, _)) if k == "any" => Some(Forced::Any),
                Some((k, v)) if k == "tool" => {
                    let name = v["name"].as_str().unwrap_or("");
                    if !specs.iter().any(|(n, _)| *n == name) {
                        return Err(invalid(format!(
                            "toolConfig.toolChoice.tool.name '{name}' does not name a tool in toolConfig.tools."
                        )));
                    }
                    Some(Forced::Tool(name))
                }
                _ => {
                    return Err(invalid(
                        "toolConfig.toolChoice must set exactly one of auto, any or tool.",
                    ));
                }
            }
        }
    };
    Ok((specs, forced))
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
    let req = check(body)?;
    let input = (req.system_words + message_words(req.messages)).max(1);
    let cache = (req.cache_point || model.contains("cache")).then_some((input * 3, input));
    let last = req
        .messages
        .last()
        .and_then(|m| m["content"].as_array())
        .map_or(&[][..], Vec::as_slice);
    let two = model.contains("mock-two-cities");
    let wants_tools = req.forced.is_some()
        || two
        || model.contains("mock-tool-call")
        || model.contains("mock-parallel-tools");
    let results = tool_results_text(last);
    if results.is_none() && wants_tools && !req.tools.is_empty() {
        let chosen: Vec<(&str, &Value)> = match &req.forced {
            Some(Forced::Tool(name)) => req
                .tools
                .iter()
                .copied()
                .filter(|(n, _)| n == name)
                .collect(),
            _ if model.contains("mock-parallel-tools") => req.tools.clone(),
            _ => req.tools.iter().copied().take(1).collect(),
        };
        let mut blocks = vec![Block::Text("Let me use my tools.".into())];
        let calls: Vec<(&str, Value)> = match chosen.first() {
            Some((first, _)) if two => two_cities().into_iter().map(|a| (*first, a)).collect(),
            _ => chosen
                .into_iter()
                .map(|(n, s)| (n, input_from_schema(s)))
                .collect(),
        };
        for (name, input) in calls {
            blocks.push(Block::ToolUse {
                id: format!("tooluse_mock{:014}", next_id()),
                name: name.to_owned(),
                input,
            });
        }
        let output = 4 + 10 * (blocks.len() as u64 - 1);
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
    let mut text = match results {
        Some(results) => format!("mock reply to tool results: {results}"),
        None => format!("mock reply to: {}", turn_text(last)),
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
    let output = words(&text);
    let blocks = if text.is_empty() {
        Vec::new()
    } else {
        vec![Block::Text(text)]
    };
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
/// block, `contentBlockStart` (tool use only; text blocks start with their first
/// delta), deltas (text word by word, tool input as JSON fragments) and
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

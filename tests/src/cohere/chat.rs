//! Cohere's `/v2/chat`: the request checked the way Cohere checks it, the mock's
//! answer, and that answer as a chat response or as the v2 stream's SSE events.
//!
//! The answer matches the other mocks: `mock reply to: <last user text>` (images as
//! `[image <mime> <n> bytes]`), cut at the first stop sequence (`STOP_SEQUENCE`) or
//! after `max_tokens` words (`MAX_TOKENS`); tool results are quoted; tools are called
//! when `tool_choice` is `REQUIRED` or the model is `mock-tool-call` (one tool) or
//! `mock-parallel-tools` (every tool), with a `tool_plan` first.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::mock::{
    first_stop, first_words, input_from_schema, max_tokens_for, to_bytes, two_cities, words,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// A refused request: status and Cohere's message.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// A 400 in Cohere's words.
pub(crate) fn bad(message: impl Into<String>) -> Refusal {
    Refusal {
        status: 400,
        message: format!("invalid request: {}", message.into()),
    }
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "stream",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
    "priority",
];

/// One tool call of the answer.
#[derive(Clone, Debug)]
pub(crate) struct ToolCall {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: String,
}

/// What the mock model answers.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) text: Option<String>,
    pub(crate) tool_plan: Option<String>,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) finish_reason: &'static str,
    /// Billed input / output tokens.
    pub(crate) billed: (u64, u64),
    /// Cached input tokens, when the model name asks for caching.
    pub(crate) cached: Option<u64>,
}

impl Answer {
    /// Cohere's usage: billed units, and tokens including the prompt template.
    fn usage(&self) -> Value {
        let (input, output) = self.billed;
        let mut usage = json!({
            "billed_units": { "input_tokens": input, "output_tokens": output },
            "tokens": { "input_tokens": input + TEMPLATE_TOKENS, "output_tokens": output },
        });
        if let Some(cached) = self.cached {
            usage["cached_tokens"] = json!(cached);
        }
        usage
    }
}

/// Cohere's `tokens.input_tokens` counts its prompt template too; billed units do not.
pub(crate) const TEMPLATE_TOKENS: u64 = 7;

fn content_text(content: &Value) -> Result<String, Refusal> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => {
            let mut out = Vec::new();
            for part in parts {
                match part["type"].as_str() {
                    Some("text") => out.push(
                        part["text"]
                            .as_str()
                            .ok_or_else(|| bad("text content must have a text field"))?
                            .to_owned(),
                    ),
                    Some("image_url") => {
                        let url = part["image_url"]["url"]
                            .as_str()
                            .ok_or_else(|| bad("image_url content must have a url"))?;
                        out.push(describe_image(url)?);
                    }
                    Some("document" | "thinking") => {}
                    other => {
                        return Err(bad(format!("unknown content type {other:?}")));
                    }
                }
            }
            Ok(out.join(" "))
        }
        Value::Null => Ok(String::new()),
        _ => Err(bad("content must be a string or a list of content blocks")),
    }
}

fn describe_image(url: &str) -> Result<String, Refusal> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (mime, data) = rest
            .split_once(";base64,")
            .ok_or_else(|| bad("image_url data URIs must be base64"))?;
        let bytes = STANDARD
            .decode(data)
            .ok()
            .ok_or_else(|| bad("image_url data is not valid base64"))?;
        Ok(format!("[image {mime} {} bytes]", bytes.len()))
    } else if url.starts_with("https://") || url.starts_with("http://") {
        Ok("[image url]".into())
    } else {
        Err(bad("image_url must be a data URI or a URL"))
    }
}

/// The body as an object of only `fields`, and its model, or Cohere's refusal.
pub(crate) fn object_with_model<'a>(
    body: &'a Value,
    fields: &[&str],
) -> Result<(&'a Map<String, Value>, &'a str), Refusal> {
    let obj = body
        .as_object()
        .ok_or_else(|| bad("request body must be a JSON object"))?;
    if let Some(unknown) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(bad(format!(
            "unknown field: parameter {unknown} is not a valid field"
        )));
    }
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a model parameter is required for this endpoint."))?;
    Ok((obj, model))
}

/// Checks the request and answers it. `next_id` numbers tool-call ids.
pub(crate) fn answer(body: &Value, next_id: &mut dyn FnMut() -> u64) -> Result<Answer, Refusal> {
    let (obj, model) = object_with_model(body, TOP_LEVEL)?;
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| bad("messages must not be empty"))?;
    let mut known_calls: Vec<&str> = Vec::new();
    let mut input_words = 0;
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        match role {
            "system" | "user" => {
                let text = content_text(&m["content"])?;
                if text.trim().is_empty() {
                    return Err(bad(format!(
                        "messages[{i}]: message must not be empty in a turn"
                    )));
                }
                input_words += words(&text);
            }
            "assistant" => {
                let calls = m["tool_calls"].as_array();
                for call in calls.into_iter().flatten() {
                    let ok = call["id"].is_string()
                        && call["type"] == "function"
                        && call["function"]["name"].is_string()
                        && call["function"]["arguments"].is_string();
                    if !ok {
                        return Err(bad(format!(
                            "messages[{i}]: tool_calls need id, type \"function\" and function.name / function.arguments (a JSON string)"
                        )));
                    }
                    if let Some(id) = call["id"].as_str() {
                        known_calls.push(id);
                    }
                }
                let text = content_text(&m["content"])?;
                if text.trim().is_empty() && calls.is_none_or(Vec::is_empty) {
                    return Err(bad(format!(
                        "messages[{i}]: assistant messages need content or tool_calls"
                    )));
                }
                input_words += words(&text);
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or("");
                if !known_calls.contains(&id) {
                    return Err(bad(format!(
                        "messages[{i}]: tool_call_id '{id}' does not match any tool call"
                    )));
                }
                let text = tool_content(&m["content"])?;
                input_words += words(&text);
            }
            other => {
                return Err(bad(format!(
                    "messages[{i}]: role '{other}' must be one of system, user, assistant, tool"
                )));
            }
        }
    }
    let tools = check_tools(obj.get("tools"))?;
    let tool_choice = match obj.get("tool_choice") {
        None => None,
        Some(Value::String(c)) if c == "REQUIRED" || c == "NONE" => {
            if tools.is_empty() {
                return Err(bad("tool_choice requires tools"));
            }
            Some(c.as_str())
        }
        Some(other) => {
            return Err(bad(format!(
                "tool_choice must be REQUIRED or NONE, got {other}"
            )));
        }
    };
    let max_tokens = match obj.get("max_tokens") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| bad("max_tokens must be a positive integer"))?,
        ),
    };
    for (key, lo, hi) in [
        ("temperature", 0.0, 1.0),
        ("p", 0.01, 0.99),
        ("frequency_penalty", 0.0, 1.0),
        ("presence_penalty", 0.0, 1.0),
    ] {
        if let Some(v) = obj.get(key)
            && !v.as_f64().is_some_and(|f| (lo..=hi).contains(&f))
        {
            return Err(bad(format!("{key} must be between {lo} and {hi}")));
        }
    }
    let stops: Vec<&str> = match obj.get("stop_sequences") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .filter(|s| s.len() <= 5)
            .ok_or_else(|| bad("stop_sequences must be a list of at most 5 strings"))?,
    };
    if let Some(format) = obj.get("response_format")
        && !matches!(format["type"].as_str(), Some("text" | "json_object"))
    {
        return Err(bad("response_format.type must be text or json_object"));
    }

    let input = input_words.max(1);
    let cached = model.contains("cache").then_some(input);
    let trailing_results: Vec<&Value> = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .collect();
    let two = model.contains("mock-two-cities");
    let wants_tools = tool_choice == Some("REQUIRED")
        || (tool_choice != Some("NONE")
            && (two || model.contains("mock-tool-call") || model.contains("mock-parallel-tools")));
    if trailing_results.is_empty() && wants_tools && !tools.is_empty() {
        let chosen: Vec<&(String, Value)> = if model.contains("mock-parallel-tools") {
            tools.iter().collect()
        } else {
            tools.iter().take(1).collect()
        };
        let names: Vec<&str> = chosen.iter().map(|(n, _)| n.as_str()).collect();
        let arguments: Vec<(&String, Value)> = match chosen.first() {
            Some((first, _)) if two => two_cities().into_iter().map(|a| (first, a)).collect(),
            _ => chosen
                .iter()
                .map(|(n, s)| (n, input_from_schema(s)))
                .collect(),
        };
        let calls = arguments
            .into_iter()
            .map(|(name, input)| ToolCall {
                id: format!("{name}_mock{:012}", next_id()),
                name: name.clone(),
                arguments: input.to_string(),
            })
            .collect::<Vec<_>>();
        let plan = format!("I will use {}.", names.join(" and "));
        let output = words(&plan) + 10 * calls.len() as u64;
        return Ok(Answer {
            text: None,
            tool_plan: Some(plan),
            tool_calls: calls,
            finish_reason: "TOOL_CALL",
            billed: (input, output),
            cached,
        });
    }
    let mut text = if trailing_results.is_empty() {
        let last_user = messages
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| content_text(&m["content"]))
            .transpose()?
            .unwrap_or_default();
        format!("mock reply to: {last_user}")
    } else {
        let mut results = Vec::new();
        for m in trailing_results.iter().rev() {
            results.push(format!(
                "{}={}",
                m["tool_call_id"].as_str().unwrap_or(""),
                tool_content(&m["content"])?
            ));
        }
        format!("mock reply to tool results: {}", results.join("; "))
    };
    let mut finish = "COMPLETE";
    if let Some(cut) = first_stop(&text, &stops) {
        text.truncate(cut);
        finish = "STOP_SEQUENCE";
    }
    if let Some(max) = max_tokens_for(model, &text, max_tokens)
        && words(&text) > max
    {
        text = first_words(&text, max);
        finish = "MAX_TOKENS";
    }
    let output = words(&text);
    Ok(Answer {
        text: Some(text),
        tool_plan: None,
        tool_calls: Vec::new(),
        finish_reason: finish,
        billed: (input, output),
        cached,
    })
}

fn tool_content(content: &Value) -> Result<String, Refusal> {
    match content {
        Value::String(s) => Ok(s.clone()),
        Value::Array(parts) => parts
            .iter()
            .map(|p| match p["type"].as_str() {
                Some("text") => Ok(p["text"].as_str().unwrap_or("").to_owned()),
                Some("document") => Ok(match &p["document"]["data"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
                _ => Err(bad("tool content blocks must be text or document")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(" ")),
        _ => Err(bad("tool message content must be a string or a list")),
    }
}

fn check_tools(tools: Option<&Value>) -> Result<Vec<(String, Value)>, Refusal> {
    let Some(tools) = tools else {
        return Ok(Vec::new());
    };
    let list = tools
        .as_array()
        .ok_or_else(|| bad("tools must be a list"))?;
    list.iter()
        .map(|t| {
            let name = t["function"]["name"].as_str().unwrap_or("");
            if t["type"] != "function" || name.is_empty() {
                return Err(bad(
                    "tools must be {\"type\": \"function\", \"function\": {\"name\", \"parameters\"}}",
                ));
            }
            Ok((name.to_owned(), t["function"]["parameters"].clone()))
        })
        .collect()
}

/// The non-streamed chat response.
pub(crate) fn to_json(id: &str, a: &Answer) -> Bytes {
    let mut message = json!({ "role": "assistant" });
    if let Some(text) = &a.text {
        message["content"] = json!([{ "type": "text", "text": text }]);
    }
    if let Some(plan) = &a.tool_plan {
        message["tool_plan"] = json!(plan);
    }
    if !a.tool_calls.is_empty() {
        message["tool_calls"] = a
            .tool_calls
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "type": "function",
                    "function": { "name": c.name, "arguments": c.arguments },
                })
            })
            .collect();
    }
    to_bytes(&json!({
        "id": id,
        "finish_reason": a.finish_reason,
        "message": message,
        "usage": a.usage(),
    }))
}

/// One SSE event the way Cohere frames it: an `event:` line naming the type, then
/// the JSON (which repeats the type) on one `data:` line.
pub(crate) fn sse(value: &Value) -> Bytes {
    let kind = value["type"].as_str().unwrap_or("");
    Bytes::from(format!("event: {kind}\ndata: {value}\n\n"))
}

/// The v2 stream for an answer: `message-start`; text as `content-start`, deltas,
/// `content-end`; or `tool-plan-delta`s then per call `tool-call-start`,
/// argument `tool-call-delta`s, `tool-call-end`; then `message-end` with the finish
/// reason and usage. No `[DONE]`: the stream just ends.
pub(crate) fn to_events(id: &str, a: &Answer) -> Vec<Value> {
    let mut events = vec![json!({
        "id": id,
        "type": "message-start",
        "delta": { "message": {
            "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []
        } },
    })];
    if let Some(plan) = &a.tool_plan {
        for piece in plan.split_inclusive(' ') {
            events.push(json!({
                "type": "tool-plan-delta",
                "delta": { "message": { "tool_plan": piece } },
            }));
        }
    }
    for (index, call) in a.tool_calls.iter().enumerate() {
        events.push(json!({
            "type": "tool-call-start",
            "index": index,
            "delta": { "message": { "tool_calls": {
                "id": call.id, "type": "function",
                "function": { "name": call.name, "arguments": "" },
            } } },
        }));
        let chars: Vec<char> = call.arguments.chars().collect();
        for chunk in chars.chunks(5) {
            events.push(json!({
                "type": "tool-call-delta",
                "index": index,
                "delta": { "message": { "tool_calls": {
                    "function": { "arguments": chunk.iter().collect::<String>() },
                } } },
            }));
        }
        events.push(json!({ "type": "tool-call-end", "index": index }));
    }
    if let Some(text) = &a.text {
        events.push(json!({
            "type": "content-start",
            "index": 0,
            "delta": { "message": { "content": { "type": "text", "text": "" } } },
        }));
        for piece in text.split_inclusive(' ') {
            events.push(json!({
                "type": "content-delta",
                "index": 0,
                "delta": { "message": { "content": { "text": piece } } },
            }));
        }
        events.push(json!({ "type": "content-end", "index": 0 }));
    }
    events.push(json!({
        "type": "message-end",
        "delta": { "finish_reason": a.finish_reason, "usage": a.usage() },
    }));
    events
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(body: Value) -> Result<Answer, Refusal> {
        let mut n = 0;
        answer(&body, &mut || {
            n += 1;
            n
        })
    }

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
    }

    #[test]
    fn refusals() {
        for (body, want) in [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model parameter is required",
            ),
            (
                json!({"model": "m", "messages": []}),
                "messages must not be empty",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 3}),
                "parameter max_completion_tokens is not a valid field",
            ),
            (
                json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}]}),
                "does not match",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "AUTO", "tools": weather()}),
                "REQUIRED or NONE",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop_sequences": ["a","b","c","d","e","f"]}),
                "at most 5",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,!!"}}]}]}),
                "base64",
            ),
        ] {
            let r = run(body.clone()).unwrap_err();
            assert_eq!(r.status, 400);
            assert!(r.message.contains(want), "{body}: {}", r.message);
        }
    }

    #[test]
    fn answers_and_stream_events() {
        let a = run(json!({"model": "m", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}]})).unwrap();
        assert_eq!(a.text.as_deref(), Some("mock reply to: hello there"));
        assert_eq!(a.billed, (4, 5));
        let v: Value = serde_json::from_slice(&to_json("id1", &a)).unwrap();
        assert_eq!(v["finish_reason"], "COMPLETE");
        assert_eq!(v["message"]["content"][0]["type"], "text");
        assert_eq!(v["usage"]["tokens"]["input_tokens"], 4 + TEMPLATE_TOKENS);

        let a = run(json!({"model": "mock-tool-call", "messages": [{"role": "user", "content": "weather?"}], "tools": weather()})).unwrap();
        assert_eq!(a.finish_reason, "TOOL_CALL");
        assert_eq!(a.tool_calls[0].arguments, r#"{"city":"mock-city"}"#);
        let events = to_events("id2", &a);
        let args: String = events
            .iter()
            .filter(|e| e["type"] == "tool-call-delta")
            .map(|e| {
                e["delta"]["message"]["tool_calls"]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(args, a.tool_calls[0].arguments);
        assert_eq!(
            events.last().unwrap()["delta"]["finish_reason"],
            "TOOL_CALL"
        );
        assert!(sse(&events[0]).starts_with(b"event: message-start\ndata: {"));

        let a = run(json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_plan": "p", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "document", "document": {"data": "{\"temp\":21}"}}]}
        ], "tools": weather()})).unwrap();
        assert_eq!(
            a.text.as_deref(),
            Some(r#"mock reply to tool results: c1={"temp":21}"#)
        );

        let a = run(json!({"model": "m", "messages": [{"role": "user", "content": "one two three"}], "max_tokens": 2})).unwrap();
        assert_eq!(
            (a.text.as_deref(), a.finish_reason),
            (Some("mock reply"), "MAX_TOKENS")
        );
        let a = run(json!({"model": "m", "messages": [{"role": "user", "content": "one two"}], "stop_sequences": ["two"]})).unwrap();
        assert_eq!(a.finish_reason, "STOP_SEQUENCE");
    }
}

//! Prompts and completions on spans, for the models that opt in (`LLMModel`
//! `spec.telemetry.captureContent`; off by default). They are written as the GenAI
//! conventions' `gen_ai.system_instructions`, `gen_ai.input.messages` and
//! `gen_ai.output.messages`: JSON arrays of `{role, parts: [...]}` with `text`,
//! `tool_call` and `tool_call_response` parts; other parts keep only their type. Each
//! attribute is cut at [`MAX_ATTRIBUTE_BYTES`] (and `llmesh.content_truncated` set), so
//! a huge prompt cannot make a huge span.

use opentelemetry::KeyValue;
use serde_json::{Map, Value, json};

use crate::domain::Endpoint;

/// The most one content attribute carries.
pub const MAX_ATTRIBUTE_BYTES: usize = 16 * 1024;

/// The request's instructions and messages, as span attributes.
pub fn input(endpoint: Endpoint, body: &Map<String, Value>) -> Vec<KeyValue> {
    let mut system = Vec::new();
    let mut messages = Vec::new();
    match endpoint {
        Endpoint::ChatCompletions => {
            for message in array(body.get("messages")) {
                let role = str_of(message, "role");
                if matches!(role, "system" | "developer") {
                    system.extend(parts(message.get("content")));
                } else {
                    messages.push(chat_message(message));
                }
            }
        }
        Endpoint::Messages => {
            system.extend(parts(body.get("system")));
            for message in array(body.get("messages")) {
                let role = str_of(message, "role");
                messages.push(json!({"role": role, "parts": parts(message.get("content"))}));
            }
        }
        Endpoint::Responses => {
            system.extend(parts(body.get("instructions")));
            match body.get("input") {
                Some(Value::String(text)) => messages.push(user(text)),
                Some(Value::Array(items)) => messages.extend(items.iter().map(response_item)),
                _ => {}
            }
        }
        Endpoint::Completions | Endpoint::Embeddings => {
            let key = if endpoint == Endpoint::Completions {
                "prompt"
            } else {
                "input"
            };
            messages.push(json!({"role": "user", "parts": parts(body.get(key))}));
        }
    }
    let mut kv = Vec::with_capacity(3);
    if !system.is_empty() {
        attribute("gen_ai.system_instructions", &Value::Array(system), &mut kv);
    }
    attribute("gen_ai.input.messages", &Value::Array(messages), &mut kv);
    kv
}

/// A whole answer's messages, as span attributes (none for embeddings).
pub fn output(endpoint: Endpoint, body: &[u8]) -> Vec<KeyValue> {
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let messages: Vec<Value> = match endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions => array(answer.get("choices"))
            .map(|choice| {
                let mut message = match choice.get("message") {
                    Some(message) => chat_message(message),
                    None => json!({"role": "assistant", "parts": parts(choice.get("text"))}),
                };
                if let (Some(m), Some(reason)) =
                    (message.as_object_mut(), choice.get("finish_reason"))
                {
                    m.insert("finish_reason".into(), reason.clone());
                }
                message
            })
            .collect(),
        Endpoint::Messages => vec![json!({
            "role": "assistant",
            "parts": parts(answer.get("content")),
            "finish_reason": answer.get("stop_reason"),
        })],
        Endpoint::Responses => array(answer.get("output")).map(response_item).collect(),
        Endpoint::Embeddings => return Vec::new(),
    };
    let mut kv = Vec::with_capacity(2);
    attribute("gen_ai.output.messages", &Value::Array(messages), &mut kv);
    kv
}

fn attribute(name: &'static str, value: &Value, kv: &mut Vec<KeyValue>) {
    let mut text = value.to_string();
    let kept = super::spans::prefix(&text, MAX_ATTRIBUTE_BYTES).len();
    if kept < text.len() {
        text.truncate(kept);
        kv.push(KeyValue::new("llmesh.content_truncated", true));
    }
    kv.push(KeyValue::new(name, text));
}

fn array(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn user(text: &str) -> Value {
    json!({"role": "user", "parts": [{"type": "text", "content": text}]})
}

/// A Chat Completions message: its content, tool calls, or tool answer.
fn chat_message(message: &Value) -> Value {
    let role = str_of(message, "role");
    if role == "tool" {
        let response = json!({
            "type": "tool_call_response",
            "id": message.get("tool_call_id"),
            "response": message.get("content"),
        });
        return json!({"role": "tool", "parts": [response]});
    }
    let mut parts = parts(message.get("content"));
    for call in array(message.get("tool_calls")) {
        let function = call.get("function");
        parts.push(json!({
            "type": "tool_call",
            "id": call.get("id"),
            "name": function.and_then(|f| f.get("name")),
            "arguments": function.and_then(|f| f.get("arguments")),
        }));
    }
    json!({"role": role, "parts": parts})
}

/// A Responses input or output item.
fn response_item(item: &Value) -> Value {
    match str_of(item, "type") {
        "function_call" | "custom_tool_call" => json!({"role": "assistant", "parts": [{
            "type": "tool_call",
            "id": item.get("call_id"),
            "name": item.get("name"),
            "arguments": item.get("arguments").or_else(|| item.get("input")),
        }]}),
        "function_call_output" | "custom_tool_call_output" => json!({"role": "tool", "parts": [{
            "type": "tool_call_response",
            "id": item.get("call_id"),
            "response": item.get("output"),
        }]}),
        "message" | "" => {
            let role = match str_of(item, "role") {
                "" => "assistant",
                role => role,
            };
            json!({"role": role, "parts": parts(item.get("content"))})
        }
        other => json!({"role": "assistant", "parts": [{"type": other}]}),
    }
}

/// Content (a string, or blocks in any of the three APIs) as parts.
fn parts(content: Option<&Value>) -> Vec<Value> {
    match content {
        Some(Value::String(text)) => vec![json!({"type": "text", "content": text})],
        Some(Value::Array(blocks)) => blocks.iter().map(part).collect(),
        _ => Vec::new(),
    }
}

fn part(block: &Value) -> Value {
    let text = |t: &Value| json!({"type": "text", "content": t});
    match block {
        Value::String(_) => text(block),
        _ => match (str_of(block, "type"), block.get("text")) {
            ("text" | "input_text" | "output_text", Some(t)) => text(t),
            ("tool_use", _) => json!({
                "type": "tool_call",
                "id": block.get("id"),
                "name": block.get("name"),
                "arguments": block.get("input"),
            }),
            ("tool_result", _) => json!({
                "type": "tool_call_response",
                "id": block.get("tool_use_id"),
                "response": block.get("content"),
            }),
            (kind, _) => json!({"type": kind}),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(kv: &[KeyValue]) -> Vec<(String, String)> {
        kv.iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    #[test]
    fn chat_input_splits_instructions_from_messages() {
        let body = json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ]});
        let kv = attrs(&input(Endpoint::ChatCompletions, body.as_object().unwrap()));
        assert_eq!(kv[0].0, "gen_ai.system_instructions");
        assert_eq!(kv[0].1, r#"[{"content":"be brief","type":"text"}]"#);
        let messages: Value = serde_json::from_str(&kv[1].1).unwrap();
        assert_eq!(messages[0]["parts"][1], json!({"type": "image_url"}));
        assert_eq!(messages[1]["parts"][0]["name"], "f");
        assert_eq!(messages[2]["parts"][0]["type"], "tool_call_response");
    }

    #[test]
    fn messages_and_responses_answers_become_output_messages() {
        let answer = json!({"content": [{"type": "text", "text": "4"}], "stop_reason": "end_turn"});
        let kv = attrs(&output(Endpoint::Messages, answer.to_string().as_bytes()));
        assert_eq!(
            kv[0].1,
            r#"[{"finish_reason":"end_turn","parts":[{"content":"4","type":"text"}],"role":"assistant"}]"#
        );
        let answer = json!({"output": [{"type": "reasoning"}, {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}]});
        let kv = attrs(&output(Endpoint::Responses, answer.to_string().as_bytes()));
        let messages: Value = serde_json::from_str(&kv[0].1).unwrap();
        assert_eq!(messages[0]["parts"][0]["type"], "reasoning");
        assert_eq!(messages[1]["parts"][0]["content"], "ok");
    }

    #[test]
    fn a_huge_prompt_is_cut() {
        let body = json!({"input": "é".repeat(MAX_ATTRIBUTE_BYTES)});
        let kv = attrs(&input(Endpoint::Responses, body.as_object().unwrap()));
        assert!(
            kv.iter()
                .any(|(k, v)| k == "llmesh.content_truncated" && v == "true")
        );
        let text = &kv
            .iter()
            .find(|(k, _)| k == "gen_ai.input.messages")
            .unwrap()
            .1;
        assert!(text.len() <= MAX_ATTRIBUTE_BYTES);
    }
}

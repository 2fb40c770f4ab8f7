//! A Responses request restated as a chat request (the mapping table is in the module
//! doc of [`super`]).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::decode_blocks;
use crate::provider::TranslateError;
use crate::provider::bridge::ChatCall;
use crate::provider::openai_wire::ThinkingBlock;

/// Restates a Responses request as a chat request.
pub fn to_chat(body: &Map<String, Value>) -> Result<ChatCall, TranslateError> {
    let mut input = Input::default();
    if let Some(instructions) = present(body, "instructions") {
        let text = instructions
            .as_str()
            .ok_or_else(|| TranslateError::invalid("instructions", "must be a string."))?;
        input
            .messages
            .push(json!({"role": "system", "content": text}));
    }
    match present(body, "input") {
        Some(Value::String(text)) => input
            .messages
            .push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => items.iter().try_for_each(|item| input.item(item))?,
        _ => {
            return Err(TranslateError::invalid(
                "input",
                "input must be a string or an array of items.",
            ));
        }
    }
    let mut chat = Map::new();
    chat.insert("messages".into(), Value::Array(input.finish()));
    let mut hosted_tools = Vec::new();
    let mut dropped = Vec::new();
    // Field by field, so a field nobody handles is passed on for the provider's
    // parameter policy to refuse or drop, never lost here.
    for (key, value) in body {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "input" | "instructions" => {}
            // The sidecar's own: it keeps responses and renders streams itself.
            "metadata" | "store" | "include" | "stream_options" => {}
            "background" if *value == Value::Bool(false) => {}
            "background" => {
                return Err(TranslateError::invalid(
                    "background",
                    "background responses are not supported.",
                ));
            }
            "truncation" if *value == "disabled" => {}
            // OpenAI's service hints (Codex sends all three on every call).
            "prompt_cache_key" => dropped.push("prompt_cache_key"),
            "safety_identifier" => dropped.push("safety_identifier"),
            "client_metadata" => dropped.push("client_metadata"),
            "previous_response_id" => {
                return Err(TranslateError::invalid(
                    "previous_response_id",
                    "the previous response could not be restored for this model's provider.",
                ));
            }
            "tools" => {
                let tools = tools(value, &mut hosted_tools)?;
                if !tools.is_empty() {
                    chat.insert("tools".into(), Value::Array(tools));
                }
            }
            "tool_choice" => {
                chat.insert("tool_choice".into(), tool_choice(value)?);
            }
            "text" => {
                if text(value, &mut chat)? {
                    dropped.push("verbosity");
                }
            }
            "reasoning" => {
                let reasoning = value
                    .as_object()
                    .ok_or_else(|| TranslateError::invalid("reasoning", "must be an object."))?;
                // `summary` only says how reasoning comes back, which chat cannot choose.
                if let Some(effort) = present(reasoning, "effort") {
                    chat.insert("reasoning_effort".into(), effort.clone());
                }
            }
            "max_output_tokens" => {
                chat.insert("max_completion_tokens".into(), value.clone());
            }
            "stream" => {
                chat.insert("stream".into(), value.clone());
                if *value == Value::Bool(true) {
                    // The Response object ends with usage, which chat sends only if asked.
                    chat.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            _ => {
                chat.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(ChatCall {
        body: chat,
        hosted_tools,
        dropped,
    })
}

/// `body[key]`, unless absent or null.
fn present<'v>(body: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    body.get(key).filter(|v| !v.is_null())
}

fn invalid_input(message: impl Into<String>) -> TranslateError {
    TranslateError::invalid("input", message)
}

/// Parses an item or part of type `kind` as `T`.
fn parse<'v, T: Deserialize<'v>>(value: &'v Value, kind: &str) -> Result<T, TranslateError> {
    T::deserialize(value).map_err(|e| invalid_input(format!("a {kind} item is malformed: {e}")))
}

/// The conversation built from input items.
#[derive(Default)]
struct Input {
    messages: Vec<Value>,
    /// The assistant message being built: tool calls join it while no other item
    /// comes between.
    open: Option<Assistant>,
    /// Reasoning waiting for the assistant output it preceded.
    reasoning: Reasoning,
}

/// An assistant message being built.
#[derive(Default)]
struct Assistant {
    content: Option<String>,
    tool_calls: Vec<Value>,
    reasoning: Reasoning,
}

/// Reasoning items, as chat carries them on an assistant message.
#[derive(Default)]
struct Reasoning {
    text: String,
    blocks: Vec<ThinkingBlock<'static>>,
}

#[derive(Deserialize)]
struct FunctionCallItem<'a> {
    #[serde(borrow)]
    call_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    arguments: Cow<'a, str>,
}

#[derive(Deserialize)]
struct CustomCallItem<'a> {
    #[serde(borrow)]
    call_id: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(default, borrow)]
    input: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ReasoningItem<'a> {
    #[serde(default, borrow)]
    summary: Vec<TextPart<'a>>,
    #[serde(default, borrow)]
    content: Option<Vec<TextPart<'a>>>,
    #[serde(default, borrow)]
    encrypted_content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TextPart<'a> {
    #[serde(borrow)]
    text: Cow<'a, str>,
}

impl Input {
    /// Takes one input item.
    fn item(&mut self, item: &Value) -> Result<(), TranslateError> {
        let object = item
            .as_object()
            .ok_or_else(|| invalid_input("input items must be objects."))?;
        let kind = match object.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            None | Some(Value::Null) if object.contains_key("role") => "message",
            _ => return Err(invalid_input("an input item needs a type.")),
        };
        match kind {
            "message" => {
                let role = object
                    .get("role")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_input("a message item needs a role."))?;
                self.message(role, object.get("content"))
            }
            "function_call" => {
                let call: FunctionCallItem<'_> = parse(item, kind)?;
                self.tool_call(&call.call_id, &call.name, call.arguments.into_owned());
                Ok(())
            }
            "custom_tool_call" => {
                let call: CustomCallItem<'_> = parse(item, kind)?;
                // Chat carries a custom tool as a function taking one string.
                let arguments = json!({"input": call.input}).to_string();
                self.tool_call(&call.call_id, &call.name, arguments);
                Ok(())
            }
            "function_call_output" | "custom_tool_call_output" => {
                let call_id = object
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_input(format!("a {kind} item needs a call_id.")))?;
                let content = match object.get("output") {
                    Some(Value::String(text)) => Value::String(text.clone()),
                    Some(Value::Array(parts)) => parts_to_chat(parts)?,
                    _ => return Err(invalid_input(format!("a {kind} item needs an output."))),
                };
                self.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
                Ok(())
            }
            "reasoning" => self.reasoning(parse(item, kind)?),
            "item_reference" => Err(invalid_input(
                "item_reference items are not supported for this model's provider; send the items themselves.",
            )),
            other => Err(invalid_input(format!(
                "input items of type {other:?} are not supported for this model's provider."
            ))),
        }
    }

    fn message(&mut self, role: &str, content: Option<&Value>) -> Result<(), TranslateError> {
        let role = match role {
            "assistant" => {
                let text = assistant_text(content)?;
                self.flush();
                self.open = Some(Assistant {
                    content: Some(text),
                    tool_calls: Vec::new(),
                    reasoning: std::mem::take(&mut self.reasoning),
                });
                return Ok(());
            }
            "user" => "user",
            "system" | "developer" => "system",
            other => return Err(invalid_input(format!("unknown message role {other:?}."))),
        };
        let content = match content {
            Some(Value::String(text)) => Value::String(text.clone()),
            Some(Value::Array(parts)) => parts_to_chat(parts)?,
            _ => {
                return Err(invalid_input(
                    "message content must be a string or an array of parts.",
                ));
            }
        };
        self.push(json!({"role": role, "content": content}));
        Ok(())
    }

    /// A call joins the open assistant message, unless reasoning came between: that
    /// starts the next one, which carries it.
    fn tool_call(&mut self, id: &str, name: &str, arguments: String) {
        let reasoned = !self.reasoning.text.is_empty() || !self.reasoning.blocks.is_empty();
        if self.open.is_none() || reasoned {
            self.flush();
            self.open = Some(Assistant {
                reasoning: std::mem::take(&mut self.reasoning),
                ..Assistant::default()
            });
        }
        if let Some(open) = &mut self.open {
            open.tool_calls.push(json!({
                "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}
            }));
        }
    }

    fn reasoning(&mut self, item: ReasoningItem<'_>) -> Result<(), TranslateError> {
        // Reasoning precedes the output it led to: the assistant message before it is
        // complete.
        self.flush();
        let parts = if item.summary.is_empty() {
            item.content.unwrap_or_default()
        } else {
            item.summary
        };
        for part in parts.iter().filter(|p| !p.text.is_empty()) {
            if !self.reasoning.text.is_empty() {
                self.reasoning.text.push_str("\n\n");
            }
            self.reasoning.text.push_str(&part.text);
        }
        // Reasoning another service encrypted means nothing to this provider: its
        // summary is all that can be kept.
        match item.encrypted_content.as_deref().and_then(decode_blocks) {
            Some(Ok(blocks)) => self.reasoning.blocks.extend(blocks),
            Some(Err(())) => {
                return Err(invalid_input(
                    "a reasoning item's encrypted_content is damaged; send it back as it was received.",
                ));
            }
            None => {}
        }
        Ok(())
    }

    /// Appends a message that is not the assistant's: it closes the open assistant
    /// message, and reasoning with no assistant output after it is dropped.
    fn push(&mut self, message: Value) {
        self.flush();
        self.reasoning = Reasoning::default();
        self.messages.push(message);
    }

    /// Writes the open assistant message out.
    fn flush(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let mut message = Map::new();
        message.insert("role".into(), json!("assistant"));
        message.insert(
            "content".into(),
            open.content.map_or(Value::Null, Value::String),
        );
        if !open.reasoning.text.is_empty() {
            message.insert(
                "reasoning_content".into(),
                Value::String(open.reasoning.text),
            );
        }
        if !open.reasoning.blocks.is_empty() {
            // Serializing our own plain structs cannot fail.
            let blocks = serde_json::to_value(&open.reasoning.blocks).unwrap_or_default();
            message.insert("thinking_blocks".into(), blocks);
        }
        if !open.tool_calls.is_empty() {
            message.insert("tool_calls".into(), Value::Array(open.tool_calls));
        }
        self.messages.push(Value::Object(message));
    }

    fn finish(mut self) -> Vec<Value> {
        self.flush();
        self.messages
    }
}

/// An assistant message's text: its `output_text` parts (and refusals) joined.
fn assistant_text(content: Option<&Value>) -> Result<String, TranslateError> {
    match content {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match part_kind(part)? {
                    "output_text" | "input_text" => text.push_str(part_text(part, "text")?),
                    "refusal" => text.push_str(part_text(part, "refusal")?),
                    other => {
                        return Err(invalid_input(format!(
                            "assistant messages take text parts, not {other:?}."
                        )));
                    }
                }
            }
            Ok(text)
        }
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(invalid_input(
            "message content must be a string or an array of parts.",
        )),
    }
}

fn part_kind(part: &Value) -> Result<&str, TranslateError> {
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_input("every content part needs a type."))
}

fn part_text<'v>(part: &'v Value, key: &str) -> Result<&'v str, TranslateError> {
    part.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_input(format!("a content part needs {key}.")))
}

/// Content parts (of user, system and tool messages) as chat parts.
fn parts_to_chat(parts: &[Value]) -> Result<Value, TranslateError> {
    parts
        .iter()
        .map(part_to_chat)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn part_to_chat(part: &Value) -> Result<Value, TranslateError> {
    let text = |text: &str| json!({"type": "text", "text": text});
    let has = |key: &str| part.get(key).is_some_and(|v| !v.is_null());
    match part_kind(part)? {
        "input_text" | "output_text" => Ok(text(part_text(part, "text")?)),
        "refusal" => Ok(text(part_text(part, "refusal")?)),
        "input_image" => {
            if let Some(url) = part.get("image_url").and_then(Value::as_str) {
                let mut image = Map::new();
                image.insert("url".into(), json!(url));
                if let Some(detail) = part.get("detail").filter(|v| !v.is_null()) {
                    image.insert("detail".into(), detail.clone());
                }
                Ok(json!({"type": "image_url", "image_url": image}))
            } else if has("file_id") {
                Err(invalid_input(
                    "input_image by file_id is not supported for this model's provider; send image_url (an https or data URL).",
                ))
            } else {
                Err(invalid_input("input_image needs image_url."))
            }
        }
        "input_file" => {
            if let Some(data) = part.get("file_data").and_then(Value::as_str) {
                let mut file = Map::new();
                file.insert("file_data".into(), json!(data));
                if let Some(name) = part.get("filename").filter(|v| !v.is_null()) {
                    file.insert("filename".into(), name.clone());
                }
                Ok(json!({"type": "file", "file": file}))
            } else if has("file_id") || has("file_url") {
                Err(invalid_input(
                    "input_file by file_id or file_url is not supported for this model's provider; send file_data.",
                ))
            } else {
                Err(invalid_input("input_file needs file_data."))
            }
        }
        other => Err(invalid_input(format!(
            "content parts of type {other:?} are not supported for this model's provider."
        ))),
    }
}

/// Function and custom tools as chat function tools; hosted tools are listed apart.
fn tools(value: &Value, hosted: &mut Vec<String>) -> Result<Vec<Value>, TranslateError> {
    let invalid = |message: &str| TranslateError::invalid("tools", message);
    let list = value
        .as_array()
        .ok_or_else(|| invalid("tools must be an array."))?;
    let mut out = Vec::with_capacity(list.len());
    for tool in list {
        let tool = tool
            .as_object()
            .ok_or_else(|| invalid("every tool must be an object."))?;
        let kind = tool
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("every tool needs a type."))?;
        if kind != "function" && kind != "custom" {
            hosted.push(kind.to_owned());
            continue;
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("function and custom tools need a name."))?;
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        if let Some(description) = present(tool, "description") {
            function.insert("description".into(), description.clone());
        }
        if kind == "function" {
            for key in ["parameters", "strict"] {
                if let Some(v) = present(tool, key) {
                    function.insert(key.into(), v.clone());
                }
            }
        } else {
            let input = custom_input_description(present(tool, "format"))?;
            function.insert(
                "parameters".into(),
                json!({
                    "type": "object",
                    "properties": {"input": {"type": "string", "description": input}},
                    "required": ["input"],
                    "additionalProperties": false
                }),
            );
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// What a custom tool's `input` must be, told to the model: chat cannot constrain a
/// string by a grammar, so the grammar goes into the description for the model to follow.
fn custom_input_description(format: Option<&Value>) -> Result<String, TranslateError> {
    let kind = format.and_then(|f| f.get("type")).and_then(Value::as_str);
    match kind {
        None | Some("text") => Ok("The tool's input, as free-form text.".to_owned()),
        Some("grammar") => {
            let field = |key| {
                format
                    .and_then(|f| f.get(key))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        TranslateError::invalid("tools", format!("a grammar format needs {key}."))
                    })
            };
            Ok(format!(
                "The tool's input: text that must match this {} grammar exactly.\n{}",
                field("syntax")?,
                field("definition")?
            ))
        }
        Some(other) => Err(TranslateError::invalid(
            "tools",
            format!("unknown custom tool format {other:?}."),
        )),
    }
}

/// `tool_choice` in chat's words.
fn tool_choice(value: &Value) -> Result<Value, TranslateError> {
    let invalid = |message: String| TranslateError::invalid("tool_choice", message);
    match value {
        Value::String(mode) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            Ok(value.clone())
        }
        Value::String(other) => Err(invalid(format!("unknown mode {other:?}."))),
        Value::Object(choice) => match choice.get("type").and_then(Value::as_str) {
            Some("function" | "custom") => {
                let name = choice
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("a named tool choice needs a name.".into()))?;
                Ok(json!({"type": "function", "function": {"name": name}}))
            }
            Some("allowed_tools") => Err(invalid(
                "allowed_tools is not supported for this model's provider.".into(),
            )),
            Some(kind) => Err(invalid(format!(
                "{kind:?} is a hosted tool this model's provider cannot run."
            ))),
            None => Err(invalid("a tool choice object needs a type.".into())),
        },
        _ => Err(invalid("must be a string or an object.".into())),
    }
}

/// `text.format` → `response_format`; whether `text.verbosity` (a hint of OpenAI's
/// GPT-5 models that chat providers do not take) was left out.
fn text(value: &Value, chat: &mut Map<String, Value>) -> Result<bool, TranslateError> {
    let invalid = |message: &str| TranslateError::invalid("text", message);
    let text = value
        .as_object()
        .ok_or_else(|| invalid("text must be an object."))?;
    let verbosity = present(text, "verbosity").is_some();
    let Some(format) = present(text, "format") else {
        return Ok(verbosity);
    };
    let format = format
        .as_object()
        .ok_or_else(|| invalid("text.format must be an object."))?;
    match format.get("type").and_then(Value::as_str) {
        Some("text") => {}
        Some("json_object") => {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = present(format, key) {
                    schema.insert(key.into(), v.clone());
                }
            }
            if !schema.contains_key("name") {
                return Err(invalid("a json_schema format needs a name."));
            }
            chat.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        _ => {
            return Err(invalid(
                "text.format.type must be text, json_object or json_schema.",
            ));
        }
    }
    Ok(verbosity)
}

//! A Messages request restated as a chat request (the mapping is tabled in the module
//! doc of [`super`]). Runs once per call; refusals name the Messages field the way
//! Anthropic's own validation does (`messages.1.content.0.source: ...`).

use serde_json::{Map, Value, json};

use super::super::ChatCall;
use crate::provider::TranslateError;
use crate::provider::reasoning::Effort;

/// Chat fields the translation writes. A client that sends one of them itself (chat's
/// name for something Messages names otherwise) is refused, rather than one of the two
/// values silently winning.
const WRITTEN: &[&str] = &[
    "max_completion_tokens",
    "stop",
    "user",
    "reasoning_effort",
    "parallel_tool_calls",
    "stream_options",
];

/// Restates a Messages request as a chat request.
pub fn to_chat(body: &Map<String, Value>) -> Result<ChatCall, TranslateError> {
    let mut chat = Map::new();
    let mut hosted_tools = Vec::new();
    let mut dropped = Vec::new();
    let mut messages = Vec::new();
    if let Some(system) = field(body, "system") {
        system_message(system, &mut messages)?;
    }
    let turns = field(body, "messages")
        .ok_or_else(|| TranslateError::invalid("messages", "messages: Field required"))?
        .as_array()
        .ok_or_else(|| TranslateError::invalid("messages", "messages: must be an array"))?;
    for (i, turn) in turns.iter().enumerate() {
        message(i, turn, &mut messages)?;
    }
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = field(body, "tools") {
        function_tools(tools, &mut chat, &mut hosted_tools)?;
    }
    if let Some(choice) = field(body, "tool_choice") {
        tool_choice(choice, &mut chat)?;
    }
    for (key, value) in body {
        // A null field asks for nothing: it is left out rather than copied for the
        // provider's parameter policy to refuse.
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "messages" | "system" | "tools" | "tool_choice" => {}
            "max_tokens" => copy(&mut chat, "max_completion_tokens", value),
            "stop_sequences" => copy(&mut chat, "stop", value),
            "metadata" => metadata(value, &mut chat)?,
            "thinking" => thinking(value, &mut chat)?,
            "output_config" => output_config(value, &mut chat)?,
            // Anthropic's server-side context editing: a chat provider is sent the whole
            // context as the client holds it.
            "context_management" => dropped.push("context_management"),
            other => {
                if let Some(&written) = WRITTEN.iter().find(|w| **w == other) {
                    return Err(TranslateError::invalid(
                        written,
                        format!("{other}: Extra inputs are not permitted"),
                    ));
                }
                copy(&mut chat, other, value);
            }
        }
    }
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        // The wrapped chat stream must end with its usage, which the Messages stream
        // reports in `message_delta`.
        chat.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Ok(ChatCall {
        body: chat,
        hosted_tools,
        dropped,
    })
}

/// A field of `object` that is present and not null.
fn field<'v>(object: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    object.get(key).filter(|v| !v.is_null())
}

fn copy(chat: &mut Map<String, Value>, key: &str, value: &Value) {
    chat.insert(key.to_owned(), value.clone());
}

/// The `type` of a content block, tool or option object.
fn kind<'v>(
    block: &'v Value,
    param: &'static str,
    at: &dyn Fn() -> String,
) -> Result<&'v str, TranslateError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::invalid(param, format!("{}.type: Field required", at())))
}

/// A string field of a block.
fn string<'v>(
    block: &'v Value,
    key: &str,
    param: &'static str,
    at: &dyn Fn() -> String,
) -> Result<&'v str, TranslateError> {
    match block.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(TranslateError::invalid(
            param,
            format!("{}.{key}: Field required", at()),
        )),
        Some(_) => Err(TranslateError::invalid(
            param,
            format!("{}.{key}: Input should be a valid string", at()),
        )),
    }
}

/// `part` with the block's `cache_control`, when it has one.
fn cached(mut part: Value, block: &Value) -> Value {
    if let (Some(cache), Some(object)) = (field_of(block, "cache_control"), part.as_object_mut()) {
        object.insert("cache_control".into(), cache.clone());
    }
    part
}

fn field_of<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    value.get(key).filter(|v| !v.is_null())
}

/// The top-level `system` as the first chat message: a string as it is, text blocks as
/// text parts (keeping `cache_control`).
fn system_message(system: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let content = match system {
        Value::String(text) if text.is_empty() => return Ok(()),
        Value::String(_) => system.clone(),
        Value::Array(blocks) if blocks.is_empty() => return Ok(()),
        Value::Array(blocks) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let at = || format!("system.{j}");
                match kind(block, "system", &at)? {
                    "text" => parts.push(text_part(block, "system", &at)?),
                    other => {
                        return Err(TranslateError::invalid(
                            "system",
                            format!("{}: system blocks must be text, not {other:?}", at()),
                        ));
                    }
                }
            }
            Value::Array(parts)
        }
        _ => {
            return Err(TranslateError::invalid(
                "system",
                "system: must be a string or an array of text blocks",
            ));
        }
    };
    out.push(json!({"role": "system", "content": content}));
    Ok(())
}

/// One conversation turn, as one or more chat messages.
fn message(i: usize, turn: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let at = || format!("messages.{i}");
    let role = string(turn, "role", "messages", &at)?;
    let content = field_of(turn, "content").ok_or_else(|| {
        TranslateError::invalid("messages", format!("messages.{i}.content: Field required"))
    })?;
    match role {
        "user" => user(i, content, out),
        "assistant" => assistant(i, content, out),
        // Claude Code places system messages mid-conversation; chat keeps them in place.
        "system" => system_message(content, out),
        other => Err(TranslateError::invalid(
            "messages",
            format!(
                "messages.{i}.role: must be \"user\", \"assistant\" or \"system\", not {other:?}"
            ),
        )),
    }
}

/// The blocks of a turn's content, or the refusal of content neither a string nor an
/// array.
fn blocks(i: usize, content: &Value) -> Result<&[Value], TranslateError> {
    content.as_array().map(Vec::as_slice).ok_or_else(|| {
        TranslateError::invalid(
            "messages",
            format!("messages.{i}.content: must be a string or an array of content blocks"),
        )
    })
}

/// A block type a turn may hold in Anthropic's API that chat cannot carry, or one that
/// does not belong in the turn's role.
fn unsupported(i: usize, j: usize, role: &str, kind: &str) -> TranslateError {
    TranslateError::invalid(
        "messages",
        format!(
            "messages.{i}.content.{j}: {role} content blocks of type {kind:?} cannot be \
             served by this model's provider"
        ),
    )
}

/// A user turn: its `tool_result` blocks become `tool` messages, placed before a user
/// message with the rest of the turn (text, images, documents).
fn user(i: usize, content: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    if content.is_string() {
        out.push(json!({"role": "user", "content": content}));
        return Ok(());
    }
    let blocks = blocks(i, content)?;
    let mut parts = Vec::with_capacity(blocks.len());
    let mut results = 0;
    for (j, block) in blocks.iter().enumerate() {
        let at = || format!("messages.{i}.content.{j}");
        match kind(block, "messages", &at)? {
            "tool_result" => {
                out.push(tool_message(block, &at)?);
                results += 1;
            }
            other => {
                if !user_part(other, block, &at, &mut parts)? {
                    return Err(unsupported(i, j, "user", other));
                }
            }
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    } else if results == 0 {
        // An empty turn stays a turn, for the upstream to judge.
        out.push(json!({"role": "user", "content": ""}));
    }
    Ok(())
}

/// Appends the chat parts of a user block (text, image, document), or returns false
/// for a type that is none of those.
fn user_part(
    kind: &str,
    block: &Value,
    at: &dyn Fn() -> String,
    parts: &mut Vec<Value>,
) -> Result<bool, TranslateError> {
    match kind {
        "text" => parts.push(text_part(block, "messages", at)?),
        "image" => parts.push(image_part(block, at)?),
        "document" => document_parts(block, at, parts)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// `{"type":"text","text"}`, keeping `cache_control`. (Citations a client sends back
/// on text blocks are not carried: chat has no place for them.)
fn text_part(
    block: &Value,
    param: &'static str,
    at: &dyn Fn() -> String,
) -> Result<Value, TranslateError> {
    let text = string(block, "text", param, at)?;
    Ok(cached(json!({"type": "text", "text": text}), block))
}

/// An image as an `image_url` part: a base64 source as a data URL, a URL source as it
/// is. Files API sources are refused: chat has no file ids for images.
fn image_part(block: &Value, at: &dyn Fn() -> String) -> Result<Value, TranslateError> {
    let source = field_of(block, "source").ok_or_else(|| {
        TranslateError::invalid("messages", format!("{}.source: Field required", at()))
    })?;
    let at_source = || format!("{}.source", at());
    let url = match kind(source, "messages", &at_source)? {
        "base64" => {
            let media_type = string(source, "media_type", "messages", &at_source)?;
            let data = string(source, "data", "messages", &at_source)?;
            format!("data:{media_type};base64,{data}")
        }
        "url" => string(source, "url", "messages", &at_source)?.to_owned(),
        other => {
            return Err(TranslateError::invalid(
                "messages",
                format!(
                    "{}: image sources of type {other:?} cannot be served by this model's \
                     provider; send the image as base64 data or a URL",
                    at_source()
                ),
            ));
        }
    };
    Ok(cached(
        json!({"type": "image_url", "image_url": {"url": url}}),
        block,
    ))
}

/// A document: a base64 PDF as a `file` part (`title`, else `document.pdf`, as its
/// file name), plain text as a text part, a content source as its text and image
/// parts. URL and Files API sources are refused: chat's file parts carry only inline
/// data. The document's `cache_control` goes on its last part.
fn document_parts(
    block: &Value,
    at: &dyn Fn() -> String,
    parts: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let source = field_of(block, "source").ok_or_else(|| {
        TranslateError::invalid("messages", format!("{}.source: Field required", at()))
    })?;
    let at_source = || format!("{}.source", at());
    match kind(source, "messages", &at_source)? {
        "base64" => {
            let media_type = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("application/pdf");
            let data = string(source, "data", "messages", &at_source)?;
            let filename = block
                .get("title")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .unwrap_or("document.pdf");
            let file = json!({
                "type": "file",
                "file": {"file_data": format!("data:{media_type};base64,{data}"), "filename": filename}
            });
            parts.push(cached(file, block));
        }
        "text" => {
            let data = string(source, "data", "messages", &at_source)?;
            parts.push(cached(json!({"type": "text", "text": data}), block));
        }
        "content" => {
            let start = parts.len();
            match field_of(source, "content") {
                Some(Value::String(text)) => parts.push(json!({"type": "text", "text": text})),
                Some(Value::Array(items)) => {
                    for (k, item) in items.iter().enumerate() {
                        let at_item = || format!("{}.content.{k}", at_source());
                        match kind(item, "messages", &at_item)? {
                            "text" => parts.push(text_part(item, "messages", &at_item)?),
                            "image" => parts.push(image_part(item, &at_item)?),
                            other => {
                                return Err(TranslateError::invalid(
                                    "messages",
                                    format!(
                                        "{}: document content must be text or image blocks, \
                                         not {other:?}",
                                        at_item()
                                    ),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    return Err(TranslateError::invalid(
                        "messages",
                        format!(
                            "{}.content: must be a string or an array of content blocks",
                            at_source()
                        ),
                    ));
                }
            }
            if let Some(last) = parts.get_mut(start..).and_then(<[Value]>::last_mut) {
                *last = cached(std::mem::take(last), block);
            }
        }
        other => {
            return Err(TranslateError::invalid(
                "messages",
                format!(
                    "{}: document sources of type {other:?} cannot be served by this model's \
                     provider; send the document as base64 data or text",
                    at_source()
                ),
            ));
        }
    }
    Ok(())
}

/// A `tool_result` block as a `tool` message. Its content is a string as it is; text
/// blocks alone are joined with newlines into one string; anything else (images,
/// documents, or `cache_control` to keep) is a list of parts, the block's own
/// `cache_control` on the last. Chat has no error flag: `is_error` results keep their
/// text, which says what went wrong, and an error result with no content says `error`.
fn tool_message(block: &Value, at: &dyn Fn() -> String) -> Result<Value, TranslateError> {
    let id = string(block, "tool_use_id", "messages", at)?;
    let is_error = block.get("is_error").and_then(Value::as_bool) == Some(true);
    let content = match field_of(block, "content") {
        None => Value::String(String::new()),
        Some(Value::String(text)) => Value::String(text.clone()),
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for (k, item) in items.iter().enumerate() {
                let at_item = || format!("{}.content.{k}", at());
                let kind = kind(item, "messages", &at_item)?;
                if !user_part(kind, item, &at_item, &mut parts)? {
                    return Err(TranslateError::invalid(
                        "messages",
                        format!(
                            "{}: tool results of type {kind:?} cannot be served by this \
                             model's provider",
                            at_item()
                        ),
                    ));
                }
            }
            tool_content(parts, block)
        }
        Some(_) => {
            return Err(TranslateError::invalid(
                "messages",
                format!(
                    "{}.content: must be a string or an array of content blocks",
                    at()
                ),
            ));
        }
    };
    let content = match content {
        Value::String(text) if text.is_empty() && is_error => Value::String("error".into()),
        content => content,
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// A tool result's parts as chat content: one string when they are plain text.
fn tool_content(mut parts: Vec<Value>, block: &Value) -> Value {
    let plain = field_of(block, "cache_control").is_none()
        && parts.iter().all(|p| {
            p.get("type").and_then(Value::as_str) == Some("text")
                && p.get("cache_control").is_none()
        });
    if plain {
        let texts: Vec<&str> = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect();
        return Value::String(texts.join("\n"));
    }
    if let Some(last) = parts.last_mut()
        && last.get("cache_control").is_none()
    {
        *last = cached(std::mem::take(last), block);
    }
    Value::Array(parts)
}

/// An assistant turn: text as `content` (one string, or text parts when a block has
/// `cache_control`), `tool_use` as `tool_calls`, thinking as `thinking_blocks` plus
/// its text joined as `reasoning_content`.
fn assistant(i: usize, content: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    if content.is_string() {
        out.push(json!({"role": "assistant", "content": content}));
        return Ok(());
    }
    let blocks = blocks(i, content)?;
    let mut texts: Vec<&Value> = Vec::new();
    let mut tool_calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    let mut reasoning = String::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = || format!("messages.{i}.content.{j}");
        match kind(block, "messages", &at)? {
            "text" => {
                string(block, "text", "messages", &at)?;
                texts.push(block);
            }
            "tool_use" => tool_calls.push(tool_call(block, &at)?),
            "thinking" => {
                let thinking = string(block, "thinking", "messages", &at)?;
                reasoning.push_str(thinking);
                let mut kept = json!({"type": "thinking", "thinking": thinking});
                if let (Some(signature), Some(object)) = (
                    block.get("signature").and_then(Value::as_str),
                    kept.as_object_mut(),
                ) {
                    object.insert("signature".into(), signature.into());
                }
                thinking_blocks.push(kept);
            }
            "redacted_thinking" => {
                let data = string(block, "data", "messages", &at)?;
                thinking_blocks.push(json!({"type": "redacted_thinking", "data": data}));
            }
            other => return Err(unsupported(i, j, "assistant", other)),
        }
    }
    let content = if texts.iter().any(|b| field_of(b, "cache_control").is_some()) {
        let parts = texts
            .iter()
            .map(|b| cached(json!({"type": "text", "text": block_text(b)}), b));
        Value::Array(parts.collect())
    } else if texts.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(texts.iter().map(|b| block_text(b)).collect())
    };
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert("content".into(), content);
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    if !thinking_blocks.is_empty() {
        message.insert("thinking_blocks".into(), Value::Array(thinking_blocks));
    }
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), reasoning.into());
    }
    out.push(Value::Object(message));
    Ok(())
}

/// The text of a text block (checked to be a string).
fn block_text(block: &Value) -> &str {
    block
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A `tool_use` block as a chat tool call, its `input` as the arguments' JSON text.
fn tool_call(block: &Value, at: &dyn Fn() -> String) -> Result<Value, TranslateError> {
    let id = string(block, "id", "messages", at)?;
    let name = string(block, "name", "messages", at)?;
    let arguments = match field_of(block, "input") {
        None => "{}".to_owned(),
        Some(input @ Value::Object(_)) => input.to_string(),
        Some(_) => {
            return Err(TranslateError::invalid(
                "messages",
                format!("{}.input: Input should be a valid dictionary", at()),
            ));
        }
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": arguments}
    }))
}

/// Custom tools as chat functions (keeping `cache_control` on the tool); Anthropic's
/// server tools (any other `type`) are named in `hosted` and left out.
fn function_tools(
    tools: &Value,
    chat: &mut Map<String, Value>,
    hosted: &mut Vec<String>,
) -> Result<(), TranslateError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::invalid("tools", "tools: must be an array of tools"))?;
    let mut functions = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        let at = || format!("tools.{k}");
        match tool.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(server) => {
                hosted.push(server.to_owned());
                continue;
            }
        }
        let mut function = Map::new();
        function.insert("name".into(), string(tool, "name", "tools", &at)?.into());
        if let Some(description) = field_of(tool, "description") {
            function.insert("description".into(), description.clone());
        }
        let schema = field_of(tool, "input_schema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        function.insert("parameters".into(), schema);
        if let Some(strict) = field_of(tool, "strict") {
            function.insert("strict".into(), strict.clone());
        }
        functions.push(cached(
            json!({"type": "function", "function": function}),
            tool,
        ));
    }
    if !functions.is_empty() {
        chat.insert("tools".into(), Value::Array(functions));
    }
    Ok(())
}

/// `tool_choice`, and `disable_parallel_tool_use` as `parallel_tool_calls: false`.
/// Left out when no chat tools remain (only server tools, or none), where chat would
/// refuse it and it can choose nothing.
fn tool_choice(choice: &Value, chat: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let at = || "tool_choice".to_owned();
    let mapped = match kind(choice, "tool_choice", &at)? {
        "auto" => json!("auto"),
        "any" => json!("required"),
        "none" => json!("none"),
        "tool" => {
            let name = string(choice, "name", "tool_choice", &at)?;
            json!({"type": "function", "function": {"name": name}})
        }
        other => {
            return Err(TranslateError::invalid(
                "tool_choice",
                format!(
                    "tool_choice.type: must be \"auto\", \"any\", \"tool\" or \"none\", not \
                     {other:?}"
                ),
            ));
        }
    };
    if !chat.contains_key("tools") {
        return Ok(());
    }
    chat.insert("tool_choice".into(), mapped);
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        chat.insert("parallel_tool_calls".into(), false.into());
    }
    Ok(())
}

/// `metadata.user_id` as `user`; Anthropic's metadata has no other field.
fn metadata(metadata: &Value, chat: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let metadata = metadata
        .as_object()
        .ok_or_else(|| TranslateError::invalid("metadata", "metadata: must be an object"))?;
    for (key, value) in metadata {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("user_id", Value::String(_)) => {
                chat.insert("user".into(), value.clone());
            }
            ("user_id", _) => {
                return Err(TranslateError::invalid(
                    "metadata",
                    "metadata.user_id: Input should be a valid string",
                ));
            }
            (other, _) => {
                return Err(TranslateError::invalid(
                    "metadata",
                    format!("metadata.{other}: Extra inputs are not permitted"),
                ));
            }
        }
    }
    Ok(())
}

/// `output_config`: `effort` as chat's `reasoning_effort` (Anthropic's `max` is chat's
/// `high`), taking precedence over the effort `thinking` implies; `format` (structured
/// output) as `response_format`.
fn output_config(config: &Value, chat: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let invalid = |message: String| TranslateError::invalid("output_config", message);
    let config = config
        .as_object()
        .ok_or_else(|| invalid("output_config: must be an object".into()))?;
    for (key, value) in config {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("effort", Value::String(effort)) => {
                let effort = match effort.as_str() {
                    "low" | "medium" | "high" => effort.as_str(),
                    "max" | "xhigh" => "high",
                    other => {
                        return Err(invalid(format!(
                            "output_config.effort: must be low, medium, high or max, not {other:?}"
                        )));
                    }
                };
                chat.insert("reasoning_effort".into(), effort.into());
            }
            ("format", Value::Object(format))
                if format.get("type") == Some(&json!("json_schema")) =>
            {
                let schema = format.get("schema").cloned().unwrap_or(json!({}));
                chat.insert(
                    "response_format".into(),
                    json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}),
                );
            }
            (other, _) => {
                return Err(invalid(format!(
                    "output_config.{other}: not supported for this model's provider"
                )));
            }
        }
    }
    Ok(())
}

/// Extended thinking as chat's `reasoning_effort`: a budget of up to 1024 tokens is
/// `low`, up to 8192 `medium`, more `high` (see `provider::reasoning`); adaptive
/// thinking is `medium`.
fn thinking(thinking: &Value, chat: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let at = || "thinking".to_owned();
    let effort = match kind(thinking, "thinking", &at)? {
        "enabled" => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    TranslateError::invalid(
                        "thinking",
                        "thinking.budget_tokens: Field required (a positive integer)",
                    )
                })?;
            Effort::of_budget(u32::try_from(budget).unwrap_or(u32::MAX)).as_str()
        }
        "adaptive" => "medium",
        "disabled" => return Ok(()),
        other => {
            return Err(TranslateError::invalid(
                "thinking",
                format!(
                    "thinking.type: must be \"enabled\", \"adaptive\" or \"disabled\", not \
                     {other:?}"
                ),
            ));
        }
    };
    // An effort `output_config` names wins.
    chat.entry("reasoning_effort").or_insert(effort.into());
    Ok(())
}

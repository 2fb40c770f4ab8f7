//! A Converse request checked the way Bedrock checks it (plus: unknown top-level and
//! `inferenceConfig` fields are refused, so a translator's typo fails loudly), down to
//! what the answer depends on. The model's own fields are checked in `model`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::model::{self, Family, Fields};
use super::{Failure, invalid, words};

/// The fields the answer depends on, once the request has been checked.
pub(crate) struct Checked<'a> {
    pub(crate) messages: &'a [Value],
    pub(crate) system_words: u64,
    pub(crate) max_tokens: Option<u64>,
    pub(crate) stop_sequences: Vec<&'a str>,
    pub(crate) tools: Vec<(&'a str, &'a Value)>,
    /// A forced tool choice, from `toolChoice` or Claude's `tool_choice`.
    pub(crate) forced: Option<Forced>,
    pub(crate) cache_point: bool,
    /// Reasoning, structured output and Claude's parallel tool use.
    pub(crate) fields: Fields,
}

/// A tool choice that makes the model call a tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Forced {
    Any,
    Tool(String),
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
    "outputConfig",
    "serviceTier",
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

/// Checks a Converse request body to `model` the way Bedrock does.
pub(crate) fn check<'a>(model: &str, body: &'a Value) -> Result<Checked<'a>, Failure> {
    let claude = Family::of(model) == Family::Claude;
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
            let at = format!("messages.{i}.content.{j}");
            let kind = check_block(block, &at)?;
            match kind {
                "reasoningContent" if role == "user" => {
                    return Err(invalid(format!(
                        "{at}: reasoningContent blocks are only allowed in assistant messages."
                    )));
                }
                "reasoningContent" => {
                    model::check_reasoning(&block["reasoningContent"], &at, claude)?;
                }
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
    let (tools, forced, choice) = match obj.get("toolConfig") {
        Some(config) => check_tools(config)?,
        None if tool_blocks => {
            return Err(invalid(
                "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
            ));
        }
        None => (Vec::new(), None, None),
    };
    let fields = model::check(
        model,
        obj,
        max_tokens,
        choice,
        obj.contains_key("toolConfig"),
    )?;
    if fields.reasoning == Some(true) {
        model::reasoning_precedes_tool_use(messages)?;
    }
    if let Some(Forced::Tool(name)) = &fields.forced
        && !tools.iter().any(|(n, _)| n == name)
    {
        return Err(invalid(format!(
            "The model returned the following errors: tool_choice.name: Tool '{name}' not found in tools"
        )));
    }
    let forced = fields.forced.clone().or(forced);
    Ok(Checked {
        messages,
        system_words,
        max_tokens,
        stop_sequences,
        tools,
        forced,
        cache_point,
        fields,
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

/// The tools, the choice that forces one, and the member `toolChoice` sets.
type Tools<'a> = (Vec<(&'a str, &'a Value)>, Option<Forced>, Option<&'a str>);

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
    let member = config
        .get("toolChoice")
        .and_then(Value::as_object)
        .and_then(|c| c.keys().next())
        .map(String::as_str);
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
                    Some(Forced::Tool(name.to_owned()))
                }
                _ => {
                    return Err(invalid(
                        "toolConfig.toolChoice must set exactly one of auto, any or tool.",
                    ));
                }
            }
        }
    };
    Ok((specs, forced, member))
}

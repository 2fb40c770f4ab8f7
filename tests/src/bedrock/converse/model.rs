//! What the model behind a Converse call checks itself: `additionalModelRequestFields`
//! in the model's own format (Claude's `thinking`, `output_config` and `tool_choice`,
//! Nova 2's `reasoningConfig`, gpt-oss's `reasoning_effort`; other models take none),
//! `outputConfig` structured output (Claude 4.5 and later), and Claude's rules for
//! thinking: no forced tool choice, and a final assistant turn that called tools must
//! start with its signed reasoning. Errors read as Bedrock words them, the model's own
//! wrapped in "The model returned the following errors: …".
//!
//! Families are told by model id, as Bedrock knows them: `anthropic.claude…` (thinking
//! from 3.7, adaptive thinking from 4.6, adaptive only for Opus 4.7, Mythos and Fable,
//! structured output from 4.5), `amazon.nova-2…`, `openai.gpt-oss…`.

use serde_json::Value;

use super::check::Forced;
use super::{Failure, invalid};

/// Claude's errors, as Bedrock passes them on.
fn model_error(message: impl std::fmt::Display) -> Failure {
    invalid(format!(
        "The model returned the following errors: {message}"
    ))
}

/// The families whose request fields differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Claude,
    Nova2,
    GptOss,
    Other,
}

impl Family {
    pub(crate) fn of(model: &str) -> Family {
        if model.contains("anthropic.claude") {
            Family::Claude
        } else if model.contains("amazon.nova-2") {
            Family::Nova2
        } else if model.contains("openai.gpt-oss") {
            Family::GptOss
        } else {
            Family::Other
        }
    }
}

const ADAPTIVE: &[&str] = &[
    "opus-4-6",
    "sonnet-4-6",
    "opus-4-7",
    "opus-4-8",
    "sonnet-5",
    "opus-5",
    "mythos",
    "fable",
];
const ADAPTIVE_ONLY: &[&str] = &["opus-4-7", "opus-4-8", "mythos", "fable"];
const NO_THINKING: &[&str] = &[
    "claude-3-haiku",
    "claude-3-sonnet",
    "claude-3-opus",
    "claude-3-5",
    "claude-instant",
    "claude-v2",
];

fn any_of(model: &str, ids: &[&str]) -> bool {
    ids.iter().any(|id| model.contains(id))
}

/// Whether Converse's `outputConfig` (structured output) serves `model`.
fn structured_output(model: &str) -> bool {
    Family::of(model) == Family::Claude && (model.contains("-4-5") || any_of(model, ADAPTIVE))
}

/// The signature the mock gives reasoning `text`, and checks when it comes back: a
/// 64-bit FNV-1a digest, so a changed text or a made-up signature fails as it would on
/// Bedrock.
pub(crate) fn signature(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("EqQBCkgIAxABGAIiQ{hash:016x}")
}

/// The redacted reasoning the mock returns (`mock-redacted` models), base64.
pub(crate) const REDACTED: &str = "RW5jcnlwdGVkIHJlYXNvbmluZyAobW9jayk=";

/// What the model fields ask for.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    /// The model reasons before answering, and signs it (Claude).
    pub(crate) reasoning: Option<bool>,
    /// Claude's `tool_choice`: a forced choice and whether parallel calls are disabled.
    pub(crate) forced: Option<Forced>,
    pub(crate) disable_parallel: bool,
    /// The schema native structured output constrains the answer to.
    pub(crate) output_schema: Option<Value>,
}

/// Checks `additionalModelRequestFields` and `outputConfig` for `model`. `max_tokens`
/// is `inferenceConfig.maxTokens`; `tool_choice` the member `toolConfig.toolChoice`
/// sets, if any; `tools` whether there is a `toolConfig`.
pub(crate) fn check(
    model: &str,
    body: &serde_json::Map<String, Value>,
    max_tokens: Option<u64>,
    tool_choice: Option<&str>,
    tools: bool,
) -> Result<Fields, Failure> {
    let mut fields = Fields::default();
    if let Some(config) = body.get("outputConfig") {
        fields.output_schema = Some(output_config(model, config)?);
    }
    let Some(extra) = body.get("additionalModelRequestFields") else {
        return Ok(fields);
    };
    let extra = extra
        .as_object()
        .ok_or_else(|| invalid("additionalModelRequestFields must be a JSON object."))?;
    let allowed: &[&str] = match Family::of(model) {
        Family::Claude => &[
            "thinking",
            "output_config",
            "tool_choice",
            "anthropic_beta",
            "top_k",
        ],
        Family::Nova2 => &["reasoningConfig", "inferenceConfig"],
        Family::GptOss => &["reasoning_effort"],
        Family::Other => &[],
    };
    if let Some(key) = extra.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(model_error(format!(
            "Malformed input request: #: extraneous key [{key}] is not permitted, please \
             reformat your input and try again."
        )));
    }
    if let Some(thinking) = extra.get("thinking") {
        fields.reasoning = claude_thinking(model, thinking, max_tokens)?.then_some(true);
    }
    if let Some(config) = extra.get("output_config") {
        let effort = config["effort"].as_str().unwrap_or("");
        if !any_of(model, ADAPTIVE) || !matches!(effort, "low" | "medium" | "high" | "max") {
            return Err(model_error(format!(
                "output_config.effort: Input should be 'low', 'medium', 'high' or 'max' on a \
                 model that takes an effort, not {effort:?}"
            )));
        }
    }
    if let Some(choice) = extra.get("tool_choice") {
        claude_tool_choice(choice, tool_choice, tools, &mut fields)?;
    }
    if let Some(config) = extra.get("reasoningConfig") {
        let kind = config["type"].as_str();
        let effort = config["maxReasoningEffort"].as_str();
        if !matches!(kind, Some("enabled" | "disabled"))
            || !matches!(effort, None | Some("low" | "medium" | "high"))
        {
            return Err(invalid(
                "reasoningConfig must be {\"type\": \"enabled\"|\"disabled\", \"maxReasoningEffort\": \"low\"|\"medium\"|\"high\"}.",
            ));
        }
        fields.reasoning = (kind == Some("enabled")).then_some(false);
    }
    if let Some(effort) = extra.get("reasoning_effort") {
        if !matches!(effort.as_str(), Some("low" | "medium" | "high")) {
            return Err(model_error(format!(
                "reasoning_effort must be low, medium or high, not {effort}"
            )));
        }
        fields.reasoning = Some(false);
    }
    let forced = fields.forced.is_some() || matches!(tool_choice, Some("any" | "tool"));
    if fields.reasoning == Some(true) && forced {
        return Err(model_error(
            "Thinking may not be enabled when tool_choice forces tool use.",
        ));
    }
    Ok(fields)
}

/// Claude's `thinking`; true when it thinks.
fn claude_thinking(
    model: &str,
    thinking: &Value,
    max_tokens: Option<u64>,
) -> Result<bool, Failure> {
    if any_of(model, NO_THINKING) {
        return Err(model_error("thinking: Extra inputs are not permitted"));
    }
    match thinking["type"].as_str() {
        Some("enabled") => {
            if any_of(model, ADAPTIVE_ONLY) {
                return Err(model_error(
                    "thinking.type.enabled: this model only supports adaptive thinking; use \
                     thinking.type: \"adaptive\" with output_config.effort.",
                ));
            }
            let budget = thinking["budget_tokens"].as_u64().unwrap_or(0);
            if budget < 1024 {
                return Err(model_error(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            // Converse's default output limit for Claude when maxTokens is not set.
            if max_tokens.unwrap_or(4096) <= budget {
                return Err(model_error(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult \
                     our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                ));
            }
            Ok(true)
        }
        Some("adaptive") if any_of(model, ADAPTIVE) => Ok(true),
        Some("adaptive") => Err(model_error(
            "thinking.type: adaptive thinking is not supported on this model; use \
             thinking.type: \"enabled\" with budget_tokens.",
        )),
        Some("disabled") if !any_of(model, ADAPTIVE_ONLY) => Ok(false),
        _ => Err(model_error(
            "thinking.type: Input tag does not match any of the expected tags: 'enabled', 'adaptive', 'disabled'",
        )),
    }
}

/// Claude's `tool_choice`, merged by Bedrock into the one Converse's `toolChoice` makes:
/// an overlap with it is refused.
fn claude_tool_choice(
    choice: &Value,
    converse: Option<&str>,
    tools: bool,
    fields: &mut Fields,
) -> Result<(), Failure> {
    if let (Some(member), Some(_)) = (converse, choice.get("type")) {
        return Err(invalid(format!(
            "The additional field tool_choice/type conflicts with the existing field \
             toolConfig.toolChoice.{member}. Remove tool_choice/type and try again."
        )));
    }
    if !tools {
        return Err(model_error(
            "tool_choice: tool_choice may only be specified while providing tools.",
        ));
    }
    let kind = choice["type"].as_str().or(converse);
    match kind {
        Some("auto") => {}
        Some("any") => fields.forced = Some(Forced::Any),
        Some("tool") => match choice["name"].as_str() {
            Some(name) => fields.forced = Some(Forced::Tool(name.to_owned())),
            None if converse == Some("tool") => {}
            None => return Err(model_error("tool_choice.tool.name: Field required")),
        },
        Some("none") => {}
        _ => return Err(model_error("tool_choice.type: Field required")),
    }
    match choice.get("disable_parallel_tool_use") {
        None => {}
        Some(Value::Bool(b)) => fields.disable_parallel = *b,
        Some(other) => {
            return Err(model_error(format!(
                "tool_choice.disable_parallel_tool_use: Input should be a valid boolean, not {other}"
            )));
        }
    }
    Ok(())
}

/// `outputConfig`: `{"textFormat": {"type": "json_schema", "structure": {"jsonSchema":
/// {"schema": "<JSON>", "name", "description"}}}}`, on a model that has it; the schema,
/// parsed. Like Anthropic's constrained decoding, objects must close their properties.
fn output_config(model: &str, config: &Value) -> Result<Value, Failure> {
    if !structured_output(model) {
        return Err(invalid(
            "This model doesn't support the outputConfig.textFormat field. Remove it and try again.",
        ));
    }
    let format = &config["textFormat"];
    let definition = &format["structure"]["jsonSchema"];
    let schema = definition["schema"].as_str();
    let optional_string = |key: &str| definition.get(key).is_none_or(Value::is_string);
    let well_formed = config.as_object().is_some_and(|c| c.len() == 1)
        && format["type"] == "json_schema"
        && format["structure"]
            .as_object()
            .is_some_and(|s| s.len() == 1)
        && optional_string("name")
        && optional_string("description");
    let schema = schema
        .filter(|_| well_formed)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .filter(Value::is_object)
        .ok_or_else(|| {
            invalid(
                "outputConfig.textFormat must be {\"type\": \"json_schema\", \"structure\": \
                 {\"jsonSchema\": {\"schema\": <a JSON schema as a string>}}}.",
            )
        })?;
    if schema["type"] == "object" && schema["additionalProperties"] != false {
        return Err(invalid(
            "The JSON schema is not supported for structured output: for 'object' type, \
             'additionalProperties' must be explicitly set to false.",
        ));
    }
    Ok(schema)
}

/// Claude's rule with thinking on: the last assistant turn, when it called tools whose
/// results follow, starts with the reasoning that led to the calls.
pub(crate) fn reasoning_precedes_tool_use(messages: &[Value]) -> Result<(), Failure> {
    let Some(i) = messages.iter().rposition(|m| m["role"] == "assistant") else {
        return Ok(());
    };
    let content = messages[i]["content"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let calls = content.iter().any(|b| b.get("toolUse").is_some());
    let starts_with_reasoning = content
        .first()
        .is_some_and(|b| b.get("reasoningContent").is_some());
    if calls && !starts_with_reasoning {
        return Err(model_error(format!(
            "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but \
             found `tool_use`. When `thinking` is enabled, a final `assistant` message must \
             start with a thinking block (preceeding the lastmost set of `tool_use` and \
             `tool_result` blocks). We recommend you include thinking blocks from previous \
             turns. To avoid this requirement, disable `thinking`."
        )));
    }
    Ok(())
}

/// Checks a `reasoningContent` block sent back at `at`: the text with the signature the
/// model gave it, or redacted reasoning as it came. Claude (`claude`) requires the
/// signature; other models do not sign their reasoning.
pub(crate) fn check_reasoning(value: &Value, at: &str, claude: bool) -> Result<(), Failure> {
    let obj = value.as_object().filter(|o| o.len() == 1).ok_or_else(|| {
        invalid(format!(
            "{at}.reasoningContent must set exactly one of reasoningText or redactedContent."
        ))
    })?;
    if let Some(text) = obj.get("reasoningText") {
        let body = text["text"].as_str();
        match (body, text["signature"].as_str()) {
            (Some(body), Some(sig)) if sig == signature(body) => Ok(()),
            (Some(_), Some(_)) => Err(model_error(format!(
                "{at}: Invalid `signature` in `thinking` block"
            ))),
            (Some(_), None) if claude => Err(model_error(format!(
                "{at}.thinking.signature: Field required"
            ))),
            (Some(_), None) => Ok(()),
            (None, _) => Err(invalid(format!(
                "{at}.reasoningContent.reasoningText needs text."
            ))),
        }
    } else if obj.get("redactedContent").and_then(Value::as_str) == Some(REDACTED) {
        Ok(())
    } else {
        Err(model_error(format!(
            "{at}: Invalid `data` in `redacted_thinking` block"
        )))
    }
}

//! A whole chat answer (`chat.completion`) restated as an Anthropic `message`.
//!
//! Content comes out in Anthropic's order: thinking (the answer's `thinking_blocks`, or
//! one unsigned block of its `reasoning_content`), then the text (or the refusal), then
//! one `tool_use` per tool call. The metered usage stays the chat answer's.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::wire::{self, MessageUsage, Str, ThinkingKind, ThinkingPiece};
use crate::domain::{CallView, Reply, Usage};
use crate::provider::TranslateError;
use crate::provider::openai_wire::UsageIn;

/// The parts of a `chat.completion` read.
#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(default, borrow)]
    choices: Vec<ChoiceIn<'a>>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(default, borrow)]
    message: MessageIn<'a>,
    #[serde(default, borrow)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct MessageIn<'a> {
    #[serde(borrow)]
    content: Option<ContentIn<'a>>,
    #[serde(borrow)]
    refusal: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Str<'a>>,
    /// What some OpenAI-compatible servers (vLLM, OpenRouter) call `reasoning_content`.
    #[serde(borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(borrow)]
    thinking_blocks: Option<Vec<ThinkingPiece<'a>>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallIn<'a>>>,
}

/// Message content: a string, or (from some providers) text parts.
#[derive(Deserialize)]
#[serde(untagged)]
enum ContentIn<'a> {
    Text(#[serde(borrow)] Str<'a>),
    Parts(#[serde(borrow)] Vec<PartIn<'a>>),
}

#[derive(Deserialize)]
struct PartIn<'a> {
    #[serde(default, borrow)]
    text: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct ToolCallIn<'a> {
    #[serde(default, borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    function: FunctionIn<'a>,
}

#[derive(Deserialize)]
struct FunctionIn<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(default, borrow)]
    arguments: Option<Str<'a>>,
}

/// Anthropic's `message`.
#[derive(Serialize)]
struct Message<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<()>,
    usage: MessageUsage,
}

/// A content block of a `message`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    Text {
        text: &'a str,
    },
    ToolUse {
        id: String,
        name: &'a str,
        input: Value,
    },
}

/// Restates a whole chat answer as a Messages answer.
pub fn reply(call: &CallView<'_>, chat: Reply) -> Result<Reply, TranslateError> {
    let completion: Completion<'_> =
        serde_json::from_slice(&chat.body).map_err(TranslateError::malformed)?;
    let choice = completion
        .choices
        .first()
        .ok_or_else(|| TranslateError::malformed("the chat answer has no choices"))?;
    let message = &choice.message;
    let mut content = Vec::new();
    thinking_blocks(message, &mut content);
    let text = match &message.content {
        Some(ContentIn::Text(text)) => std::borrow::Cow::Borrowed(text.as_str()),
        Some(ContentIn::Parts(parts)) => parts
            .iter()
            .map(|p| wire::text(&p.text))
            .collect::<String>()
            .into(),
        None => std::borrow::Cow::Borrowed(""),
    };
    let text = if text.is_empty() {
        // A refusal is what the model said instead of an answer.
        std::borrow::Cow::Borrowed(wire::text(&message.refusal))
    } else {
        text
    };
    if !text.is_empty() {
        content.push(Block::Text { text: &text });
    }
    let calls = message.tool_calls.as_deref().unwrap_or_default();
    for call in calls {
        content.push(Block::ToolUse {
            id: call
                .id
                .as_ref()
                .map_or_else(wire::tool_use_id, |id| id.as_str().to_owned()),
            name: call.function.name.as_str(),
            input: tool_input(wire::text(&call.function.arguments)),
        });
    }
    let usage = chat
        .usage
        .or_else(|| completion.usage.map(Usage::from))
        .unwrap_or_default();
    let finish = choice.finish_reason.as_ref().map(Str::as_str);
    let answer = Message {
        id: wire::message_id(completion.id.as_ref().map(Str::as_str)),
        kind: "message",
        role: "assistant",
        model: client_model(call),
        content,
        stop_reason: wire::stop_reason(finish, !calls.is_empty()),
        stop_sequence: None,
        usage: MessageUsage::from(usage),
    };
    let body = serde_json::to_vec(&answer).map_err(TranslateError::malformed)?;
    Ok(Reply {
        body: Bytes::from(body),
        usage: chat.usage,
        usage_estimated: chat.usage_estimated,
    })
}

/// The model the client asked for, which Anthropic's answers name (the upstream's model
/// id only when the request named none).
pub fn client_model<'a>(call: &CallView<'a>) -> &'a str {
    model_of(call.body).unwrap_or(call.model)
}

fn model_of(body: &Map<String, Value>) -> Option<&str> {
    body.get("model").and_then(Value::as_str)
}

/// The answer's thinking: its `thinking_blocks` as they are, or, from a provider that
/// gives only `reasoning_content`, one thinking block with an empty signature (which
/// only Anthropic itself would check, and it always sends signed blocks).
fn thinking_blocks<'m>(message: &'m MessageIn<'_>, content: &mut Vec<Block<'m>>) {
    let blocks = message.thinking_blocks.as_deref().unwrap_or_default();
    if blocks.is_empty() {
        let reasoning = message
            .reasoning_content
            .as_ref()
            .or(message.reasoning.as_ref());
        let reasoning = reasoning.map_or("", wire::Str::as_str);
        if !reasoning.is_empty() {
            content.push(Block::Thinking {
                thinking: reasoning,
                signature: "",
            });
        }
        return;
    }
    for block in blocks {
        match block.kind() {
            ThinkingKind::Thinking => content.push(Block::Thinking {
                thinking: wire::text(&block.thinking),
                signature: wire::text(&block.signature),
            }),
            ThinkingKind::Redacted => content.push(Block::RedactedThinking {
                data: wire::text(&block.data),
            }),
            ThinkingKind::Other => {}
        }
    }
}

/// A tool call's arguments as `tool_use.input`, which Anthropic requires to be an
/// object: arguments that are not a JSON object (empty, cut off, or another JSON value)
/// become `{}`, so the client's tool reports the missing input to the model instead of
/// the whole answer failing.
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => input,
        _ => Value::Object(Map::new()),
    }
}

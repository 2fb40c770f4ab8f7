//! A whole chat completion restated as a Response object.

use bytes::Bytes;
use serde::Deserialize;

use super::object::{
    ContentPart, Echo, OutputItem, ResponseObject, ResponseUsage, SummaryText, outcome,
};
use super::{custom_input, custom_tool_names, encode_blocks, new_id};
use crate::domain::{CallView, Reply, Usage};
use crate::provider::TranslateError;
use crate::provider::openai_wire::{ThinkingBlock, UsageIn, unix_now};

/// `chat.completion`, the fields a Response is made of.
#[derive(Deserialize)]
struct Completion<'a> {
    #[serde(default, borrow)]
    choices: Vec<Choice<'a>>,
    #[serde(default)]
    usage: Option<UsageIn>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    message: Message<'a>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    /// What some OpenAI-compatible servers call `reasoning_content`.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default, borrow)]
    thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: Option<String>,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    name: String,
    #[serde(default)]
    arguments: String,
}

/// Restates a whole chat answer as a Response object, keeping its usage.
pub fn reply(call: &CallView<'_>, chat: Reply) -> Result<Reply, TranslateError> {
    let completion: Completion<'_> =
        serde_json::from_slice(&chat.body).map_err(TranslateError::malformed)?;
    let usage = chat.usage.or_else(|| completion.usage.map(Usage::from));
    let choice = completion
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TranslateError::malformed("the chat answer has no choices"))?;
    let (status, incomplete_details) = outcome(choice.finish_reason.as_deref());
    let output = output_items(call, choice.message, status);
    let id = new_id("resp_");
    let echo = Echo::new(call.body);
    let response = ResponseObject {
        id: &id,
        object: "response",
        created_at: unix_now(),
        status,
        error: None,
        incomplete_details,
        output: &output,
        usage: usage.map(ResponseUsage::from),
        echo: &echo,
    };
    let body = serde_json::to_vec(&response).map_err(TranslateError::malformed)?;
    Ok(Reply {
        body: Bytes::from(body),
        usage,
        usage_estimated: chat.usage_estimated,
    })
}

/// The output items of an assistant message: reasoning, text, then tool calls.
fn output_items(
    call: &CallView<'_>,
    message: Message<'_>,
    status: &'static str,
) -> Vec<OutputItem> {
    let tool_calls = message.tool_calls.unwrap_or_default();
    let mut output = Vec::with_capacity(2 + tool_calls.len());
    let thinking: Vec<_> = message
        .thinking_blocks
        .into_iter()
        .flatten()
        .filter(|b| *b != ThinkingBlock::Other)
        .collect();
    let reasoning = message
        .reasoning_content
        .or(message.reasoning)
        .unwrap_or_default();
    if !reasoning.is_empty() || !thinking.is_empty() {
        output.push(OutputItem::Reasoning {
            id: new_id("rs_"),
            summary: if reasoning.is_empty() {
                Vec::new()
            } else {
                vec![SummaryText::new(reasoning)]
            },
            encrypted_content: (!thinking.is_empty()).then(|| encode_blocks(&thinking)),
        });
    }
    let mut content = Vec::new();
    match (message.content, message.refusal) {
        (_, Some(refusal)) if !refusal.is_empty() => {
            content.push(ContentPart::Refusal { refusal });
        }
        (Some(text), _) if !text.is_empty() || tool_calls.is_empty() => {
            content.push(ContentPart::text(text));
        }
        _ => {}
    }
    if !content.is_empty() {
        output.push(OutputItem::Message {
            id: new_id("msg_"),
            status,
            role: "assistant",
            content,
        });
    }
    let custom = custom_tool_names(call.body);
    for tool_call in tool_calls {
        let call_id = tool_call.id.unwrap_or_else(|| new_id("call_"));
        let Function { name, arguments } = tool_call.function;
        output.push(if custom.contains(&name) {
            OutputItem::CustomToolCall {
                id: new_id("ctc_"),
                status: "completed",
                call_id,
                input: custom_input(&arguments),
                name,
            }
        } else {
            OutputItem::FunctionCall {
                id: new_id("fc_"),
                status: "completed",
                call_id,
                name,
                arguments,
            }
        });
    }
    output
}

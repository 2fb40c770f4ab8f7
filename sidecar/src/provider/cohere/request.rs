//! OpenAI chat and embedding requests → Cohere's `/v2/chat` and `/v2/embed` bodies.

use std::borrow::Cow;

use super::wire;
use crate::domain::CallView;
use crate::provider::TranslateError;
use crate::provider::openai_wire::{self, Content, ResponseFormat};
use crate::provider::translate::{self, ToolMode, UserPart, wants_base64};

/// The `/v2/chat` body for a chat call.
pub fn chat(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let req = translate::single_choice_request(call, "Cohere")?;
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        messages.push(message(m)?);
    }
    let mut tools: Vec<wire::Tool<'_>> = translate::functions(&req)?
        .into_iter()
        .map(|function| wire::Tool {
            kind: "function",
            function: wire::FunctionDef {
                name: function.name.clone(),
                description: function.description.clone(),
                parameters: function
                    .parameters
                    .clone()
                    .unwrap_or_else(translate::open_schema),
            },
        })
        .collect();
    let tool_choice = match translate::tool_mode(&req)? {
        None | Some(ToolMode::Auto) => None,
        Some(ToolMode::Required) => Some("REQUIRED"),
        Some(ToolMode::None) => Some("NONE"),
        Some(ToolMode::Named(name)) => {
            // Cohere cannot name the tool to call: offer only that one, and require a call.
            tools.retain(|t| t.function.name == name);
            if tools.is_empty() {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!("tool_choice names {name:?}, which is not in tools."),
                ));
            }
            Some("REQUIRED")
        }
    };
    let response_format = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => Some(wire::ResponseFormat {
            kind: "json_object",
            json_schema: None,
        }),
        Some(ResponseFormat::JsonSchema { json_schema }) => Some(wire::ResponseFormat {
            kind: "json_object",
            json_schema: json_schema.schema.clone(),
        }),
    };
    let body = wire::ChatRequest {
        model: call.model,
        messages,
        stream: call.stream,
        tools,
        tool_choice,
        max_tokens: req.output_limit(),
        temperature: req.temperature,
        p: req.top_p,
        stop_sequences: req.stop_sequences(),
        seed: req.seed,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        response_format,
    };
    translate::encode(&body, "messages")
}

fn message<'a>(m: &'a openai_wire::Message<'a>) -> Result<wire::Message<'a>, TranslateError> {
    let text =
        |content: &'a Option<Content<'a>>, role: &str| -> Result<Cow<'a, str>, TranslateError> {
            match content {
                None => Ok(Cow::Borrowed("")),
                Some(Content::Text(t)) => Ok(Cow::Borrowed(t.as_ref())),
                Some(parts) => {
                    let mut out = String::new();
                    translate::each_text(parts, role, |text| out.push_str(text))?;
                    Ok(Cow::Owned(out))
                }
            }
        };
    Ok(match m.role.as_ref() {
        "system" | "developer" => wire::Message::System {
            content: text(&m.content, "system")?,
        },
        "user" => wire::Message::User {
            content: match &m.content {
                None => wire::UserContent::Text(Cow::Borrowed("")),
                Some(Content::Text(t)) => wire::UserContent::Text(Cow::Borrowed(t.as_ref())),
                Some(parts) => {
                    let mut out = Vec::new();
                    translate::each_user_part(parts, "Cohere accepts", |part| {
                        out.push(match part {
                            UserPart::Text(text) => wire::UserPart::Text {
                                text: Cow::Borrowed(text),
                            },
                            UserPart::Image(url) => wire::UserPart::ImageUrl {
                                image_url: wire::ImageUrl { url },
                            },
                        });
                        Ok(())
                    })?;
                    wire::UserContent::Parts(out)
                }
            },
        },
        "assistant" => {
            let content = text(&m.content, "assistant")?;
            let tool_calls: Vec<wire::ToolCall<'a>> = m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| wire::ToolCall {
                    id: c.id.clone(),
                    kind: "function",
                    function: wire::FunctionCall {
                        name: c.function.name.clone(),
                        arguments: if c.function.arguments.trim().is_empty() {
                            Cow::Borrowed("{}")
                        } else {
                            c.function.arguments.clone()
                        },
                    },
                })
                .collect();
            let has_text = !content.trim().is_empty();
            if tool_calls.is_empty() {
                wire::Message::Assistant {
                    content: Some(content),
                    tool_plan: None,
                    tool_calls,
                }
            } else {
                // Text before tool calls is what Cohere calls the tool plan.
                wire::Message::Assistant {
                    content: None,
                    tool_plan: has_text.then_some(content),
                    tool_calls,
                }
            }
        }
        "tool" => wire::Message::Tool {
            tool_call_id: translate::tool_call_id(m)?.clone(),
            content: text(&m.content, "tool")?,
        },
        other => return Err(translate::unknown_role(other)),
    })
}

/// The `/v2/embed` body for an embeddings call.
pub fn embed(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let req = translate::embeddings_request(call)?;
    let texts = translate::embedding_texts(&req, "Cohere")?;
    if texts.is_empty() || texts.len() > 96 {
        return Err(TranslateError::invalid(
            "input",
            "Cohere embeds 1 to 96 texts per request.",
        ));
    }
    let input_type = translate::input_type(call)?;
    let body = wire::EmbedRequest {
        model: Some(call.model),
        texts,
        input_type,
        embedding_types: [if wants_base64(call) {
            "base64"
        } else {
            "float"
        }],
        output_dimension: req.dimensions,
    };
    translate::encode(&body, "input")
}

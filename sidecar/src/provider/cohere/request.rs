//! OpenAI chat and embedding requests → Cohere's `/v2/chat` and `/v2/embed` bodies.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Value, json};

use super::wire;
use crate::domain::CallView;
use crate::provider::TranslateError;
use crate::provider::openai_wire::{
    self, Content, EmbeddingInput, EmbeddingsRequest, Part, ResponseFormat,
};

/// The `/v2/chat` body for a chat call.
pub fn chat(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let req = openai_wire::ChatRequest::deserialize(call.body)
        .map_err(|e| TranslateError::invalid("messages", e.to_string()))?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(TranslateError::invalid(
            "n",
            "Cohere returns one choice; n must be 1.",
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        messages.push(message(m)?);
    }
    let mut tools = Vec::new();
    for tool in req.tools.iter().flatten() {
        if tool.kind != "function" {
            return Err(TranslateError::invalid(
                "tools",
                format!(
                    "tool type {:?} is not supported; use function tools.",
                    tool.kind
                ),
            ));
        }
        tools.push(wire::Tool {
            kind: "function",
            function: wire::FunctionDef {
                name: tool.function.name.clone(),
                description: tool.function.description.clone(),
                parameters: tool
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            },
        });
    }
    let tool_choice = match &req.tool_choice {
        None => None,
        Some(openai_wire::ToolChoice::Mode(mode)) => match mode.as_ref() {
            "auto" => None,
            "required" => Some("REQUIRED"),
            "none" => Some("NONE"),
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!("unknown mode {other:?}"),
                ));
            }
        },
        Some(openai_wire::ToolChoice::Named { function }) => {
            // Cohere cannot name the tool to call: offer only that one, and require a call.
            tools.retain(|t| t.function.name == function.name);
            if tools.is_empty() {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!(
                        "tool_choice names {:?}, which is not in tools.",
                        function.name
                    ),
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
        stop_sequences: req
            .stop
            .as_ref()
            .map(openai_wire::Stop::to_vec)
            .unwrap_or_default(),
        seed: req.seed,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        response_format,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid("messages", e.to_string()))
}

fn message<'a>(m: &'a openai_wire::Message<'a>) -> Result<wire::Message<'a>, TranslateError> {
    let text =
        |content: &'a Option<Content<'a>>, role: &str| -> Result<Cow<'a, str>, TranslateError> {
            match content {
                None => Ok(Cow::Borrowed("")),
                Some(Content::Text(t)) => Ok(Cow::Borrowed(t.as_ref())),
                Some(Content::Parts(parts)) => {
                    let mut out = String::new();
                    for part in parts {
                        match part {
                            Part::Text { text } => out.push_str(text),
                            _ => {
                                return Err(TranslateError::invalid(
                                    "messages",
                                    format!("only text parts are allowed in {role} messages."),
                                ));
                            }
                        }
                    }
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
                Some(Content::Parts(parts)) => {
                    let mut out = Vec::with_capacity(parts.len());
                    for part in parts {
                        out.push(match part {
                            Part::Text { text } => wire::UserPart::Text {
                                text: Cow::Borrowed(text.as_ref()),
                            },
                            Part::ImageUrl { image_url } => wire::UserPart::ImageUrl {
                                image_url: wire::ImageUrl {
                                    url: &image_url.url,
                                },
                            },
                            Part::Other => {
                                return Err(TranslateError::invalid(
                                    "messages",
                                    "Cohere accepts text and image_url content parts only.",
                                ));
                            }
                        });
                    }
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
            tool_call_id: m.tool_call_id.clone().ok_or_else(|| {
                TranslateError::invalid("messages", "a tool message needs tool_call_id.")
            })?,
            content: text(&m.content, "tool")?,
        },
        other => {
            return Err(TranslateError::invalid(
                "messages",
                format!("unknown role {other:?}."),
            ));
        }
    })
}

pub fn wants_base64(call: &CallView<'_>) -> bool {
    call.body.get("encoding_format").and_then(Value::as_str) == Some("base64")
}

/// The `/v2/embed` body for an embeddings call.
pub fn embed(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let req = EmbeddingsRequest::deserialize(call.body)
        .map_err(|e| TranslateError::invalid("input", e.to_string()))?;
    if let Some(format) = &req.encoding_format
        && format != "float"
        && format != "base64"
    {
        return Err(TranslateError::invalid(
            "encoding_format",
            "encoding_format must be float or base64.",
        ));
    }
    let texts: Vec<&str> = match &req.input {
        EmbeddingInput::One(t) => vec![t.as_ref()],
        EmbeddingInput::Many(ts) => ts.iter().map(AsRef::as_ref).collect(),
        EmbeddingInput::Tokens(_) => {
            return Err(TranslateError::invalid(
                "input",
                "Cohere embeds text; token arrays are not accepted.",
            ));
        }
    };
    if texts.is_empty() || texts.len() > 96 {
        return Err(TranslateError::invalid(
            "input",
            "Cohere embeds 1 to 96 texts per request.",
        ));
    }
    let input_type = match call.body.get("input_type") {
        None => "search_document",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(TranslateError::invalid(
                "input_type",
                "input_type must be a string.",
            ));
        }
    };
    let body = wire::EmbedRequest {
        model: call.model,
        texts,
        input_type,
        embedding_types: [if wants_base64(call) {
            "base64"
        } else {
            "float"
        }],
        output_dimension: req.dimensions,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid("input", e.to_string()))
}

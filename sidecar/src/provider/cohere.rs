//! Cohere's v2 API behind OpenAI's: chat completions through `POST /v2/chat` (JSON, or
//! server-sent events with `"stream": true`) and embeddings through `POST /v2/embed`,
//! with the API key as a bearer token.
//!
//! Mapping, OpenAI → Cohere:
//! - `system`/`developer` → `system` messages; `user` → `user` (text, or text and
//!   `image_url` parts, passed as they are); `assistant` → `assistant` with `tool_calls`
//!   (arguments stay a JSON string); an assistant's text next to tool calls becomes its
//!   `tool_plan`; `tool` → `tool` messages with `tool_call_id`;
//! - `max_completion_tokens`/`max_tokens` → `max_tokens`, `temperature`, `top_p` → `p`,
//!   `stop` → `stop_sequences`, `seed`, `frequency_penalty`, `presence_penalty`;
//! - `tools` → `tools` (the same function shape); `tool_choice` required → `REQUIRED`,
//!   none → `NONE`, auto → omitted; a named function → only that tool is sent, with
//!   `REQUIRED` (Cohere cannot name one);
//! - `response_format` json_object / json_schema → `{"type": "json_object"}` with the
//!   schema as `json_schema`;
//! - unsupported (400, or dropped with `dropUnsupportedParams`): `parallel_tool_calls`,
//!   `logprobs`, `user`, `reasoning_effort`; `n` must be 1.
//!
//! Cohere → OpenAI: text content → `content` (a tool plan becomes the content of a
//! message that calls tools), thinking → `reasoning_content`, `tool_calls` → `tool_calls`;
//! `finish_reason` COMPLETE/STOP_SEQUENCE → stop, MAX_TOKENS → length, TOOL_CALL →
//! tool_calls, ERROR → a failed answer (502, retried); usage from `billed_units` (what
//! Cohere charges; `tokens` also counts its prompt template), `cached_tokens` →
//! `prompt_tokens_details.cached_tokens`.
//!
//! Embeddings: `input` → `texts`, `input_type` (an llmesh extension field, default
//! `search_document`), `dimensions` → `output_dimension`, `encoding_format` float/base64
//! → `embedding_types` `float`/`base64` (Cohere's base64 is OpenAI's: little-endian f32s).

mod stream;
mod wire;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::{StatusCode, Uri};
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::{
    self, AssistantMessage, ChatCompletion, Choice, Content, EmbeddingInput, EmbeddingList,
    EmbeddingOut, EmbeddingUsage, EmbeddingVector, EmbeddingsRequest, FunctionOut, Part,
    ResponseFormat, ToolCallOut, unix_now,
};
use super::{
    CallView, Credential, Dialect, Endpoint, Prepared, StreamTranslator, TranslateError,
    UnsignedRequest, join,
};
use crate::config::snapshot::DeploymentSpec;
use crate::server::error::ApiError;

/// Cohere's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";

/// OpenAI chat parameters Cohere can honour.
const CHAT_PARAMS: &[&str] = &[
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "tools",
    "tool_choice",
    "response_format",
    "stream_options",
    "n",
];

/// OpenAI embedding parameters (plus `input_type`) Cohere can honour.
const EMBEDDING_PARAMS: &[&str] = &["input", "encoding_format", "dimensions", "input_type"];

/// Dialect and bearer credential for a Cohere deployment.
pub fn build(spec: &DeploymentSpec) -> Result<Prepared, String> {
    let base = spec.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
    let chat = join(base, "/v2/chat", None)?;
    let embed = join(base, "/v2/embed", None)?;
    let key = spec
        .api_key
        .as_ref()
        .ok_or("apiKey is required for cohere")?;
    Ok(Prepared {
        dialect: Arc::new(Cohere { chat, embed }),
        credential: Credential::bearer(key.expose())?,
    })
}

/// The Cohere dialect.
#[derive(Debug)]
pub struct Cohere {
    chat: Uri,
    embed: Uri,
}

impl Dialect for Cohere {
    fn supported_params(&self, endpoint: Endpoint) -> Option<&'static [&'static str]> {
        Some(match endpoint {
            Endpoint::ChatCompletions => CHAT_PARAMS,
            Endpoint::Embeddings => EMBEDDING_PARAMS,
            Endpoint::Completions => &[],
        })
    }

    fn request(&self, call: &CallView<'_>) -> Result<UnsignedRequest, TranslateError> {
        match call.endpoint {
            Endpoint::ChatCompletions => {
                Ok(super::post_json(self.chat.clone(), chat_request(call)?))
            }
            Endpoint::Embeddings => Ok(super::post_json(self.embed.clone(), embed_request(call)?)),
            Endpoint::Completions => Err(TranslateError::invalid(
                "model",
                "Cohere deployments serve chat completions and embeddings, not /v1/completions.",
            )),
        }
    }

    fn response(&self, call: &CallView<'_>, body: Bytes) -> Result<Bytes, TranslateError> {
        match call.endpoint {
            Endpoint::Embeddings => embed_response(call, &body),
            _ => chat_response(call, &body),
        }
    }

    fn stream(&self, call: &CallView<'_>) -> Box<dyn StreamTranslator> {
        Box::new(stream::Translator::new(call))
    }

    fn error(&self, status: StatusCode, body: Bytes) -> (StatusCode, Bytes) {
        error(status, body)
    }
}

/// The `/v2/chat` body for a chat call.
fn chat_request(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let req = openai::ChatRequest::deserialize(call.body)
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
        Some(openai::ToolChoice::Mode(mode)) => match mode.as_ref() {
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
        Some(openai::ToolChoice::Named { function }) => {
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
            .map(openai::Stop::to_vec)
            .unwrap_or_default(),
        seed: req.seed,
        frequency_penalty: req.frequency_penalty,
        presence_penalty: req.presence_penalty,
        response_format,
    };
    serde_json::to_vec(&body).map_err(|e| TranslateError::invalid("messages", e.to_string()))
}

fn message<'a>(m: &'a openai::Message<'a>) -> Result<wire::Message<'a>, TranslateError> {
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

/// A `/v2/chat` response → `chat.completion`.
fn chat_response(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let response: wire::ChatResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    if response.finish_reason.as_deref() == Some("ERROR") {
        return Err(TranslateError::malformed(
            "Cohere reported finish_reason ERROR",
        ));
    }
    let mut message = AssistantMessage {
        role: "assistant",
        ..AssistantMessage::default()
    };
    let mut text = String::new();
    let mut thinking = String::new();
    for block in &response.message.content {
        match block.kind.as_str() {
            "thinking" => thinking.push_str(block.thinking.as_deref().unwrap_or("")),
            _ => text.push_str(block.text.as_deref().unwrap_or("")),
        }
    }
    for call in response.message.tool_calls {
        message.tool_calls.push(ToolCallOut {
            id: call.id,
            kind: "function",
            function: FunctionOut {
                name: call.function.name,
                arguments: call.function.arguments,
            },
        });
    }
    if text.is_empty()
        && let Some(plan) = response.message.tool_plan
    {
        text = plan;
    }
    message.content = (!text.is_empty() || message.tool_calls.is_empty()).then_some(text);
    message.reasoning_content = (!thinking.is_empty()).then_some(thinking);
    let completion = ChatCompletion {
        id: &response.id,
        object: "chat.completion",
        created: unix_now(),
        model: call.model,
        choices: vec![Choice {
            index: 0,
            message,
            logprobs: None,
            finish_reason: Some(wire::finish_reason(response.finish_reason.as_deref())),
        }],
        usage: response.usage.unwrap_or_default().to_openai(),
    };
    serde_json::to_vec(&completion)
        .map(Bytes::from)
        .map_err(TranslateError::malformed)
}

fn wants_base64(call: &CallView<'_>) -> bool {
    call.body.get("encoding_format").and_then(Value::as_str) == Some("base64")
}

/// The `/v2/embed` body for an embeddings call.
fn embed_request(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
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

/// A `/v2/embed` response → an embeddings `list`.
fn embed_response(call: &CallView<'_>, body: &[u8]) -> Result<Bytes, TranslateError> {
    let response: wire::EmbedResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    let vectors: Vec<EmbeddingVector> = if wants_base64(call) {
        response
            .embeddings
            .base64
            .ok_or_else(|| TranslateError::malformed("no base64 embeddings"))?
            .into_iter()
            .map(EmbeddingVector::Base64)
            .collect()
    } else {
        response
            .embeddings
            .float
            .ok_or_else(|| TranslateError::malformed("no float embeddings"))?
            .into_iter()
            .map(EmbeddingVector::Float)
            .collect()
    };
    let tokens = response
        .meta
        .and_then(|m| m.billed_units)
        .map_or(0, |b| b.input_tokens);
    let list = EmbeddingList {
        object: "list",
        data: vectors
            .into_iter()
            .enumerate()
            .map(|(i, embedding)| EmbeddingOut {
                object: "embedding",
                index: u32::try_from(i).unwrap_or(u32::MAX),
                embedding,
            })
            .collect(),
        model: call.model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    serde_json::to_vec(&list)
        .map(Bytes::from)
        .map_err(TranslateError::malformed)
}

/// A Cohere error (`{"id", "message"}`) → the status and OpenAI-shaped body a client
/// sees. 499 (the request was cancelled upstream) becomes 502, retried like other
/// upstream faults; 402 (billing) keeps its status and is not retried.
fn error(status: StatusCode, body: Bytes) -> (StatusCode, Bytes) {
    let status = if status.as_u16() == 499 {
        StatusCode::BAD_GATEWAY
    } else {
        status
    };
    let message = serde_json::from_slice::<wire::ErrorBody>(&body)
        .ok()
        .and_then(|b| b.message)
        .unwrap_or_else(|| {
            format!(
                "Cohere answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)])
            )
        });
    let kind = match status.as_u16() {
        401 => "authentication_error",
        402 => "insufficient_quota",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        s if s >= 500 => "server_error",
        _ => "invalid_request_error",
    };
    (status, ApiError::new(status, kind, message).body())
}

#[cfg(test)]
mod tests;

//! OpenAI chat request → Anthropic Messages request.

use std::borrow::Cow;

use super::FALLBACK_MAX_TOKENS;
use super::wire::{
    Block, ImageSource, MessagesRequest, Metadata, Thinking, ToolChoice, ToolDef, Turn,
};
use crate::domain::{CallView, Endpoint};
use crate::provider::json_mode::{JSON_TOOL, json_tool};
use crate::provider::openai_wire::{self, CacheControl, Content, ThinkingBlock};
use crate::provider::translate::{self, Said, ToolMode, TurnBuilder, UserPart};
use crate::provider::{TranslateError, reasoning};

/// The chat call as a Messages request, for Anthropic's API (`vertex: None`) or for Claude on Vertex AI, which
/// names the model in the URL and takes this `anthropic_version` in the body.
pub fn translate_for(
    call: &CallView<'_>,
    vertex: Option<&'static str>,
) -> Result<Vec<u8>, TranslateError> {
    if call.endpoint != Endpoint::ChatCompletions {
        let serves = "chat completions only";
        return Err(translate::not_served(
            "Anthropic models",
            serves,
            call.endpoint,
        ));
    }
    let req = translate::single_choice_request(call, "Anthropic")?;
    let (system, messages) = turns(&req.messages)?;
    let mut body = MessagesRequest {
        model: vertex.is_none().then_some(call.model),
        anthropic_version: vertex,
        max_tokens: req
            .output_limit()
            .or(call.default_max_tokens)
            .unwrap_or(FALLBACK_MAX_TOKENS),
        system,
        messages,
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop_sequences(),
        stream: call.stream,
        tools: Vec::new(),
        tool_choice: None,
        metadata: req.user.clone().map(|user_id| Metadata { user_id }),
        thinking: None,
    };
    let no_parallel = req.parallel_tool_calls == Some(false);
    // `functions` refuses any tool but functions, so it pairs with the tools in order.
    let marks = req
        .tools
        .iter()
        .flatten()
        .map(|tool| tool.cache_control.as_ref());
    for (function, cache_control) in translate::functions(&req)?.into_iter().zip(marks) {
        body.tools.push(ToolDef {
            name: function.name.clone(),
            description: function.description.clone(),
            input_schema: function
                .parameters
                .clone()
                .unwrap_or_else(translate::open_schema),
            cache_control,
        });
    }
    body.tool_choice = match translate::tool_mode(&req)? {
        None => no_parallel.then_some(ToolChoice::Auto {
            disable_parallel_tool_use: true,
        }),
        Some(ToolMode::Auto) => Some(ToolChoice::Auto {
            disable_parallel_tool_use: no_parallel,
        }),
        Some(ToolMode::Required) => Some(ToolChoice::Any {
            disable_parallel_tool_use: no_parallel,
        }),
        Some(ToolMode::None) => Some(ToolChoice::None),
        Some(ToolMode::Named(name)) => Some(ToolChoice::Tool {
            name: Cow::Borrowed(name),
            disable_parallel_tool_use: no_parallel,
        }),
    };
    // Anthropic has no JSON mode of its own: a forced tool call carries the answer.
    if let Some(tool) = json_tool(req.response_format.as_ref()) {
        body.tools.push(ToolDef {
            name: Cow::Borrowed(JSON_TOOL),
            description: Some(tool.description),
            input_schema: tool.schema,
            cache_control: None,
        });
        body.tool_choice = Some(ToolChoice::Tool {
            name: Cow::Borrowed(JSON_TOOL),
            disable_parallel_tool_use: true,
        });
    }
    if let Some(asked) = reasoning::requested(&req)? {
        let budget = asked.reasoning.budget();
        body.max_tokens = reasoning::with_room(body.max_tokens, budget);
        body.thinking = Some(Thinking {
            kind: "enabled",
            budget_tokens: budget,
        });
    }
    translate::encode(&body, "messages")
}

/// Splits the conversation into system blocks and merged user/assistant turns.
fn turns<'a>(
    messages: &'a [openai_wire::Message<'a>],
) -> Result<(Vec<Block<'a>>, Vec<Turn<'a>>), TranslateError> {
    let mut builder = Turns { system: Vec::new() };
    let turns = translate::turns(messages, &mut builder)?;
    let turns = turns
        .into_iter()
        .map(|(role, content)| Turn { role, content });
    Ok((builder.system, turns.collect()))
}

/// Messages as Anthropic content blocks, system text apart.
struct Turns<'a> {
    system: Vec<Block<'a>>,
}

impl<'a> TurnBuilder<'a> for Turns<'a> {
    type Block = Block<'a>;

    fn add(&mut self, said: Said<'a>, out: &mut Vec<Block<'a>>) -> Result<(), TranslateError> {
        match said {
            Said::System(content) => translate::each_text_cached(content, "system", |t, cache| {
                push_text(&mut self.system, t, cache);
            }),
            Said::User(content) => content_blocks(content, out),
            Said::Assistant(message) => {
                // Signed reasoning goes first, as Anthropic wrote it; a block without
                // its signature cannot be verified and would fail the request.
                for block in message.thinking_blocks.iter().flatten() {
                    match block {
                        ThinkingBlock::Thinking {
                            thinking,
                            signature,
                        } if !signature.is_empty() => out.push(Block::Thinking {
                            thinking: Cow::Borrowed(thinking),
                            signature: Cow::Borrowed(signature),
                        }),
                        ThinkingBlock::RedactedThinking { data } => {
                            out.push(Block::RedactedThinking {
                                data: Cow::Borrowed(data),
                            });
                        }
                        _ => {}
                    }
                }
                if let Some(content) = &message.content {
                    translate::each_text_cached(content, "assistant", |t, cache| {
                        push_text(out, t, cache);
                    })?;
                }
                for call in message.tool_calls.iter().flatten() {
                    out.push(Block::ToolUse {
                        id: call.id.clone(),
                        name: call.function.name.clone(),
                        input: translate::arguments(call)?,
                    });
                }
                Ok(())
            }
            Said::Tool(id, message) => {
                let mut content = Vec::new();
                if let Some(c) = &message.content {
                    content_blocks(c, &mut content)?;
                }
                out.push(Block::ToolResult {
                    tool_use_id: id.clone(),
                    content,
                });
                Ok(())
            }
        }
    }
}

/// User (and tool result) content: text and images.
fn content_blocks<'a>(
    content: &'a Content<'a>,
    out: &mut Vec<Block<'a>>,
) -> Result<(), TranslateError> {
    translate::each_user_part_cached(content, "Anthropic accepts", |part, cache| {
        match part {
            UserPart::Text(text) => push_text(out, text, cache),
            UserPart::Image(url) => out.push(Block::Image {
                source: image_source(url)?,
                cache_control: cache,
            }),
        }
        Ok(())
    })
}

/// A text block, with the client's cache mark. Anthropic refuses empty text blocks; the
/// mark of an empty one goes to the block before it, which ends the same prefix.
fn push_text<'a>(
    out: &mut Vec<Block<'a>>,
    text: &'a str,
    cache_control: Option<&'a CacheControl<'a>>,
) {
    if !text.is_empty() {
        out.push(Block::Text {
            text: Cow::Borrowed(text),
            cache_control,
        });
    } else if let Some(
        Block::Text {
            cache_control: mark,
            ..
        }
        | Block::Image {
            cache_control: mark,
            ..
        },
    ) = out.last_mut()
    {
        *mark = mark.or(cache_control);
    }
}

fn image_source(url: &str) -> Result<ImageSource<'_>, TranslateError> {
    if let Some(data) = openai_wire::parse_data_url(url) {
        return Ok(ImageSource::Base64 {
            media_type: data.media_type,
            data: data.data,
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(ImageSource::Url { url });
    }
    Err(TranslateError::invalid(
        "messages",
        "image_url must be an http(s) URL or a base64 data URL.",
    ))
}

//! OpenAI requests → Bedrock bodies: chat → Converse, embeddings → InvokeModel for
//! Titan or Cohere Embed. The Converse body's model-dependent parts come from `options`
//! (reasoning, structured output) and `tools` (`toolConfig`).
//!
//! An assistant message's signed reasoning (`thinking_blocks`) goes back to Claude as
//! `reasoningContent` blocks first in its turn, which Claude requires when it thinks
//! and the turn called tools.
//!
//! `cache_control` on a content part, system part or tool becomes a
//! `{"cachePoint":{"type":"default"}}` block right after the block it marks, in
//! `system`, the turn's `content` or `toolConfig.tools` (a marked tool-result part marks
//! its whole `toolResult`, since Bedrock takes no cache point inside one). A marked text
//! that is left out (blank, which Bedrock refuses) marks the block before it in the same
//! message, if any; two marks in a row make one cache point.

use std::borrow::Cow;

use super::models::Family;
use super::options::{self, Structured};
use super::tools::{self, Plan};
use super::wire::{
    Block, CachePoint, ConverseRequest, Image, ImageSource, InferenceConfig, ReasoningBlock,
    RequestMetadata, ResultBlock, SystemBlock, TitanRequest, ToolResult, ToolUse, Turn,
};
use crate::domain::CallView;
use crate::provider::TranslateError;
use crate::provider::cohere::EmbedRequest;
use crate::provider::openai_wire::{self, Content, ThinkingBlock};
use crate::provider::translate::{self, Said, TurnBuilder, UserPart};

/// Builds the Converse body for a chat call.
pub fn chat(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let req = translate::single_choice_request(call, "Bedrock")?;
    let family = Family::of(call.model);
    let claude = family.claude().is_some();
    let (system, messages) = turns(&req.messages, claude)?;
    let reasoned = options::reasoning(call, &req, family)?;
    let (output_config, json) = match options::structured(&req, family) {
        Structured::None => (None, None),
        Structured::Native(config) => (Some(config), None),
        Structured::Tool(tool) => (None, Some(tool)),
    };
    let plan = Plan {
        claude,
        thinking: reasoned.claude_thinks(),
    };
    let tools = tools::tools(&req, &messages, json, plan)?;
    let inference = InferenceConfig {
        max_tokens: reasoned.max_tokens.or(req.output_limit()),
        temperature: req.temperature,
        top_p: req.top_p,
        stop_sequences: req.stop_sequences(),
    };
    let mut additional = reasoned.fields;
    additional.tool_choice = tools.claude_choice;
    let body = ConverseRequest {
        tool_config: tools.config,
        messages,
        system,
        inference_config: (!inference.is_empty()).then_some(inference),
        request_metadata: req.user.clone().map(|user| RequestMetadata { user }),
        output_config,
        additional_model_request_fields: additional,
    };
    translate::encode(&body, "messages")
}

/// System blocks and alternating user/assistant turns: consecutive same-role messages
/// (several user messages, tool results) merge into one turn, as Bedrock requires.
/// Signed reasoning (`thinking_blocks`) goes back to Claude (`claude`), which checks it;
/// other models' reasoning is not signed and is not sent back.
fn turns<'a>(
    messages: &'a [openai_wire::Message<'a>],
    claude: bool,
) -> Result<(Vec<SystemBlock<'a>>, Vec<Turn<'a>>), TranslateError> {
    let mut builder = Builder {
        system: Vec::new(),
        replay_reasoning: claude,
    };
    let turns = translate::turns(messages, &mut builder)?;
    let turns = turns
        .into_iter()
        .map(|(role, content)| Turn { role, content });
    Ok((builder.system, turns.collect()))
}

/// Messages as Converse content blocks, system blocks kept apart.
struct Builder<'a> {
    system: Vec<SystemBlock<'a>>,
    /// Send assistant `thinking_blocks` back as `reasoningContent`.
    replay_reasoning: bool,
}

impl<'a> TurnBuilder<'a> for Builder<'a> {
    type Block = Block<'a>;

    fn add(&mut self, said: Said<'a>, out: &mut Vec<Block<'a>>) -> Result<(), TranslateError> {
        match said {
            Said::System(content) => {
                let system = &mut self.system;
                translate::each_text_cached(content, "system", |text, cache| {
                    // Bedrock refuses blank text blocks.
                    if !text.trim().is_empty() {
                        system.push(SystemBlock::Text(Cow::Borrowed(text)));
                    }
                    if cache.is_some() && matches!(system.last(), Some(SystemBlock::Text(_))) {
                        system.push(SystemBlock::CachePoint(CachePoint::DEFAULT));
                    }
                })?;
            }
            Said::User(content) => {
                translate::each_user_part_cached(content, "Bedrock accepts", |part, cache| {
                    match part {
                        UserPart::Text(text) => push_text(out, text),
                        UserPart::Image(url) => out.push(Block::Image(image(url)?)),
                    }
                    mark(out, cache.is_some());
                    Ok(())
                })?;
            }
            Said::Assistant(message) => {
                if self.replay_reasoning {
                    reasoning_blocks(message.thinking_blocks.as_deref(), out);
                }
                if let Some(content) = &message.content {
                    translate::each_text_cached(content, "assistant", |text, cache| {
                        push_text(out, text);
                        mark(out, cache.is_some());
                    })?;
                }
                for call in message.tool_calls.iter().flatten() {
                    out.push(Block::ToolUse(ToolUse {
                        tool_use_id: call.id.clone(),
                        name: call.function.name.clone(),
                        input: translate::arguments(call)?,
                    }));
                }
            }
            Said::Tool(id, message) => {
                let mut content = Vec::new();
                let mut cache = false;
                if let Some(c) = &message.content {
                    cache = result_blocks(c, &mut content)?;
                }
                out.push(Block::ToolResult(ToolResult {
                    tool_use_id: id.clone(),
                    content,
                }));
                mark(out, cache);
            }
        }
        Ok(())
    }

    /// Bedrock wants a turn's tool results (with their cache points) before its other
    /// blocks.
    fn merge(turn: &mut Vec<Block<'a>>, blocks: Vec<Block<'a>>) {
        let is_result = |b: &Block<'_>| matches!(b, Block::ToolResult(_) | Block::CachePoint(_));
        if blocks.iter().all(is_result) {
            let at = turn
                .iter()
                .position(|b| !is_result(b))
                .unwrap_or(turn.len());
            turn.splice(at..at, blocks);
        } else {
            turn.extend(blocks);
        }
    }
}

/// Signed reasoning first in the assistant turn, as the model wrote it: Claude requires
/// it there when it thinks and the turn calls tools. A block without its signature
/// cannot be verified and would fail the request, so it is left out.
fn reasoning_blocks<'a>(blocks: Option<&'a [ThinkingBlock<'a>]>, out: &mut Vec<Block<'a>>) {
    for block in blocks.unwrap_or_default() {
        match block {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } if !signature.is_empty() => {
                out.push(Block::ReasoningContent(ReasoningBlock::ReasoningText {
                    text: Cow::Borrowed(thinking),
                    signature: Cow::Borrowed(signature),
                }));
            }
            ThinkingBlock::RedactedThinking { data } => {
                out.push(Block::ReasoningContent(ReasoningBlock::RedactedContent(
                    Cow::Borrowed(data),
                )));
            }
            _ => {}
        }
    }
}

/// A tool result's blocks; true when one of its parts carries `cache_control`.
fn result_blocks<'a>(
    content: &'a Content<'a>,
    out: &mut Vec<ResultBlock<'a>>,
) -> Result<bool, TranslateError> {
    let mut cached = false;
    translate::each_user_part_cached(content, "tool results accept", |part, cache| {
        out.push(match part {
            UserPart::Text(text) => ResultBlock::Text(Cow::Borrowed(text)),
            UserPart::Image(url) => ResultBlock::Image(image(url)?),
        });
        cached |= cache.is_some();
        Ok(())
    })?;
    Ok(cached)
}

/// A cache point after the message's last block, when its part asked for one (`cache`)
/// and there is a block to mark that is not marked already.
fn mark(out: &mut Vec<Block<'_>>, cache: bool) {
    // Reasoning cannot be marked (Claude refuses a cache mark on thinking).
    let markable = !matches!(
        out.last(),
        None | Some(Block::CachePoint(_) | Block::ReasoningContent(_))
    );
    if cache && markable {
        out.push(Block::CachePoint(CachePoint::DEFAULT));
    }
}

fn push_text<'a>(out: &mut Vec<Block<'a>>, text: &'a str) {
    if !text.trim().is_empty() {
        out.push(Block::Text(Cow::Borrowed(text)));
    }
}

/// A data URL's bytes; Bedrock takes images as bytes only. The router has fetched
/// http(s) URLs into data URLs unless the model's image fetching is off.
fn image(url: &str) -> Result<Image<'_>, TranslateError> {
    let Some(data) = openai_wire::parse_data_url(url) else {
        return Err(TranslateError::invalid(
            "messages",
            "Bedrock takes images as bytes: send image_url as a base64 data URL \
             (data:image/png;base64,...), or an http(s) URL for the sidecar to fetch \
             unless the model's imageFetch is disabled.",
        ));
    };
    let format = match data.media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(TranslateError::invalid(
                "messages",
                format!("Bedrock accepts png, jpeg, gif and webp images, not {other}."),
            ));
        }
    };
    Ok(Image {
        format,
        source: ImageSource { bytes: data.data },
    })
}

/// Which embedding body a Bedrock model id takes (ids may be prefixed, e.g. by an
/// inference profile's region, or be ARNs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedKind {
    /// Amazon Titan Text Embeddings; `v2` accepts `dimensions` and `normalize`.
    Titan { v2: bool },
    /// Cohere Embed.
    Cohere,
}

impl EmbedKind {
    /// The kind for a model id, if it is an embedding model the translator knows.
    pub fn of(model: &str) -> Option<EmbedKind> {
        if model.contains("amazon.titan-embed") {
            Some(EmbedKind::Titan {
                v2: model.contains("titan-embed-text-v2"),
            })
        } else if model.contains("cohere.embed") {
            Some(EmbedKind::Cohere)
        } else {
            None
        }
    }
}

/// Builds the InvokeModel body for an embeddings call.
pub fn embeddings(call: &CallView<'_>) -> Result<Vec<u8>, TranslateError> {
    let kind = EmbedKind::of(call.model).ok_or_else(|| {
        TranslateError::invalid(
            "model",
            format!(
                "{} is not a Bedrock embedding model llmesh can call (Titan Text Embeddings \
                 and Cohere Embed are).",
                call.model
            ),
        )
    })?;
    let req = translate::embeddings_request(call)?;
    let texts = translate::embedding_texts(&req, "Bedrock")?;
    if texts.is_empty() {
        return Err(TranslateError::invalid("input", "input must not be empty."));
    }
    match kind {
        EmbedKind::Titan { v2 } => {
            // Several texts are split into one call each before this (see `embed.rs`).
            let [text] = texts[..] else {
                return Err(TranslateError::invalid(
                    "input",
                    "Titan embedding models embed one text per request.",
                ));
            };
            if !v2 && req.dimensions.is_some() {
                return Err(TranslateError::unsupported_value(
                    "dimensions",
                    "only Titan Text Embeddings V2 can shorten embeddings.",
                ));
            }
            translate::encode(
                &TitanRequest {
                    input_text: text,
                    dimensions: req.dimensions,
                    // OpenAI's embeddings are unit vectors; V2 can match that.
                    normalize: v2.then_some(true),
                },
                "input",
            )
        }
        EmbedKind::Cohere => translate::encode(
            &EmbedRequest {
                model: None,
                texts,
                input_type: translate::input_type(call)?,
                embedding_types: ["float"],
                output_dimension: req.dimensions,
            },
            "input",
        ),
    }
}

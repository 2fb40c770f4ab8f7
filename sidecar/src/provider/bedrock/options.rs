//! The parts of a Converse request Converse leaves to the model (see `models`):
//! reasoning, in `additionalModelRequestFields`, and structured output, in
//! `outputConfig` or through the JSON tool.
//!
//! Reasoning (`reasoning_effort`, or the `thinking` extension; see
//! `provider::reasoning` for the levels and budgets):
//!
//! | model | `additionalModelRequestFields` |
//! |---|---|
//! | Claude 3.7 – 4.5 | `thinking: {"type":"enabled","budget_tokens":B}`, and `inferenceConfig.maxTokens` raised to B + 1024 when lower (from the client's limit, else the model's `defaultMaxTokens`, else 4096) |
//! | Claude 4.6 and later | `thinking: {"type":"adaptive"}` and `output_config: {"effort": low/medium/high}` (no effort for adaptive `thinking`, which leaves it to the model) |
//! | Amazon Nova 2 | `reasoningConfig: {"type":"enabled","maxReasoningEffort": low/medium/high}` |
//! | OpenAI gpt-oss | `reasoning_effort: low/medium/high` |
//! | older Claude, other models | refused as unsupported (dropped with `dropUnsupportedParams`) |
//!
//! Structured output (`response_format`): a `json_schema` with `strict: true` on a
//! model with native structured output (Claude 4.5 and later) goes to
//! `outputConfig.textFormat`, where Bedrock constrains decoding to the schema and the
//! answer is plain text JSON. Everything else (`json_object`, non-strict schemas, other
//! models) goes through the forced JSON tool (`provider::json_mode`), which every model
//! with Converse tool use can take: a strict schema is what constrained decoding needs
//! (Bedrock refuses schemas outside its subset, as OpenAI does for strict ones), a loose
//! one is only a guide, which a tool's input schema is too; and `json_object` has no
//! schema to constrain to.

use std::borrow::Cow;

use super::PROVIDER;
use super::models::{Claude, Family, Thinking};
use super::wire::{
    AdditionalFields, ClaudeOutputConfig, ClaudeThinking, JsonSchemaDefinition, NovaReasoning,
    OutputConfig, Structure, TextFormat,
};
use crate::domain::CallView;
use crate::provider::TranslateError;
use crate::provider::anthropic::FALLBACK_MAX_TOKENS;
use crate::provider::json_mode::{JsonTool, json_tool};
use crate::provider::openai_wire::{ChatRequest, ResponseFormat};
use crate::provider::reasoning;

/// The reasoning fields of a request, and the output limit they need.
#[derive(Debug, Default)]
pub struct Reasoned {
    /// `thinking`, `output_config`, `reasoningConfig` or `reasoning_effort`.
    pub fields: AdditionalFields<'static>,
    /// `maxTokens` raised above a thinking budget, when one is set.
    pub max_tokens: Option<u32>,
}

impl Reasoned {
    /// Whether Claude thinks (and so refuses a forced tool choice).
    pub fn claude_thinks(&self) -> bool {
        self.fields.thinking.is_some()
    }
}

/// The reasoning configuration `req` asks of `family`; a model without one refuses it
/// as unsupported.
pub fn reasoning(
    call: &CallView<'_>,
    req: &ChatRequest<'_>,
    family: Family,
) -> Result<Reasoned, TranslateError> {
    let mut out = Reasoned::default();
    let Some(asked) = reasoning::requested(req)? else {
        return Ok(out);
    };
    let unsupported = || TranslateError::Unsupported {
        param: asked.param.to_owned(),
        provider: PROVIDER,
    };
    let level = asked.reasoning.level().as_str();
    match family {
        Family::Claude(claude) => match claude.thinking() {
            Thinking::None => return Err(unsupported()),
            Thinking::Budget => {
                let budget = asked.reasoning.budget();
                let limit = req
                    .output_limit()
                    .or(call.default_max_tokens)
                    .unwrap_or(FALLBACK_MAX_TOKENS);
                out.max_tokens = Some(reasoning::with_room(limit, budget));
                out.fields.thinking = Some(ClaudeThinking::Enabled {
                    budget_tokens: budget,
                });
            }
            Thinking::Adaptive => {
                out.fields.thinking = Some(ClaudeThinking::Adaptive);
                out.fields.output_config = asked
                    .reasoning
                    .effort()
                    .map(|e| ClaudeOutputConfig { effort: e.as_str() });
            }
        },
        Family::Nova2 => {
            out.fields.reasoning_config = Some(NovaReasoning {
                kind: "enabled",
                max_reasoning_effort: level,
            });
        }
        Family::GptOss => out.fields.reasoning_effort = Some(level),
        Family::Other => return Err(unsupported()),
    }
    Ok(out)
}

/// How a `response_format` is served.
#[derive(Debug)]
pub enum Structured<'a> {
    /// Plain text: nothing to do.
    None,
    /// Native structured output.
    Native(OutputConfig<'a>),
    /// The forced JSON tool.
    Tool(JsonTool<'a>),
}

/// How `req`'s `response_format` is served on `family` (see the module docs).
pub fn structured<'a>(req: &'a ChatRequest<'a>, family: Family) -> Structured<'a> {
    let native = family.claude().is_some_and(Claude::structured_output);
    match &req.response_format {
        Some(ResponseFormat::JsonSchema { json_schema })
            if native && json_schema.strict == Some(true) =>
        {
            match &json_schema.schema {
                Some(schema) => Structured::Native(OutputConfig {
                    text_format: TextFormat {
                        kind: "json_schema",
                        structure: Structure::JsonSchema(JsonSchemaDefinition {
                            schema: schema.to_string(),
                            name: Some(Cow::Borrowed(&json_schema.name)),
                            description: json_schema.description.clone(),
                        }),
                    },
                }),
                None => json_tool(req.response_format.as_ref())
                    .map_or(Structured::None, Structured::Tool),
            }
        }
        format => json_tool(format.as_ref()).map_or(Structured::None, Structured::Tool),
    }
}

//! `toolConfig`: the client's tools and `tool_choice`, the JSON tool of `response_format`
//! (where structured output is served by a forced tool, see `options`), and
//! `parallel_tool_calls: false`.
//!
//! | client | `toolConfig` |
//! |---|---|
//! | `tools` | `tools[].toolSpec {name, description, inputSchema: {json}}`, a `cachePoint` after a tool with `cache_control` |
//! | `tool_choice` `auto` / `required` / named | `toolChoice` `{auto:{}}` / `{any:{}}` / `{tool:{name}}` |
//! | `tool_choice: none` | tools left out (Converse has no `none`), unless the conversation holds tool blocks, which Bedrock only takes with a `toolConfig`: then kept, with no choice |
//! | tools used in the history but not declared | declared with an open schema (same reason) |
//! | JSON mode, no tools offered | the JSON tool, forced: `{tool:{name:"json_response"}}` |
//! | JSON mode with tools offered (`tool_choice` absent or `auto`) | the JSON tool beside them, `{any:{}}`: the model calls a tool, or answers through the JSON tool |
//! | JSON mode with `tool_choice` `required` or named | no JSON tool: the model must call the client's tools this turn |
//! | JSON mode while Claude thinks | the JSON tool with `{auto:{}}`: Claude refuses a forced tool choice with thinking on |
//! | `parallel_tool_calls: false` on Claude, tools offered | no `toolChoice`; `additionalModelRequestFields.tool_choice` `{"type": auto / any / tool (+ name), "disable_parallel_tool_use": true}` instead |
//! | `parallel_tool_calls: false` on other models, tools offered | refused as unsupported (dropped with `dropUnsupportedParams`) |
//!
//! Claude's `tool_choice` replaces `toolChoice` rather than sitting beside it because
//! Bedrock refuses an additional field that overlaps one Converse sets ("The additional
//! field tool_choice/type conflicts with the existing field toolConfig.toolChoice…"),
//! while Anthropic needs the `type` it would overlap.

use std::borrow::Cow;

use super::PROVIDER;
use super::wire::{
    Block, CachePoint, ClaudeToolChoice, Empty, InputSchema, ToolChoice, ToolConfig, ToolEntry,
    ToolSpec, Turn,
};
use crate::provider::TranslateError;
use crate::provider::json_mode::{JSON_TOOL, JsonTool};
use crate::provider::openai_wire::ChatRequest;
use crate::provider::translate::{self, ToolMode, open_schema};

/// What the model may do with tools, before it is written in Converse's or Claude's
/// terms.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Choice<'a> {
    Auto,
    Any,
    Tool(Cow<'a, str>),
}

/// How the tools are to be offered.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plan {
    /// The model is Claude, which takes `disable_parallel_tool_use`.
    pub claude: bool,
    /// Claude thinks, and so refuses a forced tool choice.
    pub thinking: bool,
}

/// The tools of a Converse request.
#[derive(Debug, Default)]
pub struct Tools<'a> {
    /// `toolConfig`.
    pub config: Option<ToolConfig<'a>>,
    /// Claude's `tool_choice`, for `additionalModelRequestFields`.
    pub claude_choice: Option<ClaudeToolChoice<'a>>,
}

/// `toolConfig` for `req`, whose conversation is `messages`, with `json` the JSON tool of
/// its `response_format` when a forced tool serves it.
pub fn tools<'a>(
    req: &'a ChatRequest<'a>,
    messages: &[Turn<'a>],
    json: Option<JsonTool<'a>>,
    plan: Plan,
) -> Result<Tools<'a>, TranslateError> {
    let mut tools = Vec::new();
    let functions = translate::functions(req)?;
    for (tool, function) in req.tools.iter().flatten().zip(functions) {
        tools.push(ToolEntry::ToolSpec(ToolSpec {
            name: function.name.clone(),
            description: function.description.clone().filter(|d| !d.is_empty()),
            input_schema: InputSchema {
                json: function.parameters.clone().unwrap_or_else(open_schema),
            },
        }));
        if tool.cache_control.is_some() {
            tools.push(ToolEntry::CachePoint(CachePoint::DEFAULT));
        }
    }
    let history = messages.iter().flat_map(|t| &t.content);
    let has_tool_blocks = history
        .clone()
        .any(|b| matches!(b, Block::ToolUse(_) | Block::ToolResult(_)));
    let mode = translate::tool_mode(req)?;
    if mode == Some(ToolMode::None) && !has_tool_blocks {
        // Converse has no `none`: the tools are left out.
        tools.clear();
    }
    let offered = !tools.is_empty() && mode != Some(ToolMode::None);
    let mut choice = match mode {
        None | Some(ToolMode::None) => None,
        Some(ToolMode::Auto) => Some(Choice::Auto),
        Some(ToolMode::Required) => Some(Choice::Any),
        Some(ToolMode::Named(name)) => Some(Choice::Tool(Cow::Borrowed(name))),
    };
    if let Some(json) = json
        && !matches!(mode, Some(ToolMode::Required | ToolMode::Named(_)))
    {
        tools.push(ToolEntry::ToolSpec(ToolSpec {
            name: Cow::Borrowed(JSON_TOOL),
            description: Some(json.description),
            input_schema: InputSchema { json: json.schema },
        }));
        choice = Some(if plan.thinking {
            Choice::Auto
        } else if offered {
            Choice::Any
        } else {
            Choice::Tool(Cow::Borrowed(JSON_TOOL))
        });
    }
    // Tools used in the conversation must be declared, as Bedrock requires.
    for block in history {
        let Block::ToolUse(used) = block else {
            continue;
        };
        let declared =
            |t: &ToolEntry<'_>| matches!(t, ToolEntry::ToolSpec(spec) if spec.name == used.name);
        if !tools.iter().any(declared) {
            tools.push(ToolEntry::ToolSpec(ToolSpec {
                name: used.name.clone(),
                description: None,
                input_schema: InputSchema {
                    json: open_schema(),
                },
            }));
        }
    }
    if tools.is_empty() {
        return Ok(Tools::default());
    }
    let mut claude_choice = None;
    if req.parallel_tool_calls == Some(false) && offered {
        if !plan.claude {
            return Err(TranslateError::Unsupported {
                param: "parallel_tool_calls".into(),
                provider: PROVIDER,
            });
        }
        let disable_parallel_tool_use = true;
        claude_choice = Some(match choice.take() {
            None | Some(Choice::Auto) => ClaudeToolChoice::Auto {
                disable_parallel_tool_use,
            },
            Some(Choice::Any) => ClaudeToolChoice::Any {
                disable_parallel_tool_use,
            },
            Some(Choice::Tool(name)) => ClaudeToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            },
        });
    }
    let tool_choice = choice.map(|c| match c {
        Choice::Auto => ToolChoice::Auto(Empty {}),
        Choice::Any => ToolChoice::Any(Empty {}),
        Choice::Tool(name) => ToolChoice::Tool { name },
    });
    Ok(Tools {
        config: Some(ToolConfig { tools, tool_choice }),
        claude_choice,
    })
}

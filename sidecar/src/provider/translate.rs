//! What the translating providers (Anthropic, Bedrock, Cohere, Gemini) read from an
//! OpenAI request the same way: the parsed chat or embeddings request, its function
//! tools and `tool_choice`, message content walked part by part, tool-call arguments,
//! and the embedding inputs and options. Each provider keeps its own mapping of these
//! onto its wire; the refusals here are worded once for all of them.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::domain::{CallView, Endpoint, Usage};
use crate::provider::TranslateError;
use crate::provider::openai_wire::{
    CacheControl, ChatRequest, Content, EmbeddingInput, EmbeddingsRequest, FunctionDef, Message,
    Part, ToolCall, ToolChoice,
};

/// The refusal of an endpoint `who` does not serve: it `serves` only the others.
pub fn not_served(who: &str, serves: &str, endpoint: Endpoint) -> TranslateError {
    TranslateError::invalid(
        "model",
        format!("{who} serve {serves}, not /v1{}.", endpoint.path()),
    )
}

/// The refusal of legacy completions by a provider of chat completions and embeddings.
pub fn no_completions(who: &str) -> TranslateError {
    not_served(
        who,
        "chat completions and embeddings",
        Endpoint::Completions,
    )
}

/// The parameters of a provider of chat completions and embeddings, by endpoint (none
/// for legacy completions, which it does not serve).
pub fn params(
    endpoint: Endpoint,
    chat: &'static [&'static str],
    embeddings: &'static [&'static str],
) -> Option<&'static [&'static str]> {
    Some(match endpoint {
        Endpoint::ChatCompletions => chat,
        Endpoint::Embeddings => embeddings,
        _ => &[],
    })
}

/// Parses a chat call's body.
pub fn chat_request<'a>(call: &CallView<'a>) -> Result<ChatRequest<'a>, TranslateError> {
    ChatRequest::deserialize(call.body)
        .map_err(|e| TranslateError::invalid("messages", e.to_string()))
}

/// Parses a chat call's body for a provider that returns one choice (`n` must be 1).
pub fn single_choice_request<'a>(
    call: &CallView<'a>,
    provider: &str,
) -> Result<ChatRequest<'a>, TranslateError> {
    let req = chat_request(call)?;
    if req.n.is_some_and(|n| n != 1) {
        return Err(TranslateError::unsupported_value(
            "n",
            format!("{provider} returns one choice; n must be 1."),
        ));
    }
    Ok(req)
}

/// Serializes a translated request body.
pub fn encode(
    body: &impl serde::Serialize,
    param: &'static str,
) -> Result<Vec<u8>, TranslateError> {
    serde_json::to_vec(body).map_err(|e| TranslateError::invalid(param, e.to_string()))
}

/// The functions of `tools`; other tool types are refused.
pub fn functions<'r, 'a>(
    req: &'r ChatRequest<'a>,
) -> Result<Vec<&'r FunctionDef<'a>>, TranslateError> {
    req.tools
        .iter()
        .flatten()
        .map(|tool| {
            if tool.kind == "function" {
                Ok(&tool.function)
            } else {
                Err(TranslateError::invalid(
                    "tools",
                    format!(
                        "tool type {:?} is not supported; use function tools.",
                        tool.kind
                    ),
                ))
            }
        })
        .collect()
}

/// The schema of a function without `parameters`: an object with no properties.
pub fn open_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// `tool_choice`, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolMode<'r> {
    /// `auto`: the model decides.
    Auto,
    /// `none`: no calls.
    None,
    /// `required`: at least one call.
    Required,
    /// A call of this function.
    Named(&'r str),
}

/// The request's `tool_choice`, if any; an unknown mode is refused.
pub fn tool_mode<'r>(req: &'r ChatRequest<'_>) -> Result<Option<ToolMode<'r>>, TranslateError> {
    Ok(Some(match &req.tool_choice {
        None => return Ok(None),
        Some(ToolChoice::Mode(mode)) => match mode.as_ref() {
            "auto" => ToolMode::Auto,
            "none" => ToolMode::None,
            "required" => ToolMode::Required,
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!("unknown mode {other:?}"),
                ));
            }
        },
        Some(ToolChoice::Named { function }) => ToolMode::Named(&function.name),
    }))
}

/// A tool call's arguments parsed from their JSON string (`{}` when blank).
pub fn arguments(call: &ToolCall<'_>) -> Result<Value, TranslateError> {
    let text = call.function.arguments.trim();
    if text.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(text).map_err(|_| {
        TranslateError::invalid(
            "messages",
            format!("tool call {:?} has arguments that are not JSON.", call.id),
        )
    })
}

/// The call a `tool` message answers.
pub fn tool_call_id<'r, 'a>(message: &'r Message<'a>) -> Result<&'r Cow<'a, str>, TranslateError> {
    message
        .tool_call_id
        .as_ref()
        .ok_or_else(|| TranslateError::invalid("messages", "a tool message needs tool_call_id."))
}

/// The refusal of a message whose role is none of OpenAI's.
pub fn unknown_role(role: &str) -> TranslateError {
    TranslateError::invalid("messages", format!("unknown role {role:?}."))
}

/// Calls `each` with every text of text-only content (system, assistant and tool
/// messages); other parts are refused as not allowed in `roles` messages.
pub fn each_text<'a>(
    content: &'a Content<'a>,
    roles: &str,
    mut each: impl FnMut(&'a str),
) -> Result<(), TranslateError> {
    each_text_cached(content, roles, |text, _| each(text))
}

/// [`each_text`], with each text's part's `cache_control`, if any (see
/// [`CacheControl`]).
pub fn each_text_cached<'a>(
    content: &'a Content<'a>,
    roles: &str,
    mut each: impl FnMut(&'a str, Option<&'a CacheControl<'a>>),
) -> Result<(), TranslateError> {
    match content {
        Content::Text(text) => each(text, None),
        Content::Parts(parts) => {
            for part in parts {
                let Part::Text {
                    text,
                    cache_control,
                } = part
                else {
                    return Err(TranslateError::invalid(
                        "messages",
                        format!("only text parts are allowed in {roles} messages."),
                    ));
                };
                each(text, cache_control.as_ref());
            }
        }
    }
    Ok(())
}

/// One message of a conversation, by what it says.
#[derive(Clone, Copy, Debug)]
pub enum Said<'a> {
    /// A `system` or `developer` message's content, kept apart from the turns.
    System(&'a Content<'a>),
    /// A `user` message's content.
    User(&'a Content<'a>),
    /// An `assistant` message: its text and tool calls.
    Assistant(&'a Message<'a>),
    /// A `tool` message answering the call with this id, in a user turn.
    Tool(&'a Cow<'a, str>, &'a Message<'a>),
}

/// Turns of blocks `B`, each with its role.
pub type Turns<B> = Vec<(&'static str, Vec<B>)>;

/// What a turn-taking provider (Anthropic, Bedrock, Gemini) makes of each message;
/// [`turns`] walks the conversation.
pub trait TurnBuilder<'a> {
    /// A content block (part) of a turn.
    type Block;

    /// The role of the model's turns (`assistant`, Gemini's `model`).
    const ASSISTANT: &'static str = "assistant";

    /// Takes one message, appending its blocks to `out` (system messages are kept by the
    /// builder).
    fn add(&mut self, said: Said<'a>, out: &mut Vec<Self::Block>) -> Result<(), TranslateError>;

    /// Adds the blocks of a message to the turn before it, spoken by the same side.
    fn merge(turn: &mut Vec<Self::Block>, blocks: Vec<Self::Block>) {
        turn.extend(blocks);
    }
}

/// The conversation as turns that alternate, `user` and [`TurnBuilder::ASSISTANT`]:
/// consecutive messages of one side (several user messages, tool results) merge into
/// one turn, and messages with no blocks are left out.
pub fn turns<'a, B: TurnBuilder<'a>>(
    messages: &'a [Message<'a>],
    builder: &mut B,
) -> Result<Turns<B::Block>, TranslateError> {
    let mut turns: Turns<B::Block> = Vec::new();
    for message in messages {
        let (role, said) = match (message.role.as_ref(), &message.content) {
            ("system" | "developer", Some(content)) => ("", Said::System(content)),
            ("system" | "developer", None) => continue,
            ("user", Some(content)) => ("user", Said::User(content)),
            ("user", None) => continue,
            ("assistant", _) => (B::ASSISTANT, Said::Assistant(message)),
            ("tool", _) => ("user", Said::Tool(tool_call_id(message)?, message)),
            (other, _) => return Err(unknown_role(other)),
        };
        let mut blocks = Vec::new();
        builder.add(said, &mut blocks)?;
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, turn)) if *last == role => B::merge(turn, blocks),
            _ => turns.push((role, blocks)),
        }
    }
    Ok(turns)
}

/// A part of user content a translator takes.
#[derive(Clone, Copy, Debug)]
pub enum UserPart<'a> {
    /// Text.
    Text(&'a str),
    /// An image's URL (http(s) or a data URL).
    Image(&'a str),
}

/// Calls `each` with every part of user content, text and images; other parts (audio,
/// files) are refused, saying what `accepts` does take.
pub fn each_user_part<'a>(
    content: &'a Content<'a>,
    accepts: &str,
    mut each: impl FnMut(UserPart<'a>) -> Result<(), TranslateError>,
) -> Result<(), TranslateError> {
    each_user_part_cached(content, accepts, |part, _| each(part))
}

/// [`each_user_part`], with each part's `cache_control`, if any (see
/// [`CacheControl`]).
pub fn each_user_part_cached<'a>(
    content: &'a Content<'a>,
    accepts: &str,
    mut each: impl FnMut(UserPart<'a>, Option<&'a CacheControl<'a>>) -> Result<(), TranslateError>,
) -> Result<(), TranslateError> {
    match content {
        Content::Text(text) => each(UserPart::Text(text), None),
        Content::Parts(parts) => parts.iter().try_for_each(|part| match part {
            Part::Text {
                text,
                cache_control,
            } => each(UserPart::Text(text), cache_control.as_ref()),
            Part::ImageUrl {
                image_url,
                cache_control,
            } => each(UserPart::Image(&image_url.url), cache_control.as_ref()),
            Part::Other => Err(TranslateError::invalid(
                "messages",
                format!("{accepts} text and image_url content parts only."),
            )),
        }),
    }
}

/// Parses an embeddings call's body; `encoding_format` must be `float` or `base64`.
pub fn embeddings_request<'a>(
    call: &CallView<'a>,
) -> Result<EmbeddingsRequest<'a>, TranslateError> {
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
    Ok(req)
}

/// The texts to embed; token arrays are refused, since `provider` embeds text.
pub fn embedding_texts<'r>(
    req: &'r EmbeddingsRequest<'_>,
    provider: &str,
) -> Result<Vec<&'r str>, TranslateError> {
    match &req.input {
        EmbeddingInput::One(text) => Ok(vec![text.as_ref()]),
        EmbeddingInput::Many(texts) => Ok(texts.iter().map(AsRef::as_ref).collect()),
        EmbeddingInput::Tokens(_) => Err(TranslateError::invalid(
            "input",
            format!("{provider} embeds text; token arrays are not accepted."),
        )),
    }
}

/// The most inputs one embeddings call may hold where the sidecar sends it in pieces:
/// OpenAI's own limit, so no call OpenAI would take is refused, and a bound on the
/// upstream requests one call can cost.
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// `texts` in runs of at most `per_request` (at least 1), for an upstream that takes at
/// most that many per request; more than [`MAX_EMBEDDING_INPUTS`] inputs are refused.
pub fn embedding_runs<'t, 'a>(
    texts: &'t [&'a str],
    per_request: usize,
) -> Result<std::slice::Chunks<'t, &'a str>, TranslateError> {
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(TranslateError::invalid(
            "input",
            format!(
                "at most {MAX_EMBEDDING_INPUTS} inputs can be embedded in one request; got {}.",
                texts.len()
            ),
        ));
    }
    Ok(texts.chunks(per_request.max(1)))
}

/// Whether the client asked for base64 embeddings.
pub fn wants_base64(call: &CallView<'_>) -> bool {
    call.body.get("encoding_format").and_then(Value::as_str) == Some("base64")
}

/// Cohere's `input_type` (an llmesh extension field), `search_document` by default.
pub fn input_type<'a>(call: &CallView<'a>) -> Result<&'a str, TranslateError> {
    match call.body.get("input_type") {
        None => Ok("search_document"),
        Some(Value::String(t)) => Ok(t.as_str()),
        Some(_) => Err(TranslateError::invalid(
            "input_type",
            "input_type must be a string.",
        )),
    }
}

/// Token counts of a provider that counts prompt tokens read from and written to its
/// cache apart from its input tokens, as Anthropic (`input_tokens`...) and Bedrock
/// (`inputTokens`...) write them.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(default)]
pub struct CacheUsage {
    /// Prompt tokens neither read from nor written to the cache.
    #[serde(alias = "inputTokens")]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(alias = "outputTokens")]
    pub output_tokens: u64,
    /// Prompt tokens read from the cache.
    #[serde(alias = "cacheReadInputTokens")]
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the cache (Anthropic's `cache_creation_input_tokens`).
    #[serde(alias = "cache_creation_input_tokens", alias = "cacheWriteInputTokens")]
    pub cache_write_input_tokens: Option<u64>,
}

impl CacheUsage {
    /// The usage: OpenAI's prompt counts cached and cache-writing tokens too.
    pub fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_write_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self
                .input_tokens
                .saturating_add(read)
                .saturating_add(written),
            completion_tokens: self.output_tokens,
            cached_tokens: read,
            cache_write_tokens: written,
            reasoning_tokens: 0,
        }
    }
}

/// A client's body passed through with a few top-level fields replaced, added or left
/// out, serialized without copying the map (bodies of agent clients run to hundreds of
/// kilobytes).
pub struct Patched<'a> {
    /// The client's body.
    pub body: &'a Map<String, Value>,
    /// Fields written instead of the client's (in this order, after the others).
    pub set: &'a [(&'a str, Value)],
    /// Fields left out.
    pub skip: &'a [&'a str],
}

impl Patched<'_> {
    /// The JSON bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, TranslateError> {
        serde_json::to_vec(self).map_err(|e| TranslateError::invalid("messages", e.to_string()))
    }
}

impl serde::Serialize for Patched<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.body {
            let k = k.as_str();
            if !self.skip.contains(&k) && !self.set.iter().any(|(name, _)| *name == k) {
                map.serialize_entry(k, v)?;
            }
        }
        for (k, v) in self.set {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

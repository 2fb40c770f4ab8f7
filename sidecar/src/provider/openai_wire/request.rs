//! The OpenAI requests translators read: chat completions and embeddings, borrowed
//! from the parsed body where they can be.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `POST /v1/chat/completions`, the fields translators read.
#[derive(Debug, Deserialize)]
pub struct ChatRequest<'a> {
    /// The conversation.
    #[serde(borrow)]
    pub messages: Vec<Message<'a>>,
    /// Legacy output limit.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Output limit (reasoning included).
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Stop sequences.
    #[serde(default, borrow)]
    pub stop: Option<Stop<'a>>,
    /// Tools the model may call.
    #[serde(default, borrow)]
    pub tools: Option<Vec<Tool<'a>>>,
    /// Whether and which tool the model must call.
    #[serde(default, borrow)]
    pub tool_choice: Option<ToolChoice<'a>>,
    /// Whether the model may call several tools at once.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// Structured output.
    #[serde(default, borrow)]
    pub response_format: Option<ResponseFormat<'a>>,
    /// Streaming options.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// End-user id.
    #[serde(default, borrow)]
    pub user: Option<Cow<'a, str>>,
    /// Number of choices.
    #[serde(default)]
    pub n: Option<u32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<i64>,
    /// Presence penalty.
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    /// Reasoning effort for reasoning models (`low`, `medium`, `high`...).
    #[serde(default, borrow)]
    pub reasoning_effort: Option<Cow<'a, str>>,
    /// Anthropic's `thinking` object, an extension chat clients written for Claude send
    /// (`{"type":"enabled","budget_tokens":N}`): kept unparsed, so a value a provider
    /// does not read never fails the request (see `provider::reasoning`).
    #[serde(default)]
    pub thinking: Option<Value>,
}

impl ChatRequest<'_> {
    /// The output limit the client asked for, by either name.
    pub fn output_limit(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The stop sequences, none when `stop` is absent.
    pub fn stop_sequences(&self) -> Vec<String> {
        self.stop.as_ref().map(Stop::to_vec).unwrap_or_default()
    }

    /// Whether a streamed answer should end with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage == Some(true))
    }
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    /// Send a final chunk with usage.
    pub include_usage: Option<bool>,
}

/// One message of the conversation.
#[derive(Debug, Deserialize)]
pub struct Message<'a> {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    /// Text or parts; absent on assistant messages that only call tools.
    #[serde(default, borrow)]
    pub content: Option<Content<'a>>,
    /// Tool calls an assistant message made.
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
    /// For `tool` messages: the call answered.
    #[serde(default, borrow)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// Reasoning text a client sends back (`reasoning_content`), kept by some providers.
    #[serde(default, borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// A provider's signed reasoning sent back (an llmesh extension, see
    /// [`ThinkingBlock`]): Anthropic replays it, other providers ignore it.
    #[serde(default, borrow)]
    pub thinking_blocks: Option<Vec<ThinkingBlock<'a>>>,
}

/// One block of a provider's reasoning as chat carries it in `thinking_blocks` (an
/// llmesh extension, Anthropic's shape): the text with the signature that lets the
/// provider trust it on the next turn, or reasoning the provider keeps to itself.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ThinkingBlock<'a> {
    /// Reasoning text and its signature.
    Thinking {
        /// The text (empty on a stream's signature delta: the text came as
        /// `reasoning_content`).
        #[serde(default, borrow)]
        thinking: Cow<'a, str>,
        /// The provider's signature over it.
        #[serde(default, borrow)]
        signature: Cow<'a, str>,
    },
    /// Reasoning the provider returns encrypted.
    RedactedThinking {
        /// The opaque data.
        #[serde(borrow)]
        data: Cow<'a, str>,
    },
    /// A block of a kind this version does not know: skipped, so a newer client's
    /// history never makes a request fail.
    #[serde(other, skip_serializing)]
    Other,
}

impl ThinkingBlock<'_> {
    /// The block owning its text.
    pub fn into_owned(self) -> ThinkingBlock<'static> {
        match self {
            ThinkingBlock::Thinking {
                thinking,
                signature,
            } => ThinkingBlock::Thinking {
                thinking: Cow::Owned(thinking.into_owned()),
                signature: Cow::Owned(signature.into_owned()),
            },
            ThinkingBlock::RedactedThinking { data } => ThinkingBlock::RedactedThinking {
                data: Cow::Owned(data.into_owned()),
            },
            ThinkingBlock::Other => ThinkingBlock::Other,
        }
    }
}

/// Message content: a string or a list of parts.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content<'a> {
    /// Plain text.
    Text(#[serde(borrow)] Cow<'a, str>),
    /// Typed parts.
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

impl Content<'_> {
    /// All text parts joined (images and other parts skipped).
    pub fn text(&self) -> String {
        match self {
            Content::Text(t) => t.to_string(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Text { text, .. } => Some(text.as_ref()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        }
    }
}

/// One part of a message.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Part<'a> {
    /// Text.
    Text {
        /// The text.
        #[serde(borrow)]
        text: Cow<'a, str>,
        /// Cache the prompt up to here (see [`CacheControl`]).
        #[serde(default, borrow)]
        cache_control: Option<CacheControl<'a>>,
    },
    /// An image by URL (`https:`) or data URL (`data:image/png;base64,...`).
    ImageUrl {
        /// The image.
        #[serde(borrow)]
        image_url: ImageUrl<'a>,
        /// Cache the prompt up to here (see [`CacheControl`]).
        #[serde(default, borrow)]
        cache_control: Option<CacheControl<'a>>,
    },
    /// Anything else (audio, files...): providers refuse what they cannot take.
    #[serde(other)]
    Other,
}

/// `cache_control` on a content part or tool (an extension Anthropic-style clients and
/// the Messages bridge send, `{"type":"ephemeral"}`): the provider may cache the prompt
/// up to and including what it marks. Providers with prompt caching (Bedrock's
/// `cachePoint`) honour it; the others ignore it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct CacheControl<'a> {
    /// `ephemeral`.
    #[serde(rename = "type", default, borrow)]
    pub kind: Cow<'a, str>,
    /// How long the cache lives (`5m`, `1h`), when the client says.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Cow<'a, str>>,
}

/// `image_url`.
#[derive(Debug, Deserialize)]
pub struct ImageUrl<'a> {
    /// The URL.
    #[serde(borrow)]
    pub url: Cow<'a, str>,
}

/// An image given inline as a data URL.
#[derive(Debug, PartialEq, Eq)]
pub struct DataUrl<'a> {
    /// e.g. `image/png`.
    pub media_type: &'a str,
    /// The base64 payload.
    pub data: &'a str,
}

/// Splits `data:image/png;base64,AAAA` into its media type and base64 data.
pub fn parse_data_url(url: &str) -> Option<DataUrl<'_>> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some(DataUrl { media_type, data })
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct ToolCall<'a> {
    /// The call's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// The function called.
    #[serde(borrow)]
    pub function: FunctionCall<'a>,
    /// What the provider asked to get back with the call (Google's OpenAI-compatible
    /// shape, `{"google": {"thought_signature": …}}`). Kept unparsed: it is an
    /// extension, and a shape no provider reads must not fail the request.
    #[serde(default)]
    pub extra_content: Option<Value>,
}

/// The function part of a tool call.
#[derive(Debug, Deserialize)]
pub struct FunctionCall<'a> {
    /// Function name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Arguments as a JSON string.
    #[serde(default, borrow)]
    pub arguments: Cow<'a, str>,
}

/// A tool definition.
#[derive(Debug, Deserialize)]
pub struct Tool<'a> {
    /// `function`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// The function.
    #[serde(borrow)]
    pub function: FunctionDef<'a>,
    /// Cache the prompt up to and including this tool (see [`CacheControl`]).
    #[serde(default, borrow)]
    pub cache_control: Option<CacheControl<'a>>,
}

/// A function the model may call.
#[derive(Debug, Deserialize)]
pub struct FunctionDef<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// What it does.
    #[serde(default, borrow)]
    pub description: Option<Cow<'a, str>>,
    /// JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
}

/// `tool_choice`: a mode or a named function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice<'a> {
    /// `none`, `auto` or `required`.
    Mode(#[serde(borrow)] Cow<'a, str>),
    /// `{"type":"function","function":{"name":...}}`.
    Named {
        /// The function.
        #[serde(borrow)]
        function: NamedFunction<'a>,
    },
}

/// The named function of a `tool_choice`.
#[derive(Debug, Deserialize)]
pub struct NamedFunction<'a> {
    /// Name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// `response_format`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat<'a> {
    /// Plain text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema.
        #[serde(borrow)]
        json_schema: JsonSchema<'a>,
    },
}

/// `response_format.json_schema`.
#[derive(Debug, Deserialize)]
pub struct JsonSchema<'a> {
    /// Schema name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Description.
    #[serde(default, borrow)]
    pub description: Option<Cow<'a, str>>,
    /// The JSON schema.
    #[serde(default)]
    pub schema: Option<Value>,
    /// Strict adherence.
    #[serde(default)]
    pub strict: Option<bool>,
}

/// `stop`: one sequence or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop<'a> {
    /// One.
    One(#[serde(borrow)] Cow<'a, str>),
    /// Several.
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

impl Stop<'_> {
    /// The sequences as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.to_string()],
            Stop::Many(v) => v.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// `POST /v1/embeddings`, the fields translators read.
#[derive(Debug, Deserialize)]
pub struct EmbeddingsRequest<'a> {
    /// One text or several (token arrays are refused by translators).
    #[serde(borrow)]
    pub input: EmbeddingInput<'a>,
    /// `float` (default) or `base64`.
    #[serde(default, borrow)]
    pub encoding_format: Option<Cow<'a, str>>,
    /// Output dimensions, for models that can shorten.
    #[serde(default)]
    pub dimensions: Option<u32>,
}

/// Embedding input.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum EmbeddingInput<'a> {
    /// One text.
    One(#[serde(borrow)] Cow<'a, str>),
    /// Several texts.
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
    /// Token ids, which only OpenAI-compatible upstreams accept.
    Tokens(Value),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_a_full_chat_request_borrowing_strings() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"}
            ],
            "stop": "END",
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 9
        });
        let map = body.as_object().unwrap();
        let req = ChatRequest::deserialize(map).unwrap();
        assert_eq!(req.messages.len(), 4);
        assert!(matches!(req.messages[0].role, Cow::Borrowed("system")));
        let Some(Content::Parts(parts)) = &req.messages[1].content else {
            panic!()
        };
        assert!(matches!(parts[2], Part::Other));
        assert_eq!(req.stop.as_ref().unwrap().to_vec(), vec!["END"]);
        assert!(matches!(req.tool_choice, Some(ToolChoice::Named { .. })));
        assert!(matches!(
            req.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
        assert!(req.include_usage());
        assert_eq!(req.output_limit(), Some(9));
    }

    #[test]
    fn data_urls_split_into_media_type_and_data() {
        assert_eq!(
            parse_data_url("data:image/jpeg;base64,/9j/4AAQ"),
            Some(DataUrl {
                media_type: "image/jpeg",
                data: "/9j/4AAQ"
            })
        );
        assert_eq!(parse_data_url("https://x/y.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hello"), None);
    }
}

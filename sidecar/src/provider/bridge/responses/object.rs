//! The Response object and its output items as the Responses API writes them (field
//! names as in OpenAI's SDK types, `openai/types/responses/`), shared by whole answers
//! and streams.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::domain::Usage;

/// A Response object.
#[derive(Debug, Serialize)]
pub struct ResponseObject<'a> {
    /// `resp_...`.
    pub id: &'a str,
    /// Always `response`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: u64,
    /// `in_progress`, `completed` or `incomplete`.
    pub status: &'static str,
    /// Always null: failures are errors, not Response objects.
    pub error: Option<()>,
    /// Why the answer is incomplete.
    pub incomplete_details: Option<Incomplete>,
    /// The output items.
    pub output: &'a [OutputItem],
    /// Token counts, once known.
    pub usage: Option<ResponseUsage>,
    /// The request's settings the object repeats.
    #[serde(flatten)]
    pub echo: &'a Echo<'a>,
}

/// `incomplete_details`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Incomplete {
    /// `max_output_tokens` or `content_filter`.
    pub reason: &'static str,
}

/// The status and `incomplete_details` of an answer that ended with `finish_reason`.
pub fn outcome(finish_reason: Option<&str>) -> (&'static str, Option<Incomplete>) {
    let reason = match finish_reason {
        Some("length") => "max_output_tokens",
        Some("content_filter") => "content_filter",
        _ => return ("completed", None),
    };
    ("incomplete", Some(Incomplete { reason }))
}

/// The request's settings a Response object repeats, with OpenAI's defaults for those
/// the request left out.
#[derive(Debug, Serialize)]
pub struct Echo<'a> {
    model: Cow<'a, Value>,
    instructions: Cow<'a, Value>,
    tools: Cow<'a, Value>,
    tool_choice: Cow<'a, Value>,
    parallel_tool_calls: Cow<'a, Value>,
    temperature: Cow<'a, Value>,
    top_p: Cow<'a, Value>,
    max_output_tokens: Cow<'a, Value>,
    metadata: Cow<'a, Value>,
    previous_response_id: Cow<'a, Value>,
    store: Cow<'a, Value>,
    text: Cow<'a, Value>,
    reasoning: Cow<'a, Value>,
    truncation: Cow<'a, Value>,
    user: Cow<'a, Value>,
}

impl<'a> Echo<'a> {
    /// The settings of `body`, a Responses request.
    pub fn new(body: &'a Map<String, Value>) -> Self {
        let field = |name: &str, default: fn() -> Value| match body.get(name) {
            Some(v) if !v.is_null() => Cow::Borrowed(v),
            _ => Cow::Owned(default()),
        };
        Echo {
            model: field("model", || Value::Null),
            instructions: field("instructions", || Value::Null),
            tools: field("tools", || json!([])),
            tool_choice: field("tool_choice", || json!("auto")),
            parallel_tool_calls: field("parallel_tool_calls", || json!(true)),
            temperature: field("temperature", || Value::Null),
            top_p: field("top_p", || Value::Null),
            max_output_tokens: field("max_output_tokens", || Value::Null),
            metadata: field("metadata", || json!({})),
            previous_response_id: field("previous_response_id", || Value::Null),
            store: field("store", || json!(true)),
            text: field("text", || json!({"format": {"type": "text"}})),
            reasoning: field("reasoning", || json!({"effort": null, "summary": null})),
            truncation: field("truncation", || json!("disabled")),
            user: field("user", || Value::Null),
        }
    }

    /// The same settings, owning their values (for a stream, which outlives the request).
    pub fn into_owned(self) -> Echo<'static> {
        fn own(v: Cow<'_, Value>) -> Cow<'static, Value> {
            Cow::Owned(v.into_owned())
        }
        Echo {
            model: own(self.model),
            instructions: own(self.instructions),
            tools: own(self.tools),
            tool_choice: own(self.tool_choice),
            parallel_tool_calls: own(self.parallel_tool_calls),
            temperature: own(self.temperature),
            top_p: own(self.top_p),
            max_output_tokens: own(self.max_output_tokens),
            metadata: own(self.metadata),
            previous_response_id: own(self.previous_response_id),
            store: own(self.store),
            text: own(self.text),
            reasoning: own(self.reasoning),
            truncation: own(self.truncation),
            user: own(self.user),
        }
    }
}

/// One output item.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    /// The model's reasoning.
    Reasoning {
        /// `rs_...`.
        id: String,
        /// The reasoning text, as one summary part (none when the provider showed no
        /// text).
        summary: Vec<SummaryText>,
        /// The provider's signed reasoning, for the next turn (see the module doc).
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
    /// The assistant's message.
    Message {
        /// `msg_...`.
        id: String,
        /// `in_progress`, `completed` or `incomplete`.
        status: &'static str,
        /// Always `assistant`.
        role: &'static str,
        /// Its text (or refusal).
        content: Vec<ContentPart>,
    },
    /// A call of a function tool.
    FunctionCall {
        /// `fc_...`.
        id: String,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// The provider's call id, answered by `function_call_output`.
        call_id: String,
        /// The function.
        name: String,
        /// Arguments, a JSON string.
        arguments: String,
    },
    /// A call of a custom tool.
    CustomToolCall {
        /// `ctc_...`.
        id: String,
        /// `in_progress` or `completed`.
        status: &'static str,
        /// The provider's call id, answered by `custom_tool_call_output`.
        call_id: String,
        /// The tool.
        name: String,
        /// The free-form input.
        input: String,
    },
}

/// A reasoning summary part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryText {
    /// Always `summary_text`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The text.
    pub text: String,
}

impl SummaryText {
    /// A summary part saying `text`.
    pub fn new(text: String) -> Self {
        SummaryText {
            kind: "summary_text",
            text,
        }
    }
}

/// A content part of a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Text.
    OutputText {
        /// The text.
        text: String,
        /// Always empty.
        annotations: Vec<()>,
        /// Always empty: log probabilities are not translated.
        logprobs: Vec<()>,
    },
    /// The model refused.
    Refusal {
        /// Why.
        refusal: String,
    },
}

impl ContentPart {
    /// Text.
    pub fn text(text: String) -> Self {
        ContentPart::OutputText {
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

/// The Responses `usage` object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ResponseUsage {
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Prompt detail.
    pub input_tokens_details: InputDetails,
    /// Output tokens, reasoning included.
    pub output_tokens: u64,
    /// Output detail.
    pub output_tokens_details: OutputDetails,
    /// Their sum.
    pub total_tokens: u64,
}

/// `usage.input_tokens_details`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct InputDetails {
    /// Prompt tokens read from the provider's cache.
    pub cached_tokens: u64,
}

/// `usage.output_tokens_details`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct OutputDetails {
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
}

impl From<Usage> for ResponseUsage {
    fn from(u: Usage) -> Self {
        ResponseUsage {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputDetails {
                cached_tokens: u.cached_tokens,
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
            total_tokens: u.total(),
        }
    }
}

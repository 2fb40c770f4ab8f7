//! `response_format` served through a forced tool, for providers whose models answer in
//! JSON reliably only as a tool's input (Anthropic, and Bedrock models without native
//! structured output): the request declares [`JSON_TOOL`] with the client's schema as
//! its input schema and makes the model call it; the call's input is then returned as
//! the message `content` (a JSON string), streamed as content deltas, with
//! `finish_reason: stop` rather than `tool_calls` when no other tool was called.

use std::borrow::Cow;

use serde_json::{Value, json};

use crate::domain::CallView;
use crate::provider::openai_wire::ResponseFormat;

/// The tool that carries a structured (`response_format`) answer.
pub const JSON_TOOL: &str = "json_response";

/// Whether the call asks for JSON output (`json_schema` or `json_object`): an answer's
/// [`JSON_TOOL`] call is then the message content.
pub fn json_mode(call: &CallView<'_>) -> bool {
    call.body
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "json_schema" || t == "json_object")
}

/// The description and input schema of the JSON tool.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonTool<'a> {
    /// What the model is told the tool is for.
    pub description: Cow<'a, str>,
    /// The answer's schema: the client's, or any object for `json_object`.
    pub schema: Value,
}

/// The JSON tool a `response_format` asks for; `None` for `text` or no format.
pub fn json_tool<'a>(format: Option<&'a ResponseFormat<'a>>) -> Option<JsonTool<'a>> {
    match format? {
        ResponseFormat::Text => None,
        ResponseFormat::JsonSchema { json_schema } => Some(JsonTool {
            description: json_schema
                .description
                .clone()
                .unwrap_or(Cow::Borrowed("Respond with JSON matching this schema.")),
            schema: json_schema
                .schema
                .clone()
                .unwrap_or_else(|| json!({"type": "object"})),
        }),
        ResponseFormat::JsonObject => Some(JsonTool {
            description: Cow::Borrowed("Respond with a JSON object."),
            schema: json!({"type": "object"}),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::provider::openai_wire::ChatRequest;

    /// The JSON tool of `format` as (description, schema).
    fn tool_of(format: Value) -> Option<(String, Value)> {
        let body = json!({"messages": [], "response_format": format});
        let map = body.as_object().cloned().unwrap_or_default();
        let req = ChatRequest::deserialize(&map).unwrap();
        json_tool(req.response_format.as_ref()).map(|t| (t.description.into_owned(), t.schema))
    }

    #[test]
    fn formats_become_tools() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let format = json!({"type": "json_schema",
            "json_schema": {"name": "a", "description": "The A.", "schema": schema}});
        assert_eq!(tool_of(format), Some(("The A.".into(), schema)));
        let format = json!({"type": "json_schema", "json_schema": {"name": "a"}});
        assert_eq!(
            tool_of(format),
            Some((
                "Respond with JSON matching this schema.".into(),
                json!({"type": "object"})
            ))
        );
        assert_eq!(
            tool_of(json!({"type": "json_object"})),
            Some((
                "Respond with a JSON object.".into(),
                json!({"type": "object"})
            ))
        );
        assert_eq!(tool_of(json!({"type": "text"})), None);
    }
}

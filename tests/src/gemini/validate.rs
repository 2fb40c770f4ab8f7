//! Request checks as strict as Google's, so a translator that sends a field Gemini does
//! not know, a JSON-schema keyword outside its OpenAPI subset, a malformed turn order
//! or bad bytes gets the same 400 the real API gives.
//!
//! Google parses request bodies as protobuf JSON: unknown field names fail with
//! `Invalid JSON payload received. Unknown name "x" at 'path': Cannot find field.`,
//! where the path uses the proto's snake_case names; both camelCase and snake_case
//! spellings of known fields are accepted. Semantic problems come back as
//! `* Request.path: explanation` lines.

use base64::Engine;
use serde_json::{Map, Value};

use super::wire;

mod config;
mod tools;

/// What a request body is checked as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `generateContent` / `streamGenerateContent`.
    Generate,
    /// AI Studio `embedContent`.
    Embed,
    /// AI Studio `batchEmbedContents`; each request must name `models/{model}`.
    BatchEmbed,
    /// Vertex AI `predict` for text embedding models.
    Predict,
}

/// Which API is checking: the proto package named in type errors differs, and Vertex
/// knows a few more fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    AiStudio,
    Vertex,
}

/// The 400 body Google would send for `body`, or `None` when it would accept it.
pub(crate) fn check(api: Api, shape: Shape, model: &str, body: &Value) -> Option<bytes::Bytes> {
    let mut c = Checker {
        api,
        unknown: Vec::new(),
        invalid: Vec::new(),
    };
    let Some(obj) = body.as_object() else {
        let message = format!(
            "Invalid JSON payload received. Expected an object, got {}.",
            short(body)
        );
        return Some(wire::error(400, &message, Vec::new()));
    };
    match shape {
        Shape::Generate => {
            c.generate(obj);
            if let Some(contents) = get(obj, "contents").and_then(Value::as_array) {
                c.invalid
                    .extend(super::thought::check(api, model, contents));
            }
        }
        Shape::Embed => c.embed(obj, "", None),
        Shape::BatchEmbed => c.batch_embed(obj, model),
        Shape::Predict => c.predict(obj, model),
    }
    c.into_error()
}

struct Checker {
    api: Api,
    /// (snake_case path, unknown name)
    unknown: Vec<(String, String)>,
    /// Whole messages, Google's wording.
    invalid: Vec<String>,
}

/// camelCase to the proto's snake_case.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        snake(field)
    } else {
        format!("{path}.{}", snake(field))
    }
}

/// A field by its camelCase name or its snake_case one.
fn get<'a>(obj: &'a Map<String, Value>, camel: &str) -> Option<&'a Value> {
    obj.get(camel).or_else(|| obj.get(&snake(camel)))
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 60 {
        format!("{}...", prefix(&text, 60))
    } else {
        text
    }
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// JSON-schema keywords outside Gemini's OpenAPI subset fail as unknown fields; these
/// are the ones it knows.
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

const SCHEMA_TYPES: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
];

const TASK_TYPES: &[&str] = &[
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// The fields of a `Part` that form its `data` oneof: exactly one must be set.
const PART_DATA: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
];

impl Checker {
    fn package(&self) -> &'static str {
        match self.api {
            Api::AiStudio => "google.ai.generativelanguage.v1beta",
            Api::Vertex => "google.cloud.aiplatform.v1",
        }
    }

    /// Reports unknown fields of `obj`, which lives at `path`.
    fn known(&mut self, obj: &Map<String, Value>, path: &str, fields: &[&str]) {
        for key in obj.keys() {
            let ok = fields.iter().any(|f| f == key || snake(f) == *key);
            if !ok {
                self.unknown.push((path.to_owned(), key.clone()));
            }
        }
    }

    /// `value` as an object, or an invalid-value problem.
    fn object<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
        ty: &str,
    ) -> Option<&'a Map<String, Value>> {
        match value.as_object() {
            Some(obj) => Some(obj),
            None => {
                self.invalid.push(format!(
                    "Invalid value at '{path}' ({ty}), {}",
                    short(value)
                ));
                None
            }
        }
    }

    fn array<'a>(&mut self, value: &'a Value, path: &str) -> &'a [Value] {
        match value.as_array() {
            Some(items) => items,
            None => {
                self.invalid.push(format!(
                    "Invalid value at '{path}' (repeated), {}",
                    short(value)
                ));
                &[]
            }
        }
    }

    fn into_error(self) -> Option<bytes::Bytes> {
        if !self.unknown.is_empty() {
            let lines: Vec<(String, String)> = self
                .unknown
                .iter()
                .map(|(path, name)| {
                    let line = if path.is_empty() {
                        format!("Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
                    } else {
                        format!(
                            "Invalid JSON payload received. Unknown name \"{name}\" at '{path}': Cannot find field."
                        )
                    };
                    (path.clone(), line)
                })
                .collect();
            let message = lines
                .iter()
                .map(|(_, line)| line.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            return Some(wire::error(400, &message, vec![wire::bad_request(&lines)]));
        }
        if self.invalid.is_empty() {
            return None;
        }
        Some(wire::error(400, &self.invalid.join("\n"), Vec::new()))
    }

    fn generate(&mut self, obj: &Map<String, Value>) {
        let mut fields = vec![
            "model",
            "contents",
            "systemInstruction",
            "tools",
            "toolConfig",
            "safetySettings",
            "generationConfig",
            "cachedContent",
        ];
        if self.api == Api::Vertex {
            fields.push("labels");
        }
        self.known(obj, "", &fields);
        let contents = get(obj, "contents").map_or(&[][..], |v| self.array(v, "contents"));
        if contents.is_empty() {
            self.invalid
                .push("* GenerateContentRequest.contents: contents is not specified".into());
        }
        let mut roles = Vec::with_capacity(contents.len());
        for (i, content) in contents.iter().enumerate() {
            let path = format!("contents[{i}]");
            roles.push(self.content(content, &path, true));
        }
        self.turn_order(contents, &roles);
        if let Some(system) = get(obj, "systemInstruction") {
            self.content(system, "system_instruction", false);
        }
        let mut declared = Vec::new();
        if let Some(tools) = get(obj, "tools") {
            for (i, tool) in self.array(tools, "tools").iter().enumerate() {
                self.tool(tool, &format!("tools[{i}]"), &mut declared);
            }
        }
        if let Some(config) = get(obj, "toolConfig") {
            self.tool_config(config, &declared);
        }
        if let Some(config) = get(obj, "generationConfig") {
            self.generation_config(config);
        }
        if let Some(settings) = get(obj, "safetySettings") {
            for (i, s) in self.array(settings, "safety_settings").iter().enumerate() {
                let path = format!("safety_settings[{i}]");
                if let Some(s) = self.object(s, &path, "SafetySetting") {
                    self.known(s, &path, &["category", "threshold", "method"]);
                }
            }
        }
    }

    /// Checks one `Content`; returns its role (`""` when absent or invalid).
    fn content(&mut self, value: &Value, path: &str, in_contents: bool) -> String {
        let Some(obj) = self.object(value, path, "Content") else {
            return String::new();
        };
        self.known(obj, path, &["role", "parts"]);
        let role = get(obj, "role").and_then(Value::as_str).unwrap_or("");
        if in_contents && role != "user" && role != "model" {
            self.invalid
                .push("Please use a valid role: user, model.".into());
        }
        let parts = get(obj, "parts").map_or(&[][..], |v| self.array(v, &join(path, "parts")));
        if parts.is_empty() {
            self.invalid.push(format!(
                "* GenerateContentRequest.{path}.parts: contents.parts must not be empty."
            ));
        }
        for (j, part) in parts.iter().enumerate() {
            self.part(part, &format!("{path}.parts[{j}]"));
        }
        role.to_owned()
    }

    fn part(&mut self, value: &Value, path: &str) {
        let Some(obj) = self.object(value, path, "Part") else {
            return;
        };
        let mut fields = PART_DATA.to_vec();
        fields.extend([
            "thought",
            "thoughtSignature",
            "videoMetadata",
            "partMetadata",
        ]);
        self.known(obj, path, &fields);
        // A default value (empty text) counts as unset in protobuf JSON.
        let set: Vec<&str> = PART_DATA
            .iter()
            .copied()
            .filter(|f| get(obj, f).is_some_and(|v| v.as_str() != Some("")))
            .collect();
        match set.as_slice() {
            [] => self.invalid.push(format!(
                "* GenerateContentRequest.{path}.data: required oneof field 'data' must have one initialized field"
            )),
            [_] => {}
            [_, second, ..] => self.invalid.push(format!(
                "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set '{second}'"
            )),
        }
        if let Some(blob) = get(obj, "inlineData") {
            let path = join(path, "inlineData");
            if let Some(blob) = self.object(blob, &path, "Blob") {
                self.known(blob, &path, &["mimeType", "data"]);
                if get(blob, "mimeType")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    self.invalid.push(format!(
                        "* GenerateContentRequest.{path}.mime_type: mime_type is required"
                    ));
                }
                let data = get(blob, "data").and_then(Value::as_str).unwrap_or("");
                if decode_bytes(data).is_none() {
                    self.invalid.push(format!(
                        "Invalid value at '{path}.data' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
                        prefix(data, 40)
                    ));
                }
            }
        }
        if let Some(file) = get(obj, "fileData") {
            let path = join(path, "fileData");
            if let Some(file) = self.object(file, &path, "FileData") {
                self.known(file, &path, &["mimeType", "fileUri", "displayName"]);
            }
        }
        if let Some(call) = get(obj, "functionCall") {
            let path = join(path, "functionCall");
            if let Some(call) = self.object(call, &path, "FunctionCall") {
                self.known(call, &path, &["id", "name", "args"]);
                if let Some(args) = get(call, "args") {
                    self.object(
                        args,
                        &format!("{path}.args"),
                        "type.googleapis.com/google.protobuf.Struct",
                    );
                }
            }
        }
        if let Some(response) = get(obj, "functionResponse") {
            let path = join(path, "functionResponse");
            if let Some(response) = self.object(response, &path, "FunctionResponse") {
                self.known(
                    response,
                    &path,
                    &[
                        "id",
                        "name",
                        "response",
                        "parts",
                        "willContinue",
                        "scheduling",
                    ],
                );
                match get(response, "response") {
                    // The response is a protobuf Struct: a bare string or array is refused.
                    Some(inner) => {
                        self.object(
                            inner,
                            &format!("{path}.response"),
                            "type.googleapis.com/google.protobuf.Struct",
                        );
                    }
                    None => self.invalid.push(format!(
                        "* GenerateContentRequest.{path}.response: response is required"
                    )),
                }
            }
        }
    }

    /// Gemini's rules for where function calls and responses may stand, and that
    /// turns alternate (which merging consecutive same-role messages guarantees).
    fn turn_order(&mut self, contents: &[Value], roles: &[String]) {
        let count = |content: &Value, field: &str| -> usize {
            content
                .get("parts")
                .and_then(Value::as_array)
                .map_or(0, |parts| {
                    parts
                        .iter()
                        .filter(|p| p.get(field).is_some() || p.get(snake(field)).is_some())
                        .count()
                })
        };
        for i in 1..roles.len() {
            if roles[i] == roles[i - 1] && !roles[i].is_empty() {
                self.invalid.push(
                    "Please ensure that multiturn requests alternate between user and model."
                        .into(),
                );
                break;
            }
        }
        for (i, content) in contents.iter().enumerate() {
            let responses = count(content, "functionResponse");
            if responses > 0 {
                let previous_calls = i
                    .checked_sub(1)
                    .map_or(0, |p| count(&contents[p], "functionCall"));
                if previous_calls == 0 {
                    self.invalid.push(
                        "Please ensure that function response turn comes immediately after a function call turn."
                            .into(),
                    );
                } else if previous_calls != responses {
                    self.invalid.push(
                        "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
                            .into(),
                    );
                }
            }
            if count(content, "functionCall") > 0 {
                let after_user = i.checked_sub(1).is_some_and(|p| roles[p] == "user");
                if !after_user {
                    self.invalid.push(
                        "Please ensure that function call turn comes immediately after a user turn or after a function response turn."
                            .into(),
                    );
                }
            }
        }
    }
}

/// Protobuf JSON takes standard or URL-safe base64, padded or not.
pub(crate) fn decode_bytes(data: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(data).ok())
}

/// `[a-zA-Z_][a-zA-Z0-9_.-]{0,63}`, Gemini's rule for function names.
fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

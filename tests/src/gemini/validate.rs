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
        Shape::Generate => c.generate(obj),
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

    fn tool(&mut self, value: &Value, path: &str, declared: &mut Vec<String>) {
        let Some(obj) = self.object(value, path, "Tool") else {
            return;
        };
        self.known(
            obj,
            path,
            &[
                "functionDeclarations",
                "googleSearch",
                "googleSearchRetrieval",
                "codeExecution",
                "urlContext",
            ],
        );
        let Some(decls) = get(obj, "functionDeclarations") else {
            return;
        };
        let decls_path = join(path, "functionDeclarations");
        for (i, decl) in self.array(decls, &decls_path).iter().enumerate() {
            let path = format!("{decls_path}[{i}]");
            let Some(decl) = self.object(decl, &path, "FunctionDeclaration") else {
                continue;
            };
            self.known(
                decl,
                &path,
                &[
                    "name",
                    "description",
                    "parameters",
                    "parametersJsonSchema",
                    "response",
                    "responseJsonSchema",
                    "behavior",
                ],
            );
            let name = get(decl, "name").and_then(Value::as_str).unwrap_or("");
            if !valid_function_name(name) {
                self.invalid.push(format!(
                    "* GenerateContentRequest.{path}.name: Invalid function name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, 0-9), underscores (_), dots (.) or dashes (-), with a maximum length of 64."
                ));
            }
            declared.push(name.to_owned());
            if let Some(schema) = get(decl, "parameters") {
                self.schema(schema, &join(&path, "parameters"));
            }
        }
    }

    /// An OpenAPI-subset `Schema`.
    fn schema(&mut self, value: &Value, path: &str) {
        let type_name = format!("type.googleapis.com/{}.Schema", self.package());
        let Some(obj) = self.object(value, path, &type_name) else {
            return;
        };
        self.known(obj, path, SCHEMA_FIELDS);
        let mut is_object = false;
        if let Some(ty) = get(obj, "type") {
            let name = ty.as_str().map(str::to_ascii_uppercase);
            match name {
                Some(name) if SCHEMA_TYPES.contains(&name.as_str()) => {
                    is_object = name == "OBJECT";
                }
                _ => self.invalid.push(format!(
                    "Invalid value at '{path}.type' (type.googleapis.com/{}.Type), {}",
                    self.package(),
                    short(ty)
                )),
            }
        }
        if let Some(values) = get(obj, "enum") {
            for (i, v) in self
                .array(values, &format!("{path}.enum"))
                .iter()
                .enumerate()
            {
                if !v.is_string() {
                    self.invalid.push(format!(
                        "Invalid value at '{path}.enum[{i}]' (TYPE_STRING), {}",
                        short(v)
                    ));
                }
            }
        }
        if let Some(required) = get(obj, "required") {
            for (i, v) in self
                .array(required, &format!("{path}.required"))
                .iter()
                .enumerate()
            {
                if !v.is_string() {
                    self.invalid.push(format!(
                        "Invalid value at '{path}.required[{i}]' (TYPE_STRING), {}",
                        short(v)
                    ));
                }
            }
        }
        let properties = get(obj, "properties").and_then(Value::as_object);
        if let Some(properties) = properties {
            for (i, (_, schema)) in properties.iter().enumerate() {
                self.schema(schema, &format!("{path}.properties[{i}].value"));
            }
        }
        if is_object && properties.is_none_or(Map::is_empty) && get(obj, "anyOf").is_none() {
            self.invalid.push(format!(
                "* GenerateContentRequest.{path}.properties: should be non-empty for OBJECT type"
            ));
        }
        if let Some(items) = get(obj, "items") {
            self.schema(items, &join(path, "items"));
        }
        if let Some(any_of) = get(obj, "anyOf") {
            let any_path = join(path, "anyOf");
            for (i, schema) in self.array(any_of, &any_path).iter().enumerate() {
                self.schema(schema, &format!("{any_path}[{i}]"));
            }
        }
    }

    fn tool_config(&mut self, value: &Value, declared: &[String]) {
        let Some(obj) = self.object(value, "tool_config", "ToolConfig") else {
            return;
        };
        self.known(
            obj,
            "tool_config",
            &["functionCallingConfig", "retrievalConfig"],
        );
        let Some(fcc) = get(obj, "functionCallingConfig") else {
            return;
        };
        let path = "tool_config.function_calling_config";
        let Some(fcc) = self.object(fcc, path, "FunctionCallingConfig") else {
            return;
        };
        self.known(fcc, path, &["mode", "allowedFunctionNames"]);
        let mode = get(fcc, "mode").map(|m| m.as_str().unwrap_or("?"));
        if let Some(mode) = mode
            && !["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"].contains(&mode)
        {
            self.invalid.push(format!(
                "Invalid value at '{path}.mode' (type.googleapis.com/{}.FunctionCallingConfig.Mode), \"{mode}\"",
                self.package()
            ));
        }
        if let Some(names) = get(fcc, "allowedFunctionNames").and_then(Value::as_array) {
            if !matches!(mode, Some("ANY" | "VALIDATED")) && !names.is_empty() {
                self.invalid.push(format!(
                    "* GenerateContentRequest.{path}.allowed_function_names: allowed_function_names may only be set when mode is ANY or VALIDATED."
                ));
            }
            for name in names {
                if !declared.iter().any(|d| Some(d.as_str()) == name.as_str()) {
                    self.invalid.push(format!(
                        "* GenerateContentRequest.{path}.allowed_function_names: function {} is not declared",
                        short(name)
                    ));
                }
            }
        }
    }

    fn generation_config(&mut self, value: &Value) {
        let path = "generation_config";
        let Some(obj) = self.object(value, path, "GenerationConfig") else {
            return;
        };
        self.known(
            obj,
            path,
            &[
                "stopSequences",
                "responseMimeType",
                "responseSchema",
                "responseJsonSchema",
                "responseModalities",
                "candidateCount",
                "maxOutputTokens",
                "temperature",
                "topP",
                "topK",
                "seed",
                "presencePenalty",
                "frequencyPenalty",
                "responseLogprobs",
                "logprobs",
                "enableEnhancedCivicAnswers",
                "speechConfig",
                "thinkingConfig",
                "mediaResolution",
            ],
        );
        let number = |name: &str| get(obj, name).and_then(Value::as_f64);
        let mut range = |name: &str, low: f64, high: f64| {
            if let Some(v) = number(name)
                && !(low..=high).contains(&v)
            {
                self.invalid.push(format!(
                    "* GenerateContentRequest.generation_config.{}: must be between {low} and {high}, got {v}",
                    snake(name)
                ));
            }
        };
        range("candidateCount", 1.0, 8.0);
        range("temperature", 0.0, 2.0);
        range("topP", 0.0, 1.0);
        range("presencePenalty", -2.0, 2.0);
        range("frequencyPenalty", -2.0, 2.0);
        if let Some(max) = number("maxOutputTokens")
            && max < 1.0
        {
            self.invalid.push(
                "* GenerateContentRequest.generation_config.max_output_tokens: must be positive"
                    .into(),
            );
        }
        if let Some(stops) = get(obj, "stopSequences")
            && self.array(stops, "generation_config.stop_sequences").len() > 5
        {
            self.invalid.push(
                "* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are allowed"
                    .into(),
            );
        }
        let mime = get(obj, "responseMimeType").and_then(Value::as_str);
        if let Some(mime) = mime
            && ![
                "text/plain",
                "application/json",
                "application/xml",
                "application/yaml",
                "text/x.enum",
            ]
            .contains(&mime)
        {
            self.invalid.push(
                "* GenerateContentRequest.generation_config.response_mime_type: allowed mimetypes are `text/plain`, `application/json`, `application/xml`, `application/yaml` and `text/x.enum`."
                    .into(),
            );
        }
        if let Some(schema) = get(obj, "responseSchema") {
            if !matches!(mime, Some("application/json" | "text/x.enum")) {
                self.invalid.push(
                    "* GenerateContentRequest.generation_config.response_mime_type: response_mime_type must be application/json or text/x.enum when response_schema is set."
                        .into(),
                );
            }
            self.schema(schema, "generation_config.response_schema");
        }
        if let Some(thinking) = get(obj, "thinkingConfig") {
            let path = "generation_config.thinking_config";
            if let Some(thinking) = self.object(thinking, path, "ThinkingConfig") {
                self.known(
                    thinking,
                    path,
                    &["includeThoughts", "thinkingBudget", "thinkingLevel"],
                );
            }
        }
    }

    fn embed(&mut self, obj: &Map<String, Value>, path: &str, batch_model: Option<&str>) {
        self.known(
            obj,
            path,
            &[
                "model",
                "content",
                "taskType",
                "title",
                "outputDimensionality",
            ],
        );
        let request = if batch_model.is_some() {
            "BatchEmbedContentsRequest"
        } else {
            "EmbedContentRequest"
        };
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}.")
        };
        if let Some(model) = batch_model {
            let named = get(obj, "model").and_then(Value::as_str);
            let want = format!("models/{model}");
            if named != Some(want.as_str()) {
                self.invalid.push(format!(
                    "* {request}.{prefix}model: model must be \"{want}\", the model of the batch request, got {}",
                    named.map_or_else(|| "nothing".into(), |n| format!("\"{n}\""))
                ));
            }
        }
        match get(obj, "content") {
            Some(content) => {
                let content_path = join(path, "content");
                if let Some(content) = self.object(content, &content_path, "Content") {
                    self.known(content, &content_path, &["role", "parts"]);
                    let parts_path = join(&content_path, "parts");
                    let parts =
                        get(content, "parts").map_or(&[][..], |v| self.array(v, &parts_path));
                    if parts.is_empty() {
                        self.invalid.push(format!(
                            "* {request}.{prefix}content.parts: must not be empty"
                        ));
                    }
                    for (j, part) in parts.iter().enumerate() {
                        self.part(part, &format!("{parts_path}[{j}]"));
                    }
                }
            }
            None => self
                .invalid
                .push(format!("* {request}.{prefix}content: content is required")),
        }
        if let Some(task) = get(obj, "taskType")
            && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
        {
            self.invalid.push(format!(
                "Invalid value at '{}' (type.googleapis.com/{}.TaskType), {}",
                join(path, "taskType"),
                self.package(),
                short(task)
            ));
        }
    }

    fn batch_embed(&mut self, obj: &Map<String, Value>, model: &str) {
        self.known(obj, "", &["requests"]);
        let requests = get(obj, "requests").map_or(&[][..], |v| self.array(v, "requests"));
        if requests.is_empty() {
            self.invalid
                .push("* BatchEmbedContentsRequest.requests: requests is required".into());
        }
        for (i, request) in requests.iter().enumerate() {
            let path = format!("requests[{i}]");
            if let Some(request) = self.object(request, &path, "EmbedContentRequest") {
                self.embed(request, &path, Some(model));
            }
        }
    }

    fn predict(&mut self, obj: &Map<String, Value>, model: &str) {
        self.known(obj, "", &["instances", "parameters"]);
        let instances = get(obj, "instances").map_or(&[][..], |v| self.array(v, "instances"));
        if instances.is_empty() {
            self.invalid.push("instances must not be empty.".into());
        }
        // Documented: gemini-embedding-001 takes one instance per request.
        if model.starts_with("gemini-embedding") && instances.len() > 1 {
            self.invalid.push(format!(
                "Only 1 instance per request is supported for {model}; got {}.",
                instances.len()
            ));
        }
        for (i, instance) in instances.iter().enumerate() {
            let path = format!("instances[{i}]");
            if let Some(instance) = self.object(instance, &path, "Value") {
                // Instances are free-form values the model server reads by these keys.
                self.known(instance, &path, &["content", "task_type", "title"]);
                if !instance.get("content").is_some_and(Value::is_string) {
                    self.invalid
                        .push(format!("{path}.content must be a string."));
                }
                if let Some(task) = instance.get("task_type")
                    && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
                {
                    self.invalid
                        .push(format!("Unsupported task_type {} at {path}.", short(task)));
                }
            }
        }
        if let Some(parameters) = get(obj, "parameters")
            && let Some(parameters) = self.object(parameters, "parameters", "Value")
        {
            self.known(
                parameters,
                "parameters",
                &["autoTruncate", "outputDimensionality"],
            );
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

//! What a healthy Gemini model answers to a request, and the `mock-*` model names that
//! answer otherwise. The answer is planned once, then rendered either as one
//! `GenerateContentResponse` or as the chunks of a stream.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::validate::decode_bytes;
use super::wire::{self, Usage};

/// Tokens Gemini counts for one image, whatever its size.
const IMAGE_TOKENS: u64 = 258;
/// Thinking tokens `mock-thinking` reports.
const THOUGHT_TOKENS: u64 = 7;
/// The thought summary `mock-thinking` returns when thoughts are asked for.
pub const THOUGHT_TEXT: &str = "The user wants a reply; a short one will do.";

/// The parts of a `GenerateContentRequest` the mock reads (both camelCase and the
/// proto's snake_case are accepted, as Google does).
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateRequest {
    #[serde(default)]
    contents: Vec<Content>,
    #[serde(default, alias = "system_instruction")]
    system_instruction: Option<Content>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default, alias = "tool_config")]
    tool_config: Option<ToolConfig>,
    #[serde(default, alias = "generation_config")]
    generation_config: Option<GenerationConfig>,
}

#[derive(Deserialize, Default, Debug)]
struct Content {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    #[serde(default, alias = "inline_data")]
    inline_data: Option<Blob>,
    #[serde(default, alias = "file_data")]
    file_data: Option<FileData>,
    #[serde(default, alias = "function_response")]
    function_response: Option<FunctionResponse>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Blob {
    #[serde(alias = "mime_type")]
    mime_type: String,
    data: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct FileData {
    #[serde(default, alias = "mime_type")]
    mime_type: String,
    #[serde(alias = "file_uri")]
    file_uri: String,
}

#[derive(Deserialize, Debug)]
struct FunctionResponse {
    name: String,
    #[serde(default)]
    response: Value,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct Tool {
    #[serde(default, alias = "function_declarations")]
    function_declarations: Vec<FunctionDeclaration>,
}

#[derive(Deserialize, Debug)]
struct FunctionDeclaration {
    name: String,
    #[serde(default)]
    parameters: Option<Value>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct ToolConfig {
    #[serde(default, alias = "function_calling_config")]
    function_calling_config: Option<FunctionCallingConfig>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default, alias = "allowed_function_names")]
    allowed_function_names: Vec<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig {
    #[serde(default, alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(default, alias = "stop_sequences")]
    stop_sequences: Vec<String>,
    #[serde(default, alias = "candidate_count")]
    candidate_count: Option<u32>,
    #[serde(default, alias = "response_mime_type")]
    response_mime_type: Option<String>,
    #[serde(default, alias = "response_schema")]
    response_schema: Option<Value>,
    #[serde(default, alias = "thinking_config")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(default, alias = "include_thoughts")]
    include_thoughts: Option<bool>,
}

impl GenerateRequest {
    /// Lenient: a body the validator let through parses; anything else means defaults.
    pub(crate) fn parse(body: &[u8]) -> GenerateRequest {
        serde_json::from_slice(body).unwrap_or_default()
    }

    fn config(&self) -> &GenerationConfig {
        static DEFAULT: GenerationConfig = GenerationConfig {
            max_output_tokens: None,
            stop_sequences: Vec::new(),
            candidate_count: None,
            response_mime_type: None,
            response_schema: None,
            thinking_config: None,
        };
        self.generation_config.as_ref().unwrap_or(&DEFAULT)
    }

    /// Roughly one token per word of text (function payloads included), plus
    /// Gemini's flat rate per image.
    fn prompt_tokens(&self) -> u64 {
        let contents = self.contents.iter().chain(self.system_instruction.as_ref());
        let mut tokens = 0;
        for part in contents.flat_map(|c| &c.parts) {
            tokens += part.text.as_deref().map_or(0, words);
            if part.inline_data.is_some() || part.file_data.is_some() {
                tokens += IMAGE_TOKENS;
            }
            if let Some(r) = &part.function_response {
                tokens += words(&r.response.to_string());
            }
        }
        tokens.max(1)
    }

    /// The last user turn: its text, a note per image, and its function responses.
    fn last_user_turn(&self) -> (String, Vec<&FunctionResponse>) {
        let Some(turn) = self
            .contents
            .iter()
            .rev()
            .find(|c| c.role.as_deref() == Some("user"))
        else {
            return (String::new(), Vec::new());
        };
        let mut text = Vec::new();
        let mut responses = Vec::new();
        for part in &turn.parts {
            if let Some(t) = &part.text {
                text.push(t.clone());
            }
            if let Some(blob) = &part.inline_data {
                let size = decode_bytes(&blob.data).map_or(0, |b| b.len());
                text.push(format!("[{} {size} bytes]", blob.mime_type));
            }
            if let Some(file) = &part.file_data {
                text.push(format!("[{} {}]", file.mime_type, file.file_uri));
            }
            if let Some(r) = &part.function_response {
                responses.push(r);
            }
        }
        (text.join(" "), responses)
    }

    fn declarations(&self) -> impl Iterator<Item = &FunctionDeclaration> {
        self.tools.iter().flat_map(|t| &t.function_declarations)
    }

    fn calling_mode(&self) -> (&str, &[String]) {
        match self
            .tool_config
            .as_ref()
            .and_then(|t| t.function_calling_config.as_ref())
        {
            Some(c) => (
                c.mode.as_deref().unwrap_or("AUTO"),
                c.allowed_function_names.as_slice(),
            ),
            None => ("AUTO", &[]),
        }
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// One part of a planned candidate.
#[derive(Clone, Debug)]
pub(crate) enum Out {
    Thought(String),
    Text(String),
    Call { name: String, args: Value },
}

/// A planned candidate.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub(crate) parts: Vec<Out>,
    pub(crate) finish: &'static str,
    /// Set for candidates blocked by safety: their ratings.
    pub(crate) safety: Option<Value>,
    /// The part carrying a `thoughtSignature`, and the signature (see `thought`).
    pub(crate) signed: Option<(usize, String)>,
}

impl Candidate {
    /// The signature of part `k`, if it carries one.
    fn signature(&self, k: usize) -> Option<&str> {
        self.signed
            .as_ref()
            .filter(|(at, _)| *at == k)
            .map(|(_, s)| s.as_str())
    }
}

/// A planned 200 answer.
#[derive(Clone, Debug)]
pub(crate) struct Planned {
    pub(crate) candidates: Vec<Candidate>,
    /// Set when the prompt itself was blocked: no candidates then.
    pub(crate) block_reason: Option<&'static str>,
    pub(crate) usage: Usage,
    pub(crate) model: String,
}

/// What a request to a healthy mock gets.
pub(crate) enum Answer {
    Planned(Planned),
    /// An error status and Google's error body.
    Error(u16, bytes::Bytes),
    /// `Planned`, but sent broken from the start: the body truncated, or a stream
    /// whose first event is garbled.
    Malformed(Planned),
    /// A stream whose first chunk is sound and whose second is garbled.
    GarbledLater(Planned),
    /// `Planned`, but the connection is cut part-way through the body.
    Cut(Planned),
    /// A stream that sends one chunk, then an error event (`data: {"error":…}`).
    StreamError(Planned),
    /// `Planned`, after waiting.
    Slow(Planned, Duration),
}

/// Plans the answer of `model` to `req`.
pub(crate) fn answer(model: &str, req: &GenerateRequest) -> Answer {
    if let Some(code) = model
        .strip_prefix("mock-error-")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return Answer::Error(code, scripted_error(code, model));
    }
    let planned = || plan(model, req);
    match model {
        "mock-context-length" => {
            let message = format!(
                "The input token count ({}) exceeds the maximum number of tokens allowed (1048576).",
                1_048_576 + req.prompt_tokens()
            );
            Answer::Error(400, wire::error(400, &message, Vec::new()))
        }
        "mock-malformed" => Answer::Malformed(planned()),
        "mock-garbled-stream" => Answer::GarbledLater(planned()),
        "mock-stream-cut" => Answer::Cut(planned()),
        "mock-stream-error" => Answer::StreamError(planned()),
        _ => match model
            .strip_prefix("mock-slow-")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ms) => Answer::Slow(planned(), Duration::from_millis(ms)),
            None => Answer::Planned(planned()),
        },
    }
}

/// Google's errors for `mock-error-<code>`, with the messages and details the real
/// API sends for each.
pub(crate) fn scripted_error(code: u16, model: &str) -> bytes::Bytes {
    let (message, details) = match code {
        400 => (
            "Request contains an invalid argument.".to_owned(),
            Vec::new(),
        ),
        401 => (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential. See \
             https://developers.google.com/identity/sign-in/web/devconsole-project."
                .to_owned(),
            vec![wire::error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED", "generativelanguage.googleapis.com")],
        ),
        403 => (
            "Method doesn't allow unregistered callers (callers without established identity). \
             Please use API Key or other form of API consumer identity to call this API."
                .to_owned(),
            vec![wire::error_info("SERVICE_DISABLED", "generativelanguage.googleapis.com")],
        ),
        404 => (
            format!(
                "models/{model} is not found for API version v1beta, or is not supported for \
                 generateContent. Call ListModels to see the list of available models and their \
                 supported methods."
            ),
            Vec::new(),
        ),
        429 => (
            "You exceeded your current quota, please check your plan and billing details. For \
             more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
                .to_owned(),
            // As Google sends them: which quota, where to read about it, when to retry.
            vec![
                wire::quota_failure("generativelanguage.googleapis.com/generate_content_free_tier_requests"),
                wire::help("https://ai.google.dev/gemini-api/docs/rate-limits"),
                wire::retry_info("1s"),
            ],
        ),
        500 => (
            "An internal error has occurred. Please retry or report in \
             https://developers.generativeai.google/guide/troubleshooting"
                .to_owned(),
            Vec::new(),
        ),
        503 => (
            "The model is overloaded. Please try again later.".to_owned(),
            Vec::new(),
        ),
        504 => (
            "Deadline expired before operation could complete.".to_owned(),
            Vec::new(),
        ),
        _ => (format!("mock error {code}"), Vec::new()),
    };
    wire::error(code, &message, details)
}

fn plan(model: &str, req: &GenerateRequest) -> Planned {
    let config = req.config();
    let mut usage = Usage {
        prompt: req.prompt_tokens(),
        ..Usage::default()
    };
    if model == "mock-cached" {
        usage.cached = usage.prompt / 2;
    }
    let mut planned = Planned {
        candidates: Vec::new(),
        block_reason: None,
        usage,
        model: model.to_owned(),
    };
    match model {
        "mock-blocked" => {
            planned.block_reason = Some("SAFETY");
            return planned;
        }
        "mock-safety" => {
            planned.candidates.push(Candidate {
                parts: Vec::new(),
                finish: "SAFETY",
                safety: Some(wire::safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT")),
                signed: None,
            });
            return planned;
        }
        _ => {}
    }
    let n = config.candidate_count.unwrap_or(1).max(1);
    for i in 0..n {
        let mut candidate = candidate(model, req, i);
        let visible: u64 = candidate
            .parts
            .iter()
            .map(|p| match p {
                Out::Text(t) => words(t),
                Out::Call { name, args } => 1 + words(name) + words(&args.to_string()),
                Out::Thought(_) => 0,
            })
            .sum();
        planned.usage.candidates += visible;
        if model == "mock-thinking" {
            planned.usage.thoughts += THOUGHT_TOKENS;
            let include = config
                .thinking_config
                .as_ref()
                .and_then(|t| t.include_thoughts)
                .unwrap_or(false);
            if include {
                candidate.parts.insert(0, Out::Thought(THOUGHT_TEXT.into()));
            }
        }
        planned.candidates.push(candidate);
    }
    planned
}

/// The `index`-th candidate: function calls when the model decides to call, else text
/// cut by stop sequences and the output limit.
fn candidate(model: &str, req: &GenerateRequest, index: u32) -> Candidate {
    let config = req.config();
    let (user_text, responses) = req.last_user_turn();
    if let Some(calls) = calls(model, req, responses.is_empty()) {
        return Candidate {
            parts: calls,
            // Gemini has no finish reason of its own for function calls.
            finish: "STOP",
            safety: None,
            signed: None,
        };
    }
    let mut text = if !responses.is_empty() {
        let seen: Vec<String> = responses
            .iter()
            .map(|r| format!("{}={}", r.name, r.response))
            .collect();
        format!("mock saw tool results: {}", seen.join(" "))
    } else if config.response_mime_type.as_deref() == Some("application/json") {
        let value = match &config.response_schema {
            Some(schema) => sample(schema, "reply"),
            None => json!({ "reply": format!("mock reply to: {user_text}") }),
        };
        value.to_string()
    } else {
        format!("mock reply to: {user_text}")
    };
    if index > 0 {
        text = format!("{text} (candidate {index})");
    }
    let mut finish = if model == "mock-recitation" {
        "RECITATION"
    } else {
        "STOP"
    };
    if model == "mock-max-tokens" {
        // Cut at half the reply, whatever the limit: the output limit was reached.
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        text = pieces[..pieces.len().div_ceil(2)].concat();
        finish = "MAX_TOKENS";
    }
    if let Some(cut) = config
        .stop_sequences
        .iter()
        .filter_map(|s| text.find(s.as_str()))
        .min()
    {
        text.truncate(cut);
    }
    if let Some(max) = config.max_output_tokens {
        let pieces: Vec<&str> = text.split_inclusive(' ').collect();
        if pieces.len() as u64 > max {
            text = pieces[..max as usize].concat();
            finish = "MAX_TOKENS";
        }
    }
    Candidate {
        parts: vec![Out::Text(text)],
        finish,
        safety: None,
        signed: None,
    }
}

/// The function calls the model makes, if any: `mock-tool-call` calls one function,
/// `mock-parallel-tools` every declared one, and mode ANY forces a call from the
/// allowed names. A turn answering function calls is answered in text.
fn calls(model: &str, req: &GenerateRequest, fresh_turn: bool) -> Option<Vec<Out>> {
    let (mode, allowed) = req.calling_mode();
    if !fresh_turn || mode == "NONE" {
        return None;
    }
    let callable: Vec<&FunctionDeclaration> = req
        .declarations()
        .filter(|d| allowed.is_empty() || allowed.contains(&d.name))
        .collect();
    let chosen: Vec<&FunctionDeclaration> = match model {
        "mock-parallel-tools" => callable,
        "mock-tool-call" => callable.into_iter().take(1).collect(),
        "mock-two-cities" => {
            let first = callable.first()?;
            let call = |city: &str| Out::Call {
                name: first.name.clone(),
                args: json!({ "city": city }),
            };
            return Some(vec![call("Paris"), call("Rome")]);
        }
        _ if mode == "ANY" => callable.into_iter().take(1).collect(),
        _ => return None,
    };
    if chosen.is_empty() {
        return None;
    }
    Some(
        chosen
            .into_iter()
            .map(|d| Out::Call {
                name: d.name.clone(),
                args: d
                    .parameters
                    .as_ref()
                    .map_or_else(|| json!({}), |p| sample(p, &d.name)),
            })
            .collect(),
    )
}

/// A value fitting `schema`: every property filled, strings named after their field,
/// so tests can predict arguments exactly.
pub(crate) fn sample(schema: &Value, name: &str) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_ascii_lowercase();
    match ty.as_str() {
        "string" => json!(format!("mock-{name}")),
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => {
            let items = schema
                .get("items")
                .cloned()
                .unwrap_or(json!({"type": "string"}));
            json!([sample(&items, name)])
        }
        "object" => {
            let mut out = Map::new();
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, sub) in properties {
                    out.insert(key.clone(), sample(sub, key));
                }
            }
            Value::Object(out)
        }
        _ => Value::Null,
    }
}

/// Rendering of a plan into Google's bodies.
impl Planned {
    /// One `GenerateContentResponse` holding the whole answer. Vertex omits
    /// `candidates[].index` and adds `createTime`.
    pub(crate) fn whole(&self, vertex: bool, response_id: &str) -> Value {
        let candidates: Vec<Value> = self
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let parts: Vec<(Out, Option<&str>)> = c
                    .parts
                    .iter()
                    .enumerate()
                    .map(|(k, p)| (p.clone(), c.signature(k)))
                    .collect();
                candidate_json(c, &parts, Some(c.finish), i, vertex)
            })
            .collect();
        self.envelope(candidates, self.usage.to_json(), vertex, response_id)
    }

    /// The stream: thoughts, then text a word or two per chunk, then each function
    /// call in a chunk of its own; the last chunk of each candidate carries its
    /// finish reason and the complete usage. Earlier chunks carry running counts, so
    /// a client must keep the last usage, not add them up.
    pub(crate) fn chunks(&self, vertex: bool, response_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let running = |candidates: u64| {
            json!({
                "promptTokenCount": self.usage.prompt,
                "candidatesTokenCount": candidates,
                "totalTokenCount": self.usage.prompt + candidates,
            })
        };
        if self.candidates.is_empty() {
            return vec![self.whole(vertex, response_id)];
        }
        let mut emitted = 0;
        for (i, c) in self.candidates.iter().enumerate() {
            // A part's signature comes with its last piece.
            let mut pieces: Vec<(Out, Option<&str>)> = Vec::new();
            for (k, part) in c.parts.iter().enumerate() {
                match part {
                    Out::Text(t) => {
                        let words: Vec<&str> = t.split_inclusive(' ').collect();
                        let last = words.len().div_ceil(2).saturating_sub(1);
                        for (j, pair) in words.chunks(2).enumerate() {
                            let signature = (j == last).then(|| c.signature(k)).flatten();
                            pieces.push((Out::Text(pair.concat()), signature));
                        }
                    }
                    other => pieces.push((other.clone(), c.signature(k))),
                }
            }
            let last = pieces.len().saturating_sub(1);
            if pieces.is_empty() {
                let candidate = candidate_json(c, &[], Some(c.finish), i, vertex);
                out.push(self.envelope(vec![candidate], self.usage.to_json(), vertex, response_id));
                continue;
            }
            for (k, piece) in pieces.iter().enumerate() {
                if let (Out::Text(t), _) = piece {
                    emitted += words(t);
                }
                let finish = (k == last).then_some(c.finish);
                let usage = if k == last && i + 1 == self.candidates.len() {
                    self.usage.to_json()
                } else {
                    running(emitted)
                };
                let candidate = candidate_json(c, std::slice::from_ref(piece), finish, i, vertex);
                out.push(self.envelope(vec![candidate], usage, vertex, response_id));
            }
        }
        out
    }

    fn envelope(
        &self,
        candidates: Vec<Value>,
        usage: Value,
        vertex: bool,
        response_id: &str,
    ) -> Value {
        let mut body = Map::new();
        if let Some(reason) = self.block_reason {
            body.insert(
                "promptFeedback".into(),
                json!({
                    "blockReason": reason,
                    "safetyRatings": wire::safety_ratings("HARM_CATEGORY_DANGEROUS_CONTENT"),
                }),
            );
        } else {
            body.insert("candidates".into(), Value::Array(candidates));
        }
        body.insert("usageMetadata".into(), usage);
        body.insert("modelVersion".into(), json!(self.model));
        if vertex {
            body.insert("createTime".into(), json!("2025-01-01T00:00:00.000000Z"));
        }
        body.insert("responseId".into(), json!(response_id));
        Value::Object(body)
    }
}

fn candidate_json(
    c: &Candidate,
    parts: &[(Out, Option<&str>)],
    finish: Option<&str>,
    index: usize,
    vertex: bool,
) -> Value {
    let mut out = Map::new();
    if !parts.is_empty() {
        let parts: Vec<Value> = parts
            .iter()
            .map(|(p, signature)| {
                let mut part = match p {
                    Out::Thought(t) => json!({ "text": t, "thought": true }),
                    Out::Text(t) => json!({ "text": t }),
                    Out::Call { name, args } => {
                        json!({ "functionCall": { "name": name, "args": args } })
                    }
                };
                if let Some(signature) = signature {
                    part["thoughtSignature"] = json!(signature);
                }
                part
            })
            .collect();
        out.insert("content".into(), json!({ "parts": parts, "role": "model" }));
    }
    if let Some(finish) = finish {
        out.insert("finishReason".into(), json!(finish));
    }
    if let Some(ratings) = &c.safety {
        out.insert("safetyRatings".into(), ratings.clone());
    }
    // Vertex leaves the default index 0 out, as proto3 JSON may; AI Studio sends it.
    if !vertex || index > 0 {
        out.insert("index".into(), json!(index));
    }
    Value::Object(out)
}

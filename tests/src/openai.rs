//! A mock of OpenAI's HTTP API, in OpenAI's exact wire format: chat completions (whole
//! and streamed), legacy completions, embeddings, the model list, and OpenAI's error
//! bodies. Azure OpenAI's deployment paths work too; started with
//! [`OpenAi::with_entra`], those paths take only `Authorization: Bearer` with an Entra ID
//! token the mock Entra ID issued, as Azure OpenAI with keys disabled does.
//!
//! Tests script it as every mock ([`crate::mock`]): queue [`Reply`]s or change the
//! default, then inspect what arrived. Callers that cannot reach the mock's API (the
//! `llmesh-mock` binary, benchmarks) script it by model name instead: with
//! [`Reply::ok`] in effect, models `mock-error-<status>` (429 with OpenAI's rate-limit
//! headers), `mock-context-length`, `mock-content-filter`, `mock-malformed` (a truncated
//! body, or a stream whose first event is), `mock-slow-<ms>`, `mock-max-tokens` (half
//! the reply, finish `length`), `mock-two-cities` (the first tool called for Paris and
//! for Rome) and `mock-stream-cut` (the role and one piece, then the connection drops)
//! answer as their names say.
//!
//! | reply | rendered as |
//! |---|---|
//! | [`Reply::ok`] | a `chat.completion` for `/chat/completions` (content `mock reply to: <last user message>`, the model echoed, one token per word) or its `chat.completion.chunk` stream with `"stream": true`; a `text_completion` (or its stream) for `/completions`; an embeddings `list`; the model list; OpenAI's 404 for unknown paths and 400 for bodies that are not JSON |
//! | [`Reply::stream`] | a chunk announcing the role, one content delta per piece, one with `finish_reason: "stop"`, the usage chunk only if `stream_options.include_usage`, then `data: [DONE]`; legacy `text_completion` chunks on `/completions` |
//! | [`Reply::error`] | `{"error":{"message","type","param","code"}}`, `param` null |
//! | [`Reply::malformed`] | 200 JSON, truncated |
//! | [`Reply::tool_calls`] | chat `tool_calls` (finish `tool_calls`), whole or streamed as the request asks; on `/responses`, `function_call` items (`custom_tool_call` for a string input) |
//!
//! `POST /v1/responses` (OpenAI's Responses API) answers a `response` object, or with
//! `"stream": true` its typed event stream: [`Reply::ok`] is `mock reply to: <last user
//! input>` (`mock-error-*` and `mock-malformed` models fail as on chat,
//! `mock-two-cities` calls the first function tool for Paris and for Rome,
//! `mock-max-tokens` stops `incomplete` at `max_output_tokens` with half the reply,
//! `mock-stream-cut` drops the connection after the first text delta),
//! [`Reply::stream`] these pieces.
//! Responses are kept unless `"store": false`, for `GET`/`DELETE /v1/responses/{id}`
//! and `previous_response_id` (an unknown one is OpenAI's 400); these are answered
//! before the script.

mod responses;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::mock::{
    Failure, Kind, Mock, Provider, Resolved, ToolCall as ScriptedCall, first_words, max_tokens_for,
    two_cities, unit_vector, words,
};
pub use crate::mock::{Recorded, Reply};
use wire::{EMBEDDING_DIM, Ending, FunctionCall, Meta, ToolCall, Usage};

const JSON: &str = "application/json";
/// What OpenAI sends for streams; clients should match on the media type, so the
/// charset parameter is kept to catch exact-string comparisons.
const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";

/// OpenAI's wire format, for the mock core.
#[derive(Debug, Default)]
pub struct OpenAi {
    next_id: AtomicU64,
    /// Responses kept for `GET /v1/responses/{id}`, by id.
    stored: Mutex<HashMap<String, Value>>,
    /// The Entra ID tokens Azure paths require, when set.
    entra: Option<crate::identity::Tokens>,
}

impl OpenAi {
    /// A mock whose Azure OpenAI paths (`/openai/...`) require an Entra ID token from
    /// `tokens`: a missing, unknown or expired one gets Azure's 401.
    pub fn with_entra(tokens: &crate::identity::Tokens) -> OpenAi {
        OpenAi {
            entra: Some(tokens.clone()),
            ..OpenAi::default()
        }
    }
}

/// A running mock OpenAI.
pub type MockOpenAi = Mock<OpenAi>;

impl Mock<OpenAi> {
    /// `base_url()` followed by `path`, e.g. `url("/chat/completions")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }
}

impl Provider for OpenAi {
    const BASE_PATH: &'static str = "/v1";

    fn screen(&self, req: &Recorded) -> Option<Resolved> {
        if let Some(tokens) = &self.entra
            && req.path_only().starts_with("/openai/")
            && !tokens.bearer_valid(&req.headers)
        {
            // Azure OpenAI's answer to a bad bearer token.
            let body = serde_json::json!({"error": {
                "code": "401",
                "message": "Unauthorized. Access token is missing, invalid, audience is \
                            incorrect (https://cognitiveservices.azure.com), or have expired."
            }});
            return Some(json_answer(
                StatusCode::UNAUTHORIZED,
                crate::mock::to_bytes(&body),
            ));
        }
        responses::screen(self, req)
    }

    fn render(&self, req: &Recorded, reply: &Reply) -> Resolved {
        let path = req.path_only();
        let route = Route::of(&req.method, path);
        if route == Route::Responses {
            return self.respond(req, reply);
        }
        match reply.kind() {
            Kind::ToolCalls(calls) if route == Route::Chat => {
                let api = ApiRequest::parse(&req.body).unwrap_or_default();
                scripted_tool_calls(self, &api, path, calls)
            }
            Kind::Ok => healthy(self, route, &req.method, path, &req.body),
            Kind::Pieces(pieces) => {
                // Scripted streams answer whatever was sent, so a body that is not a
                // completion request just means defaults.
                let api = ApiRequest::parse(&req.body).unwrap_or_default();
                let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
                let completion = pieces.iter().map(|p| words(p)).sum();
                let ending = Ending::STOP;
                let events = stream_events(self, route, &api, path, &pieces, &ending, completion);
                Resolved::frames(EVENT_STREAM, events)
            }
            Kind::Malformed => {
                json_answer(StatusCode::OK, Bytes::from_static(br#"{"id": "chatcmpl-"#))
            }
            _ => Resolved::unsupported("OpenAI", reply),
        }
    }

    fn error(&self, _req: &Recorded, failure: &Failure) -> Resolved {
        let kind = failure.kind.as_deref();
        let body = wire::error(&failure.message, kind, None, failure.code.as_deref());
        json_answer(failure.status, body)
    }
}

impl OpenAi {
    /// A `POST /v1/responses`.
    fn respond(&self, req: &Recorded, reply: &Reply) -> Resolved {
        let items = match reply.kind() {
            Kind::Ok => {
                let Some(api) = ApiRequest::parse(&req.body) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "We could not parse the JSON body of your request.",
                        "invalid_request_error",
                        None,
                        None,
                    );
                };
                let model = api.model("-");
                if let Some(ByModel::Answer(refused)) = scripted_by_model(model, &api) {
                    return refused;
                }
                let body = req.json();
                match model {
                    "mock-two-cities" => responses::two_cities(&body),
                    "mock-max-tokens" => return responses::cut_short(self, req),
                    "mock-stream-cut" => {
                        let items = responses::healthy_items(&body);
                        return responses::answer(self, req, items).cut_after(5);
                    }
                    _ => responses::healthy_items(&body),
                }
            }
            Kind::Pieces(pieces) => vec![responses::Item::Text(pieces.to_vec())],
            Kind::ToolCalls(calls) => responses::Item::calls(calls),
            _ => return Resolved::unsupported("OpenAI Responses", reply),
        };
        responses::answer(self, req, items)
    }
}

/// A chat answer of scripted tool calls, whole or streamed as the request asks; a
/// string input is sent as the arguments text itself.
fn scripted_tool_calls(
    shared: &OpenAi,
    req: &ApiRequest,
    path: &str,
    calls: &[ScriptedCall],
) -> Resolved {
    let calls: Vec<ToolCall> = calls
        .iter()
        .map(|call| ToolCall {
            id: next_id(shared, "call_"),
            kind: "function",
            function: FunctionCall {
                name: call.name.clone(),
                arguments: match &call.input {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            },
        })
        .collect();
    let ending = Ending {
        tool_calls: &calls,
        finish_reason: "tool_calls",
    };
    let completion = 10 * calls.len() as u64;
    if req.streaming() {
        let events = stream_events(shared, Route::Chat, req, path, &[], &ending, completion);
        return Resolved::frames(EVENT_STREAM, events);
    }
    let id = next_id(shared, "chatcmpl-");
    let meta = Meta {
        id: &id,
        created: now(),
        model: req.model(path),
    };
    let usage = Usage::chat(req.chat_prompt_tokens(), completion);
    json_answer(
        StatusCode::OK,
        wire::chat_completion(&meta, "", &ending, usage),
    )
}

fn json_answer(status: StatusCode, body: Bytes) -> Resolved {
    Resolved::whole(status, JSON, body)
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Resolved {
    json_answer(status, wire::error(message, Some(kind), param, code))
}

/// The endpoints the mock knows. Suffix matching lets Azure-style paths
/// (`/openai/deployments/{name}/chat/completions`) work too.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route<'a> {
    Chat,
    Responses,
    Completions,
    Embeddings,
    Models,
    Model(&'a str),
    Unknown,
}

impl<'a> Route<'a> {
    fn of(method: &Method, path: &'a str) -> Route<'a> {
        let post = method == Method::POST;
        let get = method == Method::GET;
        if post && path.ends_with("/chat/completions") {
            Route::Chat
        } else if post && path.ends_with("/responses") {
            Route::Responses
        } else if post && path.ends_with("/completions") {
            Route::Completions
        } else if post && path.ends_with("/embeddings") {
            Route::Embeddings
        } else if get && (path == "/v1/models" || path == "/models") {
            Route::Models
        } else if let Some(id) = path
            .strip_prefix("/v1/models/")
            .filter(|id| get && !id.is_empty())
        {
            Route::Model(id)
        } else {
            Route::Unknown
        }
    }
}

/// The parts of a completion or embeddings request the mock looks at.
#[derive(Deserialize, Default)]
struct ApiRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    content: Option<Value>,
}

impl ApiRequest {
    fn parse(body: &[u8]) -> Option<ApiRequest> {
        serde_json::from_slice(body).ok()
    }

    fn streaming(&self) -> bool {
        self.stream == Some(true)
    }

    fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The model to echo: the body's, else an Azure deployment name from
    /// the path (Azure bodies need not name one), else a placeholder.
    fn model<'a>(&'a self, path: &'a str) -> &'a str {
        if let Some(model) = self.model.as_deref() {
            return model;
        }
        path.split_once("/deployments/")
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or("mock-model")
    }

    /// Text of the last user message; array content contributes its text
    /// parts.
    fn last_user_text(&self) -> String {
        self.messages
            .iter()
            .flatten()
            .rev()
            .find(|m| m.role.as_deref() == Some("user"))
            .and_then(|m| m.content.as_ref())
            .map(content_text)
            .unwrap_or_default()
    }

    /// Roughly one token per word of every message, never zero.
    fn chat_prompt_tokens(&self) -> u64 {
        let words: u64 = self
            .messages
            .iter()
            .flatten()
            .filter_map(|m| m.content.as_ref())
            .map(content_words)
            .sum();
        words.max(1)
    }

    /// The prompt of a legacy completion: the string, or the first of a list.
    fn prompt_text(&self) -> &str {
        match &self.prompt {
            Some(Value::String(s)) => s,
            Some(Value::Array(items)) => items.first().and_then(Value::as_str).unwrap_or(""),
            _ => "",
        }
    }
}

fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// `words(&content_text(content))` without building the string, since
/// every message of every request is counted.
fn content_words(content: &Value) -> u64 {
    match content {
        Value::String(s) => words(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(words)
            .sum(),
        _ => 0,
    }
}

/// What a healthy provider (or a `mock-*` model) answers.
fn healthy(
    shared: &OpenAi,
    route: Route<'_>,
    method: &Method,
    path: &str,
    body: &[u8],
) -> Resolved {
    match route {
        Route::Unknown => {
            let message = format!(
                "Unknown request URL: {method} {path}. Please check the URL for typos, \
                 or see the docs at https://platform.openai.com/docs/api-reference/."
            );
            return error(
                StatusCode::NOT_FOUND,
                &message,
                "invalid_request_error",
                None,
                Some("unknown_url"),
            );
        }
        Route::Models => return json_answer(StatusCode::OK, wire::models()),
        Route::Model(id) => return json_answer(StatusCode::OK, wire::model(id)),
        Route::Chat | Route::Completions | Route::Embeddings | Route::Responses => {}
    }
    let Some(req) = ApiRequest::parse(body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you \
             aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
             but what was sent was not valid JSON.)",
            "invalid_request_error",
            None,
            None,
        );
    };
    let model = req.model(path);
    let mut delay = Duration::ZERO;
    match scripted_by_model(model, &req) {
        Some(ByModel::Answer(resolved)) => return resolved,
        Some(ByModel::Slow(ms)) => delay = ms,
        None => {}
    }
    let mut resolved = match route {
        Route::Chat => chat(shared, &req, path),
        Route::Completions => completion(shared, &req, path),
        _ => embeddings(&req, path),
    };
    resolved.delay = delay;
    resolved
}

enum ByModel {
    Answer(Resolved),
    Slow(Duration),
}

fn scripted_by_model(model: &str, req: &ApiRequest) -> Option<ByModel> {
    let answer = match model {
        "mock-error-429" => error(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for mock-error-429 in organization org-mock on requests per \
                 min (RPM): Limit 500, Used 500, Requested 1. Please try again in 1s. Visit \
                 https://platform.openai.com/account/rate-limits to learn more.",
            "requests",
            None,
            Some("rate_limit_exceeded"),
        )
        .with_header("retry-after", "1")
        .with_header("x-ratelimit-limit-requests", "500")
        .with_header("x-ratelimit-remaining-requests", "0")
        .with_header("x-ratelimit-reset-requests", "1s"),
        "mock-error-500" => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        "mock-error-503" => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "That model is currently overloaded with other requests. You can retry your \
             request, or contact us through our help center at help.openai.com if the error \
             persists.",
            "server_error",
            None,
            None,
        ),
        "mock-context-length" => {
            // Always over the limit, by however long the prompt was.
            let limit = 128_000;
            let message = format!(
                "This model's maximum context length is {limit} tokens. However, your messages \
                 resulted in {} tokens. Please reduce the length of the messages.",
                limit + req.chat_prompt_tokens()
            );
            error(
                StatusCode::BAD_REQUEST,
                &message,
                "invalid_request_error",
                Some("messages"),
                Some("context_length_exceeded"),
            )
        }
        "mock-content-filter" => json_answer(StatusCode::BAD_REQUEST, wire::azure_content_filter()),
        "mock-malformed" if req.streaming() => {
            // Broken off before the first event ends.
            let event = Bytes::from_static(b"data: {\"id\": \"chatcmpl-");
            Resolved::frames(EVENT_STREAM, vec![event])
        }
        "mock-malformed" => {
            json_answer(StatusCode::OK, Bytes::from_static(br#"{"id": "chatcmpl-"#))
        }
        _ if model.starts_with("mock-error-") => {
            let status = model["mock-error-".len()..].parse().ok()?;
            let status = StatusCode::from_u16(status).ok()?;
            let (kind, code) = match status.as_u16() {
                401 => ("invalid_request_error", Some("invalid_api_key")),
                404 => ("invalid_request_error", Some("model_not_found")),
                s if s >= 500 => ("server_error", None),
                _ => ("invalid_request_error", None),
            };
            let message = format!("mock {} error", status.as_u16());
            error(status, &message, kind, None, code)
        }
        _ => {
            let ms = model.strip_prefix("mock-slow-")?.parse().ok()?;
            return Some(ByModel::Slow(Duration::from_millis(ms)));
        }
    };
    Some(ByModel::Answer(answer))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn next_id(shared: &OpenAi, prefix: &str) -> String {
    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}mock{n:020}")
}

/// `mock-two-cities` calls the request's first tool twice, for Paris and for Rome.
fn tool_calls(shared: &OpenAi, model: &str, req: &ApiRequest) -> Vec<ToolCall> {
    let first = req.tools.iter().flatten().next();
    let name = first.and_then(|t| t["function"]["name"].as_str());
    let Some(name) = name.filter(|_| model == "mock-two-cities") else {
        return Vec::new();
    };
    two_cities()
        .into_iter()
        .map(|arguments| ToolCall {
            id: next_id(shared, "call_"),
            kind: "function",
            function: FunctionCall {
                name: name.to_owned(),
                arguments: arguments.to_string(),
            },
        })
        .collect()
}

/// Splits a reply into word-sized stream pieces that concatenate back to it.
fn pieces_of(text: &str) -> Vec<&str> {
    text.split_inclusive(' ').collect()
}

fn chat(shared: &OpenAi, req: &ApiRequest, path: &str) -> Resolved {
    let model = req.model(path);
    let mut content = format!("mock reply to: {}", req.last_user_text());
    let mut finish_reason = "stop";
    if let Some(max) = max_tokens_for(model, &content, None) {
        content = first_words(&content, max);
        finish_reason = "length";
    }
    let calls = tool_calls(shared, model, req);
    if !calls.is_empty() {
        content.clear();
        finish_reason = "tool_calls";
    }
    let ending = Ending {
        tool_calls: &calls,
        finish_reason,
    };
    if req.streaming() {
        let pieces = pieces_of(&content);
        let completion = words(&content) + 10 * calls.len() as u64;
        let events = stream_events(shared, Route::Chat, req, path, &pieces, &ending, completion);
        let stream = Resolved::frames(EVENT_STREAM, events);
        // The role and the first piece, then the connection drops.
        return if model == "mock-stream-cut" {
            stream.cut_after(2)
        } else {
            stream
        };
    }
    let id = next_id(shared, "chatcmpl-");
    let meta = Meta {
        id: &id,
        created: now(),
        model: req.model(path),
    };
    let usage = Usage::chat(req.chat_prompt_tokens(), words(&content));
    json_answer(
        StatusCode::OK,
        wire::chat_completion(&meta, &content, &ending, usage),
    )
}

fn completion(shared: &OpenAi, req: &ApiRequest, path: &str) -> Resolved {
    let text = format!("mock reply to: {}", req.prompt_text());
    if req.streaming() {
        let pieces = pieces_of(&text);
        return Resolved::frames(
            EVENT_STREAM,
            stream_events(
                shared,
                Route::Completions,
                req,
                path,
                &pieces,
                &Ending::STOP,
                words(&text),
            ),
        );
    }
    let id = next_id(shared, "cmpl-");
    let meta = Meta {
        id: &id,
        created: now(),
        model: req.model(path),
    };
    let usage = Usage::legacy(words(req.prompt_text()).max(1), words(&text));
    json_answer(StatusCode::OK, wire::text_completion(&meta, &text, usage))
}

/// The SSE events for `pieces`, in the flavour the route calls for.
fn stream_events(
    shared: &OpenAi,
    route: Route<'_>,
    req: &ApiRequest,
    path: &str,
    pieces: &[&str],
    ending: &Ending<'_>,
    completion_tokens: u64,
) -> Vec<Bytes> {
    let completions = route == Route::Completions;
    let id = next_id(shared, if completions { "cmpl-" } else { "chatcmpl-" });
    let meta = Meta {
        id: &id,
        created: now(),
        model: req.model(path),
    };
    let usage = req.include_usage().then(|| {
        if completions {
            Usage::legacy(words(req.prompt_text()).max(1), completion_tokens)
        } else {
            Usage::chat(req.chat_prompt_tokens(), completion_tokens)
        }
    });
    if completions {
        wire::text_chunks(&meta, pieces, usage)
    } else {
        wire::chat_chunks(&meta, pieces, ending, usage)
    }
}

fn embeddings(req: &ApiRequest, path: &str) -> Resolved {
    // `input` is a string, a token array, or a list of either; one vector
    // per string or token array.
    let inputs: Vec<&Value> = match &req.input {
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            req.input.iter().collect()
        }
        Some(Value::Array(items)) => items.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    let mut tokens = 0;
    let vectors: Vec<Vec<f32>> = inputs
        .iter()
        .map(|input| {
            tokens += match input {
                Value::String(s) => words(s).max(1),
                Value::Array(ids) => ids.len() as u64,
                _ => 1,
            };
            // Strings by their text, token arrays by their JSON.
            match input {
                Value::String(s) => unit_vector(s.as_bytes(), EMBEDDING_DIM),
                other => unit_vector(other.to_string().as_bytes(), EMBEDDING_DIM),
            }
        })
        .collect();
    let base64 = req.encoding_format.as_deref() == Some("base64");
    json_answer(
        StatusCode::OK,
        wire::embeddings(req.model(path), &vectors, tokens, base64),
    )
}

//! The spans of a call, named and attributed per the OpenTelemetry GenAI semantic
//! conventions: one `SERVER` span per client call, and one `CLIENT` span per upstream
//! attempt beneath it (retries and fallbacks show as siblings). The client's W3C
//! `traceparent` is continued, and each attempt's context is sent upstream; with tracing
//! off, the client's own headers are passed on unchanged.
//!
//! Prompts and completions are never recorded here; see [`super::content`] for a
//! model's opt-in.

use std::borrow::Cow;

use std::sync::LazyLock;

use http::HeaderMap;
use memchr::memmem;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, Span};

use crate::domain::{Endpoint, Usage};

/// `gen_ai.operation.name` of an endpoint.
pub fn operation(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
    }
}

/// `gen_ai.provider.name` of a provider (by its config label): the conventions' name
/// where they have one, else the label.
pub fn provider_name(label: &'static str) -> &'static str {
    match label {
        "azure" => "azure.ai.openai",
        "bedrock" => "aws.bedrock",
        "gemini" => "gcp.gemini",
        "vertex" => "gcp.vertex_ai",
        "mistral" => "mistral_ai",
        other => other,
    }
}

/// How a call's upstream requests carry the trace.
#[derive(Debug, Default)]
pub enum Propagation {
    /// Nothing to send: tracing is off and the client sent no trace context.
    #[default]
    None,
    /// Tracing is off: the client's trace context is passed on as it came.
    Forward(HeaderMap),
    /// Tracing is on: each attempt is a span under the call's.
    Traced {
        /// Makes the attempt spans.
        tracer: SdkTracer,
        /// The call span's context.
        parent: Context,
    },
}

/// The span of one client call; ends when dropped (after [`CallSpan::finish`]).
pub struct CallSpan {
    span: Span,
    operation: &'static str,
}

/// Starts the call's span (when `tracer` is given) under the client's trace context,
/// and says how its upstream requests carry the trace.
pub fn start_call(
    tracer: Option<&SdkTracer>,
    headers: &HeaderMap,
    endpoint: Endpoint,
) -> (Option<CallSpan>, Propagation) {
    if !headers.contains_key("traceparent") && tracer.is_none() {
        return (None, Propagation::None);
    }
    let propagator = TraceContextPropagator::new();
    let client = propagator.extract(&HeaderExtractor(headers));
    let Some(tracer) = tracer else {
        // Parsed and written again: a malformed header is dropped, not passed on.
        let mut forward = HeaderMap::new();
        if client.span().span_context().is_valid() {
            propagator.inject_context(&client, &mut HeaderInjector(&mut forward));
        }
        let propagation = if forward.is_empty() {
            Propagation::None
        } else {
            Propagation::Forward(forward)
        };
        return (None, propagation);
    };
    let operation = operation(endpoint);
    let span = tracer
        .span_builder(operation)
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("llmesh.endpoint", endpoint.as_str()),
        ])
        .start_with_context(tracer, &client);
    let parent = Context::new().with_remote_span_context(span.span_context().clone());
    let propagation = Propagation::Traced {
        tracer: tracer.clone(),
        parent,
    };
    (Some(CallSpan { span, operation }), propagation)
}

impl CallSpan {
    /// Names the model asked for (and the span after it, as the conventions do).
    pub fn requested(&mut self, model: &str) {
        if !self.span.is_recording() {
            return;
        }
        self.span.update_name(format!("{} {model}", self.operation));
        self.span
            .set_attribute(KeyValue::new("gen_ai.request.model", model.to_owned()));
    }

    /// Whether the span is sampled: only then is anything worth computing for it.
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// The call's context, e.g. for tests and logs.
    pub fn span_context(&self) -> &SpanContext {
        self.span.span_context()
    }

    /// Adds attributes to the call's span.
    pub fn add(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        if self.span.is_recording() {
            self.span.set_attributes(attributes);
        }
    }

    /// Ends the span with how the call went.
    pub fn finish(mut self, end: &Finish<'_>) {
        if self.span.is_recording() {
            end.record(&mut self.span);
        }
        self.span.end();
    }
}

/// How a call or an attempt ended, for its span.
#[derive(Default)]
pub struct Finish<'a> {
    /// The HTTP status answered.
    pub status: Option<u16>,
    /// `error.type`: a failure class, or `client_closed`.
    pub error: Option<&'a str>,
    /// The provider that answered (its config label).
    pub provider: Option<&'static str>,
    /// The deployment that answered.
    pub deployment: Option<&'a str>,
    /// The model (of the config) that answered, when a fallback did.
    pub served_model: Option<&'a str>,
    /// Usage reported.
    pub usage: Option<Usage>,
    /// What the call cost, in micro-dollars.
    pub cost_micros: Option<u64>,
    /// The caller's key and its team.
    pub key: Option<(&'a str, Option<&'a str>)>,
    /// Attempts made.
    pub attempts: Option<u32>,
    /// What the answer says of itself.
    pub response: Option<&'a ResponseFacts>,
}

impl Finish<'_> {
    fn record(&self, span: &mut Span) {
        let mut kv = Vec::with_capacity(16);
        if let Some(status) = self.status {
            kv.push(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
        }
        if let Some(provider) = self.provider {
            kv.push(KeyValue::new(
                "gen_ai.provider.name",
                provider_name(provider),
            ));
        }
        if let Some(deployment) = self.deployment {
            kv.push(KeyValue::new("llmesh.deployment", deployment.to_owned()));
        }
        if let Some(model) = self.served_model {
            kv.push(KeyValue::new("llmesh.served_model", model.to_owned()));
        }
        if let Some(usage) = self.usage {
            usage_attributes(&usage, &mut kv);
        }
        if let Some(cost) = self.cost_micros {
            kv.push(KeyValue::new("llmesh.cost_micros", saturating_i64(cost)));
        }
        if let Some((key, team)) = self.key {
            kv.push(KeyValue::new("llmesh.key", key.to_owned()));
            if let Some(team) = team {
                kv.push(KeyValue::new("llmesh.team", team.to_owned()));
            }
        }
        if let Some(attempts) = self.attempts {
            kv.push(KeyValue::new("llmesh.attempts", i64::from(attempts)));
        }
        if let Some(response) = self.response {
            response.attributes(&mut kv);
        }
        if let Some(error) = self.error {
            kv.push(KeyValue::new("error.type", error.to_owned()));
            span.set_status(Status::error(Cow::Owned(error.to_owned())));
        }
        span.set_attributes(kv);
    }
}

/// The GenAI usage attributes. The conventions count cached tokens inside
/// `input_tokens`, as `Usage::prompt_tokens` does.
fn usage_attributes(usage: &Usage, kv: &mut Vec<KeyValue>) {
    kv.push(KeyValue::new(
        "gen_ai.usage.input_tokens",
        saturating_i64(usage.prompt_tokens),
    ));
    kv.push(KeyValue::new(
        "gen_ai.usage.output_tokens",
        saturating_i64(usage.completion_tokens),
    ));
    if usage.cached_tokens > 0 {
        kv.push(KeyValue::new(
            "gen_ai.usage.cache_read.input_tokens",
            saturating_i64(usage.cached_tokens),
        ));
    }
    if usage.cache_write_tokens > 0 {
        kv.push(KeyValue::new(
            "gen_ai.usage.cache_creation.input_tokens",
            saturating_i64(usage.cache_write_tokens),
        ));
    }
    if usage.reasoning_tokens > 0 {
        kv.push(KeyValue::new(
            "llmesh.usage.reasoning_tokens",
            saturating_i64(usage.reasoning_tokens),
        ));
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What an answer says of itself: `gen_ai.response.id`, `.model`, `.finish_reasons`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponseFacts {
    /// The provider's response id.
    pub id: Option<String>,
    /// The model the provider says answered.
    pub model: Option<String>,
    /// Why each choice stopped.
    pub finish_reasons: Vec<String>,
}

/// The longest prefix of `text` within `max` bytes that ends on a character boundary.
pub(super) fn prefix(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The longest `gen_ai.response.*` value kept.
const MAX_FACT_BYTES: usize = 256;
/// The most finish reasons kept (one per choice).
const MAX_FINISH_REASONS: usize = 16;

/// The fields of a whole answer, in any client API, that say what it is.
#[derive(serde::Deserialize)]
struct Answer {
    id: Option<String>,
    model: Option<String>,
    /// Chat and text completions.
    #[serde(default)]
    choices: Vec<Choice>,
    /// Anthropic Messages.
    stop_reason: Option<String>,
    /// OpenAI Responses: `completed`, `incomplete`, `failed`.
    status: Option<String>,
}

#[derive(serde::Deserialize)]
struct Choice {
    finish_reason: Option<String>,
}

impl ResponseFacts {
    /// Reads them from a whole answer in its client's format (nothing if it is not
    /// one): only for a span that records, so calls untraced pay nothing.
    pub fn read(body: &[u8]) -> ResponseFacts {
        let Ok(answer) = serde_json::from_slice::<Answer>(body) else {
            return ResponseFacts::default();
        };
        // What an upstream says is bounded before it becomes an attribute.
        let cut = |mut text: String| {
            text.truncate(prefix(&text, MAX_FACT_BYTES).len());
            text
        };
        let finish_reasons: Vec<String> = answer
            .choices
            .into_iter()
            .filter_map(|c| c.finish_reason)
            .chain(answer.stop_reason.or(answer.status))
            .take(MAX_FINISH_REASONS)
            .map(cut)
            .collect();
        ResponseFacts {
            id: answer.id.map(cut),
            model: answer.model.map(cut),
            finish_reasons,
        }
    }

    fn attributes(&self, kv: &mut Vec<KeyValue>) {
        if let Some(id) = &self.id {
            kv.push(KeyValue::new("gen_ai.response.id", id.clone()));
        }
        if let Some(model) = &self.model {
            kv.push(KeyValue::new("gen_ai.response.model", model.clone()));
        }
        if !self.finish_reasons.is_empty() {
            let reasons: Vec<StringValue> = self
                .finish_reasons
                .iter()
                .map(|r| StringValue::from(r.clone()))
                .collect();
            kv.push(KeyValue::new(
                "gen_ai.response.finish_reasons",
                Value::Array(Array::String(reasons)),
            ));
        }
    }
}

/// [`ResponseFacts`] of a stream, gathered from the events the client gets, in any of
/// the three APIs: the first `"id"` and `"model"` (the opening event carries both), and
/// each `"finish_reason"` (chat), `"stop_reason"` (Messages) or terminal
/// `response.*` event (Responses). A byte search, not a parse: a JSON string cannot hold
/// an unescaped `":"`, so a match is never inside content. Only a span that records
/// asks for it.
#[derive(Debug, Default)]
pub struct StreamFacts(ResponseFacts);

/// The searches [`StreamFacts::scan`] makes, built once.
struct Needles {
    id: memmem::Finder<'static>,
    model: memmem::Finder<'static>,
    /// Ends both `"finish_reason":"` and `"stop_reason":"`.
    reason: memmem::Finder<'static>,
    /// Starts every Responses event name.
    response_event: memmem::Finder<'static>,
}

static NEEDLES: LazyLock<Needles> = LazyLock::new(|| Needles {
    id: memmem::Finder::new(b"\"id\":\""),
    model: memmem::Finder::new(b"\"model\":\""),
    reason: memmem::Finder::new(b"_reason\":\""),
    response_event: memmem::Finder::new(b"\"type\":\"response."),
});

impl StreamFacts {
    /// Looks at events on their way to the client.
    pub fn scan(&mut self, events: &[u8]) {
        let needles = &*NEEDLES;
        let facts = &mut self.0;
        if facts.id.is_none() {
            facts.id = needles
                .id
                .find(events)
                .and_then(|at| value_at(events, at + needles.id.needle().len()));
        }
        if facts.model.is_none() {
            facts.model = needles
                .model
                .find(events)
                .and_then(|at| value_at(events, at + needles.model.needle().len()));
        }
        for at in needles.reason.find_iter(events) {
            let key = &events[..at];
            let named = key.ends_with(b"\"finish") || key.ends_with(b"\"stop");
            if named
                && facts.finish_reasons.len() < MAX_FINISH_REASONS
                && let Some(reason) = value_at(events, at + needles.reason.needle().len())
            {
                facts.finish_reasons.push(reason);
            }
        }
        for at in needles.response_event.find_iter(events) {
            let name = &events[at + needles.response_event.needle().len()..];
            let status = [&b"completed\""[..], b"incomplete\"", b"failed\""]
                .into_iter()
                .find(|s| name.starts_with(s));
            if let Some(status) = status
                && facts.finish_reasons.len() < MAX_FINISH_REASONS
            {
                let status = &status[..status.len() - 1];
                facts
                    .finish_reasons
                    .push(String::from_utf8_lossy(status).into_owned());
            }
        }
    }

    /// What was gathered.
    pub fn into_facts(self) -> ResponseFacts {
        self.0
    }
}

/// The string value starting at `start` (up to its closing quote), cut at
/// [`MAX_FACT_BYTES`]; `None` when it does not end or is not plain text.
fn value_at(bytes: &[u8], start: usize) -> Option<String> {
    let rest = bytes.get(start..)?;
    let end = memchr::memchr(b'"', rest)?;
    let value = std::str::from_utf8(&rest[..end]).ok()?;
    if value.contains('\\') {
        return None;
    }
    Some(prefix(value, MAX_FACT_BYTES).to_owned())
}

/// One upstream attempt's span; none when tracing is off.
#[derive(Default)]
pub struct AttemptSpan {
    /// Boxed: an SDK span is some 400 bytes, and the served attempt's rides along with
    /// the answer.
    span: Option<Box<Span>>,
}

/// Facts of an attempt known when it starts.
pub struct AttemptStart<'a> {
    /// The call's endpoint.
    pub endpoint: Endpoint,
    /// The provider's config label.
    pub provider: &'static str,
    /// The model name the provider is asked for.
    pub upstream_model: &'a str,
    /// The config model this attempt serves (the one asked for, or a fallback).
    pub model: &'a str,
    /// The deployment tried.
    pub deployment: &'a str,
    /// 1 for the call's first attempt.
    pub number: u32,
}

impl Propagation {
    /// Starts an attempt: its span under the call's, when tracing is on.
    pub fn attempt(&self, start: &AttemptStart<'_>) -> AttemptSpan {
        let Propagation::Traced { tracer, parent } = self else {
            return AttemptSpan::default();
        };
        let operation = operation(start.endpoint);
        let span = tracer
            .span_builder(format!("{operation} {}", start.upstream_model))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", operation),
                KeyValue::new("gen_ai.provider.name", provider_name(start.provider)),
                KeyValue::new("gen_ai.request.model", start.upstream_model.to_owned()),
                KeyValue::new("llmesh.model", start.model.to_owned()),
                KeyValue::new("llmesh.deployment", start.deployment.to_owned()),
                KeyValue::new("llmesh.attempt", i64::from(start.number)),
            ])
            .start_with_context(tracer, parent);
        AttemptSpan {
            span: Some(Box::new(span)),
        }
    }
}

impl AttemptSpan {
    /// Puts the trace context on an upstream request (the attempt's, or the client's as
    /// it came when tracing is off), and the request's address on the span.
    pub fn send<B>(&mut self, propagation: &Propagation, request: &mut http::Request<B>) {
        match (propagation, &mut self.span) {
            (Propagation::None, _) => {}
            (Propagation::Forward(trace), _) => {
                for (name, value) in trace {
                    request.headers_mut().insert(name.clone(), value.clone());
                }
            }
            (Propagation::Traced { .. }, Some(span)) => {
                let context = Context::new().with_remote_span_context(span.span_context().clone());
                TraceContextPropagator::new()
                    .inject_context(&context, &mut HeaderInjector(request.headers_mut()));
                if span.is_recording() {
                    let uri = request.uri();
                    if let Some(host) = uri.host() {
                        span.set_attribute(KeyValue::new("server.address", host.to_owned()));
                    }
                    let port = uri.port_u16().or(match uri.scheme_str() {
                        Some("https") => Some(443),
                        Some("http") => Some(80),
                        _ => None,
                    });
                    if let Some(port) = port {
                        span.set_attribute(KeyValue::new("server.port", i64::from(port)));
                    }
                }
            }
            (Propagation::Traced { .. }, None) => {}
        }
    }

    /// Whether the span is sampled.
    pub fn is_recording(&self) -> bool {
        self.span.as_ref().is_some_and(|s| s.is_recording())
    }

    /// Ends the span with how the attempt went.
    pub fn finish(mut self, end: &Finish<'_>) {
        if let Some(mut span) = self.span.take() {
            if span.is_recording() {
                end.record(&mut span);
            }
            span.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_facts_come_from_the_events_of_each_api() {
        let mut chat = StreamFacts::default();
        chat.scan(b"data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"say \\\"finish_reason\\\":\\\"x\\\"\"},\"finish_reason\":null}]}\n\n");
        chat.scan(b"data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");
        let facts = chat.into_facts();
        assert_eq!(facts.id.as_deref(), Some("chatcmpl-9"));
        assert_eq!(facts.model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            facts.finish_reasons,
            ["tool_calls"],
            "content quoting the key is not a match"
        );
        let mut messages = StreamFacts::default();
        messages.scan(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null}}\n\n");
        messages.scan(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n");
        let facts = messages.into_facts();
        assert_eq!(facts.model.as_deref(), Some("claude-sonnet-4-5"));
        assert_eq!(facts.finish_reasons, ["end_turn"]);
        let mut responses = StreamFacts::default();
        responses.scan(b"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"model\":\"gpt-5\"}}\n\n");
        responses.scan(b"event: response.incomplete\ndata: {\"type\":\"response.incomplete\",\"sequence_number\":9}\n\n");
        let facts = responses.into_facts();
        assert_eq!(facts.id.as_deref(), Some("resp_1"));
        assert_eq!(facts.finish_reasons, ["incomplete"]);
    }

    #[test]
    fn response_facts_come_from_each_api_and_are_bounded() {
        let chat = br#"{"id":"chatcmpl-1","model":"gpt-4o","choices":[{"finish_reason":"stop"},{"finish_reason":"length"}]}"#;
        let facts = ResponseFacts::read(chat);
        assert_eq!(facts.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(facts.finish_reasons, ["stop", "length"]);
        let messages = br#"{"id":"msg_1","model":"claude","stop_reason":"tool_use","content":[]}"#;
        assert_eq!(ResponseFacts::read(messages).finish_reasons, ["tool_use"]);
        let responses = br#"{"id":"resp_1","model":"gpt-5","status":"incomplete","output":[]}"#;
        assert_eq!(
            ResponseFacts::read(responses).finish_reasons,
            ["incomplete"]
        );
        assert_eq!(ResponseFacts::read(b"not json"), ResponseFacts::default());
        let huge = serde_json::json!({
            "id": "x".repeat(10_000),
            "choices": vec![serde_json::json!({"finish_reason": "stop"}); 1000],
        });
        let facts = ResponseFacts::read(huge.to_string().as_bytes());
        assert_eq!(facts.id.map(|id| id.len()), Some(MAX_FACT_BYTES));
        assert_eq!(facts.finish_reasons.len(), MAX_FINISH_REASONS);
    }
}

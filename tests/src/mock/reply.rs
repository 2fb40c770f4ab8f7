//! [`Reply`]: what a mock answers to one request, as a test scripts it. The kinds that
//! need a wire format (a healthy answer, an error, a stream of text, a truncated body)
//! are rendered by the provider; raw frames and hangs are the core's own.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::codec::{header_pair, status_code};

/// What a mock answers to one request. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Reply(Arc<Spec>);

#[derive(Clone, Debug)]
struct Spec {
    kind: Kind,
    status: Option<StatusCode>,
    headers: Vec<(HeaderName, HeaderValue)>,
    delay: Duration,
    chunk_delay: Duration,
    disconnect_after: Option<usize>,
    rechunk: Option<usize>,
}

/// A scripted failure, for the provider to render in its error format.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
    /// The error's type where the format has one: OpenAI's `type`, Anthropic's
    /// `error.type`, Bedrock's exception name.
    pub kind: Option<String>,
    /// OpenAI's `code`.
    pub code: Option<String>,
}

/// One tool call of a scripted [`Reply::tool_calls`] answer.
#[derive(Clone, Debug)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// Its arguments: a JSON object for function tools, or a string for a freeform
    /// (custom) tool where the format has them (OpenAI's `custom` tools).
    pub input: Value,
}

/// The answer itself, before the modifiers.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    /// Whatever a healthy provider answers to this request, `mock-*` models included.
    Ok,
    /// This JSON with this status, serialized as the provider does.
    Json(StatusCode, Value),
    /// The provider's error body.
    Error(Failure),
    /// The provider's stream of these text pieces.
    Pieces(Arc<[String]>),
    /// The provider's stream of these JSON chunks (each framed as the provider frames
    /// them).
    Chunks(Arc<[Value]>),
    /// The model's turn ends in these tool calls, whole or streamed as the request asks.
    ToolCalls(Arc<[ToolCall]>),
    /// 200 with the provider's JSON content type and a truncated body.
    Malformed,
    /// Exactly these body frames.
    Raw {
        status: StatusCode,
        content_type: &'static str,
        frames: Arc<[Bytes]>,
    },
    /// Never answer.
    Hang,
}

impl Reply {
    pub(crate) fn new(kind: Kind) -> Reply {
        Reply(Arc::new(Spec {
            kind,
            status: None,
            headers: Vec::new(),
            delay: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            disconnect_after: None,
            rechunk: None,
        }))
    }

    fn map(mut self, f: impl FnOnce(&mut Spec)) -> Reply {
        f(Arc::make_mut(&mut self.0));
        self
    }

    /// What a healthy provider answers to the request, honouring the `mock-*` model
    /// names each provider's module documents.
    pub fn ok() -> Reply {
        Reply::new(Kind::Ok)
    }

    /// `body` as JSON with `status`.
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::new(Kind::Json(status_code(status), body))
    }

    /// The provider's error body with `status` and `message`. `kind` is the error's
    /// type where the format has one (OpenAI's `type`, Anthropic's `error.type`,
    /// Bedrock's exception name); `code` OpenAI's `code`.
    pub fn error(status: u16, message: &str, kind: &str, code: Option<&str>) -> Reply {
        Reply::new(Kind::Error(Failure {
            status: status_code(status),
            message: message.to_owned(),
            kind: Some(kind.to_owned()).filter(|k| !k.is_empty()),
            code: code.map(str::to_owned),
        }))
    }

    /// A streamed answer of these text pieces, in the provider's stream format, each
    /// event its own body frame.
    pub fn stream(pieces: &[&str]) -> Reply {
        Reply::new(Kind::Pieces(
            pieces.iter().map(|p| (*p).to_owned()).collect(),
        ))
    }

    /// A stream of these provider-format chunks (Gemini's `GenerateContentResponse`s),
    /// framed as the request asks.
    pub fn chunks(chunks: Vec<Value>) -> Reply {
        Reply::new(Kind::Chunks(chunks.into()))
    }

    /// The model calls this tool: `input` is the arguments object of a function tool,
    /// or the text of a freeform (custom) tool's input. Rendered as the provider's tool
    /// call (Anthropic's `tool_use` block, OpenAI chat's `tool_calls`, a Responses
    /// `function_call` or `custom_tool_call` item), whole or streamed as the request's
    /// `stream` asks.
    pub fn tool_call(name: &str, input: Value) -> Reply {
        Reply::tool_calls(&[(name, input)])
    }

    /// The model calls these tools, in parallel; see [`Reply::tool_call`].
    pub fn tool_calls(calls: &[(&str, Value)]) -> Reply {
        let calls = calls
            .iter()
            .map(|(name, input)| ToolCall {
                name: (*name).to_owned(),
                input: input.clone(),
            })
            .collect();
        Reply::new(Kind::ToolCalls(calls))
    }

    /// 200 with the provider's JSON content type and a truncated JSON body.
    pub fn malformed() -> Reply {
        Reply::new(Kind::Malformed)
    }

    /// Exactly these body frames, one per poll, with this status and content type.
    pub fn raw(status: u16, content_type: &'static str, frames: Vec<Bytes>) -> Reply {
        Reply::new(Kind::Raw {
            status: status_code(status),
            content_type,
            frames: frames.into(),
        })
    }

    /// A 200 `text/event-stream` body of exactly these frames, for broken streams.
    pub fn raw_stream(frames: &[&str]) -> Reply {
        let frames = frames
            .iter()
            .map(|f| Bytes::copy_from_slice(f.as_bytes()))
            .collect();
        Reply::raw(200, "text/event-stream", frames)
    }

    /// Reads the request and never answers, until the mock is dropped.
    pub fn hang() -> Reply {
        Reply::new(Kind::Hang)
    }

    /// Overrides the status code (also of [`Reply::ok`] and [`Reply::stream`]).
    pub fn with_status(self, status: u16) -> Reply {
        let status = status_code(status);
        self.map(|s| s.status = Some(status))
    }

    /// Adds a response header; the first one of a name replaces the mock's own (e.g.
    /// `content-type`), later ones are appended.
    ///
    /// # Panics
    ///
    /// If `name` or `value` is not a valid header name or value: a broken test script
    /// should fail where it is written.
    pub fn with_header(self, name: &str, value: &str) -> Reply {
        let pair = header_pair(name, value);
        self.map(|s| s.headers.push(pair))
    }

    /// Waits `d` before sending the response headers.
    pub fn with_delay(self, d: Duration) -> Reply {
        self.map(|s| s.delay = d)
    }

    /// Waits `d` before each body frame (each event of a stream; the whole body of a
    /// non-streamed reply).
    pub fn with_chunk_delay(self, d: Duration) -> Reply {
        self.map(|s| s.chunk_delay = d)
    }

    /// Sends the headers and the first `frames` body frames, then fails the body so the
    /// connection is cut mid-response. `0` cuts right after the headers; a
    /// non-streamed reply is one frame.
    pub fn disconnect_after(self, frames: usize) -> Reply {
        self.map(|s| s.disconnect_after = Some(frames))
    }

    /// Re-cuts the body into frames of `size` bytes regardless of event boundaries, as
    /// TCP may deliver them, so decoders must reassemble.
    pub fn with_rechunk(self, size: usize) -> Reply {
        self.map(|s| s.rechunk = Some(size.max(1)))
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.0.kind
    }

    pub(crate) fn status(&self) -> Option<StatusCode> {
        self.0.status
    }

    pub(crate) fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.0.headers
    }

    pub(crate) fn delay(&self) -> Duration {
        self.0.delay
    }

    pub(crate) fn chunk_delay(&self) -> Duration {
        self.0.chunk_delay
    }

    pub(crate) fn cut_after(&self) -> Option<usize> {
        self.0.disconnect_after
    }

    pub(crate) fn rechunk(&self) -> Option<usize> {
        self.0.rechunk
    }
}

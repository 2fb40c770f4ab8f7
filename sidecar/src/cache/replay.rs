//! An answer between its two forms, per client API: the whole body a call without
//! `stream` gets, which is what the cache keeps, and the event stream a call with
//! `stream: true` gets. [`replay`] renders a kept body as the API's stream (so a stream
//! can be answered from the cache whichever kind of call stored it); a [`Collector`]
//! folds the stream a client was sent back into the whole body (so a stream can store
//! its answer). The formats themselves live in `chat`, `messages` and `responses`.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::chat::{self, Kind};
use super::{messages, responses};
use crate::domain::{Endpoint, Usage};
use crate::provider::sse::{Event, SseParser};

/// An answer that is not the shape its API gives it: it is neither replayed nor kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// `body`, a whole answer to a call to `endpoint`, as the stream that API sends; the
/// usage chunk of OpenAI's chat and completions only when `include_usage`.
pub fn replay(endpoint: Endpoint, body: &[u8], include_usage: bool) -> Result<Bytes, Malformed> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(Malformed("an answer that is not a JSON object"));
    };
    replay_object(endpoint, &body, include_usage)
}

fn replay_object(
    endpoint: Endpoint,
    body: &Map<String, Value>,
    include_usage: bool,
) -> Result<Bytes, Malformed> {
    match endpoint {
        Endpoint::ChatCompletions => chat::replay(Kind::Chat, body, include_usage),
        Endpoint::Completions => chat::replay(Kind::Text, body, include_usage),
        Endpoint::Messages => messages::replay(body),
        Endpoint::Responses => responses::replay(body),
        Endpoint::Embeddings => Err(Malformed("embeddings do not stream")),
    }
}

/// How much memory a JSON value takes, roughly: its strings' bytes and 8 per value.
pub fn weight(value: &Value) -> u64 {
    match value {
        Value::String(s) => s.len() as u64 + 8,
        Value::Array(items) => items.iter().map(weight).sum::<u64>() + 8,
        Value::Object(map) => {
            map.iter()
                .map(|(k, v)| k.len() as u64 + weight(v))
                .sum::<u64>()
                + 8
        }
        _ => 8,
    }
}

enum Fold {
    Chat(chat::Collect),
    Messages(messages::Collect),
    Responses(responses::Collect),
}

/// Folds the stream a client is sent into the whole answer, within a byte limit: a
/// stream whose answer grows beyond it, or that is not its API's shape, folds to
/// nothing and is let go at once (the client's stream goes on regardless).
pub struct Collector {
    parser: SseParser,
    events: Vec<Event>,
    fold: Option<Fold>,
    held: u64,
    limit: u64,
}

impl Collector {
    /// A collector for a stream answering `endpoint`, keeping at most `limit` bytes;
    /// `None` for endpoints that do not stream.
    pub fn new(endpoint: Endpoint, limit: u64) -> Option<Self> {
        let fold = match endpoint {
            Endpoint::ChatCompletions => Fold::Chat(chat::Collect::new(Kind::Chat)),
            Endpoint::Completions => Fold::Chat(chat::Collect::new(Kind::Text)),
            Endpoint::Messages => Fold::Messages(messages::Collect::default()),
            Endpoint::Responses => Fold::Responses(responses::Collect::default()),
            Endpoint::Embeddings => return None,
        };
        Some(Collector {
            parser: SseParser::default(),
            events: Vec::new(),
            fold: Some(fold),
            held: 0,
            limit,
        })
    }

    /// Whether the stream can still be kept.
    pub fn alive(&self) -> bool {
        self.fold.is_some()
    }

    /// Folds in the bytes the client was just sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.fold.is_none() {
            return;
        }
        if self.parser.push(bytes, &mut self.events).is_err() {
            self.fold = None;
        }
        self.fold_events();
    }

    /// Folds the events parsed so far.
    fn fold_events(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        if let Some(fold) = self.fold.as_mut() {
            for event in events.drain(..) {
                let added = match fold {
                    Fold::Chat(c) => c.event(&event.data),
                    Fold::Messages(c) => c.event(&event.data),
                    Fold::Responses(c) => c.event(event.event.as_deref(), &event.data),
                };
                self.held = match added {
                    Ok(n) => self.held.saturating_add(n),
                    Err(Malformed(why)) => {
                        tracing::debug!(why, "a streamed answer is not kept in the cache");
                        u64::MAX
                    }
                };
                if self.held > self.limit {
                    break;
                }
            }
        }
        if self.held > self.limit {
            self.fold = None;
        }
        events.clear();
        // The buffer is reused for the next batch.
        self.events = events;
    }

    /// The whole answer of a stream that ended; `usage` is what the upstream reported.
    pub fn finish(mut self, usage: Option<Usage>) -> Option<Bytes> {
        // An event the stream ended without its blank line.
        match self.parser.finish() {
            Ok(Some(event)) => self.events.push(event),
            Ok(None) => {}
            Err(_) => self.fold = None,
        }
        self.fold_events();
        match self.fold? {
            Fold::Chat(c) => c.finish(usage),
            Fold::Messages(c) => c.finish(),
            Fold::Responses(c) => c.finish(),
        }
    }
}

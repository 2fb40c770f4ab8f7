//! Inbound APIs served through chat. A client of Anthropic's Messages API or OpenAI's
//! Responses API reaches a provider that does not speak that API natively (see
//! [`Dialect::native`](super::Dialect::native)) through OpenAI chat: the request is
//! restated as a chat request once per call ([`to_chat`]), the provider's dialect
//! translates that as it translates any chat call, and its chat answer, whole
//! ([`reply`]) or streamed ([`stream`]), is restated in the client's API.
//!
//! Chat carries a few fields beyond OpenAI's so nothing a client needs on its next turn
//! is lost on the way (see `docs/providers.md`):
//! - assistant messages and answers carry `thinking_blocks`
//!   (`[{"type":"thinking","thinking","signature"} | {"type":"redacted_thinking","data"}]`),
//!   and stream deltas carry them one piece at a time, so a provider's signed reasoning
//!   comes back to it on the next turn;
//! - content parts and tools carry `cache_control` through to providers with prompt
//!   caching.

pub mod messages;
pub mod responses;
pub mod text;

use serde_json::{Map, Value};

use super::{StreamTranslator, TranslateError};
use crate::domain::{CallView, Endpoint, Reply};

/// A client's call in another API, restated as an OpenAI chat call.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatCall {
    /// The chat request body (`model` and `stream` as the client sent them).
    pub body: Map<String, Value>,
    /// Hosted tools the client asked for that chat cannot carry (Responses'
    /// `web_search`, `file_search`, ...), by type: the router drops them under
    /// `dropUnsupportedParams` and otherwise refuses the call naming the first.
    pub hosted_tools: Vec<String>,
    /// Fields that only steer the client's own API's service (OpenAI's prompt-cache
    /// routing key and safety id, Codex's client metadata, Anthropic's server-side
    /// context editing): a provider reached through chat has nothing to do with them, so
    /// they are left out, and the router counts them as dropped parameters.
    pub dropped: Vec<&'static str>,
}

/// Restates a call to `endpoint` as a chat call.
pub fn to_chat(endpoint: Endpoint, body: &Map<String, Value>) -> Result<ChatCall, TranslateError> {
    match endpoint {
        Endpoint::Messages => messages::to_chat(body),
        Endpoint::Responses => responses::to_chat(body),
        _ => Ok(ChatCall {
            body: body.clone(),
            ..ChatCall::default()
        }),
    }
}

/// Restates a provider's whole chat answer in the API of `call` (the client's own call),
/// keeping its usage.
pub fn reply(call: &CallView<'_>, chat: Reply) -> Result<Reply, TranslateError> {
    match call.endpoint {
        Endpoint::Messages => messages::reply(call, chat),
        Endpoint::Responses => responses::reply(call, chat),
        _ => Ok(chat),
    }
}

/// Restates a provider's chat stream (the events `inner` writes) in the API of `call`.
pub fn stream(call: &CallView<'_>, inner: Box<dyn StreamTranslator>) -> Box<dyn StreamTranslator> {
    match call.endpoint {
        Endpoint::Messages => Box::new(messages::Stream::new(call, inner)),
        Endpoint::Responses => Box::new(responses::Stream::new(call, inner)),
        _ => inner,
    }
}

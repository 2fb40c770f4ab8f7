//! Anthropic's Messages API over chat: requests to chat, chat answers and streams back to
//! Messages.

use bytes::Bytes;
use serde_json::{Map, Value};

use super::ChatCall;
use crate::domain::{CallView, Reply, Usage};
use crate::provider::{StreamError, StreamTranslator, TranslateError};

/// Restates a Messages request as a chat request.
pub fn to_chat(body: &Map<String, Value>) -> Result<ChatCall, TranslateError> {
    let _ = body;
    Err(TranslateError::invalid(
        "model",
        "this model's provider cannot serve the Messages API yet",
    ))
}

/// Restates a whole chat answer as a Messages answer.
pub fn reply(call: &CallView<'_>, chat: Reply) -> Result<Reply, TranslateError> {
    let _ = call;
    Ok(chat)
}

/// A chat stream restated as Messages events.
pub struct Stream {
    inner: Box<dyn StreamTranslator>,
}

impl Stream {
    /// Wraps the provider's chat stream translator.
    pub fn new(call: &CallView<'_>, inner: Box<dyn StreamTranslator>) -> Self {
        let _ = call;
        Stream { inner }
    }
}

impl StreamTranslator for Stream {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        self.inner.feed(chunk)
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        self.inner.finish()
    }

    fn usage(&self) -> Option<Usage> {
        self.inner.usage()
    }
}

//! The driver shared by the translators of SSE streams (Anthropic, Cohere, Gemini): it
//! owns the SSE parser, the parsed events and the output buffer, and hands each event
//! to the provider's [`SseHandler`], so a provider writes only what its events mean.

use bytes::{Bytes, BytesMut};

use crate::domain::Usage;
use crate::provider::openai_wire::take;
use crate::provider::sse::{Event, SseParser};
use crate::provider::{StreamError, StreamTranslator};

/// What one provider makes of its stream's events.
pub trait SseHandler: Send + Sync + 'static {
    /// Translates one event, appending OpenAI events to `out`.
    fn handle(&mut self, event: &Event, out: &mut BytesMut) -> Result<(), StreamError>;

    /// What a whole stream ends with, for the error when one is cut off before it.
    const LAST: &'static str;

    /// Whether the stream was whole: what it ends with came.
    fn complete(&self) -> bool;

    /// The upstream ended a whole stream: appends what ends the OpenAI stream (usage
    /// chunk, `[DONE]`) if the events have not.
    fn end(&mut self, out: &mut BytesMut) {
        let _ = out;
    }

    /// The usage the stream reported, once it is complete.
    fn usage(&self) -> Option<Usage>;

    /// The whole answer, for the APIs whose answers are kept (see
    /// [`StreamTranslator::answer`]).
    fn answer(&mut self) -> Option<Bytes> {
        None
    }

    /// See [`StreamTranslator::next_sequence_number`].
    fn next_sequence_number(&self) -> Option<u64> {
        None
    }
}

/// A [`StreamTranslator`] for an SSE upstream, translating with `H`.
pub struct SseTranslator<H> {
    parser: SseParser,
    /// Parsed events, kept between chunks so the buffer is reused.
    events: Vec<Event>,
    out: BytesMut,
    handler: H,
}

impl<H: SseHandler> SseTranslator<H> {
    /// A translator handing events to `handler`.
    pub fn new(handler: H) -> Self {
        SseTranslator {
            parser: SseParser::default(),
            events: Vec::new(),
            out: BytesMut::new(),
            handler,
        }
    }

    fn drain(&mut self) -> Result<(), StreamError> {
        let result = self
            .events
            .iter()
            .try_for_each(|event| self.handler.handle(event, &mut self.out));
        self.events.clear();
        result
    }
}

impl<H: SseHandler> StreamTranslator for SseTranslator<H> {
    fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, StreamError> {
        self.parser
            .push(&chunk, &mut self.events)
            .map_err(StreamError::from)?;
        self.drain()?;
        Ok(take(&mut self.out))
    }

    fn finish(&mut self) -> Result<Option<Bytes>, StreamError> {
        if let Some(event) = self.parser.finish().map_err(StreamError::from)? {
            self.events.push(event);
        }
        self.drain()?;
        if !self.handler.complete() {
            return Err(StreamError::malformed(format!(
                "the stream ended before {}",
                H::LAST
            )));
        }
        self.handler.end(&mut self.out);
        Ok(take(&mut self.out))
    }

    fn usage(&self) -> Option<Usage> {
        self.handler.usage()
    }

    fn answer(&mut self) -> Option<Bytes> {
        self.handler.answer()
    }

    fn next_sequence_number(&self) -> Option<u64> {
        self.handler.next_sequence_number()
    }
}

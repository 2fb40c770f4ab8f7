//! Streaming relay: passes an upstream stream to the client event by event as it
//! arrives, through the provider's [`StreamTranslator`] (a pass-through for OpenAI-style
//! upstreams). Only whole events are forwarded, so if the upstream fails mid-stream the
//! client gets a well-formed `data: {"error":...}` event and a clean end, never half an
//! event. The total deadline keeps running while the stream flows: it is checked on
//! every poll, not only when the upstream is idle, so an upstream that never pauses
//! (a flood, or a drip of bytes that never completes an event) still hits it.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::time::{Instant, Sleep};

use crate::config::snapshot::CooldownSpec;
use crate::domain::{ApiError, ErrorKind, Usage};
use crate::provider::{StreamError, StreamTranslator};
use crate::router::state::{DeploymentState, InFlight};
use crate::telemetry::spans::{ResponseFacts, StreamFacts};
use crate::upstream::UpstreamBody;

/// How a relayed stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream finished it.
    Complete,
    /// The upstream failed or timed out mid-stream; the client got an error event.
    Failed,
    /// The client went away first.
    ClientGone,
}

/// Called once when the stream ends, with the usage the stream reported, for metering,
/// metrics and logs; for a stream that completed, the whole answer it amounted to where
/// the client's API keeps answers (see [`StreamTranslator::answer`]); and what its
/// events said of the answer, if asked for ([`Relay::watch_facts`]).
pub type OnEnd =
    Box<dyn FnOnce(StreamEnd, Option<Usage>, Option<Bytes>, Option<ResponseFacts>) + Send + Sync>;

/// Renders the error event a stream that fails mid-way ends with, in the client's API,
/// with the sequence number it takes where the API numbers its events (see
/// [`StreamTranslator::next_sequence_number`]).
pub type RenderError = fn(&ApiError, Option<u64>) -> Bytes;

/// An upstream SSE stream being relayed to a client.
pub struct Relay {
    upstream: UpstreamBody,
    translator: Box<dyn StreamTranslator>,
    /// The first event, read before the response started so failures could fall back.
    first: Option<Bytes>,
    /// Set when the first event was handed out: the next poll yields once (see
    /// `poll_frame`).
    yield_once: bool,
    deadline: Pin<Box<Sleep>>,
    done: bool,
    /// How the stream ended, once it did.
    ended: Option<StreamEnd>,
    state: Arc<DeploymentState>,
    cooldown: CooldownSpec,
    on_end: Option<OnEnd>,
    render: Option<RenderError>,
    /// What the events say of the answer, gathered for a span that records.
    facts: Option<Box<StreamFacts>>,
    /// What ended the upstream behind the last batch, delivered on the next poll.
    held: Option<Held>,
    /// Events read but not yet handed out, while the upstream's connection gets a turn
    /// to deliver what it already holds (see `poll_frame`).
    gathered: Batch,
    /// The size `gathered` had when this task last yielded to gather more.
    gathered_at_yield: Option<usize>,
    /// Turns in a row that brought nothing new.
    idle_turns: u8,
    _in_flight: InFlight,
}

/// Largest batch of events sent as one frame.
const COALESCE_BYTES: usize = 64 * 1024;
/// Turns without a new event after which gathered events go out. hyper's client
/// connection needs two turns to hand over the next chunk it holds (one to see the
/// body wants more, one to send it).
const IDLE_TURNS: u8 = 2;
/// Most upstream bytes read in one poll: an upstream that is always ready and whose
/// bytes yield no event (pings, comments) must not keep the task from yielding.
const READ_PER_POLL: usize = 1024 * 1024;

/// The upstream's end, held back until the events before it are sent.
enum Held {
    Failed(StreamError),
    Ended,
}

/// Events gathered in one poll; a single batch is passed on without copying.
#[derive(Default)]
struct Batch {
    one: Option<Bytes>,
    many: bytes::BytesMut,
}

impl Batch {
    fn push(&mut self, events: Bytes) {
        match self.one.take() {
            None if self.many.is_empty() => self.one = Some(events),
            Some(first) => {
                self.many.extend_from_slice(&first);
                self.many.extend_from_slice(&events);
            }
            None => self.many.extend_from_slice(&events),
        }
    }

    fn len(&self) -> usize {
        self.one.as_ref().map_or(self.many.len(), Bytes::len)
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take(&mut self) -> Bytes {
        match self.one.take() {
            Some(one) => one,
            None => self.many.split().freeze(),
        }
    }
}

/// The stream outlived the model's total timeout.
fn timeout() -> StreamError {
    StreamError {
        message: "The stream exceeded the model's total timeout.".into(),
        code: "upstream_timeout",
    }
}

/// The stream failed before any event arrived.
#[derive(Debug)]
pub enum EarlyEnd {
    /// The upstream body errored.
    Error(String),
    /// The upstream ended without sending an event.
    Empty,
}

impl Relay {
    /// Wraps an upstream body; `deadline` bounds the whole stream.
    pub fn new(
        upstream: UpstreamBody,
        translator: Box<dyn StreamTranslator>,
        deadline: Instant,
        in_flight: InFlight,
        state: Arc<DeploymentState>,
        cooldown: CooldownSpec,
    ) -> Self {
        Relay {
            upstream,
            translator,
            first: None,
            yield_once: false,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            done: false,
            ended: None,
            state,
            cooldown,
            on_end: None,
            facts: None,
            render: None,
            held: None,
            gathered: Batch::default(),
            gathered_at_yield: None,
            idle_turns: 0,
            _in_flight: in_flight,
        }
    }

    /// Sets the end-of-stream callback, and how a mid-stream failure is told to the
    /// client.
    pub fn deliver(&mut self, on_end: OnEnd, render: RenderError) {
        self.on_end = Some(on_end);
        self.render = Some(render);
    }

    /// Gathers what the events say of the answer (id, model, finish reasons) for the
    /// end's callback: a byte search of each batch, paid only when asked for.
    pub fn watch_facts(&mut self) {
        let mut facts = StreamFacts::default();
        if let Some(first) = &self.first {
            facts.scan(first);
        }
        self.facts = Some(Box::new(facts));
    }

    /// Events the translator made, on their way to the client.
    fn seen(&mut self, events: &Bytes) {
        if let Some(facts) = &mut self.facts {
            facts.scan(events);
        }
    }

    /// Reads until the first whole event and keeps it for the client. Callers bound this
    /// with the time-to-first-token timeout.
    pub async fn first_event(&mut self) -> Result<(), EarlyEnd> {
        use http_body_util::BodyExt;
        loop {
            // Cooperative: an always-ready upstream must not starve the time-to-first-token
            // timer wrapped around this future.
            tokio::task::consume_budget().await;
            match self.upstream.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        match self.translator.feed(data) {
                            Ok(Some(events)) => {
                                self.first = Some(events);
                                return Ok(());
                            }
                            Ok(None) => {}
                            Err(err) => return Err(EarlyEnd::Error(err.message)),
                        }
                    }
                }
                Some(Err(err)) => return Err(EarlyEnd::Error(err.to_string())),
                None => {
                    return match self.translator.finish() {
                        Ok(Some(events)) => {
                            self.first = Some(events);
                            self.done = true;
                            Ok(())
                        }
                        Ok(None) => Err(EarlyEnd::Empty),
                        Err(err) => Err(EarlyEnd::Error(err.message)),
                    };
                }
            }
        }
    }

    /// How the stream ended, once it did: set before its last frame is handed out.
    pub fn ended(&self) -> Option<StreamEnd> {
        self.ended
    }

    /// The usage the stream reported so far (all of it once it ended).
    pub fn usage(&self) -> Option<Usage> {
        self.translator.usage()
    }

    fn finish(&mut self, end: StreamEnd) {
        self.done = true;
        self.ended.get_or_insert(end);
        if let Some(on_end) = self.on_end.take() {
            let answer = match end {
                StreamEnd::Complete => self.translator.answer(),
                _ => None,
            };
            let facts = self.facts.take().map(|f| f.into_facts());
            on_end(end, self.translator.usage(), answer, facts);
        }
    }

    /// The upstream ended: the translator's last events, and the end.
    fn end(&mut self) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        match self.translator.finish() {
            Ok(rest) => {
                if let Some(rest) = &rest {
                    self.seen(rest);
                }
                self.finish(StreamEnd::Complete);
                Poll::Ready(rest.map(|b| Ok(Frame::data(b))))
            }
            Err(err) => self.fail(err),
        }
    }

    fn fail(
        &mut self,
        error: StreamError,
    ) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        tracing::warn!(code = error.code, "upstream stream failed mid-way");
        let error = ApiError::new(
            http::StatusCode::BAD_GATEWAY,
            ErrorKind::Server,
            error.message,
        )
        .with_code(error.code);
        self.state.record_failure(Instant::now(), &self.cooldown);
        self.finish(StreamEnd::Failed);
        match self.render {
            Some(render) => {
                let event = render(&error, self.translator.next_sequence_number());
                Poll::Ready(Some(Ok(Frame::data(event))))
            }
            None => Poll::Ready(None),
        }
    }

    fn timed_out(&mut self) -> Poll<Option<Result<Frame<Bytes>, std::convert::Infallible>>> {
        self.fail(timeout())
    }
}

impl Body for Relay {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            if this.done {
                // The whole stream was its first event: it ends with it, as hyper may
                // not poll a body again once it says it has ended.
                this.finish(StreamEnd::Complete);
            } else {
                this.yield_once = true;
            }
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if std::mem::take(&mut this.yield_once) {
            // hyper keeps polling a body that is ready and writes only when it is not
            // (or 16 frames are queued), so a burst of events right behind the first
            // would hold the headers and the first event back: pending once makes it
            // flush them now. Time to first token must not wait for what follows.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.done {
            this.finish(StreamEnd::Complete);
            return Poll::Ready(None);
        }
        match this.held.take() {
            Some(Held::Failed(err)) => return this.fail(err),
            Some(Held::Ended) => return this.end(),
            None => {}
        }
        // The deadline holds even while bytes keep coming; events already read go out
        // before the error.
        if this.deadline.as_mut().poll(cx).is_ready() {
            if this.gathered.is_empty() {
                return this.timed_out();
            }
            this.gathered_at_yield = None;
            this.held = Some(Held::Failed(timeout()));
            return Poll::Ready(Some(Ok(Frame::data(this.gathered.take()))));
        }
        // Everything the upstream already delivered goes out as one frame: one write per
        // burst instead of one per upstream chunk.
        let mut batch = std::mem::take(&mut this.gathered);
        let yielded_at = this.gathered_at_yield.take();
        let mut read = 0usize;
        loop {
            if read >= READ_PER_POLL {
                if batch.is_empty() {
                    // Let other tasks (and the deadline) run, then read on.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                break;
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Empty frames count too: endless empty DATA frames must yield as well.
                    read = read.saturating_add(frame.data_ref().map_or(1, |d| d.len().max(1)));
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match this.translator.feed(data) {
                        Ok(Some(events)) => {
                            this.seen(&events);
                            batch.push(events);
                            if batch.len() >= COALESCE_BYTES {
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(err) if batch.is_empty() => return this.fail(err),
                        Err(err) => {
                            this.held = Some(Held::Failed(err));
                            break;
                        }
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    let err = StreamError::upstream(format!(
                        "The upstream stream failed before it was complete: {err}"
                    ));
                    if batch.is_empty() {
                        return this.fail(err);
                    }
                    this.held = Some(Held::Failed(err));
                    break;
                }
                Poll::Ready(None) if batch.is_empty() => return this.end(),
                Poll::Ready(None) => {
                    this.held = Some(Held::Ended);
                    break;
                }
                Poll::Pending if !batch.is_empty() => {
                    // hyper's client hands a body over one chunk at a time, so a burst
                    // of events the upstream connection already holds arrives here one
                    // event per poll. Give that connection's task its turns (deferred
                    // wake-ups, not a timer) before writing, so a burst leaves as one
                    // write; once [`IDLE_TURNS`] turns in a row bring nothing new, what
                    // is here goes out: a stream whose events come apart is held back
                    // by that many scheduling rounds, never by a clock.
                    if yielded_at.is_some_and(|at| batch.len() == at) {
                        this.idle_turns = this.idle_turns.saturating_add(1);
                    } else {
                        this.idle_turns = 0;
                    }
                    if this.idle_turns < IDLE_TURNS && batch.len() < COALESCE_BYTES {
                        this.gathered_at_yield = Some(batch.len());
                        this.gathered = batch;
                        let _ = std::pin::pin!(tokio::task::yield_now()).poll(cx);
                        return Poll::Pending;
                    }
                    break;
                }
                Poll::Pending => {
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Some(Ok(Frame::data(batch.take()))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.first.is_none()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Dropped before the end: the client disconnected (or the server shut down).
        if !self.done {
            self.finish(StreamEnd::ClientGone);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::upstream::BoxError;

    fn relay(frames: Vec<Result<&'static str, &'static str>>) -> Relay {
        let stream = futures_util::stream::iter(frames.into_iter().map(|f| {
            f.map(|s| Frame::data(Bytes::from_static(s.as_bytes())))
                .map_err(|e| -> BoxError { e.into() })
        }));
        let state = Arc::new(DeploymentState::default());
        let mut relay = Relay::new(
            StreamBody::new(stream).boxed(),
            Box::new(crate::provider::openai::SsePassthrough::new(false)),
            Instant::now() + Duration::from_secs(60),
            state.start(),
            state,
            CooldownSpec::default(),
        );
        relay.deliver(Box::new(|_, _, _, _| {}), render);
        relay
    }

    /// The error event, as a client API would render it.
    fn render(error: &ApiError, _: Option<u64>) -> Bytes {
        let code = error.code.as_deref().unwrap_or("");
        Bytes::from(format!("data: {{\"error\":{{\"code\":\"{code}\"}}}}\n\n"))
    }

    async fn collect(mut r: Relay) -> String {
        r.first_event().await.unwrap();
        let bytes = r.collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn reassembles_events_split_across_frames() {
        let r = relay(vec![
            Ok("data: {\"a\""),
            Ok(":1}\n\ndata: {\"b\":2}\n"),
            Ok("\ndata: [DONE]\n\n"),
        ]);
        assert_eq!(
            collect(r).await,
            "data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
        );
    }

    #[tokio::test]
    async fn mid_stream_failure_drops_the_partial_event_and_sends_an_error_event() {
        let r = relay(vec![Ok("data: {\"a\":1}\n\ndata: {\"tru"), Err("reset")]);
        let text = collect(r).await;
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events[0], "data: {\"a\":1}");
        let error: serde_json::Value = serde_json::from_str(&events[1][6..]).unwrap();
        assert_eq!(error["error"]["code"], "upstream_stream_error");
        assert_eq!(events.len(), 2);
    }

    #[tokio::test]
    async fn events_already_delivered_go_out_together_and_before_a_failure() {
        let mut r = relay(vec![
            Ok("data: 1\n\n"),
            Ok("data: 2\n\n"),
            Ok("data: 3\n\n"),
            Err("reset"),
        ]);
        r.first_event().await.unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = r.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(frames[0], "data: 1\n\n");
        assert_eq!(
            frames[1], "data: 2\n\ndata: 3\n\n",
            "one write for the burst"
        );
        assert!(
            std::str::from_utf8(&frames[2])
                .unwrap()
                .contains("upstream_stream_error")
        );
        assert_eq!(frames.len(), 3);
    }

    /// An upstream body like hyper's client body: each frame is handed over only after
    /// two pending polls (the connection's task has it, and needs two turns once the
    /// reader waits), or, when `apart` is set, after a real pause.
    fn handed_over(frames: &[&'static str], apart: Option<Duration>) -> Relay {
        handed_over_within(frames, apart, Duration::from_secs(60))
    }

    fn handed_over_within(
        frames: &[&'static str],
        apart: Option<Duration>,
        total: Duration,
    ) -> Relay {
        let mut frames: std::collections::VecDeque<Bytes> = frames
            .iter()
            .map(|f| Bytes::from_static(f.as_bytes()))
            .collect();
        let mut turn = 0u8;
        let mut pause: Option<Pin<Box<Sleep>>> = None;
        let stream = futures_util::stream::poll_fn(move |cx| {
            if let Some(apart) = apart {
                let sleep = pause.get_or_insert_with(|| Box::pin(tokio::time::sleep(apart)));
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                pause = None;
            } else if turn < IDLE_TURNS {
                // Like hyper's connection task: two turns before each chunk.
                turn += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            } else {
                turn = 0;
            }
            Poll::Ready(
                frames
                    .pop_front()
                    .map(|f| Ok::<_, BoxError>(Frame::data(f))),
            )
        });
        let state = Arc::new(DeploymentState::default());
        let mut relay = Relay::new(
            StreamBody::new(stream).boxed(),
            Box::new(crate::provider::openai::SsePassthrough::new(false)),
            Instant::now() + total,
            state.start(),
            state,
            CooldownSpec::default(),
        );
        relay.deliver(Box::new(|_, _, _, _| {}), render);
        relay
    }

    async fn frames_of(mut r: Relay) -> Vec<Bytes> {
        r.first_event().await.unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = r.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        frames
    }

    const EVENTS: [&str; 5] = [
        "data: 1\n\n",
        "data: 2\n\n",
        "data: 3\n\n",
        "data: 4\n\n",
        "data: [DONE]\n\n",
    ];

    #[tokio::test(start_paused = true)]
    async fn events_gathered_when_the_deadline_fires_go_out_before_the_error() {
        let mut r = handed_over_within(&EVENTS, None, Duration::from_secs(1));
        r.first_event().await.unwrap();
        let mut frames: Vec<Bytes> = Vec::new();
        // Poll until an event waits in the gathered batch, then let the deadline pass.
        for _ in 0..20 {
            let polled = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut r).poll_frame(cx)));
            if let Poll::Ready(Some(frame)) = polled.await {
                frames.push(frame.unwrap().into_data().unwrap());
            }
            if !r.gathered.is_empty() {
                break;
            }
        }
        assert!(!r.gathered.is_empty(), "an event is being gathered");
        tokio::time::advance(Duration::from_secs(2)).await;
        while let Some(frame) = r.frame().await {
            frames.push(frame.unwrap().into_data().unwrap());
        }
        assert_eq!(frames[0], "data: 1\n\n");
        assert_eq!(frames[1], "data: 2\n\n", "the gathered event is not lost");
        assert!(
            std::str::from_utf8(&frames[2])
                .unwrap()
                .contains("upstream_timeout"),
            "{frames:?}"
        );
        assert_eq!(frames.len(), 3);
    }

    #[tokio::test]
    async fn a_burst_handed_over_chunk_by_chunk_leaves_in_one_write() {
        let frames = frames_of(handed_over(&EVENTS, None)).await;
        assert_eq!(frames[0], "data: 1\n\n", "the first event alone, at once");
        assert_eq!(
            frames[1],
            "data: 2\n\ndata: 3\n\ndata: 4\n\ndata: [DONE]\n\n"
        );
        assert_eq!(frames.len(), 2, "{frames:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn events_that_come_apart_go_out_apart() {
        let started = Instant::now();
        let mut r = handed_over(&EVENTS, Some(Duration::from_millis(20)));
        r.first_event().await.unwrap();
        let mut at = Vec::new();
        while let Some(frame) = r.frame().await {
            at.push((
                started.elapsed().as_millis(),
                frame.unwrap().into_data().unwrap(),
            ));
        }
        let expected: Vec<(u128, Bytes)> = (20..=100)
            .step_by(20)
            .zip(EVENTS)
            .map(|(ms, e)| (ms, Bytes::from_static(e.as_bytes())))
            .collect();
        assert_eq!(at, expected, "each event leaves when it arrives, alone");
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_holds_against_an_upstream_that_never_pauses() {
        // Always ready, never idle: the deadline cannot rely on the upstream pausing.
        let flood = futures_util::stream::repeat_with(|| {
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"data: {}\n\n")))
        });
        let state = Arc::new(DeploymentState::default());
        let mut r = Relay::new(
            StreamBody::new(flood).boxed(),
            Box::new(crate::provider::openai::SsePassthrough::new(false)),
            Instant::now() + Duration::from_secs(5),
            state.start(),
            state,
            CooldownSpec::default(),
        );
        r.deliver(Box::new(|_, _, _, _| {}), render);
        r.first_event().await.unwrap();
        for _ in 0..100 {
            let frame = r.frame().await.unwrap().unwrap().into_data().unwrap();
            if std::str::from_utf8(&frame)
                .unwrap()
                .contains("upstream_timeout")
            {
                assert!(r.frame().await.is_none(), "the stream ends after the error");
                return;
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        panic!("the total timeout never ended the stream");
    }

    #[tokio::test]
    async fn failure_before_the_first_event_is_reported_to_the_caller() {
        let mut r = relay(vec![Ok("data: {\"half"), Err("reset")]);
        assert!(matches!(r.first_event().await, Err(EarlyEnd::Error(_))));
        let mut empty = relay(vec![]);
        assert!(matches!(empty.first_event().await, Err(EarlyEnd::Empty)));
    }

    #[tokio::test]
    async fn a_stream_that_is_all_its_first_event_ends_with_it() {
        // The upstream ends before a blank line closes its one event: the translator
        // releases it at the end, so the first event is the whole stream.
        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = relay(vec![Ok("data: 1\n")]);
        r.deliver(Box::new(move |end, _, _, _| tx.send(end).unwrap()), render);
        r.first_event().await.unwrap();
        let frame = r.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(frame, "data: 1\n\n");
        assert!(r.is_end_stream());
        assert_eq!(r.ended(), Some(StreamEnd::Complete));
        assert_eq!(
            rx.try_recv().unwrap(),
            StreamEnd::Complete,
            "ended before hyper would poll again"
        );
    }

    #[tokio::test]
    async fn reports_how_the_stream_ended() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = relay(vec![Ok("data: 1\n\n"), Ok("data: 2\n\n")]);
        r.deliver(Box::new(move |end, _, _, _| tx.send(end).unwrap()), render);
        r.first_event().await.unwrap();
        drop(r);
        assert_eq!(rx.recv().unwrap(), StreamEnd::ClientGone);

        let (tx, rx) = std::sync::mpsc::channel();
        let mut r = relay(vec![Ok("data: 1\n\n")]);
        r.deliver(Box::new(move |end, _, _, _| tx.send(end).unwrap()), render);
        collect(r).await;
        assert_eq!(rx.recv().unwrap(), StreamEnd::Complete);
    }
}

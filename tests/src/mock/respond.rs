//! From a [`Resolved`] answer and the script's modifiers to a hyper response: the one
//! place bodies are built, whole or dripped frame by frame (with delays, re-cut, or
//! cut off part-way).

use std::convert::Infallible;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use super::codec::header_pair;
use super::reply::Reply;

/// The body type every mock response uses.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// An answer worked out for one request, before the script's modifiers.
#[derive(Debug)]
pub struct Resolved {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) frames: Vec<Bytes>,
    /// Sent as one body (JSON) rather than frame by frame, unless the script asks for
    /// delays or a cut.
    pub(crate) whole: bool,
    /// Cut the connection after this many frames.
    pub(crate) cut_after: Option<usize>,
    /// Waited before the headers (`mock-slow-<ms>`).
    pub(crate) delay: Duration,
}

impl Resolved {
    /// A whole body.
    pub fn whole(status: StatusCode, content_type: &'static str, body: Bytes) -> Resolved {
        Resolved {
            status,
            content_type,
            headers: Vec::new(),
            frames: vec![body],
            whole: true,
            cut_after: None,
            delay: Duration::ZERO,
        }
    }

    /// A 200 body of these frames, one per poll.
    pub fn frames(content_type: &'static str, frames: Vec<Bytes>) -> Resolved {
        Resolved {
            status: StatusCode::OK,
            content_type,
            headers: Vec::new(),
            frames,
            whole: false,
            cut_after: None,
            delay: Duration::ZERO,
        }
    }

    /// What a mock says to a reply kind it has no format for: a broken test script.
    pub(crate) fn unsupported(provider: &str, reply: &Reply) -> Resolved {
        let text = format!("the {provider} mock cannot render {:?}", reply.kind());
        let status = StatusCode::NOT_IMPLEMENTED;
        Resolved::whole(status, "text/plain", Bytes::from(text))
    }

    /// Answers with `status` instead.
    pub fn with_status(mut self, status: StatusCode) -> Resolved {
        self.status = status;
        self
    }

    /// Adds a header.
    ///
    /// # Panics
    ///
    /// If `name` or `value` is not a valid header name or value.
    pub fn with_header(mut self, name: &str, value: &str) -> Resolved {
        self.headers.push(header_pair(name, value));
        self
    }

    /// Waits `delay` before the headers.
    pub fn with_delay(mut self, delay: Duration) -> Resolved {
        self.delay = delay;
        self
    }

    /// Cuts the connection after `frames` body frames.
    pub fn cut_after(mut self, frames: usize) -> Resolved {
        self.cut_after = Some(frames);
        self
    }
}

/// Applies the script's modifiers: its status, its headers over the mock's own (the
/// first of a name replaces the mock's, later ones are appended), frame delays, re-cut
/// frames and cuts.
pub(crate) fn respond(
    reply: Option<&Reply>,
    resolved: Resolved,
    stamp: Vec<(HeaderName, HeaderValue)>,
) -> Response<Body> {
    let script: &[(HeaderName, HeaderValue)] = reply.map_or(&[], Reply::headers);
    let status = reply.and_then(Reply::status).unwrap_or(resolved.status);
    let chunk_delay = reply.map_or(Duration::ZERO, Reply::chunk_delay);
    let cut_after = reply.and_then(Reply::cut_after).or(resolved.cut_after);
    let mut frames = resolved.frames;
    if let Some(size) = reply.and_then(Reply::rechunk) {
        let all = frames.concat();
        frames = all.chunks(size).map(Bytes::copy_from_slice).collect();
    }
    let body = if resolved.whole && chunk_delay.is_zero() && cut_after.is_none() {
        whole(frames.concat().into())
    } else {
        drip(frames, chunk_delay, cut_after)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let overridden = |name: &HeaderName| script.iter().any(|(n, _)| n == name);
    if !overridden(&CONTENT_TYPE) {
        let value = HeaderValue::from_static(resolved.content_type);
        headers.insert(CONTENT_TYPE, value);
    }
    for (name, value) in stamp.into_iter().chain(resolved.headers) {
        if !overridden(&name) {
            headers.append(name, value);
        }
    }
    for (name, value) in script {
        headers.append(name.clone(), value.clone());
    }
    response
}

/// A whole body in one frame.
pub(crate) fn whole(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// A body that sends `frames` one per poll, waiting `delay` before each, and fails
/// after `cut_after` of them (even if that is more frames than there are).
pub(crate) fn drip(frames: Vec<Bytes>, delay: Duration, cut_after: Option<usize>) -> Body {
    struct Drip {
        frames: std::vec::IntoIter<Bytes>,
        sent: usize,
        delay: Duration,
        cut_after: Option<usize>,
        finished: bool,
    }
    let state = Drip {
        frames: frames.into_iter(),
        sent: 0,
        delay,
        cut_after,
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, |mut d| async move {
        if d.finished {
            return None;
        }
        let due = d.cut_after.is_some_and(|n| d.sent >= n);
        let next = if due { None } else { d.frames.next() };
        let Some(bytes) = next else {
            // Out of frames: a clean end, unless a cut was asked for.
            d.finished = true;
            d.cut_after?;
            // hyper discards what it has not flushed when the body fails; one pending
            // poll makes it flush the headers and frames so far, so the client sees
            // them before the cut.
            tokio::task::yield_now().await;
            let cut = io::Error::new(io::ErrorKind::ConnectionAborted, "mock: disconnect");
            return Some((Err(cut), d));
        };
        if !d.delay.is_zero() {
            tokio::time::sleep(d.delay).await;
        }
        d.sent += 1;
        Some((Ok(Frame::data(bytes)), d))
    });
    StreamBody::new(stream).boxed_unsync()
}

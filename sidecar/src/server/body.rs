//! The response body type of the API server: a whole buffer or a relayed stream (kept in
//! the response cache as it goes, for models with one).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use super::cached::Storing;
use crate::router::relay::Relay;

/// A response body.
pub enum ProxyBody {
    /// Known in full.
    Full(Full<Bytes>),
    /// Streamed from upstream.
    Stream(Box<Relay>),
    /// Streamed from upstream, and kept in the response cache once complete.
    Storing(Box<Storing>),
}

impl ProxyBody {
    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Full::new(bytes.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ProxyBody::Full(full) => Pin::new(full).poll_frame(cx),
            ProxyBody::Stream(relay) => Pin::new(relay.as_mut()).poll_frame(cx),
            ProxyBody::Storing(storing) => Pin::new(storing.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(full) => full.is_end_stream(),
            ProxyBody::Stream(relay) => relay.is_end_stream(),
            ProxyBody::Storing(storing) => storing.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(full) => full.size_hint(),
            ProxyBody::Stream(relay) => relay.size_hint(),
            ProxyBody::Storing(storing) => storing.size_hint(),
        }
    }
}

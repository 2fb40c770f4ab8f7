//! How requests reach an upstream: a [`Transport`] turns a ready-made HTTP request into
//! a streaming response. The real one is a pooled hyper client, one per set of trusted
//! CAs ([`tls`], [`transports`], [`ca_files`]); the demo provider and tests supply
//! in-process ones. Images a client names by URL are fetched by [`fetch`], behind the
//! SSRF [`guard`].

pub mod ca_files;
mod client;
pub mod fetch;
pub mod guard;
pub mod tls;
pub mod transports;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::Full;
use http_body_util::combinators::BoxBody;

pub use client::HttpTransport;

/// Errors a response body may yield mid-stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming upstream response body.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// A request ready to send upstream.
pub type UpstreamRequest = http::Request<Full<Bytes>>;

/// The future a transport returns.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<UpstreamBody>, TransportError>> + Send>>;

/// Sends requests upstream.
pub trait Transport: Send + Sync + 'static {
    /// Sends one request; the future resolves once response headers arrive.
    fn send(&self, request: UpstreamRequest) -> ResponseFuture;
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made (refused, DNS, TLS handshake).
    #[error("connect error: {0}")]
    Connect(String),
    /// The connection failed after it was made.
    #[error("upstream connection failed: {0}")]
    Io(String),
}

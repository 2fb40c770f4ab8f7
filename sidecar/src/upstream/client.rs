//! The pooled upstream HTTP client: hyper with rustls, HTTP/1.1 and HTTP/2 by ALPN,
//! idle connections reused and expired by a timer. One client per [`Trust`]: the
//! upstreams that trust the same CAs share its pool (see [`super::transports`]).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::tls::{Trust, describe_failure};
use super::{ResponseFuture, Transport, TransportError, UpstreamRequest};

type HttpsConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The pooled client of the upstreams that trust the same CAs.
#[derive(Clone)]
pub struct HttpTransport {
    client: Client<HttpsConnector, http_body_util::Full<bytes::Bytes>>,
    /// What the client trusts, in words, for TLS failures.
    trusted: Arc<str>,
}

impl HttpTransport {
    /// Builds the client with Mozilla's root certificates (no system store needed in
    /// distroless images).
    pub fn new() -> Result<Self, rustls::Error> {
        Self::with_trust(&Trust::default())
    }

    /// Builds the client trusting the web roots and what `trust` adds.
    pub fn with_trust(trust: &Trust) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(trust.client_config()?)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(HttpTransport {
            client,
            trusted: trust.summary().into(),
        })
    }
}

impl Transport for HttpTransport {
    fn send(&self, request: UpstreamRequest) -> ResponseFuture {
        let fut = self.client.request(request);
        let trusted = self.trusted.clone();
        Box::pin(async move {
            match fut.await {
                Ok(response) => Ok(response.map(|body| body.map_err(Into::into).boxed())),
                Err(err) if err.is_connect() => Err(TransportError::Connect(
                    // A refused certificate says which and what to do, not only "Connect".
                    describe_failure(&err, &trusted).unwrap_or_else(|| error_chain(&err)),
                )),
                Err(err) => Err(TransportError::Io(error_chain(&err))),
            }
        })
    }
}

/// The error and its causes on one line; hyper's top-level message alone is vague.
pub(super) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

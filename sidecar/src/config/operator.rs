//! The operator as the config source: a long-lived TLS stream of snapshots (see
//! [`push`](super::push)), reconnected with backoff. While disconnected the sidecar keeps
//! serving its last good snapshot (fail static); a reconnect resumes from the version it
//! has, so an unchanged config is not sent again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::watch;

use super::Snapshot;
use super::push::{Message, PATH, SILENCE_SECS};

/// Where and how to reach the operator.
#[derive(Clone, Debug)]
pub struct OperatorSource {
    /// Base URL, e.g. `https://llmesh-operator.llmesh-system.svc:8443`.
    pub url: String,
    /// PEM file of the CA that signed the operator's serving certificate.
    pub ca_file: PathBuf,
    /// The projected service-account token, re-read on every connect (kubelet rotates it).
    pub token_file: PathBuf,
}

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Setting up TLS or the request failed.
    #[error("{0}")]
    Setup(String),
    /// The operator refused or failed the request.
    #[error("operator answered {0}")]
    Status(http::StatusCode),
    /// The connection broke.
    #[error("connection: {0}")]
    Connection(String),
    /// Nothing arrived for too long.
    #[error("no heartbeat for {SILENCE_SECS} s")]
    Silent,
    /// The operator sent something that is not the protocol.
    #[error("bad message: {0}")]
    Protocol(String),
}

/// Streams snapshots into `tx` forever, reconnecting with backoff (0.5 s doubling to 30 s,
/// jittered). `connected` is set while a stream is open.
pub async fn run(
    source: OperatorSource,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    connected: watch::Sender<bool>,
) {
    let mut failures = 0u32;
    loop {
        let version = tx.borrow().as_ref().map(|s| s.version.clone());
        let result = stream_once(&source, version, &tx, &connected).await;
        connected.send_replace(false);
        match result {
            Ok(()) => failures = 0,
            Err(StreamError::Status(status)) if status.is_client_error() => {
                tracing::error!(%status, url = %source.url, "the operator refused this sidecar; check its service account token and namespace");
                failures += 1;
            }
            Err(err) => {
                tracing::warn!(error = %err, url = %source.url, "config stream ended; keeping the last good config");
                failures += 1;
            }
        }
        let ceiling = Duration::from_millis(500)
            .saturating_mul(1 << failures.min(6))
            .min(Duration::from_secs(30));
        let wait = ceiling / 2
            + Duration::from_millis(fastrand::u64(
                0..=u64::try_from(ceiling.as_millis() / 2).unwrap_or(0),
            ));
        tokio::time::sleep(wait).await;
    }
}

/// One connection: returns when it ends.
pub async fn stream_once(
    source: &OperatorSource,
    version: Option<String>,
    tx: &watch::Sender<Option<Arc<Snapshot>>>,
    connected: &watch::Sender<bool>,
) -> Result<(), StreamError> {
    let token = std::fs::read_to_string(&source.token_file).map_err(|e| {
        StreamError::Setup(format!("cannot read {}: {e}", source.token_file.display()))
    })?;
    let ca = std::fs::read(&source.ca_file).map_err(|e| {
        StreamError::Setup(format!("cannot read {}: {e}", source.ca_file.display()))
    })?;
    let client = client(&ca)?;
    let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
    let uri: Uri = format!("{}{PATH}{query}", source.url.trim_end_matches('/'))
        .parse()
        .map_err(|e| StreamError::Setup(format!("operator URL: {e}")))?;
    let request = Request::get(uri)
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()),
        )
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| StreamError::Setup(e.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| StreamError::Connection("connect timed out".into()))?
        .map_err(|e| StreamError::Connection(e.to_string()))?;
    if !response.status().is_success() {
        return Err(StreamError::Status(response.status()));
    }
    connected.send_replace(true);
    let mut body = response.into_body();
    let mut buf = BytesMut::new();
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(SILENCE_SECS), body.frame())
            .await
            .map_err(|_| StreamError::Silent)?;
        let Some(frame) = frame else { return Ok(()) };
        let frame = frame.map_err(|e| StreamError::Connection(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1);
            let message: Message = serde_json::from_slice(&line[..end])
                .map_err(|e| StreamError::Protocol(e.to_string()))?;
            if let Message::Snapshot { snapshot } = message {
                tracing::info!(version = %snapshot.version, "config received from the operator");
                tx.send_replace(Some(Arc::from(*snapshot)));
            }
        }
        if buf.len() > 64 * 1024 * 1024 {
            return Err(StreamError::Protocol("a message over 64 MiB".into()));
        }
    }
}

type HttpsClient<B = Empty<bytes::Bytes>> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// A client trusting only the operator's CA, over HTTP/2 or HTTP/1.1.
pub(crate) fn client<B>(ca_pem: &[u8]) -> Result<HttpsClient<B>, StreamError>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| StreamError::Setup(format!("CA file: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| StreamError::Setup(format!("CA file: {e}")))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StreamError::Setup(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .build(https))
}

//! The operator as the config source: a long-lived TLS stream of snapshots (see
//! [`push`](super::push)), reconnected with backoff. While disconnected the sidecar keeps
//! serving its last good snapshot (fail static); a reconnect resumes from the version it
//! has, so an unchanged config is not sent again. Every connect reads the token and the
//! CA file again (the kubelet rotates the one and may replace the other).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use tokio::sync::watch;

use super::Snapshot;
use super::link::{Channel, Link};
use super::push::{Message, PATH, SILENCE_SECS};
use super::trust::{self, ConnectError};

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

impl OperatorSource {
    /// The projected service-account token, read now (the kubelet rotates it).
    pub fn token(&self) -> Result<String, ConnectError> {
        std::fs::read_to_string(&self.token_file)
            .map(|t| t.trim().to_owned())
            .map_err(|source| ConnectError::File {
                what: "service-account token",
                path: self.token_file.clone(),
                source,
            })
    }
}

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Setting up the request failed.
    #[error("{0}")]
    Setup(String),
    /// The operator could not be reached or trusted, or the token or CA file is
    /// unreadable.
    #[error("{0}")]
    Connect(#[from] ConnectError),
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
/// jittered). `connected` is set while a stream is open; `link` hears of every open and
/// every failure.
pub async fn run(
    source: OperatorSource,
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    connected: watch::Sender<bool>,
    link: Arc<Link>,
) {
    let mut failures = 0u32;
    let mut opened = connected.subscribe();
    loop {
        let version = tx.borrow().as_ref().map(|s| s.version.clone());
        opened.borrow_and_update();
        let result = {
            let once = stream_once(&source, version, &tx, &connected);
            tokio::pin!(once);
            // The link is up from the moment the stream opens, not when it ends.
            loop {
                tokio::select! {
                    result = &mut once => break result,
                    Ok(()) = opened.changed() => if *opened.borrow_and_update() { link.up(Channel::Config) },
                }
            }
        };
        connected.send_replace(false);
        let have_config = tx.borrow().is_some();
        match result {
            Ok(()) => {
                failures = 0;
                link.down(Channel::Config, &"the operator closed the stream");
            }
            Err(StreamError::Status(status)) if status.is_client_error() => {
                link.down(Channel::Config, &format!("the operator answered {status}"));
                tracing::error!(%status, url = %source.url, "the operator refused this sidecar; check its service account token and namespace");
                failures += 1;
            }
            Err(err) => {
                link.down(Channel::Config, &err);
                if have_config {
                    tracing::warn!(error = %err, url = %source.url, "config stream ended; keeping the last good config");
                } else {
                    tracing::warn!(error = %err, url = %source.url, "no config from the operator yet; the API answers 503 until one arrives");
                }
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
    let token = source.token()?;
    let ca = std::fs::read(&source.ca_file).map_err(|source_| ConnectError::File {
        what: "CA file",
        path: source.ca_file.clone(),
        source: source_,
    })?;
    let client = trust::client(&ca, &source.ca_file)?;
    let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
    let uri: Uri = format!("{}{PATH}{query}", source.url.trim_end_matches('/'))
        .parse()
        .map_err(|e| StreamError::Setup(format!("operator URL: {e}")))?;
    let request = Request::get(uri)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| StreamError::Setup(e.to_string()))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| StreamError::Connection("connect timed out".into()))?
        .map_err(|e| trust::describe(&e, &source.url, &source.ca_file))?;
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

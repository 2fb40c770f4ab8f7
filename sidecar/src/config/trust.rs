//! Trusting the operator: the HTTPS client built from its CA file, and what a failed
//! connection means in words a user can act on.
//!
//! The CA file is a projected ConfigMap key, which the kubelet replaces by an atomic
//! symlink swap when the operator's CA changes. So it is read again on every connect
//! and the rustls client config is rebuilt when its bytes differ ([`Trust`]); no file
//! watcher is needed, because only a new connection can use a new CA anyway.
//!
//! A TLS failure reaches us as hyper-util's `client error (Connect)`, with the
//! `rustls::Error` that says what really failed several `source()`s (and `io::Error`
//! wrappers, whose `source()` skips the wrapped error) below it: [`describe`] digs it
//! out and names it, with the server name expected and the CA file used.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::CertificateError;

/// An HTTPS client to the operator (HTTP/2 or HTTP/1.1 by ALPN).
pub type HttpsClient<B> = Client<hyper_rustls::HttpsConnector<HttpConnector>, B>;

/// Why the operator could not be reached, or not trusted.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A file the connection needs could not be read.
    #[error("cannot read the {what} {}: {source}", path.display())]
    File {
        /// `CA file` or `service-account token`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("the CA file {} holds no usable certificate: {detail}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The TLS handshake failed: the certificate is not one this sidecar may trust.
    #[error("{0}")]
    Tls(TlsFailure),
    /// The operator could not be reached (DNS, TCP, a reset connection).
    #[error("cannot reach the operator at {server}: {detail}")]
    Unreachable {
        /// `host:port`.
        server: String,
        /// The whole cause chain.
        detail: String,
    },
}

/// A failed TLS handshake with the operator, named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFailure {
    /// What failed.
    pub problem: TlsProblem,
    /// The name the certificate was checked against (the `--operator` URL's host).
    pub server_name: String,
    /// The CA file the certificate was checked against.
    pub ca_file: PathBuf,
}

/// What a TLS failure was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsProblem {
    /// The certificate does not hold the name connected to; the names it holds, if known.
    WrongName(Vec<String>),
    /// The certificate is not signed by the CA in the CA file: no CA of its issuer's name
    /// (unknown issuer), or one of that name with another key (bad signature: the
    /// operator made a new CA of the same name).
    NotSignedByCa(&'static str),
    /// The certificate has expired or is not valid yet.
    NotValidNow(String),
    /// Anything else rustls refused (bad signature, a protocol alert...).
    Other(String),
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (server, ca) = (&self.server_name, self.ca_file.display());
        match &self.problem {
            TlsProblem::WrongName(presented) if presented.is_empty() => write!(
                f,
                "TLS certificate name mismatch: the operator's certificate is not valid for `{server}` (checked with CA file {ca})"
            ),
            TlsProblem::WrongName(presented) => write!(
                f,
                "TLS certificate name mismatch: the operator's certificate is not valid for `{server}`, only for {} (checked with CA file {ca})",
                presented.join(", ")
            ),
            TlsProblem::NotSignedByCa(why) => write!(
                f,
                "TLS certificate not trusted: the operator's certificate for `{server}` is not signed by the CA in {ca} ({why})"
            ),
            TlsProblem::NotValidNow(detail) => write!(
                f,
                "TLS certificate expired or not yet valid: the operator's certificate for `{server}` ({detail}; checked with CA file {ca})"
            ),
            TlsProblem::Other(detail) => write!(
                f,
                "TLS handshake with `{server}` failed: {detail} (checked with CA file {ca})"
            ),
        }
    }
}

/// The `rustls::Error` in a cause chain: one walker for the operator's and the
/// upstreams' TLS failures.
pub use crate::upstream::tls::rustls_cause;

/// `err` and its causes, `: `-separated, each once (wrappers often repeat their cause).
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    parts.join(": ")
}

/// Names a failed request to the operator at `url`, checked with `ca_file`.
pub fn describe(err: &(dyn StdError + 'static), url: &str, ca_file: &Path) -> ConnectError {
    let uri: Option<http::Uri> = url.parse().ok();
    let host = uri
        .as_ref()
        .and_then(|u| u.host())
        .unwrap_or(url)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if let Some(tls) = rustls_cause(err) {
        let problem = match tls {
            rustls::Error::InvalidCertificate(cert) => match cert {
                CertificateError::NotValidForName => TlsProblem::WrongName(Vec::new()),
                CertificateError::NotValidForNameContext { presented, .. } => {
                    TlsProblem::WrongName(presented.iter().map(|n| plain_name(n)).collect())
                }
                CertificateError::UnknownIssuer => TlsProblem::NotSignedByCa("unknown issuer"),
                CertificateError::BadSignature => TlsProblem::NotSignedByCa(
                    "bad signature: a CA of the same name with another key",
                ),
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => {
                    TlsProblem::NotValidNow(tls.to_string())
                }
                _ => TlsProblem::Other(tls.to_string()),
            },
            other => TlsProblem::Other(other.to_string()),
        };
        return ConnectError::Tls(TlsFailure {
            problem,
            server_name: host,
            ca_file: ca_file.to_owned(),
        });
    }
    let server = uri
        .as_ref()
        .and_then(|u| u.authority())
        .map_or_else(|| url.to_owned(), ToString::to_string);
    ConnectError::Unreachable {
        server,
        detail: chain(err),
    }
}

/// `DnsName("a.svc")` → `a.svc`, `IpAddress(10.0.0.1)` → `10.0.0.1`: webpki lists a
/// certificate's names in their `Debug` form.
fn plain_name(name: &str) -> String {
    let inner = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
        .or_else(|| {
            name.strip_prefix("IpAddress(")
                .and_then(|n| n.strip_suffix(')'))
        });
    inner.unwrap_or(name).to_owned()
}

/// A client trusting only the CA in `ca_pem`.
pub fn client<B>(ca_pem: &[u8], ca_file: &Path) -> Result<HttpsClient<B>, ConnectError>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |detail: String| ConnectError::BadCa {
        path: ca_file.to_owned(),
        detail,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
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

/// A client kept while the CA file's bytes stay the same, rebuilt when they change.
pub struct Trust<B> {
    ca_file: PathBuf,
    current: Mutex<Option<(Vec<u8>, HttpsClient<B>)>>,
}

impl<B> Trust<B>
where
    B: http_body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// Trusts the CA in `ca_file`.
    pub fn new(ca_file: PathBuf) -> Self {
        Trust {
            ca_file,
            current: Mutex::new(None),
        }
    }

    /// The CA file.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The client for the CA file as it is now. Reading a few KiB per call is cheaper
    /// than a watcher, and pooled connections survive as long as the CA does.
    pub fn client(&self) -> Result<HttpsClient<B>, ConnectError> {
        let ca = std::fs::read(&self.ca_file).map_err(|source| ConnectError::File {
            what: "CA file",
            path: self.ca_file.clone(),
            source,
        })?;
        let mut slot = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((bytes, client)) = slot.as_ref()
            && *bytes == ca
        {
            return Ok(client.clone());
        }
        let client = client(&ca, &self.ca_file)?;
        if slot.is_some() {
            tracing::info!(ca_file = %self.ca_file.display(), "the operator's CA file changed; new connections trust the new CA");
        }
        *slot = Some((ca, client.clone()));
        Ok(client)
    }
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;

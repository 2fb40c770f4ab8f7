//! The config push server: sidecars stream their namespace's snapshot from here over
//! TLS (protocol in [`llmesh_sidecar::config::push`]).
//!
//! Each connection is authenticated with the pod's projected service-account token
//! ([`crate::auth`]); the token's service account names the namespace whose config is
//! streamed, so a pod can only ever read its own namespace's config. A stream lives no
//! longer than its token: it is re-reviewed every [`crate::auth::REVIEW_TTL`] and ends
//! when the review fails or the token expires (the sidecar reconnects with the token the
//! kubelet refreshed). Usage is recorded under the authenticated subject, never under a
//! name the request chose alone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use llmesh_sidecar::config::Snapshot;
use llmesh_sidecar::config::push::{HEARTBEAT_SECS, Message, PATH};
use llmesh_sidecar::meter::report::{PATH as USAGE_PATH, Report};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::intake::{Intake, MAX_REPORT_BYTES};
use crate::metrics::Metrics;
use crate::serving::Server;

/// Where snapshots come from (the hub, or a test's channels).
pub trait SnapshotSource: Send + Sync + 'static {
    /// The namespace's snapshot channel.
    fn subscribe(&self, namespace: &str) -> watch::Receiver<Option<Arc<Snapshot>>>;
    /// When the change behind the namespace's current snapshot was seen.
    fn changed_at(&self, namespace: &str) -> Option<Instant>;
}

impl SnapshotSource for crate::hub::Hub {
    fn subscribe(&self, namespace: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        crate::hub::Hub::subscribe(self, namespace)
    }
    fn changed_at(&self, namespace: &str) -> Option<Instant> {
        crate::hub::Hub::changed_at(self, namespace)
    }
}

pub use crate::auth::{AuthError, AuthFuture, Authenticator, Identity, TokenReviewer};

/// The push server's shared state.
pub struct Push {
    /// Snapshots.
    pub source: Arc<dyn SnapshotSource>,
    /// Authentication.
    pub auth: Arc<dyn Authenticator>,
    /// Metrics.
    pub metrics: Metrics,
    /// Each namespace's snapshot, serialized once per version for every connection.
    lines: Mutex<HashMap<String, (String, Bytes)>>,
    /// Where usage reports go; without it they are refused.
    intake: Option<Arc<Intake>>,
    /// How often a connected sidecar's token is reviewed again.
    review_every: Duration,
}

impl Push {
    /// A push server's state.
    pub fn new(
        source: Arc<dyn SnapshotSource>,
        auth: Arc<dyn Authenticator>,
        metrics: Metrics,
    ) -> Self {
        Push {
            source,
            auth,
            metrics,
            lines: Mutex::new(HashMap::new()),
            intake: None,
            review_every: crate::auth::REVIEW_TTL,
        }
    }

    /// Reviews connected sidecars' tokens this often (default [`crate::auth::REVIEW_TTL`]).
    pub fn with_review_interval(mut self, every: Duration) -> Self {
        self.review_every = every;
        self
    }

    /// Accepts usage reports into `intake`.
    pub fn with_intake(mut self, intake: Arc<Intake>) -> Self {
        self.intake = Some(intake);
        self
    }

    /// The snapshot message line, serialized once per namespace and version: a change
    /// fans out to every connected sidecar of the namespace.
    fn line(&self, namespace: &str, snapshot: &Snapshot) -> Bytes {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((version, line)) = lines.get(namespace)
            && *version == snapshot.version
        {
            return line.clone();
        }
        let line = Bytes::from(
            Message::Snapshot {
                snapshot: Box::new(snapshot.clone()),
            }
            .to_line(),
        );
        lines.insert(
            namespace.to_owned(),
            (snapshot.version.clone(), line.clone()),
        );
        line
    }
}

/// Serves the push endpoint with TLS on `listener` until `shutdown`. Open snapshot
/// streams end at shutdown (their sidecars reconnect to another replica), so the
/// server's grace waits only for usage reports in flight.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    push: Arc<Push>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (closing_tx, closing) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        closing_tx.send_replace(true);
    };
    let make = move |peer: SocketAddr| {
        let (push, closing) = (push.clone(), closing.clone());
        hyper::service::service_fn(move |req| handle(push.clone(), req, peer, closing.clone()))
    };
    Server::tls("push", tls)
        .serve(listener, make, shutdown)
        .await;
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))).boxed());
    *response.status_mut() = status;
    response
}

async fn handle(
    push: Arc<Push>,
    req: Request<Incoming>,
    peer: SocketAddr,
    mut closing: watch::Receiver<bool>,
) -> Result<Response<Body>, Infallible> {
    let usage = req.method() == http::Method::POST && req.uri().path() == USAGE_PATH;
    if !usage && (req.method() != http::Method::GET || req.uri().path() != PATH) {
        return Ok(text(StatusCode::NOT_FOUND, "not found"));
    }
    let token = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Ok(text(StatusCode::UNAUTHORIZED, "missing bearer token"));
    };
    let identity = match push.auth.identify(token).await {
        Ok(identity) => identity,
        Err(AuthError::Review(e)) => {
            tracing::warn!(%peer, error = %e, "token review failed");
            return Ok(text(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot review the token now",
            ));
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "sidecar refused");
            return Ok(text(StatusCode::UNAUTHORIZED, "token not accepted"));
        }
    };
    if usage {
        return Ok(usage_report(&push, &identity, req, peer).await);
    }
    let namespace = identity.namespace.clone();
    let query = req.uri().query().unwrap_or("");
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            kv.strip_prefix(name)
                .and_then(|v| v.strip_prefix('='))
                .map(str::to_owned)
        })
    };
    if let Some(asked) = param("namespace")
        && asked != namespace
    {
        return Ok(text(
            StatusCode::FORBIDDEN,
            "this token may only read its own namespace's config",
        ));
    }
    let have = param("version");
    let mut rx = push.source.subscribe(&namespace);
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let metrics = push.metrics.clone();
    let source = push.source.clone();
    let lines = push.clone();
    let auth = push.auth.clone();
    let review_every = push.review_every;
    let token = token.to_owned();
    tokio::spawn(async move {
        metrics.connected_sidecars.inc();
        tracing::debug!(%peer, namespace, "sidecar connected");
        let mut sent = have;
        // What a new connection gets first is the current snapshot, not a change: only
        // snapshots sent after it measure change-to-delivery.
        let mut initial = true;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(HEARTBEAT_SECS));
        heartbeat.tick().await;
        let mut recheck = tokio::time::interval(review_every);
        recheck.tick().await;
        let expiry = token_deadline(&identity);
        tokio::pin!(expiry);
        loop {
            let current = rx.borrow_and_update().clone();
            if let Some(snapshot) = current
                && sent.as_deref() != Some(snapshot.version.as_str())
            {
                let line = lines.line(&namespace, &snapshot);
                if tx.send(line).await.is_err() {
                    break;
                }
                if !initial && let Some(at) = source.changed_at(&namespace) {
                    metrics
                        .push_latency
                        .with_label_values(&["snapshot"])
                        .observe(at.elapsed().as_secs_f64());
                }
                sent = Some(snapshot.version.clone());
            }
            initial = false;
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                _ = heartbeat.tick() => {
                    let line = Message::Heartbeat { version: sent.clone().unwrap_or_default() }.to_line();
                    if tx.send(Bytes::from(line)).await.is_err() { break; }
                }
                () = tx.closed() => break,
                () = ending(&mut closing) => break,
                () = &mut expiry => {
                    tracing::debug!(%peer, namespace, "the sidecar's token expired; ending its stream");
                    break;
                }
                _ = recheck.tick() => match auth.identify(&token).await {
                    Ok(again) if again.namespace == namespace => {}
                    // The API server cannot answer now: keep serving what was granted.
                    Err(AuthError::Review(_)) => {}
                    Ok(_) | Err(_) => {
                        tracing::info!(%peer, namespace, "the sidecar's token is no longer accepted; ending its stream");
                        break;
                    }
                },
            }
        }
        metrics.connected_sidecars.dec();
        tracing::debug!(%peer, namespace, "sidecar disconnected");
    });
    let frames = futures_util::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Resolves once the server is shutting down (or gone).
async fn ending(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

/// Resolves when the token the identity came from expires (never, when it does not say).
async fn token_deadline(identity: &Identity) {
    match identity.expires {
        Some(at) => {
            let left = at
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::time::sleep(left).await;
        }
        None => std::future::pending().await,
    }
}

/// Folds a usage report and answers with the acknowledgement.
async fn usage_report(
    push: &Push,
    identity: &Identity,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let Some(intake) = &push.intake else {
        return text(StatusCode::NOT_FOUND, "usage intake is not enabled");
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_REPORT_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "report too large or unreadable",
            );
        }
    };
    let namespace = identity.namespace.as_str();
    let mut report: Report = match serde_json::from_slice(&body) {
        Ok(report) => report,
        Err(e) => {
            push.metrics
                .usage_reports
                .with_label_values(&["refused"])
                .inc();
            return text(StatusCode::BAD_REQUEST, &format!("malformed report: {e}"));
        }
    };
    if let Err(e) = Intake::validate(&report) {
        push.metrics
            .usage_reports
            .with_label_values(&["refused"])
            .inc();
        return text(StatusCode::BAD_REQUEST, &e.to_string());
    }
    // Recorded under who the API server says is calling: a pod cannot report under
    // another sidecar's name and so have that sidecar's later batches taken for resends.
    report.reporter = format!("{}/{}", identity.subject, report.reporter);
    match intake.fold(namespace, &report).await {
        Ok(ack) => {
            let mut response = Response::new(
                Full::new(Bytes::from(serde_json::to_vec(&ack).unwrap_or_default())).boxed(),
            );
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            push.metrics
                .usage_reports
                .with_label_values(&["error"])
                .inc();
            tracing::warn!(%peer, namespace, reporter = %report.reporter, seq = report.seq, error = %e, "usage report not folded; the sidecar will resend it");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "usage not recorded; resend",
            )
        }
    }
}

/// A serving certificate: from PEM files, or self-signed for `names` at start.
pub enum TlsSource {
    /// `tls.crt` and `tls.key`, e.g. mounted from a Secret or made by cert-manager.
    Files {
        /// Certificate chain.
        cert: std::path::PathBuf,
        /// Private key.
        key: std::path::PathBuf,
    },
    /// A fresh self-signed certificate for these DNS names / IPs. The operator binary
    /// never serves one: it keeps its CA in a Secret instead
    /// ([`crate::webhook::certs::keep_push_tls`]), so restarts keep the sidecars' trust.
    SelfSigned(Vec<String>),
    /// A serving pair and the CA that signed it, as PEM (from the certificate Secret).
    Pem {
        /// Serving certificate chain.
        cert: String,
        /// Serving key. Never logged.
        key: String,
        /// The CA clients trust.
        ca: String,
    },
}

/// The server TLS config and the PEM of the certificate clients must trust.
pub fn tls_config(source: &TlsSource) -> Result<(Arc<rustls::ServerConfig>, String), crate::Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls = |e: &dyn std::fmt::Display| crate::Error::Tls(e.to_string());
    let (certs, key, ca_pem) = match source {
        TlsSource::Files { cert, key } => {
            let pem = std::fs::read(cert).map_err(|e| tls(&e))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| tls(&e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls(&e))?;
            (certs, key, String::from_utf8_lossy(&pem).into_owned())
        }
        TlsSource::Pem { cert, key, ca } => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<_, _>>()
                    .map_err(|e| tls(&e))?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| tls(&e))?;
            (certs, key, ca.clone())
        }
        TlsSource::SelfSigned(names) => {
            let signed = rcgen::generate_simple_self_signed(names.clone()).map_err(|e| tls(&e))?;
            let pem = signed.cert.pem();
            let key = PrivateKeyDer::from_pem_slice(signed.signing_key.serialize_pem().as_bytes())
                .map_err(|e| tls(&e))?;
            (vec![signed.cert.der().clone()], key, pem)
        }
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| tls(&e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| tls(&e))?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca_pem))
}

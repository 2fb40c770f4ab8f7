//! The config push server: sidecars stream their namespace's snapshot from here over
//! TLS (protocol in [`llmesh_sidecar::config::push`]).
//!
//! Each connection is authenticated with the pod's projected service-account token,
//! checked by a TokenReview for the `llmesh` audience; the token's service account names
//! the namespace whose config is streamed, so a pod can only ever read its own
//! namespace's config. Reviews are cached briefly so a fleet reconnecting at once does
//! not flood the API server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::Api;
use kube::api::PostParams;
use llmesh_sidecar::config::Snapshot;
use llmesh_sidecar::config::push::{AUDIENCE, HEARTBEAT_SECS, Message, PATH};
use llmesh_sidecar::meter::report::{PATH as USAGE_PATH, Report};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::intake::{Intake, MAX_REPORT_BYTES};
use crate::metrics::Metrics;

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

/// Why a caller was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No or a malformed bearer token.
    #[error("missing bearer token")]
    Missing,
    /// The token is not valid for the `llmesh` audience.
    #[error("token not accepted: {0}")]
    Rejected(String),
    /// The token is not a service account's.
    #[error("token is not a service account's ({0})")]
    NotServiceAccount(String),
    /// The TokenReview itself failed.
    #[error("token review failed: {0}")]
    Review(String),
}

/// Turns a bearer token into the caller's namespace.
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<String, AuthError>> + Send + 'a>>;

/// Authenticates sidecars.
pub trait Authenticator: Send + Sync + 'static {
    /// The namespace of the service account the token belongs to.
    fn namespace<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// Authenticates with TokenReviews, caching results for a minute.
pub struct TokenReviewer {
    client: kube::Client,
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl TokenReviewer {
    /// A reviewer using `client`.
    pub fn new(client: kube::Client) -> Self {
        TokenReviewer {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

const REVIEW_TTL: Duration = Duration::from_secs(60);

impl Authenticator for TokenReviewer {
    fn namespace<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some((ns, at)) = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&digest)
                && at.elapsed() < REVIEW_TTL
            {
                return Ok(ns.clone());
            }
            let review = TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.to_owned()),
                    audiences: Some(vec![AUDIENCE.to_owned()]),
                },
                ..TokenReview::default()
            };
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let answer = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| AuthError::Review(e.to_string()))?;
            let status = answer.status.unwrap_or_default();
            if status.authenticated != Some(true) {
                return Err(AuthError::Rejected(
                    status.error.unwrap_or_else(|| "not authenticated".into()),
                ));
            }
            if let Some(audiences) = &status.audiences
                && !audiences.iter().any(|a| a == AUDIENCE)
            {
                return Err(AuthError::Rejected(format!(
                    "audience {AUDIENCE} not granted"
                )));
            }
            let username = status.user.and_then(|u| u.username).unwrap_or_default();
            let ns = service_account_namespace(&username)
                .ok_or(AuthError::NotServiceAccount(username.clone()))?;
            let mut cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            cache.retain(|_, (_, at)| at.elapsed() < REVIEW_TTL);
            cache.insert(digest, (ns.clone(), Instant::now()));
            Ok(ns)
        })
    }
}

/// `system:serviceaccount:NAMESPACE:NAME` → `NAMESPACE`.
pub fn service_account_namespace(username: &str) -> Option<String> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, name) = rest.split_once(':')?;
    (!ns.is_empty() && !name.is_empty()).then(|| ns.to_owned())
}

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
        }
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

/// Serves the push endpoint with TLS on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    push: Arc<Push>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let push = push.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |req| handle(push.clone(), req, peer));
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
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
    let namespace = match push.auth.namespace(token).await {
        Ok(ns) => ns,
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
        return Ok(usage_report(&push, &namespace, req, peer).await);
    }
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
    tokio::spawn(async move {
        metrics.connected_sidecars.inc();
        tracing::debug!(%peer, namespace, "sidecar connected");
        let mut sent = have;
        // What a new connection gets first is the current snapshot, not a change: only
        // snapshots sent after it measure change-to-delivery.
        let mut initial = true;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(HEARTBEAT_SECS));
        heartbeat.tick().await;
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

/// Folds a usage report and answers with the acknowledgement.
async fn usage_report(
    push: &Push,
    namespace: &str,
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
    let report: Report = match serde_json::from_slice(&body) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_account_usernames_name_their_namespace() {
        assert_eq!(
            service_account_namespace("system:serviceaccount:team-a:default").as_deref(),
            Some("team-a")
        );
        assert_eq!(service_account_namespace("system:serviceaccount::x"), None);
        assert_eq!(service_account_namespace("alice"), None);
        assert_eq!(service_account_namespace("system:serviceaccount:ns"), None);
    }
}

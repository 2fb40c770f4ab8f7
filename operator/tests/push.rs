//! The config push over real TLS with in-process sidecar clients: authentication,
//! namespace isolation, resume without resending, and a change reaching 50 connected
//! sidecars.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmesh_operator::metrics::Metrics;
use llmesh_operator::push::{
    AuthError, AuthFuture, Authenticator, Identity, Push, SnapshotSource, TlsSource, serve,
    tls_config,
};
use llmesh_sidecar::config::Snapshot;
use llmesh_sidecar::config::operator::{OperatorSource, StreamError, stream_once};
use llmesh_sidecar::config::snapshot::FORMAT;
use tokio::sync::watch;
use tokio::time::Instant;

/// Tokens `token-NS` belong to namespace `NS`; `token-NS+exp` expires a second after
/// it is first reviewed; revoked tokens are refused from then on.
#[derive(Default)]
struct StaticAuth {
    revoked: Mutex<std::collections::HashSet<String>>,
}

impl Authenticator for StaticAuth {
    fn identify<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(async move {
            if self.revoked.lock().unwrap().contains(token) {
                return Err(AuthError::Rejected("revoked".into()));
            }
            let (token, expiring) = match token.strip_suffix("+exp") {
                Some(t) => (t, true),
                None => (token, false),
            };
            let mut identity = token
                .strip_prefix("token-")
                .map(Identity::namespace)
                .ok_or(AuthError::Rejected("unknown".into()))?;
            if expiring {
                identity.expires = Some(std::time::SystemTime::now() + Duration::from_secs(1));
            }
            Ok(identity)
        })
    }
}

#[derive(Default)]
struct Channels(Mutex<HashMap<String, watch::Sender<Option<Arc<Snapshot>>>>>);

impl Channels {
    fn publish(&self, ns: &str, version: &str) {
        let snapshot = Snapshot {
            format: FORMAT,
            version: version.into(),
            ..Snapshot::default()
        };
        self.sender(ns).send_replace(Some(Arc::new(snapshot)));
    }
    fn sender(&self, ns: &str) -> watch::Sender<Option<Arc<Snapshot>>> {
        self.0
            .lock()
            .unwrap()
            .entry(ns.into())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }
}

impl SnapshotSource for Channels {
    fn subscribe(&self, ns: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.sender(ns).subscribe()
    }
    fn changed_at(&self, _: &str) -> Option<Instant> {
        Some(Instant::now())
    }
}

struct Server {
    url: String,
    ca: PathBuf,
    dir: PathBuf,
    channels: Arc<Channels>,
    metrics: Metrics,
    auth: Arc<StaticAuth>,
}

async fn server(name: &str) -> Server {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("push-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (tls, ca_pem) = tls_config(&TlsSource::SelfSigned(vec!["localhost".into()])).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let channels = Arc::new(Channels::default());
    let metrics = Metrics::new().unwrap();
    let auth = Arc::new(StaticAuth::default());
    let push = Arc::new(
        Push::new(channels.clone(), auth.clone(), metrics.clone())
            .with_review_interval(Duration::from_millis(200)),
    );
    tokio::spawn(serve(listener, tls, push, std::future::pending()));
    Server {
        url: format!("https://localhost:{port}"),
        ca,
        dir,
        channels,
        metrics,
        auth,
    }
}

impl Server {
    fn source(&self, token: &str) -> OperatorSource {
        let token_file = self.dir.join(format!("{token}.token"));
        std::fs::write(&token_file, token).unwrap();
        OperatorSource {
            url: self.url.clone(),
            ca_file: self.ca.clone(),
            token_file,
        }
    }
}

/// Runs one client until it holds `version` (or fails).
async fn wait_for(rx: &mut watch::Receiver<Option<Arc<Snapshot>>>, version: &str) {
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| s.as_ref().is_some_and(|s| s.version == version)),
    )
    .await
    .unwrap_or_else(|_| panic!("version {version} never arrived"))
    .unwrap();
}

#[tokio::test]
async fn a_sidecar_gets_its_namespace_snapshot_and_every_change() {
    let s = server("basic").await;
    s.channels.publish("team-a", "v1");
    s.channels.publish("team-b", "b1");
    let (tx, mut rx) = watch::channel(None);
    let (connected, _) = watch::channel(false);
    let source = s.source("token-team-a");
    tokio::spawn(async move { stream_once(&source, None, &tx, &connected).await });
    wait_for(&mut rx, "v1").await;
    s.channels.publish("team-a", "v2");
    wait_for(&mut rx, "v2").await;
    let text = String::from_utf8(s.metrics.render()).unwrap();
    assert!(
        text.contains("llmesh_operator_connected_sidecars 1"),
        "{text}"
    );
    // v1 was the connection's first snapshot, not a change: only v2 is a latency sample.
    assert!(
        text.contains(r#"llmesh_operator_push_latency_seconds_count{kind="snapshot"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_tokens_and_other_namespaces_are_refused() {
    let s = server("refuse").await;
    s.channels.publish("team-a", "v1");
    let (tx, _) = watch::channel(None);
    let (connected, _) = watch::channel(false);
    let err = stream_once(&s.source("stolen"), None, &tx, &connected)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StreamError::Status(http::StatusCode::UNAUTHORIZED)),
        "{err}"
    );
    // Asking for another namespace's config explicitly is forbidden.
    assert_eq!(
        raw_get(&s, "token-team-b", "/v1/snapshots?namespace=team-a").await,
        403
    );
    assert_eq!(
        raw_get(&s, "token-team-a", "/v1/snapshots?namespace=team-a").await,
        200
    );
    assert_eq!(raw_get(&s, "", "/v1/snapshots").await, 401);
    assert!(tx.borrow().is_none());
}

/// A stream lives no longer than its token: a revoked token's stream ends at the next
/// review, an expired token's when it expires, while the snapshots (which carry
/// provider keys) would otherwise keep coming.
#[tokio::test]
async fn a_stream_ends_when_its_token_is_revoked_or_expires() {
    let s = server("revoke").await;
    s.channels.publish("team-a", "v1");
    for token in ["token-team-a", "token-team-a+exp"] {
        let (tx, mut rx) = watch::channel(None);
        let (connected, _) = watch::channel(false);
        let source = s.source(token);
        let stream = tokio::spawn(async move { stream_once(&source, None, &tx, &connected).await });
        wait_for(&mut rx, "v1").await;
        if !token.ends_with("+exp") {
            s.auth.revoked.lock().unwrap().insert(token.to_owned());
        }
        tokio::time::timeout(Duration::from_secs(10), stream)
            .await
            .unwrap_or_else(|_| panic!("{token}: the stream outlived its token"))
            .unwrap()
            .ok();
    }
}

/// A TLS client trusting the server's CA.
fn client_tls(s: &Server) -> rustls::ClientConfig {
    let ca = std::fs::read(&s.ca).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::pem::PemObject;
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(c.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A client that never finishes its request headers is dropped (hyper's header
/// timeout), instead of holding a connection and a task for good.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = server("slow").await;
    let authority = s.url.trim_start_matches("https://").to_owned();
    let tcp = tokio::net::TcpStream::connect(authority.replace("localhost", "127.0.0.1"))
        .await
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&s)));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /v1/snapshots HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), tls.read_to_end(&mut buf)).await;
    assert!(
        ended.is_ok(),
        "the half-sent request still holds its connection"
    );
}

async fn raw_get(s: &Server, token: &str, path: &str) -> u16 {
    // A bare HTTPS GET with the same CA, for requests the sidecar client never makes.
    use http_body_util::Empty;
    let tls = client_tls(s);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(https);
    let req = http::Request::get(format!("{}{path}", s.url))
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_reconnecting_sidecar_resumes_without_a_resend() {
    let s = server("resume").await;
    s.channels.publish("team-a", "v1");
    let (tx, mut rx) = watch::channel(None);
    let (connected, mut connected_rx) = watch::channel(false);
    let source = s.source("token-team-a");
    let tx2 = tx.clone();
    let task =
        tokio::spawn(
            async move { stream_once(&source, Some("v1".into()), &tx2, &connected).await },
        );
    tokio::time::timeout(Duration::from_secs(5), connected_rx.wait_for(|c| *c))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        rx.borrow_and_update().is_none(),
        "the snapshot it already had was not sent again"
    );
    s.channels.publish("team-a", "v2");
    wait_for(&mut rx, "v2").await;
    task.abort();
}

#[tokio::test]
async fn fifty_sidecars_all_receive_a_change() {
    let s = server("fleet").await;
    s.channels.publish("team-a", "v1");
    let mut receivers = Vec::new();
    for _ in 0..50 {
        let (tx, rx) = watch::channel(None);
        let (connected, _) = watch::channel(false);
        let source = s.source("token-team-a");
        tokio::spawn(async move { stream_once(&source, None, &tx, &connected).await });
        receivers.push(rx);
    }
    for rx in &mut receivers {
        wait_for(rx, "v1").await;
    }
    let changed = Instant::now();
    s.channels.publish("team-a", "v2");
    for rx in &mut receivers {
        wait_for(rx, "v2").await;
    }
    println!(
        "50 sidecars received the change within {:?}",
        changed.elapsed()
    );
    let text = String::from_utf8(s.metrics.render()).unwrap();
    assert!(
        text.contains("llmesh_operator_connected_sidecars 50"),
        "{text}"
    );
}

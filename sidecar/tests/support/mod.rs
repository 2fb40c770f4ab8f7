//! Shared helpers for the sidecar's integration tests: snapshot builders, a sidecar on
//! ephemeral ports, and a small HTTP client.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use llmesh_sidecar::config::snapshot::*;
use llmesh_sidecar::{Settings, Sidecar};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

/// A deployment of `provider` at `base_url` serving upstream `model`.
pub fn deployment(name: &str, base_url: &str, model: &str) -> DeploymentSpec {
    DeploymentSpec {
        name: name.into(),
        provider: ProviderKind::OpenaiCompatible,
        model: model.into(),
        base_url: Some(base_url.into()),
        api_key: Some(SecretString::new(format!("sk-upstream-{name}"))),
        api_version: None,
        weight: 1,
        rpm: None,
        tpm: None,
        pricing: None,
        region: None,
        project: None,
        aws: None,
        gcp_service_account: None,
        token_url: None,
        tls: None,
        workload_identity: None,
    }
}

/// A model with these deployments, fast retries and default everything else.
pub fn model(name: &str, deployments: Vec<DeploymentSpec>) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        strategy: Strategy::WeightedShuffle,
        deployments,
        fallbacks: vec![],
        context_window_fallbacks: vec![],
        content_policy_fallbacks: vec![],
        retry: RetrySpec {
            initial_backoff_ms: 1,
            max_backoff_ms: 20,
            ..RetrySpec::default()
        },
        timeouts: TimeoutSpec::default(),
        cooldown: CooldownSpec::default(),
        pricing: Pricing::default(),
        drop_unsupported_params: false,
        default_max_tokens: None,
        image_fetch: ImageFetchSpec::default(),
        capture_content: false,
        cache: None,
    }
}

/// A snapshot of these models.
pub fn snapshot(version: &str, models: Vec<ModelSpec>) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        format: FORMAT,
        version: version.into(),
        models,
        keys: vec![],
        budgets: vec![],
    })
}

/// A child process (the built binary), killed and reaped when dropped.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback address with a free port, for a process to listen on.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A sidecar serving on ephemeral loopback ports.
pub struct Running {
    pub api: SocketAddr,
    pub admin: SocketAddr,
    pub config: watch::Sender<Option<Arc<Snapshot>>>,
    stop: Option<oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts a sidecar, with `snapshot` as its first config if given.
    pub async fn start(snapshot: Option<Arc<Snapshot>>) -> Running {
        Running::start_with(snapshot, |_| {}).await
    }

    /// Starts a sidecar with settings adjusted by `adjust`.
    pub async fn start_with(
        snapshot: Option<Arc<Snapshot>>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Running {
        Running::launch(snapshot, adjust, None).await
    }

    /// Starts a sidecar whose deployments read the cloud identity variables from `env`
    /// instead of the process environment.
    pub async fn start_with_env(
        snapshot: Option<Arc<Snapshot>>,
        env: std::collections::HashMap<String, String>,
    ) -> Running {
        let transport = llmesh_sidecar::upstream::HttpTransport::new().unwrap();
        let builder =
            llmesh_sidecar::router::RoutesBuilder::with_env(Arc::new(transport), Arc::new(env));
        Running::launch(snapshot, |_| {}, Some(builder)).await
    }

    async fn launch(
        snapshot: Option<Arc<Snapshot>>,
        adjust: impl FnOnce(&mut Settings),
        builder: Option<llmesh_sidecar::router::RoutesBuilder>,
    ) -> Running {
        let mut settings = Settings {
            api_addr: "127.0.0.1:0".parse().unwrap(),
            admin_addr: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 64 * 1024,
            shutdown_grace: std::time::Duration::from_secs(5),
            ..Settings::default()
        };
        adjust(&mut settings);
        let sidecar = match builder {
            Some(builder) => Sidecar::bind_with(settings, builder).await.unwrap(),
            None => Sidecar::bind(settings).await.unwrap(),
        };
        let (api, admin) = (sidecar.api_addr(), sidecar.admin_addr());
        let (config, rx) = watch::channel(snapshot);
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(sidecar.serve(rx, async {
            let _ = stopped.await;
        }));
        let running = Running {
            api,
            admin,
            config,
            stop: Some(stop),
            done,
        };
        if running.config.borrow().is_some() {
            running.wait_ready().await;
        }
        running
    }

    /// Waits until `/readyz` says ready (the config task has applied a snapshot).
    pub async fn wait_ready(&self) {
        for _ in 0..500 {
            let (status, _, _) = get(self.admin, "/readyz").await;
            if status == StatusCode::OK {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("sidecar never became ready");
    }

    /// Replaces the config and waits until the sidecar reports the new version.
    pub async fn reconfigure(&self, snapshot: Arc<Snapshot>) {
        let version = snapshot.version.clone();
        self.config.send_replace(Some(snapshot));
        let want = format!("llmesh_config_info{{version=\"{version}\"}} 1");
        for _ in 0..500 {
            if self.metrics().await.contains(&want) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("config {version} never applied");
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        let (_, _, body) = get(self.admin, "/metrics").await;
        String::from_utf8(body.to_vec()).unwrap()
    }

    /// Asks the sidecar to shut down.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A GET; returns status, headers and body.
pub async fn get(addr: SocketAddr, path: &str) -> (StatusCode, HeaderMap, Bytes) {
    send(addr, http::Method::GET, path, Bytes::new()).await
}

/// A POST of raw bytes.
pub async fn send(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-client-secret")
        .body(Full::new(body))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

/// A POST of JSON to the API; returns status, headers and the JSON body.
pub async fn post(addr: SocketAddr, path: &str, body: Value) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, bytes) = send(
        addr,
        http::Method::POST,
        path,
        Bytes::from(body.to_string()),
    )
    .await;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, value)
}

/// A streaming POST: returns status, headers and each body frame with the time it came.
pub async fn post_stream(
    addr: SocketAddr,
    body: Value,
) -> (StatusCode, HeaderMap, Vec<(std::time::Instant, Bytes)>) {
    let request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames.push((std::time::Instant::now(), data));
        }
    }
    (parts.status, parts.headers, frames)
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(frames: &[(std::time::Instant, Bytes)]) -> Vec<String> {
    let text: String = frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    text.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .map(str::to_owned)
        })
        .collect()
}

/// A chat request body.
pub fn chat(model: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

/// A streaming chat request body.
pub fn chat_stream(model: &str) -> Value {
    serde_json::json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hello"}]})
}

/// A header as a string.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).map_or("", |v| v.to_str().unwrap())
}

/// A POST of JSON with exactly these headers (no default authorization).
pub async fn call(
    addr: SocketAddr,
    body: Value,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client()
        .request(
            request
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

/// A virtual key `name` whose secret is `secret`, without limits, team or budget.
pub fn key(name: &str, secret: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        sha256: llmesh_sidecar::meter::keys::sha256_hex(secret),
        display_prefix: secret[..14].into(),
        models: vec![],
        rpm: None,
        tpm: None,
        max_parallel_requests: None,
        expires_at_unix: None,
        team: None,
        user: None,
        budget: None,
    }
}

/// A snapshot of these models, keys and budgets.
pub fn with(models: Vec<ModelSpec>, keys: Vec<KeySpec>, budgets: Vec<BudgetSpec>) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        format: FORMAT,
        version: "v1".into(),
        models,
        keys,
        budgets,
    })
}

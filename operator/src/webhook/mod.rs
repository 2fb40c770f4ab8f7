//! The sidecar injection webhook: a mutating admission webhook served over HTTPS, with
//! its certificates either self-managed ([`certs`]: a CA and serving certificate in a
//! Secret, the CA patched into the webhook configuration and published to every
//! namespace) or mounted from files (cert-manager).
//!
//! Configured from the environment (the chart sets it), so that turning injection on
//! needs no new flag: the variables, their defaults and meanings are described once, in
//! [`crate::cli::OPERATOR`] (`llmesh-operator --help`, `docs/operations.md`).

pub mod certs;
pub mod inject;
pub mod quantity;
pub mod reload;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::reflector::{self, ObjectRef, Store};
use llmesh_crds::VirtualKey;
use prometheus::IntCounterVec;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::Error;
use crate::metrics::Metrics;
use crate::push::TlsSource;
use inject::{Config, Context, Outcome, Resources};
use quantity::{Quantity, Resource};

/// The path the webhook configuration calls.
pub const PATH: &str = "/inject";
/// Admission reviews are at most a few MiB (etcd's object limit is 1.5 MiB).
const MAX_BODY: usize = 8 << 20;

/// Where the certificates come from.
#[derive(Clone, Debug)]
pub enum CertSource {
    /// cert-manager (or any tool) mounts `tls.crt`, `tls.key` and `ca.crt` here, and
    /// injects the caBundle itself.
    Dir(PathBuf),
    /// The operator keeps them in this Secret and writes the pair into `dir` for the
    /// push server.
    Secret {
        /// Secret name in the operator's namespace.
        name: String,
        /// Where the serving pair is written.
        dir: PathBuf,
        /// The MutatingWebhookConfiguration to keep the caBundle of.
        webhook_config: String,
    },
}

/// The webhook's settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// HTTPS address.
    pub listen: SocketAddr,
    /// What injected pods get.
    pub inject: Config,
    /// Certificates.
    pub certs: CertSource,
    /// The Service's DNS names (for the self-managed certificate).
    pub names: Vec<String>,
    /// `LLMESH_WATCH_NAMESPACE`: the one namespace the operator serves, so the only one
    /// whose pods can use a sidecar and get the CA ConfigMap.
    pub watch_namespace: Option<String>,
}

impl Settings {
    /// Reads the settings from the environment; `Ok(None)` when the webhook is off.
    pub fn from_env() -> Result<Option<Settings>, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`Settings::from_env`], from any lookup (tests).
    pub fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Option<Settings>, String> {
        let get = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let Some(listen) = get("LLMESH_WEBHOOK_LISTEN") else {
            return Ok(None);
        };
        let listen = listen
            .parse()
            .map_err(|_| format!("LLMESH_WEBHOOK_LISTEN: {listen:?} is not an address"))?;
        let image = get("LLMESH_SIDECAR_IMAGE")
            .ok_or("LLMESH_SIDECAR_IMAGE is required with LLMESH_WEBHOOK_LISTEN")?;
        let namespace = get("POD_NAMESPACE").unwrap_or_else(|| "llmesh-system".into());
        let service = get("LLMESH_SERVICE_NAME").unwrap_or_else(|| "llmesh-operator".into());
        let port: u16 = get("LLMESH_PUSH_PORT")
            .unwrap_or_else(|| "8443".into())
            .parse()
            .map_err(|_| "LLMESH_PUSH_PORT: not a port".to_owned())?;
        // Unset means the default; set but empty means no value at all.
        let resource = |k: &str, kind: Resource, default: Option<&str>| match env(k) {
            Some(v) if v.trim().is_empty() => Ok(None),
            Some(v) => match kind.check(v.trim()) {
                Ok(_) => Ok(Some(v.trim().to_owned())),
                Err(e) => Err(format!("{k}: {v:?} {e}")),
            },
            None => Ok(default.map(str::to_owned)),
        };
        let log_format = get("LLMESH_SIDECAR_LOG_FORMAT").unwrap_or_else(|| "json".into());
        if log_format != "json" && log_format != "text" {
            return Err(format!(
                "LLMESH_SIDECAR_LOG_FORMAT: {log_format:?} is not text or json"
            ));
        }
        let pull_policy =
            get("LLMESH_SIDECAR_PULL_POLICY").unwrap_or_else(|| "IfNotPresent".into());
        if !["Always", "IfNotPresent", "Never"].contains(&pull_policy.as_str()) {
            return Err(format!(
                "LLMESH_SIDECAR_PULL_POLICY: {pull_policy:?} is not Always, IfNotPresent or Never"
            ));
        }
        let inject = Config {
            image,
            pull_policy,
            operator_url: format!("https://{service}.{namespace}.svc:{port}"),
            ca_config_map: get("LLMESH_CA_CONFIGMAP").unwrap_or_else(|| "llmesh-ca".into()),
            operator_namespace: namespace.clone(),
            resources: Resources {
                cpu_request: resource("LLMESH_SIDECAR_CPU_REQUEST", Resource::Cpu, Some("50m"))?,
                memory_request: resource(
                    "LLMESH_SIDECAR_MEMORY_REQUEST",
                    Resource::Memory,
                    Some("64Mi"),
                )?,
                cpu_limit: resource("LLMESH_SIDECAR_CPU_LIMIT", Resource::Cpu, None)?,
                memory_limit: resource(
                    "LLMESH_SIDECAR_MEMORY_LIMIT",
                    Resource::Memory,
                    Some("256Mi"),
                )?,
            },
            log_format,
        };
        // Every injected pod starts from these: a default request above its default
        // limit would make every pod without annotations invalid, so it stops the start.
        let r = &inject.resources;
        for (request, limit, names) in [
            (&r.cpu_request, &r.cpu_limit, "CPU"),
            (&r.memory_request, &r.memory_limit, "MEMORY"),
        ] {
            let (Some(request), Some(limit)) = (request, limit) else {
                continue;
            };
            let above = Quantity::parse(request)
                .ok()
                .zip(Quantity::parse(limit).ok())
                .is_some_and(|(request, limit)| request > limit);
            if above {
                return Err(format!(
                    "LLMESH_SIDECAR_{names}_REQUEST ({request}) is above \
                     LLMESH_SIDECAR_{names}_LIMIT ({limit}): a request cannot exceed its limit \
                     (an unset variable means its default)"
                ));
            }
        }
        let certs = match get("LLMESH_TLS_DIR") {
            Some(dir) => CertSource::Dir(dir.into()),
            None => CertSource::Secret {
                name: get("LLMESH_CERT_SECRET").unwrap_or_else(|| "llmesh-operator-tls".into()),
                dir: get("LLMESH_CERT_DIR")
                    .unwrap_or_else(|| "/tmp/llmesh-tls".into())
                    .into(),
                webhook_config: get("LLMESH_WEBHOOK_CONFIG")
                    .unwrap_or_else(|| "llmesh-sidecar-injector".into()),
            },
        };
        let names = vec![
            format!("{service}.{namespace}.svc"),
            format!("{service}.{namespace}.svc.cluster.local"),
            service,
            "localhost".to_owned(),
        ];
        Ok(Some(Settings {
            listen,
            inject,
            certs,
            names,
            watch_namespace: get("LLMESH_WATCH_NAMESPACE"),
        }))
    }
}

/// The webhook, ready to serve: certificates loaded, listener bound.
pub struct Prepared {
    settings: Settings,
    bundle: certs::Bundle,
    served: Arc<reload::Reloadable>,
    listener: TcpListener,
    /// The serving pair on disk, for the push server (self-managed mode).
    pair: Option<(PathBuf, PathBuf)>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Reads the settings and, when the webhook is on, loads or creates its certificates and
/// binds its listener. Done before the push server starts, so both serve the same
/// certificate (see [`Prepared::push_tls`]).
pub async fn prepare(client: &kube::Client) -> Result<Option<Prepared>, Error> {
    let settings = match Settings::from_env() {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Error::Tls(format!("webhook settings: {e}"))),
    };
    prepare_with(client, settings).await.map(Some)
}

/// [`prepare`] with explicit settings.
pub async fn prepare_with(client: &kube::Client, settings: Settings) -> Result<Prepared, Error> {
    let read = |dir: &PathBuf, file: &str| {
        std::fs::read_to_string(dir.join(file))
            .map_err(|e| Error::Tls(format!("{}: {e}", dir.join(file).display())))
    };
    let (bundle, pair) = match &settings.certs {
        CertSource::Dir(dir) => (
            certs::Bundle {
                ca_pem: read(dir, certs::CA_CRT)?,
                cert_pem: read(dir, certs::TLS_CRT)?,
                key_pem: read(dir, certs::TLS_KEY)?,
            },
            None,
        ),
        CertSource::Secret { name, dir, .. } => {
            let namespace = &settings.inject.operator_namespace;
            let bundle = certs::ensure_secret(client, namespace, name, &settings.names).await?;
            let write = |file: &str, pem: &str| {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                // Owner-only: the key is as secret as the Secret it came from.
                std::fs::create_dir_all(dir)
                    .and_then(|()| {
                        std::fs::OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(true)
                            .mode(0o600)
                            .open(dir.join(file))
                    })
                    .and_then(|mut f| f.write_all(pem.as_bytes()))
                    .map_err(|e| Error::Tls(format!("{}: {e}", dir.join(file).display())))
            };
            write(certs::TLS_CRT, &bundle.cert_pem)?;
            write(certs::TLS_KEY, &bundle.key_pem)?;
            (
                bundle,
                Some((dir.join(certs::TLS_CRT), dir.join(certs::TLS_KEY))),
            )
        }
    };
    let listener = TcpListener::bind(settings.listen)
        .await
        .map_err(|e| Error::Tls(format!("webhook listen {}: {e}", settings.listen)))?;
    let served = reload::Reloadable::new(&bundle)?;
    Ok(Prepared {
        settings,
        bundle,
        served,
        listener,
        pair,
    })
}

impl Prepared {
    /// The push server's certificate: the self-managed pair when the push server would
    /// otherwise make its own (one per replica, which no sidecar could trust).
    pub fn push_tls(&self, current: &TlsSource) -> Option<TlsSource> {
        match (current, &self.pair) {
            (TlsSource::SelfSigned(_), Some((cert, key))) => Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// The push server's TLS config in self-managed mode: the same certificate as the
    /// webhook's, swapped in place when the running operator renews it.
    pub fn push_server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        // Only the self-managed pair is renewed here; cert-manager's files are read at start.
        self.pair.as_ref()?;
        match self.served.server_config() {
            Ok(config) => Some(config),
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a reloading TLS config for the push");
                None
            }
        }
    }

    /// The CA PEM the sidecars and the API server trust.
    pub fn ca_pem(&self) -> &str {
        &self.bundle.ca_pem
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Runs the webhook, the namespace watch (labels, CA ConfigMaps) and the caBundle
    /// upkeep until `shutdown`.
    pub async fn run(
        self,
        client: kube::Client,
        metrics: Metrics,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let tls = self.served.server_config()?;
        let counter = IntCounterVec::new(
            prometheus::Opts::new(
                "injections_total",
                "Admission reviews of pods by the injection webhook, by result.",
            ),
            &["result"],
        )
        .map_err(|e| Error::Tls(e.to_string()))?;
        // Registered once per process; a second registration (tests) keeps the first.
        let _ = metrics.registry.register(Box::new(counter.clone()));
        let (store, writer) = reflector::store::<Namespace>();
        let ca_config_map = self.settings.inject.ca_config_map.clone();
        let webhook_config = match &self.settings.certs {
            CertSource::Secret { webhook_config, .. } => Some(webhook_config.clone()),
            CertSource::Dir(_) => None,
        };
        let watch = tokio::spawn(certs::watch_namespaces(
            client.clone(),
            writer,
            self.settings.watch_namespace.clone(),
            ca_config_map.clone(),
            self.bundle.ca_pem.clone(),
        ));
        let renewal = match &self.settings.certs {
            CertSource::Secret { name, .. } => Some(tokio::spawn(renew_loop(
                client.clone(),
                self.settings.clone(),
                name.clone(),
                self.bundle.ca_pem.clone(),
                self.served.clone(),
            ))),
            CertSource::Dir(_) => None,
        };
        let upkeep = tokio::spawn(certs::recheck(
            client.clone(),
            store.clone(),
            webhook_config,
            ca_config_map,
            self.bundle.ca_pem.clone(),
        ));
        // Answer nothing before the namespaces are known: a pod in an enabled namespace
        // must not slip through uninjected because the watch had not listed it yet.
        // (The API server waits, then retries or applies the failure policy.)
        if store.wait_until_ready().await.is_err() {
            return Err(Error::Tls(
                "the namespace watch ended before it was ready".into(),
            ));
        }
        tracing::info!(listen = ?self.local_addr(), "injection webhook running");
        let state = Arc::new(State {
            config: self.settings.inject,
            client,
            namespaces: store,
            counter,
        });
        serve(self.listener, tls, state, shutdown).await;
        watch.abort();
        upkeep.abort();
        if let Some(renewal) = renewal {
            renewal.abort();
        }
        Ok(())
    }
}

/// Every [`certs::RENEW_CHECK`]: renews the serving certificate when due and serves
/// whatever the Secret holds now (this replica's renewal or the other's).
async fn renew_loop(
    client: kube::Client,
    settings: Settings,
    secret: String,
    ca_pem: String,
    served: Arc<reload::Reloadable>,
) {
    let mut tick = tokio::time::interval(certs::RENEW_CHECK);
    tick.tick().await;
    loop {
        tick.tick().await;
        let namespace = &settings.inject.operator_namespace;
        let renewed = certs::renew(
            &client,
            namespace,
            &secret,
            &settings.names,
            &ca_pem,
            &served.cert_pem(),
        )
        .await;
        match renewed {
            Ok(Some(bundle)) => match served.swap(&bundle) {
                Ok(_) => tracing::info!(secret = %secret, "serving the renewed certificate"),
                Err(e) => {
                    tracing::warn!(secret = %secret, error = %e, "cannot load the renewed certificate")
                }
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(secret = %secret, error = %e, "certificate renewal check failed")
            }
        }
    }
}

struct State {
    config: Config,
    client: kube::Client,
    namespaces: Store<Namespace>,
    counter: IntCounterVec,
}

async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let acceptor = TlsAcceptor::from(tls);
    // Hyper's timers on: a client that never finishes its headers is dropped.
    let builder = crate::push::builder();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    return tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
                }
                Err(_) => return tracing::debug!(%peer, "webhook TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |req| handle(state.clone(), req));
            let _ = builder.serve_connection(TokioIo::new(tls), service).await;
        });
    }
}

fn reply(status: StatusCode, body: Vec<u8>, json: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let kind = if json {
        "application/json"
    } else {
        "text/plain"
    };
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    response
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != http::Method::POST || req.uri().path() != PATH {
        return Ok(reply(StatusCode::NOT_FOUND, b"not found\n".to_vec(), false));
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}\n").into_bytes(),
                false,
            ));
        }
    };
    let review: AdmissionReview<Pod> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("not an AdmissionReview of a Pod: {e}\n").into_bytes(),
                false,
            ));
        }
    };
    let request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(r) => r,
        Err(_) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                b"the AdmissionReview has no request\n".to_vec(),
                false,
            ));
        }
    };
    let response = review_pod(&state, &request).await;
    let review: AdmissionReview<DynamicObject> = response.into_review();
    match serde_json::to_vec(&review) {
        Ok(body) => Ok(reply(StatusCode::OK, body, true)),
        Err(e) => Ok(reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{e}\n").into_bytes(),
            false,
        )),
    }
}

/// Looks up what the pure decision needs, decides, and answers.
async fn review_pod(state: &State, request: &AdmissionRequest<Pod>) -> AdmissionResponse {
    let Some(pod) = &request.object else {
        return AdmissionResponse::from(request);
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_default();
    let enabled = |ns: &Namespace| {
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(inject::NAMESPACE_LABEL))
            .is_some_and(|v| v == inject::NAMESPACE_ENABLED)
    };
    let namespace_enabled = match state.namespaces.get(&ObjectRef::new(&namespace)) {
        Some(ns) => enabled(&ns),
        // A namespace created a moment ago may not have reached the watch yet.
        None => match Api::<Namespace>::all(state.client.clone())
            .get_opt(&namespace)
            .await
        {
            Ok(ns) => ns.as_ref().is_some_and(enabled),
            Err(e) => {
                tracing::warn!(namespace, error = %e, "cannot read the namespace");
                false
            }
        },
    };
    let mut warnings = Vec::new();
    let virtual_key_secret = match inject::virtual_key(pod) {
        None => None,
        Some(name) => {
            let api: Api<VirtualKey> = Api::namespaced(state.client.clone(), &namespace);
            match api.get_opt(name).await {
                Ok(Some(vk)) => Some(vk.secret_name()),
                // Not there yet (applied in the same sync, say): the default Secret name,
                // which the pod waits for like any missing Secret.
                Ok(None) => {
                    warnings.push(format!(
                        "llmesh: VirtualKey {name:?} not found in {namespace}; using Secret {name}-key"
                    ));
                    Some(format!("{name}-key"))
                }
                Err(e) => {
                    tracing::warn!(namespace, key = name, error = %e, "cannot read the VirtualKey");
                    warnings.push(format!(
                        "llmesh: cannot read VirtualKey {name:?}; using Secret {name}-key"
                    ));
                    Some(format!("{name}-key"))
                }
            }
        }
    };
    let ctx = Context {
        namespace: namespace.clone(),
        namespace_enabled,
        virtual_key_secret,
    };
    let (response, result) = respond(request, &state.config, &ctx, warnings);
    state.counter.with_label_values(&[result]).inc();
    response
}

/// The answer to an admission request, given what was looked up: the pure part of the
/// handler. `warnings` are the lookups' own. Returns the response and a metric label.
pub fn respond(
    request: &AdmissionRequest<Pod>,
    config: &Config,
    ctx: &Context,
    mut warnings: Vec<String>,
) -> (AdmissionResponse, &'static str) {
    let response = AdmissionResponse::from(request);
    let Some(pod) = &request.object else {
        return (response, "skipped");
    };
    let namespace = &ctx.namespace;
    let pod_name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.clone())
        .unwrap_or_default();
    let (response, result) = match inject::inject(pod, config, ctx) {
        Outcome::Patch(patch, more) => {
            warnings.extend(more);
            match response.clone().with_patch(patch) {
                Ok(r) => {
                    tracing::info!(namespace, pod = %pod_name, dry_run = request.dry_run, "injected the sidecar");
                    (r, "injected")
                }
                Err(e) => (response.deny(format!("llmesh: {e}")), "error"),
            }
        }
        Outcome::Skip(skip) => {
            warnings.extend(skip.warning());
            tracing::debug!(namespace, pod = %pod_name, ?skip, "not injected");
            (response, "skipped")
        }
        Outcome::Deny(message) => {
            tracing::info!(namespace, pod = %pod_name, %message, "pod refused");
            (response.deny(message), "denied")
        }
    };
    let mut response = response;
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    (response, result)
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;

//! The sidecar's servers: the OpenAI-compatible API and the admin endpoints, each on its
//! own listener, plus the task that turns incoming config snapshots into routing tables.

pub mod admin;
pub mod api;
pub mod body;
pub mod cached;
pub mod count;
pub mod detached;
pub mod error;
pub mod exchange;
pub mod kept;
pub mod request;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Snapshot;
use crate::config::link::Link;
use crate::meter::Meter;
use crate::meter::lease::Leases;
use crate::meter::report::{Authority, LocalAuthority, Reporter};
use crate::metrics::Metrics;
use crate::router::routes::{Routes, RoutesBuilder};
use crate::telemetry::otel::Tracing;

/// How long shutdown keeps trying to report usage.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);
use crate::upstream::ca_files::{CaFileError, CaFiles};
use crate::upstream::transports::Transports;

/// Listener addresses and limits.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The API listener; loopback by default so only the pod's containers reach it.
    pub api_addr: SocketAddr,
    /// The admin listener (metrics and probes).
    pub admin_addr: SocketAddr,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// How long a client has to send a request's whole body.
    pub body_timeout: Duration,
    /// Request body bytes all connections may buffer at once; a request that would go
    /// beyond is answered 503 with `Retry-After` rather than made to wait.
    pub max_buffered_bytes: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// The virtual key this pod is bound to: calls without a key use it.
    pub bound_key: Option<String>,
    /// Names this sidecar's usage reports; unique per process.
    pub reporter_id: String,
    /// How long the Responses API's stored responses are kept.
    pub responses_ttl: Duration,
    /// How many bytes of stored responses are kept.
    pub responses_max_bytes: usize,
    /// PEM files of CA certificates every upstream is trusted by, besides the web roots.
    pub ca_files: Vec<PathBuf>,
    /// Also trust the system CA store for every upstream.
    pub system_roots: bool,
}

/// A reporter id unique to this process: the pod's name (or host name) and a random
/// suffix, so a restarted sidecar never reuses its predecessor's sequence numbers.
pub fn default_reporter_id() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "sidecar".into());
    format!("{base}-{:08x}", fastrand::u32(..))
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_addr: SocketAddr::from(([127, 0, 0, 1], 4000)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 4001)),
            max_body_bytes: 16 * 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            max_buffered_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            bound_key: None,
            reporter_id: default_reporter_id(),
            responses_ttl: store::DEFAULT_TTL,
            responses_max_bytes: store::DEFAULT_MAX_BYTES,
            ca_files: Vec::new(),
            system_roots: false,
        }
    }
}

/// Why the sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS client could not be set up.
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// A `--ca-file` cannot be used.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// Metrics could not be registered.
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A bound, not yet serving, sidecar.
pub struct Sidecar {
    api: TcpListener,
    admin: TcpListener,
    settings: Settings,
    builder: RoutesBuilder,
    metrics: Arc<Metrics>,
    authority: Arc<dyn Authority>,
    /// Set when usage is folded in-process (no operator): it needs the budgets' limits.
    local: Option<Arc<LocalAuthority>>,
    /// The links to the operator, for `/readyz`.
    link: Option<Arc<Link>>,
    /// The sidecar-wide CA files, polled for changes.
    ca_files: Option<CaFiles>,
    /// The OpenTelemetry trace pipeline, when the environment turns it on.
    tracing: Option<Tracing>,
}

impl Sidecar {
    /// Binds both listeners, with the real upstream HTTP clients trusting the web roots
    /// and what the settings add (`--ca-file`, read now: a bad file is an error).
    pub async fn bind(settings: Settings) -> Result<Sidecar, Error> {
        let (ca_files, trust) = CaFiles::load(settings.ca_files.clone(), settings.system_roots)?;
        let transports = Arc::new(Transports::new(trust)?);
        let builder = RoutesBuilder::with_transports(transports.clone());
        let mut sidecar = Self::bind_with(settings, builder).await?;
        sidecar.ca_files = Some(ca_files);
        // A bad OTLP setting is worth a warning, not an outage: serve without traces.
        sidecar.tracing = Tracing::from_env(transports).unwrap_or_else(|err| {
            tracing::warn!("{err}");
            None
        });
        if sidecar.tracing.is_some() {
            tracing::info!("OpenTelemetry tracing on: spans are exported over OTLP/HTTP");
        }
        Ok(sidecar)
    }

    /// Binds both listeners, routing through `builder` (tests supply transports here).
    pub async fn bind_with(settings: Settings, builder: RoutesBuilder) -> Result<Sidecar, Error> {
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Bind { addr, source })
        };
        let api = bind(settings.api_addr).await?;
        let admin = bind(settings.admin_addr).await?;
        let local = Arc::new(LocalAuthority::default());
        Ok(Sidecar {
            api,
            admin,
            settings,
            builder,
            metrics: Arc::new(Metrics::new()?),
            authority: local.clone(),
            local: Some(local),
            link: None,
            ca_files: None,
            tracing: None,
        })
    }

    /// Reports usage to `authority` (the operator) instead of an in-process ledger.
    pub fn report_to(mut self, authority: Arc<dyn Authority>) -> Self {
        self.authority = authority;
        self.local = None;
        self
    }

    /// Tells `/readyz` how the links to the operator are doing.
    pub fn watch_link(mut self, link: Arc<Link>) -> Self {
        self.link = Some(link);
        self
    }

    /// The API's bound address.
    pub fn api_addr(&self) -> SocketAddr {
        self.api.local_addr().unwrap_or(self.settings.api_addr)
    }

    /// The sidecar's metrics, for config sources to report on.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The admin server's bound address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr().unwrap_or(self.settings.admin_addr)
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests for up to the
    /// grace period. Config arrives on `snapshots`; the API answers 503 until the first.
    pub async fn serve(
        self,
        snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) {
        let (routes_tx, routes_rx) = watch::channel(None);
        let config_task = tokio::spawn(apply_config(
            snapshots,
            self.builder,
            self.ca_files,
            routes_tx,
            self.metrics.clone(),
        ));
        let leases = Arc::new(Leases::default());
        let reporter = Arc::new(
            Reporter::new(
                self.settings.reporter_id.clone(),
                self.authority.clone(),
                leases.clone(),
            )
            .with_gauge(self.metrics.usage_unacknowledged.clone()),
        );
        let meter = Arc::new(Meter {
            reporter: reporter.clone(),
            leases,
            bound_key: self.settings.bound_key.clone(),
            metrics: self.metrics.clone(),
        });
        if let Some(local) = self.local.clone() {
            let mut routes = routes_rx.clone();
            tokio::spawn(async move {
                loop {
                    if let Some(r) = routes.borrow_and_update().as_ref() {
                        local.set_limits(
                            r.budgets
                                .iter()
                                .map(|b| (b.name.clone(), b.limit_micros))
                                .collect(),
                        );
                    }
                    if routes.changed().await.is_err() {
                        return;
                    }
                }
            });
        }
        let (report_stop_tx, report_stop_rx) = watch::channel(false);
        let report_task = tokio::spawn(reporter.clone().run(routes_rx.clone(), report_stop_rx));
        let detached = Arc::new(detached::Detached::default());
        let proxy = Arc::new(api::Proxy {
            routes: routes_rx.clone(),
            metrics: self.metrics.clone(),
            max_body_bytes: self.settings.max_body_bytes,
            body_timeout: self.settings.body_timeout,
            body_bytes: Arc::new(tokio::sync::Semaphore::new(
                self.settings
                    .max_buffered_bytes
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
            meter,
            detached: detached.clone(),
            responses: Arc::new(store::Store::new(
                self.settings.responses_ttl,
                self.settings.responses_max_bytes,
            )),
            tracer: self.tracing.as_ref().map(|t| t.tracer().clone()),
        });
        let last_routes = routes_rx.clone();
        let admin = Arc::new(admin::Admin {
            routes: routes_rx,
            metrics: self.metrics,
            link: self.link,
        });
        tracing::info!(api = %self.api.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()),
            admin = %self.admin.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "llmesh sidecar listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let admin_task = tokio::spawn(accept_loop(self.admin, stop_rx.clone(), move |req| {
            let admin = admin.clone();
            async move { Ok::<_, std::convert::Infallible>(admin::handle(&admin, &req)) }
        }));
        let api_task = tokio::spawn(accept_loop(self.api, stop_rx, move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, std::convert::Infallible>(api::handle(proxy, req).await) }
        }));
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
        let grace = self.settings.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        let drained = tokio::time::timeout_at(deadline, async {
            let _ = api_task.await;
            let _ = admin_task.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "in-flight requests still running at the end of the grace period"
            );
        }
        // Calls whose clients left are still running: each settles (at its usage, or
        // stopped at the grace's end, at its reservation) before the last report.
        let stopped = detached.settle_all(deadline).await;
        if stopped > 0 {
            tracing::warn!(
                calls = stopped,
                "calls whose clients left were stopped at the end of the grace period and charged their reservation"
            );
        }
        // Everything served is reported before exiting (SIGTERM loses no usage).
        let _ = report_stop_tx.send(true);
        let _ = report_task.await;
        let routes = last_routes.borrow().clone();
        let left = reporter
            .flush(routes.as_deref(), tokio::time::Instant::now() + FLUSH_LIMIT)
            .await;
        if left > 0 {
            tracing::error!(
                records = left,
                "usage records could not be reported before exit"
            );
        } else {
            tracing::info!("usage reported; exiting");
        }
        config_task.abort();
        if let Some(pipeline) = self.tracing {
            // Its batch thread sends on this runtime: wait for it from another thread.
            let _ = tokio::task::spawn_blocking(move || pipeline.shutdown()).await;
        }
    }
}

/// Accepts connections until told to stop, then waits for open connections to finish.
async fn accept_loop<F, Fut>(listener: TcpListener, mut stop: watch::Receiver<bool>, handler: F)
where
    F: Fn(http::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<body::ProxyBody>, std::convert::Infallible>>
        + Send
        + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .max_buf_size(256 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(256 * 1024);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: pause instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service_fn(handler));
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
            }
            () = stopped(&mut stop) => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Resolves once the stop flag is set (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Turns each new snapshot into routes; a snapshot that fails validation is logged and
/// the last good routes stay in use. A change of the CA files rebuilds the routes of
/// the current snapshot with clients that trust the new CAs.
async fn apply_config(
    mut snapshots: watch::Receiver<Option<Arc<Snapshot>>>,
    builder: RoutesBuilder,
    mut ca_files: Option<CaFiles>,
    routes: watch::Sender<Option<Arc<Routes>>>,
    metrics: Arc<Metrics>,
) {
    let mut applied: Option<String> = None;
    let mut source_open = true;
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        // Set when the pod's environment did not say what the snapshot needs.
        let mut again = false;
        // Equal versions mean equal content: nothing to rebuild.
        if let Some(snapshot) = snapshot.filter(|s| applied.as_ref() != Some(&s.version)) {
            if let Err(why) = builder.discover(&snapshot).await {
                tracing::warn!(version = %snapshot.version, "{why}; trying again in {REDISCOVER:?}");
                again = true;
            }
            match builder.build(&snapshot) {
                Ok(built) => {
                    tracing::info!(version = %built.version, models = built.names().len(), "config applied");
                    metrics.set_config_version(&built.version);
                    metrics.config_reloads.with_label_values(&["ok"]).inc();
                    // A snapshot built without what discovery could not learn is built
                    // again once it can.
                    applied = (!again).then(|| built.version.clone());
                    routes.send_replace(Some(Arc::new(built)));
                }
                Err(err) => {
                    tracing::warn!(version = %snapshot.version, error = %err, "config refused; keeping the last good one");
                    metrics.config_reloads.with_label_values(&["error"]).inc();
                }
            }
        }
        let ca_change = async {
            match ca_files.as_mut() {
                Some(files) => files.next_change(builder.transports()).await,
                None => std::future::pending().await,
            }
        };
        // A snapshot built without what the environment did not say yet (it is not
        // `applied`) is tried again after a while, or when a new snapshot arrives.
        let rediscover = async {
            if again {
                tokio::time::sleep(REDISCOVER).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            changed = snapshots.changed(), if source_open => {
                // The source is gone: keep serving the last config until shutdown.
                source_open = changed.is_ok();
            }
            () = ca_change => {
                // The same snapshot again, with the clients of the new trust.
                applied = None;
            }
            () = rediscover => {}
        }
    }
}

/// How long a snapshot whose discovery failed waits before it is applied again.
const REDISCOVER: std::time::Duration = std::time::Duration::from_secs(30);

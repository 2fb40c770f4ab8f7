//! The sidecar injection webhook: a mutating admission webhook served over HTTPS, with
//! its certificates either self-managed ([`certs`]: a CA and serving certificate in a
//! Secret, the CA patched into the webhook configuration and published to every
//! namespace) or mounted from files (cert-manager).
//!
//! Configured from the environment (the chart sets it), so that turning injection on
//! needs no new flag: the variables are read in [`crate::settings`], and their defaults
//! and meanings are described once, in [`crate::cli::OPERATOR`] (`llmesh-operator
//! --help`, `docs/operations.md`). The admission review itself is in `review.rs`; the
//! HTTPS serving is [`crate::serving`]'s, shared with the config push.

pub mod certs;
pub mod inject;
pub mod quantity;
pub mod reload;
mod review;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector;
use prometheus::IntCounterVec;
use tokio::net::TcpListener;

use crate::Error;
use crate::metrics::Metrics;
use crate::push::TlsSource;
use crate::serving::Server;
use review::State;

pub use crate::settings::{CertSource, Webhook as Settings};
pub use review::{PATH, respond};

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
        let make = move |_peer| {
            let state = state.clone();
            hyper::service::service_fn(move |req| review::handle(state.clone(), req))
        };
        Server::tls("webhook", tls)
            .serve(self.listener, make, shutdown)
            .await;
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

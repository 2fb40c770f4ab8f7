//! llmesh sidecar: the data plane. An OpenAI-compatible API on localhost that routes
//! each call to the deployments serving its model, retries, cools down failing
//! deployments and falls back to other models.
//!
//! The sidecar owns its config format ([`config::Snapshot`]) and has no Kubernetes
//! dependency; the operator, or the local runner, compiles resources into snapshots and
//! feeds them to [`server::Sidecar::serve`] through a `watch` channel.

pub mod cache;
pub mod cli;
pub mod config;
pub mod domain;
pub mod exposition;
#[doc(hidden)]
pub mod fuzz;
pub mod hex;
pub mod meter;
pub mod metrics;
pub mod provider;
pub mod router;
pub mod server;
pub mod telemetry;
pub mod upstream;

pub use server::{Settings, Sidecar};

/// Resolves on SIGTERM or Ctrl-C: the signals Kubernetes and a terminal send.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

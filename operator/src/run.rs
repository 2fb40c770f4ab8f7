//! Wires the operator together: checks the CRDs are installed, starts the hub, the three
//! controllers and the admin server, and runs until a shutdown signal.

use std::future::Future;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::ListParams;
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::watcher;
use llmesh_crds::{Budget, LlmModel, VirtualKey};

use crate::controllers::{self, Context};
use crate::hub::{Hub, scoped};
use crate::metrics::Metrics;

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The CRDs are missing.
    #[error(
        "the llmesh CRDs are not installed in this cluster (install the chart, or `kubectl apply -f crds/`)"
    )]
    CrdsMissing,
    /// The API server could not be reached.
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Metrics could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Settings of one operator process.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Pod name, for Events.
    pub instance: Option<String>,
    /// Watch this namespace only (a namespace-scoped install); all when unset.
    pub namespace: Option<String>,
}

/// Checks that each CRD is served, in `namespace` when the operator serves one (its
/// Role grants nothing cluster-wide).
pub async fn check_crds(client: &Client, namespace: Option<&str>) -> Result<(), StartError> {
    let lp = ListParams::default().limit(1);
    for result in [
        scoped::<LlmModel>(client, namespace)
            .list_metadata(&lp)
            .await
            .map(drop),
        scoped::<VirtualKey>(client, namespace)
            .list_metadata(&lp)
            .await
            .map(drop),
        scoped::<Budget>(client, namespace)
            .list_metadata(&lp)
            .await
            .map(drop),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Err(StartError::CrdsMissing),
            Err(e) => return Err(StartError::Kube(e)),
        }
    }
    Ok(())
}

/// A running operator's shared parts.
pub struct Operator {
    /// Controllers' context.
    pub ctx: Arc<Context>,
}

/// Starts the hub and controllers; they run until `shutdown` resolves.
pub async fn start(
    client: Client,
    settings: &Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
) -> Result<Operator, StartError> {
    check_crds(&client, settings.namespace.as_deref()).await?;
    let metrics = Metrics::new()?;
    let ns = settings.namespace.as_deref();
    let hub = Hub::start(client.clone(), ns, metrics.clone());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "llmesh-operator".into(),
            instance: settings.instance.clone(),
        },
    );
    let ctx = Arc::new(Context::new(client.clone(), hub.clone(), metrics, recorder));

    let models = Controller::new(scoped::<LlmModel>(&client, ns), watcher::Config::default());
    tokio::spawn(
        models
            .reconcile_all_on(problem_changes(&hub))
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::llm_model::reconcile,
                |o, e, c| {
                    controllers::error_policy(controllers::llm_model::NAME, o.as_ref(), e, &c)
                },
                ctx.clone(),
            )
            .for_each(|_| async {}),
    );
    let keys = Controller::new(
        scoped::<VirtualKey>(&client, ns),
        watcher::Config::default(),
    )
    .owns(
        scoped::<Secret>(&client, ns),
        // `llmesh` is what earlier operators wrote on key Secrets: those stay watched
        // until they are rewritten.
        watcher::Config::default().labels(&format!(
            "{} in ({}, llmesh)",
            crate::MANAGED_BY.0,
            crate::MANAGED_BY.1
        )),
    );
    tokio::spawn(
        keys.reconcile_all_on(problem_changes(&hub))
            .graceful_shutdown_on(shutdown.clone())
            .run(
                controllers::virtual_key::reconcile,
                |o, e, c| {
                    controllers::error_policy(controllers::virtual_key::NAME, o.as_ref(), e, &c)
                },
                ctx.clone(),
            )
            .for_each(|_| async {}),
    );
    let budgets = Controller::new(scoped::<Budget>(&client, ns), watcher::Config::default());
    tokio::spawn(
        budgets
            .reconcile_all_on(problem_changes(&hub))
            .graceful_shutdown_on(shutdown)
            .run(
                controllers::budget::reconcile,
                |o, e, c| controllers::error_policy(controllers::budget::NAME, o.as_ref(), e, &c),
                ctx.clone(),
            )
            .for_each(|_| async {}),
    );
    Ok(Operator { ctx })
}

/// Fires when any namespace's compile problems change, so statuses that depend on other
/// objects (a Secret, a fallback model) are refreshed. Reconciles that find their status
/// unchanged write nothing, so this is cheap.
fn problem_changes(hub: &Hub) -> impl futures_util::Stream<Item = ()> + Send + 'static {
    hub.problem_changes().map(|_| ())
}

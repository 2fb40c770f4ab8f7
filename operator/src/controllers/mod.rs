//! One kube-runtime controller per resource. Each reconcile is a free function that reads
//! the hub's caches, decides the status (pure helpers below), and writes it through the
//! status subresource under the [`MANAGER`] field manager.

pub mod budget;
pub mod llm_model;
pub mod virtual_key;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::{Client, Resource, ResourceExt};

use crate::compile::{Problem, Severity};
use crate::error::Error;
use crate::hub::Hub;
use crate::metrics::Metrics;

/// The field manager of every write.
pub const MANAGER: &str = "llmesh-operator";

/// What reconciles share.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Caches and snapshots.
    pub hub: Arc<Hub>,
    /// Metrics.
    pub metrics: Metrics,
    /// Event recorder.
    pub recorder: Recorder,
    /// Consecutive failures per object, for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context.
    pub fn new(client: Client, hub: Arc<Hub>, metrics: Metrics, recorder: Recorder) -> Self {
        Context {
            client,
            hub,
            metrics,
            recorder,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a successful reconcile of `controller`.
    pub fn succeeded<K: Resource>(&self, controller: &str, obj: &K, started: std::time::Instant) {
        self.metrics
            .reconciles
            .with_label_values(&[controller])
            .inc();
        self.metrics
            .reconcile_duration
            .with_label_values(&[controller])
            .observe(started.elapsed().as_secs_f64());
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key(obj));
    }
}

fn key<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

/// Counts the failure and requeues with exponential backoff (1 s doubling to 5 min), so a
/// broken object never hot-loops.
pub fn error_policy<K: Resource>(
    controller: &'static str,
    obj: &K,
    err: &Error,
    ctx: &Context,
) -> Action {
    ctx.metrics
        .reconcile_errors
        .with_label_values(&[controller, err.metric_label()])
        .inc();
    let mut failures = ctx
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = failures.entry(key(obj)).or_insert(0);
    *n = n.saturating_add(1);
    let delay = Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300));
    tracing::warn!(controller, object = %key(obj), error = %err, retry_in_s = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

/// The `Ready` condition for a resource with these compile problems, keeping the previous
/// transition time when the status did not change.
pub fn ready_condition(
    generation: Option<i64>,
    problems: &[&Problem],
    ok_reason: &str,
    ok_message: String,
    previous: &[Condition],
) -> Condition {
    let errors: Vec<&&Problem> = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .collect();
    let warnings: Vec<String> = problems
        .iter()
        .filter(|p| p.severity == Severity::Warning)
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    let (status, reason, message) = match errors.first() {
        Some(first) => (
            "False",
            first.reason.as_str().to_owned(),
            errors
                .iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        None if warnings.is_empty() => ("True", ok_reason.to_owned(), ok_message),
        None => (
            "True",
            ok_reason.to_owned(),
            format!("{ok_message}; warnings: {}", warnings.join("; ")),
        ),
    };
    condition("Ready", status, &reason, message, generation, previous)
}

/// A condition, keeping `lastTransitionTime` if its status is unchanged.
pub fn condition(
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: &[Condition],
) -> Condition {
    let last = previous
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .map(|c| c.last_transition_time.clone());
    Condition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        // Kubernetes caps condition messages at 32768 bytes.
        message: truncate(message, 4096),
        observed_generation: generation,
        last_transition_time: last.unwrap_or_else(|| Time(jiff::Timestamp::now())),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

/// The object's namespace and name, or an error naming what is missing.
pub fn locate<K: Resource>(obj: &K) -> Result<(String, String), Error> {
    let ns = obj.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    Ok((ns, obj.name_any()))
}

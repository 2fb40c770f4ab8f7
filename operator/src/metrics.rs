//! Prometheus metrics of the control plane.

use llmesh_sidecar::exposition::Registry;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
};

/// Every operator metric.
#[derive(Clone)]
pub struct Metrics {
    /// The registry served on `/metrics`, listing every family (those without samples
    /// too: see [`llmesh_sidecar::exposition`]).
    pub registry: Registry,
    /// Reconciles by controller.
    pub reconciles: IntCounterVec,
    /// Failed reconciles by controller and error.
    pub reconcile_errors: IntCounterVec,
    /// Reconcile duration by controller.
    pub reconcile_duration: HistogramVec,
    /// Sidecars connected to this replica.
    pub connected_sidecars: IntGauge,
    /// 1 for each namespace's current snapshot version.
    pub snapshot_version: IntGaugeVec,
    /// From a resource change being seen to its snapshot being sent to a sidecar that was
    /// already connected (a new connection's first snapshot is not a change delivered).
    pub push_latency: HistogramVec,
    /// Usage reports by result (`ok`, `duplicate`, `error`, `refused`).
    pub usage_reports: IntCounterVec,
    /// Spend folded into Budget status, micro-dollars, by namespace and budget.
    pub budget_spend: IntCounterVec,
    /// Namespace compiles: one per change to a namespace's inputs, however many
    /// reconciles and usage reports read the result.
    pub compiles: IntCounter,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new("llmesh_operator")?;
        let reconciles = IntCounterVec::new(
            Opts::new("reconciles_total", "Reconciles by controller."),
            &["controller"],
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "reconcile_errors_total",
                "Failed reconciles by controller and error.",
            ),
            &["controller", "error"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Reconcile duration.")
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0]),
            &["controller"],
        )?;
        let connected_sidecars =
            IntGauge::new("connected_sidecars", "Sidecars connected to this replica.")?;
        let snapshot_version = IntGaugeVec::new(
            Opts::new(
                "snapshot_info",
                "1 for each namespace's current snapshot version.",
            ),
            &["namespace", "version"],
        )?;
        let push_latency = HistogramVec::new(
            HistogramOpts::new(
                "push_latency_seconds",
                "From a change being seen to its snapshot being sent to a connected sidecar.",
            )
            .buckets(vec![0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            &["kind"],
        )?;
        let usage_reports = IntCounterVec::new(
            Opts::new(
                "usage_reports_total",
                "Usage reports from sidecars by result.",
            ),
            &["result"],
        )?;
        let budget_spend = IntCounterVec::new(
            Opts::new(
                "budget_spend_micros_total",
                "Spend folded into Budget status, in micro-dollars.",
            ),
            &["namespace", "budget"],
        )?;
        let compiles = IntCounter::new(
            "compiles_total",
            "Namespace compiles (one per change to a namespace's resources).",
        )?;
        for m in [
            Box::new(usage_reports.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(compiles.clone()),
            Box::new(budget_spend.clone()),
            Box::new(reconciles.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(reconcile_duration.clone()),
            Box::new(connected_sidecars.clone()),
            Box::new(snapshot_version.clone()),
            Box::new(push_latency.clone()),
        ] {
            registry.register(m)?;
        }
        Ok(Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            connected_sidecars,
            snapshot_version,
            push_latency,
            usage_reports,
            budget_spend,
            compiles,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> Vec<u8> {
        self.registry.render()
    }
}

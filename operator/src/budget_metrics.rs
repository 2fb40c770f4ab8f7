//! Budget gauges for alerting: each Budget's spend and what remains, from its status
//! (the ledger the budget controller writes), so Prometheus can warn before a budget is
//! exhausted (the chart's `LLMeshBudgetNearlyExhausted` rule).
//!
//! Kept apart from the budget controller: it only reads, from its own watch, and every
//! replica exports the same values (alerts take the `max` over replicas).

use futures_util::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};
use llmesh_crds::Budget;
use prometheus::{IntGaugeVec, Opts};

use crate::metrics::Metrics;

/// The gauges, registered in the operator's registry.
#[derive(Clone)]
pub struct BudgetGauges {
    /// `llmesh_operator_budget_spent_micros{namespace,budget}`.
    pub spent: IntGaugeVec,
    /// `llmesh_operator_budget_remaining_micros{namespace,budget}`.
    pub remaining: IntGaugeVec,
    /// `llmesh_operator_budget_exhausted{namespace,budget}`: 1 or 0.
    pub exhausted: IntGaugeVec,
}

impl BudgetGauges {
    /// Creates the gauges and registers them with `metrics`.
    pub fn register(metrics: &Metrics) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["namespace", "budget"])
        };
        let gauges = BudgetGauges {
            spent: gauge(
                "budget_spent_micros",
                "Spend in the budget's current period, in micro-dollars.",
            )?,
            remaining: gauge(
                "budget_remaining_micros",
                "What remains of the budget's limit this period, in micro-dollars.",
            )?,
            exhausted: gauge("budget_exhausted", "1 while the budget is exhausted.")?,
        };
        for g in [&gauges.spent, &gauges.remaining, &gauges.exhausted] {
            metrics.registry.register(Box::new(g.clone()))?;
        }
        Ok(gauges)
    }

    /// Sets the gauges of one budget from its status.
    pub fn set(&self, budget: &Budget) {
        let ns = budget.namespace().unwrap_or_default();
        let name = budget.name_any();
        let labels = [ns.as_str(), name.as_str()];
        let status = budget.status.clone().unwrap_or_default();
        self.spent
            .with_label_values(&labels)
            .set(status.spent_micros);
        self.remaining
            .with_label_values(&labels)
            .set(status.remaining_micros);
        self.exhausted
            .with_label_values(&labels)
            .set(i64::from(status.exhausted));
    }

    /// Drops a deleted budget's series.
    pub fn forget(&self, budget: &Budget) {
        let ns = budget.namespace().unwrap_or_default();
        let name = budget.name_any();
        for g in [&self.spent, &self.remaining, &self.exhausted] {
            let _ = g.remove_label_values(&[ns.as_str(), name.as_str()]);
        }
    }
}

/// Watches Budgets (in `namespace`, or all) and keeps the gauges current. Runs until
/// the process ends; the watch retries with backoff.
pub async fn export(client: kube::Client, metrics: Metrics, namespace: Option<String>) {
    let gauges = match BudgetGauges::register(&metrics) {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "budget gauges not registered");
            return;
        }
    };
    let api: Api<Budget> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    futures_util::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(b) | watcher::Event::InitApply(b)) => gauges.set(&b),
            Ok(watcher::Event::Delete(b)) => gauges.forget(&b),
            Ok(watcher::Event::Init) => {
                // A relist: forget everything, the InitApply events that follow refill it.
                for g in [&gauges.spent, &gauges.remaining, &gauges.exhausted] {
                    g.reset();
                }
            }
            Ok(watcher::Event::InitDone) => {}
            Err(e) => tracing::debug!(error = %e, "budget watch error; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmesh_crds::budget::BudgetStatus;

    #[test]
    fn gauges_follow_the_status() {
        let metrics = Metrics::new().unwrap();
        let gauges = BudgetGauges::register(&metrics).unwrap();
        // Described before any budget is seen (the dashboard test reads this).
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("# TYPE llmesh_operator_budget_remaining_micros gauge\n"));
        assert!(text.contains("# TYPE llmesh_operator_push_latency_seconds histogram\n"));
        let mut budget = Budget::test("team", "10", ["k"]);
        budget.metadata.namespace = Some("a".into());
        budget.status = Some(BudgetStatus {
            spent_micros: 9_500_000,
            remaining_micros: 500_000,
            ..BudgetStatus::default()
        });
        gauges.set(&budget);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains(
            "llmesh_operator_budget_spent_micros{budget=\"team\",namespace=\"a\"} 9500000"
        ));
        assert!(
            text.contains("llmesh_operator_budget_exhausted{budget=\"team\",namespace=\"a\"} 0")
        );
        gauges.forget(&budget);
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(!text.contains("budget=\"team\""));
    }
}

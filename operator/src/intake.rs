//! Usage intake: folds sidecars' usage reports into Budget status and answers with their
//! leases and their shares of keys' rate limits (protocol in
//! [`llmesh_sidecar::meter::report`]).
//!
//! Budget status is the ledger and the only durable state: a report is acknowledged
//! only after every budget it touches is written, each write is resourceVersion-checked
//! (a conflict re-reads and folds again), and each budget remembers the last batch folded
//! per reporter, so a batch resent after a lost answer, to this replica or another, or
//! after an operator restart, counts once. The fold itself is shared with the sidecar's
//! in-process ledger ([`llmesh_sidecar::meter::ledger`]).
//!
//! Shares are computed from the demand this replica hears, so with sidecars of one
//! namespace reporting to several replicas each replica shares out the whole limit; the
//! bound in `docs/architecture.md` accounts for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Api;
use kube::api::PostParams;
use llmesh_crds::Budget;
use llmesh_crds::budget::BudgetReporter;
use llmesh_sidecar::meter::ledger::{self, Reporter};
use llmesh_sidecar::meter::limiter::WHOLE;
use llmesh_sidecar::meter::report::{Ack, LeaseGrant, Report};
use tokio::time::Instant;

use crate::controllers::budget::{alert, next_status};
use crate::controllers::{Context, MANAGER};
use crate::error::{Error, Result};

/// Largest report accepted, bytes.
pub const MAX_REPORT_BYTES: usize = 16 * 1024 * 1024;
/// A reporter silent this long no longer takes part in a key's shares.
const SHARE_WINDOW: Duration = Duration::from_secs(5);
/// Status is rewritten at least this often for a live reporter, to keep its lease live.
const REFRESH_MS: i64 = ledger::LEASE_TTL_MS / 3;
/// Attempts at a conflicted status write before the report fails (and is resent).
const ATTEMPTS: usize = 12;

/// Why a report was refused outright.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The report is malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Reporter → (smoothed demand, last heard), for one key.
type KeyDemand = HashMap<String, (u64, Instant)>;

/// Held while one budget is folded.
type FoldLock = Arc<tokio::sync::Mutex<()>>;

/// Folds reports into Budgets.
pub struct Intake {
    ctx: Arc<Context>,
    /// Demand per (namespace, key).
    demand: Mutex<HashMap<(String, String), KeyDemand>>,
    /// One lock per budget being folded.
    locks: Mutex<HashMap<(String, String), FoldLock>>,
}

impl Intake {
    /// Intake writing through `ctx`'s client.
    pub fn new(ctx: Arc<Context>) -> Self {
        Intake {
            ctx,
            demand: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// Checks a report's shape before anything is written.
    pub fn validate(report: &Report) -> Result<(), Refusal> {
        if report.reporter.is_empty() || report.reporter.len() > 300 {
            return Err(Refusal::Invalid(
                "reporter must be 1 to 300 characters".into(),
            ));
        }
        if report.seq == 0 {
            return Err(Refusal::Invalid("seq starts at 1".into()));
        }
        // Status stores it as a JSON integer, which the API server reads as an int64: a
        // larger one could never be written, and its batch would be resent forever.
        if i64::try_from(report.seq).is_err() {
            return Err(Refusal::Invalid("seq must fit in 63 bits".into()));
        }
        Ok(())
    }

    /// Folds `report` from a sidecar of `namespace` and answers it.
    pub async fn fold(&self, namespace: &str, report: &Report) -> Result<Ack> {
        self.ctx.hub.ready().await;
        let mut ack = Ack {
            seq: report.seq,
            ..Ack::default()
        };
        let mut duplicate = false;
        for (name, part) in report.parts() {
            let refused = report.exhausted.contains(name);
            if let Some((folded, grant)) = self.fold_budget(namespace, name, part, refused).await? {
                duplicate |= !folded.applied && part.cost_micros > 0;
                ack.leases.insert(name.to_owned(), grant);
            }
        }
        ack.shares = self.shares(namespace, report);
        self.ctx
            .metrics
            .usage_reports
            .with_label_values(&[if duplicate { "duplicate" } else { "ok" }])
            .inc();
        Ok(ack)
    }

    /// Folds one budget's part of a report, returning the reporter's lease and what the
    /// budget has left; `None` when the budget does not exist (its spend has nothing
    /// left to count against). `refused`: the sidecar refused calls on it as exhausted.
    async fn fold_budget(
        &self,
        namespace: &str,
        name: &str,
        part: ledger::Part<'_>,
        refused: bool,
    ) -> Result<Option<(ledger::Folded, LeaseGrant)>> {
        let cost = part.cost_micros;
        // One fold per budget at a time in this replica: concurrent reports would only
        // conflict with each other. Other replicas still conflict, and re-read.
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            locks
                .entry((namespace.to_owned(), name.to_owned()))
                .or_default()
                .clone()
        };
        let _held = lock.lock().await;
        let api: Api<Budget> = Api::namespaced(self.ctx.client.clone(), namespace);
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                // Another replica wrote first: back off a little, jittered.
                let ms = fastrand::u64(5..=20 * u64::try_from(attempt).unwrap_or(1));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let Some(budget) = api.get_opt(name).await? else {
                if cost > 0 {
                    tracing::warn!(
                        namespace,
                        budget = name,
                        cost_micros = cost,
                        "usage for a budget that does not exist; dropped"
                    );
                }
                return Ok(None);
            };
            let now = jiff::Timestamp::now();
            let compiled = self.ctx.hub.compiled(namespace);
            // Roll the period first, so spend lands in the period it is folded in.
            let (mut status, _) = next_status(&budget, &compiled, name, now)?;
            let limit = budget.spec.limit.to_micros().unwrap_or(0);
            let mut reporters: Vec<Reporter> = status.reporters.iter().map(from_status).collect();
            let previous_seen = reporters
                .iter()
                .find(|r| r.id == part.reporter)
                .map(|r| (r.seen_unix_ms, r.lease_micros));
            let now_ms = now.as_millisecond();
            let folded = ledger::fold(
                limit,
                &mut status.spent_micros,
                &mut reporters,
                part,
                now_ms,
            );
            let grant = LeaseGrant::new(folded.lease_micros, limit, status.spent_micros);
            // A batch counted once: its refusals mark the budget at the limit in force,
            // which `next_status` shows as exhausted (and alerts on) until it resets.
            if refused && folded.applied && status.refused_at_limit_micros.is_none() {
                status.refused_at_limit_micros = Some(i64::try_from(limit).unwrap_or(i64::MAX));
            }
            // Nothing new but the time it was heard from: skip the write while its lease
            // is still fresh in status.
            if !folded.applied
                && previous_seen.is_some_and(|(seen, lease)| {
                    lease == folded.lease_micros && now_ms - seen < REFRESH_MS
                })
                && reporters.len() == status.reporters.len()
            {
                return Ok(Some((folded, grant)));
            }
            status.reporters = reporters.iter().map(to_status).collect();
            let mut updated = budget.clone();
            updated.status = Some(status);
            let (status, crossed) = next_status(&updated, &compiled, name, now)?;
            updated.status = Some(status.clone());
            match api.replace_status(name, &params, &updated).await {
                Ok(_) => {
                    if folded.applied && cost > 0 {
                        self.ctx
                            .metrics
                            .budget_spend
                            .with_label_values(&[namespace, name])
                            .inc_by(cost);
                    }
                    for threshold in crossed {
                        alert(&self.ctx, &updated, name, threshold, &status).await;
                    }
                    return Ok(Some((folded, grant)));
                }
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(Error::Kube(e)),
            }
        }
        Err(Error::Conflict(format!("budget {namespace}/{name}")))
    }

    /// This reporter's share of each key it reported demand for: its smoothed demand
    /// (plus one, so an idle sidecar keeps a foothold) over the sum of all live
    /// reporters'.
    fn shares(&self, namespace: &str, report: &Report) -> std::collections::BTreeMap<String, u32> {
        let now = Instant::now();
        let mut table = self
            .demand
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut shares = std::collections::BTreeMap::new();
        // Only keys the namespace has: names in a report are the sidecar's say-so, and
        // each one would otherwise stay in this map for good.
        let snapshot = self.ctx.hub.subscribe(namespace).borrow().clone();
        let known = |key: &str| {
            snapshot
                .as_ref()
                .is_some_and(|s| s.keys.iter().any(|k| k.name == key))
        };
        for (key, demand) in &report.demand {
            if !known(key) {
                continue;
            }
            let entry = table
                .entry((namespace.to_owned(), key.clone()))
                .or_default();
            entry.retain(|_, (_, seen)| now.duration_since(*seen) < SHARE_WINDOW);
            let smoothed = entry.get(&report.reporter).map_or(0, |(d, _)| *d);
            // Half the old, half the new: a shift in demand moves shares within seconds.
            let mine = (smoothed + demand.requests.saturating_mul(1000)) / 2;
            entry.insert(report.reporter.clone(), (mine, now));
            let total: u128 = entry.values().map(|(d, _)| u128::from(*d) + 1000).sum();
            let share = (u128::from(mine) + 1000) * u128::from(WHOLE) / total.max(1);
            shares.insert(key.clone(), u32::try_from(share).unwrap_or(WHOLE));
        }
        // Everyone silent for the share window goes, whichever key they reported.
        table.retain(|_, reporters| {
            reporters.retain(|_, (_, seen)| now.duration_since(*seen) < SHARE_WINDOW);
            !reporters.is_empty()
        });
        shares
    }
}

fn from_status(r: &BudgetReporter) -> Reporter {
    Reporter {
        id: r.id.clone(),
        seq: r.seq,
        lease_micros: r.lease_micros,
        seen_unix_ms: r.seen_unix_ms,
    }
}

fn to_status(r: &Reporter) -> BudgetReporter {
    BudgetReporter {
        id: r.id.clone(),
        seq: r.seq,
        lease_micros: r.lease_micros,
        seen_unix_ms: r.seen_unix_ms,
    }
}

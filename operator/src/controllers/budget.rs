//! The Budget controller: keeps the ledger in status. It computes the current period
//! (calendar periods in the budget's time zone, or fixed durations from creation), resets
//! spend at the period's end keeping the finished period in `history`, derives
//! `remaining` and `exhausted` from the spend written by usage intake, and records an
//! Event when spend crosses an alert threshold.
//!
//! Status is written with a resourceVersion-checked replace, never a blind patch: spend
//! is written by others (usage intake), so a stale write must fail rather than erase it.
//! With two operator replicas the same holds: one write wins, the other gets a conflict,
//! re-reads and finds nothing left to do, so a reset or an alert happens once.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource};
use llmesh_crds::Budget;
use llmesh_crds::budget::{BudgetPeriodRecord, BudgetStatus};
use llmesh_crds::shared::UsdAmount;

use super::{Context, MANAGER, condition, locate, ready_condition};
use crate::compile::{Compiled, Kind};
use crate::error::{Error, Result};
use crate::period::window;

/// The controller's name in metrics and logs.
pub const NAME: &str = "budget";
/// Finished periods kept in status.
const HISTORY: usize = 24;

/// Records the Event of a crossed alert threshold (a failure to record is logged: the
/// status already says it).
pub async fn alert(
    ctx: &Context,
    budget: &Budget,
    name: &str,
    threshold: u32,
    status: &BudgetStatus,
) {
    let event = Event {
        type_: EventType::Warning,
        reason: "BudgetThreshold".into(),
        note: Some(threshold_note(name, threshold, status)),
        // One action per threshold: the recorder folds Events of one action into a
        // series of the first, which would hide the 100 % Event behind the 80 % one.
        action: threshold_action(threshold),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &budget.object_ref(&())).await {
        tracing::warn!(budget = %name, error = %e, "cannot record the alert Event");
    }
}

/// The ledger a budget should show at `now`, and the thresholds newly crossed.
pub fn next_status(
    budget: &Budget,
    compiled: &Compiled,
    name: &str,
    now: jiff::Timestamp,
) -> Result<(BudgetStatus, Vec<u32>)> {
    let mut status = budget.status.clone().unwrap_or_default();
    let previous_conditions = status.conditions.clone();
    let problems: Vec<_> = compiled.problems_for(Kind::Budget, name).collect();
    let (period, limit) = match (budget.spec.period.parse(), budget.spec.limit.to_micros()) {
        (Ok(p), Ok(l)) => (p, l),
        _ => {
            status.observed_generation = budget.metadata.generation;
            status.conditions = vec![ready_condition(
                budget.metadata.generation,
                &problems,
                "Tracking",
                String::new(),
                &previous_conditions,
            )];
            return Ok((status, Vec::new()));
        }
    };
    let anchor = budget
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    let current = window(period, &budget.spec.time_zone, anchor, now).map_err(Error::Period)?;
    if status.period_start.as_ref().map(|t| t.0) != Some(current.start) {
        if let Some(start) = status.period_start.take() {
            let end = status.reset_at.take().unwrap_or(Time(current.start));
            status.history.push(BudgetPeriodRecord {
                period_start: start,
                period_end: end,
                spent_micros: status.spent_micros,
                spent: UsdAmount::format_micros(status.spent_micros),
            });
            let excess = status.history.len().saturating_sub(HISTORY);
            status.history.drain(..excess);
        }
        status.spent_micros = 0;
        status.alerted_thresholds.clear();
        status.refused_at_limit_micros = None;
        status.period_start = Some(Time(current.start));
    }
    status.reset_at = Some(Time(current.end));
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // Shown in the same format as spend, whatever spelling the spec used ("50", "50.0").
    status.limit_micros = Some(limit);
    status.limit = Some(UsdAmount::format_micros(limit));
    status.remaining_micros = limit.saturating_sub(status.spent_micros);
    status.spent = Some(UsdAmount::format_micros(status.spent_micros));
    status.remaining = Some(UsdAmount::format_micros(status.remaining_micros));
    // Refusals seen at a lower limit end once the limit is raised: it may pay again.
    if status.refused_at_limit_micros.is_some_and(|at| limit > at) {
        status.refused_at_limit_micros = None;
    }
    let refusing = status.refused_at_limit_micros.is_some();
    status.exhausted = status.spent_micros >= limit || refusing;
    let mut crossed = Vec::new();
    for &threshold in &budget.spec.alert_thresholds {
        // A budget that refuses calls is as good as spent: every threshold (at most
        // 100 %) is reached, so the 100 % Event and alert fire while it refuses.
        let reached = refusing
            || i128::from(status.spent_micros) * 100 >= i128::from(limit) * i128::from(threshold);
        if reached && !status.alerted_thresholds.contains(&threshold) {
            status.alerted_thresholds.push(threshold);
            crossed.push(threshold);
        }
    }
    status.alerted_thresholds.sort_unstable();
    status.observed_generation = budget.metadata.generation;
    let ready = if status.exhausted {
        condition(
            "Ready",
            "True",
            "Exhausted",
            format!(
                "spent {} of {}{}",
                status.spent.clone().unwrap_or_default(),
                status.limit.clone().unwrap_or_default(),
                if refusing && status.spent_micros < limit {
                    "; calls are refused: what is left cannot pay one call's worst case"
                } else {
                    ""
                }
            ),
            budget.metadata.generation,
            &previous_conditions,
        )
    } else {
        ready_condition(
            budget.metadata.generation,
            &problems,
            "Tracking",
            format!(
                "{} left until {}",
                status.remaining.clone().unwrap_or_default(),
                current.end
            ),
            &previous_conditions,
        )
    };
    status.conditions = vec![ready];
    Ok((status, crossed))
}

/// The note of a threshold's Event; a budget that refuses calls before its spend
/// reaches the threshold says so.
pub fn threshold_note(name: &str, threshold: u32, status: &BudgetStatus) -> String {
    let refusing = status.refused_at_limit_micros.is_some()
        && status.spent_micros.saturating_mul(100)
            < status
                .limit_micros
                .unwrap_or(0)
                .saturating_mul(i64::from(threshold));
    format!(
        "Budget {name} reached {threshold}% of {}: spent {}{}",
        status.limit.as_deref().unwrap_or(""),
        status.spent.as_deref().unwrap_or(""),
        if refusing {
            "; calls are refused, what is left cannot pay one call's worst case"
        } else {
            ""
        }
    )
}

/// The Event action of a threshold, e.g. `Reached100Percent`.
pub fn threshold_action(threshold: u32) -> String {
    format!("Reached{threshold}Percent")
}

/// Updates the ledger and announces crossed thresholds.
pub async fn reconcile(budget: Arc<Budget>, ctx: Arc<Context>) -> Result<Action> {
    // Statuses come from the caches: never judge from half-filled ones.
    ctx.hub.ready().await;
    let started = std::time::Instant::now();
    let (ns, name) = locate(budget.as_ref())?;
    let now = jiff::Timestamp::now();
    let compiled = ctx.hub.compiled(&ns);
    let (status, crossed) = next_status(&budget, &compiled, &name, now)?;
    if budget.status.as_ref() != Some(&status) {
        let api: Api<Budget> = Api::namespaced(ctx.client.clone(), &ns);
        let mut updated = (*budget).clone();
        updated.status = Some(status.clone());
        let params = PostParams {
            field_manager: Some(MANAGER.into()),
            ..PostParams::default()
        };
        match api.replace_status(&name, &params, &updated).await {
            Ok(_) => {}
            // Someone else wrote first (usage intake, the other replica): start over
            // from what they wrote.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                ctx.succeeded(NAME, budget.as_ref(), started);
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(Error::Kube(e)),
        }
        for threshold in crossed {
            alert(&ctx, &budget, &name, threshold, &status).await;
        }
    }
    ctx.succeeded(NAME, budget.as_ref(), started);
    let until_reset = status
        .reset_at
        .map(|t| t.0.as_second() - now.as_second())
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(60);
    // Spend arrives from usage intake as status writes, which requeue us anyway.
    Ok(Action::requeue(Duration::from_secs(
        until_reset.clamp(1, 3600),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::{Inputs, compile};

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn budget(spent: i64, period_start: Option<&str>) -> Budget {
        let mut b = Budget::test("team", "10.00", ["k"]);
        b.metadata.creation_timestamp = Some(Time(ts("2026-01-01T00:00:00Z")));
        b.status = Some(BudgetStatus {
            spent_micros: spent,
            period_start: period_start.map(|p| Time(ts(p))),
            reset_at: period_start.map(|_| Time(ts("2026-12-01T00:00:00Z"))),
            ..BudgetStatus::default()
        });
        b
    }

    fn status_at(b: &Budget, now: &str) -> (BudgetStatus, Vec<u32>) {
        let compiled = compile(&Inputs {
            budgets: vec![b.clone()],
            ..Inputs::default()
        });
        next_status(b, &compiled, "team", ts(now)).unwrap()
    }

    #[test]
    fn ledger_shows_spent_remaining_and_reset() {
        let (s, crossed) = status_at(
            &budget(2_500_000, Some("2026-11-01T00:00:00Z")),
            "2026-11-22T10:00:00Z",
        );
        assert_eq!(s.spent.as_deref(), Some("$2.50"));
        assert_eq!(s.remaining_micros, 7_500_000);
        assert_eq!(s.remaining.as_deref(), Some("$7.50"));
        // The limit in the same format, from the spec's "10.00".
        assert_eq!(s.limit_micros, Some(10_000_000));
        assert_eq!(s.limit.as_deref(), Some("$10.00"));
        assert!(
            s.conditions[0]
                .message
                .starts_with("$7.50 left until 2026-12-01T00:00:00Z"),
            "{}",
            s.conditions[0].message
        );
        assert!(!s.exhausted);
        assert_eq!(s.reset_at, Some(Time(ts("2026-12-01T00:00:00Z"))));
        assert!(crossed.is_empty());
        assert_eq!(s.conditions[0].reason, "Tracking");
    }

    #[test]
    fn thresholds_alert_once_and_exhaustion_shows() {
        let mut b = budget(8_500_000, Some("2026-11-01T00:00:00Z"));
        let (s, crossed) = status_at(&b, "2026-11-22T10:00:00Z");
        assert_eq!(crossed, vec![80]);
        b.status = Some(s);
        let (s, crossed) = status_at(&b, "2026-11-22T10:00:01Z");
        assert!(crossed.is_empty(), "already announced");
        b.status = Some(BudgetStatus {
            spent_micros: 10_000_000,
            ..s
        });
        let (s, crossed) = status_at(&b, "2026-11-22T10:00:02Z");
        assert_eq!(crossed, vec![100]);
        assert!(s.exhausted);
        assert_eq!(s.conditions[0].reason, "Exhausted");
        assert_eq!(s.conditions[0].message, "spent $10.00 of $10.00");
    }

    #[test]
    fn a_budget_refusing_calls_is_exhausted_until_reset_or_raised() {
        let mut b = budget(9_500_000, Some("2026-11-01T00:00:00Z"));
        let (s, crossed) = status_at(&b, "2026-11-22T10:00:00Z");
        assert_eq!(crossed, vec![80]);
        assert!(!s.exhausted);
        // Sidecars report refusals at $9.50 of $10.00.
        b.status = Some(BudgetStatus {
            refused_at_limit_micros: Some(10_000_000),
            ..s
        });
        let (s, crossed) = status_at(&b, "2026-11-22T10:00:01Z");
        assert!(s.exhausted);
        assert_eq!(crossed, vec![100], "the 100 % Event fires once");
        assert_eq!(s.conditions[0].reason, "Exhausted");
        assert!(
            s.conditions[0].message.contains("calls are refused"),
            "{}",
            s.conditions[0].message
        );
        assert!(threshold_note("team", 100, &s).contains("calls are refused"));
        b.status = Some(s);
        let (s, crossed) = status_at(&b, "2026-11-22T10:00:02Z");
        assert!(s.exhausted && crossed.is_empty(), "announced already");
        // The period resets: the budget may pay again.
        b.status = Some(s.clone());
        let (reset, _) = status_at(&b, "2026-12-02T00:00:00Z");
        assert!(!reset.exhausted);
        assert_eq!(reset.refused_at_limit_micros, None);
        // The limit is raised: likewise.
        b.spec.limit = llmesh_crds::shared::UsdAmount("20.00".into());
        b.status = Some(s);
        let (raised, crossed) = status_at(&b, "2026-11-22T10:00:03Z");
        assert!(!raised.exhausted);
        assert_eq!(raised.refused_at_limit_micros, None);
        assert!(crossed.is_empty());
    }

    #[test]
    fn the_period_end_resets_spend_and_keeps_history() {
        let b = budget(9_000_000, Some("2026-10-01T00:00:00Z"));
        let (s, _) = status_at(&b, "2026-11-02T00:00:00Z");
        assert_eq!(s.spent_micros, 0);
        assert_eq!(s.period_start, Some(Time(ts("2026-11-01T00:00:00Z"))));
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].spent_micros, 9_000_000);
        assert_eq!(s.history[0].period_start, Time(ts("2026-10-01T00:00:00Z")));
        assert!(s.alerted_thresholds.is_empty());
    }

    #[test]
    fn a_new_budget_starts_its_first_period_without_history() {
        let mut b = budget(0, None);
        b.status = None;
        let (s, _) = status_at(&b, "2026-11-22T10:00:00Z");
        assert_eq!(s.period_start, Some(Time(ts("2026-11-01T00:00:00Z"))));
        assert!(s.history.is_empty());
    }
}

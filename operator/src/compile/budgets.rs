//! Compiles a `Budget`: its limit in micro-dollars, its period checked, its selector and
//! downgrade target checked against the models that compiled.

use std::collections::BTreeSet;

use llmesh_crds::{Budget, budget::BudgetActionType};
use llmesh_sidecar::config::snapshot::BudgetSpec;

use super::{Reason, Report};

pub(super) fn compile_budget(
    name: &str,
    budget: &Budget,
    models: &BTreeSet<String>,
    report: &mut Report<'_>,
) -> BudgetSpec {
    let spec = &budget.spec;
    let limit_micros = match spec.limit.to_micros() {
        Ok(micros) => micros,
        Err(err) => {
            report.error("spec.limit", Reason::InvalidPrice, err.to_string());
            0
        }
    };
    if let Err(err) = spec.period.parse() {
        report.error("spec.period", Reason::InvalidPeriod, err.to_string());
    }
    if spec.selector.keys.is_empty() && spec.selector.models.is_empty() {
        report.error(
            "spec.selector",
            Reason::EmptySelector,
            "selector must name at least one key or model",
        );
    }
    for (i, model) in spec.selector.models.iter().enumerate() {
        if !models.contains(model) {
            report.warn(
                format!("spec.selector.models[{i}]"),
                Reason::UnknownModel,
                format!("LLMModel {model:?} does not exist or is not ready"),
            );
        }
    }
    let downgrade_to = match &spec.action {
        Some(action) if action.kind == BudgetActionType::Downgrade => match &action.downgrade_to {
            None => {
                report.error(
                    "spec.action.downgradeTo",
                    Reason::InvalidAction,
                    "downgradeTo is required when type is downgrade",
                );
                None
            }
            // Rejecting is the safe reading of a downgrade that cannot happen: the
            // budget still holds.
            Some(target) if !models.contains(target) => {
                report.warn(
                    "spec.action.downgradeTo",
                    Reason::UnknownModel,
                    format!(
                        "LLMModel {target:?} does not exist or is not ready; requests are rejected once the budget is exhausted"
                    ),
                );
                None
            }
            Some(target) => Some(target.clone()),
        },
        _ => None,
    };
    BudgetSpec {
        name: name.to_owned(),
        limit_micros,
        keys: spec.selector.keys.clone(),
        models: spec.selector.models.clone(),
        downgrade_to,
    }
}

#[cfg(test)]
mod tests {
    use llmesh_crds::{Budget, LlmModel, VirtualKey};

    use super::*;
    use crate::compile::fixtures::{reasons, secret};
    use crate::compile::{Inputs, Severity, compile};

    #[test]
    fn budgets_compile_to_micros_with_their_targets() {
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("gpt"), LlmModel::test("cheap")],
            budgets: vec![
                Budget::test("a", "100.25", ["k1"])
                    .with_models(["gpt"])
                    .with_downgrade("cheap"),
                Budget::test("b", "1", ["k1"])
                    .with_period("36h")
                    .with_downgrade("ghost"),
                Budget::test("c", "1", []),
                Budget::test("d", "1", ["k1"]).with_period("fortnightly"),
                Budget::test("e", "-1", ["k1"]),
            ],
            // k2 joins budget `a` from its side, through budgetRef.
            keys: vec![
                VirtualKey::test("k1"),
                VirtualKey::test("k2").with_budget("a"),
            ],
            secrets: vec![
                secret("k1-key", &[], &[("key", "sk-llmesh-k1-0000000000")]),
                secret("k2-key", &[], &[("key", "sk-llmesh-k2-0000000000")]),
            ],
            config_maps: vec![],
        });
        let budgets = &compiled.snapshot.budgets;
        assert_eq!(budgets.len(), 2);
        assert_eq!(
            budgets[0],
            BudgetSpec {
                name: "a".to_owned(),
                limit_micros: 100_250_000,
                keys: vec!["k1".to_owned(), "k2".to_owned()],
                models: vec!["gpt".to_owned()],
                downgrade_to: Some("cheap".to_owned()),
            }
        );
        assert_eq!(budgets[1].downgrade_to, None);
        assert_eq!(
            reasons(&compiled),
            [
                (
                    "b".to_owned(),
                    "spec.action.downgradeTo",
                    Reason::UnknownModel,
                    Severity::Warning
                ),
                (
                    "c".to_owned(),
                    "spec.selector",
                    Reason::EmptySelector,
                    Severity::Error
                ),
                (
                    "d".to_owned(),
                    "spec.period",
                    Reason::InvalidPeriod,
                    Severity::Error
                ),
                (
                    "e".to_owned(),
                    "spec.limit",
                    Reason::InvalidPrice,
                    Severity::Error
                ),
            ]
        );
    }
}

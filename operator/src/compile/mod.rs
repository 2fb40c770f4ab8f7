//! Compiles one namespace's `LLMModel`s, `VirtualKey`s, `Budget`s, Secrets and ConfigMaps into the
//! sidecar's [`Snapshot`]: a pure function, no I/O, shared by the operator and the local
//! runner.
//!
//! A resource that cannot be compiled is left out and reported as an error [`Problem`];
//! the others stay, so one broken model never takes the rest down. A reference that
//! cannot be honoured (a fallback to a missing model, a budget that is not there) is
//! dropped and reported as a warning, because the sidecar refuses a whole snapshot with a
//! dangling reference.
//!
//! One file per thing compiled: [`models`] (with its [`image_fetch`], and a deployment's
//! [`tls`]), [`keys`], [`budgets`]; [`lookup`] resolves the Secrets and ConfigMaps they
//! reference, [`units`] parses durations, prices and URLs, and [`problems`] holds what is
//! reported.

mod budgets;
mod cache;
#[cfg(test)]
mod fixtures;
mod image_fetch;
mod keys;
mod lookup;
mod models;
pub mod problems;
mod tls;
mod units;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_sidecar::config::snapshot::{self, BudgetSpec, KeySpec, ModelSpec, Snapshot};
use sha2::{Digest, Sha256};

use lookup::Lookup;
use problems::Report;
pub use problems::{Kind, Problem, Reason, Severity};

/// One namespace's resources, as read from the API server or from manifest files.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The `LLMModel`s.
    pub models: Vec<LlmModel>,
    /// The `VirtualKey`s.
    pub keys: Vec<VirtualKey>,
    /// The `Budget`s.
    pub budgets: Vec<Budget>,
    /// The Secrets the resources may reference; others are ignored.
    pub secrets: Vec<Secret>,
    /// The ConfigMaps the resources may reference (CA bundles); others are ignored.
    pub config_maps: Vec<ConfigMap>,
}

/// The compiled snapshot and what had to be left out of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled {
    /// The sidecar config; contains only resources that compiled.
    pub snapshot: Snapshot,
    /// Everything wrong with the inputs, in resource order.
    pub problems: Vec<Problem>,
    /// The Secrets the resources referenced, found or not: the only ones whose values
    /// the operator needs (the hub reads no others).
    pub secrets_used: BTreeSet<String>,
    /// The ConfigMaps the resources referenced, found or not (likewise).
    pub config_maps_used: BTreeSet<String>,
}

impl Compiled {
    /// The problems of one resource, e.g. to build its `Ready` condition.
    pub fn problems_for<'a>(
        &'a self,
        kind: Kind,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems
            .iter()
            .filter(move |p| p.kind == kind && p.name == name)
    }
}

/// Compiles one namespace's resources into a snapshot. Pure: equal inputs give equal
/// outputs, including the snapshot's `version`.
pub fn compile(input: &Inputs) -> Compiled {
    let secrets = Lookup::secrets(&input.secrets);
    let config_maps = Lookup::config_maps(&input.config_maps);
    let mut problems = Vec::new();

    let mut models: Vec<ModelSpec> = compile_each(
        &input.models,
        Kind::LlmModel,
        &mut problems,
        |name, model, report| models::compile_model(name, model, &secrets, &config_maps, report),
    );
    let model_names: BTreeSet<String> = models.iter().map(|m| m.name.clone()).collect();
    let declared_models = declared(&input.models);
    for model in &mut models {
        let mut report = Report::new(Kind::LlmModel, &model.name, &mut problems);
        models::prune_fallbacks(model, &model_names, &declared_models, &mut report);
    }

    let mut budgets: Vec<BudgetSpec> = compile_each(
        &input.budgets,
        Kind::Budget,
        &mut problems,
        |name, budget, report| budgets::compile_budget(name, budget, &model_names, report),
    );
    let budget_names: BTreeSet<&str> = budgets.iter().map(|b| b.name.as_str()).collect();

    let keys: Vec<KeySpec> = compile_each(
        &input.keys,
        Kind::VirtualKey,
        &mut problems,
        |name, key, report| {
            keys::compile_key(name, key, &secrets, &model_names, &budget_names, report)
        },
    );

    // Resolve the key→budget direction too, so the sidecar reads one list per budget.
    let declared_keys = declared(&input.keys);
    for budget in &mut budgets {
        let mut report = Report::new(Kind::Budget, &budget.name, &mut problems);
        for (i, key) in budget.keys.iter().enumerate() {
            if !declared_keys.contains(key.as_str()) {
                report.warn(
                    format!("spec.selector.keys[{i}]"),
                    Reason::UnknownKey,
                    format!("VirtualKey {key:?} does not exist"),
                );
            }
        }
        let referencing = keys
            .iter()
            .filter(|k| k.budget.as_deref() == Some(budget.name.as_str()))
            .map(|k| k.name.clone());
        let all: BTreeSet<String> = budget.keys.drain(..).chain(referencing).collect();
        budget.keys = all.into_iter().collect();
    }

    let mut snapshot = Snapshot {
        format: snapshot::FORMAT,
        version: String::new(),
        models,
        keys,
        budgets,
    };
    snapshot.version = content_version(&snapshot);
    Compiled {
        snapshot,
        problems,
        secrets_used: secrets.into_used(),
        config_maps_used: config_maps.into_used(),
    }
}

/// The first 16 hex digits of the SHA-256 of the snapshot serialized with an empty
/// version: equal content gives an equal version.
fn content_version(snapshot: &Snapshot) -> String {
    let bytes = serde_json::to_vec(snapshot).unwrap_or_default();
    let mut hex = llmesh_sidecar::hex::hex(&Sha256::digest(&bytes));
    hex.truncate(16);
    hex
}

/// Compiles each uniquely named resource with `one`, keeping those that compiled without
/// an error.
fn compile_each<'a, K: named::Named, S>(
    items: &'a [K],
    kind: Kind,
    problems: &mut Vec<Problem>,
    mut one: impl FnMut(&'a str, &'a K, &mut Report<'_>) -> S,
) -> Vec<S> {
    let mut out = Vec::new();
    for (name, item) in unique_by_name(items, kind, problems) {
        let mut report = Report::new(kind, name, problems);
        let spec = one(name, item, &mut report);
        if report.ok() {
            out.push(spec);
        }
    }
    out
}

/// Every name given, compiled or not: a reference to one of these is to something that
/// exists.
fn declared<K: named::Named>(items: &[K]) -> BTreeSet<&str> {
    items.iter().filter_map(named::Named::name).collect()
}

/// Resources sorted by name; nameless and repeated ones are reported and dropped (the
/// API server makes both impossible, manifest files do not).
fn unique_by_name<'a, K: named::Named>(
    items: &'a [K],
    kind: Kind,
    problems: &mut Vec<Problem>,
) -> Vec<(&'a str, &'a K)> {
    let mut named: Vec<(&str, &K)> = Vec::with_capacity(items.len());
    for item in items {
        match item.name() {
            Some(name) if !name.is_empty() => named.push((name, item)),
            _ => Report::new(kind, "", problems).error(
                "metadata.name",
                Reason::MissingName,
                "metadata.name is required",
            ),
        }
    }
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Vec<(&str, &K)> = Vec::with_capacity(named.len());
    for (name, item) in named {
        if out.last().is_some_and(|(last, _)| *last == name) {
            Report::new(kind, name, problems).error(
                "metadata.name",
                Reason::DuplicateName,
                format!("another {kind} is named {name:?}; only the first is used"),
            );
        } else {
            out.push((name, item));
        }
    }
    out
}

/// Name access shared by the three resource types.
mod named {
    use llmesh_crds::{Budget, LlmModel, VirtualKey};

    pub trait Named {
        fn name(&self) -> Option<&str>;
    }

    macro_rules! named {
        ($($t:ty),*) => {$(
            impl Named for $t {
                fn name(&self) -> Option<&str> {
                    self.metadata.name.as_deref()
                }
            }
        )*};
    }

    named!(LlmModel, VirtualKey, Budget);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::fixtures::model_names;

    #[test]
    fn empty_inputs_give_an_empty_versioned_snapshot() {
        let compiled = compile(&Inputs::default());
        assert!(compiled.problems.is_empty());
        assert_eq!(compiled.snapshot.format, snapshot::FORMAT);
        assert_eq!(compiled.snapshot.version.len(), 16);
        assert!(compiled.snapshot.models.is_empty());
    }

    #[test]
    fn output_is_sorted_and_versions_follow_content() {
        let inputs = Inputs {
            models: vec![
                LlmModel::test("b"),
                LlmModel::test("a"),
                LlmModel::test("c"),
            ],
            ..Inputs::default()
        };
        let first = compile(&inputs);
        assert_eq!(model_names(&first), ["a", "b", "c"]);

        let mut reordered = inputs.clone();
        reordered.models.reverse();
        assert_eq!(compile(&reordered), first);

        let mut changed = inputs;
        changed.models[0].spec.deployments[0].weight = 2;
        let second = compile(&changed);
        assert_ne!(second.snapshot.version, first.snapshot.version);
        assert!(
            second
                .snapshot
                .version
                .bytes()
                .all(|b| b.is_ascii_hexdigit())
        );
    }

    #[test]
    fn duplicate_and_nameless_resources_are_problems() {
        let mut nameless = LlmModel::test("x");
        nameless.metadata.name = None;
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("a"), LlmModel::test("a"), nameless],
            ..Inputs::default()
        });
        assert_eq!(compiled.snapshot.models.len(), 1);
        let found: Vec<_> = compiled.problems.iter().map(|p| p.reason).collect();
        assert_eq!(found, [Reason::MissingName, Reason::DuplicateName]);
    }
}

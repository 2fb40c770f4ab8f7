//! Compiles a `VirtualKey`: the SHA-256 of its generated key and a short display
//! prefix (never the key), its model allow-list and its budget reference checked.

use std::collections::BTreeSet;

use llmesh_crds::{VirtualKey, virtual_key::SECRET_KEY_FIELD};
use llmesh_sidecar::config::snapshot::KeySpec;

use super::{Reason, Report, lookup::Lookup};

pub(super) fn compile_key(
    name: &str,
    key: &VirtualKey,
    secrets: &Lookup<'_>,
    models: &BTreeSet<String>,
    budgets: &BTreeSet<&str>,
    report: &mut Report<'_>,
) -> KeySpec {
    let spec = &key.spec;
    let secret_name = key.secret_name();
    let (sha256, display_prefix) = match secrets.get(&secret_name, SECRET_KEY_FIELD) {
        Ok(value) => (
            llmesh_sidecar::meter::keys::sha256_hex(&value),
            display_prefix(&value),
        ),
        Err((reason, message)) => {
            let message = if reason == Reason::SecretNotFound {
                format!("{message} (the key has not been generated yet)")
            } else {
                message
            };
            report.error("spec.secretName", reason, message);
            (String::new(), String::new())
        }
    };
    for (i, model) in spec.models.iter().enumerate() {
        // Kept even so: dropping it could empty the list, and empty means all models.
        if !models.contains(model) {
            report.warn(
                format!("spec.models[{i}]"),
                Reason::UnknownModel,
                format!("LLMModel {model:?} does not exist or is not ready"),
            );
        }
    }
    // Fail closed: a key that names a Budget nobody can check spends nothing. The name
    // stays in the snapshot, so the sidecar refuses the key's calls saying why.
    if let Some(budget) = &spec.budget_ref
        && !budgets.contains(budget.as_str())
    {
        report.refuse(
            "spec.budgetRef",
            Reason::UnknownBudget,
            format!(
                "Budget {budget:?} does not exist or is not ready; the key's calls are refused until it is"
            ),
        );
    }
    let budget = spec.budget_ref.clone();
    let limits = spec.limits.clone().unwrap_or_default();
    KeySpec {
        name: name.to_owned(),
        sha256,
        display_prefix,
        models: spec.models.clone(),
        rpm: limits.rpm,
        tpm: limits.tpm,
        max_parallel_requests: limits.max_parallel_requests,
        expires_at_unix: spec.expires_at.as_ref().map(|t| t.0.as_second()),
        team: spec.team.clone(),
        user: spec.user.clone(),
        budget,
    }
}

/// The key's first 14 characters (`sk-llmesh-abcd`), but never more than half of it, so
/// a short hand-made key is not shown whole.
pub(super) fn display_prefix(key: &str) -> String {
    let len = key.chars().count();
    key.chars().take(14.min(len / 2)).collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use llmesh_crds::{Budget, LlmModel, VirtualKey};

    use super::*;
    use crate::compile::fixtures::{reasons, secret};
    use crate::compile::{Inputs, Severity, compile};

    fn quickstart_key() -> (VirtualKey, Secret) {
        (
            VirtualKey::test("team-a")
                .with_models(["chat"])
                .with_limits(60, 1000, 2)
                .with_team("a")
                .with_budget("monthly")
                .with_expiry(1_767_225_600),
            secret(
                "team-a-key",
                &[],
                &[("key", "sk-llmesh-quickstart-0000000000000000")],
            ),
        )
    }

    #[test]
    fn virtual_keys_carry_a_hash_and_prefix_never_the_key() {
        let (key, key_secret) = quickstart_key();
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("chat")],
            keys: vec![key, VirtualKey::test("abc").with_secret_name("abc-secret")],
            budgets: vec![Budget::test("monthly", "50", ["team-a"])],
            secrets: vec![key_secret, secret("abc-secret", &[("key", "abc")], &[])],
            config_maps: vec![],
        });
        assert_eq!(compiled.problems, []);
        let keys = &compiled.snapshot.keys;
        assert_eq!(keys[0].name, "abc");
        assert_eq!(
            keys[0].sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(keys[0].display_prefix, "a");
        let k = &keys[1];
        assert_eq!(k.display_prefix, "sk-llmesh-quic");
        assert_eq!(k.sha256.len(), 64);
        assert_eq!(k.models, ["chat"]);
        assert_eq!(
            (k.rpm, k.tpm, k.max_parallel_requests),
            (Some(60), Some(1000), Some(2))
        );
        assert_eq!(k.expires_at_unix, Some(1_767_225_600));
        assert_eq!((k.team.as_deref(), k.user.as_deref()), (Some("a"), None));
        assert_eq!(k.budget.as_deref(), Some("monthly"));
        let json = serde_json::to_string(&compiled.snapshot).unwrap();
        assert!(!json.contains("quickstart-0000"));
        assert_eq!(compiled.snapshot.budgets[0].keys, ["team-a"]);
    }

    #[test]
    fn a_key_whose_secret_is_not_generated_yet_is_left_out() {
        let (key, _) = quickstart_key();
        let compiled = compile(&Inputs {
            models: vec![LlmModel::test("chat")],
            keys: vec![key],
            ..Inputs::default()
        });
        assert!(compiled.snapshot.keys.is_empty());
        assert_eq!(
            reasons(&compiled),
            [
                (
                    "team-a".to_owned(),
                    "spec.secretName",
                    Reason::SecretNotFound,
                    Severity::Error
                ),
                (
                    "team-a".to_owned(),
                    "spec.budgetRef",
                    Reason::UnknownBudget,
                    Severity::Error
                ),
            ]
        );
        assert!(compiled.problems[0].message.contains("\"team-a-key\""));
        assert!(
            compiled.problems[0]
                .message
                .contains("not been generated yet")
        );
    }

    #[test]
    fn display_prefixes_never_show_a_short_key_whole() {
        assert_eq!(
            display_prefix("sk-llmesh-abcdefghijklmnopqrstuvwxyz"),
            "sk-llmesh-abcd"
        );
        assert_eq!(display_prefix("short-key"), "shor");
        assert_eq!(display_prefix("x"), "");
    }
}

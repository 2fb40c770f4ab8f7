//! The LLMModel controller: reports whether each model compiled into its namespace's
//! snapshot (`Ready`, with the reason and fields when not) and a summary for
//! `kubectl get`. Compilation itself happens in the hub; this only writes status.

use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use llmesh_crds::LlmModel;
use llmesh_crds::llm_model::LlmModelStatus;
use serde_json::json;

use super::{Context, MANAGER, locate, ready_condition};
use crate::compile::{Compiled, Kind};
use crate::error::{Error, Result};

/// The controller's name in metrics and logs.
pub const NAME: &str = "llmmodel";

/// The status a model should have, given its namespace's compile result.
pub fn desired_status(model: &LlmModel, compiled: &Compiled) -> LlmModelStatus {
    let name = model.name_any();
    let problems: Vec<_> = compiled.problems_for(Kind::LlmModel, &name).collect();
    let deployments = model.spec.deployments.len();
    let strategy = serde_json::to_value(model.spec.strategy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let summary = format!(
        "{deployments} deployment{} ({strategy})",
        if deployments == 1 { "" } else { "s" }
    );
    let previous = model
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let ready = ready_condition(
        model.metadata.generation,
        &problems,
        "Compiled",
        format!("served by {summary}"),
        previous,
    );
    LlmModelStatus {
        observed_generation: model.metadata.generation,
        conditions: vec![ready],
        summary: Some(summary),
        deployments: u32::try_from(deployments).ok(),
    }
}

/// Writes the model's status when it differs from what it should be.
pub async fn reconcile(model: Arc<LlmModel>, ctx: Arc<Context>) -> Result<Action> {
    // Statuses come from the caches: never judge from half-filled ones.
    ctx.hub.ready().await;
    let started = std::time::Instant::now();
    let (ns, name) = locate(model.as_ref())?;
    let compiled = ctx.hub.compiled(&ns);
    let status = desired_status(&model, &compiled);
    if model.status.as_ref() != Some(&status) {
        let api: Api<LlmModel> = Api::namespaced(ctx.client.clone(), &ns);
        let patch =
            json!({"apiVersion": "llmesh.io/v1alpha1", "kind": "LLMModel", "status": status});
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Kube)?;
    }
    ctx.succeeded(NAME, model.as_ref(), started);
    // Changes elsewhere (Secrets, other models) reach us through the hub.
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use llmesh_crds::llm_model::{ModelDeployment, Provider};
    use llmesh_crds::shared::SecretKeyRef;

    use super::*;
    use crate::compile::{Inputs, compile};

    fn secret(name: &str, key: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            data: Some([(key.to_owned(), ByteString(b"sk".to_vec()))].into()),
            ..Secret::default()
        }
    }

    #[test]
    fn ready_models_get_a_summary_and_broken_ones_a_reason() {
        let mut good = LlmModel::test("good");
        good.metadata.generation = Some(3);
        let mut d = ModelDeployment::new("openai", Provider::Openai, "gpt-4o-mini");
        d.api_key_secret_ref = Some(SecretKeyRef::new("missing", "apiKey"));
        let bad = LlmModel::test("bad").with_deployments([d]);
        let compiled = compile(&Inputs {
            models: vec![good.clone(), bad.clone()],
            ..Inputs::default()
        });

        let status = desired_status(&good, &compiled);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(
            status.summary.as_deref(),
            Some("1 deployment (weighted-shuffle)")
        );

        let status = desired_status(&bad, &compiled);
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "SecretNotFound")
        );
        assert!(
            ready
                .message
                .contains("spec.deployments[0].apiKeySecretRef"),
            "{}",
            ready.message
        );

        // Once the Secret exists, the same model is Ready.
        let fixed = compile(&Inputs {
            models: vec![bad.clone()],
            secrets: vec![secret("missing", "apiKey")],
            ..Inputs::default()
        });
        assert_eq!(desired_status(&bad, &fixed).conditions[0].status, "True");
    }

    #[test]
    fn a_missing_fallback_is_a_warning_and_the_transition_time_is_kept() {
        let mut m = LlmModel::test("m").with_fallbacks(["gone"]);
        let compiled = compile(&Inputs {
            models: vec![m.clone()],
            ..Inputs::default()
        });
        let first = desired_status(&m, &compiled);
        assert_eq!(first.conditions[0].status, "True");
        assert!(
            first.conditions[0].message.contains("gone"),
            "{}",
            first.conditions[0].message
        );
        m.status = Some(first.clone());
        let again = desired_status(&m, &compiled);
        assert_eq!(again, first, "an unchanged status is not rewritten");
    }
}

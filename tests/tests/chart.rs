//! The Helm chart (`charts/llmesh`): linted, rendered with default and non-default values
//! and validated against Kubernetes 1.33's schemas by `tests/chart/check_chart.py` (Helm's
//! Go library through `helm-python-sdk`, `kubernetes-validate`), then the rendered objects
//! applied to the test API server: the CRDs for real, everything else the server serves
//! with a server-side dry run (a real webhook configuration would send other tests' pods
//! to a Service that does not exist).
//!
//! The Argo CD health checks run the same way (`tests/chart/check_argocd.py`).
//!
//! Needs a Python with `tests/chart/requirements.txt` installed, named by `LLMESH_PYTHON`
//! (`scripts/test.sh` sets it up). Without it the tests skip with a message, unless
//! `LLMESH_REQUIRE_CHART=1` (which `scripts/test.sh` sets) makes that a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use llmesh_tests::apiserver::TestEnv;
use llmesh_tests::chart::run_python;
use serde_json::Value;

/// Runs the chart checks; `None` when they cannot run here (said loudly).
fn check_chart(namespace: &str, out: Option<&Path>) -> Option<String> {
    let mut args = vec!["--namespace".to_owned(), namespace.to_owned()];
    if let Some(out) = out {
        args.extend(["--out".to_owned(), out.display().to_string()]);
    }
    run_python("check_chart.py", &args)
}

#[test]
fn chart_lints_renders_and_validates() {
    let Some(report) = check_chart("llmesh-system", None) else {
        return;
    };
    let summary = report
        .lines()
        .find(|l| l.starts_with("chart: "))
        .expect("a summary line");
    println!("{summary}");
    assert!(summary.ends_with(", 0 failed"), "{report}");
}

/// The Argo CD health checks (Lua, in `charts/llmesh/argocd/`) against sample statuses,
/// run with Lua 5.1 as Argo CD runs them.
#[test]
fn argocd_health_checks_judge_sample_statuses() {
    let Some(report) = run_python("check_argocd.py", &[]) else {
        return;
    };
    let summary = report
        .lines()
        .find(|l| l.starts_with("argocd: "))
        .expect("a summary line");
    println!("{summary}");
    assert!(summary.ends_with(", 0 failed"), "{report}");
}

fn objects(path: &Path) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_rendered_chart_applies_to_the_api_server() {
    let Some(env) = TestEnv::new("chart").await else {
        return;
    };
    let out = std::env::temp_dir().join(format!("llmesh-chart-{}", env.namespace));
    if check_chart(&env.namespace, Some(&out)).is_none() {
        return;
    }
    let discovery = Discovery::new(env.client.clone()).run().await.unwrap();
    let apply = |dry_run: bool| PatchParams {
        dry_run,
        ..PatchParams::apply("llmesh-chart-test").force()
    };
    let mut applied = Vec::new();
    let mut not_served = Vec::new();
    let crds = objects(&out.join("crds.json"));
    for scenario in ["default", "full"] {
        let docs = objects(&out.join(format!("{scenario}.json")));
        for doc in crds.iter().chain(&docs) {
            let mut obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            let types = obj.types.clone().unwrap();
            let gvk = GroupVersionKind::try_from(&types).unwrap();
            let mut name = obj.metadata.name.clone().unwrap();
            let what = format!("{}/{name}", types.kind);
            let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else {
                not_served.push(format!("{scenario}: {what}"));
                continue;
            };
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Cluster => Api::all_with(env.client.clone(), &resource),
                Scope::Namespaced => {
                    Api::namespaced_with(env.client.clone(), &env.namespace, &resource)
                }
            };
            // The CRDs for real (the same ones every test applies); the rest dry-run.
            let real = types.kind == "CustomResourceDefinition";
            if matches!(caps.scope, Scope::Cluster) && !real {
                // Other tests on this API server run the same chart for real: a dry run
                // onto their cluster-wide objects would merge with them.
                name = format!("{name}-{}", env.namespace);
                obj.metadata.name = Some(name.clone());
            }
            api.patch(&name, &apply(!real), &Patch::Apply(&obj))
                .await
                .unwrap_or_else(|e| panic!("{scenario}: apply {what}: {e}"));
            applied.push(format!("{scenario}: {what}"));
        }
    }
    println!("applied: {applied:#?}\nnot served by the test API server: {not_served:#?}");
    for wanted in [
        "default: CustomResourceDefinition/llmmodels.llmesh.io",
        "default: CustomResourceDefinition/virtualkeys.llmesh.io",
        "default: CustomResourceDefinition/budgets.llmesh.io",
        "default: ServiceAccount/llmesh-operator",
        "default: Service/llmesh-operator",
        "default: MutatingWebhookConfiguration/llmesh-sidecar-injector",
        "full: MutatingWebhookConfiguration/gw-sidecar-injector",
        "full: ConfigMap/gw-dashboard",
    ] {
        assert!(
            applied.iter().any(|a| a == wanted),
            "{wanted} not applied: {applied:?}"
        );
    }
    // Whatever the server does not serve was validated offline by check_chart.py; should
    // the server learn RBAC one day, the loop above applies it too.
    let _ = std::fs::remove_dir_all(&out);
}

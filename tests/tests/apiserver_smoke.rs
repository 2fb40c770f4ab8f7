//! The test API server behaves as a cluster's does for what llmesh relies on: CRDs
//! installed without warnings, schema and CEL validation, watches, server-side apply, status subresources,
//! optimistic concurrency, Secrets, TokenReviews, admission webhooks, discovery and
//! garbage collection. Each test skips (loudly) where the harness cannot run.

// Test code may panic on broken expectations; that is how it reports them.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::discovery::Discovery;
use kube::{Resource, ResourceExt};
use llmesh_crds::LlmModel;
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use llmesh_tests::eventually;
use serde_json::json;

/// Starts a test: its own namespace, an admin client, and the llmesh CRDs applied.
macro_rules! test_env {
    ($name:expr) => {
        match TestEnv::new($name).await {
            Some(env) => {
                apply_crds(&env.client, &llmesh_crds::crds()).await;
                env
            }
            None => return,
        }
    };
}

fn model(env: &TestEnv, name: &str) -> LlmModel {
    let mut m = LlmModel::test(name);
    m.metadata.namespace = Some(env.namespace.clone());
    m.metadata.generation = None;
    m
}

fn configmap(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// The API error of a failed call: its HTTP status code and message.
fn api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn crds_accept_good_objects_and_refuse_bad_ones() {
    let env = test_env!("crd-validation");
    let models: Api<LlmModel> = env.api();
    let pp = PostParams::default();

    let created = models.create(&pp, &model(&env, "chat")).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let empty = model(&env, "empty").with_deployments([]);
    let (code, message) = api_error(models.create(&pp, &empty).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.deployments"), "{message}");

    let selfish = model(&env, "selfish").with_fallbacks(["selfish"]);
    let (code, message) = api_error(models.create(&pp, &selfish).await);
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("must not name the model itself"),
        "CEL rule message expected: {message}"
    );

    let negative = model(&env, "negative").with_prices("-1", "0.60");
    let (code, message) = api_error(models.create(&pp, &negative).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("inputPerMillion"), "{message}");

    // An unknown field is dropped (structural schema pruning), not stored.
    let mut value = serde_json::to_value(model(&env, "pruned")).unwrap();
    value["spec"]["bogus"] = json!(true);
    let pruned: LlmModel = models
        .create(&pp, &serde_json::from_value(value).unwrap())
        .await
        .unwrap();
    assert_eq!(pruned.spec, model(&env, "pruned").spec);
}

/// Creates `crd` with `dryRun=All` under another group (so it does not clash with the
/// installed one) and returns the API server's warnings, as `kubectl apply` prints them.
async fn crd_warnings(
    env: &TestEnv,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Vec<String> {
    use http_body_util::BodyExt;
    let mut crd = serde_json::to_value(crd).unwrap();
    let group = "warnings.test.llmesh.io";
    crd["spec"]["group"] = json!(group);
    crd["metadata"]["name"] = json!(format!(
        "{}.{group}",
        crd["spec"]["names"]["plural"].as_str().unwrap()
    ));
    let request =
        http::Request::post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions?dryRun=All")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&crd).unwrap().into())
            .unwrap();
    let response = env.client.send(request).await.unwrap();
    let status = response.status();
    let warnings = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        http::StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    warnings
}

#[tokio::test]
async fn the_crds_install_without_warnings() {
    let env = test_env!("crd-warnings");
    for crd in llmesh_crds::crds() {
        let warnings = crd_warnings(&env, &crd).await;
        assert!(warnings.is_empty(), "{:?}: {warnings:?}", crd.metadata.name);
    }
    // The server does warn about a format it does not know (what schemars used to emit).
    use kube::CustomResourceExt;
    let warnings = crd_warnings(&env, &LlmModel::crd()).await;
    assert!(
        warnings.iter().any(|w| w.contains("unrecognized format")),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn watch_delivers_added_modified_and_deleted() {
    let env = test_env!("watch");
    let configmaps: Api<ConfigMap> = env.api();
    let mut stream = configmaps
        .watch(&WatchParams::default().timeout(30), "0")
        .await
        .unwrap()
        .boxed();

    configmaps
        .create(&PostParams::default(), &configmap("watched", &[("a", "1")]))
        .await
        .unwrap();
    let patch = Patch::Merge(json!({"data": {"a": "2"}}));
    configmaps
        .patch("watched", &PatchParams::default(), &patch)
        .await
        .unwrap();
    configmaps
        .delete("watched", &DeleteParams::default())
        .await
        .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("a watch event within 10 s")
            .unwrap()
            .expect("the watch stays open");
        match event {
            WatchEvent::Added(cm) => seen.push(("added", cm.data.unwrap()["a"].clone())),
            WatchEvent::Modified(cm) => seen.push(("modified", cm.data.unwrap()["a"].clone())),
            WatchEvent::Deleted(cm) => seen.push(("deleted", cm.data.unwrap()["a"].clone())),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            ("added", "1".to_owned()),
            ("modified", "2".to_owned()),
            ("deleted", "2".to_owned())
        ]
    );
}

#[tokio::test]
async fn server_side_apply_removes_fields_the_manager_dropped() {
    let env = test_env!("ssa");
    let pp = PatchParams::apply("smoke-test");

    // A custom resource: a deployment dropped from the applied list goes away.
    let models: Api<LlmModel> = env.api();
    let two = model(&env, "ssa").with_deployments([
        llmesh_crds::llm_model::ModelDeployment::new(
            "a",
            llmesh_crds::llm_model::Provider::Demo,
            "echo",
        ),
        llmesh_crds::llm_model::ModelDeployment::new(
            "b",
            llmesh_crds::llm_model::Provider::Demo,
            "echo",
        ),
    ]);
    models.patch("ssa", &pp, &Patch::Apply(&two)).await.unwrap();
    let one = model(&env, "ssa").with_deployments([llmesh_crds::llm_model::ModelDeployment::new(
        "a",
        llmesh_crds::llm_model::Provider::Demo,
        "echo",
    )]);
    let applied = models.patch("ssa", &pp, &Patch::Apply(&one)).await.unwrap();
    let names: Vec<_> = applied
        .spec
        .deployments
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["a"]);

    // A built-in resource, through the OpenAPI models generated at install time.
    let configmaps: Api<ConfigMap> = env.api();
    let mut cm = configmap("ssa", &[("keep", "1"), ("drop", "2")]);
    cm.metadata.namespace = Some(env.namespace.clone());
    let apply = |cm: &ConfigMap| {
        let mut value = serde_json::to_value(cm).unwrap();
        value["apiVersion"] = json!("v1");
        value["kind"] = json!("ConfigMap");
        value
    };
    configmaps
        .patch("ssa", &pp, &Patch::Apply(apply(&cm)))
        .await
        .unwrap();
    let cm = configmap("ssa", &[("keep", "1")]);
    let applied = configmaps
        .patch("ssa", &pp, &Patch::Apply(apply(&cm)))
        .await
        .unwrap();
    assert_eq!(
        applied.data.unwrap(),
        BTreeMap::from([("keep".to_owned(), "1".to_owned())])
    );
}

#[tokio::test]
async fn a_status_patch_does_not_bump_generation() {
    let env = test_env!("status");
    let models: Api<LlmModel> = env.api();
    models
        .create(&PostParams::default(), &model(&env, "status"))
        .await
        .unwrap();

    let status = json!({"status": {"observedGeneration": 1, "deployments": 1}});
    let patched = models
        .patch_status("status", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(patched.metadata.generation, Some(1));
    assert_eq!(patched.status.unwrap().observed_generation, Some(1));

    // Spec changes through /status are ignored; through the main endpoint they count.
    let spec = json!({"spec": {"strategy": "least-busy"}});
    let ignored = models
        .patch_status("status", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(ignored.metadata.generation, Some(1));
    let bumped = models
        .patch("status", &PatchParams::default(), &Patch::Merge(&spec))
        .await
        .unwrap();
    assert_eq!(bumped.metadata.generation, Some(2));
    assert!(
        bumped.status.is_some(),
        "the main endpoint keeps the status"
    );
}

#[tokio::test]
async fn a_stale_resource_version_conflicts() {
    let env = test_env!("conflict");
    let configmaps: Api<ConfigMap> = env.api();
    let created = configmaps
        .create(&PostParams::default(), &configmap("cm", &[("a", "1")]))
        .await
        .unwrap();
    let mut newer = created.clone();
    newer.data = Some([("a".to_owned(), "2".to_owned())].into());
    configmaps
        .replace("cm", &PostParams::default(), &newer)
        .await
        .unwrap();
    let (code, message) = api_error(
        configmaps
            .replace("cm", &PostParams::default(), &created)
            .await,
    );
    assert_eq!(code, 409, "{message}");

    let models: Api<LlmModel> = env.api();
    let created = models
        .create(&PostParams::default(), &model(&env, "m"))
        .await
        .unwrap();
    // A write that changes nothing keeps the resourceVersion, so change something.
    let mut newer = created.clone();
    newer.spec.fallbacks = vec!["other".to_owned()];
    models
        .replace("m", &PostParams::default(), &newer)
        .await
        .unwrap();
    let (code, message) = api_error(models.replace("m", &PostParams::default(), &created).await);
    assert_eq!(code, 409, "{message}");
}

#[tokio::test]
async fn a_secret_round_trips_with_string_data_folded_into_data() {
    let env = test_env!("secret");
    let secrets: Api<Secret> = env.api();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("creds".to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([("binary".to_owned(), ByteString(vec![0, 1, 2, 255]))].into()),
        string_data: Some([("apiKey".to_owned(), "sk-test".to_owned())].into()),
        ..Secret::default()
    };
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let read = secrets.get("creds").await.unwrap();
    assert_eq!(read.type_.as_deref(), Some("Opaque"));
    assert_eq!(read.string_data, None);
    assert_eq!(
        read.data.unwrap(),
        BTreeMap::from([
            ("apiKey".to_owned(), ByteString(b"sk-test".to_vec())),
            ("binary".to_owned(), ByteString(vec![0, 1, 2, 255])),
        ])
    );
}

#[tokio::test]
async fn token_review_authenticates_known_tokens_only() {
    let env = test_env!("tokenreview");
    let token = format!("sa-token-{}", env.namespace);
    let user = format!("system:serviceaccount:{}:sidecar", env.namespace);
    env.server
        .add_token(&token, &user, "uid-1", &["system:serviceaccounts"]);
    let reviews: Api<TokenReview> = Api::all(env.client.clone());
    let review = |token: &str| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };

    let known = reviews
        .create(&PostParams::default(), &review(&token))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(known.authenticated, Some(true));
    let who = known.user.unwrap();
    assert_eq!(who.username.as_deref(), Some(user.as_str()));
    assert!(
        who.groups
            .unwrap()
            .contains(&"system:serviceaccounts".to_owned())
    );

    let unknown = reviews
        .create(&PostParams::default(), &review("not-a-token"))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(unknown.authenticated, Some(true));
}

#[tokio::test]
async fn a_mutating_webhook_written_in_rust_mutates_pods() {
    let env = test_env!("webhook");
    let hook = webhook::Webhook::start().await;
    hook.register(&env.client, &env.namespace).await;

    let pods: Api<Pod> = env.api();
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    }))
    .unwrap();
    // The server learns of the webhook configuration through an informer: retry a
    // dry-run create until the webhook has seen one.
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    eventually(10, "the webhook to be called", || async {
        let created = pods.create(&dry, &pod).await.unwrap();
        created.labels().get(webhook::LABEL).map(|_| ())
    })
    .await;
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(
        created.labels().get(webhook::LABEL).map(String::as_str),
        Some("yes")
    );
    let env_vars = created.spec.unwrap().containers[0].env.clone().unwrap();
    assert_eq!(env_vars[0].name, "OPENAI_BASE_URL");
    assert!(hook.calls() >= 2);
    hook.unregister(&env.client, &env.namespace).await;
}

#[tokio::test]
async fn discovery_lists_built_in_and_custom_resources() {
    let env = test_env!("discovery");
    let discovery = Discovery::new(env.client.clone()).run().await.unwrap();
    let mut found = Vec::new();
    for group in discovery.groups() {
        for (resource, _caps) in group.recommended_resources() {
            found.push(format!("{}/{}", group.name(), resource.plural));
        }
    }
    for expected in [
        "/namespaces",
        "/pods",
        "/secrets",
        "/configmaps",
        "/events",
        "/serviceaccounts",
        "/services",
        "coordination.k8s.io/leases",
        "events.k8s.io/events",
        "admissionregistration.k8s.io/mutatingwebhookconfigurations",
        "admissionregistration.k8s.io/validatingwebhookconfigurations",
        "apiextensions.k8s.io/customresourcedefinitions",
        "llmesh.io/llmmodels",
        "llmesh.io/virtualkeys",
        "llmesh.io/budgets",
    ] {
        assert!(
            found.iter().any(|f| f == expected),
            "{expected} not discovered in {found:?}"
        );
    }
}

#[tokio::test]
async fn leases_and_events_are_served() {
    let env = test_env!("lease");
    let leases: Api<Lease> = env.api();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("leader".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("replica-0".to_owned()),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }),
    };
    leases.create(&PostParams::default(), &lease).await.unwrap();
    assert_eq!(
        leases
            .get("leader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity,
        Some("replica-0".to_owned())
    );

    // kube-runtime's event recorder writes events.k8s.io/v1 Events.
    let models: Api<LlmModel> = env.api();
    let created = models
        .create(&PostParams::default(), &model(&env, "evented"))
        .await
        .unwrap();
    let recorder = kube::runtime::events::Recorder::new(env.client.clone(), "smoke-test".into());
    recorder
        .publish(
            &kube::runtime::events::Event {
                type_: kube::runtime::events::EventType::Normal,
                reason: "Tested".into(),
                note: Some("an event".into()),
                action: "Test".into(),
                secondary: None,
            },
            &created.object_ref(&()),
        )
        .await
        .unwrap();
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let listed = events.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].reason.as_deref(), Some("Tested"));
}

#[tokio::test]
async fn owned_objects_are_garbage_collected() {
    let env = test_env!("gc");
    let models: Api<LlmModel> = env.api();
    let owner = models
        .create(&PostParams::default(), &model(&env, "owner"))
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = env.api();
    let mut owned = configmap("owned", &[]);
    owned.metadata.owner_references = Some(vec![OwnerReference {
        api_version: LlmModel::api_version(&()).into_owned(),
        kind: LlmModel::kind(&()).into_owned(),
        name: "owner".to_owned(),
        uid: owner.uid().unwrap(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }]);
    configmaps
        .create(&PostParams::default(), &owned)
        .await
        .unwrap();
    configmaps
        .create(&PostParams::default(), &configmap("unowned", &[]))
        .await
        .unwrap();

    models
        .delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "the owned ConfigMap to be collected", || async {
        configmaps
            .get_opt("owned")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(configmaps.get_opt("unowned").await.unwrap().is_some());
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_objects() {
    let env = test_env!("ns-delete");
    let configmaps: Api<ConfigMap> = env.api();
    configmaps
        .create(&PostParams::default(), &configmap("doomed", &[]))
        .await
        .unwrap();
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&env.namespace, &DeleteParams::default())
        .await
        .unwrap();
    // While terminating, nothing new may be created in it.
    let (code, message) = api_error(
        configmaps
            .create(&PostParams::default(), &configmap("late", &[]))
            .await,
    );
    assert_eq!(code, 403, "{message}");
    eventually(10, "the namespace to go", || async {
        namespaces
            .get_opt(&env.namespace)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(configmaps.get_opt("doomed").await.unwrap().is_none());
}

#[tokio::test]
async fn kubectl_works_against_the_server() {
    let env = test_env!("kubectl");
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("!! SKIPPED kubectl_works_against_the_server: no kubectl on PATH");
        return;
    }
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(env.server.kubeconfig_path())
            .arg("--namespace")
            .arg(&env.namespace)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let yaml = "apiVersion: llmesh.io/v1alpha1\nkind: LLMModel\nmetadata:\n  name: via-kubectl\nspec:\n  deployments:\n  - name: d0\n    provider: demo\n    model: echo\n";
    let path = env.server.dir().join(format!("{}.yaml", env.namespace));
    std::fs::write(&path, yaml).unwrap();
    let path = path.to_str().unwrap();
    kubectl(&["apply", "-f", path]);
    kubectl(&["apply", "--server-side", "-f", path]);
    let got = kubectl(&["get", "llm", "via-kubectl", "-o", "name"]);
    assert_eq!(got.trim(), "llmmodel.llmesh.io/via-kubectl");
    let explained = kubectl(&["explain", "llmmodels.spec.deployments"]);
    assert!(explained.contains("provider"), "{explained}");
    let explained = kubectl(&["explain", "pods.spec.containers"]);
    assert!(explained.contains("image"), "{explained}");
    kubectl(&["create", "configmap", "from-kubectl", "--from-literal=a=b"]);
    let got = kubectl(&["get", "cm", "from-kubectl", "-o", "jsonpath={.data.a}"]);
    assert_eq!(got, "b");
}

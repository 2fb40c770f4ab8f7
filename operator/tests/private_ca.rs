//! A deployment's private CA through the operator, against the real API server: an
//! LLMModel whose vLLM deployment names a CA ConfigMap is not Ready while the ConfigMap
//! is missing, is compiled into the snapshot with the CA once it appears (the operator
//! holding that ConfigMap's value and no other's), and is reported and left out when
//! the ConfigMap's text is no CA. A sidecar fed that snapshot serves a call from an
//! HTTPS upstream signed by the CA. Local mode reads the same from manifest files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use llmesh_crds::LlmModel;
use llmesh_crds::llm_model::{ModelDeployment, Provider};
use llmesh_operator::run::{Settings, start};
use llmesh_sidecar::config::Snapshot;
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use llmesh_tests::tls::TestCa;
use llmesh_tests::{Mock, MockConfig, MockOpenAi};
use tokio::sync::watch;

fn config_map(name: &str, key: &str, text: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some([(key.to_owned(), text.to_owned())].into()),
        ..ConfigMap::default()
    }
}

/// The model's `Ready` condition: status, reason, message.
async fn ready(models: &Api<LlmModel>, name: &str) -> Option<(String, String, String)> {
    let status = models.get(name).await.ok()?.status?;
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The CA texts of model `chat`'s deployment in the snapshot, once it is there.
fn cas(snapshot: &Snapshot) -> Option<Vec<String>> {
    let model = snapshot.models.iter().find(|m| m.name == "chat")?;
    Some(model.deployments[0].tls.clone()?.ca_certificates)
}

/// A chat call to a sidecar's API: status and body.
async fn call(api: std::net::SocketAddr) -> (u16, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let body = r#"{"model":"chat","messages":[{"role":"user","content":"hello"}]}"#;
    let request = http::Request::post(format!("http://{api}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn a_ca_config_map_reaches_the_snapshot_and_the_sidecar_trusts_it() {
    let Some(env) = TestEnv::new("op-private-ca").await else {
        return;
    };
    apply_crds(&env.client, &llmesh_crds::crds()).await;
    let settings = Settings {
        instance: Some("test".into()),
        namespace: Some(env.namespace.clone()),
    };
    let op = start(env.client.clone(), &settings, std::future::pending::<()>())
        .await
        .unwrap();
    let pp = PostParams::default();
    let models: Api<LlmModel> = env.api();
    let maps: Api<ConfigMap> = env.api();

    // A self-hosted vLLM behind internal TLS.
    let ca = TestCa::new("internal CA");
    let upstream = MockOpenAi::serve(
        Default::default(),
        MockConfig {
            tls: Some(ca.server_config(&["127.0.0.1"])),
            ..MockConfig::default()
        },
    )
    .await
    .unwrap();
    let mut model = LlmModel::test("chat").with_deployments([ModelDeployment::new(
        "vllm",
        Provider::Vllm,
        "llama",
    )
    .with_base_url(&upstream.base_url())
    .with_ca_config_map("internal-ca", "ca.crt")]);
    model.metadata.namespace = Some(env.namespace.clone());
    models.create(&pp, &model).await.unwrap();

    // No ConfigMap yet: the model is not served, and says why.
    let (ok, reason, message) = llmesh_tests::eventually(20, "chat not Ready", || async {
        ready(&models, "chat")
            .await
            .filter(|(ok, _, _)| ok == "False")
    })
    .await;
    assert_eq!(
        (ok.as_str(), reason.as_str()),
        ("False", "ConfigMapNotFound")
    );
    assert!(message.contains("tls.caConfigMapRef"), "{message}");

    // The team's sidecar, fed the namespace's snapshot as the push would.
    let snapshots = op.ctx.hub.subscribe(&env.namespace);
    let sidecar = llmesh_sidecar::Sidecar::bind(llmesh_sidecar::Settings {
        api_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        ..llmesh_sidecar::Settings::default()
    })
    .await
    .unwrap();
    let api = sidecar.api_addr();
    tokio::spawn(sidecar.serve(snapshots.clone(), std::future::pending()));

    // The CA appears, with an unrelated ConfigMap beside it.
    let text = format!("# the platform team's CA\n{}", ca.pem());
    maps.create(&pp, &config_map("internal-ca", "ca.crt", &text))
        .await
        .unwrap();
    maps.create(&pp, &config_map("unrelated", "settings", "x=1"))
        .await
        .unwrap();
    let mut rx = snapshots.clone();
    let snapshot = tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| s.as_deref().and_then(cas).is_some()),
    )
    .await
    .expect("the CA never reached the snapshot")
    .unwrap()
    .clone()
    .unwrap();
    let certs = cas(&snapshot).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(
        llmesh_sidecar::upstream::tls::parse_pem(certs[0].as_bytes()).unwrap(),
        llmesh_sidecar::upstream::tls::parse_pem(ca.pem().as_bytes()).unwrap()
    );
    assert!(!certs[0].contains("platform team"), "certificates only");
    assert_eq!(op.ctx.hub.config_maps_held(&env.namespace), ["internal-ca"]);
    llmesh_tests::eventually(20, "chat Ready", || async {
        ready(&models, "chat")
            .await
            .filter(|(ok, _, _)| ok == "True")
    })
    .await;

    // The sidecar trusts the upstream through the deployment's CA.
    let (status, body) = llmesh_tests::eventually(20, "a served call", || async {
        let answer = call(api).await;
        (answer.0 == 200).then_some(answer)
    })
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("mock reply to: hello"), "{body}");
    assert_eq!(upstream.requests().len(), 1);

    // Text that is no CA: reported on the model, which leaves the snapshot.
    let junk = serde_json::json!({"data": {"ca.crt": "not a certificate"}});
    maps.patch("internal-ca", &PatchParams::default(), &Patch::Merge(&junk))
        .await
        .unwrap();
    let (_, reason, message) = llmesh_tests::eventually(20, "chat refused", || async {
        ready(&models, "chat")
            .await
            .filter(|(ok, _, _)| ok == "False")
    })
    .await;
    assert_eq!(reason, "InvalidCaCertificate", "{message}");
    assert!(
        message.contains("ConfigMap \"internal-ca\" key \"ca.crt\" holds no PEM certificate"),
        "{message}"
    );
    let mut rx: watch::Receiver<Option<Arc<Snapshot>>> = snapshots;
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| {
            s.as_ref()
                .is_some_and(|s| s.models.iter().all(|m| m.name != "chat"))
        }),
    )
    .await
    .expect("the model never left the snapshot")
    .unwrap();
}

/// Local mode (`llmesh-local`): the same LLMModel beside a ConfigMap manifest. Without
/// the deployment's `tls` the upstream is refused with a 502 naming the TLS failure;
/// once the files name the CA, the watched directory reloads and the call is served.
#[tokio::test]
async fn local_manifests_with_a_ca_config_map_are_served() {
    let ca = TestCa::new("internal CA");
    let upstream: MockOpenAi = Mock::serve(
        Default::default(),
        MockConfig {
            tls: Some(ca.server_config(&["127.0.0.1"])),
            ..MockConfig::default()
        },
    )
    .await
    .unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("private-ca-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = |tls: &str| {
        format!(
            "apiVersion: llmesh.io/v1alpha1\nkind: LLMModel\nmetadata: {{name: chat}}\nspec:\n  \
             deployments:\n  - name: vllm\n    provider: vllm\n    model: llama\n    \
             baseUrl: '{}'\n{tls}",
            upstream.base_url()
        )
    };
    std::fs::write(dir.join("chat.yaml"), model("")).unwrap();
    let (tx, rx) = watch::channel(None);
    tokio::spawn(llmesh_operator::local::watch_dir(
        dir.clone(),
        Duration::from_millis(50),
        tx,
    ));
    let sidecar = llmesh_sidecar::Sidecar::bind(llmesh_sidecar::Settings {
        api_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        ..llmesh_sidecar::Settings::default()
    })
    .await
    .unwrap();
    let api = sidecar.api_addr();
    tokio::spawn(sidecar.serve(rx, std::future::pending()));
    let (status, body) = llmesh_tests::eventually(20, "an answer", || async {
        let answer = call(api).await;
        (answer.0 != 503).then_some(answer)
    })
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("TLS certificate not trusted"), "{body}");
    assert!(upstream.requests().is_empty());

    let indented: String = ca.pem().lines().map(|l| format!("    {l}\n")).collect();
    std::fs::write(
        dir.join("ca.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: internal-ca}}\ndata:\n  \
             ca.crt: |\n{indented}"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("chat.yaml"),
        model("    tls:\n      caConfigMapRef: {name: internal-ca, key: ca.crt}\n"),
    )
    .unwrap();
    let (status, body) = llmesh_tests::eventually(20, "a served call", || async {
        let answer = call(api).await;
        (answer.0 == 200).then_some(answer)
    })
    .await;
    assert!(body.contains("mock reply to: hello"), "{status} {body}");
    assert_eq!(upstream.requests().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

//! The operator against the real API server from `tests/apiserver`: controllers' status
//! and conditions, key Secrets (ownership, rotation, garbage collection), the budget
//! ledger, config push to a sidecar client authenticated by TokenReview (edits and Secret
//! rotation reaching it), and two replicas running together without double work.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use llmesh_crds::budget::BudgetStatus;
use llmesh_crds::llm_model::{ModelDeployment, Provider};
use llmesh_crds::shared::SecretKeyRef;
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_operator::push::{Push, TlsSource, TokenReviewer, serve, tls_config};
use llmesh_operator::run::{Settings, start};
use llmesh_sidecar::config::operator::{OperatorSource, stream_once};
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use tokio::sync::watch;

async fn env(name: &str) -> Option<TestEnv> {
    let env = TestEnv::new(name).await?;
    apply_crds(&env.client, &llmesh_crds::crds()).await;
    Some(env)
}

/// Creates `obj` in the test's namespace (fixtures come with their own).
async fn create<K>(env: &TestEnv, mut obj: K) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    obj.meta_mut().namespace = Some(env.namespace.clone());
    env.api::<K>()
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

/// An operator watching the test's namespace only, so parallel tests' operators do not
/// act on each other's objects.
async fn operator(env: &TestEnv) -> llmesh_operator::run::Operator {
    let settings = Settings {
        instance: Some("test".into()),
        namespace: Some(env.namespace.clone()),
    };
    start(env.client.clone(), &settings, std::future::pending::<()>())
        .await
        .unwrap()
}

/// Polls `check` until it returns `Some`, for up to 20 s.
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    llmesh_tests::eventually(20, what, check).await
}

/// The operator's push server (self-signed TLS, TokenReview auth) for `op`, and a
/// sidecar config source with a service-account token of the test's namespace.
async fn push_server(
    env: &TestEnv,
    op: &llmesh_operator::run::Operator,
    name: &str,
) -> (OperatorSource, tokio::task::JoinHandle<()>) {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cluster-{name}-{}", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let (tls, ca) = tls_config(&TlsSource::SelfSigned(vec!["localhost".into()])).unwrap();
    std::fs::write(dir.join("ca.pem"), ca).unwrap();
    let token = pod_token(env, &format!("app-{name}"), true).await;
    std::fs::write(dir.join("token"), &token).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let push = Arc::new(
        Push::new(
            op.ctx.hub.clone(),
            Arc::new(TokenReviewer::new(env.client.clone())),
            op.ctx.metrics.clone(),
        )
        .with_intake(Arc::new(llmesh_operator::intake::Intake::new(
            op.ctx.clone(),
        ))),
    );
    let server = tokio::spawn(serve(listener, tls, push, std::future::pending()));
    let source = OperatorSource {
        url: format!("https://localhost:{port}"),
        ca_file: dir.join("ca.pem"),
        token_file: dir.join("token"),
    };
    (source, server)
}

/// A pod named `pod` in the test's namespace (marked injected or not) and a token
/// bound to it, as the kubelet projects one.
async fn pod_token(env: &TestEnv, pod: &str, injected: bool) -> String {
    let manifest: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": pod, "namespace": env.namespace,
                     "annotations": {"llmesh.io/injected": injected.to_string()}},
        "spec": {"containers": [{"name": "app", "image": "app"}]}
    }))
    .unwrap();
    let created = env
        .api::<k8s_openapi::api::core::v1::Pod>()
        .create(&PostParams::default(), &manifest)
        .await
        .unwrap();
    let token = format!("sa-{pod}-{}", env.namespace);
    env.server.add_pod_token(
        &token,
        &format!("system:serviceaccount:{}:app", env.namespace),
        &format!("uid-sa-{}", env.namespace),
        &["system:serviceaccounts"],
        pod,
        created.metadata.uid.as_deref().unwrap(),
    );
    token
}

fn ready(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

fn secret(name: &str, key: &str, value: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some([(key.to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Secret::default()
    }
}

fn openai_model(name: &str, secret_name: &str) -> LlmModel {
    let mut d = ModelDeployment::new("openai", Provider::Openai, "gpt-4o-mini");
    d.api_key_secret_ref = Some(SecretKeyRef::new(secret_name, "apiKey"));
    LlmModel::test(name).with_deployments([d])
}

#[tokio::test]
async fn model_status_follows_secrets_and_fallbacks() {
    let Some(env) = env("op-models").await else {
        return;
    };
    let _op = operator(&env).await;
    let models: Api<LlmModel> = env.api();
    create(&env, LlmModel::test("demo")).await;
    create(&env, openai_model("needs-key", "openai")).await;
    create(&env, LlmModel::test("lonely").with_fallbacks(["nowhere"])).await;

    let status = |name: &'static str| {
        let models = models.clone();
        async move {
            models
                .get(name)
                .await
                .ok()
                .and_then(|m| m.status)
                .and_then(|s| ready(&s.conditions).map(|r| (r, s.observed_generation, s.summary)))
        }
    };
    let ((ok, reason, _), generation, summary) = eventually("demo Ready", || status("demo")).await;
    assert_eq!((ok.as_str(), reason.as_str()), ("True", "Compiled"));
    assert_eq!(generation, Some(1));
    assert_eq!(summary.as_deref(), Some("1 deployment (weighted-shuffle)"));
    // The first status may predate the Secret caches' sync; the settled one counts.
    let ((ok, reason, message), _, _) = eventually("needs-key status", || async {
        status("needs-key")
            .await
            .filter(|((ok, _, _), _, _)| ok == "False")
    })
    .await;
    assert_eq!(
        (ok.as_str(), reason.as_str()),
        ("False", "SecretNotFound"),
        "{message}"
    );
    assert!(message.contains("apiKeySecretRef"), "{message}");
    let ((ok, _, message), _, _) = eventually("lonely status", || status("lonely")).await;
    assert_eq!(ok, "True");
    assert!(
        message.contains("nowhere"),
        "a fallback to a missing model is reported: {message}"
    );

    // The Secret appears: the model becomes Ready without being touched.
    create(&env, secret("openai", "apiKey", "sk-test")).await;
    eventually("needs-key Ready", || async {
        status("needs-key")
            .await
            .filter(|((ok, _, _), _, _)| ok == "True")
    })
    .await;
}

#[tokio::test]
async fn virtual_keys_get_owned_secrets_rotation_and_gc() {
    let Some(env) = env("op-keys").await else {
        return;
    };
    let _op = operator(&env).await;
    let keys: Api<VirtualKey> = env.api();
    let secrets: Api<Secret> = env.api();
    create(&env, VirtualKey::test("team-a")).await;
    let (hash, prefix) = eventually("key status", || async {
        let s = keys.get("team-a").await.ok()?.status?;
        Some((s.key_hash?, s.key_prefix?))
    })
    .await;
    let secret = secrets.get("team-a-key").await.unwrap();
    let key = String::from_utf8(secret.data.unwrap()["key"].0.clone()).unwrap();
    assert!(key.starts_with("sk-llmesh-") && key.len() > 40);
    assert!(key.starts_with(&prefix));
    assert_eq!(hash, llmesh_operator::controllers::virtual_key::hash(&key));
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()[llmesh_operator::MANAGED_BY.0],
        llmesh_operator::MANAGED_BY.1
    );
    let owner = &secret.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("VirtualKey", "team-a", Some(true))
    );

    // Reconciling again never changes the key; the rotate annotation does.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        keys.get("team-a")
            .await
            .unwrap()
            .status
            .unwrap()
            .key_hash
            .unwrap(),
        hash
    );
    let rotate =
        serde_json::json!({"metadata": {"annotations": {"llmesh.io/rotate": "2026-11-22"}}});
    keys.patch("team-a", &PatchParams::default(), &Patch::Merge(&rotate))
        .await
        .unwrap();
    let rotated = eventually("rotation", || async {
        let h = keys.get("team-a").await.ok()?.status?.key_hash?;
        (h != hash).then_some(h)
    })
    .await;
    assert_ne!(rotated, hash);

    // Deleting the key deletes its Secret.
    keys.delete("team-a", &Default::default()).await.unwrap();
    eventually("secret collected", || async {
        secrets
            .get_opt("team-a-key")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

/// Writes spend as usage intake would: a resourceVersion-checked status replace, retried
/// on conflict.
async fn spend(budgets: &Api<Budget>, name: &str, micros: i64) {
    for _ in 0..50 {
        let mut current = budgets.get(name).await.unwrap();
        let Some(status) = current.status.as_mut().filter(|s| s.period_start.is_some()) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        status.spent_micros = micros;
        match budgets
            .replace_status(name, &PostParams::default(), &current)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("could not write spend");
}

#[tokio::test]
async fn budget_ledger_alerts_and_one_reset_with_two_replicas() {
    let Some(env) = env("op-budget").await else {
        return;
    };
    // Two replicas at once: writes are resourceVersion-checked, so each change is made once.
    let _a = operator(&env).await;
    let _b = operator(&env).await;
    let budgets: Api<Budget> = env.api();
    create(&env, Budget::test("monthly", "10.00", ["team-a"])).await;
    let mut short = Budget::test("short", "10.00", ["team-a"]);
    short.spec.period = llmesh_crds::shared::PeriodSpec::new("3s");
    create(&env, short).await;
    let first: BudgetStatus = eventually("budget status", || async {
        budgets
            .get("monthly")
            .await
            .ok()?
            .status
            .filter(|s| s.period_start.is_some())
    })
    .await;
    assert_eq!(first.remaining.as_deref(), Some("$10.00"));
    assert_eq!(first.limit.as_deref(), Some("$10.00"));
    assert!(first.reset_at.is_some());

    // Usage intake writes spend; the ledger follows and the 80% alert fires once.
    spend(&budgets, "monthly", 8_500_000).await;
    let status = eventually("ledger", || async {
        budgets
            .get("monthly")
            .await
            .ok()?
            .status
            .filter(|s| s.remaining_micros == 1_500_000)
    })
    .await;
    assert_eq!(status.spent.as_deref(), Some("$8.50"));
    assert!(!status.exhausted);
    assert_eq!(status.alerted_thresholds, vec![80]);
    let events: Api<Event> = env.api();
    let count = || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let n = list
            .items
            .iter()
            .filter(|e| e.reason.as_deref() == Some("BudgetThreshold"))
            .count();
        (n > 0).then_some(n)
    };
    eventually("alert event", count).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count().await, Some(1), "one alert, not one per replica");

    // The 3 s period ends: spend resets and the finished period is kept, once.
    spend(&budgets, "short", 4_000_000).await;
    let reset = eventually("reset", || async {
        budgets
            .get("short")
            .await
            .ok()?
            .status
            .filter(|s| s.history.iter().any(|h| h.spent_micros == 4_000_000))
    })
    .await;
    let periods: std::collections::HashSet<_> =
        reset.history.iter().map(|h| h.period_start.0).collect();
    assert_eq!(
        periods.len(),
        reset.history.len(),
        "no period recorded twice: {:?}",
        reset.history
    );
}

#[tokio::test]
async fn a_connected_sidecar_receives_edits_and_rotated_provider_secrets() {
    let Some(env) = env("op-push").await else {
        return;
    };
    let op = operator(&env).await;
    create(&env, secret("openai", "apiKey", "sk-one")).await;
    create(&env, openai_model("chat", "openai")).await;

    let (source, _server) = push_server(&env, &op, "push").await;

    let (tx, mut rx) = watch::channel(None);
    let (connected, _) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let version = tx
                .borrow()
                .as_ref()
                .map(|s: &Arc<llmesh_sidecar::config::Snapshot>| s.version.clone());
            let _ = stream_once(&source, version, &tx, &connected).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let key_of = |s: &llmesh_sidecar::config::Snapshot| {
        s.models.iter().find(|m| m.name == "chat").and_then(|m| {
            m.deployments[0]
                .api_key
                .as_ref()
                .map(|k| k.expose().to_owned())
        })
    };
    let wait = |rx: &mut watch::Receiver<Option<Arc<llmesh_sidecar::config::Snapshot>>>,
                want: &'static str| {
        let mut rx = rx.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                rx.wait_for(|s| s.as_ref().and_then(|s| key_of(s)).as_deref() == Some(want)),
            )
            .await
            .unwrap_or_else(|_| panic!("key {want} never reached the sidecar"))
            .map(|_| ())
            .unwrap();
        }
    };
    wait(&mut rx, "sk-one").await;
    // The operator holds the value of the referenced Secret only, not of the others.
    create(&env, secret("unrelated", "password", "hunter2")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(op.ctx.hub.secrets_held(&env.namespace), ["openai"]);

    // A rotated provider key reaches the connected sidecar, no restart.
    let rotated = serde_json::json!({"data": {"apiKey": "c2stdHdv"}}); // sk-two
    env.api::<Secret>()
        .patch("openai", &PatchParams::default(), &Patch::Merge(&rotated))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    wait(&mut rx, "sk-two").await;
    println!(
        "secret rotation reached the sidecar in {:?}",
        started.elapsed()
    );

    // An edit of the model does too.
    let edit = serde_json::json!({"spec": {"strategy": "least-busy"}});
    env.api::<LlmModel>()
        .patch("chat", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|s| {
            s.as_ref().is_some_and(|s| {
                s.models
                    .iter()
                    .any(|m| m.strategy == llmesh_sidecar::config::snapshot::Strategy::LeastBusy)
            })
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        op.ctx
            .metrics
            .render()
            .windows(b"llmesh_operator_connected_sidecars 1".len())
            .any(|w| w == b"llmesh_operator_connected_sidecars 1")
    );
}

/// The issue's end-to-end: the quickstart manifests applied to the API server become
/// Ready; a sidecar fed by the operator serves them; an edit changes its behaviour with no
/// restart; with the operator gone it keeps serving.
#[tokio::test]
async fn quickstart_applied_served_edited_and_survives_the_operator() {
    let Some(env) = env("op-e2e").await else {
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let inputs = llmesh_operator::load_inputs(&dir).unwrap();
    for s in inputs.secrets {
        create(&env, s).await;
    }
    for m in inputs.models {
        create(&env, m).await;
    }
    for k in inputs.keys {
        create(&env, k).await;
    }
    for b in inputs.budgets {
        create(&env, b).await;
    }
    let op = operator(&env).await;
    let models: Api<LlmModel> = env.api();
    for name in [
        "chat",
        "chat-backup",
        "flaky",
        "embed",
        "gpt-4o-mini",
        "claude",
    ] {
        // Ready once the operator has read every manifest: a model compiled before its
        // Secret was seen says SecretNotFound until the next compile.
        let (ok, reason, message) = eventually(name, || async {
            ready(&models.get(name).await.ok()?.status?.conditions)
                .filter(|(status, _, _)| status == "True")
        })
        .await;
        assert_eq!(ok, "True", "{name}: {reason}: {message}");
    }
    let keys: Api<VirtualKey> = env.api();
    let key = eventually("key status", || async {
        keys.get("team-a")
            .await
            .ok()?
            .status
            .filter(|s| s.key_hash.is_some())
    })
    .await;
    assert_eq!(
        key.key_prefix.as_deref(),
        Some("sk-llmesh-quic"),
        "the user's own key Secret is kept"
    );
    let budgets: Api<Budget> = env.api();
    eventually("budget status", || async {
        budgets
            .get("team-a-monthly")
            .await
            .ok()?
            .status
            .filter(|s| s.remaining.is_some())
    })
    .await;

    // A sidecar fed by the operator's push stream.
    let (source, server) = push_server(&env, &op, "e2e").await;
    let (tx, rx) = watch::channel(None);
    let (connected, _) = watch::channel(false);
    tokio::spawn(llmesh_sidecar::config::operator::run(
        source,
        tx,
        connected,
        Arc::default(),
    ));
    let settings = llmesh_sidecar::Settings {
        api_addr: "127.0.0.1:0".parse().unwrap(),
        ..llmesh_sidecar::Settings::default()
    };
    let sidecar = llmesh_sidecar::Sidecar::bind(settings).await.unwrap();
    let api = sidecar.api_addr();
    tokio::spawn(sidecar.serve(rx, std::future::pending()));
    let deployment_of = |api: std::net::SocketAddr| async move {
        let mut stream = tokio::net::TcpStream::connect(api).await.ok()?;
        let body = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-llmesh-quickstart-0000000000000000\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
            .await
            .ok()?;
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut text)
            .await
            .ok()?;
        text.starts_with("HTTP/1.1 200").then_some(())?;
        text.lines()
            .find_map(|l| l.strip_prefix("x-llmesh-deployment: ").map(str::to_owned))
    };
    let first = eventually("the sidecar serving", || deployment_of(api)).await;
    assert!(first == "primary" || first == "secondary", "{first}");

    // Edit the model: the sidecar's routing changes, no restart.
    let edit = serde_json::json!({"spec": {"deployments": [{"name": "edited", "provider": "demo", "model": "echo"}]}});
    models
        .patch("chat", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    eventually("the edit to reach the sidecar", || async {
        deployment_of(api).await.filter(|d| d == "edited")
    })
    .await;

    // The operator goes away: the sidecar keeps serving its last config.
    server.abort();
    drop(op);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(deployment_of(api).await.as_deref(), Some("edited"));
}

/// What `kubectl get` shows for one object: the API server's Table, as column name →
/// cell (every column, also those only `-o wide` prints).
async fn table_row(
    env: &TestEnv,
    plural: &str,
    name: &str,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    use http_body_util::BodyExt;
    let request = http::Request::get(format!(
        "/apis/llmesh.io/v1alpha1/namespaces/{}/{plural}/{name}",
        env.namespace
    ))
    .header(
        http::header::ACCEPT,
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .body(Vec::new().into())
    .unwrap();
    let response = env.client.send(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let table: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(table["kind"], "Table", "{table}");
    let names = table["columnDefinitions"].as_array().unwrap();
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    names
        .iter()
        .zip(cells)
        .map(|(c, cell)| (c["name"].as_str().unwrap().to_owned(), cell.clone()))
        .collect()
}

/// `$` and dollars, a point, and at least the cents: the one money format.
fn is_money(cell: &serde_json::Value) -> bool {
    let Some(text) = cell.as_str().and_then(|t| t.strip_prefix('$')) else {
        return false;
    };
    let Some((dollars, cents)) = text.split_once('.') else {
        return false;
    };
    !dollars.is_empty()
        && dollars.bytes().all(|b| b.is_ascii_digit())
        && (2..=6).contains(&cents.len())
        && cents.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn kubectl_get_shows_reset_and_expiry_times_and_one_money_format() {
    let Some(env) = env("op-columns").await else {
        return;
    };
    let _op = operator(&env).await;
    let budgets: Api<Budget> = env.api();
    // The limit spelled without cents: status shows it like every other amount.
    create(&env, Budget::test("display", "50", ["team-a"])).await;
    spend(&budgets, "display", 2_500_000).await;
    eventually("the ledger to show the spend", || async {
        let status = budgets.get("display").await.ok()?.status?;
        (status.remaining.as_deref() == Some("$47.50")).then_some(())
    })
    .await;
    let row = table_row(&env, "budgets", "display").await;
    assert_eq!(row["Limit"], "$50.00", "{row:?}");
    assert_eq!(row["Spent"], "$2.50", "{row:?}");
    assert_eq!(row["Remaining"], "$47.50", "{row:?}");
    for money in ["Limit", "Spent", "Remaining"] {
        assert!(is_money(&row[money]), "{money}: {row:?}");
    }
    // The reset is a time to come, shown as itself (a `date` column would print
    // `<invalid>` for it); Age is a past time, shown as an age.
    let reset = row["Reset"].as_str().unwrap();
    let reset: jiff::Timestamp = reset
        .parse()
        .unwrap_or_else(|e| panic!("Reset {reset:?} is not RFC 3339: {e}"));
    assert!(reset > jiff::Timestamp::now(), "{reset}");
    let age = row["Age"].as_str().unwrap();
    assert!(
        age != "<invalid>" && age.ends_with(['s', 'm', 'h', 'd']),
        "{age}"
    );
    assert_eq!(row["Exhausted"], false);

    // A key expiring next month: the same for Expires.
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    let expires = expires.round(jiff::Unit::Second).unwrap();
    let mut key = VirtualKey::test("expiring");
    key.spec.expires_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        expires,
    ));
    create(&env, key).await;
    let row = table_row(&env, "virtualkeys", "expiring").await;
    assert_eq!(row["Expires"], expires.to_string(), "{row:?}");
}

/// One usage batch from `source` (its token), costing `micros` to Budget `budget`.
async fn report(source: &OperatorSource, reporter: &str, seq: u64, budget: &str, micros: u64) {
    use llmesh_sidecar::meter::report::{Authority, Report, UsageRecord};
    use llmesh_sidecar::meter::usage::Usage;
    let authority = llmesh_sidecar::meter::remote::OperatorAuthority::new(
        source.clone(),
        Arc::new(llmesh_sidecar::config::link::Link::default()),
    );
    let record = UsageRecord {
        key: Some("team-a".into()),
        team: None,
        model: "chat".into(),
        served_model: "chat".into(),
        deployment: "d".into(),
        provider: "openai".into(),
        usage: Usage::default(),
        cost_micros: micros,
        estimated: false,
        status: 200,
        latency_ms: 1,
        budgets: vec![budget.into()],
    };
    let batch = Report {
        reporter: reporter.into(),
        seq,
        records: vec![record],
        ..Report::default()
    };
    authority.submit(&batch).await.unwrap();
}

/// A pod cannot report under another sidecar's name: usage is recorded under the
/// authenticated subject, so a batch with a huge number under a victim's reporter id
/// does not make the victim's next batches look like resends (which would drop them).
#[tokio::test]
async fn a_report_under_another_sidecars_name_does_not_swallow_its_spend() {
    let Some(env) = env("impostor").await else {
        return;
    };
    create(&env, Budget::test("team", "10.00", ["team-a"])).await;
    let op = operator(&env).await;
    let (victim, _server) = push_server(&env, &op, "victim").await;
    // Another injected pod of the namespace, with its own token.
    let mut impostor = victim.clone();
    let token = pod_token(&env, "impostor", true).await;
    impostor.token_file = victim.token_file.with_file_name("impostor-token");
    std::fs::write(&impostor.token_file, &token).unwrap();
    let budgets = env.api::<Budget>();
    let spent = || async {
        budgets
            .get("team")
            .await
            .ok()
            .and_then(|b| b.status)
            .map_or(0, |s| s.spent_micros)
    };
    eventually("the Budget's status", || async {
        budgets.get("team").await.ok()?.status.map(|_| ())
    })
    .await;
    report(&impostor, "sidecar-1", 1_000_000_000, "team", 1).await;
    report(&victim, "sidecar-1", 1, "team", 5).await;
    report(&victim, "sidecar-1", 2, "team", 7).await;
    assert_eq!(spent().await, 13, "the victim's batches were dropped");
}

/// The hub compiles a namespace once per change to its resources: reconciles, usage
/// reports and the status writes they cause read the result it holds; an edit compiles
/// again.
#[tokio::test]
async fn usage_reports_and_status_writes_do_not_recompile() {
    let Some(env) = env("compile-once").await else {
        return;
    };
    create(&env, LlmModel::test("chat")).await;
    create(&env, Budget::test("team", "10.00", ["team-a"])).await;
    let op = operator(&env).await;
    let (source, _server) = push_server(&env, &op, "once").await;
    let budgets = env.api::<Budget>();
    eventually("the Budget's status", || async {
        budgets.get("team").await.ok()?.status.map(|_| ())
    })
    .await;
    let compiles = || op.ctx.metrics.compiles.get();
    // Wait out the start: the first compiles, the controllers' first status writes.
    let mut before = compiles();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = compiles();
        if now == before {
            break;
        }
        before = now;
    }
    for seq in 1..=5 {
        report(&source, "sidecar-1", seq, "team", 10).await;
    }
    for _ in 0..10 {
        op.ctx.hub.compiled(&env.namespace);
    }
    // Let the status writes' watch events arrive, and the hub's debounce pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(compiles(), before, "usage reports recompiled the namespace");

    let models = env.api::<LlmModel>();
    let mut chat = models.get("chat").await.unwrap();
    chat.spec.deployments[0].weight = 3;
    models
        .replace("chat", &PostParams::default(), &chat)
        .await
        .unwrap();
    eventually("a compile after the edit", || async {
        let compiled = op.ctx.hub.compiled(&env.namespace);
        (compiled.snapshot.models[0].deployments[0].weight == 3).then_some(())
    })
    .await;
    assert!(compiles() > before);
}

/// Only pods the webhook injected receive config: a token bound to another pod of the
/// namespace, or bound to no pod at all, is refused even with the `llmesh` audience.
#[tokio::test]
async fn only_injected_pods_receive_config() {
    let Some(env) = env("pods-only").await else {
        return;
    };
    let op = operator(&env).await;
    let (source, _server) = push_server(&env, &op, "injected").await;
    let (tx, _) = watch::channel(None);
    let (connected, _) = watch::channel(false);
    let once = |source: OperatorSource| {
        let tx = tx.clone();
        let connected = connected.clone();
        async move { stream_once(&source, None, &tx, &connected).await }
    };
    // The injected pod's token is served (the stream runs until dropped).
    let served = tokio::time::timeout(Duration::from_secs(3), once(source.clone())).await;
    assert!(
        served.is_err(),
        "the injected pod's stream ended: {served:?}"
    );
    let plain = pod_token(&env, "plain", false).await;
    let unbound = format!("unbound-{}", env.namespace);
    env.server.add_token(
        &unbound,
        &format!("system:serviceaccount:{}:app", env.namespace),
        "uid-unbound",
        &["system:serviceaccounts"],
    );
    for (what, token) in [("a pod not injected", plain), ("no pod", unbound)] {
        let mut other = source.clone();
        other.token_file = source.token_file.with_file_name(format!("{what}.token"));
        std::fs::write(&other.token_file, token).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), once(other))
            .await
            .unwrap_or_else(|_| panic!("a token of {what} was served"));
        assert!(
            matches!(
                err,
                Err(llmesh_sidecar::config::operator::StreamError::Status(
                    http::StatusCode::UNAUTHORIZED
                ))
            ),
            "{what}: {err:?}"
        );
    }
}

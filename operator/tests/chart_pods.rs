//! The chart as shipped, run: each rendered scenario's operator Deployment becomes an
//! `llmesh-operator` process started with exactly the container's args and env (through
//! `llmesh_tests::pod`, which plays the kubelet; its limits are in `docs/testing.md`)
//! against the test API server. Where the webhook is on, an app pod created in a
//! labelled namespace is injected by that operator through the API server, and the
//! injected `llmesh-sidecar` container is run the same way: it connects to the operator
//! with its projected token and CA, and serves a chat call made to the app's
//! `OPENAI_BASE_URL` with the app's injected `OPENAI_API_KEY`, metered into a Budget.
//! Where the scenario gives sidecars an upstream CA ConfigMap (`sidecar.tls`), the
//! upstream serves HTTPS under that CA, so the call proves the rendered values reach
//! the sidecar as a trusted `--ca-file`. Where it gives them an OTLP endpoint
//! (`sidecar.tracing`), the test's OTLP receiver stands there and gets the calls' spans.
//!
//! What the test adds to the chart's values: `operator.watchNamespace`, so the operator
//! leaves other tests' namespaces alone. What it changes in rendered objects: the webhook
//! configuration calls `https://localhost:<port>` instead of the Service (the test API
//! server has no Service network) and only matches the test's namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use llmesh_crds::llm_model::{ModelDeployment, Provider};
use llmesh_crds::{Budget, LlmModel, VirtualKey};
use llmesh_tests::MockConfig;
use llmesh_tests::MockOtlp;
use llmesh_tests::apiserver::{TestEnv, apply_crds};
use llmesh_tests::eventually;
use llmesh_tests::openai::MockOpenAi;
use llmesh_tests::otlp::kind;
use llmesh_tests::pod::{self, Node, Service};
use llmesh_tests::tls::TestCa;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OPERATOR: &str = env!("CARGO_BIN_EXE_llmesh-operator");

/// A process killed when dropped; its stderr goes to `log`, shown when the test fails.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: std::process::Command, log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log when the process has exited.
    fn alive(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{what} exited ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.log());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request to `url` (`http://127.0.0.1:PORT/path`): status and body.
async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
    let mut request = format!(
        "{method} /{path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut text))
        .await
        .ok()?
        .ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
}

/// Waits for an HTTP probe of a running process to answer 200.
async fn ready(proc: &mut Proc, url: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        proc.alive(what);
        last = http("GET", url, &[], "").await;
        if last.as_ref().is_some_and(|(status, _)| *status == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{what} never became ready at {url}: last answer {last:?}\n{}",
        proc.log()
    );
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

/// A rendered scenario, running: the operator process and what the sidecar needs.
struct Running {
    operator: Proc,
    /// The operator's Service, mapped to the operator process's local ports.
    service: Service,
    /// The rendered webhook configuration as created (so it can be deleted), if any.
    webhook: Option<String>,
    /// The ConfigMap (name, key) of upstream CAs the chart has injected sidecars trust.
    upstream_ca: Option<(String, String)>,
}

/// Renders the chart, starts scenario `name`'s operator exactly as its Deployment says,
/// and waits for its readiness probe. With `webhook`, the rendered webhook configuration
/// is created first (its name is the chart's, so one test per name).
async fn start_operator(
    env: &TestEnv,
    name: &str,
    apps: &str,
    webhook: bool,
    otlp: Option<String>,
) -> Option<Running> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pods-{}", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let mut extra = json!({"operator": {"watchNamespace": apps}});
    if let Some(endpoint) = otlp {
        // Every span sampled, so the test can count them.
        extra["sidecar"] = json!({"tracing": {"otlpEndpoint": endpoint, "samplerArg": "1"}});
    }
    let scenarios = llmesh_tests::chart::render(&env.namespace, &extra, &dir.join("rendered"))?;
    let (_, docs) = scenarios
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("the chart tests have no scenario {name}"));
    let deployment = of_kind(&docs, "Deployment")[0];
    let pod = pod::from_deployment(deployment, "operator-0", &env.namespace);
    let container = &pod["spec"]["containers"][0];
    let rendered_env = |name: &str| {
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let upstream_ca = rendered_env("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP").map(|name| {
        let key = rendered_env("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY").unwrap();
        (name, key)
    });
    let ports: Vec<(u16, u16)> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["containerPort"].as_u64().unwrap() as u16, free_port()))
        .collect();
    let port_named = |target: &Value| -> u16 {
        let number = match target {
            Value::String(name) => container["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name.as_str())
                .unwrap()["containerPort"]
                .as_u64()
                .unwrap() as u16,
            other => other.as_u64().unwrap() as u16,
        };
        ports.iter().find(|(p, _)| *p == number).unwrap().1
    };
    let svc = of_kind(&docs, "Service")[0];
    let service = Service {
        name: svc["metadata"]["name"].as_str().unwrap().to_owned(),
        namespace: env.namespace.clone(),
        ports: svc["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["port"].as_u64().unwrap() as u16,
                    port_named(&p["targetPort"]),
                )
            })
            .collect(),
    };

    // Secrets the operator's pod mounts are made by cert-manager in a cluster (they are
    // the only ones): the test plays cert-manager with a CA and a serving certificate
    // for the Service's names, as the chart's Certificate asks.
    let mut secrets = BTreeMap::new();
    let names: Vec<String> = ["", ".{ns}", ".{ns}.svc", ".{ns}.svc.cluster.local"]
        .iter()
        .map(|suffix| format!("{}{}", service.name, suffix.replace("{ns}", &env.namespace)))
        .chain(["localhost".to_owned()])
        .collect();
    for volume in pod["spec"]["volumes"].as_array().unwrap() {
        let Some(secret_name) = volume["secret"]["secretName"].as_str() else {
            continue;
        };
        let mut secret =
            llmesh_operator::webhook::certs::generate(&names, jiff::Timestamp::now()).unwrap();
        secret.metadata = ObjectMeta {
            name: Some(secret_name.to_owned()),
            namespace: Some(env.namespace.clone()),
            ..ObjectMeta::default()
        };
        secret.data.as_mut().unwrap().remove("ca.key");
        secret.type_ = Some("kubernetes.io/tls".into());
        env.api::<Secret>()
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        secrets.insert(secret_name.to_owned(), secret_data(&secret));
    }

    // The webhook configuration exists before the operator starts, as after
    // `helm install`; it calls the webhook port on loopback and only for the apps.
    let configs = of_kind(&docs, "MutatingWebhookConfiguration");
    let webhook = match configs.first().filter(|_| webhook) {
        Some(config) => {
            let mut config = (*config).clone();
            for hook in config["webhooks"].as_array_mut().unwrap() {
                let svc_ref = hook["clientConfig"]["service"].clone();
                let port = service
                    .ports
                    .iter()
                    .find(|(p, _)| u64::from(*p) == svc_ref["port"].as_u64().unwrap())
                    .unwrap()
                    .1;
                hook["clientConfig"] = json!({
                    "url": format!("https://localhost:{port}{}", svc_ref["path"].as_str().unwrap())
                });
                // cert-manager's CA injector fills the caBundle in that mode.
                if let Some((_, data)) = secrets.iter().next() {
                    hook["clientConfig"]["caBundle"] = json!(STANDARD.encode(&data["ca.crt"]));
                }
                hook["namespaceSelector"]["matchExpressions"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"key": "kubernetes.io/metadata.name", "operator": "In", "values": [apps]}));
            }
            let config: MutatingWebhookConfiguration = serde_json::from_value(config).unwrap();
            let api: Api<MutatingWebhookConfiguration> = Api::all(env.client.clone());
            let name = config.metadata.name.clone().unwrap();
            let _ = api.delete(&name, &DeleteParams::default()).await;
            api.create(&PostParams::default(), &config).await.unwrap();
            Some(name)
        }
        None => None,
    };

    let node = Node {
        dir: dir.join("node"),
        binaries: vec![("llmesh-operator".into(), OPERATOR.into())],
        services: vec![service.clone()],
        ports,
        secrets,
        env: vec![(
            "KUBECONFIG".into(),
            env.server.kubeconfig_path().display().to_string(),
        )],
        ..Node::default()
    };
    let command = node.command(&pod, "operator").unwrap();
    println!("{name}: running {command:?}");
    let mut operator = Proc::spawn(command, dir.join("operator.log"));
    let url = node.probe_url(&pod, "operator", "readinessProbe").unwrap();
    ready(&mut operator, &url, &format!("the {name} operator")).await;
    Some(Running {
        operator,
        service,
        webhook,
        upstream_ca,
    })
}

/// The namespace apps run in: labelled for injection, marked as a test's.
async fn apps_namespace(env: &TestEnv) -> String {
    let apps = format!("{}-apps", env.namespace);
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": apps, "labels": {
            "llmesh.io/injection": "enabled", "llmesh.io/test": "true"
        }}
    }))
    .unwrap();
    Api::<Namespace>::all(env.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    apps
}

/// Scenario `name` from install to a served, metered chat call.
async fn install_inject_and_call(name: &str) {
    let Some(env) = TestEnv::new(&format!("pods-{name}")).await else {
        return;
    };
    apply_crds(&env.client, &llmesh_crds::crds()).await;
    let apps = apps_namespace(&env).await;
    // Where the scenario traces, its sidecars export to a receiver of the test's.
    let otlp = match name {
        "full" => Some(MockOtlp::start().await),
        _ => None,
    };
    let endpoint = otlp.as_ref().map(MockOtlp::base_url);
    let Some(mut running) = start_operator(&env, name, &apps, true, endpoint).await else {
        return;
    };
    let client = env.client.clone();
    let pp = PostParams::default();

    // What a team applies: an upstream Secret, a model on the mock, a key with a Budget.
    // Where the chart gives sidecars an upstream CA ConfigMap, the mock serves HTTPS
    // under that CA, as a self-hosted model behind internal TLS does, and the team
    // keeps the CA in that ConfigMap of its namespace.
    let private_ca = running.upstream_ca.as_ref().map(|(name, key)| {
        let ca = TestCa::new("internal CA");
        let data: BTreeMap<String, String> = [(key.clone(), ca.pem().to_owned())].into();
        (ca, name.clone(), data)
    });
    let mock = match &private_ca {
        Some((ca, name, data)) => {
            let config_map: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": name}, "data": data
            }))
            .unwrap();
            Api::<ConfigMap>::namespaced(client.clone(), &apps)
                .create(&pp, &config_map)
                .await
                .unwrap();
            let config = MockConfig {
                tls: Some(ca.server_config(&["127.0.0.1"])),
                ..MockConfig::default()
            };
            MockOpenAi::serve(Default::default(), config).await.unwrap()
        }
        None => MockOpenAi::start().await,
    };
    let upstream = Secret {
        metadata: ObjectMeta {
            name: Some("upstream".into()),
            ..ObjectMeta::default()
        },
        data: Some([("apiKey".to_owned(), ByteString(b"sk-upstream".to_vec()))].into()),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), &apps)
        .create(&pp, &upstream)
        .await
        .unwrap();
    let mut model = LlmModel::test("chat")
        .with_deployments([
            ModelDeployment::new("mock", Provider::OpenaiCompatible, "gpt-4o-mini")
                .with_base_url(&mock.base_url())
                .with_secret("upstream", "apiKey"),
        ])
        .with_prices("1000", "2000");
    model.metadata.namespace = Some(apps.clone());
    Api::<LlmModel>::namespaced(client.clone(), &apps)
        .create(&pp, &model)
        .await
        .unwrap();
    let mut key = VirtualKey::test("app").with_budget("team");
    key.metadata.namespace = Some(apps.clone());
    Api::<VirtualKey>::namespaced(client.clone(), &apps)
        .create(&pp, &key)
        .await
        .unwrap();
    let mut budget = Budget::test("team", "100", ["app"]);
    budget.metadata.namespace = Some(apps.clone());
    Api::<Budget>::namespaced(client.clone(), &apps)
        .create(&pp, &budget)
        .await
        .unwrap();

    // The app's pod, as a user writes it; the API server sends it to the webhook.
    let app: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app", "annotations": {
            "llmesh.io/virtual-key": "app",
            // The sidecar below runs with the variable this becomes: a value its flag
            // parser refused would stop it from starting.
            "llmesh.io/sidecar-worker-threads": "2"
        }},
        "spec": {"containers": [{"name": "app", "image": "python:3.12"}]}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &apps);
    let created = pods.create(&pp, &app).await.unwrap();
    let pod = serde_json::to_value(&created).unwrap();
    assert_eq!(
        pod["spec"]["initContainers"][0]["name"], "llmesh-sidecar",
        "the pod was not injected: {pod:#}"
    );
    assert!(
        pod["spec"]["initContainers"][0]["env"]
            .as_array()
            .is_some_and(
                |env| env.contains(&json!({"name": "LLMESH_WORKER_THREADS", "value": "2"}))
            ),
        "the annotation reaches the sidecar's environment: {pod:#}"
    );

    // What the kubelet would mount: the key's Secret (made by the operator), the CA
    // ConfigMap (published by the operator) and a token the API server accepts.
    let app_env = &pod::container(&pod, "app").unwrap()["env"];
    let key_secret = app_env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "OPENAI_API_KEY")
        .unwrap()["valueFrom"]["secretKeyRef"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &apps);
    let key = eventually(30, "the key's Secret", || async {
        secrets.get_opt(&key_secret).await.unwrap()
    })
    .await;
    let ca_name = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .find_map(|s| s["configMap"]["name"].as_str())
        .expect("the injected volume projects the CA ConfigMap")
        .to_owned();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &apps);
    let ca = eventually(30, "the CA ConfigMap", || async {
        config_maps.get_opt(&ca_name).await.unwrap()
    })
    .await;
    let token = format!("sa-app-{apps}");
    // Bound to the app's pod, as the kubelet's projected tokens are.
    env.server.add_pod_token(
        &token,
        &format!("system:serviceaccount:{apps}:default"),
        &format!("uid-app-{apps}"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{apps}"),
        ],
        "app",
        created.metadata.uid.as_deref().unwrap(),
    );
    let mut config_maps: BTreeMap<String, BTreeMap<String, String>> =
        [(ca_name.clone(), ca.data.clone().unwrap_or_default())].into();
    if let Some((_, name, data)) = &private_ca {
        let sidecar = pod::container(&pod, "llmesh-sidecar").unwrap();
        assert!(
            sidecar["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "--ca-file"),
            "the injected sidecar is given the upstream CA: {sidecar:#}"
        );
        config_maps.insert(name.clone(), data.clone());
    }
    let node = Node {
        dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pods-{}/app", env.namespace)),
        binaries: vec![(
            "llmesh-sidecar".into(),
            llmesh_tests::workspace_bin("llmesh-sidecar", "llmesh-sidecar"),
        )],
        services: vec![running.service.clone()],
        ports: vec![(4000, free_port()), (4001, free_port())],
        secrets: [(key_secret.clone(), secret_data(&key))].into(),
        config_maps,
        token: Some(token),
        ..Node::default()
    };
    let command = node.command(&pod, "llmesh-sidecar").unwrap();
    println!("{name}: running {command:?}");
    let log = node.dir.join("sidecar.log");
    std::fs::create_dir_all(&node.dir).unwrap();
    let mut sidecar = Proc::spawn(command, log);
    let url = node
        .probe_url(&pod, "llmesh-sidecar", "readinessProbe")
        .unwrap();
    ready(&mut sidecar, &url, "the injected sidecar").await;

    // The app's call, with what the webhook gave it.
    let vars: BTreeMap<String, String> = node.env(&pod, "app").unwrap().into_iter().collect();
    let base = &vars["OPENAI_BASE_URL"];
    let auth = format!("Bearer {}", vars["OPENAI_API_KEY"]);
    let body = r#"{"model":"chat","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}"#;
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let (status, answer) = eventually(30, "a served call", || async {
        let answer = http("POST", &format!("{base}/chat/completions"), &headers, body).await?;
        (answer.0 == 200).then_some(answer)
    })
    .await;
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "mock reply to: hello"
    );
    assert!(!mock.requests().is_empty(), "the mock was not called");
    // An Anthropic client with what the webhook gave it: the SDKs append /v1/messages
    // to ANTHROPIC_BASE_URL and send ANTHROPIC_API_KEY as x-api-key.
    let anthropic = [
        ("x-api-key", vars["ANTHROPIC_API_KEY"].as_str()),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ];
    let call = r#"{"model":"chat","max_tokens":10,"messages":[{"role":"user","content":"hello"}]}"#;
    let url = format!("{}/v1/messages", vars["ANTHROPIC_BASE_URL"]);
    let (status, answer) = http("POST", &url, &anthropic, call).await.unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["type"], "message", "{answer}");
    assert_eq!(answer["content"][0]["text"], "mock reply to: hello");
    // The usage reached the operator through the sidecar's usage client.
    let budgets: Api<Budget> = Api::namespaced(client.clone(), &apps);
    eventually(30, "the Budget to record the spend", || async {
        let spent = budgets.get("team").await.ok()?.status?.spent_micros;
        (spent > 0).then_some(())
    })
    .await;
    // Both calls' spans reached the chart's OTLP endpoint, naming the pod they came from.
    if let Some(otlp) = &otlp {
        let spans = otlp.wait_for_spans(4, Duration::from_secs(30)).await;
        let servers: Vec<_> = spans.iter().filter(|s| s.kind == kind::SERVER).collect();
        assert_eq!(servers.len(), 2, "{spans:#?}");
        let endpoints: Vec<_> = servers.iter().map(|s| s.attr("llmesh.endpoint")).collect();
        assert!(
            endpoints.contains(&&json!("chat_completions"))
                && endpoints.contains(&&json!("messages"))
        );
        for span in servers {
            assert_eq!(span.attr("gen_ai.request.model"), "chat");
            assert_eq!(span.resource["service.name"], "llmesh-sidecar");
            assert_eq!(span.resource["k8s.namespace.name"], json!(apps));
            assert_eq!(span.resource["k8s.pod.name"], pod["metadata"]["name"]);
        }
    }
    running.operator.alive("the operator");
    sidecar.alive("the sidecar");
    if let Some(config) = running.webhook.take() {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client);
        api.delete(&config, &DeleteParams::default()).await.unwrap();
    }
}

#[tokio::test]
async fn default_install_injects_a_pod_whose_sidecar_serves_a_call() {
    install_inject_and_call("default").await;
}

/// cert-manager certificates, a name override, text logs, a watched namespace, an
/// upstream behind a private CA the chart has sidecars trust.
#[tokio::test]
async fn full_install_injects_a_pod_whose_sidecar_serves_a_call() {
    install_inject_and_call("full").await;
}

/// The other rendered scenarios' operators start as rendered and become ready.
#[tokio::test]
async fn every_other_rendered_operator_becomes_ready() {
    for name in ["issuer", "no-webhook"] {
        let Some(env) = TestEnv::new(&format!("pods-{name}")).await else {
            return;
        };
        apply_crds(&env.client, &llmesh_crds::crds()).await;
        let apps = apps_namespace(&env).await;
        let Some(mut running) = start_operator(&env, name, &apps, false, None).await else {
            return;
        };
        running.operator.alive(name);
    }
}

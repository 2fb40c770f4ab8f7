//! Tests of sidecar injection as a pure function: every rule on plain values.

use super::*;
use serde_json::json;

fn config() -> Config {
    Config {
        image: "ghcr.io/llmesh/sidecar:0.1.0".into(),
        pull_policy: "IfNotPresent".into(),
        operator_url: "https://llmesh-operator.llmesh-system.svc:8443".into(),
        ca_config_map: "llmesh-ca".into(),
        operator_namespace: "llmesh-system".into(),
        resources: Resources {
            cpu_request: Some("50m".into()),
            memory_request: Some("64Mi".into()),
            cpu_limit: None,
            memory_limit: Some("256Mi".into()),
        },
        log_format: "json".into(),
        upstream_ca: UpstreamCa::default(),
        tracing: SidecarTracing::default(),
    }
}

fn enabled() -> Context {
    Context {
        namespace: "team-a".into(),
        namespace_enabled: true,
        virtual_key_secret: None,
    }
}

fn pod(value: Value) -> (Pod, Value) {
    (serde_json::from_value(value.clone()).unwrap(), value)
}

fn app() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-", "labels": {"app": "a"}},
        "spec": {"containers": [{"name": "app", "image": "python:3.12"}]}
    })
}

/// Runs the webhook and applies its patch to the original JSON, as the API server does.
fn apply(value: Value, ctx: &Context) -> (Value, Vec<String>) {
    let (p, mut raw) = pod(value);
    match inject(&p, &config(), ctx) {
        Outcome::Patch(patch, warnings) => {
            json_patch::patch(&mut raw, &patch).unwrap();
            // The result is still a valid Pod.
            let _: Pod = serde_json::from_value(raw.clone()).unwrap();
            (raw, warnings)
        }
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn env(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

#[test]
fn a_pod_in_an_enabled_namespace_gets_a_native_sidecar() {
    let (out, warnings) = apply(app(), &enabled());
    assert!(warnings.is_empty());
    let init = out["spec"]["initContainers"].as_array().unwrap();
    assert_eq!(init.len(), 1);
    let s = &init[0];
    assert_eq!(s["name"], SIDECAR_NAME);
    assert_eq!(s["restartPolicy"], "Always");
    assert_eq!(s["image"], "ghcr.io/llmesh/sidecar:0.1.0");
    let args: Vec<&str> = s["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "--operator",
            "https://llmesh-operator.llmesh-system.svc:8443",
            "--operator-ca",
            "/var/run/secrets/llmesh/ca.crt",
            "--token-file",
            "/var/run/secrets/llmesh/token",
            "--listen",
            "127.0.0.1:4000",
            "--admin-listen",
            "0.0.0.0:4001",
            "--log-format",
            "json"
        ]
    );
    assert_eq!(s["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(s["readinessProbe"]["httpGet"]["port"], 4001);
    let sc = &s["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        s["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}})
    );
    assert_eq!(s["env"], json!([]));
    assert_eq!(s["volumeMounts"][0]["mountPath"], MOUNT_PATH);

    let volumes = out["spec"]["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 1);
    let sources = &volumes[0]["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["audience"], "llmesh");
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
    assert_eq!(sources[1]["configMap"]["name"], "llmesh-ca");

    let app = &out["spec"]["containers"][0];
    assert_eq!(
        app["env"],
        json!([
            {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:4000/v1"},
            // No /v1: the Anthropic SDKs and Claude Code append /v1/messages themselves.
            {"name": "ANTHROPIC_BASE_URL", "value": "http://127.0.0.1:4000"}
        ]),
        "no key variables without a VirtualKey"
    );
    assert_eq!(out["metadata"]["annotations"][INJECTED], "true");
    assert_eq!(out["metadata"]["labels"]["app"], "a");
    assert_eq!(out["metadata"]["labels"][SIDECAR_LABEL], "injected");
}

#[test]
fn the_annotation_opts_a_pod_in_where_the_namespace_is_not_enabled() {
    let mut value = app();
    value["metadata"]["annotations"] = json!({INJECT: "true"});
    let ctx = Context {
        namespace_enabled: false,
        ..enabled()
    };
    let (out, _) = apply(value, &ctx);
    assert_eq!(out["spec"]["initContainers"][0]["name"], SIDECAR_NAME);
    assert_eq!(out["metadata"]["annotations"][INJECT], "true");
    // The label works the same (it is what an objectSelector can match).
    let mut value = app();
    value["metadata"]["labels"][INJECT] = json!("true");
    let (out, _) = apply(value, &ctx);
    assert_eq!(out["spec"]["initContainers"][0]["name"], SIDECAR_NAME);
}

#[test]
fn pods_not_asking_opting_out_or_in_the_operator_namespace_are_left_alone() {
    let (p, _) = pod(app());
    let off = Context {
        namespace_enabled: false,
        ..enabled()
    };
    assert_eq!(
        inject(&p, &config(), &off),
        Outcome::Skip(Skip::NotRequested)
    );
    let mut value = app();
    value["metadata"]["annotations"] = json!({INJECT: "false"});
    let (p, _) = pod(value);
    assert_eq!(
        inject(&p, &config(), &enabled()),
        Outcome::Skip(Skip::OptedOut)
    );
    let mut value = app();
    value["metadata"]["labels"][INJECT] = json!("false");
    let (p, _) = pod(value);
    assert_eq!(
        inject(&p, &config(), &enabled()),
        Outcome::Skip(Skip::OptedOut)
    );
    let mut value = app();
    value["metadata"]["annotations"] = json!({INJECT: "true"});
    let (p, _) = pod(value);
    let own = Context {
        namespace: "llmesh-system".into(),
        ..enabled()
    };
    assert_eq!(
        inject(&p, &config(), &own),
        Outcome::Skip(Skip::OperatorNamespace)
    );
    let mut value = app();
    value["spec"]["hostNetwork"] = json!(true);
    let (p, _) = pod(value);
    let outcome = inject(&p, &config(), &enabled());
    assert_eq!(outcome, Outcome::Skip(Skip::HostNetwork));
    assert!(Skip::HostNetwork.warning().is_some());
}

#[test]
fn a_virtual_key_gives_the_app_its_key_and_the_sidecar_its_name() {
    let mut value = app();
    value["metadata"]["annotations"] = json!({VIRTUAL_KEY: "team-a"});
    let (p, _) = pod(value.clone());
    assert_eq!(virtual_key(&p), Some("team-a"));
    let ctx = Context {
        virtual_key_secret: Some("team-a-key".into()),
        ..enabled()
    };
    let (out, _) = apply(value, &ctx);
    let app = &out["spec"]["containers"][0];
    let key = json!({"secretKeyRef": {"name": "team-a-key", "key": "key"}});
    assert_eq!(
        app["env"],
        json!([
            {"name": "OPENAI_BASE_URL", "value": BASE_URL},
            {"name": "OPENAI_API_KEY", "valueFrom": key},
            {"name": "ANTHROPIC_BASE_URL", "value": ANTHROPIC_BASE_URL},
            {"name": "ANTHROPIC_API_KEY", "valueFrom": key}
        ])
    );
    assert_eq!(
        out["spec"]["initContainers"][0]["env"],
        json!([{"name": "LLMESH_VIRTUAL_KEY", "value": "team-a"}])
    );
}

#[test]
fn the_worker_threads_annotation_reaches_the_sidecar_and_typos_are_refused() {
    let mut value = app();
    value["metadata"]["annotations"] = json!({WORKER_THREADS: "4"});
    let (out, _) = apply(value, &enabled());
    assert_eq!(
        out["spec"]["initContainers"][0]["env"],
        json!([{"name": "LLMESH_WORKER_THREADS", "value": "4"}])
    );
    for bad in ["four", "-1", "257", "1.5"] {
        let message = refusal(json!({WORKER_THREADS: bad}));
        assert!(message.contains(WORKER_THREADS), "{bad}: {message}");
    }
}

#[test]
fn existing_init_containers_volumes_env_and_annotations_are_kept() {
    let value = json!({
        "metadata": {"name": "p", "annotations": {"a": "b"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "m"}],
            "containers": [
                {"name": "app", "image": "a", "env": [{"name": "X", "value": "1"}]},
                {"name": "worker", "image": "w", "env": [{"name": "OPENAI_BASE_URL", "value": "http://mine"}]},
                {"name": "agent", "image": "c", "env": [
                    {"name": "ANTHROPIC_BASE_URL", "value": "https://gw.example"},
                    {"name": "ANTHROPIC_AUTH_TOKEN", "value": "t"}
                ]}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}]
        }
    });
    let ctx = Context {
        virtual_key_secret: Some("mine".into()),
        ..enabled()
    };
    let mut value_with_key = value;
    value_with_key["metadata"]["annotations"][VIRTUAL_KEY] = json!("k");
    let (out, warnings) = apply(value_with_key, &ctx);
    let init: Vec<&str> = out["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init, [SIDECAR_NAME, "migrate"]);
    let volumes: Vec<&str> = out["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["data", VOLUME_NAME]);
    let app = env(&out["spec"]["containers"][0]);
    assert_eq!(app["X"]["value"], "1");
    assert_eq!(app["OPENAI_BASE_URL"]["value"], BASE_URL);
    assert!(app.contains_key("OPENAI_API_KEY"));
    // The worker's own base URL wins, with a warning saying so.
    assert_eq!(app["ANTHROPIC_BASE_URL"]["value"], ANTHROPIC_BASE_URL);
    assert!(app.contains_key("ANTHROPIC_API_KEY"));
    let worker = env(&out["spec"]["containers"][1]);
    assert_eq!(worker["OPENAI_BASE_URL"]["value"], "http://mine");
    assert!(worker.contains_key("OPENAI_API_KEY"));
    assert_eq!(worker["ANTHROPIC_BASE_URL"]["value"], ANTHROPIC_BASE_URL);
    // The agent's own Anthropic settings win; with a bearer token of its own it gets no
    // ANTHROPIC_API_KEY beside it (Claude Code calls that an auth conflict).
    let agent = env(&out["spec"]["containers"][2]);
    assert_eq!(agent["ANTHROPIC_BASE_URL"]["value"], "https://gw.example");
    assert!(!agent.contains_key("ANTHROPIC_API_KEY"));
    assert_eq!(agent["OPENAI_BASE_URL"]["value"], BASE_URL);
    assert!(agent.contains_key("OPENAI_API_KEY"));
    assert_eq!(
        warnings,
        [
            "llmesh: container \"worker\" sets OPENAI_BASE_URL itself; left as it is",
            "llmesh: container \"agent\" sets ANTHROPIC_BASE_URL itself; left as it is",
            "llmesh: container \"agent\" sets ANTHROPIC_AUTH_TOKEN itself; ANTHROPIC_API_KEY not added",
        ]
    );
    assert_eq!(out["metadata"]["annotations"]["a"], "b");
    assert_eq!(out["metadata"]["labels"][SIDECAR_LABEL], "injected");
    assert_eq!(out["metadata"]["annotations"][INJECTED], "true");
}

#[test]
fn reinvocation_does_not_inject_twice_but_completes_added_containers() {
    let (once, _) = apply(app(), &enabled());
    let (p, _) = pod(once.clone());
    assert_eq!(
        inject(&p, &config(), &enabled()),
        Outcome::Skip(Skip::AlreadyInjected)
    );
    // Another webhook added a container after us: only it gets the env.
    let mut grown = once;
    grown["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "added", "image": "x"}));
    let (twice, _) = apply(grown, &enabled());
    assert_eq!(twice["spec"]["initContainers"].as_array().unwrap().len(), 1);
    assert_eq!(twice["spec"]["volumes"].as_array().unwrap().len(), 1);
    assert_eq!(env(&twice["spec"]["containers"][0]).len(), 2);
    assert_eq!(
        env(&twice["spec"]["containers"][1])["OPENAI_BASE_URL"]["value"],
        BASE_URL
    );
    assert_eq!(
        env(&twice["spec"]["containers"][1])["ANTHROPIC_BASE_URL"]["value"],
        ANTHROPIC_BASE_URL
    );
}

#[test]
fn annotations_override_resources_and_bad_quantities_are_refused() {
    let mut value = app();
    value["metadata"]["annotations"] = json!({
        CPU_REQUEST: "200m", MEMORY_REQUEST: "128Mi", CPU_LIMIT: "1", MEMORY_LIMIT: "0.5Gi"
    });
    let (out, _) = apply(value, &enabled());
    assert_eq!(
        out["spec"]["initContainers"][0]["resources"],
        json!({"requests": {"cpu": "200m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "0.5Gi"}})
    );
    let mut value = app();
    value["metadata"]["annotations"] = json!({MEMORY_LIMIT: "lots"});
    let (p, _) = pod(value);
    match inject(&p, &config(), &enabled()) {
        Outcome::Deny(message) => {
            assert!(message.contains(MEMORY_LIMIT) && message.contains("lots"));
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn resources_of(annotations: Value) -> (Value, Vec<String>) {
    let mut value = app();
    value["metadata"]["annotations"] = annotations;
    let (out, warnings) = apply(value, &enabled());
    (
        out["spec"]["initContainers"][0]["resources"].clone(),
        warnings,
    )
}

fn refusal(annotations: Value) -> String {
    let mut value = app();
    value["metadata"]["annotations"] = annotations;
    let (p, _) = pod(value);
    match inject(&p, &config(), &enabled()) {
        Outcome::Deny(message) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every request is at most its limit, compared exactly.
fn assert_valid(resources: &Value) {
    for name in ["cpu", "memory"] {
        let (Some(r), Some(l)) = (
            resources["requests"][name].as_str(),
            resources["limits"][name].as_str(),
        ) else {
            continue;
        };
        assert!(
            Quantity::parse(r).unwrap() <= Quantity::parse(l).unwrap(),
            "{name}: request {r} > limit {l}"
        );
    }
}

#[test]
fn a_request_above_the_default_limit_raises_the_limit_with_a_warning() {
    let (resources, warnings) = resources_of(json!({MEMORY_REQUEST: "1Gi"}));
    assert_eq!(
        resources,
        json!({"requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}})
    );
    assert_valid(&resources);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(MEMORY_REQUEST)
            && warnings[0].contains("256Mi")
            && warnings[0].contains("raised to 1Gi")
            && warnings[0].contains(MEMORY_LIMIT),
        "{warnings:?}"
    );
    // Equal is fine: no warning. 256Mi written as bytes compares exactly.
    let (resources, warnings) = resources_of(json!({MEMORY_REQUEST: "268435456"}));
    assert_eq!(resources["limits"]["memory"], "256Mi");
    assert!(warnings.is_empty(), "{warnings:?}");
    // One byte more is above.
    let (resources, warnings) = resources_of(json!({MEMORY_REQUEST: "268435457"}));
    assert_eq!(resources["limits"]["memory"], "268435457");
    assert_eq!(warnings.len(), 1);
}

#[test]
fn a_limit_below_the_default_request_lowers_the_request_with_a_warning() {
    let (resources, warnings) = resources_of(json!({MEMORY_LIMIT: "32Mi"}));
    assert_eq!(
        resources,
        json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "32Mi"}})
    );
    assert_valid(&resources);
    assert!(
        warnings.len() == 1 && warnings[0].contains("lowered to 32Mi"),
        "{warnings:?}"
    );
    // The same for CPU, whose default has no limit: a limit alone never conflicts
    // with an unset default, but does with the default 50m request.
    let (resources, warnings) = resources_of(json!({CPU_LIMIT: "20m"}));
    assert_eq!(resources["requests"]["cpu"], "20m");
    assert_eq!(resources["limits"]["cpu"], "20m");
    assert_eq!(warnings.len(), 1);
    let (resources, warnings) = resources_of(json!({CPU_REQUEST: "2"}));
    assert_eq!(resources["requests"]["cpu"], "2");
    assert!(resources["limits"].get("cpu").is_none());
    assert!(warnings.is_empty());
}

#[test]
fn a_request_above_its_limit_both_annotated_is_refused_naming_both() {
    let message = refusal(json!({MEMORY_REQUEST: "1Gi", MEMORY_LIMIT: "512Mi"}));
    assert!(
        message.contains(MEMORY_REQUEST)
            && message.contains(MEMORY_LIMIT)
            && message.contains("1Gi")
            && message.contains("512Mi"),
        "{message}"
    );
    let message = refusal(json!({CPU_REQUEST: "1.5", CPU_LIMIT: "1"}));
    assert!(
        message.contains(CPU_REQUEST) && message.contains(CPU_LIMIT),
        "{message}"
    );
    // Exactly equal across suffixes is admitted.
    let (resources, warnings) = resources_of(json!({CPU_REQUEST: "1", CPU_LIMIT: "1000m"}));
    assert_valid(&resources);
    assert!(warnings.is_empty());
    let (resources, _) = resources_of(json!({MEMORY_REQUEST: "1Gi", MEMORY_LIMIT: "1024Mi"}));
    assert_valid(&resources);
}

#[test]
fn negative_zero_and_absurd_values_are_refused() {
    for (key, value, why) in [
        (MEMORY_REQUEST, "-1Gi", "negative"),
        (CPU_REQUEST, "0", "zero"),
        (MEMORY_LIMIT, "0Mi", "zero"),
        (MEMORY_REQUEST, "64", "below the minimum memory of 1Mi"),
        (CPU_LIMIT, "100", "above the maximum CPU of 64"),
        (MEMORY_LIMIT, "1Ei", "above the maximum memory"),
        (CPU_REQUEST, "0.0001", "finer than 1m"),
        (MEMORY_REQUEST, "1e99999", "not a Kubernetes quantity"),
    ] {
        let message = refusal(json!({key: value}));
        assert!(
            message.contains(key) && message.contains(value) && message.contains(why),
            "{key}={value}: {message}"
        );
    }
}

#[test]
fn any_accepted_annotations_make_a_valid_pod() {
    // Every pair of values for a request and a limit, alone or together, against the
    // defaults (CPU: 50m request, no limit; memory: 64Mi request, 256Mi limit).
    let cases = [
        (
            CPU_REQUEST,
            CPU_LIMIT,
            ["1m", "20m", "50m", "1", "1000m", "2", "64"],
        ),
        (
            MEMORY_REQUEST,
            MEMORY_LIMIT,
            ["1Mi", "32Mi", "64Mi", "256Mi", "268435456", "1G", "1Gi"],
        ),
    ];
    let (mut admitted, mut refused) = (0, 0);
    for (request, limit, values) in cases {
        let mut annotations = vec![];
        for a in values {
            annotations.push(json!({request: a}));
            annotations.push(json!({limit: a}));
            for b in values {
                annotations.push(json!({request: a, limit: b}));
            }
        }
        for annotations in annotations {
            let mut value = app();
            value["metadata"]["annotations"] = annotations.clone();
            let (p, raw) = pod(value);
            match inject(&p, &config(), &enabled()) {
                Outcome::Patch(patch, _) => {
                    let mut out = raw;
                    json_patch::patch(&mut out, &patch).unwrap();
                    assert_valid(&out["spec"]["initContainers"][0]["resources"]);
                    admitted += 1;
                }
                // Only an explicit request above an explicit limit is refused.
                Outcome::Deny(message) => {
                    let r = Quantity::parse(annotations[request].as_str().unwrap());
                    let l = Quantity::parse(annotations[limit].as_str().unwrap());
                    assert!(r.unwrap() > l.unwrap(), "{annotations}: {message}");
                    refused += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // 2 × (14 alone + 49 pairs); of the pairs, 20 per resource have request > limit.
    assert_eq!((admitted, refused), (86, 40));
}

#[test]
fn reinvocation_repeats_no_resource_warning() {
    let mut value = app();
    value["metadata"]["annotations"] = json!({MEMORY_REQUEST: "1Gi"});
    let (once, warnings) = apply(value, &enabled());
    assert_eq!(warnings.len(), 1);
    let mut grown = once;
    grown["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "added", "image": "x"}));
    let (_, warnings) = apply(grown, &enabled());
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn upstream_cas_are_projected_and_passed_as_ca_files() {
    let (p, mut raw) = pod(app());
    let mut config = config();
    config.upstream_ca = UpstreamCa {
        config_map: Some(("internal-ca".into(), "bundle.pem".into())),
        secret: Some(("vault-ca".into(), "ca.crt".into())),
        system_roots: true,
    };
    let Outcome::Patch(patch, _) = inject(&p, &config, &enabled()) else {
        panic!("expected a patch");
    };
    json_patch::patch(&mut raw, &patch).unwrap();
    let _: Pod = serde_json::from_value(raw.clone()).unwrap();
    let args: Vec<&str> = raw["spec"]["initContainers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args[args.len() - 4..],
        [
            "--ca-file",
            "/var/run/secrets/llmesh/upstream-ca/configmap.crt,/var/run/secrets/llmesh/upstream-ca/secret.crt",
            "--system-roots",
            "true"
        ]
    );
    let sources = &raw["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(
        sources[2],
        json!({"configMap": {"name": "internal-ca",
            "items": [{"key": "bundle.pem", "path": "upstream-ca/configmap.crt"}]}})
    );
    assert_eq!(
        sources[3],
        json!({"secret": {"name": "vault-ca",
            "items": [{"key": "ca.crt", "path": "upstream-ca/secret.crt"}]}})
    );
    // The ConfigMap alone: one file, no system store.
    config.upstream_ca.secret = None;
    config.upstream_ca.system_roots = false;
    let Outcome::Patch(patch, _) = inject(&p, &config, &enabled()) else {
        panic!("expected a patch");
    };
    let (_, mut raw) = pod(app());
    json_patch::patch(&mut raw, &patch).unwrap();
    let args = raw["spec"]["initContainers"][0]["args"].as_array().unwrap();
    assert_eq!(
        args[args.len() - 2..],
        [
            json!("--ca-file"),
            json!("/var/run/secrets/llmesh/upstream-ca/configmap.crt")
        ]
    );
    assert_eq!(
        raw["spec"]["volumes"][0]["projected"]["sources"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn pod_volumes_named_in_the_annotation_are_mounted_into_the_sidecar() {
    let mut pod = app();
    pod["metadata"]["annotations"] = json!({
        SIDECAR_MOUNTS: "gcp-token:/var/run/secrets/gcp/, gcp-config:/etc/gcp"
    });
    pod["spec"]["volumes"] = json!([
        {"name": "gcp-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k",
            "path": "token"}}]}},
        {"name": "gcp-config", "configMap": {"name": "wif"}},
    ]);
    let (out, _) = apply(pod.clone(), &enabled());
    let mounts = &out["spec"]["initContainers"][0]["volumeMounts"];
    assert_eq!(
        mounts,
        &json!([
            {"name": VOLUME_NAME, "mountPath": MOUNT_PATH, "readOnly": true},
            {"name": "gcp-token", "mountPath": "/var/run/secrets/gcp", "readOnly": true},
            {"name": "gcp-config", "mountPath": "/etc/gcp", "readOnly": true},
        ])
    );
    // The app's containers are left as they are.
    assert!(out["spec"]["containers"][0].get("volumeMounts").is_none());

    for (value, why) in [
        ("nope:/x", "the pod has no volume \"nope\""),
        ("gcp-token", "is not volume:/path"),
        ("gcp-token:relative", "is not an absolute path"),
        ("gcp-token:/a/../etc", "is not an absolute path"),
        ("gcp-token:/var/run/secrets", "would meet the sidecar's own"),
        (
            "gcp-token:/var/run/secrets/llmesh/x",
            "would meet the sidecar's own",
        ),
        ("gcp-token:/a,gcp-config:/a/b", "is mounted twice"),
    ] {
        let mut bad = pod.clone();
        bad["metadata"]["annotations"] = json!({SIDECAR_MOUNTS: value});
        let (p, _) = self::pod(bad);
        match inject(&p, &config(), &enabled()) {
            Outcome::Deny(message) => {
                assert!(
                    message.contains(SIDECAR_MOUNTS) && message.contains(why),
                    "{message}"
                )
            }
            other => panic!("{value}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn tracing_gives_the_sidecar_the_standard_otel_variables_and_its_pod() {
    let (p, mut raw) = pod(app());
    let mut config = config();
    let env_of = |raw: &Value| raw["spec"]["initContainers"][0]["env"].clone();
    let Outcome::Patch(patch, _) = inject(&p, &config, &enabled()) else {
        panic!("expected a patch");
    };
    let mut off = raw.clone();
    json_patch::patch(&mut off, &patch).unwrap();
    let off = env_of(&off);
    assert!(
        !off.to_string().contains("OTEL_"),
        "tracing is off unless the chart names an endpoint: {off}"
    );
    config.tracing = SidecarTracing {
        endpoint: Some("http://otel-collector.observability:4318".into()),
        sampler: Some("parentbased_traceidratio".into()),
        sampler_arg: Some("0.1".into()),
    };
    let Outcome::Patch(patch, _) = inject(&p, &config, &enabled()) else {
        panic!("expected a patch");
    };
    json_patch::patch(&mut raw, &patch).unwrap();
    let _: Pod = serde_json::from_value(raw.clone()).unwrap();
    let env = env_of(&raw);
    for want in [
        json!({"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability:4318"}),
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}),
        json!({"name": "OTEL_TRACES_SAMPLER", "value": "parentbased_traceidratio"}),
        json!({"name": "OTEL_TRACES_SAMPLER_ARG", "value": "0.1"}),
    ] {
        assert!(env.as_array().unwrap().contains(&want), "{want} in {env}");
    }
}

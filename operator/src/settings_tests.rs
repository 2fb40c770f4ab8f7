//! Tests of the settings read from the environment.

use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

#[test]
fn the_webhook_is_off_unless_it_has_an_address() {
    assert!(Webhook::from_lookup(env(&[])).unwrap().is_none());
    let err = Webhook::from_lookup(env(&[("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443")])).unwrap_err();
    assert!(err.contains("LLMESH_SIDECAR_IMAGE"));
}

#[test]
fn settings_from_the_environment() {
    let s = Webhook::from_lookup(env(&[
        ("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443"),
        ("LLMESH_SIDECAR_IMAGE", "img:1"),
        ("POD_NAMESPACE", "gw"),
        ("LLMESH_SIDECAR_CPU_LIMIT", "500m"),
        ("LLMESH_SIDECAR_MEMORY_LIMIT", ""),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(s.inject.operator_url, "https://llmesh-operator.gw.svc:8443");
    assert_eq!(s.inject.operator_namespace, "gw");
    assert_eq!(s.inject.resources.cpu_request.as_deref(), Some("50m"));
    assert_eq!(s.inject.resources.cpu_limit.as_deref(), Some("500m"));
    assert_eq!(s.inject.resources.memory_limit, None);
    assert_eq!(s.names[0], "llmesh-operator.gw.svc");
    assert!(matches!(s.certs, CertSource::Secret { .. }));
    let bad = Webhook::from_lookup(env(&[
        ("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443"),
        ("LLMESH_SIDECAR_IMAGE", "img:1"),
        ("LLMESH_SIDECAR_CPU_REQUEST", "lots"),
    ]));
    assert!(bad.unwrap_err().contains("LLMESH_SIDECAR_CPU_REQUEST"));
}

#[test]
fn default_resources_are_checked_at_start() {
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443"),
            ("LLMESH_SIDECAR_IMAGE", "img:1"),
        ];
        all.extend_from_slice(pairs);
        Webhook::from_lookup(env(&all))
    };
    // A request above its limit, set or defaulted, stops the start naming both.
    let err = with(&[("LLMESH_SIDECAR_MEMORY_REQUEST", "1Gi")]).unwrap_err();
    assert!(
        err.contains("LLMESH_SIDECAR_MEMORY_REQUEST (1Gi)")
            && err.contains("LLMESH_SIDECAR_MEMORY_LIMIT (256Mi)"),
        "{err}"
    );
    let err = with(&[("LLMESH_SIDECAR_CPU_LIMIT", "10m")]).unwrap_err();
    assert!(
        err.contains("LLMESH_SIDECAR_CPU_REQUEST (50m)")
            && err.contains("LLMESH_SIDECAR_CPU_LIMIT (10m)"),
        "{err}"
    );
    // Raising both, or unsetting the limit, is fine; equal across suffixes too.
    assert!(
        with(&[
            ("LLMESH_SIDECAR_MEMORY_REQUEST", "1Gi"),
            ("LLMESH_SIDECAR_MEMORY_LIMIT", "1024Mi")
        ])
        .is_ok()
    );
    assert!(
        with(&[
            ("LLMESH_SIDECAR_MEMORY_REQUEST", "1Gi"),
            ("LLMESH_SIDECAR_MEMORY_LIMIT", "")
        ])
        .is_ok()
    );
    for (k, v, why) in [
        ("LLMESH_SIDECAR_MEMORY_LIMIT", "0", "zero"),
        ("LLMESH_SIDECAR_CPU_REQUEST", "-50m", "negative"),
        ("LLMESH_SIDECAR_MEMORY_REQUEST", "64", "below the minimum"),
        ("LLMESH_SIDECAR_CPU_LIMIT", "5000", "above the maximum"),
    ] {
        let err = with(&[(k, v)]).unwrap_err();
        assert!(err.contains(k) && err.contains(why), "{err}");
    }
}

#[test]
fn the_process_settings_have_their_defaults() {
    let none = Process::from_lookup(env(&[("LLMESH_WATCH_NAMESPACE", "")]));
    assert_eq!(
        none,
        Process {
            pod_name: None,
            pod_namespace: "llmesh-system".into(),
            watch_namespace: None,
            allow_unbound_tokens: false,
            cert_secret: "llmesh-operator-tls".into(),
        }
    );
    let set = Process::from_lookup(env(&[
        ("POD_NAME", "op-0"),
        ("LLMESH_WATCH_NAMESPACE", "apps"),
        ("LLMESH_ALLOW_UNBOUND_TOKENS", "true"),
    ]));
    assert_eq!(set.pod_name.as_deref(), Some("op-0"));
    assert_eq!(set.watch_namespace.as_deref(), Some("apps"));
    assert!(set.allow_unbound_tokens);
}

#[test]
fn upstream_cas_of_injected_sidecars_are_named_and_checked() {
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443"),
            ("LLMESH_SIDECAR_IMAGE", "img:1"),
        ];
        all.extend_from_slice(pairs);
        Webhook::from_lookup(env(&all)).map(|w| w.unwrap().inject.upstream_ca)
    };
    assert_eq!(with(&[]).unwrap(), UpstreamCa::default());
    // The chart passes every variable, empty when unset.
    let none = with(&[
        ("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP", ""),
        ("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY", "ca.crt"),
        ("LLMESH_SIDECAR_UPSTREAM_CA_SECRET", ""),
        ("LLMESH_SIDECAR_SYSTEM_ROOTS", "false"),
    ]);
    assert_eq!(none.unwrap(), UpstreamCa::default());
    let all = with(&[
        ("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP", "internal-ca"),
        ("LLMESH_SIDECAR_UPSTREAM_CA_SECRET", "vault.ca"),
        ("LLMESH_SIDECAR_UPSTREAM_CA_SECRET_KEY", "bundle.pem"),
        ("LLMESH_SIDECAR_SYSTEM_ROOTS", "true"),
    ])
    .unwrap();
    assert_eq!(
        all,
        UpstreamCa {
            config_map: Some(("internal-ca".into(), "ca.crt".into())),
            secret: Some(("vault.ca".into(), "bundle.pem".into())),
            system_roots: true,
        }
    );
    for (var, value, said) in [
        (
            "LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP",
            "Internal_CA",
            "not a Kubernetes object name",
        ),
        (
            "LLMESH_SIDECAR_UPSTREAM_CA_SECRET",
            "-ca",
            "not a Kubernetes object name",
        ),
        ("LLMESH_SIDECAR_SYSTEM_ROOTS", "yes", "not true or false"),
    ] {
        let err = with(&[(var, value)]).unwrap_err();
        assert!(err.starts_with(var) && err.contains(said), "{err}");
    }
    let err = with(&[
        ("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP", "ca"),
        ("LLMESH_SIDECAR_UPSTREAM_CA_CONFIGMAP_KEY", "ca/crt"),
    ])
    .unwrap_err();
    assert!(err.contains("not a ConfigMap or Secret key"), "{err}");
}

#[test]
fn injected_sidecars_tracing_is_checked() {
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![
            ("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443"),
            ("LLMESH_SIDECAR_IMAGE", "img:1"),
        ];
        all.extend_from_slice(pairs);
        Webhook::from_lookup(env(&all)).map(|w| w.unwrap().inject.tracing)
    };
    assert_eq!(with(&[]).unwrap(), SidecarTracing::default());
    // The chart passes every variable, empty when unset.
    let off = with(&[
        ("LLMESH_SIDECAR_OTLP_ENDPOINT", ""),
        ("LLMESH_SIDECAR_TRACES_SAMPLER", ""),
        ("LLMESH_SIDECAR_TRACES_SAMPLER_ARG", ""),
    ]);
    assert_eq!(off.unwrap(), SidecarTracing::default());
    let on = with(&[
        (
            "LLMESH_SIDECAR_OTLP_ENDPOINT",
            " http://otel-collector.observability:4318 ",
        ),
        ("LLMESH_SIDECAR_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("LLMESH_SIDECAR_TRACES_SAMPLER_ARG", "0.25"),
    ]);
    assert_eq!(
        on.unwrap(),
        SidecarTracing {
            endpoint: Some("http://otel-collector.observability:4318".into()),
            sampler: Some("parentbased_traceidratio".into()),
            sampler_arg: Some("0.25".into()),
        }
    );
    for (var, bad) in [
        ("LLMESH_SIDECAR_OTLP_ENDPOINT", "otel-collector:4318"),
        ("LLMESH_SIDECAR_OTLP_ENDPOINT", "grpc://collector:4317"),
        ("LLMESH_SIDECAR_TRACES_SAMPLER", "sometimes"),
        ("LLMESH_SIDECAR_TRACES_SAMPLER_ARG", "1.5"),
        ("LLMESH_SIDECAR_TRACES_SAMPLER_ARG", "half"),
    ] {
        let err = with(&[(var, bad)]).unwrap_err();
        assert!(err.starts_with(var), "{var}={bad}: {err}");
    }
}

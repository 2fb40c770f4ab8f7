//! Tests of the webhook's settings and admission handling.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| map.get(k).cloned()
}

fn settings() -> Settings {
    Settings::from_lookup(env(&[
        ("LLMESH_WEBHOOK_LISTEN", "127.0.0.1:0"),
        ("LLMESH_SIDECAR_IMAGE", "img:1"),
    ]))
    .unwrap()
    .unwrap()
}

/// An AdmissionReview as the API server sends it.
fn review(pod: serde_json::Value, namespace: &str) -> AdmissionRequest<Pod> {
    let review: AdmissionReview<Pod> = serde_json::from_value(serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "dryRun": false
        }
    }))
    .unwrap();
    review.try_into().unwrap()
}

fn pod() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "app-", "annotations": {"llmesh.io/virtual-key": "team"}},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]}
    })
}

#[test]
fn an_admission_review_in_a_json_patch_out() {
    let s = settings();
    let request = review(pod(), "team-a");
    let ctx = Context {
        namespace: "team-a".into(),
        namespace_enabled: true,
        virtual_key_secret: Some("team-key".into()),
    };
    let (response, result) = respond(&request, &s.inject, &ctx, vec!["looked up".into()]);
    assert_eq!(result, "injected");
    let wire = serde_json::to_value(response.clone().into_review()).unwrap();
    assert_eq!(
        wire["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );
    assert_eq!(wire["response"]["allowed"], true);
    assert_eq!(wire["response"]["patchType"], "JSONPatch");
    assert_eq!(
        wire["response"]["warnings"],
        serde_json::json!(["looked up"])
    );
    let patch: json_patch::Patch =
        serde_json::from_slice(response.patch.as_deref().unwrap()).unwrap();
    let mut object = pod();
    json_patch::patch(&mut object, &patch).unwrap();
    assert_eq!(
        object["spec"]["initContainers"][0]["name"],
        inject::SIDECAR_NAME
    );
    assert_eq!(object["spec"]["initContainers"][0]["image"], "img:1");
    assert_eq!(
        object["spec"]["initContainers"][0]["env"][0],
        serde_json::json!({"name": "LLMESH_VIRTUAL_KEY", "value": "team"})
    );
    assert_eq!(
        object["spec"]["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["name"],
        "team-key"
    );
}

#[test]
fn skipped_and_denied_reviews() {
    let s = settings();
    let off = Context {
        namespace: "team-a".into(),
        ..Context::default()
    };
    let mut plain = pod();
    plain["metadata"] = serde_json::json!({"name": "p"});
    let (response, result) = respond(&review(plain, "team-a"), &s.inject, &off, vec![]);
    assert_eq!(result, "skipped");
    assert!(response.allowed && response.patch.is_none());
    let mut bad = pod();
    bad["metadata"]["annotations"] =
        serde_json::json!({"llmesh.io/inject": "true", "llmesh.io/sidecar-cpu": "fast"});
    let (response, result) = respond(&review(bad, "team-a"), &s.inject, &off, vec![]);
    assert_eq!(result, "denied");
    assert!(!response.allowed);
    assert!(response.result.message.contains("llmesh.io/sidecar-cpu"));
    // The operator's namespace is never injected, whatever it asks.
    let mut own = pod();
    own["metadata"]["annotations"] = serde_json::json!({"llmesh.io/inject": "true"});
    let ctx = Context {
        namespace: "llmesh-system".into(),
        namespace_enabled: true,
        virtual_key_secret: None,
    };
    let (_, result) = respond(&review(own, "llmesh-system"), &s.inject, &ctx, vec![]);
    assert_eq!(result, "skipped");
}

#[test]
fn the_webhook_is_off_unless_it_has_an_address() {
    assert!(Settings::from_lookup(env(&[])).unwrap().is_none());
    let err = Settings::from_lookup(env(&[("LLMESH_WEBHOOK_LISTEN", "0.0.0.0:9443")])).unwrap_err();
    assert!(err.contains("LLMESH_SIDECAR_IMAGE"));
}

#[test]
fn settings_from_the_environment() {
    let s = Settings::from_lookup(env(&[
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
    let bad = Settings::from_lookup(env(&[
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
        Settings::from_lookup(env(&all))
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

//! Tests of the admission review.

use super::*;

fn settings() -> crate::settings::Webhook {
    use crate::settings::{ENV_SIDECAR_IMAGE, ENV_WEBHOOK_LISTEN, Webhook};
    let env = |k: &str| match k {
        ENV_WEBHOOK_LISTEN => Some("127.0.0.1:0".to_owned()),
        ENV_SIDECAR_IMAGE => Some("img:1".to_owned()),
        _ => None,
    };
    Webhook::from_lookup(env).unwrap().unwrap()
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

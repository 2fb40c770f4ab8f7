//! The committed CRD manifests are exactly what the types generate, and they parse back
//! into the same `CustomResourceDefinition`s.

use std::{fs, path::PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn committed_manifests_are_current() {
    let mut stale = Vec::new();
    for (name, yaml) in llmesh_crds::rendered().unwrap() {
        for dir in ["crds", "charts/llmesh/crds"] {
            let path = root().join(dir).join(&name);
            if fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD manifests, run `cargo run -p llmesh-crds --bin crdgen`: {stale:#?}"
    );
}

#[test]
fn manifests_parse_back_into_the_crds() {
    let expected = llmesh_crds::crds();
    let rendered = llmesh_crds::rendered().unwrap();
    assert_eq!(rendered.len(), 3);
    for ((name, yaml), crd) in rendered.iter().zip(&expected) {
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(&parsed, crd, "{name}");
        // Compare as JSON too: `PartialEq` on the schema's JSON values would hide a
        // number that changed type (1 vs 1.0) only if both sides agree.
        assert_eq!(
            serde_json::to_value(&parsed).unwrap(),
            serde_json::to_value(crd).unwrap(),
            "{name}"
        );
        assert_eq!(parsed.spec.group, "llmesh.io");
        assert_eq!(parsed.spec.scope, "Namespaced");
    }
}

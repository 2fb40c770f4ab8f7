//! The example manifests pass the CRDs' CEL rules, evaluated client-side as the API
//! server would on `kubectl apply`.

use std::{fs, path::PathBuf};

use llmesh_crds::{API_VERSION, Budget, LlmModel, VirtualKey};
use serde_json::Value;

fn failures<K>(doc: Value) -> Result<Vec<String>, serde_json::Error>
where
    K: kube::CustomResourceExt + serde::Serialize + serde::de::DeserializeOwned,
{
    let object: K = serde_json::from_value(doc)?;
    Ok(match kube::core::cel::validate_cel(&object) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    })
}

#[test]
fn quickstart_manifests_pass_cel() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for doc in docs {
            if doc["apiVersion"] != API_VERSION {
                continue;
            }
            let found = match doc["kind"].as_str() {
                Some("LLMModel") => failures::<LlmModel>(doc.clone()),
                Some("VirtualKey") => failures::<VirtualKey>(doc.clone()),
                Some("Budget") => failures::<Budget>(doc.clone()),
                other => panic!("{}: unexpected kind {other:?}", path.display()),
            }
            .unwrap();
            assert!(
                found.is_empty(),
                "{}: {}: {found:?}",
                path.display(),
                doc["metadata"]["name"]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 8, "6 models, 1 key and 1 budget");
}

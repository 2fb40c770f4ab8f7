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

/// Follows a printer column's simple JSONPath (`.status.x`, `.a[?(...)].b`) through a
/// CRD's schema; `None` where the schema does not say (e.g. `metadata`).
fn schema_at<'a>(schema: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let mut at = schema;
    for segment in path.trim_start_matches('.').split('.') {
        // `conditions[]` stands for array items (the caller removes filters).
        let (name, filtered) = match segment.split_once('[') {
            Some((name, _)) => (name, true),
            None => (segment, false),
        };
        at = at.get("properties")?.get(name)?;
        if filtered {
            at = at.get("items")?;
        }
    }
    Some(at)
}

#[test]
fn printer_columns_show_fields_of_their_type_and_dates_only_as_ages() {
    let mut checked = 0;
    for crd in llmesh_crds::crds() {
        let crd = serde_json::to_value(&crd).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
        let version = &crd["spec"]["versions"][0];
        let schema = &version["schema"]["openAPIV3Schema"];
        for column in version["additionalPrinterColumns"].as_array().unwrap() {
            let (name, kind_of, path) = (
                column["name"].as_str().unwrap(),
                column["type"].as_str().unwrap(),
                column["jsonPath"].as_str().unwrap(),
            );
            // kubectl shows a `date` column as an age: only a time always in the past
            // reads right (a future one prints `<invalid>`).
            if kind_of == "date" {
                assert_eq!(path, ".metadata.creationTimestamp", "{kind} {name}");
                checked += 1;
                continue;
            }
            // The path must name a field (a filter like `[?(@.type=="Ready")]` splits
            // oddly on dots: rejoin it first).
            let clean = path.replace("[?(@.type==\"Ready\")]", "[]");
            let field = schema_at(schema, &clean)
                .unwrap_or_else(|| panic!("{kind} {name}: {path} is not in the schema"));
            let want = match kind_of {
                "string" => "string",
                "integer" => "integer",
                "boolean" => "boolean",
                "number" => "number",
                other => panic!("{kind} {name}: column type {other}"),
            };
            assert_eq!(field["type"], want, "{kind} {name}: {path}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}

#[test]
fn budget_money_columns_all_show_status_display_strings() {
    let budget = llmesh_crds::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "Budget")
        .unwrap();
    let columns = budget.spec.versions[0]
        .additional_printer_columns
        .clone()
        .unwrap();
    let money: Vec<_> = columns
        .iter()
        .filter(|c| ["Limit", "Spent", "Remaining"].contains(&c.name.as_str()))
        .map(|c| (c.name.as_str(), c.json_path.as_str(), c.type_.as_str()))
        .collect();
    // All three are written by the operator with `UsdAmount::format_micros`.
    assert_eq!(
        money,
        [
            ("Limit", ".status.limit", "string"),
            ("Spent", ".status.spent", "string"),
            ("Remaining", ".status.remaining", "string"),
        ]
    );
}

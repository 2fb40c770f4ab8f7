//! Schema `format`s the Kubernetes API server knows, and the rewrite that keeps the
//! generated CRDs within them.
//!
//! schemars names Rust's unsigned integers `format: uint32`/`uint64` (and `int8`,
//! `uint16`, …), which the API server ignores and `kubectl apply` warns about
//! (`unrecognized format "uint32"`). [`kubernetes_formats`] turns each into `int32` or
//! `int64`, the only integer formats Kubernetes has, and keeps what the Rust type meant
//! as `minimum`/`maximum` (an explicit `#[schemars(range)]` wins): the server then still
//! refuses a negative count, or a value the operator could not read into its `u32`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde_json::{Map, Value};

/// Formats the API server recognises for `type: string` (apiextensions-apiserver's
/// `supportedVersionedFormats` from 1.0 on, written as it normalises them: without
/// dashes, so `date-time` is `datetime`).
pub const STRING_FORMATS: [&str; 25] = [
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    // Not in the server's list, but the same as `datetime` once normalised.
    "date-time",
];
/// Formats recognised for `type: integer`.
pub const INTEGER_FORMATS: [&str; 2] = ["int32", "int64"];
/// Formats recognised for `type: number`.
pub const NUMBER_FORMATS: [&str; 2] = ["float", "double"];

/// `(schemars format, Kubernetes format, minimum, maximum)` of Rust's integer types.
const INTEGERS: [(&str, &str, f64, Option<f64>); 8] = [
    ("int8", "int32", i8::MIN as f64, Some(i8::MAX as f64)),
    ("int16", "int32", i16::MIN as f64, Some(i16::MAX as f64)),
    ("uint8", "int32", 0.0, Some(u8::MAX as f64)),
    ("uint16", "int32", 0.0, Some(u16::MAX as f64)),
    ("uint32", "int64", 0.0, Some(u32::MAX as f64)),
    // Above i64::MAX nothing fits in the API server's integers anyway.
    ("uint64", "int64", 0.0, None),
    ("uint", "int64", 0.0, None),
    ("int", "int64", i64::MIN as f64, None),
];

/// Rewrites every schema in `crd` to formats the API server knows.
pub fn kubernetes_formats(crd: &mut CustomResourceDefinition) {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        // JSONSchemaProps nests through half a dozen field kinds; its JSON form is one
        // tree to walk. Both conversions are of a value that just came from the type.
        let Ok(mut json) = serde_json::to_value(&*schema) else {
            continue;
        };
        rewrite(&mut json);
        if let Ok(rewritten) = serde_json::from_value::<JSONSchemaProps>(json) {
            *schema = rewritten;
        }
    }
}

fn rewrite(value: &mut Value) {
    match value {
        Value::Object(map) => {
            rewrite_integer(map);
            map.values_mut().for_each(rewrite);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite),
        _ => {}
    }
}

fn rewrite_integer(schema: &mut Map<String, Value>) {
    if schema.get("type").and_then(Value::as_str) != Some("integer") {
        return;
    }
    let Some(format) = schema.get("format").and_then(Value::as_str) else {
        return;
    };
    let Some(&(_, kubernetes, min, max)) = INTEGERS.iter().find(|(f, ..)| *f == format) else {
        return;
    };
    schema.insert("format".into(), kubernetes.into());
    schema.entry("minimum").or_insert(min.into());
    if let Some(max) = max {
        schema.entry("maximum").or_insert(max.into());
    }
}

/// Every `format` in `crd`'s schemas the API server would not recognise, as
/// `path: format` (what `kubectl apply` warns about).
pub fn unrecognized_formats(crd: &CustomResourceDefinition) -> Vec<String> {
    fn walk(value: &Value, path: &str, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let (Some(Value::String(format)), Some(kind)) =
                    (map.get("format"), map.get("type"))
                {
                    let known = match kind.as_str() {
                        Some("integer") => INTEGER_FORMATS.contains(&format.as_str()),
                        Some("number") => NUMBER_FORMATS.contains(&format.as_str()),
                        Some("string") => {
                            STRING_FORMATS.contains(&format.replace('-', "").as_str())
                        }
                        _ => false,
                    };
                    if !known {
                        out.push(format!("{path}: {format}"));
                    }
                }
                for (key, child) in map {
                    walk(child, &format!("{path}.{key}"), out);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(json) = serde_json::to_value(&crd.spec) {
        walk(&json, "spec", &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unsigned_integers_become_kubernetes_integers_and_stay_non_negative() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "count": {"type": "integer", "format": "uint32", "minimum": 0.0},
                "big": {"type": "integer", "format": "uint64", "minimum": 1.0, "nullable": true},
                "small": {"type": "integer", "format": "uint16"},
                "list": {"type": "array", "items": {"type": "integer", "format": "uint32", "minimum": 1.0, "maximum": 100.0}},
                "signed": {"type": "integer", "format": "int64"},
                "when": {"type": "string", "format": "date-time"},
                // A field *named* format is a schema, not a format.
                "format": {"type": "string"}
            }
        });
        rewrite(&mut schema);
        let p = &schema["properties"];
        assert_eq!(
            p["count"],
            json!({"type": "integer", "format": "int64", "minimum": 0.0, "maximum": 4294967295.0})
        );
        assert_eq!(
            p["big"],
            json!({"type": "integer", "format": "int64", "minimum": 1.0, "nullable": true})
        );
        assert_eq!(
            p["small"],
            json!({"type": "integer", "format": "int32", "minimum": 0.0, "maximum": 65535.0})
        );
        assert_eq!(
            p["list"]["items"],
            json!({"type": "integer", "format": "int64", "minimum": 1.0, "maximum": 100.0})
        );
        assert_eq!(p["signed"], json!({"type": "integer", "format": "int64"}));
        assert_eq!(p["when"]["format"], "date-time");
        assert_eq!(p["format"], json!({"type": "string"}));
    }

    #[test]
    fn the_generated_crds_use_only_formats_kubernetes_knows() {
        for crd in crate::crds() {
            let unknown = unrecognized_formats(&crd);
            assert!(unknown.is_empty(), "{:?}: {unknown:#?}", crd.metadata.name);
        }
        // The check itself sees what schemars emits before the rewrite.
        use kube::CustomResourceExt;
        let raw = crate::Budget::crd();
        let unknown = unrecognized_formats(&raw);
        assert!(
            unknown.iter().any(|u| u.ends_with(": uint32")),
            "{unknown:#?}"
        );
    }

    #[test]
    fn non_negative_fields_keep_their_minimum() {
        // Spot check through a real CRD: a `u32` that had no range of its own.
        let crd = crate::crds()
            .into_iter()
            .find(|c| c.spec.names.kind == "Budget")
            .unwrap();
        let json = serde_json::to_value(&crd).unwrap();
        let alerted = &json["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
            ["properties"]["alertedThresholds"]["items"];
        assert_eq!(alerted["format"], "int64");
        assert_eq!(alerted["minimum"], 0.0);
        assert_eq!(alerted["maximum"], 4294967295.0);
    }
}

//! JSON Schema (what OpenAI tools and `response_format` carry) → Gemini's `Schema`, a
//! select subset of OpenAPI 3.0. Gemini refuses unknown keywords with a 400 naming
//! them, so everything outside the subset is rewritten or dropped here:
//!
//! - `$ref` → the `$defs`/`definitions` entry inlined (a recursive reference, which
//!   Gemini cannot express, becomes an untyped schema with its description);
//! - `type: ["T", "null"]` → `type: T, nullable: true`; several non-null types →
//!   `anyOf`; type names upper-cased (`OBJECT`, `STRING`, ...);
//! - `oneOf` → `anyOf`; `allOf` → its members' keywords merged; `const` → a one-value
//!   `enum`;
//! - `enum` with non-string values (Gemini enums are strings) → dropped, the values
//!   listed in `description`;
//! - `format` kept only where Gemini honours it (`enum`, `date-time`, `float`,
//!   `double`, `int32`, `int64`), otherwise named in `description`;
//! - `examples` → `example` (the first);
//! - an object without properties (a free-form map Gemini cannot declare) → its
//!   `type` left out, so the model may put anything there;
//! - `required` names without a property → dropped;
//! - every other keyword (`additionalProperties`, `$schema`, `$id`, `$defs`,
//!   `patternProperties`, `exclusiveMinimum`, `multipleOf`, `uniqueItems`, `not`,
//!   `if`/`then`/`else`, `strict`, ...) → dropped.

use serde_json::{Map, Value, json};

/// Keywords Gemini's `Schema` knows and that need no rewriting.
const PASSED: &[&str] = &[
    "title",
    "description",
    "nullable",
    "maxItems",
    "minItems",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "propertyOrdering",
    "default",
    "minimum",
    "maximum",
];

/// Formats Gemini acts on.
const FORMATS: &[&str] = &["enum", "date-time", "float", "double", "int32", "int64"];

/// How deep `$ref`s are followed before a schema counts as recursive.
const MAX_DEPTH: usize = 12;

/// Converts a JSON schema. `None` when nothing is left to declare (an object without
/// properties at the top, which Gemini wants omitted rather than empty).
pub fn convert(schema: &Value) -> Option<Value> {
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object);
    let converted = Converter { defs, depth: 0 }.schema(schema);
    let empty_object = converted.get("type").is_none()
        && converted.get("properties").is_none()
        && converted.get("anyOf").is_none();
    (!empty_object || converted.get("description").is_some()).then_some(converted)
}

struct Converter<'a> {
    defs: Option<&'a Map<String, Value>>,
    depth: usize,
}

impl Converter<'_> {
    fn schema(&self, schema: &Value) -> Value {
        let Some(obj) = schema.as_object() else {
            // `true` / `{}`-like schemas: anything goes.
            return json!({});
        };
        if let Some(reference) = obj.get("$ref").and_then(Value::as_str) {
            return self.reference(reference, obj);
        }
        let mut out = Map::new();
        let mut notes: Vec<String> = Vec::new();
        // allOf: merge the members' keywords under this schema's own.
        let mut merged = obj.clone();
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for member in all {
                let member = self.resolve(member);
                if let Some(m) = member.as_object() {
                    merge_into(&mut merged, m);
                }
            }
        }
        let obj = &merged;
        for key in PASSED {
            if let Some(v) = obj.get(*key) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
        if !out.contains_key("example")
            && let Some(first) = obj
                .get("examples")
                .and_then(Value::as_array)
                .and_then(|e| e.first())
        {
            out.insert("example".into(), first.clone());
        }
        let mut types: Vec<String> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.to_ascii_uppercase()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_ascii_uppercase)
                .collect(),
            _ => Vec::new(),
        };
        if let Some(i) = types.iter().position(|t| t == "NULL")
            && types.len() > 1
        {
            types.remove(i);
            out.insert("nullable".into(), json!(true));
        }
        let enum_values = obj
            .get("enum")
            .cloned()
            .or_else(|| obj.get("const").map(|c| json!([c])));
        if let Some(Value::Array(values)) = enum_values {
            if values.iter().all(Value::is_string) {
                out.insert("enum".into(), Value::Array(values));
            } else {
                let listed: Vec<String> = values.iter().map(Value::to_string).collect();
                notes.push(format!("Allowed values: {}.", listed.join(", ")));
            }
        }
        if let Some(format) = obj.get("format").and_then(Value::as_str) {
            if FORMATS.contains(&format) {
                out.insert("format".into(), json!(format));
            } else {
                notes.push(format!("Format: {format}."));
            }
        }
        if let Some(properties) = obj.get("properties").and_then(Value::as_object) {
            let converted: Map<String, Value> = properties
                .iter()
                .map(|(name, sub)| (name.clone(), self.nested().schema(sub)))
                .collect();
            if !converted.is_empty() {
                let required: Vec<Value> = obj
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|names| {
                        names
                            .iter()
                            .filter(|n| n.as_str().is_some_and(|n| converted.contains_key(n)))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                out.insert("properties".into(), Value::Object(converted));
                if !required.is_empty() {
                    out.insert("required".into(), Value::Array(required));
                }
                if types.is_empty() {
                    types.push("OBJECT".into());
                }
            }
        }
        if let Some(items) = obj.get("items") {
            out.insert("items".into(), self.nested().schema(items));
            if types.is_empty() {
                types.push("ARRAY".into());
            }
        }
        let alternatives = obj
            .get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(alternatives) = alternatives {
            let mut any_of = Vec::new();
            for alternative in alternatives {
                // `{"type": "null"}` among the alternatives is nullability.
                if alternative.get("type").and_then(Value::as_str) == Some("null") {
                    out.insert("nullable".into(), json!(true));
                    continue;
                }
                any_of.push(self.nested().schema(alternative));
            }
            match any_of.len() {
                0 => {}
                1 => {
                    if let Some(Value::Object(only)) = any_of.pop() {
                        for (k, v) in only {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
                _ => {
                    out.insert("anyOf".into(), Value::Array(any_of));
                }
            }
        }
        match types.len() {
            0 => {}
            1 => {
                let ty = types.remove(0);
                let free_object = ty == "OBJECT" && !out.contains_key("properties");
                if !free_object {
                    out.insert("type".into(), json!(ty));
                }
            }
            _ => {
                let any_of: Vec<Value> = types.into_iter().map(|t| json!({ "type": t })).collect();
                out.insert("anyOf".into(), Value::Array(any_of));
            }
        }
        if !notes.is_empty() {
            let description = out.get("description").and_then(Value::as_str).unwrap_or("");
            let joined = if description.is_empty() {
                notes.join(" ")
            } else {
                format!("{description} {}", notes.join(" "))
            };
            out.insert("description".into(), json!(joined));
        }
        Value::Object(out)
    }

    fn nested(&self) -> Converter<'_> {
        Converter {
            defs: self.defs,
            depth: self.depth + 1,
        }
    }

    /// The definition a local `$ref` (`#/$defs/X`, `#/definitions/X`) names, or the
    /// schema itself when it is not a reference.
    fn resolve<'v>(&self, schema: &'v Value) -> std::borrow::Cow<'v, Value> {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => std::borrow::Cow::Owned(self.reference(reference, &Map::new())),
            None => std::borrow::Cow::Borrowed(schema),
        }
    }

    fn reference(&self, reference: &str, site: &Map<String, Value>) -> Value {
        let name = reference
            .strip_prefix("#/$defs/")
            .or_else(|| reference.strip_prefix("#/definitions/"));
        let target = name.and_then(|n| self.defs.and_then(|d| d.get(n)));
        let description = site
            .get("description")
            .cloned()
            .or_else(|| target.and_then(|t| t.get("description").cloned()));
        match target {
            Some(target) if self.depth < MAX_DEPTH => {
                let mut converted = self.nested().schema(target);
                if let (Some(d), Value::Object(out)) = (description, &mut converted) {
                    out.insert("description".into(), d);
                }
                converted
            }
            // Unknown or too deep (recursive): an untyped schema keeps the request valid.
            _ => match description {
                Some(d) => json!({ "description": d }),
                None => json!({}),
            },
        }
    }
}

/// Adds `from`'s keywords to `into`, merging `properties` and `required`.
fn merge_into(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        match (key.as_str(), into.get_mut(key)) {
            ("properties", Some(Value::Object(existing))) => {
                if let Some(more) = value.as_object() {
                    for (k, v) in more {
                        existing.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
            }
            ("required", Some(Value::Array(existing))) => {
                for name in value.as_array().into_iter().flatten() {
                    if !existing.contains(name) {
                        existing.push(name.clone());
                    }
                }
            }
            (_, Some(_)) => {}
            (_, None) => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_subset_and_drops_the_rest() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "city": {"type": "string", "description": "City", "minLength": 1},
                "unit": {"type": "string", "enum": ["C", "F"], "default": "C"},
                "days": {"type": ["integer", "null"], "exclusiveMinimum": 0, "multipleOf": 1},
                "when": {"type": "string", "format": "date-time"},
                "site": {"type": "string", "format": "uri"}
            },
            "required": ["city", "ghost"]
        });
        assert_eq!(
            convert(&schema).unwrap(),
            json!({
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City", "minLength": 1},
                    "unit": {"type": "STRING", "enum": ["C", "F"], "default": "C"},
                    "days": {"type": "INTEGER", "nullable": true},
                    "when": {"type": "STRING", "format": "date-time"},
                    "site": {"type": "STRING", "description": "Format: uri."}
                },
                "required": ["city"]
            })
        );
    }

    #[test]
    fn refs_one_of_all_of_and_const_are_rewritten() {
        let schema = json!({
            "type": "object",
            "$defs": {
                "Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]},
                "Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
            },
            "properties": {
                "at": {"$ref": "#/$defs/Point", "description": "Where"},
                "shape": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "kind": {"const": "circle"},
                "level": {"type": "integer", "enum": [1, 2, 3]},
                "both": {"allOf": [
                    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "boolean"}}}
                ]},
                "list": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                "free": {"type": "object", "description": "Anything"}
            }
        });
        let out = convert(&schema).unwrap();
        let p = &out["properties"];
        assert_eq!(
            p["at"],
            json!({"type": "OBJECT", "properties": {"x": {"type": "NUMBER"}}, "required": ["x"], "description": "Where"})
        );
        assert_eq!(
            p["shape"],
            json!({"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]})
        );
        assert_eq!(p["maybe"], json!({"type": "STRING", "nullable": true}));
        assert_eq!(p["kind"], json!({"enum": ["circle"]}));
        assert_eq!(
            p["level"],
            json!({"type": "INTEGER", "description": "Allowed values: 1, 2, 3."})
        );
        assert_eq!(
            p["both"],
            json!({"type": "OBJECT", "properties": {"a": {"type": "STRING"}, "b": {"type": "BOOLEAN"}}, "required": ["a"]})
        );
        assert_eq!(p["free"], json!({"description": "Anything"}));
        // The recursive Node ends in an untyped schema instead of looping.
        let mut depth = 0;
        let mut node = &p["list"]["items"];
        while let Some(next) = node.pointer("/properties/next") {
            node = next;
            depth += 1;
        }
        assert!(depth > 3 && depth <= MAX_DEPTH, "{depth}");
        assert!(out.get("$defs").is_none());
    }

    #[test]
    fn objects_without_properties_are_left_out_at_the_top() {
        assert_eq!(convert(&json!({"type": "object", "properties": {}})), None);
        assert_eq!(convert(&json!({"type": "object"})), None);
        assert_eq!(
            convert(&json!({"type": "string"})),
            Some(json!({"type": "STRING"}))
        );
    }
}

//! Cohere's `/v2/embed`: texts in, embeddings by type out (`float` lists, or `base64`
//! of little-endian `f32`s), billed input tokens in `meta`.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::chat::{Refusal, bad, object_with_model};
use crate::mock::{to_bytes, unit_vector, words};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

const FIELDS: &[&str] = &[
    "model",
    "texts",
    "images",
    "inputs",
    "input_type",
    "embedding_types",
    "output_dimension",
    "max_tokens",
    "truncate",
];

/// Checks an embed request and answers it.
pub(crate) fn answer(body: &Value, id: &str) -> Result<Bytes, Refusal> {
    let (obj, model) = object_with_model(body, FIELDS)?;
    let texts: Vec<&str> = obj
        .get("texts")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .filter(|t| !t.is_empty() && t.len() <= 96)
        .ok_or_else(|| bad("texts must be a list of 1 to 96 strings"))?;
    match obj.get("input_type").and_then(Value::as_str) {
        Some("search_document" | "search_query" | "classification" | "clustering" | "image") => {}
        None if model.contains("v2.0") => {}
        _ => {
            return Err(bad(
                "valid input_type must be provided with the provided model",
            ));
        }
    }
    if let Some(t) = obj.get("truncate")
        && !matches!(t.as_str(), Some("NONE" | "START" | "END"))
    {
        return Err(bad("truncate must be one of NONE, START, END"));
    }
    let types: Vec<&str> = match obj.get("embedding_types") {
        None => vec!["float"],
        Some(v) => v
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("embedding_types must be a list"))?,
    };
    let dim = match obj.get("output_dimension") {
        None if model.contains("v4") => 1536,
        None if model.contains("light") => 384,
        None => 1024,
        Some(v) => match v.as_u64() {
            Some(n @ (256 | 512 | 1024 | 1536)) if model.contains("v4") => n as usize,
            _ => return Err(bad("output_dimension is not supported for this model")),
        },
    };
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| unit_vector(t.as_bytes(), dim))
        .collect();
    let mut embeddings = Map::new();
    for kind in types {
        let value = match kind {
            "float" => json!(vectors),
            "base64" => json!(
                vectors
                    .iter()
                    .map(|v| {
                        let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                        STANDARD.encode(bytes)
                    })
                    .collect::<Vec<_>>()
            ),
            "int8" | "uint8" | "binary" | "ubinary" => {
                return Err(bad(format!("mock: embedding type {kind} is not simulated")));
            }
            other => return Err(bad(format!("embedding_types: unknown type {other}"))),
        };
        embeddings.insert(kind.to_owned(), value);
    }
    let tokens: u64 = texts.iter().map(|t| words(t).max(1)).sum();
    Ok(to_bytes(&json!({
        "id": id,
        "embeddings": embeddings,
        "texts": texts,
        "meta": {
            "api_version": { "version": "2" },
            "billed_units": { "input_tokens": tokens },
        },
        "response_type": "embeddings_by_type",
    })))
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn embeds_by_type() {
        let body = json!({"model": "embed-v4.0", "texts": ["a b", "c"], "input_type": "search_document", "embedding_types": ["float", "base64"], "output_dimension": 256});
        let v: Value = serde_json::from_slice(&answer(&body, "e1").unwrap()).unwrap();
        assert_eq!(v["response_type"], "embeddings_by_type");
        assert_eq!(v["embeddings"]["float"].as_array().unwrap().len(), 2);
        assert_eq!(v["embeddings"]["float"][0].as_array().unwrap().len(), 256);
        let raw = STANDARD
            .decode(v["embeddings"]["base64"][0].as_str().unwrap())
            .unwrap();
        let first = f32::from_le_bytes(raw[..4].try_into().unwrap());
        assert_eq!(json!(first), v["embeddings"]["float"][0][0]);
        assert_eq!(v["meta"]["billed_units"]["input_tokens"], 3);
        assert!(answer(&json!({"model": "embed-english-v3.0", "texts": ["a"]}), "e").is_err());
        assert!(answer(&json!({"model": "embed-english-v3.0", "input": ["a"], "input_type": "search_query"}), "e").is_err());
    }
}

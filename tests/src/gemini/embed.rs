//! Embedding answers: AI Studio's `embedContent` and `batchEmbedContents`, and Vertex
//! AI's `predict` for text embedding models, one vector per input in input order.
//!
//! The Gemini API's answers carry `usageMetadata` (`EmbeddingUsageMetadata`: the
//! prompt's tokens, about one a word here), except from models whose name holds
//! `mock-no-usage`, which answer as the API's older surfaces do, without it.

use serde_json::{Value, json};

use crate::mock::unit_vector;

/// Vector width when the request names no `outputDimensionality`: small, so replies
/// stay cheap, but a real vector.
pub(crate) const DEFAULT_DIM: usize = 8;

fn dim(requested: Option<&Value>) -> usize {
    requested
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIM, |d| d.clamp(1, 3072) as usize)
}

/// The text of an embed request's `content`: its text parts, space-joined.
fn content_text(request: &Value) -> String {
    request
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn output_dimensionality(request: &Value) -> Option<&Value> {
    request
        .get("outputDimensionality")
        .or_else(|| request.get("output_dimensionality"))
}

/// Tokens of an embedded text: one a word, at least one.
fn tokens(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// `usageMetadata` for `tokens` prompt tokens, unless `model` answers without it.
fn with_usage(mut answer: Value, model: &str, tokens: u64) -> Value {
    if !model.contains("mock-no-usage") {
        answer["usageMetadata"] = json!({
            "promptTokenCount": tokens,
            "promptTokenDetails": [{ "modality": "TEXT", "tokenCount": tokens }],
        });
    }
    answer
}

/// `embedContent`: `{"embedding": {"values": [...]}, "usageMetadata": {...}}`.
pub(crate) fn single(model: &str, request: &Value) -> Value {
    let text = content_text(request);
    let values = unit_vector(text.as_bytes(), dim(output_dimensionality(request)));
    with_usage(
        json!({ "embedding": { "values": values } }),
        model,
        tokens(&text),
    )
}

/// `batchEmbedContents`: `{"embeddings": [{"values": [...]}, ...], "usageMetadata": {...}}`,
/// in request order.
pub(crate) fn batch(model: &str, body: &Value) -> Value {
    let requests = body
        .get("requests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let embeddings: Vec<Value> = requests
        .iter()
        .map(|r| json!({ "values": unit_vector(content_text(r).as_bytes(), dim(output_dimensionality(r))) }))
        .collect();
    let total = requests.iter().map(|r| tokens(&content_text(r))).sum();
    with_usage(json!({ "embeddings": embeddings }), model, total)
}

/// Vertex `predict`: one prediction per instance. The statistics keys are snake_case
/// on the wire (`token_count`), although the REST reference spells them in camelCase.
pub(crate) fn predict(body: &Value) -> Value {
    let d = dim(body.pointer("/parameters/outputDimensionality"));
    let mut characters = 0;
    let predictions: Vec<Value> = body
        .get("instances")
        .and_then(Value::as_array)
        .map(|instances| {
            instances
                .iter()
                .map(|instance| {
                    let text = instance
                        .get("content")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    characters += text.chars().filter(|c| !c.is_whitespace()).count();
                    let tokens = text.split_whitespace().count().max(1);
                    json!({
                        "embeddings": {
                            "statistics": { "truncated": false, "token_count": tokens },
                            "values": unit_vector(text.as_bytes(), d),
                        }
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "predictions": predictions,
        "metadata": { "billableCharacterCount": characters },
    })
}

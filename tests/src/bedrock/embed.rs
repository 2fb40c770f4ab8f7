//! InvokeModel for embedding models: Amazon Titan Text Embeddings (one `inputText` per
//! call) and Cohere Embed on Bedrock (a `texts` list per call), each with its own body.

use bytes::Bytes;
use serde_json::{Value, json};

use super::converse::Failure;
use crate::mock::{to_bytes, unit_vector, words};

fn invalid(message: impl Into<String>) -> Failure {
    Failure {
        exception: "ValidationException",
        message: message.into(),
    }
}

/// A successful InvokeModel answer: the body and the input token count Bedrock also
/// reports in `x-amzn-bedrock-input-token-count`.
#[derive(Debug)]
pub(crate) struct Embedded {
    pub(crate) body: Bytes,
    pub(crate) input_tokens: u64,
}

/// Answers an InvokeModel call to an embedding model, or says why Bedrock would not.
pub(crate) fn invoke(model: &str, body: &Value, next_id: u64) -> Result<Embedded, Failure> {
    if model.starts_with("amazon.titan-embed-text")
        || model.starts_with("amazon.titan-embed-g1-text")
    {
        titan(model, body)
    } else if model.starts_with("cohere.embed-") {
        cohere(model, body, next_id)
    } else {
        Err(invalid("The provided model identifier is invalid."))
    }
}

fn titan(model: &str, body: &Value) -> Result<Embedded, Failure> {
    let v2 = model.starts_with("amazon.titan-embed-text-v2");
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("Malformed input request: expected a JSON object, please reformat your input and try again."))?;
    let allowed: &[&str] = if v2 {
        &["inputText", "dimensions", "normalize", "embeddingTypes"]
    } else {
        &["inputText"]
    };
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Malformed input request: #: extraneous key [{extra}] is not permitted, please reformat your input and try again."
        )));
    }
    let text = obj
        .get("inputText")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("Malformed input request: #: required key [inputText] not found, please reformat your input and try again."))?;
    let dim = match obj.get("dimensions") {
        None if v2 => 1024,
        None => 1536,
        Some(d) => match d.as_u64() {
            Some(n @ (256 | 512 | 1024)) => n as usize,
            _ => {
                return Err(invalid(format!(
                    "Malformed input request: #/dimensions: {d} is not a valid enum value, please reformat your input and try again."
                )));
            }
        },
    };
    if let Some(types) = obj.get("embeddingTypes")
        && types != &json!(["float"])
    {
        return Err(invalid(
            "mock: only embeddingTypes [\"float\"] is simulated",
        ));
    }
    let tokens = words(text).max(1);
    let vector = unit_vector(text.as_bytes(), dim);
    let body = if v2 {
        json!({
            "embedding": vector,
            "embeddingsByType": { "float": vector },
            "inputTextTokenCount": tokens,
        })
    } else {
        json!({ "embedding": vector, "inputTextTokenCount": tokens })
    };
    Ok(Embedded {
        body: to_bytes(&body),
        input_tokens: tokens,
    })
}

fn cohere(model: &str, body: &Value, next_id: u64) -> Result<Embedded, Failure> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid("Malformed input request: expected a JSON object, please reformat your input and try again."))?;
    let v4 = model.starts_with("cohere.embed-v4");
    const ALLOWED: &[&str] = &[
        "texts",
        "images",
        "input_type",
        "truncate",
        "embedding_types",
        "output_dimension",
        "max_tokens",
        "inputs",
    ];
    if let Some(extra) = obj.keys().find(|k| !ALLOWED.contains(&k.as_str())) {
        return Err(invalid(format!(
            "Malformed input request: #: extraneous key [{extra}] is not permitted, please reformat your input and try again."
        )));
    }
    let texts: Vec<&str> = obj
        .get("texts")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
        .filter(|t| !t.is_empty() && t.len() <= 96)
        .ok_or_else(|| invalid("Malformed input request: #/texts: expected between 1 and 96 strings, please reformat your input and try again."))?;
    match obj.get("input_type").and_then(Value::as_str) {
        Some("search_document" | "search_query" | "classification" | "clustering") => {}
        _ => {
            return Err(invalid(
                "Malformed input request: #/input_type: must be one of search_document, search_query, classification, clustering, please reformat your input and try again.",
            ));
        }
    }
    if let Some(t) = obj.get("truncate")
        && !matches!(t.as_str(), Some("NONE" | "START" | "END"))
    {
        return Err(invalid(
            "Malformed input request: #/truncate: must be NONE, START or END, please reformat your input and try again.",
        ));
    }
    let by_type = match obj.get("embedding_types") {
        None => false,
        Some(t) if t == &json!(["float"]) => true,
        Some(_) => {
            return Err(invalid(
                "mock: only embedding_types [\"float\"] is simulated",
            ));
        }
    };
    let dim = match obj.get("output_dimension").and_then(Value::as_u64) {
        Some(n @ (256 | 512 | 1024 | 1536)) if v4 => n as usize,
        Some(_) => {
            return Err(invalid(
                "Malformed input request: #/output_dimension: invalid value, please reformat your input and try again.",
            ));
        }
        None if v4 => 1536,
        None => 1024,
    };
    let vectors: Vec<Vec<f32>> = texts
        .iter()
        .map(|t| unit_vector(t.as_bytes(), dim))
        .collect();
    let tokens = texts.iter().map(|t| words(t).max(1)).sum();
    let id = format!("mock-embed-{next_id:012}");
    let body = if by_type {
        json!({
            "id": id,
            "texts": texts,
            "embeddings": { "float": vectors },
            "response_type": "embeddings_by_type",
        })
    } else {
        json!({
            "id": id,
            "texts": texts,
            "embeddings": vectors,
            "response_type": "embeddings_floats",
        })
    };
    Ok(Embedded {
        body: to_bytes(&body),
        input_tokens: tokens,
    })
}

// Test code may panic on broken expectations; that is how it reports them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(e: &Embedded) -> Value {
        serde_json::from_slice(&e.body).unwrap()
    }

    #[test]
    fn titan_v2_embeds_one_text() {
        let e = invoke(
            "amazon.titan-embed-text-v2:0",
            &json!({"inputText": "hello world", "dimensions": 256, "normalize": true}),
            1,
        )
        .unwrap();
        let v = parse(&e);
        assert_eq!(v["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(v["embeddingsByType"]["float"], v["embedding"]);
        assert_eq!(v["inputTextTokenCount"], 2);
        assert_eq!(e.input_tokens, 2);
        for bad in [
            json!({"inputText": ["a", "b"]}),
            json!({"texts": ["a"]}),
            json!({"inputText": "a", "dimensions": 100}),
        ] {
            assert_eq!(
                invoke("amazon.titan-embed-text-v2:0", &bad, 1)
                    .unwrap_err()
                    .exception,
                "ValidationException"
            );
        }
        let v1 =
            parse(&invoke("amazon.titan-embed-text-v1", &json!({"inputText": "a"}), 1).unwrap());
        assert_eq!(v1["embedding"].as_array().unwrap().len(), 1536);
        assert!(v1.get("embeddingsByType").is_none());
    }

    #[test]
    fn cohere_on_bedrock_embeds_a_list() {
        let body = json!({"texts": ["a b", "c"], "input_type": "search_document"});
        let v = parse(&invoke("cohere.embed-english-v3", &body, 7).unwrap());
        assert_eq!(v["response_type"], "embeddings_floats");
        assert_eq!(v["embeddings"].as_array().unwrap().len(), 2);
        assert_eq!(v["embeddings"][0].as_array().unwrap().len(), 1024);
        let mut typed = body.clone();
        typed["embedding_types"] = json!(["float"]);
        let v = parse(&invoke("cohere.embed-english-v3", &typed, 7).unwrap());
        assert_eq!(v["response_type"], "embeddings_by_type");
        assert_eq!(v["embeddings"]["float"].as_array().unwrap().len(), 2);
        assert!(invoke("cohere.embed-english-v3", &json!({"texts": ["a"]}), 1).is_err());
        assert!(invoke("meta.llama3", &body, 1).is_err());
    }
}

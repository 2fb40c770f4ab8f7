//! Embeddings: OpenAI's inputs → the Gemini API's `embedContent` (one input) or
//! `batchEmbedContents` (at most [`STUDIO_PER_REQUEST`] inputs a request, Google's
//! limit), or Vertex AI's `predict` (at most [`VERTEX_PER_REQUEST`] instances a request
//! for the `text-embedding` models, one for `gemini-embedding`). A call with more inputs
//! than one request holds is sent in pieces of that many (see
//! [`Dialect::split`](crate::provider::Dialect::split)), concurrently, and the answers are
//! merged in input order, their usage summed.
//!
//! Usage comes from the answer: `usageMetadata.promptTokenCount` on the Gemini API's
//! answers, `statistics.token_count` per prediction on Vertex AI. An answer that counts
//! none (the Gemini API's older surfaces leave `usageMetadata` out) has its inputs'
//! tokens estimated, at about four characters a token ([`estimate_tokens`]), so
//! embeddings are never metered as free; the reply is then marked estimated, which the
//! client sees as `x-llmesh-token-count: estimated`.

use std::borrow::Cow;

use serde::Deserialize;

use super::Flavor;
use super::wire::{
    BatchEmbedRequest, Content, EmbedRequest, EmbedResponse, PartOut, PredictInstance,
    PredictParameters, PredictRequest,
};
use crate::domain::{CallView, Reply};
use crate::provider::TranslateError;
use crate::provider::openai_wire::{EmbeddingVector, EmbeddingsRequest, embedding_list};
use crate::provider::translate::{self, wants_base64};

/// Inputs one `batchEmbedContents` request may hold: Google refuses more ("at most 100
/// requests can be in one batch").
pub const STUDIO_PER_REQUEST: usize = 100;
/// Instances one `predict` request to a `text-embedding` model may hold (Vertex AI's
/// documented limit).
pub const VERTEX_PER_REQUEST: usize = 250;

/// Which embeddings method a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// AI Studio `embedContent`.
    Single,
    /// AI Studio `batchEmbedContents`.
    Batch,
    /// Vertex `predict`.
    Predict,
}

/// One upstream embeddings request: its method and body.
pub type Piece = (Method, Vec<u8>);

/// The parsed call.
struct Inputs<'a> {
    req: EmbeddingsRequest<'a>,
}

impl<'a> Inputs<'a> {
    fn parse(call: &CallView<'a>) -> Result<Self, TranslateError> {
        // Any `encoding_format` but base64 gets floats, as from OpenAI.
        let req = EmbeddingsRequest::deserialize(call.body)
            .map_err(|e| TranslateError::invalid("input", e.to_string()))?;
        Ok(Inputs { req })
    }

    fn texts(&self) -> Result<Vec<&str>, TranslateError> {
        let texts = translate::embedding_texts(&self.req, "Gemini")?;
        if texts.is_empty() || texts.iter().any(|t| t.is_empty()) {
            return Err(TranslateError::invalid(
                "input",
                "every input must be a non-empty string.",
            ));
        }
        Ok(texts)
    }
}

/// How many inputs one request to `model` takes.
fn per_request(flavor: Flavor, model: &str) -> usize {
    match flavor {
        Flavor::AiStudio => STUDIO_PER_REQUEST,
        // Documented: gemini-embedding models take one instance per request.
        Flavor::Vertex if model.starts_with("gemini-embedding") => 1,
        Flavor::Vertex => VERTEX_PER_REQUEST,
    }
}

/// The one request for a call whose inputs fit in one.
pub fn request(call: &CallView<'_>, flavor: Flavor) -> Result<Piece, TranslateError> {
    let inputs = Inputs::parse(call)?;
    let texts = inputs.texts()?;
    if texts.len() > per_request(flavor, call.model) {
        // The router splits such calls before asking for one request.
        return Err(TranslateError::invalid(
            "input",
            format!(
                "{} takes these inputs only in several requests.",
                call.model
            ),
        ));
    }
    body(call, flavor, &texts, inputs.req.dimensions)
}

/// The requests for a call whose inputs do not fit in one; `None` when they do.
pub fn split(call: &CallView<'_>, flavor: Flavor) -> Result<Option<Vec<Piece>>, TranslateError> {
    let inputs = Inputs::parse(call)?;
    let texts = inputs.texts()?;
    let per_request = per_request(flavor, call.model);
    if texts.len() <= per_request {
        return Ok(None);
    }
    translate::embedding_runs(&texts, per_request)?
        .map(|run| body(call, flavor, run, inputs.req.dimensions))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The body embedding `texts` in one request.
fn body(
    call: &CallView<'_>,
    flavor: Flavor,
    texts: &[&str],
    dimensions: Option<u32>,
) -> Result<Piece, TranslateError> {
    match flavor {
        Flavor::Vertex => {
            let body = PredictRequest {
                instances: texts
                    .iter()
                    .map(|content| PredictInstance { content })
                    .collect(),
                parameters: dimensions.map(|d| PredictParameters {
                    output_dimensionality: d,
                }),
            };
            Ok((Method::Predict, encode(&body)?))
        }
        Flavor::AiStudio => {
            if let [text] = texts {
                let body = embed_request(None, text, dimensions);
                return Ok((Method::Single, encode(&body)?));
            }
            let model = format!("models/{}", call.model);
            let body = BatchEmbedRequest {
                requests: texts
                    .iter()
                    .map(|text| embed_request(Some(&model), text, dimensions))
                    .collect(),
            };
            Ok((Method::Batch, encode(&body)?))
        }
    }
}

fn embed_request<'a>(model: Option<&'a str>, text: &'a str, dims: Option<u32>) -> EmbedRequest<'a> {
    EmbedRequest {
        model,
        content: Content {
            role: None,
            parts: vec![PartOut::Text(Cow::Borrowed(text))],
        },
        output_dimensionality: dims,
    }
}

fn encode(body: &impl serde::Serialize) -> Result<Vec<u8>, TranslateError> {
    translate::encode(body, "input")
}

/// The answer to a call sent as one request → OpenAI's list.
pub fn response(call: &CallView<'_>, body: &[u8]) -> Result<Reply, TranslateError> {
    merge(call, std::slice::from_ref(&body), usize::MAX)
}

/// The answers to a call sent in pieces, in order → OpenAI's list.
pub fn merge_pieces(
    call: &CallView<'_>,
    flavor: Flavor,
    answers: &[bytes::Bytes],
) -> Result<Reply, TranslateError> {
    let answers: Vec<&[u8]> = answers.iter().map(|a| a.as_ref()).collect();
    merge(call, &answers, per_request(flavor, call.model))
}

/// Merges the answers to runs of `per_request` inputs (one answer for all of them when
/// `per_request` covers them): vectors in input order, tokens summed, estimated for an
/// answer that counts none.
fn merge(
    call: &CallView<'_>,
    answers: &[&[u8]],
    per_request: usize,
) -> Result<Reply, TranslateError> {
    let inputs = Inputs::parse(call)?;
    let texts = inputs.texts()?;
    let runs: Vec<&[&str]> = translate::embedding_runs(&texts, per_request)?.collect();
    if runs.len() != answers.len() {
        return Err(TranslateError::malformed(format!(
            "{} answers to {} requests",
            answers.len(),
            runs.len()
        )));
    }
    let base64 = wants_base64(call);
    let mut vectors = Vec::with_capacity(texts.len());
    let mut tokens: u64 = 0;
    let mut estimated = false;
    for (answer, run) in answers.iter().zip(runs) {
        let (values, counted) = read(answer)?;
        if values.len() != run.len() {
            return Err(TranslateError::malformed(format!(
                "{} embeddings for {} inputs",
                values.len(),
                run.len()
            )));
        }
        let counted = counted.unwrap_or_else(|| {
            estimated = true;
            run.iter().map(|t| estimate_tokens(t)).sum()
        });
        tokens = tokens.saturating_add(counted);
        vectors.extend(
            values
                .into_iter()
                .map(|v| EmbeddingVector::encode(v, base64)),
        );
    }
    let mut reply = embedding_list(call.model, vectors, tokens)?;
    reply.usage_estimated = estimated;
    Ok(reply)
}

/// One answer's vectors and the tokens it counts, if it counts them.
fn read(body: &[u8]) -> Result<(Vec<Vec<f32>>, Option<u64>), TranslateError> {
    let response: EmbedResponse =
        serde_json::from_slice(body).map_err(TranslateError::malformed)?;
    Ok(match response {
        EmbedResponse::Single {
            embedding,
            usage_metadata,
        } => (
            vec![embedding.values],
            usage_metadata.and_then(|u| u.prompt_token_count),
        ),
        EmbedResponse::Batch {
            embeddings,
            usage_metadata,
        } => (
            embeddings.into_iter().map(|e| e.values).collect(),
            usage_metadata.and_then(|u| u.prompt_token_count),
        ),
        EmbedResponse::Predict { predictions } => {
            // Every prediction must count its tokens for the answer to count them.
            let mut tokens = Some(0u64);
            let values = predictions
                .into_iter()
                .map(|p| {
                    let counted = p.embeddings.statistics.map(|s| s.token_count);
                    tokens = tokens.zip(counted).map(|(a, b)| a.saturating_add(b));
                    p.embeddings.values
                })
                .collect();
            (values, tokens)
        }
    })
}

/// The tokens of `text` as estimated where Google counts none: about four characters a
/// token, Google's rule of thumb for Gemini models, and at least one.
pub fn estimate_tokens(text: &str) -> u64 {
    let chars = text.chars().count() as u64;
    chars.div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::Endpoint;
    use crate::provider::test_support::{object, view};

    fn inputs(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("text {i}")).collect()
    }

    fn bodies(pieces: &[Piece]) -> Vec<Value> {
        pieces
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    #[test]
    fn ai_studio_batches_of_a_hundred_and_one_request_below() {
        let body = object(&json!({"input": inputs(100), "dimensions": 8}));
        let call = view(Endpoint::Embeddings, &body, false, "gemini-embedding-001");
        assert!(split(&call, Flavor::AiStudio).unwrap().is_none());
        let (method, _) = request(&call, Flavor::AiStudio).unwrap();
        assert_eq!(method, Method::Batch);

        let body = object(&json!({"input": inputs(201), "dimensions": 8}));
        let call = view(Endpoint::Embeddings, &body, false, "gemini-embedding-001");
        let pieces = split(&call, Flavor::AiStudio).unwrap().unwrap();
        let methods: Vec<Method> = pieces.iter().map(|(m, _)| *m).collect();
        assert_eq!(methods, [Method::Batch, Method::Batch, Method::Single]);
        let sent = bodies(&pieces);
        assert_eq!(sent[0]["requests"].as_array().unwrap().len(), 100);
        assert_eq!(sent[1]["requests"].as_array().unwrap().len(), 100);
        assert_eq!(
            sent[2],
            json!({"content": {"parts": [{"text": "text 200"}]}, "outputDimensionality": 8})
        );
        assert_eq!(
            sent[1]["requests"][0]["content"]["parts"][0]["text"],
            "text 100"
        );
        assert!(
            request(&call, Flavor::AiStudio).is_err(),
            "never as one request"
        );
    }

    #[test]
    fn vertex_sends_gemini_embedding_one_input_a_request_and_others_by_250() {
        let body = object(&json!({"input": ["a", "b", "c"], "dimensions": 4}));
        let call = view(Endpoint::Embeddings, &body, false, "gemini-embedding-001");
        let pieces = split(&call, Flavor::Vertex).unwrap().unwrap();
        assert_eq!(
            bodies(&pieces),
            ["a", "b", "c"].map(|t| json!({"instances": [{"content": t}],
                "parameters": {"outputDimensionality": 4}}))
        );
        let body = object(&json!({"input": inputs(251)}));
        let call = view(Endpoint::Embeddings, &body, false, "text-embedding-005");
        let pieces = split(&call, Flavor::Vertex).unwrap().unwrap();
        let sizes: Vec<usize> = bodies(&pieces)
            .iter()
            .map(|b| b["instances"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [250, 1]);
        let body = object(&json!({"input": inputs(250)}));
        let call = view(Endpoint::Embeddings, &body, false, "text-embedding-005");
        assert!(split(&call, Flavor::Vertex).unwrap().is_none());
    }

    #[test]
    fn more_inputs_than_openai_takes_are_refused() {
        let body = object(&json!({"input": inputs(MAX_EMBEDDING_INPUTS_PLUS_ONE)}));
        let call = view(Endpoint::Embeddings, &body, false, "gemini-embedding-001");
        let err = split(&call, Flavor::AiStudio).unwrap_err();
        assert!(err.to_string().contains("at most 2048 inputs"), "{err}");
    }

    const MAX_EMBEDDING_INPUTS_PLUS_ONE: usize = translate::MAX_EMBEDDING_INPUTS + 1;

    #[test]
    fn pieces_merge_in_order_with_usage_summed() {
        let body = object(&json!({"input": ["a", "b", "c"]}));
        let call = view(Endpoint::Embeddings, &body, false, "gemini-embedding-001");
        let answers = [
            r#"{"predictions": [{"embeddings": {"values": [1.0], "statistics": {"token_count": 2, "truncated": false}}}]}"#,
            r#"{"predictions": [{"embeddings": {"values": [2.0], "statistics": {"token_count": 3, "truncated": false}}}]}"#,
            r#"{"predictions": [{"embeddings": {"values": [3.0], "statistics": {"token_count": 4, "truncated": false}}}]}"#,
        ]
        .map(|a| Bytes::from_static(a.as_bytes()));
        let reply = merge_pieces(&call, Flavor::Vertex, &answers).unwrap();
        let out: Value = serde_json::from_slice(&reply.body).unwrap();
        let data: Vec<(Value, Value)> = out["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["index"].clone(), d["embedding"].clone()))
            .collect();
        assert_eq!(
            data,
            [
                (json!(0), json!([1.0])),
                (json!(1), json!([2.0])),
                (json!(2), json!([3.0]))
            ]
        );
        assert_eq!(out["usage"], json!({"prompt_tokens": 9, "total_tokens": 9}));
        assert_eq!(reply.usage.unwrap().prompt_tokens, 9);
        assert!(!reply.usage_estimated);
        // An answer with the wrong number of vectors cannot be matched to its inputs.
        let short = [
            answers[0].clone(),
            Bytes::from_static(br#"{"predictions": []}"#),
            answers[2].clone(),
        ];
        assert!(matches!(
            merge_pieces(&call, Flavor::Vertex, &short),
            Err(TranslateError::Malformed(_))
        ));
    }

    #[test]
    fn usage_is_googles_where_it_counts_and_estimated_where_it_does_not() {
        let body = object(&json!({"input": ["twelve chars", "abc"]}));
        let call = view(Endpoint::Embeddings, &body, false, "gemini-embedding-001");
        let counted = response(
            &call,
            br#"{"embeddings": [{"values": [1.0]}, {"values": [0.5]}], "usageMetadata": {"promptTokenCount": 5, "promptTokenDetails": [{"modality": "TEXT", "tokenCount": 5}]}}"#,
        )
        .unwrap();
        assert_eq!(counted.usage.unwrap().prompt_tokens, 5);
        assert!(!counted.usage_estimated);
        let uncounted = response(
            &call,
            br#"{"embeddings": [{"values": [1.0]}, {"values": [0.5]}]}"#,
        )
        .unwrap();
        // 12 characters → 3 tokens, 3 characters → 1.
        assert_eq!(uncounted.usage.unwrap().prompt_tokens, 4);
        assert!(uncounted.usage_estimated);
        let out: Value = serde_json::from_slice(&uncounted.body).unwrap();
        assert_eq!(out["usage"]["prompt_tokens"], 4);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("ééééé"), 2, "characters, not bytes");
    }
}

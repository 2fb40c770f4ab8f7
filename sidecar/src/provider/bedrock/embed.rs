//! Several inputs to a Titan Text Embeddings model, which embeds one `inputText` per
//! InvokeModel call: the call is split into one InvokeModel body per input, each built
//! as a one-input call would be (so `dimensions` and `normalize` apply to every piece),
//! sent concurrently by the router (see `router::dispatch::fan_out`), and the answers merged in
//! input order with their `inputTextTokenCount`s summed. Cohere Embed takes the list in
//! one call and is never split.

use serde_json::{Map, Value};

use super::request::{self, EmbedKind};
use super::wire::TitanResponse;
use crate::domain::{CallView, Endpoint, Reply};
use crate::provider::TranslateError;
use crate::provider::openai_wire::{EmbeddingVector, embedding_list};
use crate::provider::translate::{self, wants_base64};

/// The InvokeModel bodies for a Titan call of several inputs, one per input, in order;
/// `None` for any other call.
pub fn split(call: &CallView<'_>) -> Result<Option<Vec<Vec<u8>>>, TranslateError> {
    if call.endpoint != Endpoint::Embeddings
        || !matches!(EmbedKind::of(call.model), Some(EmbedKind::Titan { .. }))
    {
        return Ok(None);
    }
    let req = translate::embeddings_request(call)?;
    let texts = translate::embedding_texts(&req, "Bedrock")?;
    if texts.len() < 2 {
        return Ok(None);
    }
    // The call without its inputs, copied once; each piece adds its own input.
    let rest: Map<String, Value> = call
        .body
        .iter()
        .filter(|(k, _)| k.as_str() != "input")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    translate::embedding_runs(&texts, 1)?
        .map(|run| {
            let mut one = rest.clone();
            // A run of one input: that input.
            one.insert("input".into(), Value::String(run.concat()));
            request::embeddings(&CallView {
                body: &one,
                ..*call
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The client's list made of Titan's answers to [`split`]'s bodies, in input order.
pub fn merge(call: &CallView<'_>, answers: &[bytes::Bytes]) -> Result<Reply, TranslateError> {
    let base64 = wants_base64(call);
    let mut tokens: u64 = 0;
    let mut vectors = Vec::with_capacity(answers.len());
    for answer in answers {
        let r: TitanResponse = serde_json::from_slice(answer).map_err(TranslateError::malformed)?;
        tokens = tokens.saturating_add(r.input_text_token_count);
        vectors.push(EmbeddingVector::encode(r.embedding, base64));
    }
    embedding_list(call.model, vectors, tokens)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use crate::config::snapshot::{AwsCredentials, ProviderKind};
    use crate::domain::Endpoint;
    use crate::provider::test_support::{object, view};
    use crate::provider::{Prepared, TranslateError};

    const TITAN: &str = "amazon.titan-embed-text-v2:0";

    fn dialect() -> Prepared {
        let mut spec = crate::provider::spec(ProviderKind::Bedrock);
        spec.model = TITAN.into();
        spec.region = Some("eu-west-1".into());
        spec.aws = Some(AwsCredentials::new("AKIAEXAMPLE", "secret"));
        super::super::build(&spec, &crate::provider::test_support::offline()).unwrap()
    }

    #[test]
    fn several_titan_inputs_are_one_invoke_model_call_each() {
        let body = object(&json!({"model": "emb", "input": ["a b", "c", "d e f"],
            "dimensions": 256, "encoding_format": "float"}));
        let call = view(Endpoint::Embeddings, &body, false, TITAN);
        let pieces = dialect().dialect.split(&call).unwrap().unwrap();
        assert_eq!(pieces.len(), 3);
        for (piece, text) in pieces.iter().zip(["a b", "c", "d e f"]) {
            assert!(
                piece
                    .uri()
                    .path()
                    .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke")
            );
            let sent: Value = serde_json::from_slice(piece.body()).unwrap();
            assert_eq!(
                sent,
                json!({"inputText": text, "dimensions": 256, "normalize": true})
            );
        }
        // One input, Cohere's list and chat are sent as one request.
        for (body, model) in [
            (json!({"input": ["a"]}), TITAN),
            (json!({"input": "a"}), TITAN),
            (json!({"input": ["a", "b"]}), "cohere.embed-english-v3"),
        ] {
            let body = object(&body);
            let call = view(Endpoint::Embeddings, &body, false, model);
            assert!(dialect().dialect.split(&call).unwrap().is_none());
        }
        let chat = object(&json!({"messages": [{"role": "user", "content": "hi"}]}));
        let call = view(Endpoint::ChatCompletions, &chat, false, TITAN);
        assert!(dialect().dialect.split(&call).unwrap().is_none());
        // What one input may not do, no piece may: V1 cannot shorten.
        let body = object(&json!({"input": ["a", "b"], "dimensions": 256}));
        let call = view(
            Endpoint::Embeddings,
            &body,
            false,
            "amazon.titan-embed-text-v1",
        );
        assert!(matches!(
            dialect().dialect.split(&call),
            Err(TranslateError::UnsupportedValue {
                param: "dimensions",
                ..
            })
        ));
    }

    #[test]
    fn titan_answers_merge_in_input_order_with_tokens_summed() {
        let body = object(&json!({"input": ["a", "b"], "encoding_format": "base64"}));
        let call = view(Endpoint::Embeddings, &body, false, TITAN);
        let answers = vec![
            Bytes::from_static(br#"{"embedding": [1.0], "embeddingsByType": {"float": [1.0]}, "inputTextTokenCount": 2}"#),
            Bytes::from_static(br#"{"embedding": [0.0], "embeddingsByType": {"float": [0.0]}, "inputTextTokenCount": 5}"#),
        ];
        let reply = dialect().dialect.merge(&call, answers).unwrap();
        let out: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            out,
            json!({"object": "list", "model": TITAN, "usage": {"prompt_tokens": 7, "total_tokens": 7},
                "data": [{"object": "embedding", "index": 0, "embedding": "AACAPw=="},
                         {"object": "embedding", "index": 1, "embedding": "AAAAAA=="}]})
        );
        assert_eq!(reply.usage.unwrap().prompt_tokens, 7);
        let broken = vec![Bytes::from_static(b"{\"embedding\": ")];
        assert!(matches!(
            dialect().dialect.merge(&call, broken),
            Err(TranslateError::Malformed(_))
        ));
    }
}

//! Embeddings of several inputs where the upstream takes them only in pieces: Titan on
//! Bedrock (one text per InvokeModel), Vertex AI's `gemini-embedding` (one instance
//! per `predict`), the Gemini API's batches of at most 100. The pieces go out
//! concurrently and come back merged in input order, usage summed; one failing piece
//! fails the attempt, which is retried as a whole. Gemini embedding usage is Google's
//! count where it gives one, else estimated and marked so.

use http::StatusCode;
use llmesh_tests::MockBedrock;
use llmesh_tests::gemini::MockGemini;
use llmesh_tests::mock::Reply;
use serde_json::{Value, json};

use crate::bedrock::bedrock_deployment;
use crate::gemini::{Api, sidecar as gemini_sidecar};
use crate::golden;
use crate::support::*;

const TITAN: &str = "amazon.titan-embed-text-v2:0";

/// The vector `model` gives `text` alone: the reference for the merged answers.
async fn alone(sidecar: &Running, model: &str, text: &str, extra: &Value) -> Value {
    let mut body = json!({"model": model, "input": text});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, _, out) = post(sidecar.api, "/v1/embeddings", body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out["data"][0]["embedding"].clone()
}

/// Checks `out` holds one embedding per input, in input order, each the one the input
/// gets alone.
async fn in_order(sidecar: &Running, model: &str, inputs: &[&str], extra: &Value, out: &Value) {
    let data = out["data"].as_array().unwrap();
    assert_eq!(data.len(), inputs.len(), "{out}");
    for (i, (item, text)) in data.iter().zip(inputs).enumerate() {
        assert_eq!(item["index"], i);
        assert_eq!(item["object"], "embedding");
        assert_eq!(
            item["embedding"],
            alone(sidecar, model, text, extra).await,
            "{text}"
        );
    }
}

#[tokio::test]
async fn titan_inputs_are_one_invoke_model_call_each_merged_in_order() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("titan", vec![bedrock_deployment(&mock, "t", TITAN)])],
    )))
    .await;
    let inputs = ["the first text", "second", "a third one here", "4"];
    let (status, headers, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "titan", "input": inputs, "dimensions": 256}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "1");
    assert!(
        headers.get("x-llmesh-token-count").is_none(),
        "Titan counts"
    );
    // Titan's inputTextTokenCount per piece, summed: 3 + 1 + 4 + 1.
    assert_eq!(out["usage"], json!({"prompt_tokens": 9, "total_tokens": 9}));
    assert_eq!(out["model"], TITAN);
    let mut pieces: Vec<Value> = mock.bodies();
    assert_eq!(pieces.len(), 4);
    assert!(mock.requests().iter().all(|r| {
        r.path
            .ends_with("/model/amazon.titan-embed-text-v2%3A0/invoke")
    }));
    // Sent concurrently: compared in input order.
    pieces.sort_by_key(|b| inputs.iter().position(|t| b["inputText"] == *t));
    golden::check("bedrock", "titan_embed_pieces", &Value::Array(pieces));
    in_order(
        &sidecar,
        "titan",
        &inputs,
        &json!({"dimensions": 256}),
        &out,
    )
    .await;
}

#[tokio::test]
async fn one_failing_titan_piece_fails_the_attempt_which_is_retried_whole() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("titan", vec![bedrock_deployment(&mock, "t", TITAN)])],
    )))
    .await;
    mock.enqueue(Reply::ok());
    mock.enqueue(Reply::error(
        429,
        "Too many requests, please wait before trying again.",
        "ThrottlingException",
        None,
    ));
    let inputs = ["a", "b c", "d e f"];
    let (status, headers, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "titan", "input": inputs, "encoding_format": "float"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "2");
    assert_eq!(
        out["usage"]["prompt_tokens"], 6,
        "the retried attempt's usage only"
    );
    assert!(mock.request_count() >= 5, "2 or 3 pieces, then all 3 again");
    in_order(&sidecar, "titan", &inputs, &json!({}), &out).await;

    // A piece the upstream refuses is the client's 400, not retried.
    mock.enqueue(Reply::error(
        400,
        "Malformed input request, please reformat your input and try again.",
        "ValidationException",
        None,
    ));
    let (status, headers, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "titan", "input": ["x", "y"]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(header(&headers, "x-llmesh-attempts"), "1");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Malformed input request")
    );
}

#[tokio::test]
async fn vertex_gemini_embedding_inputs_are_one_predict_each_merged_in_order() {
    let mock = MockGemini::start().await;
    let sidecar = gemini_sidecar(&mock, Api::Vertex, &[("emb", "gemini-embedding-001")]).await;
    let inputs = ["alpha beta", "gamma", "delta epsilon zeta"];
    let (status, headers, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "emb", "input": inputs, "dimensions": 16}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(headers.get("x-llmesh-token-count").is_none());
    // statistics.token_count per prediction, summed: 2 + 1 + 3.
    assert_eq!(out["usage"], json!({"prompt_tokens": 6, "total_tokens": 6}));
    let mut pieces: Vec<Value> = mock.model_requests().iter().map(|r| r.json()).collect();
    assert_eq!(
        pieces.len(),
        3,
        "the strict mock takes one instance per request"
    );
    pieces.sort_by_key(|b| {
        inputs
            .iter()
            .position(|t| b["instances"][0]["content"] == *t)
    });
    golden::check("gemini", "predict_pieces", &Value::Array(pieces));
    in_order(&sidecar, "emb", &inputs, &json!({"dimensions": 16}), &out).await;
}

#[tokio::test]
async fn ai_studio_batches_a_hundred_inputs_a_request() {
    let mock = MockGemini::start().await;
    let sidecar = gemini_sidecar(&mock, Api::Studio, &[("emb", "gemini-embedding-001")]).await;
    let inputs: Vec<String> = (0..250).map(|i| format!("input number {i}")).collect();
    let (status, headers, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "emb", "input": inputs, "encoding_format": "float"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(headers.get("x-llmesh-token-count").is_none());
    // usageMetadata.promptTokenCount of each batch, summed: three words an input.
    assert_eq!(out["usage"]["prompt_tokens"], 750);
    let mut sizes: Vec<usize> = mock
        .model_requests()
        .iter()
        .map(|r| r.json()["requests"].as_array().unwrap().len())
        .collect();
    sizes.sort_unstable();
    assert_eq!(sizes, [50, 100, 100]);
    let data = out["data"].as_array().unwrap();
    assert_eq!(data.len(), 250);
    for i in [0, 99, 100, 199, 200, 249] {
        assert_eq!(data[i]["index"], i);
        let text = format!("input number {i}");
        assert_eq!(
            data[i]["embedding"],
            alone(&sidecar, "emb", &text, &json!({})).await,
            "{i}"
        );
    }
}

#[tokio::test]
async fn gemini_embeddings_google_does_not_count_are_estimated_and_marked() {
    let mock = MockGemini::start().await;
    let sidecar = gemini_sidecar(&mock, Api::Studio, &[("old", "mock-no-usage")]).await;
    let (status, headers, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "old", "input": ["twelve chars", "abc"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(header(&headers, "x-llmesh-token-count"), "estimated");
    // About four characters a token: 3 + 1. Never 0, so never metered as free.
    assert_eq!(out["usage"]["prompt_tokens"], 4);
}

#[tokio::test]
async fn more_inputs_than_openai_takes_are_refused_before_anything_is_sent() {
    let mock = MockBedrock::start().await;
    let sidecar = Running::start(Some(snapshot(
        "v1",
        vec![model("titan", vec![bedrock_deployment(&mock, "t", TITAN)])],
    )))
    .await;
    let inputs: Vec<&str> = vec!["x"; 2049];
    let (status, _, out) = post(
        sidecar.api,
        "/v1/embeddings",
        json!({"model": "titan", "input": inputs}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["param"], "input");
    assert_eq!(mock.request_count(), 0);
}
